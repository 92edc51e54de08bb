/* upstream.c (L1): pod connections and per-pod pools (socket, name resolution, connect,
 * keep-alive reuse, connect and pool timers). It calls its owner only through the
 * connection's handler table (u->h). */
#ifndef PODROUTER_UPSTREAM_H
#define PODROUTER_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "podrouter/common.h"
#include "podrouter/config.h"
#include "podrouter/registry.h"
#include "tq.h"

#define PR_POOL_IDLE_MS 3000 /* below Node's 5 s keepAliveTimeout: no reuse races */
#define PR_POOL_MAX_IDLE 1024 /* idle upstream connections kept per pod per thread */
/* A pool that ran dry (had to connect) within PR_POOL_NEED_MS is in demand: a request takes
 * its least recently used connection once that one has idled PR_POOL_REFRESH_MS, instead of
 * the most recently used, so a load that swings between the pods keeps the connections its
 * last peak needed in use rather than letting them expire (closes and reconnects). Each
 * request refreshes at most one, so a pool keeps what its request rate can keep warm. */
#define PR_POOL_NEED_MS 60000
#define PR_POOL_REFRESH_MS 2000

struct pr_client;
struct pr_pool;
struct pr_upstream;
struct pr_worker;

/* Upward calls of a pod connection. `client` is the owner's pointer, passed back and never
 * looked into by upstream.c. */
struct pr_upstream_handlers {
    void (*ready)(struct pr_client *c, struct pr_upstream *u);       /* connected / reused */
    void (*failed)(struct pr_client *c, struct pr_upstream *u, int err); /* connect failed */
    void (*data)(struct pr_upstream *u, const char *data, size_t len);
    void (*eof)(struct pr_upstream *u, int err); /* the pod closed, or a read/write error */
    void (*drained)(struct pr_upstream *u);      /* everything queued for the pod was sent */
    void (*timeout)(struct pr_upstream *u);      /* response (q_wait) or send (q_linger) */
    /* A pool's name resolution the owner waited for ended (pr__pool_acquire returned
     * PR_POOL_WAIT): the owner acquires again, or gives up. */
    void (*resolved)(struct pr_client *c, struct pr_pool *p);
};

enum pr_upstream_state {
    PR_U_CONNECTING = 0,
    PR_U_ACTIVE,
    PR_U_IDLE,
    PR_U_CLOSING,
};

/* An idle tunnel keeps one of these per pod connection, so its size is budgeted:
 * PR_UPSTREAM_SIZE_MAX (see PR_CLIENT_SIZE_MAX in client.h), checked at compile time in
 * upstream.c. The worker is u->pool->w; the connect request is heap-allocated and found
 * through its own data pointer, so only its start time is kept, and only while connecting. */
#define PR_UPSTREAM_SIZE_MAX 328 /* + 8 = 336, a 16-B malloc chunk; 8 B more: a 352-B chunk */
struct pr_upstream {
    uv_tcp_t tcp;
    union {
        uint64_t connect_start_ns; /* while connecting (PR_U_CONNECTING) */
        struct {
            struct pr_upstream *prev, *next; /* pool idle list */
        } idle;
    } u;
    struct pr_pool *pool;
    struct pr_client *client; /* owner (opaque to upstream.c), NULL when none */
    const struct pr_upstream_handlers *h;
    struct pr_tq_node tq;
    uint32_t cslot, cgen; /* registry slot/generation the connection is counted against */
    unsigned state : 2;   /* enum pr_upstream_state */
    bool reading : 1, writing : 1, reused : 1, got_bytes : 1, counted : 1;
};

struct pr_pool {
    char name[PR_POD_NAME_MAX + 1];
    char address[PR_ADDRESS_MAX + 1];
    struct sockaddr_storage addr;
    uint32_t slot, gen;
    struct pr_upstream idle; /* sentinel of the idle list */
    uint32_t nidle;
    uint64_t dry_at;             /* the last acquire that had to connect */
    bool resolved, resolving;
    uint64_t resolve_retry_at;   /* a name that did not resolve is not retried before this */
    uv_getaddrinfo_t *gai;       /* in flight */
    uint32_t gai_port;
    struct pr_pool_waiter {
        struct pr_client *client;
        const struct pr_upstream_handlers *h;
    } *waiters;                  /* owners waiting for the name to resolve */
    uint32_t nwaiters, cwaiters;
    struct pr_worker *w;
};

struct pr_pool *pr__pool_get(struct pr_worker *w, const struct pr_pod_info *pod);
enum { PR_POOL_CONNECTING = 0, PR_POOL_REUSED = 1, PR_POOL_WAIT = 2 };
/* A connection of pool p for owner c with handlers h: <0 error; PR_POOL_CONNECTING (*out
 * connects, h->ready or h->failed follows); PR_POOL_REUSED (*out is ready now, reading; the
 * caller goes on); PR_POOL_WAIT (the name resolves; h->resolved follows, *out NULL). */
int pr__pool_acquire(struct pr_pool *p, struct pr_client *c, const struct pr_upstream_handlers *h,
                     struct pr_upstream **out);
void pr__upstream_queues_init(struct pr_worker *w, const struct pr_config *cfg);
void pr__upstream_release(struct pr_upstream *u, bool reusable);
void pr__upstream_close(struct pr_upstream *u);
int pr__upstream_send(struct pr_upstream *u, const char *data, size_t len);
/* Whether bytes of u wait for the socket, after its batched bytes were handed to it (as
 * pr__client_writing). */
bool pr__upstream_writing(struct pr_upstream *u);
/* Two pieces in one system call (a request head and the body bytes that came with it). */
int pr__upstream_send2(struct pr_upstream *u, const char *a, size_t alen, const char *b,
                       size_t blen);
void pr__upstream_start_read(struct pr_upstream *u);
void pr__upstream_stop_read(struct pr_upstream *u);
void pr__pools_close_idle(struct pr_worker *w);
extern const char pr__upstream_tag; /* uv_tcp_t.data of every upstream connection */
void pr__upstream_close_handle(uv_handle_t *h);
void pr__pools_destroy(struct pr_worker *w);

#endif
