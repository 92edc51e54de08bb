/* Redis store, connections (see store_redis.c for the design): the hiredis libuv adapter,
 * connect/setup/reconnect with backoff, command deadlines, Sentinel, the per-handle timer.
 * Rules: every request is answered exactly once (reply, timeout, disconnect or close) unless
 * hooks->lost keeps it for the next connection; a hiredis context is never freed inside one of
 * its own callbacks (marked, then freed from the timer); the poll handle lives inside struct
 * conn and its memory goes in its close_cb. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/metrics.h"
#include "store_redis_int.h"

static const char *const role_names[ROLE__COUNT] = {"command", "subscriber", "sentinel-query",
                                                    "sentinel-watch"};

static void conn_dead(struct conn *c, int status, const char *why);
static void reply_cb(redisAsyncContext *ac, void *r, void *privdata);
static void sub_cb(redisAsyncContext *ac, void *r, void *privdata);
static void sub_msg(void *privdata, redisReply *reply);
static void sub_read(struct conn *c);
static void sub_event(void *arg, const char *msg, size_t len);
static void conn_kill_later(struct conn *c, int status);
static void handle_setup(struct req *q, redisReply *r, int status);

/* ---- small helpers ------------------------------------------------------------------- */

/* A jittered backoff step for role (100 ms doubling to 5 s). */
static uint32_t next_backoff(struct redis_store *rs, enum role r)
{
    uint32_t b = rs->backoff[r] ? rs->backoff[r] * 2 : BACKOFF_MIN_MS;
    if (b > BACKOFF_MAX_MS)
        b = BACKOFF_MAX_MS;
    rs->backoff[r] = b;
    rs->rand_state = rs->rand_state * 1103515245u + 12345u;
    return b + (rs->rand_state >> 16) % (b / 5 + 1);
}

/* ---- event-loop adapter (after hiredis/adapters/libuv.h) ---------------------------------- */

/* Readiness on the connection's socket: let hiredis read/write. */
static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;
    if (!c->ac)
        return;
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE; /* let hiredis find the error */
    bool direct = c->state == CS_READY && (c->role == ROLE_SUB || c->role == ROLE_SENT_SUB);
    if ((events & UV_READABLE) && direct)
        sub_read(c);
    else if (events & UV_READABLE)
        redisAsyncHandleRead(c->ac);
    if (c->ac && c->ac->c.reader && c->ac->c.reader->len - c->ac->c.reader->pos > REPLY_BUF_MAX &&
        !c->kill) {
        pr_warn("redis reply over the size limit: connection closed", "#limit_bytes",
                REPLY_BUF_MAX_STR);
        conn_kill_later(c, -EMSGSIZE);
        return;
    }
    if (c->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(c->ac);
}

/* Start/stop polling for the current interest set: only when it changed (each uv_poll_start
 * re-registers the fd with epoll). Writes a flush is queued for are left to the flusher. */
static void poll_update(struct conn *c)
{
    if (!c->poll_open || uv_is_closing((uv_handle_t *)&c->poll))
        return;
    int want = c->flush ? c->events & ~UV_WRITABLE : c->events;
    if (want == c->armed)
        return;
    c->armed = want;
    if (want)
        uv_poll_start(&c->poll, want, poll_cb);
    else
        uv_poll_stop(&c->poll);
}

/* Write every connection's queued commands once per loop iteration, before the loop blocks
 * (one write, no epoll change unless the socket is full), after the iteration's batch. */
static void flush_cb(uv_prepare_t *h)
{
    struct redis_store *rs = h->data;
    uv_prepare_stop(h);   /* first: what the batch's send or failure queues restarts it */
    rs->hooks->flush(rs); /* the batch of sid pins and joins */
    for (struct conn *c = rs->all; c; c = c->next_all) {
        if (!c->flush)
            continue;
        c->flush = false;
        if (c->ac) {
            c->flushing = true;
            redisAsyncHandleWrite(c->ac); /* asks for write interest again when not done */
            c->flushing = false;
        }
        poll_update(c);
    }
}

void pr__rs_flush_soon(struct redis_store *rs) /* run the flusher before the loop blocks */
{
    if (!rs->closing && !uv_is_closing((uv_handle_t *)&rs->flusher))
        uv_prepare_start(&rs->flusher, flush_cb);
}

static void ev_add_read(void *p)
{
    struct conn *c = p;
    c->events |= UV_READABLE;
    poll_update(c);
}

static void ev_del_read(void *p)
{
    struct conn *c = p;
    c->events &= ~UV_READABLE;
    poll_update(c);
}

/* hiredis has bytes to send: a connected context leaves them to the flusher (unless the
 * flusher itself could not send them all); a connecting one needs writability to finish. */
static void ev_add_write(void *p)
{
    struct conn *c = p;
    c->events |= UV_WRITABLE;
    if (!c->flushing && c->ac && (c->ac->c.flags & REDIS_CONNECTED) && !c->rs->closing &&
        !uv_is_closing((uv_handle_t *)&c->rs->flusher)) {
        c->flush = true;
        pr__rs_flush_soon(c->rs);
    }
    poll_update(c);
}

static void ev_del_write(void *p)
{
    struct conn *c = p;
    c->events &= ~UV_WRITABLE;
    c->flush = false;
    poll_update(c);
}

/* Free c once hiredis, the poll handle and the resolver are all done with it. */
static void conn_maybe_free(struct conn *c)
{
    if (c->ac || c->poll_open || c->resolving)
        return;
    struct conn **pp = &c->rs->all;
    while (*pp && *pp != c)
        pp = &(*pp)->next_all;
    if (*pp)
        *pp = c->next_all;
    free(c);
}

/* The poll handle is closed: its memory (inside c) may go. */
static void poll_close_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->poll_open = false;
    conn_maybe_free(c);
}

/* hiredis is about to free the context: stop polling its socket. */
static void ev_cleanup(void *p)
{
    struct conn *c = p;
    c->events = 0;
    if (c->poll_open && !uv_is_closing((uv_handle_t *)&c->poll))
        uv_close((uv_handle_t *)&c->poll, poll_close_cb);
}

/* Attach ac to the loop through c's poll handle; 0 or a libuv error. */
static int attach(struct conn *c, redisAsyncContext *ac)
{
    int rc = uv_poll_init(c->rs->loop, &c->poll, ac->c.fd);
    if (rc)
        return rc;
    c->poll.data = c;
    c->poll_open = true;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->data = c;
    return 0;
}

/* ---- requests -------------------------------------------------------------------------- */

/* A request with a private copy of argv; NULL when out of memory. */
struct req *pr__rs_req_new(enum op op, int argc, const char **argv, const size_t *argl)
{
    if (argc > MAX_ARGS)
        return NULL;
    size_t total = 0;
    for (int i = 0; i < argc; i++)
        total += argl[i];
    struct req *q = calloc(1, sizeof(*q));
    char *buf = malloc(total ? total : 1);
    if (!q || !buf) {
        free(q);
        free(buf);
        return NULL;
    }
    q->op = (uint8_t)op;
    q->buf = buf;
    q->argc = argc;
    for (int i = 0; i < argc; i++) {
        memcpy(buf, argv[i], argl[i]);
        q->argv[i] = buf;
        q->argl[i] = argl[i];
        buf += argl[i];
    }
    return q;
}

void pr__rs_req_free(struct req *q) /* with its argument copies and batch entries */
{
    if (!q)
        return;
    free(q->buf);
    free(q->tail);
    free(q->batch);
    free(q);
}

/* Unlink q from its connection's FIFO. */
static void req_unlink(struct req *q)
{
    struct conn *c = q->conn;
    if (q->prev)
        q->prev->next = q->next;
    else if (c->head == q)
        c->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else if (c->tail == q)
        c->tail = q->prev;
    q->prev = q->next = NULL;
}

/* Queue q on c; 0, or -ENOTCONN when hiredis refuses (q not queued). */
int pr__rs_req_send(struct conn *c, struct req *q)
{
    if (!c || !c->ac)
        return -ENOTCONN;
    q->conn = c;
    char small[1024]; /* our own RESP: hiredis's formatter costs more than the store work */
    size_t n = q->head_len + q->tail_len;
    const char *tail = q->tail ? q->tail + q->tail_off : NULL;
    bool whole = q->head_len && !q->retried; /* the command is RESP already (OP_BATCH) */
    char *cmd = whole ? q->tail + q->tail_off - q->head_len
                      : pr_redis_command(small, sizeof(small), q->argc, q->argv, q->argl, tail,
                                         q->tail_len, q->tail_argc, &n);
    if (!cmd)
        return -ENOMEM;
    int rc = redisAsyncFormattedCommand(c->ac, reply_cb, q, cmd, n);
    if (cmd != small && !whole)
        free(cmd);
    if (rc != REDIS_OK)
        return -ENOTCONN;
    q->start_ns = uv_hrtime();
    q->deadline = now_ms() + CMD_TIMEOUT_MS;
    q->prev = c->tail;
    q->next = NULL;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    return 0;
}

/* ---- connections ----------------------------------------------------------------------- */

static void conn_ready(struct conn *c);

/* Send one setup command (argv of C strings) on c. */
static int setup_cmd(struct conn *c, enum op op, int argc, const char **argv)
{
    size_t argl[MAX_ARGS];
    for (int i = 0; i < argc; i++)
        argl[i] = strlen(argv[i]);
    struct req *q = pr__rs_req_new(op, argc, argv, argl);
    if (!q)
        return -ENOMEM;
    if (pr__rs_req_send(c, q) != 0) {
        pr__rs_req_free(q);
        return -ENOTCONN;
    }
    c->setup_left++;
    return 0;
}

/* hiredis finished connecting (or failed to). */
static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it when we return */
        conn_dead(c, -ECONNREFUSED, ac->errstr);
    }
}

/* hiredis lost the connection (or we freed it). */
static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    c->ac = NULL;
    conn_dead(c, -ECONNRESET,
              status == REDIS_OK ? "closed" : c->arena.refused ? c->arena.refused : ac->errstr);
}

/* Queue the setup of c: credentials, database, role check, script or subscription. */
static int conn_setup(struct conn *c)
{
    const struct pr_redis_url *u = &pr__rs_g.url;
    bool data = c->role == ROLE_CMD || c->role == ROLE_SUB;
    int rc = 0;
    if (data && u->password[0]) {
        const char *a2[] = {"AUTH", u->password};
        const char *a3[] = {"AUTH", u->user, u->password};
        rc = u->user[0] ? setup_cmd(c, OP_SETUP, 3, a3) : setup_cmd(c, OP_SETUP, 2, a2);
    }
    if (rc == 0 && data && u->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%u", (unsigned)u->db);
        const char *a[] = {"SELECT", db};
        rc = setup_cmd(c, OP_SETUP, 2, a);
    }
    if (rc == 0 && data && u->sentinel) {
        const char *a[] = {"ROLE"};
        rc = setup_cmd(c, OP_ROLE, 1, a);
    }
    if (rc == 0 && c->role == ROLE_CMD) {
        const char *a[] = {"SCRIPT", "LOAD", pr_redis_script};
        rc = setup_cmd(c, OP_SETUP, 3, a);
    }
    if (rc == 0 && c->role == ROLE_SENT_Q) {
        const char *a[] = {"SENTINEL", "get-master-addr-by-name", u->master};
        rc = setup_cmd(c, OP_SENTINEL, 3, a);
    }
    if (rc == 0 && (c->role == ROLE_SUB || c->role == ROLE_SENT_SUB)) {
        const char *ch = c->role == ROLE_SUB ? pr__rs_g.channel : "+switch-master";
        const char *a[] = {"SUBSCRIBE", ch};
        c->arena.channel = ch; /* the only push its reply functions let through */
        size_t l[] = {9, strlen(ch)};
        if (redisAsyncCommandArgv(c->ac, sub_cb, c, 2, a, l) != REDIS_OK)
            rc = -ENOTCONN;
    }
    return rc;
}

static void conn_connect(struct conn *c, const char *ip) /* failures end in conn_dead */
{
    redisAsyncContext *ac = redisAsyncConnect(ip, c->port);
    if (!ac) {
        conn_dead(c, -ENOMEM, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_dead(c, -ECONNREFUSED, why);
        return;
    }
    if (attach(c, ac) != 0) {
        redisAsyncFree(ac);
        conn_dead(c, -ENOMEM, "cannot poll the socket");
        return;
    }
    c->ac = ac;
    pr__rs_reply_fns(ac->c.reader, &c->arena, ac); /* no allocation per reply object */
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    if (conn_setup(c) != 0 && c->ac) {
        c->kill = true;
        c->fail_status = -ENOMEM;
        pr__rs_schedule_soon(c->rs);
    }
}

/* Host name resolved (off the loop thread): connect to the first address. */
static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct conn *c = req->data;
    c->resolving = false;
    char ip[64] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof(ip));
        else
            uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof(ip));
    }
    uv_freeaddrinfo(res);
    if (c->state == CS_DEAD || c->rs->closing) {
        conn_maybe_free(c);
        return;
    }
    if (!ip[0]) {
        conn_dead(c, -EHOSTUNREACH, status ? uv_strerror(status) : "no address");
        conn_maybe_free(c);
        return;
    }
    conn_connect(c, ip);
    conn_maybe_free(c);
}

/* Start a connection of role to host:port; it becomes live[role] at once. */
static void conn_start(struct redis_store *rs, enum role role, const char *host, uint16_t port,
                       uint32_t gen)
{
    if (rs->closing || uv_is_closing((uv_handle_t *)&rs->timer))
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->rs = rs;
    c->role = role;
    c->state = CS_CONNECTING;
    c->gen = gen;
    c->port = port;
    c->fail_status = -EIO;
    c->deadline = now_ms() + CONNECT_TIMEOUT_MS;
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->next_all = rs->all;
    rs->all = c;
    rs->live[role] = c;
    unsigned char tmp[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1) {
        conn_connect(c, host);
        conn_maybe_free(c);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    c->resolving = true;
    if (uv_getaddrinfo(rs->loop, &c->gai, gai_cb, host, NULL, &hints) != 0) {
        c->resolving = false;
        conn_dead(c, -EHOSTUNREACH, "cannot resolve");
        conn_maybe_free(c);
    }
}

/* Setup finished: the connection serves. */
static void conn_ready(struct conn *c)
{
    struct redis_store *rs = c->rs;
    if (c->state != CS_CONNECTING)
        return;
    c->state = CS_READY;
    c->was_ready = true;
    rs->backoff[c->role] = 0;
    if (c->role == ROLE_SENT_Q)
        return;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->port);
    if (rs->down_logged[c->role] || c->role != ROLE_CMD || rs->owner)
        pr_info("redis connected", "role", role_names[c->role], "host", c->host, "#port", port);
    rs->down_logged[c->role] = false;
    if (c->role == ROLE_CMD && rs->live[ROLE_CMD] == c)
        rs->hooks->cmd_state(rs, true);
}

/* c is gone or going: fail nothing here (hiredis calls every pending callback with a NULL
 * reply when it frees the context), detach it and schedule a reconnect. */
static void conn_dead(struct conn *c, int status, const char *why)
{
    struct redis_store *rs = c->rs;
    if (c->state == CS_DEAD)
        return;
    if (c->fail_status == -EIO)
        c->fail_status = status;
    bool was_ready = c->state == CS_READY;
    c->state = CS_DEAD;
    if (rs->live[c->role] != c)
        return;
    rs->live[c->role] = NULL;
    if (c->role == ROLE_CMD)
        rs->hooks->cmd_state(rs, false);
    if (rs->closing)
        return;
    uint32_t wait = next_backoff(rs, c->role);
    rs->retry_at[c->role] = now_ms() + wait;
    if (c->role == ROLE_CMD && rs->owner && pr__rs_g.url.sentinel)
        rs->need_master = true;
    if (c->role == ROLE_SENT_Q && !was_ready)
        rs->sentinel_next[ROLE_SENT_Q]++;
    if (c->role == ROLE_SENT_SUB)
        rs->sentinel_next[ROLE_SENT_SUB]++;
    if (c->role == ROLE_SENT_Q && was_ready)
        return; /* one-shot query answered */
    if (!rs->down_logged[c->role] && (c->role != ROLE_CMD || rs->owner || was_ready)) {
        rs->down_logged[c->role] = true;
        char port[8], ms[16];
        snprintf(port, sizeof(port), "%u", (unsigned)c->port);
        snprintf(ms, sizeof(ms), "%u", (unsigned)wait);
        pr_warn(c->role == ROLE_CMD ? "redis unreachable: routing from cache (degraded)"
                                    : "redis connection lost",
                "role", role_names[c->role], "host", c->host, "#port", port, "error",
                why ? why : "unknown", "#retry_in_ms", ms);
    }
}

/* Free c's context now (never from inside one of its callbacks). */
static void conn_kill(struct conn *c, int status, const char *why)
{
    c->fail_status = status;
    conn_dead(c, status, why);
    c->kill = false;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->data = c;
        redisAsyncFree(ac);
    }
    conn_maybe_free(c);
}

/* ---- replies --------------------------------------------------------------------------- */

/* Kill c from the timer soon (we may be inside one of its callbacks). */
static void conn_kill_later(struct conn *c, int status)
{
    if (c->state != CS_DEAD || c->ac) {
        c->fail_status = status;
        c->kill = true;
        pr__rs_schedule_soon(c->rs);
    }
}

/* true when reply is an error whose message starts with word. */
static bool reply_error_is(const redisReply *r, const char *word)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, word, strlen(word)) == 0;
}

/* A reply (or NULL when the context goes) for request q. */
static void reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct req *q = privdata;
    struct conn *c = q->conn;
    redisReply *reply = r;
    req_unlink(q);
    if (pr_metrics_self && q->op >= OP_GET)
        pr_hist_observe(&pr_metrics_self->store_duration,
                        (double)(uv_hrtime() - q->start_ns) / 1e9);
    if (reply_error_is(reply, "NOSCRIPT") && !q->retried && c->ac && q->argc >= 2) {
        /* Script cache flushed (failover, SCRIPT FLUSH): run the body once, which loads it. */
        q->retried = true;
        q->argv[0] = "EVAL";
        q->argl[0] = 4;
        q->argv[1] = pr_redis_script;
        q->argl[1] = strlen(pr_redis_script);
        if (pr__rs_req_send(c, q) == 0)
            return;
    }
    if (!reply && c->rs->hooks->lost(q))
        return; /* kept for the next connection (the waiting room) */
    if (q->op < OP_GET)
        handle_setup(q, reply, reply ? 0 : c->fail_status);
    else
        c->rs->hooks->reply(q, reply, reply ? 0 : c->fail_status);
    pr__rs_req_free(q);
}

/* A confirmed subscription is readable: messages only, without hiredis's dispatch; P events
 * read by us once hiredis's reader holds nothing (no unread byte, no reply begun). */
static void sub_read(struct conn *c)
{
    const redisReader *r = c->ac->c.reader;
    if (c->role != ROLE_SUB || r->reply || r->pos < r->len) {
        pr__rs_read_direct(c->ac, sub_msg, c);
        return;
    }
    int rc = pr__rs_read_events(c->ac, &c->arena, sub_event, c);
    if (rc == -EPROTO)
        conn_kill_later(c, -EPROTO);
    else if (rc < 0)
        redisAsyncHandleRead(c->ac); /* closed or failed: hiredis disconnects */
}

static void sub_event(void *arg, const char *msg, size_t len)
{
    struct conn *c = arg;
    if (c->state != CS_DEAD && !c->kill)
        c->rs->hooks->event(c->rs, msg, len);
}

/* Messages on a subscription (P events or +switch-master), through hiredis. */
static void sub_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    sub_msg(privdata, r);
}

/* One message (or the subscription's confirmation), from sub_cb or read directly. */
static void sub_msg(void *privdata, redisReply *reply)
{
    struct conn *c = privdata;
    if (!reply || c->state == CS_DEAD)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        if (c->setup_left == 0)
            conn_ready(c);
        return;
    }
    if (strcmp(kind, "message") != 0 || reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (c->role == ROLE_SUB)
        c->rs->hooks->event(c->rs, reply->element[2]->str, reply->element[2]->len);
    else
        pr__rs_switch_master(c->rs, reply->element[2]->str, reply->element[2]->len);
}

/* A setup reply: errors kill the connection; the last one makes it ready. */
static void handle_setup(struct req *q, redisReply *r, int status)
{
    struct conn *c = q->conn;
    if (c->state == CS_DEAD || c->kill)
        return;
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (ok && q->op == OP_ROLE)
        ok = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
    if (ok && q->op == OP_SENTINEL) {
        ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING;
        uint16_t port = 0;
        long p = ok ? strtol(r->element[1]->str, NULL, 10) : 0;
        if (ok && p > 0 && p < 65536 && r->element[0]->len <= PR_REDIS_HOST_MAX) {
            port = (uint16_t)p;
            pr__rs_master_set(r->element[0]->str, port);
            c->rs->need_master = false;
        } else {
            ok = false;
        }
    }
    if (!ok) {
        const char *why = !r                             ? "no reply"
                          : r->type == REDIS_REPLY_ERROR ? r->str
                          : q->op == OP_ROLE             ? "not a master"
                                                         : "unexpected reply";
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)c->port);
        if (r && q->op != OP_ROLE && !c->rs->down_logged[c->role])
            pr_warn("redis setup failed", "role", role_names[c->role], "host", c->host, "#port",
                    port, "error", why);
        if (q->op == OP_ROLE && c->rs->owner)
            c->rs->need_master = true;
        conn_kill_later(c, status ? status : -EPROTO);
        return;
    }
    if (c->setup_left > 0)
        c->setup_left--;
    if (c->setup_left == 0 && c->role != ROLE_SUB && c->role != ROLE_SENT_SUB) {
        conn_ready(c);
        if (c->role == ROLE_SENT_Q)
            conn_kill_later(c, -ECANCELED); /* one-shot */
    }
}

/* ---- timer: timeouts, kills, reconnects ------------------------------------------------- */

/* Connect whatever role is missing and due. */
static void reconnect(struct redis_store *rs, uint64_t now)
{
    char host[PR_REDIS_HOST_MAX + 1];
    uint16_t port;
    uint32_t gen;
    const struct pr_redis_url *u = &pr__rs_g.url;
    if (rs->owner && u->sentinel) {
        if (rs->need_master && !rs->live[ROLE_SENT_Q] && now >= rs->retry_at[ROLE_SENT_Q]) {
            const struct pr_redis_host *h = &u->hosts[rs->sentinel_next[ROLE_SENT_Q] % u->nhosts];
            conn_start(rs, ROLE_SENT_Q, h->host, h->port, 0);
        }
        if (!rs->live[ROLE_SENT_SUB] && now >= rs->retry_at[ROLE_SENT_SUB]) {
            const struct pr_redis_host *h = &u->hosts[rs->sentinel_next[ROLE_SENT_SUB] % u->nhosts];
            conn_start(rs, ROLE_SENT_SUB, h->host, h->port, 0);
        }
    }
    if (!pr__rs_master_addr(host, sizeof(host), &port, &gen))
        return;
    if (rs->owner && rs->need_master)
        return;
    if (!rs->live[ROLE_CMD] && now >= rs->retry_at[ROLE_CMD])
        conn_start(rs, ROLE_CMD, host, port, gen);
    if (rs->owner && !rs->live[ROLE_SUB] && now >= rs->retry_at[ROLE_SUB])
        conn_start(rs, ROLE_SUB, host, port, gen);
}

/* Every TIMER_MS: expire commands, free killed contexts, follow the master, reconnect, and
 * feed the write-back. */
void pr__rs_timer_cb(uv_timer_t *t)
{
    struct redis_store *rs = t->data;
    uint64_t now = now_ms();
    uint32_t gen = pr__rs_master_gen();
    for (struct conn *c = rs->all, *next; c; c = next) {
        next = c->next_all;
        if (c->kill) {
            conn_kill(c, c->fail_status, "closed");
            continue;
        }
        if (c->state == CS_DEAD)
            continue;
        if (c->state != CS_READY && now >= c->deadline) {
            conn_kill(c, -ETIMEDOUT, "connect/setup timed out");
        } else if (c->head && now >= c->head->deadline) {
            conn_kill(c, -ETIMEDOUT, "command timed out");
        } else if ((c->role == ROLE_CMD || c->role == ROLE_SUB) && c->gen != gen) {
            rs->backoff[c->role] = 0;
            conn_kill(c, -ECONNRESET, "master changed");
            rs->retry_at[c->role] = now;
            if (rs->owner && c->role == ROLE_CMD)
                rs->need_master = false; /* the switch told us where it is */
        }
    }
    if (gen != rs->seen_gen) {
        /* A new master: try it at once, whatever the backoff against the old one was. */
        rs->seen_gen = gen;
        rs->backoff[ROLE_CMD] = rs->backoff[ROLE_SUB] = 0;
        rs->retry_at[ROLE_CMD] = rs->retry_at[ROLE_SUB] = now;
    }
    reconnect(rs, now);
    rs->hooks->timer(rs);
    if (uv_timer_get_repeat(t) != TIMER_MS)
        uv_timer_start(t, pr__rs_timer_cb, TIMER_MS, TIMER_MS);
}

/* Run the timer at once (e.g. to free a context marked inside its callback). */
void pr__rs_schedule_soon(struct redis_store *rs)
{
    if (rs->closing || uv_is_closing((uv_handle_t *)&rs->timer))
        return;
    uv_timer_start(&rs->timer, pr__rs_timer_cb, 0, 1);
}

static void own_handle_closed(uv_handle_t *h)
{
    struct redis_store *rs = h->data;
    rs->handles_closing--;
}

/* Close every connection and the timer of rs (pending calls get -ECANCELED) and free them.
 * The loop runs until the handles inside rs are closed too (rs is freed next), also when no
 * connection is open (Redis down, between reconnects). */
void pr__rs_conns_close(struct redis_store *rs)
{
    bool run = false;
    for (struct conn *c = rs->all; c; c = c->next_all) {
        if (c->ac) {
            redisAsyncContext *ac = c->ac;
            c->fail_status = -ECANCELED;
            conn_dead(c, -ECANCELED, "closing");
            c->ac = NULL;
            redisAsyncFree(ac);
        }
        if (c->poll_open && !uv_is_closing((uv_handle_t *)&c->poll)) {
            uv_close((uv_handle_t *)&c->poll, poll_close_cb);
            run = true;
        }
        if (c->resolving) {
            uv_cancel((uv_req_t *)&c->gai);
            run = true;
        }
    }
    if (!uv_is_closing((uv_handle_t *)&rs->timer)) {
        uv_close((uv_handle_t *)&rs->timer, own_handle_closed);
        rs->handles_closing++;
        run = true;
    }
    if (!uv_is_closing((uv_handle_t *)&rs->flusher)) {
        uv_close((uv_handle_t *)&rs->flusher, own_handle_closed);
        rs->handles_closing++;
        run = true;
    }
    for (int i = 0; run && i < 100 && (rs->all || rs->handles_closing); i++)
        uv_run(rs->loop, UV_RUN_NOWAIT);
    /* Whatever is left had its poll handle closed by the loop's shutdown walk. */
    while (rs->all) {
        struct conn *c = rs->all;
        rs->all = c->next_all;
        if (!c->resolving)
            free(c);
    }
}
