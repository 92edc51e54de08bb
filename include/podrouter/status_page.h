/* The operator status page served at /status and / (SPEC 4.4). */
#ifndef PODROUTER_STATUS_PAGE_H
#define PODROUTER_STATUS_PAGE_H

/* A self-contained HTML document (inline CSS and JS, no external assets), NUL-terminated. */
extern const char pr_status_page_html[];

#endif
