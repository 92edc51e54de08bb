/* client.c (L1): the client transport (socket, input buffer, read pausing, send queue,
 * timers). It calls the layer above only through the connection's handler table (c->h);
 * the request exchange, the admin connection and the tunnel each own one. */
#ifndef PODROUTER_CLIENT_H
#define PODROUTER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "podrouter/common.h"
#include "podrouter/config.h"
#include "tq.h"

#define PR_CLIENT_IN_MAX (64 * 1024) /* unconsumed client bytes kept before reading pauses */
#define PR_CLIENT_LINGER_MS 2000     /* at most this long after our FIN (pr__client_linger) */
/* An idle tunnel is a pr_client + a pr_upstream (each a 248-B uv_tcp_t plus fields) + the
 * malloc headers (8 B each) + the store entry its room or sid created (~190-230 B: atable.c)
 * + libuv's watcher slot per fd (8-16 B). 344 + 328 + 16 + 230 + 32 = 950 B leaves ~70 B of
 * the 1 KiB budget (issue 11) for what the first tunnels cost once (pools, tables), amortised
 * at 5,000 tunnels. A field more needs a field less: 344 is 344 + 8 = 352, a 16-B multiple,
 * the malloc chunk; 352 would make it a 368-B chunk. */
#define PR_CLIENT_SIZE_MAX 344

struct pr_client;
struct pr_exchange;
struct pr_upstream;
struct pr_worker;

/* Upward calls of a client connection; the tunnel swaps the table at the 101. */
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

/* For handler tables of connections past their exchange (a tunnel, a closing or lingering
 * client): an event they ignore, bytes they drop. */
static inline void pr__client_ignore(struct pr_client *c)
{
    (void)c;
}

static inline size_t pr__client_discard(struct pr_client *c, const char *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

enum pr_client_state {
    PR_C_IDLE = 0,  /* keep-alive, waiting for the first byte */
    PR_C_HEAD,      /* reading the request head */
    PR_C_ROUTING,   /* head complete, choosing a pod (store may be async) */
    PR_C_PROXYING,  /* request forwarded, response streaming */
    PR_C_LOCAL,     /* writing a locally generated response */
    PR_C_CLOSING,   /* (a tunnel has no state: its handler tables replace the exchange's) */
};

/* Client bytes read but not consumed yet (pipelining, bytes behind a head being routed):
 * allocated only while some wait, so an idle connection or tunnel carries a pointer. */
struct pr_client_in {
    struct pr_buf b;
    uint32_t off; /* consumed up to here */
};

/* Timer queue of the client's state (pr__client_queue), as a 2-bit code. */
enum { PR_CQ_NONE = 0, PR_CQ_HEADER, PR_CQ_IDLE, PR_CQ_TUNNEL };

/* An idle tunnel keeps one of these per client connection, so its size is budgeted (issue 11:
 * an idle tunnel <= 1 KiB of user space): PR_CLIENT_SIZE_MAX, checked at compile time in
 * client.c. Every open client's tcp.data is &pr__client_tag: the worker finds them with
 * uv_walk (drain, stop). */
struct pr_client {
    uv_tcp_t tcp;
    struct pr_worker *w;
    const struct pr_client_handlers *h;
    struct pr_tq_node tq;
    struct pr_exchange *x;
    struct pr_upstream *up;    /* request in flight / tunnel peer */
    struct pr_client_in *in;   /* NULL: nothing waits */
    uint64_t room_hash;        /* a tunnel's room (pr_store_key_hash), 0 none: touched as active */
    uint16_t store_refs;       /* store callbacks still to come */
    uint8_t state;             /* enum pr_client_state */
    uint8_t peer_family;       /* AF_INET / AF_INET6, 0 unknown */
    uint8_t peer_addr[16];     /* read once at accept: X-Forwarded-For, loopback check */
    unsigned tq_home : 2;      /* PR_CQ_*: the queue tq belongs to when the send timeout does not own it */
    bool admin : 1, closing : 1, reading : 1, writing : 1, close_after_write : 1;
    bool peer_loopback : 1;
    bool feeding : 1, in_full : 1; /* feeding: inside the input loop; in_full: reading paused */
    bool tq_send : 1;              /* tq is in q_send (bytes queued for the client) */
    bool handle_closed : 1;
};

extern const char pr__client_tag; /* uv_tcp_t.data of every client connection */

/* Bytes read from c and not consumed yet. */
static inline uint32_t pr__client_waiting(const struct pr_client *c)
{
    return c->in ? c->in->b.len - c->in->off : 0;
}

struct pr_client *pr__client_accept(uv_stream_t *server, const struct pr_client_handlers *h,
                                    bool admin);
struct pr_client *pr__client_open(struct pr_worker *w, uv_os_sock_t fd,
                                  const struct pr_client_handlers *h);
void pr__client_reject(uv_stream_t *server);
void pr__client_close(struct pr_client *c);
/* Close c once its answer is sent, by choice (Connection: close, an error answer, a tunnel
 * whose pod left): send a FIN after the answer, then read and drop what c still sends until
 * it closes or PR_CLIENT_LINGER_MS pass, so that our close never resets the connection and
 * destroys the answer in the client's buffer (RFC 9112 §9.6). Bytes still to be written:
 * a plain close. */
void pr__client_linger(struct pr_client *c);
void pr__client_start_read(struct pr_client *c);
void pr__client_stop_read(struct pr_client *c);
int pr__client_send(struct pr_client *c, const char *data, size_t len);
/* Whether bytes of c wait for the socket (c->writing), after its batched bytes were handed
 * to it: what a decision to close or linger must ask, not c->writing alone. */
bool pr__client_writing(struct pr_client *c);
int pr__client_send2(struct pr_client *c, const char *a, size_t alen, const char *b, size_t blen);
void pr__client_drive(struct pr_client *c);
void pr__client_arm_send(struct pr_client *c);
void pr__client_queue(struct pr_client *c, struct pr_tq *q);
void pr__client_hold(struct pr_client *c);
bool pr__client_unhold(struct pr_client *c);
void pr__client_drain(struct pr_worker *w);
/* true when w has an open public (non-admin) client connection. */
bool pr__client_any_public(struct pr_worker *w);
/* Close every client connection of w (the worker stops). */
void pr__client_close_all(struct pr_worker *w);
/* Free c's input buffer when nothing waits in it (a connection becomes an idle tunnel). */
void pr__client_in_release(struct pr_client *c);
void pr__client_queues_init(struct pr_worker *w, const struct pr_config *cfg);
void pr__peer_ip(const struct pr_client *c, char *out, size_t outlen);
bool pr__peer_is_loopback(const struct pr_client *c);

#endif
