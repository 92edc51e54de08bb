/* WebSocket relay after 101: bytes both ways, no re-framing, idle timeout, backpressure.
 * When one side closes, what is already queued for the other is delivered first (SPEC 3.5). */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#include "podrouter/registry.h"
#include "podrouter/store.h"

/* Activity on a tunnel: its idle timeout restarts and its room is marked active (SPEC 5:
 * a tunnel byte keeps a room active; the store's per-loop stamp cache makes repeats cost a
 * probe, no lock). */
void pr__tunnel_touch(struct pr_client *c)
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
    u->state = PR_U_TUNNEL;
    c->state = PR_C_TUNNEL;
    w->m->conns[PR_CONN_WEBSOCKET]++;
    pr_metrics_pod_tunnel(w->m, u->pool->slot, u->pool->gen);
    c->room_hash = c->x->aff.room_len
                       ? pr_store_key_hash(PR_KEY_ROOM, c->x->aff.room, c->x->aff.room_len)
                       : 0;
    if (c->room_hash)
        w->store->ops->touch_hash(w->store, PR_KEY_ROOM, c->room_hash);
    pr__access_log(c);
    pr__exchange_release(w, c->x);
    c->x = NULL;
    pr__tunnel_touch(c);
    pr__client_drive(c); /* bytes the client sent right after its upgrade request */
    if (c->closing || c->up != u)
        return;
    if (!u->writing)
        pr__client_start_read(c);
    if (!c->writing)
        pr__upstream_start_read(u);
    else
        pr__upstream_stop_read(u);
}

void pr__tunnel_from_client(struct pr_client *c, const char *data, size_t len)
{
    struct pr_upstream *u = c->up;
    if (!u) {
        pr__client_close(c);
        return;
    }
    pr__tunnel_touch(c);
    c->w->m->bytes_to_pod += len;
    int rc = pr__upstream_send(u, data, len);
    if (rc < 0) {
        pr__client_close(c);
    } else if (rc == 1) {
        pr__client_stop_read(c); /* resumes when the pod side drains */
        /* The pod must take them within the send timeout. */
        pr__tq_push(&c->w->q_linger, &u->tq, pr__now(c->w));
    }
}

void pr__tunnel_from_upstream(struct pr_upstream *u, const char *data, size_t len)
{
    struct pr_client *c = u->client;
    if (!c) {
        pr__upstream_close(u);
        return;
    }
    pr__tunnel_touch(c);
    c->w->m->bytes_to_client += len;
    int rc = pr__client_send(c, data, len);
    if (rc < 0)
        pr__client_close(c);
    else if (rc == 1)
        pr__upstream_stop_read(u);
}

/* The client closed its side: its last bytes still reach the pod (see proxy_client_gone). */
void pr__tunnel_client_eof(struct pr_client *c)
{
    pr__client_close(c);
}

/* The pod closed: the client gets what is queued for it, then its connection closes. */
void pr__tunnel_upstream_eof(struct pr_upstream *u)
{
    struct pr_client *c = u->client;
    c->up = NULL;
    u->client = NULL;
    pr__upstream_close(u);
    if (!c->writing) {
        pr__client_close(c);
        return;
    }
    c->w->m->conns[PR_CONN_WEBSOCKET]--;
    c->state = PR_C_CLOSING;
    c->close_after_write = true;
    pr__client_stop_read(c);
}
