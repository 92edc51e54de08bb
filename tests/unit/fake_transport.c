/* In-memory client and pod transports (see fake_transport.h). The client input loop is
 * client.c's, line for line, so that the L2 code runs under the same pipelining rules. */
#include "fake_transport.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/store.h"

/* The process-wide state loop.c would own (loop.c is not linked). */
static struct pr_server srv;

static struct pr_worker *w;
static struct fake_client *clients;
static struct fake_upstream *upstreams;
static enum fake_connect_mode next_mode;
static int next_err;
static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";

static void buf_add(struct fake_buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->data = realloc(b->data, b->cap);
        cr_assert_not_null(b->data);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

static struct fake_client *fcl(struct pr_client *c)
{
    return (struct fake_client *)c;
}

static struct fake_upstream *fup(struct pr_upstream *u)
{
    return (struct fake_upstream *)u;
}

/* ---- store whose sid pins answer later ---- */

struct pending_create {
    struct pr_store *s;
    enum pr_key_kind kind;
    char key[PR_KEY_MAX + 1];
    size_t len;
    char pod[PR_POD_NAME_MAX + 1];
    pr_store_cb cb;
    void *arg;
};
static struct pr_store_ops slow_ops;
static const struct pr_store_ops *mem_ops;
static struct pending_create pending[8];
static size_t npending;

static void slow_create(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                        const char *pod, pr_store_cb cb, void *arg)
{
    if (kind != PR_KEY_SID) {
        mem_ops->create(s, kind, key, len, pod, cb, arg);
        return;
    }
    cr_assert_lt(npending, 8);
    struct pending_create *p = &pending[npending++];
    *p = (struct pending_create){.s = s, .kind = kind, .len = len, .cb = cb, .arg = arg};
    memcpy(p->key, key, len);
    snprintf(p->pod, sizeof(p->pod), "%s", pod);
}

void fake_store_defer_sid_pins(bool on)
{
    w->store->ops = on ? &slow_ops : mem_ops;
}

size_t fake_store_pending(void)
{
    return npending;
}

void fake_store_flush(void)
{
    size_t n = npending;
    struct pending_create now[8];
    memcpy(now, pending, sizeof(now));
    npending = 0;
    for (size_t i = 0; i < n; i++)
        mem_ops->create(now[i].s, now[i].kind, now[i].key, now[i].len, now[i].pod, now[i].cb,
                        now[i].arg);
}

/* ---- world ---- */

struct pr_worker *fake_worker(void)
{
    return w;
}

void fake_world_init(const char *const *pods, size_t npods)
{
    memset(&srv, 0, sizeof(srv));
    pr_config_defaults(&srv.cfg);
    snprintf(srv.cfg.store, sizeof(srv.cfg.store), "memory");
    srv.cfg.access_log = false;
    memcpy(srv.secret, secret, sizeof(secret));
    srv.aff = (struct pr_affinity_config){
        .room_param = "roomId",
        .participant_param = "participantId",
        .cookie_name = "pr_affinity",
        .secret = srv.secret,
        .secret_len = sizeof(srv.secret),
    };
    srv.reg = pr_registry_create(srv.cfg.pod_ttl_ms);
    cr_assert_not_null(srv.reg);
    for (size_t i = 0; i < npods; i++) {
        char addr[48];
        snprintf(addr, sizeof(addr), "10.0.0.%zu:3000", i + 1);
        cr_assert_eq(pr_registry_put(srv.reg, pods[i], addr, 20, 80, NULL, NULL), 0);
    }
    w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    cr_assert_eq(uv_loop_init(&w->loop), 0); /* the loop clock only: no handle is opened */
    w->loop.data = w;
    w->srv = &srv;
    srv.nworkers = 1;
    w->m = calloc(1, sizeof(*w->m));
    w->policy_pods = calloc(PR_MAX_PODS, sizeof(*w->policy_pods));
    w->pod_infos = calloc(PR_MAX_PODS, sizeof(*w->pod_infos));
    cr_assert(w->m && w->policy_pods && w->pod_infos);
    const struct pr_config *cfg = &srv.cfg;
    pr__tq_init(&w->q_header, cfg->header_timeout_ms, NULL);
    pr__tq_init(&w->q_idle, cfg->idle_timeout_ms, NULL);
    pr__tq_init(&w->q_tunnel, cfg->idle_timeout_ms, NULL);
    pr__tq_init(&w->q_send, cfg->send_timeout_ms, NULL);
    pr__tq_init(&w->q_connect, cfg->connect_timeout_ms, NULL);
    pr__tq_init(&w->q_wait, cfg->idle_timeout_ms, NULL);
    pr__tq_init(&w->q_pool, PR_POOL_IDLE_MS, NULL);
    pr__tq_init(&w->q_linger, cfg->send_timeout_ms, NULL);
    w->store = pr_store_memory_open(cfg, srv.reg);
    cr_assert_not_null(w->store);
    mem_ops = w->store->ops;
    slow_ops = *mem_ops;
    slow_ops.create = slow_create;
    npending = 0;
    next_mode = FAKE_CONNECT_ASYNC;
    pr__exchange_settings_init();
}

void fake_world_fini(void)
{
    /* Connections first (their exchanges go back to the pool), then the pool. */
    while (clients) {
        struct fake_client *fc = clients;
        clients = fc->next_all;
        if (!fc->c.closing)
            pr__client_close(&fc->c);
        if (fc->c.in) {
            pr_buf_free(&fc->c.in->b);
            free(fc->c.in);
        }
        free(fc->out.data);
        free(fc);
    }
    while (upstreams) {
        struct fake_upstream *fu = upstreams;
        upstreams = fu->next_all;
        free(fu->out.data);
        free(fu);
    }
    while (w->free_exchanges) {
        struct pr_exchange *x = w->free_exchanges;
        w->free_exchanges = x->next_free;
        pr__exchange_free(x);
    }
    for (size_t i = 0; i < w->npools; i++)
        free(w->pools[i]);
    free(w->pools);
    w->store->ops = mem_ops;
    w->store->ops->close(w->store);
    pr_registry_destroy(srv.reg);
    uv_loop_close(&w->loop);
    free(w->m);
    free(w->policy_pods);
    free(w->pod_infos);
    free(w);
    w = NULL;
}

/* ---- client transport (client.c) ---- */

struct fake_client *fake_client_new(void)
{
    struct fake_client *fc = calloc(1, sizeof(*fc));
    cr_assert_not_null(fc);
    struct pr_client *c = &fc->c;
    c->w = w;
    c->h = &pr__http_client_handlers;
    c->peer_family = AF_INET;
    inet_pton(AF_INET, "203.0.113.7", c->peer_addr);
    c->state = PR_C_IDLE;
    atomic_fetch_add(&srv.nclients, 1);
    pr__client_queue(c, &w->q_header);
    pr__client_start_read(c);
    fc->next_all = clients;
    clients = fc;
    return fc;
}

void pr__client_hold(struct pr_client *c)
{
    c->store_refs++;
}

bool pr__client_unhold(struct pr_client *c)
{
    cr_assert_gt(c->store_refs, 0, "unhold without hold");
    c->store_refs--;
    return !c->closing;
}

void pr__client_close(struct pr_client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    fcl(c)->closes++;
    pr__tq_remove(&c->tq);
    c->h->on_gone(c);
    c->reading = false;
    atomic_fetch_sub(&srv.nclients, 1);
}

/* The fake has no socket to half-close and read on: lingering is closing (client_test covers
 * the real one). */
void pr__client_linger(struct pr_client *c)
{
    pr__client_close(c);
}

void pr__client_start_read(struct pr_client *c)
{
    if (c->reading || c->closing || c->in_full)
        return;
    c->reading = true;
}

void pr__client_stop_read(struct pr_client *c)
{
    c->reading = false;
}

static struct pr_tq *home_queue(struct pr_client *c)
{
    switch (c->tq_home) {
    case PR_CQ_HEADER: return &c->w->q_header;
    case PR_CQ_IDLE: return &c->w->q_idle;
    case PR_CQ_TUNNEL: return &c->w->q_tunnel;
    default: return NULL;
    }
}

void pr__client_queue(struct pr_client *c, struct pr_tq *q)
{
    struct pr_worker *cw = c->w;
    cr_assert(!q || q == &cw->q_header || q == &cw->q_idle || q == &cw->q_tunnel,
              "a client's state timer is in the header, idle or tunnel queue");
    c->tq_home = q == &cw->q_header ? PR_CQ_HEADER
                 : q == &cw->q_idle ? PR_CQ_IDLE
                 : q == &cw->q_tunnel ? PR_CQ_TUNNEL
                                      : PR_CQ_NONE;
    if (c->tq_send)
        return;
    if (q)
        pr__tq_push(q, &c->tq, pr__now(c->w));
    else
        pr__tq_remove(&c->tq);
}

void pr__client_arm_send(struct pr_client *c)
{
    if (c->writing) {
        if (!c->tq_send) {
            pr__tq_push(&c->w->q_send, &c->tq, pr__now(c->w));
            c->tq_send = true;
        }
        return;
    }
    if (!c->tq_send)
        return;
    c->tq_send = false;
    pr__client_queue(c, home_queue(c));
}

bool pr__client_writing(struct pr_client *c)
{
    return c->writing; /* the fake sends at once: nothing is ever batched */
}

int pr__client_send2(struct pr_client *c, const char *a, size_t alen, const char *b, size_t blen)
{
    if (c->closing)
        return UV_EPIPE;
    if (alen + blen == 0)
        return 0;
    struct fake_client *fc = fcl(c);
    buf_add(&fc->out, a ? a : "", alen);
    buf_add(&fc->out, b ? b : "", blen);
    if (!fc->full && !c->writing)
        return 0;
    if (!c->writing) {
        c->writing = true;
        pr__client_arm_send(c);
    }
    return 1;
}

int pr__client_send(struct pr_client *c, const char *data, size_t len)
{
    return pr__client_send2(c, data, len, NULL, 0);
}

static size_t client_feed(struct pr_client *c, const char *data, size_t len)
{
    size_t off = 0;
    c->feeding = true; /* callers never nest: pr__client_drive checks it, libuv reads do not */
    while (off < len && !c->closing) {
        size_t n = c->h->on_data(c, data + off, len - off);
        if (n == 0)
            break;
        off += n;
    }
    c->feeding = false;
    return off;
}

static void in_compact(struct pr_client *c)
{
    if (c->in && c->in->off == c->in->b.len) {
        pr_buf_free(&c->in->b);
        free(c->in);
        c->in = NULL;
    }
    bool full = pr__client_waiting(c) >= PR_CLIENT_IN_MAX;
    if (full && !c->in_full) {
        pr__client_stop_read(c);
        c->in_full = true;
    } else if (!full && c->in_full) {
        c->in_full = false;
        c->h->on_room(c);
    }
}

void pr__client_drive(struct pr_client *c)
{
    if (c->feeding || c->closing || !pr__client_waiting(c))
        return;
    size_t n = client_feed(c, c->in->b.p + c->in->off, c->in->b.len - c->in->off);
    if (c->closing)
        return;
    c->in->off += (uint32_t)n;
    in_compact(c);
}

void pr__client_in_release(struct pr_client *c)
{
    if (!c->feeding && !pr__client_waiting(c) && c->in) {
        pr_buf_free(&c->in->b);
        free(c->in);
        c->in = NULL;
    }
}

void fake_client_send(struct fake_client *fc, const char *data, size_t len)
{
    struct pr_client *c = &fc->c;
    cr_assert(c->reading && !c->closing, "the client sends while the router does not read it");
    if (pr__client_waiting(c)) {
        cr_assert_eq(pr_buf_append(&c->in->b, data, len), 0);
        pr__client_drive(c);
        return;
    }
    /* Like a read into the worker's shared buffer: the L2 code must copy what it keeps. */
    cr_assert_leq(len, sizeof(w->readbuf));
    memcpy(w->readbuf, data, len);
    size_t n = client_feed(c, w->readbuf, len);
    memset(w->readbuf, 0xAA, len); /* the next read overwrites it */
    if (c->closing || n == len)
        return;
    if (!c->in)
        cr_assert_not_null(c->in = calloc(1, sizeof(*c->in)));
    c->in->off = c->in->b.len = 0;
    cr_assert_eq(pr_buf_append(&c->in->b, data + n, len - n), 0);
    in_compact(c);
}

void fake_client_sends(struct fake_client *fc, const char *s)
{
    fake_client_send(fc, s, strlen(s));
}

void fake_client_eof(struct fake_client *fc)
{
    cr_assert(fc->c.reading, "EOF is seen only while reading");
    pr__client_close(&fc->c);
}

void fake_client_drain(struct fake_client *fc)
{
    struct pr_client *c = &fc->c;
    fc->full = false;
    if (!c->writing || c->closing)
        return;
    c->writing = false;
    pr__client_arm_send(c);
    c->h->on_drained(c);
}

void fake_client_write_error(struct fake_client *fc)
{
    cr_assert(fc->c.writing, "no write is queued for the client");
    pr__client_close(&fc->c);
}

const char *fake_client_out(struct fake_client *fc)
{
    return fc->out.data ? fc->out.data : "";
}

void fake_client_out_clear(struct fake_client *fc)
{
    fc->out.len = 0;
    if (fc->out.data)
        fc->out.data[0] = 0;
}

void pr__peer_ip(const struct pr_client *c, char *out, size_t outlen)
{
    out[0] = 0;
    if (c->peer_family == AF_INET || c->peer_family == AF_INET6)
        inet_ntop(c->peer_family, c->peer_addr, out, (socklen_t)outlen);
}

bool pr__peer_is_loopback(const struct pr_client *c)
{
    return c->peer_family == AF_INET && c->peer_addr[0] == 127;
}

/* Only the listener path uses these (pr__on_connection), never a unit test. */
struct pr_client *pr__client_accept(uv_stream_t *server, const struct pr_client_handlers *h,
                                    bool admin)
{
    (void)server;
    (void)h;
    (void)admin;
    cr_assert_fail("pr__client_accept is not part of the fake");
    return NULL;
}

void pr__client_reject(uv_stream_t *server)
{
    (void)server;
    cr_assert_fail("pr__client_reject is not part of the fake");
}

/* ---- pod transport (upstream.c) ---- */

struct pr_pool *pr__pool_get(struct pr_worker *wk, const struct pr_pod_info *pod)
{
    for (size_t i = 0; i < wk->npools; i++)
        if (strcmp(wk->pools[i]->name, pod->name) == 0) {
            wk->pools[i]->slot = pod->slot;
            wk->pools[i]->gen = pod->gen;
            return wk->pools[i];
        }
    struct pr_pool **np = realloc(wk->pools, (wk->npools + 1) * sizeof(*np));
    cr_assert_not_null(np);
    wk->pools = np;
    struct pr_pool *p = calloc(1, sizeof(*p));
    cr_assert_not_null(p);
    snprintf(p->name, sizeof(p->name), "%s", pod->name);
    snprintf(p->address, sizeof(p->address), "%s", pod->address);
    p->slot = pod->slot;
    p->gen = pod->gen;
    p->resolved = true;
    p->w = wk;
    wk->pools[wk->npools++] = p;
    return p;
}

void fake_next_connect(enum fake_connect_mode mode, int err)
{
    next_mode = mode;
    next_err = err;
}

int pr__pool_acquire(struct pr_pool *p, struct pr_client *c, const struct pr_upstream_handlers *h,
                     struct pr_upstream **out)
{
    *out = NULL;
    for (struct fake_upstream *fu = upstreams; fu; fu = fu->next_all) {
        struct pr_upstream *u = &fu->u;
        if (u->pool != p || u->state != PR_U_IDLE)
            continue;
        u->state = PR_U_ACTIVE;
        u->client = c;
        u->h = h;
        u->reused = true;
        u->got_bytes = false;
        u->reading = true;
        *out = u;
        return PR_POOL_REUSED;
    }
    if (next_mode == FAKE_CONNECT_ERROR) {
        next_mode = FAKE_CONNECT_ASYNC;
        return next_err;
    }
    struct fake_upstream *fu = calloc(1, sizeof(*fu));
    cr_assert_not_null(fu);
    struct pr_upstream *u = &fu->u;
    u->pool = p;
    u->client = c;
    u->h = h;
    u->state = PR_U_CONNECTING;
    fu->next_all = upstreams;
    upstreams = fu;
    *out = u;
    return PR_POOL_CONNECTING;
}

struct fake_upstream *fake_upstream_last(void)
{
    return upstreams;
}

size_t fake_upstream_count(void)
{
    size_t n = 0;
    for (struct fake_upstream *fu = upstreams; fu; fu = fu->next_all)
        n++;
    return n;
}

const char *fake_pool_name(const struct fake_upstream *fu)
{
    return fu->u.pool->name;
}

void pr__upstream_close(struct pr_upstream *u)
{
    if (u->state == PR_U_CLOSING)
        return;
    pr__tq_remove(&u->tq);
    u->state = PR_U_CLOSING;
    u->client = NULL;
    u->reading = false;
    fup(u)->closes++;
}

void pr__upstream_release(struct pr_upstream *u, bool reusable)
{
    struct fake_upstream *fu = fup(u);
    fu->releases++;
    u->client = NULL;
    if (reusable)
        fu->reusable_releases++;
    if (!reusable || u->writing || u->state != PR_U_ACTIVE) {
        pr__upstream_close(u);
        return;
    }
    u->state = PR_U_IDLE;
    u->reading = true; /* notices the pod closing it */
}

void pr__upstream_start_read(struct pr_upstream *u)
{
    if (u->state == PR_U_CLOSING || u->state == PR_U_CONNECTING)
        return;
    u->reading = true;
}

void pr__upstream_stop_read(struct pr_upstream *u)
{
    u->reading = false;
}

int pr__upstream_send2(struct pr_upstream *u, const char *a, size_t alen, const char *b,
                       size_t blen)
{
    struct fake_upstream *fu = fup(u);
    cr_assert(u->state == PR_U_ACTIVE, "bytes sent on a pod connection that is not active");
    fu->sends++;
    buf_add(&fu->out, a, alen);
    if (blen)
        buf_add(&fu->out, b, blen);
    if (!fu->full && !u->writing)
        return 0;
    u->writing = true;
    return 1;
}

bool pr__upstream_writing(struct pr_upstream *u)
{
    return u->writing;
}

int pr__upstream_send(struct pr_upstream *u, const char *data, size_t len)
{
    return pr__upstream_send2(u, data, len, NULL, 0);
}

void fake_upstream_connected(struct fake_upstream *fu)
{
    struct pr_upstream *u = &fu->u;
    cr_assert_eq(u->state, PR_U_CONNECTING);
    u->state = PR_U_ACTIVE;
    if (!u->client) {
        pr__upstream_release(u, true);
        return;
    }
    u->reading = true;
    u->h->ready(u->client, u);
}

void fake_upstream_connect_failed(struct fake_upstream *fu, int err)
{
    struct pr_upstream *u = &fu->u;
    cr_assert_eq(u->state, PR_U_CONNECTING);
    struct pr_client *c = u->client;
    const struct pr_upstream_handlers *h = u->h;
    u->client = NULL;
    pr__upstream_close(u);
    if (c)
        h->failed(c, u, err);
}

void fake_pod_send(struct fake_upstream *fu, const char *data, size_t len)
{
    struct pr_upstream *u = &fu->u;
    cr_assert(u->reading, "the pod's bytes arrive while the router does not read it");
    if (u->state == PR_U_IDLE || !u->client) {
        pr__upstream_close(u);
        return;
    }
    u->got_bytes = true;
    cr_assert_leq(len, sizeof(w->readbuf));
    memcpy(w->readbuf, data, len);
    u->h->data(u, w->readbuf, len);
    memset(w->readbuf, 0xBB, len);
}

void fake_pod_sends(struct fake_upstream *fu, const char *s)
{
    fake_pod_send(fu, s, strlen(s));
}

void fake_pod_eof(struct fake_upstream *fu)
{
    struct pr_upstream *u = &fu->u;
    cr_assert(u->reading, "EOF is seen only while reading");
    if (u->state == PR_U_IDLE || !u->client) {
        pr__upstream_close(u);
        return;
    }
    u->h->eof(u, UV_EOF);
}

void fake_pod_drain(struct fake_upstream *fu)
{
    struct pr_upstream *u = &fu->u;
    fu->full = false;
    if (!u->writing || u->state == PR_U_CLOSING)
        return;
    u->writing = false;
    u->h->drained(u);
}

void fake_pod_write_error(struct fake_upstream *fu, int err)
{
    struct pr_upstream *u = &fu->u;
    cr_assert(u->writing, "no write is queued for the pod");
    if (u->state == PR_U_CLOSING)
        return;
    if (u->client)
        u->h->eof(u, err);
    else
        pr__upstream_close(u);
}

const char *fake_pod_out(struct fake_upstream *fu)
{
    return fu->out.data ? fu->out.data : "";
}

void fake_pod_out_clear(struct fake_upstream *fu)
{
    fu->out.len = 0;
    if (fu->out.data)
        fu->out.data[0] = 0;
}
