/* Admin API (SPEC 4): health, /v1 registry and assignments, metrics, status page. */
#ifndef PODROUTER_ADMIN_H
#define PODROUTER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct pr_config;
struct pr_registry;
struct pr_store;

struct pr_admin_ctx {
    const struct pr_config *cfg;
    struct pr_registry *reg;
    struct pr_store *store;
    const char *token; /* NULL: writes only from loopback */
    size_t token_len;
    bool (*draining)(void);                        /* SIGTERM received */
    char *(*render_metrics)(size_t *len);          /* malloc'd Prometheus text */
};

struct pr_admin_request {
    const char *method;        /* NUL-terminated */
    const char *path;          /* without the query, NUL-terminated */
    const char *authorization; /* header value or NULL */
    const char *content_type;  /* header value or NULL */
    const char *origin;        /* Origin header or NULL */
    const char *host;          /* Host header or NULL */
    const char *fetch_site;    /* Sec-Fetch-Site header or NULL */
    const char *body;
    size_t body_len;
    bool peer_loopback;
};

struct pr_admin_response {
    int status;
    const char *content_type; /* static string */
    char *body;               /* malloc'd; caller frees */
    size_t body_len;
    char extra_headers[128];  /* e.g. "Allow: GET, PUT\r\n" */
};

void pr_admin_handle(const struct pr_admin_ctx *ctx, const struct pr_admin_request *req,
                     struct pr_admin_response *resp);

/* {"error":code,"message":msg} into a malloc'd body. */
char *pr_error_json(const char *code, const char *message, size_t *len);

#endif
