/* Client transport (L1): accept, read/write, the input buffer and its limit, pipelining
 * order, read pausing, the try-write-then-queue send helper, send timeout and the state
 * timers. It calls the layer above only through the connection's handler table (c->h). */
#include "client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/log.h"
#include "podrouter/metrics.h"
#include "slab.h"
#include "stream.h"
#include "tq.h"
#include "worker.h"

_Static_assert(sizeof(struct pr_client) <= PR_CLIENT_SIZE_MAX,
               "struct pr_client grew past its idle-tunnel budget (see PR_CLIENT_SIZE_MAX)");

const char pr__client_tag = 'c';

static void in_free(struct pr_client *c)
{
    if (c->in) {
        pr_buf_free(&c->in->b);
        free(c->in);
        c->in = NULL;
    }
}

static void client_free(struct pr_client *c)
{
    in_free(c);
    pr__slab_free(c);
}

static void client_close_cb(uv_handle_t *h)
{
    struct pr_client *c = pr__container_of(h, struct pr_client, tcp);
    c->handle_closed = true;
    if (c->store_refs == 0)
        client_free(c);
}

/* An asynchronous callback (store, name resolution) will still come for c: keep its memory
 * until then, even if the connection closes meanwhile. */
void pr__client_hold(struct pr_client *c)
{
    c->store_refs++;
}

/* The callback came; false when the client is gone and its answer must be ignored. */
bool pr__client_unhold(struct pr_client *c)
{
    c->store_refs--;
    if (!c->closing)
        return true;
    if (c->store_refs == 0 && c->handle_closed)
        client_free(c);
    return false;
}

/* The input buffer (c->in) is freed with the client, not here: an input loop further up
 * the stack may still be reading it. */
void pr__client_close(struct pr_client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct pr_worker *w = c->w;
    pr__tq_remove(&c->tq);
    c->h->on_gone(c);
    PR_CNT_DEC(w->m->conns[PR_CONN_CLIENT]);
    atomic_fetch_sub(&w->srv->nclients, 1);
    pr__stream_forget(&w->sb, (uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, client_close_cb);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- lingering close ---- */

/* Everything the connection owned was let go when it began lingering: its end of stream, an
 * error, the timer (expire_state), SIGTERM's drain and the worker's stop close it. */
static const struct pr_client_handlers linger_client = {
    .on_head = pr__client_ignore,
    .on_data = pr__client_discard,
    .on_drained = pr__client_ignore,
    .on_gone = pr__client_ignore,
    .on_timeout = pr__client_close,
    .on_room = pr__client_ignore,
    .on_drain = pr__client_close,
};

void pr__client_linger(struct pr_client *c)
{
    if (c->closing || c->h == &linger_client)
        return;
    struct pr_worker *w = c->w;
    uv_os_fd_t fd;
    if (w->draining || w->stopping || pr__client_writing(c) ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || shutdown(fd, SHUT_WR) != 0) {
        pr__client_close(c);
        return;
    }
    c->h->on_gone(c); /* the layer above lets go now, as for a close */
    c->h = &linger_client;
    c->close_after_write = false;
    c->state = PR_C_CLOSING;
    if (c->in && !c->feeding)
        in_free(c); /* (inside the input loop, pr__client_discard takes what waits) */
    c->in_full = false;
    c->tq_home = PR_CQ_NONE;
    c->tq_send = false;
    pr__tq_push(&w->q_clinger, &c->tq, pr__now(w));
    pr__client_start_read(c);
}

void pr__client_start_read(struct pr_client *c)
{
    if (c->reading || c->closing || c->in_full)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, pr__alloc_cb, client_read_cb) == 0) {
        c->reading = true;
        pr__stream_resumed(&c->w->sb, (uv_stream_t *)&c->tcp);
    }
}

void pr__client_stop_read(struct pr_client *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
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

/* Put the client's timer in queue q (NULL: none; else the worker's header, idle or tunnel
 * queue), unless the send timeout owns it. */
void pr__client_queue(struct pr_client *c, struct pr_tq *q)
{
    struct pr_worker *w = c->w;
    c->tq_home = q == &w->q_header ? PR_CQ_HEADER
                 : q == &w->q_idle ? PR_CQ_IDLE
                 : q == &w->q_tunnel ? PR_CQ_TUNNEL
                                     : PR_CQ_NONE;
    if (c->tq_send)
        return;
    if (q)
        pr__tq_push(q, &c->tq, pr__now(c->w));
    else
        pr__tq_remove(&c->tq);
}

/* A client with bytes queued for it is watched by the send timeout; once they are taken it
 * goes back to the timer of its state. */
void pr__client_arm_send(struct pr_client *c)
{
    struct pr_worker *w = c->w;
    if (c->writing) {
        if (!c->tq_send) {
            pr__tq_push(&w->q_send, &c->tq, pr__now(w));
            c->tq_send = true;
        }
        return;
    }
    if (!c->tq_send)
        return;
    c->tq_send = false;
    pr__client_queue(c, home_queue(c));
}

static void client_write_cb(uv_write_t *req, int status)
{
    struct pr_wreq *wr = pr__container_of(req, struct pr_wreq, req);
    struct pr_client *c = wr->owner;
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        pr__client_close(c);
        return;
    }
    if (c->tcp.write_queue_size > 0) {
        if (c->tq_send) /* progress: a queued write completed */
            pr__tq_push(&c->w->q_send, &c->tq, pr__now(c->w));
        return;
    }
    c->writing = false;
    pr__client_arm_send(c);
    c->h->on_drained(c);
}

/* Bytes of c are queued behind a uv_write (its write callback reports when they are taken). */
static void client_queued(void *owner)
{
    struct pr_client *c = owner;
    if (!c->writing && !c->closing) {
        c->writing = true;
        pr__client_arm_send(c);
    }
}

int pr__client_send2(struct pr_client *c, const char *a, size_t alen, const char *b, size_t blen)
{
    int rc = pr__stream_send2(&c->w->sb, (uv_stream_t *)&c->tcp, c, a, alen, b, blen,
                              client_write_cb, client_queued);
    if (rc == 1)
        client_queued(c);
    return rc;
}

bool pr__client_writing(struct pr_client *c)
{
    pr__stream_settle(&c->w->sb, (uv_stream_t *)&c->tcp);
    return c->writing;
}

int pr__client_send(struct pr_client *c, const char *data, size_t len)
{
    return pr__client_send2(c, data, len, NULL, 0);
}

/* Run the input state machine over data until it consumes no more; returns bytes used. */
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
        c->in->off = c->in->b.len = 0;
        pr_buf_trim(&c->in->b, 16384); /* buffers only while data flows */
        if (!c->in->b.p)
            in_free(c);
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

/* Process what waits in c->in (after a request finished or a pod connection came up). */
void pr__client_drive(struct pr_client *c)
{
    if (c->feeding || c->closing || !pr__client_waiting(c))
        return;
    struct pr_client_in *in = c->in;
    size_t n = client_feed(c, in->b.p + in->off, in->b.len - in->off);
    if (c->closing)
        return;
    in->off += (uint32_t)n;
    in_compact(c);
}

void pr__client_in_release(struct pr_client *c)
{
    if (!c->feeding && !pr__client_waiting(c))
        in_free(c);
}

/* Keep data[0..len) after what waits; false when out of memory. */
static bool in_append(struct pr_client *c, const char *data, size_t len)
{
    if (!c->in && !(c->in = calloc(1, sizeof(*c->in))))
        return false;
    struct pr_client_in *in = c->in;
    if (in->off > 0 && in->off >= in->b.len / 2) {
        memmove(in->b.p, in->b.p + in->off, in->b.len - in->off);
        in->b.len -= in->off;
        in->off = 0;
    }
    return pr_buf_append(&in->b, data, len) == 0;
}

static void client_input(struct pr_client *c, const char *data, size_t len)
{
    if (pr__client_waiting(c)) {
        /* Older bytes wait: keep the order, append and process from the buffer. */
        if (!in_append(c, data, len)) {
            pr__client_close(c);
            return;
        }
        pr__client_drive(c);
        return;
    }
    size_t n = client_feed(c, data, len);
    if (c->closing || n == len)
        return;
    if (c->in)
        c->in->off = c->in->b.len = 0;
    if (!in_append(c, data + n, len - n)) {
        pr__client_close(c);
        return;
    }
    in_compact(c);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pr_client *c = pr__container_of(s, struct pr_client, tcp);
    if (nread > 0) {
        client_input(c, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    /* EOF or error. A client that hangs up mid-exchange (e.g. leaves a pending long-poll)
     * has left: release it and its pod connection now rather than when the pod answers
     * (on_gone); a tunnel's last bytes still reach the pod. */
    pr__client_close(c);
}

/* Remember the peer address once per connection (no getpeername per request). */
static void read_peer(struct pr_client *c)
{
    struct sockaddr_storage ss;
    int l = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &l))
        return;
    if (ss.ss_family == AF_INET) {
        memcpy(c->peer_addr, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
        c->peer_family = AF_INET;
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(c->peer_addr, a->s6_addr + 12, 4);
            c->peer_family = AF_INET;
        } else {
            memcpy(c->peer_addr, a, 16);
            c->peer_family = AF_INET6;
        }
    }
}

static char *dec_u8(char *p, unsigned v)
{
    if (v >= 100)
        *p++ = (char)('0' + v / 100);
    if (v >= 10)
        *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

/* The peer's address as text (X-Forwarded-For, every request): IPv4 by hand, since glibc's
 * inet_ntop formats it with sprintf (~1,700 instructions). */
void pr__peer_ip(const struct pr_client *c, char *out, size_t outlen)
{
    out[0] = 0;
    if (c->peer_family == AF_INET && outlen >= INET_ADDRSTRLEN) {
        char *p = out;
        for (int i = 0; i < 4; i++) {
            if (i)
                *p++ = '.';
            p = dec_u8(p, c->peer_addr[i]);
        }
        *p = 0;
    } else if (c->peer_family == AF_INET || c->peer_family == AF_INET6) {
        inet_ntop(c->peer_family, c->peer_addr, out, (socklen_t)outlen);
    }
}

bool pr__peer_is_loopback(const struct pr_client *c)
{
    if (c->peer_family == AF_INET)
        return c->peer_addr[0] == 127;
    if (c->peer_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)c->peer_addr);
    return false;
}

static struct pr_client *client_new(struct pr_worker *w, const struct pr_client_handlers *h,
                                    bool admin)
{
    struct pr_client *c = pr__slab_alloc(&w->client_slab, sizeof(*c));
    if (!c)
        return NULL;
    if (uv_tcp_init(&w->loop, &c->tcp)) {
        pr__slab_free(c);
        return NULL;
    }
    pr__stream_batch_reads(&w->sb, (uv_stream_t *)&c->tcp);
    c->w = w;
    c->tcp.data = (void *)&pr__client_tag;
    c->admin = admin;
    c->h = h;
    return c;
}

static void client_start(struct pr_client *c)
{
    struct pr_worker *w = c->w;
    atomic_fetch_add(&w->srv->nclients, 1);
    PR_CNT_INC(w->m->conns[PR_CONN_CLIENT]);
    uv_tcp_nodelay(&c->tcp, 1);
    read_peer(c);
    c->state = PR_C_IDLE;
    /* The header timeout runs from accept until the first head is complete. */
    pr__client_queue(c, &w->q_header);
    pr__client_start_read(c);
}

/* Accept one connection of a listener; h is the table of the layer that serves it. */
struct pr_client *pr__client_accept(uv_stream_t *server, const struct pr_client_handlers *h,
                                    bool admin)
{
    struct pr_client *c = client_new(server->data, h, admin);
    if (!c)
        return NULL;
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, client_close_cb);
        return NULL;
    }
    client_start(c);
    return c;
}

/* A connected socket as a client connection without a listener (unit tests). */
struct pr_client *pr__client_open(struct pr_worker *w, uv_os_sock_t fd,
                                  const struct pr_client_handlers *h)
{
    struct pr_client *c = client_new(w, h, false);
    if (!c)
        return NULL;
    if (uv_tcp_open(&c->tcp, fd)) {
        uv_close((uv_handle_t *)&c->tcp, client_close_cb);
        return NULL;
    }
    client_start(c);
    return c;
}

void pr__client_reject(uv_stream_t *server)
{
    struct pr_worker *w = server->data;
    uv_tcp_t *t = malloc(sizeof(*t));
    if (!t)
        return;
    uv_tcp_init(&w->loop, t);
    if (uv_accept(server, (uv_stream_t *)t) == 0) {
        /* RST at once: no resources kept for connections over the limit. */
        uv_tcp_close_reset(t, (uv_close_cb)free);
    } else {
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
    }
    PR_CNT_INC(w->m->rejected_connections);
}

/* SIGTERM: each connection's layer decides (idle keep-alive ones close now, the rest after
 * their response, tunnels when the worker stops). */
static struct pr_client *walk_client(uv_handle_t *h)
{
    if (h->type != UV_TCP || h->data != &pr__client_tag || uv_is_closing(h))
        return NULL;
    return pr__container_of((uv_tcp_t *)h, struct pr_client, tcp);
}

/* uv_walk visits the handles open when it starts (it moves the list aside first), and a
 * handle closed meanwhile stays listed until its close callback: callbacks may close. */
static void drain_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    struct pr_client *c = walk_client(h);
    if (c && !c->closing)
        c->h->on_drain(c);
}

void pr__client_drain(struct pr_worker *w)
{
    uv_walk(&w->loop, drain_walk_cb, NULL);
}

static void public_walk_cb(uv_handle_t *h, void *arg)
{
    struct pr_client *c = walk_client(h);
    if (c && !c->closing && !c->admin)
        *(bool *)arg = true;
}

bool pr__client_any_public(struct pr_worker *w)
{
    bool any = false;
    uv_walk(&w->loop, public_walk_cb, &any);
    return any;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    struct pr_client *c = walk_client(h);
    if (c)
        pr__client_close(c);
}

void pr__client_close_all(struct pr_worker *w)
{
    uv_walk(&w->loop, close_walk_cb, NULL);
}

/* ---- timers of client connections ---- */

static void expire_state(struct pr_tq_node *n)
{
    struct pr_client *c = pr__container_of(n, struct pr_client, tq);
    c->h->on_timeout(c);
}

/* A client that took none of its queued bytes for --send-timeout. */
static void expire_send(struct pr_tq_node *n)
{
    struct pr_client *c = pr__container_of(n, struct pr_client, tq);
    c->tq_send = false;
    pr_debug("send timeout", "state", "client");
    pr__client_close(c);
}

void pr__client_queues_init(struct pr_worker *w, const struct pr_config *cfg)
{
    pr__tq_init(&w->q_header, cfg->header_timeout_ms, expire_state);
    pr__tq_init(&w->q_idle, cfg->idle_timeout_ms, expire_state);
    pr__tq_init(&w->q_tunnel, cfg->idle_timeout_ms, expire_state);
    pr__tq_init(&w->q_send, cfg->send_timeout_ms, expire_send);
    pr__tq_init(&w->q_clinger, PR_CLIENT_LINGER_MS, expire_state);
}
