/* respond.c (L2): the exchange pool, the end of a request (keep-alive, the next pipelined
 * request), the client address, local answers and the access log. */
#ifndef PODROUTER_RESPOND_H
#define PODROUTER_RESPOND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/http_head.h"

/* Released exchanges kept per worker. Exchanges and their buffers are mapped pages (respond.c,
 * common.c): a release with a full pool or a get with an empty one is a system call, so the
 * pool holds every exchange a busy worker cycles through (e.g. wrk's 64 connections), and the
 * memory tick (loop.c) unmaps those unused for 400 ms: an idle worker keeps 2. */
#define PR_EXCHANGE_FREELIST 256

struct pr_client;
struct pr_exchange;
struct pr_worker;

struct pr_exchange *pr__exchange_get(struct pr_worker *w);
void pr__exchange_release(struct pr_worker *w, struct pr_exchange *x);
void pr__exchange_free(struct pr_exchange *x);
void pr__client_request_done(struct pr_client *c);
/* The client address of SPEC 3.6: the peer, or behind a trusted proxy the rightmost
 * untrusted X-Forwarded-For entry. Fills family (AF_INET/AF_INET6) and addr[16]. */
void pr__client_addr(const struct pr_client *c, const struct pr_request_head *rh,
                     int *family, uint8_t addr[16]);
void pr__client_respond(struct pr_client *c, int status, const char *content_type,
                        const char *extra_headers, const char *body, size_t body_len,
                        bool close);
void pr__client_error(struct pr_client *c, int status, const char *code, const char *message,
                      const char *extra_headers, bool close);
void pr__access_log(struct pr_client *c);

#endif
