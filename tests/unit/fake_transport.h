/* In-memory L1 transports for unit tests of the L2 exchange (exchange.c, proxy.c,
 * respond.c, route.c, tunnel.c). tests/unit/fake_transport.c defines every function those
 * modules call downwards on the client transport (src/client.c) and the pod transport
 * (src/upstream.c), plus the server state loop.c owns, so that the test links
 * without client.c, upstream.c and loop.c: link-time substitution, no sockets, no threads.
 *
 * What the fakes keep of the real transports' contract:
 *   - client input goes through the same input loop as client.c (client_feed: on_data until
 *     it takes nothing; the rest waits in c->in; pr__client_drive resumes it), and bytes can
 *     only arrive while the connection is reading;
 *   - a send appends to the connection's output buffer; when the test made the socket
 *     "full" (or bytes are queued already) it returns 1 and the connection is writing until
 *     the test drains it (on_drained / drained);
 *   - pod bytes and EOF are delivered only while the pod connection is reading;
 *   - pools: an idle released connection is reused by the next acquire of its pod,
 *     otherwise acquire returns PR_POOL_CONNECTING and the test completes the connect
 *     (ready) or fails it (failed, after the connection is closed, as upstream.c does). */
#ifndef PODROUTER_FAKE_TRANSPORT_H
#define PODROUTER_FAKE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

struct fake_buf {
    char *data;
    size_t len, cap;
};

struct fake_client {
    struct pr_client c; /* first: the L2 code only sees this */
    struct fake_buf out; /* every byte the router sent (or queued) to the client */
    bool full;           /* the socket takes nothing: sends queue (return 1) */
    int closes;          /* pr__client_close calls that closed it */
    struct fake_client *next_all;
};

struct fake_upstream {
    struct pr_upstream u;
    struct fake_buf out; /* every byte the router sent (or queued) to the pod */
    bool full;
    int releases, reusable_releases, closes;
    int sends; /* send calls (each would be one system call) */
    struct fake_upstream *next_all;
};

/* Set up one worker and its server (config defaults, registry with pods pods[0..npods) at
 * 10.0.0.(i+1):3000, the memory store, cookies on), queues, metrics, loop clock. */
void fake_world_init(const char *const *pods, size_t npods);
void fake_world_fini(void);
struct pr_worker *fake_worker(void);

/* Client connections. */
struct fake_client *fake_client_new(void); /* HTTP table, IDLE, reading, peer 203.0.113.7 */
void fake_client_send(struct fake_client *fc, const char *data, size_t len);
void fake_client_sends(struct fake_client *fc, const char *s);
void fake_client_eof(struct fake_client *fc);   /* the client hung up */
void fake_client_drain(struct fake_client *fc); /* the socket took every queued byte */
/* A queued write to the client failed (reset): client.c closes the connection. */
void fake_client_write_error(struct fake_client *fc);
/* The client output as a NUL-terminated string (owned by fc). */
const char *fake_client_out(struct fake_client *fc);
void fake_client_out_clear(struct fake_client *fc);

/* Pod connections. */
enum fake_connect_mode { FAKE_CONNECT_ASYNC = 0, FAKE_CONNECT_ERROR };
void fake_next_connect(enum fake_connect_mode mode, int err);
struct fake_upstream *fake_upstream_last(void); /* newest pod connection, NULL none */
size_t fake_upstream_count(void);
void fake_upstream_connected(struct fake_upstream *fu);         /* connect succeeded */
void fake_upstream_connect_failed(struct fake_upstream *fu, int err);
void fake_pod_send(struct fake_upstream *fu, const char *data, size_t len);
void fake_pod_sends(struct fake_upstream *fu, const char *s);
void fake_pod_eof(struct fake_upstream *fu);
void fake_pod_drain(struct fake_upstream *fu);
/* A queued write to the pod failed (reset): upstream.c reports it as eof(err). */
void fake_pod_write_error(struct fake_upstream *fu, int err);
const char *fake_pod_out(struct fake_upstream *fu);
void fake_pod_out_clear(struct fake_upstream *fu);
const char *fake_pool_name(const struct fake_upstream *fu);

/* The store's create answers for sids wait until fake_store_flush (the memory store then
 * does the work, so its answer is the real one). */
void fake_store_defer_sid_pins(bool on);
size_t fake_store_pending(void);
void fake_store_flush(void);

#endif
