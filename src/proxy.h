/* proxy.c (L2): routing a request (through route.c), forwarding, response relay, retries;
 * the entries of the exchange's pod-connection table (pr__proxy_upstream_handlers). */
#ifndef PODROUTER_PROXY_H
#define PODROUTER_PROXY_H

#include <stddef.h>

struct pr_client;
struct pr_pool;
struct pr_route_ctx;
struct pr_upstream;
struct pr_worker;

void pr__proxy_route(struct pr_client *c);
void pr__proxy_upstream_ready(struct pr_client *c, struct pr_upstream *u);
void pr__proxy_upstream_failed(struct pr_client *c, struct pr_upstream *u, int err);
void pr__proxy_on_upstream_data(struct pr_upstream *u, const char *data, size_t len);
void pr__proxy_on_upstream_eof(struct pr_upstream *u, int err);
size_t pr__proxy_client_body(struct pr_client *c, const char *data, size_t len);
size_t pr__proxy_head_with_body(struct pr_client *c, const char *data, size_t len);
void pr__proxy_upstream_timeout(struct pr_upstream *u);
void pr__proxy_client_gone(struct pr_client *c);
void pr__proxy_upstream_drained(struct pr_upstream *u);
void pr__proxy_client_drained(struct pr_client *c);

/* proxy_route.c: what route.c needs of this worker, and a pod connection for c. */
void pr__proxy_route_ctx(struct pr_worker *w, struct pr_route_ctx *ctx);
int pr__upstream_acquire(struct pr_pool *p, struct pr_client *c);
void pr__proxy_pool_resolved(struct pr_client *c, struct pr_pool *p);

#endif
