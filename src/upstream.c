/* Per-pod upstream connection pools: connect, keep-alive reuse, idle expiry. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/log.h"
#include "podrouter/registry.h"

static void upstream_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* "host:port" / "[v6]:port" -> sockaddr. IP literals and localhost resolve without I/O;
 * other names use getaddrinfo once per address change (pods register IPs in practice). */
static int resolve(const char *address, struct sockaddr_storage *ss)
{
    char host[PR_ADDRESS_MAX + 1];
    const char *colon = strrchr(address, ':');
    if (!colon)
        return -EINVAL;
    int port = atoi(colon + 1);
    size_t hl = (size_t)(colon - address);
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, address, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
    }
    if (strcmp(host, "localhost") == 0)
        return uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -EHOSTUNREACH;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static void idle_unlink(struct pr_upstream *u)
{
    if (!u->u.idle.next)
        return;
    u->u.idle.prev->u.idle.next = u->u.idle.next;
    u->u.idle.next->u.idle.prev = u->u.idle.prev;
    u->u.idle.prev = u->u.idle.next = NULL;
    u->pool->nidle--;
}

static void pool_drop_idle(struct pr_pool *p)
{
    while (p->idle.u.idle.next != &p->idle)
        pr__upstream_close(p->idle.u.idle.next);
}

struct pr_pool *pr__pool_get(struct pr_worker *w, const struct pr_pod_info *pod)
{
    struct pr_pool *p = NULL;
    for (size_t i = 0; i < w->npools; i++) {
        if (strcmp(w->pools[i]->name, pod->name) == 0) {
            p = w->pools[i];
            break;
        }
    }
    if (!p) {
        struct pr_pool **np = realloc(w->pools, (w->npools + 1) * sizeof(*np));
        if (!np)
            return NULL;
        w->pools = np;
        p = calloc(1, sizeof(*p));
        if (!p)
            return NULL;
        snprintf(p->name, sizeof(p->name), "%s", pod->name);
        p->idle.u.idle.prev = p->idle.u.idle.next = &p->idle;
        w->pools[w->npools++] = p;
    }
    if (!p->resolved || p->gen != pod->gen || strcmp(p->address, pod->address) != 0) {
        pool_drop_idle(p);
        snprintf(p->address, sizeof(p->address), "%s", pod->address);
        memset(&p->addr, 0, sizeof(p->addr));
        p->resolved = resolve(p->address, &p->addr) == 0;
        p->gen = pod->gen;
    }
    p->slot = pod->slot;
    return p;
}

static void upstream_close_cb(uv_handle_t *h)
{
    free(pr__container_of(h, struct pr_upstream, tcp));
}

static void count_pod_connection(struct pr_upstream *u, int delta)
{
    pr_registry_add_connections(pr__srv.reg, u->pool->slot, u->pool->gen, delta);
}

void pr__upstream_close(struct pr_upstream *u)
{
    if (u->state == PR_U_CLOSING || uv_is_closing((uv_handle_t *)&u->tcp))
        return;
    struct pr_worker *w = u->w;
    if (u->state == PR_U_IDLE)
        idle_unlink(u);
    if (u->counted) {
        count_pod_connection(u, -1);
        u->counted = false;
    }
    pr__tq_remove(&u->tq);
    u->state = PR_U_CLOSING;
    u->client = NULL;
    w->m->conns[PR_CONN_UPSTREAM]--;
    uv_close((uv_handle_t *)&u->tcp, upstream_close_cb);
}

void pr__upstream_start_read(struct pr_upstream *u)
{
    if (u->reading || u->state == PR_U_CLOSING || u->state == PR_U_CONNECTING)
        return;
    if (uv_read_start((uv_stream_t *)&u->tcp, pr__alloc_cb, upstream_read_cb) == 0)
        u->reading = true;
}

void pr__upstream_stop_read(struct pr_upstream *u)
{
    if (!u->reading)
        return;
    uv_read_stop((uv_stream_t *)&u->tcp);
    u->reading = false;
}

static void upstream_write_cb(uv_write_t *req, int status)
{
    struct pr_wreq *wr = pr__container_of(req, struct pr_wreq, req);
    struct pr_upstream *u = wr->owner;
    free(wr);
    if (u->state == PR_U_CLOSING)
        return;
    if (status < 0) {
        struct pr_client *c = u->client;
        if (c)
            pr__proxy_on_upstream_eof(u, status);
        else
            pr__upstream_close(u);
        return;
    }
    if (u->tcp.write_queue_size == 0) {
        u->writing = false;
        if (u->state == PR_U_TUNNEL && !u->close_when_drained)
            pr__tq_remove(&u->tq); /* the pod took everything: no send timeout now */
        pr__proxy_upstream_drained(u);
    }
}

/* A tunnel's client left while bytes for the pod were queued: deliver them, then close
 * (or close when the send timeout passes first). */
void pr__upstream_linger(struct pr_upstream *u)
{
    u->client = NULL;
    u->close_when_drained = true;
    pr__upstream_stop_read(u);
    pr__tq_push(&u->w->q_linger, &u->tq, pr__now(u->w));
}

int pr__upstream_send(struct pr_upstream *u, const char *data, size_t len)
{
    int rc = pr__stream_send((uv_stream_t *)&u->tcp, u, data, len, upstream_write_cb);
    if (rc == 1)
        u->writing = true;
    return rc;
}

static void upstream_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pr_upstream *u = pr__container_of(s, struct pr_upstream, tcp);
    if (nread == 0)
        return;
    if (u->state == PR_U_IDLE || !u->client) {
        /* The pod closed (or spoke on) an idle pooled connection: drop it. */
        pr__upstream_close(u);
        return;
    }
    if (nread < 0) {
        pr__proxy_on_upstream_eof(u, (int)nread);
        return;
    }
    u->got_bytes = true;
    if (u->state == PR_U_TUNNEL)
        pr__tunnel_from_upstream(u, buf->base, (size_t)nread);
    else
        pr__proxy_on_upstream_data(u, buf->base, (size_t)nread);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct pr_upstream *u = req->data;
    free(req);
    struct pr_worker *w = u->w;
    if (u->state == PR_U_CLOSING)
        return;
    pr__tq_remove(&u->tq);
    memset(&u->u, 0, sizeof(u->u));
    struct pr_client *c = u->client;
    if (status < 0) {
        u->client = NULL;
        pr__upstream_close(u);
        if (c)
            pr__proxy_upstream_failed(c, u, status);
        return;
    }
    pr_hist_observe(&w->m->connect_duration, (double)(uv_hrtime() - u->connect_start_ns) / 1e9);
    u->state = PR_U_ACTIVE;
    uv_tcp_nodelay(&u->tcp, 1);
    if (!c) {
        /* The client left while we connected: keep the connection for the next one. */
        pr__upstream_release(u, true);
        return;
    }
    pr__upstream_start_read(u);
    pr__proxy_upstream_ready(c, u);
}

int pr__upstream_acquire(struct pr_worker *w, struct pr_pool *p, struct pr_client *c)
{
    if (!p->resolved)
        return UV_EHOSTUNREACH;
    struct pr_upstream *u = p->idle.u.idle.prev; /* most recently used */
    if (u != &p->idle) {
        idle_unlink(u);
        pr__tq_remove(&u->tq);
        u->state = PR_U_ACTIVE;
        u->client = c;
        u->reused = true;
        u->got_bytes = false;
        c->up = u;
        count_pod_connection(u, 1);
        u->counted = true;
        pr__upstream_start_read(u);
        pr__proxy_upstream_ready(c, u);
        return 0;
    }
    u = calloc(1, sizeof(*u));
    if (!u)
        return UV_ENOMEM;
    int rc = uv_tcp_init(&w->loop, &u->tcp);
    if (rc) {
        free(u);
        return rc;
    }
    u->w = w;
    u->pool = p;
    u->client = c;
    u->state = PR_U_CONNECTING;
    u->connect_start_ns = uv_hrtime();
    w->m->conns[PR_CONN_UPSTREAM]++;
    uv_connect_t *req = malloc(sizeof(*req));
    rc = req ? uv_tcp_connect(req, &u->tcp, (struct sockaddr *)&p->addr, connect_cb) : UV_ENOMEM;
    if (req)
        req->data = u;
    if (rc) {
        free(req);
        u->client = NULL;
        u->state = PR_U_ACTIVE;
        pr__upstream_close(u);
        return rc;
    }
    u->u.connect_req = req;
    c->up = u;
    count_pod_connection(u, 1);
    u->counted = true;
    pr__tq_push(&w->q_connect, &u->tq, pr__now(w));
    return 0;
}

void pr__upstream_release(struct pr_upstream *u, bool reusable)
{
    struct pr_pool *p = u->pool;
    struct pr_worker *w = u->w;
    u->client = NULL;
    if (u->counted) {
        count_pod_connection(u, -1);
        u->counted = false;
    }
    if (!reusable || w->draining || p->nidle >= PR_POOL_MAX_IDLE || u->writing ||
        u->state != PR_U_ACTIVE) {
        pr__upstream_close(u);
        return;
    }
    u->state = PR_U_IDLE;
    u->u.idle.prev = p->idle.u.idle.prev;
    u->u.idle.next = &p->idle;
    p->idle.u.idle.prev->u.idle.next = u;
    p->idle.u.idle.prev = u;
    p->nidle++;
    pr__tq_push(&w->q_pool, &u->tq, pr__now(w));
    pr__upstream_start_read(u); /* notice the pod closing it */
}

void pr__pools_close_idle(struct pr_worker *w)
{
    for (size_t i = 0; i < w->npools; i++)
        pool_drop_idle(w->pools[i]);
}

void pr__pools_destroy(struct pr_worker *w)
{
    for (size_t i = 0; i < w->npools; i++)
        free(w->pools[i]);
    free(w->pools);
    w->pools = NULL;
    w->npools = 0;
}
