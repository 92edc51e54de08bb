/* WebSocket relay after 101: bytes both ways, no re-framing, idle timeout, backpressure.
 * When one side closes, what is already queued for the other is delivered first (SPEC 3.5).
 * At the 101 the tunnel swaps the handler tables of both connections for its own, so the
 * exchange (exchange.c, proxy.c) and the transports never test for a tunnel. */
#include "tunnel.h"

#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "exchange.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"
#include "respond.h"
#include "tq.h"
#include "upstream.h"
#include "worker.h"

static const struct pr_client_handlers tunnel_client, closing_client;
static const struct pr_upstream_handlers tunnel_upstream, linger_upstream;

/* Activity on a tunnel: its idle timeout restarts and its room is marked active (SPEC 5:
 * a tunnel byte keeps a room active; the store's per-loop stamp cache makes repeats cost a
 * probe, no lock). */
static void tunnel_touch(struct pr_client *c)
{
    struct pr_worker *w = c->w;
    if (c->room_hash)
        w->store->ops->touch_hash(w->store, PR_KEY_ROOM, c->room_hash);
    pr__client_queue(c, &w->q_tunnel);
}

/* Switch the client and its upstream to relay mode. The 101 head and the bytes the pod sent
 * after it were written to the client already; the exchange is recycled here, so an idle
 * tunnel keeps only the two sockets. */
void pr__tunnel_start(struct pr_client *c)
{
    struct pr_worker *w = c->w;
    struct pr_upstream *u = c->up;
    pr__tq_remove(&u->tq);
    u->h = &tunnel_upstream;
    c->h = &tunnel_client;
    PR_CNT_INC(w->m->conns[PR_CONN_WEBSOCKET]);
    pr_metrics_pod_tunnel(w->m, u->pool->slot, u->pool->gen);
    c->room_hash = c->x->aff.room_len
                       ? pr_store_key_hash(PR_KEY_ROOM, c->x->aff.room, c->x->aff.room_len)
                       : 0;
    if (c->room_hash)
        w->store->ops->touch_hash(w->store, PR_KEY_ROOM, c->room_hash);
    pr__access_log(c);
    pr__exchange_release(w, c->x);
    c->x = NULL;
    tunnel_touch(c);
    pr__client_drive(c); /* bytes the client sent right after its upgrade request */
    if (c->closing || c->up != u)
        return;
    pr__client_in_release(c); /* an idle tunnel keeps no input buffer */
    if (!u->writing)
        pr__client_start_read(c);
    if (!c->writing)
        pr__upstream_start_read(u);
    else
        pr__upstream_stop_read(u);
}

/* ---- client side ---- */

static size_t from_client(struct pr_client *c, const char *data, size_t len)
{
    struct pr_upstream *u = c->up;
    if (!u) {
        pr__client_close(c);
        return len;
    }
    tunnel_touch(c);
    PR_CNT_ADD(c->w->m->bytes_to_pod, len);
    int rc = pr__upstream_send(u, data, len);
    if (rc < 0) {
        pr__client_close(c);
    } else if (rc == 1) {
        pr__client_stop_read(c); /* resumes when the pod side drains */
        /* The pod must take them within the send timeout. */
        pr__tq_push(&c->w->q_linger, &u->tq, pr__now(c->w));
    }
    return len;
}

/* The client took everything: read the pod again. */
static void client_drained(struct pr_client *c)
{
    if (c->up)
        pr__upstream_start_read(c->up);
}

/* The client's connection closes (it hung up, timed out, or the worker stops): its last
 * bytes still reach the pod, then the pod connection closes (bounded by the send timeout). */
static void client_gone(struct pr_client *c)
{
    struct pr_upstream *u = c->up;
    PR_CNT_DEC(c->w->m->conns[PR_CONN_WEBSOCKET]);
    c->up = NULL;
    if (!u)
        return;
    u->client = NULL;
    if (!pr__upstream_writing(u)) {
        pr__upstream_close(u);
        return;
    }
    u->h = &linger_upstream;
    pr__upstream_stop_read(u);
    pr__tq_push(&u->pool->w->q_linger, &u->tq, pr__now(u->pool->w));
}

static const struct pr_client_handlers tunnel_client = {
    .on_head = pr__client_ignore,
    .on_data = from_client,
    .on_drained = client_drained,
    .on_gone = client_gone,
    .on_timeout = pr__client_close,
    .on_room = pr__client_ignore,
    .on_drain = pr__client_ignore, /* a tunnel ends when the worker stops */
};

/* The pod left: the client gets what is queued for it, then its connection closes. */
static const struct pr_client_handlers closing_client = {
    .on_head = pr__client_ignore,
    .on_data = pr__client_discard,
    .on_drained = pr__client_linger,
    .on_gone = pr__client_ignore,
    .on_timeout = pr__client_close,
    .on_room = pr__client_ignore,
    .on_drain = pr__client_ignore,
};

/* ---- pod side ---- */

static void from_upstream(struct pr_upstream *u, const char *data, size_t len)
{
    struct pr_client *c = u->client;
    tunnel_touch(c);
    PR_CNT_ADD(c->w->m->bytes_to_client, len);
    int rc = pr__client_send(c, data, len);
    if (rc < 0)
        pr__client_close(c);
    else if (rc == 1)
        pr__upstream_stop_read(u);
}

/* The pod closed: the client gets what is queued for it, then its connection closes. */
static void upstream_eof(struct pr_upstream *u, int err)
{
    (void)err;
    struct pr_client *c = u->client;
    u->client = NULL;
    pr__upstream_close(u);
    if (!c)
        return;
    c->up = NULL;
    if (!pr__client_writing(c)) {
        pr__client_close(c);
        return;
    }
    PR_CNT_DEC(c->w->m->conns[PR_CONN_WEBSOCKET]);
    c->h = &closing_client;
    pr__client_queue(c, NULL);
    pr__client_stop_read(c);
}

/* The pod took everything: no send timeout now; read the client again. */
static void upstream_drained(struct pr_upstream *u)
{
    struct pr_client *c = u->client;
    pr__tq_remove(&u->tq);
    if (!c || c->closing)
        return;
    pr__client_drive(c);
    pr__client_start_read(c);
}

/* The pod took none of its queued bytes for --send-timeout: both sides close. */
static void upstream_timeout(struct pr_upstream *u)
{
    struct pr_client *c = u->client;
    if (c) {
        c->up = NULL;
        u->client = NULL;
    }
    pr__upstream_close(u);
    if (c)
        pr__client_close(c);
}

static void upstream_unused_ready(struct pr_client *c, struct pr_upstream *u)
{
    (void)c;
    (void)u;
}

static void upstream_unused_failed(struct pr_client *c, struct pr_upstream *u, int err)
{
    (void)c;
    (void)u;
    (void)err;
}

static void upstream_unused_resolved(struct pr_client *c, struct pr_pool *p)
{
    (void)c;
    (void)p;
}

static const struct pr_upstream_handlers tunnel_upstream = {
    .ready = upstream_unused_ready,
    .failed = upstream_unused_failed,
    .data = from_upstream,
    .eof = upstream_eof,
    .drained = upstream_drained,
    .timeout = upstream_timeout,
    .resolved = upstream_unused_resolved,
};

/* A pod connection whose client left while bytes for the pod were queued: deliver them,
 * then close (or close when the send timeout passes first). */
static void linger_eof(struct pr_upstream *u, int err)
{
    (void)err;
    pr__upstream_close(u);
}

static void linger_data(struct pr_upstream *u, const char *data, size_t len)
{
    (void)data;
    (void)len;
    pr__upstream_close(u);
}

static const struct pr_upstream_handlers linger_upstream = {
    .ready = upstream_unused_ready,
    .failed = upstream_unused_failed,
    .data = linger_data,
    .eof = linger_eof,
    .drained = pr__upstream_close,
    .timeout = pr__upstream_close,
    .resolved = upstream_unused_resolved,
};
