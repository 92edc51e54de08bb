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

enum pr_client_state {
    PR_C_IDLE = 0,  /* keep-alive, waiting for the first byte */
    PR_C_HEAD,      /* reading the request head */
    PR_C_ROUTING,   /* head complete, choosing a pod (store may be async) */
    PR_C_PROXYING,  /* request forwarded, response streaming */
    PR_C_LOCAL,     /* writing a locally generated response */
    PR_C_CLOSING,   /* (a tunnel has no state: its handler tables replace the exchange's) */
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
    struct pr_buf in;       /* bytes read but not consumed yet (pipelining, early body) */
    uint32_t in_off;        /* consumed up to here */
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

#endif
