/* WebSocket relay after 101: bytes both ways, no re-framing, idle timeout, backpressure. */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#include "podrouter/registry.h"

void pr__tunnel_touch(struct pr_client *c)
{
    pr__tq_push(&c->w->q_tunnel, &c->tq, pr__now(c->w));
}

/* Switch the client and its upstream to relay mode; rest is what the pod sent after its
 * 101 head. The exchange is recycled: an idle tunnel keeps only the two sockets. */
void pr__tunnel_start(struct pr_client *c, const char *rest, size_t rest_len)
{
    struct pr_worker *w = c->w;
    struct pr_upstream *u = c->up;
    pr__tq_remove(&u->tq);
    u->state = PR_U_TUNNEL;
    c->state = PR_C_TUNNEL;
    w->m->conns[PR_CONN_WEBSOCKET]++;
    pr_metrics_pod_tunnel(w->m, u->pool->slot, u->pool->gen);
    char *pending = c->pending;
    uint32_t pending_len = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    pr__access_log(c);
    pr__exchange_release(w, c->x);
    c->x = NULL;
    pr__tunnel_touch(c);
    if (rest_len)
        pr__tunnel_from_upstream(u, rest, rest_len);
    if (pending_len && !c->closing)
        pr__tunnel_from_client(c, pending, pending_len);
    free(pending);
    if (c->closing)
        return;
    if (!u->writing)
        pr__client_start_read(c);
    if (!c->writing)
        pr__upstream_start_read(u);
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
    if (rc < 0)
        pr__client_close(c);
    else if (rc == 1)
        pr__client_stop_read(c); /* resumes when the pod side drains */
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
