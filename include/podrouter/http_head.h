/* A parsed HTTP request head as borrowed slices (owned by the connection). */
#ifndef PODROUTER_HTTP_HEAD_H
#define PODROUTER_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

#define PR_MAX_HEADERS 100

struct pr_header {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

struct pr_request_head {
    const char *method; /* "GET", "POST", ... */
    size_t method_len;
    const char *url; /* origin-form target: "/path?query" */
    size_t url_len;
    const struct pr_header *headers;
    size_t nheaders;
};

/* Case-insensitive header lookup; returns the first match or NULL. */
const struct pr_header *pr_head_find(const struct pr_request_head *h, const char *name);

#endif
