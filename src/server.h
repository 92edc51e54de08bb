/* Internals shared by the event-loop modules (loop, client, exchange, respond, admin_conn,
 * hdr, proxy, upstream, tunnel).
 * Ownership rules are in docs/internals.md. */
#ifndef PODROUTER_SERVER_INTERNAL_H
#define PODROUTER_SERVER_INTERNAL_H

#include <llhttp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "podrouter/affinity.h"
#include "podrouter/chunked.h"
#include "podrouter/common.h"
#include "podrouter/config.h"
#include "podrouter/http_head.h"
#include "podrouter/metrics.h"
#include "podrouter/policy.h"
#include "podrouter/ratelimit.h"
#include "podrouter/registry.h"
#include "route.h"

#define pr__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define PR_READ_BUF 65536
#define PR_RESP_HEAD_MAX 65536
#define PR_POOL_IDLE_MS 3000 /* below Node's 5 s keepAliveTimeout: no reuse races */
#define PR_POOL_MAX_IDLE 64  /* idle upstream connections kept per pod per thread */
#define PR_EXCHANGE_FREELIST 32
#define PR_CLIENT_IN_MAX (64 * 1024) /* unconsumed client bytes kept before reading pauses */
#define PR_REPLAY_MAX (64 * 1024)    /* request bodies kept for a stale-connection retry */
#define PR_MAX_INTERIM 16            /* 1xx heads accepted before a final response */

/* ---- timeout queues: all members share one timeout, so the list stays sorted ---- */
struct pr_tq_node {
    struct pr_tq_node *prev, *next;
    uint64_t deadline;
};
struct pr_tq {
    struct pr_tq_node head;
    uint64_t timeout_ms;
    void (*expire)(struct pr_tq_node *n);
};
void pr__tq_init(struct pr_tq *q, uint64_t timeout_ms, void (*expire)(struct pr_tq_node *));
void pr__tq_push(struct pr_tq *q, struct pr_tq_node *n, uint64_t now);
void pr__tq_remove(struct pr_tq_node *n);
void pr__tq_sweep(struct pr_tq *q, uint64_t now);

/* ---- pending write with its own copy of the bytes (only when the socket is full) ---- */
struct pr_wreq {
    uv_write_t req;
    void *owner;
    size_t len;
    char data[];
};

struct pr_pool;
struct pr_client;
struct pr_upstream;

/* Upward calls of a client connection. The transport (client.c: socket, input buffer,
 * read pausing, send queue, timers) calls the layer above only through the table of the
 * connection (c->h); the request exchange, the admin connection and the tunnel each own one
 * and the tunnel swaps it at the 101. */
struct pr_client_handlers {
    void (*on_head)(struct pr_client *c); /* a request head passed its checks (exchange) */
    /* Bytes read (or waiting in c->in); returns how many were taken, 0 = none now. */
    size_t (*on_data)(struct pr_client *c, const char *data, size_t len);
    void (*on_drained)(struct pr_client *c); /* everything queued for the client was sent */
    void (*on_gone)(struct pr_client *c);    /* the connection closes: drop what it owns */
    void (*on_timeout)(struct pr_client *c); /* its header / idle / tunnel timer expired */
    void (*on_room)(struct pr_client *c);    /* the full input buffer has room again */
    void (*on_drain)(struct pr_client *c);   /* SIGTERM drain of the worker */
};

/* Upward calls of a pod connection (upstream.c owns socket, pools, connect and pool timers).
 * `client` is the owner's pointer, passed back and never looked into by upstream.c. */
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

struct pr_server;

/* One event-loop thread. */
struct pr_worker {
    uv_loop_t loop;
    struct pr_server *srv; /* the process-wide state, passed to the modules through here */
    int id;
    uv_thread_t thread;
    uv_tcp_t listener;
    uv_tcp_t admin_listener;
    bool has_listener, has_admin;
    uv_timer_t tick;
    uv_async_t wake;
    struct pr_tq q_header;   /* clients waiting for a complete head */
    struct pr_tq q_idle;     /* idle keep-alive clients */
    struct pr_tq q_tunnel;   /* websocket tunnels */
    struct pr_tq q_connect;  /* upstream connects */
    struct pr_tq q_wait;     /* upstream exchanges in flight */
    struct pr_tq q_pool;     /* idle pooled upstream connections */
    struct pr_tq q_send;     /* clients with queued bytes they do not take */
    struct pr_tq q_linger;   /* pod connections of closed tunnels, flushing their last bytes */
    struct pr_store *store;
    struct pr_metrics *m;
    struct pr_pool **pools;
    size_t npools;
    struct pr_exchange *free_exchanges;
    size_t nfree_exchanges;
    uint32_t free_low;  /* fewest pooled exchanges since the last memory tick */
    uint64_t mem_last;  /* last memory tick */
    struct pr_policy_pod *policy_pods; /* scratch for new assignments */
    struct pr_pod_info *pod_infos;
    struct pr_client *clients; /* every open client connection (for drain) */
    bool draining, stopping;
    uint64_t drain_deadline;
    char readbuf[PR_READ_BUF];
};

/* Process-wide state, read-only after start-up except the atomics. */
struct pr_server {
    struct pr_config cfg;
    struct pr_registry *reg;
    struct pr_worker **workers;
    uint32_t nworkers;
    uint8_t secret[32];
    char *token;
    size_t token_len;
    struct pr_affinity_config aff;
    atomic_bool draining;
    atomic_uint_fast32_t nclients;
    atomic_uint_fast64_t request_seq;
    atomic_uint stopped_workers;
    uint64_t start_ms;
    bool ipv6_admin;
    struct pr_ratelimit *rl; /* --key-rate buckets (NULL: disabled) */
};
extern struct pr_server pr__srv;

enum pr_client_state {
    PR_C_IDLE = 0,  /* keep-alive, waiting for the first byte */
    PR_C_HEAD,      /* reading the request head */
    PR_C_ROUTING,   /* head complete, choosing a pod (store may be async) */
    PR_C_PROXYING,  /* request forwarded, response streaming */
    PR_C_LOCAL,     /* writing a locally generated response */
    PR_C_CLOSING,   /* (a tunnel has no state: its handler tables replace the exchange's) */
};

/* Header slices of one message head, as offsets into the buffer that holds the head. A
 * request and its response each have their own table; trailers are never recorded. */
struct pr_hdr_tab {
    uint32_t n;
    bool in_value, done; /* done: the head is complete, later fields are trailers */
    uint32_t name_off[PR_MAX_HEADERS], name_len[PR_MAX_HEADERS];
    uint32_t val_off[PR_MAX_HEADERS], val_len[PR_MAX_HEADERS];
};

/* Everything one request/response needs; pooled per worker, absent between requests. */
struct pr_exchange {
    struct pr_exchange *next_free;
    llhttp_t req_parser;
    llhttp_t resp_parser;
    char *head;       /* raw request head bytes (exactly the head: body bytes stay in c->in) */
    uint32_t head_len, head_cap, head_end; /* head_end: offset just past the blank line */
    const char *feed_ptr; /* request bytes being parsed: slices are feed_off + (at - feed_ptr) */
    uint32_t feed_off;
    uint32_t url_off, url_len;
    struct pr_hdr_tab req_hdrs;
    struct pr_hdr_tab resp_hdrs;
    struct pr_header headers[PR_MAX_HEADERS];
    struct pr_request_head rh;
    struct pr_affinity aff;
    char *out;        /* rewritten request head for the pod */
    uint32_t out_len, out_cap;
    char *resp;       /* raw response head bytes */
    uint32_t resp_len, resp_cap;
    char *replay;     /* a small request body kept until the pod answers (stale retry); after
                       * that, a handshake's response bytes held until its sid pin is stored */
    uint32_t replay_len, replay_cap;
    uint64_t req_content_length; /* from the parser at head completion */
    uint8_t interim;             /* 1xx heads seen */
    bool line_checked;           /* the request line passed request_line_check */
    struct pr_chunked req_chunk, resp_chunk; /* strict chunk framing of relayed bodies */
    /* request facts */
    bool req_keepalive, req_upgrade, req_complete, is_head, req_chunked, req_has_body;
    bool http10, dechunk, replayable;
    bool resp_started, resp_complete, resp_head_done, sniffing, retried, set_cookie;
    bool resp_garbage; /* the pod sent bytes after its response: never reuse the connection */
    bool pin_wait;     /* the sid pin was sent to the store, no answer yet */
    bool pin_held;     /* response bytes wait in replay until the pin is stored */
    uint8_t key_kind, outcome;
    char pod[PR_POD_NAME_MAX + 1];
    struct pr_route_req route; /* routing state (route.c) */
    char request_id[129]; /* the client's X-Request-Id (1..128 printable) or ours */
    bool rid_from_client;
    int status;
    uint64_t start_ns;
    struct pr_sid_sniffer sniffer;
    /* admin body */
    char *body;
    uint32_t body_len;
};

struct pr_client {
    uv_tcp_t tcp;
    struct pr_worker *w;
    const struct pr_client_handlers *h;
    struct pr_tq_node tq;
    struct pr_tq *tq_home;  /* the queue tq belongs to when the send timeout does not own it */
    struct pr_client *prev, *next; /* worker->clients */
    struct pr_exchange *x;
    struct pr_upstream *up; /* request in flight / tunnel peer */
    char *in;               /* bytes read but not consumed yet (pipelining, early body) */
    uint32_t in_off, in_len, in_cap;
    uint8_t state;
    bool admin, closing, reading, writing, close_after_write, peer_loopback;
    bool feeding, in_full;  /* feeding: inside the input loop; in_full: reading paused */
    bool tq_send;           /* tq is in q_send (bytes queued for the client) */
    uint64_t room_hash;     /* a tunnel's room (pr_store_key_hash), 0 none: touched as active */
    uint16_t store_refs; /* store callbacks still to come */
    uint8_t peer_family;   /* AF_INET / AF_INET6, 0 unknown */
    uint8_t peer_addr[16]; /* read once at accept: X-Forwarded-For, loopback check */
    bool handle_closed;
};

enum pr_upstream_state {
    PR_U_CONNECTING = 0,
    PR_U_ACTIVE,
    PR_U_IDLE,
    PR_U_CLOSING,
};

struct pr_upstream {
    uv_tcp_t tcp;
    union {
        uv_connect_t *connect_req; /* while connecting (heap: idle tunnels stay small) */
        struct {
            struct pr_upstream *prev, *next; /* pool idle list */
        } idle;
    } u;
    struct pr_worker *w;
    struct pr_pool *pool;
    struct pr_client *client; /* owner (opaque to upstream.c), NULL when none */
    const struct pr_upstream_handlers *h;
    struct pr_tq_node tq;
    uint8_t state;
    bool reading, writing, reused, got_bytes, counted;
    uint32_t cslot, cgen; /* registry slot/generation the connection is counted against */
    uint64_t connect_start_ns;
};

struct pr_pool {
    char name[PR_POD_NAME_MAX + 1];
    char address[PR_ADDRESS_MAX + 1];
    struct sockaddr_storage addr;
    uint32_t slot, gen;
    struct pr_upstream idle; /* sentinel of the idle list */
    uint32_t nidle;
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

/* tq.c (L0): timeout queues above, the loop clock, the worker's read buffer */
uint64_t pr__now(struct pr_worker *w);
void pr__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* loop.c (L3): threads, listeners, drain */
void pr__memory_tick(struct pr_worker *w, uint64_t now);

/* client.c: the client transport */
struct pr_client *pr__client_accept(uv_stream_t *server, const struct pr_client_handlers *h,
                                    bool admin);
struct pr_client *pr__client_open(struct pr_worker *w, uv_os_sock_t fd,
                                  const struct pr_client_handlers *h);
void pr__client_reject(uv_stream_t *server);
void pr__client_close(struct pr_client *c);
void pr__client_start_read(struct pr_client *c);
void pr__client_stop_read(struct pr_client *c);
int pr__client_send(struct pr_client *c, const char *data, size_t len);
int pr__client_send2(struct pr_client *c, const char *a, size_t alen, const char *b, size_t blen);
void pr__client_drive(struct pr_client *c);
void pr__client_arm_send(struct pr_client *c);
void pr__client_queue(struct pr_client *c, struct pr_tq *q);
void pr__client_hold(struct pr_client *c);
bool pr__client_unhold(struct pr_client *c);
void pr__client_drain(struct pr_worker *w);
void pr__client_queues_init(struct pr_worker *w, const struct pr_config *cfg);
void pr__peer_ip(const struct pr_client *c, char *out, size_t outlen);
bool pr__peer_is_loopback(const struct pr_client *c);
/* stream.c (L0): write helper shared by both sides: 0 sent now, 1 queued (caller pauses its source), <0 */
int pr__stream_send(uv_stream_t *s, void *owner, const char *data, size_t len, uv_write_cb cb);
/* Same for two pieces sent as one writev (a response head and the first body bytes). */
int pr__stream_send2(uv_stream_t *s, void *owner, const char *a, size_t alen, const char *b,
                     size_t blen, uv_write_cb cb);

/* hdr.c: the llhttp header collector of request and response heads */
int pr__hdr_field(struct pr_hdr_tab *t, uint32_t off, size_t len);
int pr__hdr_value(struct pr_hdr_tab *t, uint32_t off, size_t len);
int pr__trailer_bytes_ok(const char *at, size_t len, bool name);
/* llhttp on_header_field / on_header_value: the slice at..at+len, found at offset off of
 * the head's buffer, is recorded until the head is complete, syntax-checked after. */
int pr__hdr_on_field(struct pr_hdr_tab *t, uint32_t off, const char *at, size_t len);
int pr__hdr_on_value(struct pr_hdr_tab *t, uint32_t off, const char *at, size_t len);
/* The recorded fields as pr_header slices of base. */
void pr__hdr_export(const struct pr_hdr_tab *t, const char *base, struct pr_header *out);

/* exchange.c: the request exchange */
void pr__on_connection(uv_stream_t *server, int status);
void pr__exchange_settings_init(void);
size_t pr__exchange_consume(struct pr_client *c, const char *data, size_t len);
void pr__exchange_parse_error(struct pr_client *c, llhttp_errno_t err);
void pr__exchange_on_drained(struct pr_client *c);
void pr__exchange_on_gone(struct pr_client *c);
void pr__exchange_on_timeout(struct pr_client *c);
void pr__exchange_on_room(struct pr_client *c);
extern const struct pr_client_handlers pr__http_client_handlers;
/* The exchange's pod-connection table: defined in exchange.c, with the client table, so
 * that its entries are link-time references (the fuzz harness wraps
 * pr__proxy_upstream_ready). */
extern const struct pr_upstream_handlers pr__proxy_upstream_handlers;

/* respond.c: exchange pool and end of a request, client address, local answers */
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

/* admin_conn.c: the admin connection */
void pr__on_admin_connection(uv_stream_t *server, int status);
extern const struct pr_client_handlers pr__admin_client_handlers;

/* proxy.c */
void pr__proxy_route(struct pr_client *c);
void pr__proxy_upstream_ready(struct pr_client *c, struct pr_upstream *u);
void pr__proxy_upstream_failed(struct pr_client *c, struct pr_upstream *u, int err);
void pr__proxy_on_upstream_data(struct pr_upstream *u, const char *data, size_t len);
void pr__proxy_on_upstream_eof(struct pr_upstream *u, int err);
size_t pr__proxy_client_body(struct pr_client *c, const char *data, size_t len);
void pr__proxy_upstream_timeout(struct pr_upstream *u);
void pr__proxy_client_gone(struct pr_client *c);
void pr__proxy_upstream_drained(struct pr_upstream *u);
void pr__proxy_client_drained(struct pr_client *c);

int pr__upstream_acquire(struct pr_worker *w, struct pr_pool *p, struct pr_client *c);
void pr__proxy_pool_resolved(struct pr_client *c, struct pr_pool *p);

/* upstream.c */
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
void pr__upstream_start_read(struct pr_upstream *u);
void pr__upstream_stop_read(struct pr_upstream *u);
void pr__pools_close_idle(struct pr_worker *w);
extern const char pr__upstream_tag; /* uv_tcp_t.data of every upstream connection */
void pr__upstream_close_handle(uv_handle_t *h);
void pr__pools_destroy(struct pr_worker *w);

/* tunnel.c: swaps the client's and the upstream's handler tables for its own */
void pr__tunnel_start(struct pr_client *c);

#endif
