/* Per-pod upstream connection pools: connect, keep-alive reuse, idle expiry. */
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/log.h"
#include "podrouter/metrics.h"
#include "podrouter/registry.h"
#include "slab.h"
#include "stream.h"
#include "tq.h"
#include "worker.h"

_Static_assert(sizeof(struct pr_upstream) <= PR_UPSTREAM_SIZE_MAX,
               "struct pr_upstream grew past its idle-tunnel budget (see PR_UPSTREAM_SIZE_MAX)");

static void upstream_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

#define PR_RESOLVE_RETRY_MS 2000 /* a name that did not resolve is not asked again sooner */

/* "host:port" / "[v6]:port" -> sockaddr without I/O: 0, -EAGAIN for a DNS name (resolved
 * asynchronously by the caller), or -EINVAL. */
static int resolve_literal(const char *address, struct sockaddr_storage *ss, char *host,
                           size_t hostlen, int *port)
{
    const char *colon = strrchr(address, ':');
    if (!colon)
        return -EINVAL;
    *port = atoi(colon + 1);
    size_t hl = (size_t)(colon - address);
    if (hl >= hostlen)
        return -EINVAL;
    memcpy(host, address, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
        return uv_ip6_addr(host, *port, (struct sockaddr_in6 *)ss);
    }
    if (strcmp(host, "localhost") == 0)
        return uv_ip4_addr("127.0.0.1", *port, (struct sockaddr_in *)ss);
    if (uv_ip4_addr(host, *port, (struct sockaddr_in *)ss) == 0)
        return 0;
    return -EAGAIN;
}

static void pool_wake_waiters(struct pr_pool *p);

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct pr_pool *p = req->data;
    int port = (int)(intptr_t)p->gai_port;
    free(req);
    p->gai = NULL;
    p->resolving = false;
    if (status == 0 && res) {
        memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
        if (p->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&p->addr)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&p->addr)->sin6_port = htons((uint16_t)port);
        p->resolved = true;
    } else {
        p->resolve_retry_at = uv_now(&p->w->loop) + PR_RESOLVE_RETRY_MS;
        pr_warn("pod address does not resolve", "pod", p->name, "address", p->address, "error",
                uv_err_name(status ? status : UV_EAI_NONAME));
    }
    if (res)
        uv_freeaddrinfo(res);
    pool_wake_waiters(p);
}

/* Start resolving the pool's address (DNS names go through libuv's thread pool, never the
 * event loop). */
static void pool_resolve(struct pr_pool *p)
{
    char host[PR_ADDRESS_MAX + 1];
    int port = 0;
    memset(&p->addr, 0, sizeof(p->addr));
    p->resolved = false;
    int rc = resolve_literal(p->address, &p->addr, host, sizeof(host), &port);
    if (rc == 0) {
        p->resolved = true;
        return;
    }
    if (rc != -EAGAIN || p->resolving)
        return;
    uv_getaddrinfo_t *req = malloc(sizeof(*req));
    if (!req)
        return;
    req->data = p;
    p->gai_port = (uint32_t)port;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(&p->w->loop, req, resolved_cb, host, NULL, &hints) != 0) {
        free(req);
        p->resolve_retry_at = uv_now(&p->w->loop) + PR_RESOLVE_RETRY_MS;
        return;
    }
    p->gai = req;
    p->resolving = true;
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

/* u on top of p's idle list (the next one reused). */
static void idle_push(struct pr_pool *p, struct pr_upstream *u)
{
    u->u.idle.prev = p->idle.u.idle.prev;
    u->u.idle.next = &p->idle;
    p->idle.u.idle.prev->u.idle.next = u;
    p->idle.u.idle.prev = u;
    p->nidle++;
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
        p->w = w;
        w->pools[w->npools++] = p;
    }
    bool changed = p->gen != pod->gen || strcmp(p->address, pod->address) != 0;
    if (changed) {
        pool_drop_idle(p);
        snprintf(p->address, sizeof(p->address), "%s", pod->address);
        p->gen = pod->gen;
        p->resolve_retry_at = 0;
        pool_resolve(p);
    } else if (!p->resolved && !p->resolving && uv_now(&w->loop) >= p->resolve_retry_at) {
        pool_resolve(p);
    }
    p->slot = pod->slot;
    return p;
}

const char pr__upstream_tag = 'u';

static void upstream_close_cb(uv_handle_t *h)
{
    pr__slab_free(pr__container_of(h, struct pr_upstream, tcp));
}

/* A worker stops: close an upstream handle found by uv_walk (e.g. one still connecting for
 * a client that left) so that its memory is freed in its close callback. */
void pr__upstream_close_handle(uv_handle_t *h)
{
    struct pr_upstream *u = pr__container_of(h, struct pr_upstream, tcp);
    u->client = NULL;
    pr__upstream_close(u);
}

/* Counted against the registry row (slot and generation) it was taken for, so a pod that
 * re-registered meanwhile is not decremented for a connection it never had. */
static void count_pod_connection(struct pr_upstream *u, int delta)
{
    if (delta > 0) {
        u->cslot = u->pool->slot;
        u->cgen = u->pool->gen;
    }
    pr_registry_add_connections(u->pool->w->srv->reg, u->cslot, u->cgen, delta);
}

void pr__upstream_close(struct pr_upstream *u)
{
    if (u->state == PR_U_CLOSING || uv_is_closing((uv_handle_t *)&u->tcp))
        return;
    struct pr_worker *w = u->pool->w;
    if (u->state == PR_U_IDLE)
        idle_unlink(u);
    if (u->counted) {
        count_pod_connection(u, -1);
        u->counted = false;
    }
    pr__tq_remove(&u->tq);
    u->state = PR_U_CLOSING;
    u->client = NULL;
    PR_CNT_DEC(w->m->conns[PR_CONN_UPSTREAM]);
    pr__stream_forget(&w->sb, (uv_stream_t *)&u->tcp);
    uv_close((uv_handle_t *)&u->tcp, upstream_close_cb);
}

void pr__upstream_start_read(struct pr_upstream *u)
{
    if (u->reading || u->state == PR_U_CLOSING || u->state == PR_U_CONNECTING)
        return;
    if (uv_read_start((uv_stream_t *)&u->tcp, pr__alloc_cb, upstream_read_cb) == 0) {
        u->reading = true;
        pr__stream_resumed(&u->pool->w->sb, (uv_stream_t *)&u->tcp);
    }
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
        if (u->client)
            u->h->eof(u, status);
        else
            pr__upstream_close(u);
        return;
    }
    if (u->tcp.write_queue_size == 0) {
        u->writing = false;
        u->h->drained(u);
    }
}

/* Bytes of u are queued behind a uv_write (its write callback reports when they are taken). */
static void upstream_queued(void *owner)
{
    struct pr_upstream *u = owner;
    u->writing = true;
}

int pr__upstream_send2(struct pr_upstream *u, const char *a, size_t alen, const char *b,
                       size_t blen)
{
    /* A connecting socket cannot take bytes yet: libuv holds them until it is connected. */
    struct pr_iobatch *sb = u->state == PR_U_CONNECTING ? NULL : &u->pool->w->sb;
    int rc = pr__stream_send2(sb, (uv_stream_t *)&u->tcp, u, a, alen, b, blen, upstream_write_cb,
                              upstream_queued);
    if (rc == 1)
        upstream_queued(u);
    return rc;
}

bool pr__upstream_writing(struct pr_upstream *u)
{
    pr__stream_settle(&u->pool->w->sb, (uv_stream_t *)&u->tcp);
    return u->writing;
}

int pr__upstream_send(struct pr_upstream *u, const char *data, size_t len)
{
    return pr__upstream_send2(u, data, len, NULL, 0);
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
        u->h->eof(u, (int)nread);
        return;
    }
    u->got_bytes = true;
    u->h->data(u, buf->base, (size_t)nread);
}

/* The connect failed or timed out: the owner hears of it after the connection is gone. */
static void connect_failed(struct pr_upstream *u, int status)
{
    struct pr_client *c = u->client;
    const struct pr_upstream_handlers *h = u->h;
    u->client = NULL;
    pr__upstream_close(u);
    if (c)
        h->failed(c, u, status);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct pr_upstream *u = req->data;
    free(req);
    struct pr_worker *w = u->pool->w;
    if (u->state == PR_U_CLOSING)
        return;
    pr__tq_remove(&u->tq);
    uint64_t start_ns = u->u.connect_start_ns;
    memset(&u->u, 0, sizeof(u->u));
    struct pr_client *c = u->client;
    if (status < 0) {
        connect_failed(u, status);
        return;
    }
    pr_hist_observe(&w->m->connect_duration, (double)(uv_hrtime() - start_ns) / 1e9);
    if (pr_registry_connect_ok(w->srv->reg, u->cslot, u->cgen)) /* --pod-fall count restarts */
        pr_warn("pod up again", "pod", u->pool->name, "by", "connect");
    u->state = PR_U_ACTIVE;
    uv_tcp_nodelay(&u->tcp, 1);
    if (!c) {
        /* The client left while we connected: keep the connection for the next one. */
        pr__upstream_release(u, true);
        return;
    }
    pr__upstream_start_read(u);
    u->h->ready(c, u);
}

/* The name resolved (or did not): the owners that waited for it go on. */
static void pool_wake_waiters(struct pr_pool *p)
{
    struct pr_pool_waiter *list = p->waiters;
    uint32_t n = p->nwaiters;
    p->waiters = NULL;
    p->nwaiters = p->cwaiters = 0;
    for (uint32_t i = 0; i < n; i++)
        list[i].h->resolved(list[i].client, p);
    free(list);
}

static int pool_wait(struct pr_pool *p, struct pr_client *c, const struct pr_upstream_handlers *h)
{
    if (p->nwaiters == p->cwaiters) {
        uint32_t nc = p->cwaiters ? p->cwaiters * 2 : 8;
        struct pr_pool_waiter *nl = realloc(p->waiters, nc * sizeof(*nl));
        if (!nl)
            return UV_ENOMEM;
        p->waiters = nl;
        p->cwaiters = nc;
    }
    p->waiters[p->nwaiters++] = (struct pr_pool_waiter){c, h};
    return PR_POOL_WAIT;
}

static int pool_connect(struct pr_pool *p, struct pr_client *c,
                        const struct pr_upstream_handlers *h, struct pr_upstream **out)
{
    struct pr_worker *w = p->w;
    struct pr_upstream *u = pr__slab_alloc(&w->upstream_slab, sizeof(*u));
    if (!u)
        return UV_ENOMEM;
    int rc = uv_tcp_init(&w->loop, &u->tcp);
    if (rc) {
        pr__slab_free(u);
        return rc;
    }
    pr__stream_batch_reads(&w->sb, (uv_stream_t *)&u->tcp);
    u->tcp.data = (void *)&pr__upstream_tag; /* found and freed by a worker's stop walk */
    u->pool = p;
    u->client = c;
    u->h = h;
    u->state = PR_U_CONNECTING;
    u->u.connect_start_ns = uv_hrtime();
    PR_CNT_INC(w->m->conns[PR_CONN_UPSTREAM]);
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
    count_pod_connection(u, 1);
    u->counted = true;
    pr__tq_push(&w->q_connect, &u->tq, pr__now(w));
    *out = u;
    return PR_POOL_CONNECTING;
}

/* The idle connection a request takes (NULL: none): the most recently used one, so those
 * the load does not need sink and expire; in demand (upstream.h) the least recently used
 * one once it has idled PR_POOL_REFRESH_MS, before it expires. */
static struct pr_upstream *pool_pick(struct pr_pool *p, uint64_t now)
{
    struct pr_upstream *top = p->idle.u.idle.prev, *bottom = p->idle.u.idle.next;
    if (top == &p->idle)
        return NULL; /* every connection came from pool_connect, so dry_at is set below */
    uint64_t idle_since = bottom->tq.deadline - PR_POOL_IDLE_MS;
    if (now - p->dry_at < PR_POOL_NEED_MS && now >= idle_since + PR_POOL_REFRESH_MS)
        return bottom;
    return top;
}

int pr__pool_acquire(struct pr_pool *p, struct pr_client *c, const struct pr_upstream_handlers *h,
                     struct pr_upstream **out)
{
    *out = NULL;
    if (!p->resolved && p->resolving)
        return pool_wait(p, c, h);
    if (!p->resolved)
        return UV_EHOSTUNREACH;
    uint64_t now = pr__now(p->w);
    struct pr_upstream *u = pool_pick(p, now);
    if (!u) {
        p->dry_at = now;
        return pool_connect(p, c, h, out);
    }
    idle_unlink(u);
    pr__tq_remove(&u->tq);
    u->state = PR_U_ACTIVE;
    u->client = c;
    u->h = h;
    u->reused = true;
    u->got_bytes = false;
    count_pod_connection(u, 1);
    u->counted = true;
    pr__upstream_start_read(u);
    *out = u;
    return PR_POOL_REUSED;
}

void pr__upstream_release(struct pr_upstream *u, bool reusable)
{
    struct pr_pool *p = u->pool;
    struct pr_worker *w = u->pool->w;
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
    idle_push(p, u);
    pr__tq_push(&w->q_pool, &u->tq, pr__now(w));
    pr__upstream_start_read(u); /* notice the pod closing it */
}

/* ---- timers of pod connections ---- */

static void expire_connect(struct pr_tq_node *n)
{
    connect_failed(pr__container_of(n, struct pr_upstream, tq), UV_ETIMEDOUT);
}

/* Idle for PR_POOL_IDLE_MS, no request took it (pool_pick): not needed. */
static void expire_pool(struct pr_tq_node *n)
{
    pr__upstream_close(pr__container_of(n, struct pr_upstream, tq));
}

/* No response in time (q_wait), or a pod that took none of its queued bytes (q_linger). */
static void expire_owner(struct pr_tq_node *n)
{
    struct pr_upstream *u = pr__container_of(n, struct pr_upstream, tq);
    u->h->timeout(u);
}

void pr__upstream_queues_init(struct pr_worker *w, const struct pr_config *cfg)
{
    pr__tq_init(&w->q_connect, cfg->connect_timeout_ms, expire_connect);
    pr__tq_init(&w->q_wait, cfg->idle_timeout_ms, expire_owner);
    pr__tq_init(&w->q_pool, PR_POOL_IDLE_MS, expire_pool);
    pr__tq_init(&w->q_linger, cfg->send_timeout_ms, expire_owner);
}

void pr__pools_close_idle(struct pr_worker *w)
{
    for (size_t i = 0; i < w->npools; i++)
        pool_drop_idle(w->pools[i]);
}

void pr__pools_destroy(struct pr_worker *w)
{
    for (size_t i = 0; i < w->npools; i++) {
        free(w->pools[i]->waiters);
        free(w->pools[i]);
    }
    free(w->pools);
    w->pools = NULL;
    w->npools = 0;
}
