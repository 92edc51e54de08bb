/* Redis store (SPEC 6): hiredis 0.14 async on each worker's libuv loop.
 *
 * Shape
 *   - One handle per loop (pr_store_open per worker). Each handle owns one command
 *     connection. The first handle opened in the process (worker 0) is the owner: it also
 *     owns the subscriber connection on P events, the Sentinel connections, the once-a-second
 *     pod reload and the write-back after an outage.
 *   - Every handle reads and writes one process-wide cache (redis_cache.c). A cache hit answers
 *     synchronously and sends nothing, so a steady stream of requests for known keys costs no
 *     Redis command; TTL renewals go out at most once a minute per key (fire-and-forget).
 *   - Misses GET the key; creations, moves, operator pins, deletions, participant counting and
 *     pod changes run the one Lua script (redis_script.lua.h, SCRIPT LOAD on every connect,
 *     EVALSHA, EVAL fallback on NOSCRIPT), which also PUBLISHes a compact message on P events
 *     (formats in redis_proto.h). The subscriber applies every message to the cache and the
 *     registry, so all replicas converge at once; the owner also reloads the pod table (one
 *     EVALSHA) every second and sets pod loads from the cache.
 *   - Room values are HyperStudy's JSON at room:{roomId}:pod; a value written by anyone with a
 *     podId is honoured (podId may be a pod name or its DNS name). Participant counting keeps
 *     the distinct identities in P room-members:{roomId} (an addition to SPEC 6.1's keys) so
 *     replicas do not double count.
 *
 * Failure handling (SPEC 6.3)
 *   - Every command carries a deadline (CMD_TIMEOUT_MS); connects and the setup
 *     (AUTH, SELECT, ROLE under Sentinel, SCRIPT LOAD or SUBSCRIBE) have CONNECT_TIMEOUT_MS.
 *     A timeout kills the connection: pending calls get -ETIMEDOUT, the handle is down.
 *   - While a handle is down, lookups answer from the cache, misses fail at once (-ENOTCONN)
 *     so the proxy places by bounded hashing, and creations/moves are cached marked dirty.
 *     Reconnects back off exponentially from 100 ms to 5 s (with jitter).
 *   - When the owner's command connection is back it writes back every cached assignment with
 *     the create script (SET NX semantics: an assignment another replica stored first wins
 *     and is adopted; an empty Redis is repopulated without moving anything) and re-puts the
 *     live pods. Dirty entries made later by other loops are written back from tick.
 *   - redis-sentinel://: the owner asks the sentinels in turn for the master, watches
 *     +switch-master, and every handle reconnects to the new master (a short outage). Under
 *     Sentinel each connection checks ROLE is master before it is used.
 *
 * Rules
 *   - Every store call calls back exactly once: on reply, timeout, disconnect or close.
 *   - A hiredis context is never freed inside one of its own callbacks: the connection is
 *     marked and the handle's timer frees it; its memory goes in the poll handle's close_cb
 *     (or in close, after loop.c's shutdown walk closed every handle).
 *   - The adapter is modelled on hiredis/adapters/libuv.h but keeps its uv_poll_t inside our
 *     connection, because loop.c closes every handle at shutdown before the store is closed
 *     (the stock adapter would uv_close an already closed handle and leak its state).
 *   - The password never reaches a log line. */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "atable.h"
#include "podrouter/config.h"
#include "podrouter/log.h"
#include "podrouter/metrics.h"
#include "podrouter/redis_proto.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"
#include "redis_cache.h"

#define CMD_TIMEOUT_MS 500u
#define CONNECT_TIMEOUT_MS 1000u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define TIMER_MS 100u
#define RELOAD_MS 1000u
#define WRITEBACK_BATCH 256u
#define WRITEBACK_INFLIGHT 1024u
#define MEMBERS_MAX 4096u
#define MAX_ARGS 16
#define ACTIVE_BATCH 7    /* rooms per HSET (2 + 2 * 7 arguments = MAX_ARGS) */
#define ACTIVE_MAX 65536u /* activity reports per tick */
#define ACTIVE_FRESH_MS 3000u

enum role { ROLE_CMD = 0, ROLE_SUB, ROLE_SENT_Q, ROLE_SENT_SUB, ROLE__COUNT };

static const char *const role_names[ROLE__COUNT] = {"command", "subscriber", "sentinel-query",
                                                    "sentinel-watch"};

enum conn_state { CS_CONNECTING = 0, CS_READY, CS_DEAD };

enum op {
    OP_SETUP = 0, /* AUTH, SELECT, SCRIPT LOAD */
    OP_ROLE,      /* ROLE must say master */
    OP_SENTINEL,  /* SENTINEL get-master-addr-by-name */
    OP_GET,
    OP_CREATE,
    OP_REPLACE,
    OP_FIRE, /* set, del, renew, pod changes: nothing to do with the answer */
    OP_JOIN,
    OP_RENEW,
    OP_PODS,
    OP_WRITEBACK,
    OP_ACTIVE, /* per-pod active load over all replicas */
};

struct redis_store;

/* When a pod last heartbeated through this replica's own admin API. */
struct beat {
    char name[PR_POD_NAME_MAX + 1];
    uint64_t mono;
};

struct conn {
    struct conn *next_all;
    struct redis_store *rs;
    enum role role;
    enum conn_state state;
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
    bool poll_open; /* initialised and its close_cb not run yet */
    bool resolving; /* uv_getaddrinfo in flight */
    bool kill;      /* free the context from the timer (asked inside a callback) */
    bool was_ready;
    int fail_status; /* status given to calls still pending when the context goes */
    unsigned setup_left;
    uint32_t gen; /* master generation it connected to */
    uint64_t deadline;
    struct req *head, *tail;
    uv_getaddrinfo_t gai;
    char host[PR_REDIS_HOST_MAX + 1];
    uint16_t port;
};

struct req {
    struct req *prev, *next;
    struct conn *conn;
    uint64_t deadline;
    uint64_t start_ns;
    uint8_t op;
    uint8_t kind;
    uint8_t key_len;
    bool retried;
    pr_store_cb cb;
    void *arg;
    uint32_t count;
    uint64_t at;
    char key[PR_KEY_MAX + 1];
    char pod[PR_POD_NAME_MAX + 1];
    int argc;
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    char *buf;
};

/* Process-wide settings and the master address (guarded by g_mu). */
struct shared {
    unsigned refs;
    struct pr_redis_url url;
    char prefix[128];
    char channel[PR_REDIS_KEY_MAX];
    char pods_key[PR_REDIS_KEY_MAX];
    char pod_key_prefix[PR_REDIS_KEY_MAX];
    char active_key[PR_REDIS_KEY_MAX]; /* P active: hash of activity reports */
    uint64_t active_ms;
    uint64_t max_per_kind;
    char sha[41];
    uint64_t ttl[3];
    uint64_t pod_key_ttl;
    uint64_t pod_ttl;
    char master_host[PR_REDIS_HOST_MAX + 1];
    uint16_t master_port;
    uint32_t master_gen; /* 0: unknown yet */
    bool owner_taken;
};

struct redis_store {
    struct pr_store base;
    uv_loop_t *loop;
    struct pr_registry *reg;
    bool owner;
    bool closing;
    uv_timer_t timer;
    struct conn *live[ROLE__COUNT];
    struct conn *all;
    uint64_t retry_at[ROLE__COUNT];
    uint32_t backoff[ROLE__COUNT];
    bool down_logged[ROLE__COUNT];
    size_t sentinel_next[ROLE__COUNT];
    bool need_master; /* owner under Sentinel: ask before (re)connecting */
    uint64_t last_reload;
    bool wb_active, wb_full;
    size_t wb_cursor;
    uint32_t wb_inflight;
    uint64_t wb_written, wb_adopted;
    uint32_t rand_state;
    uint32_t seen_gen;  /* master generation the reconnect schedule is for */
    struct beat *beats; /* owner: pods heartbeating through this replica's admin API */
    size_t nbeats;
    uint64_t active_at; /* owner: monotonic ms the shared active loads were last applied */
    struct pr_touch_cache touched; /* this loop's touch throttle */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct shared g;

static void conn_dead(struct conn *c, int status, const char *why);
static void schedule_soon(struct redis_store *rs);

/* ---- small helpers ------------------------------------------------------------------- */

/* Monotonic milliseconds. */
static uint64_t now_ms(void)
{
    return pr_mono_ms();
}

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

/* Copy of the current master address; false when not known yet. */
static bool master_addr(char *host, size_t cap, uint16_t *port, uint32_t *gen)
{
    pthread_mutex_lock(&g_mu);
    bool ok = g.master_gen != 0;
    if (ok) {
        snprintf(host, cap, "%s", g.master_host);
        *port = g.master_port;
        *gen = g.master_gen;
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

/* Record host:port as the master; bumps the generation when it changed. */
static void master_set(const char *host, uint16_t port)
{
    pthread_mutex_lock(&g_mu);
    if (g.master_gen == 0 || strcmp(g.master_host, host) != 0 || g.master_port != port) {
        snprintf(g.master_host, sizeof(g.master_host), "%s", host);
        g.master_port = port;
        g.master_gen++;
        char p[8];
        snprintf(p, sizeof(p), "%u", (unsigned)port);
        pr_info("redis master", "host", host, "#port", p);
    }
    pthread_mutex_unlock(&g_mu);
}

/* Current master generation (0 = unknown). */
static uint32_t master_gen(void)
{
    pthread_mutex_lock(&g_mu);
    uint32_t gen = g.master_gen;
    pthread_mutex_unlock(&g_mu);
    return gen;
}

/* true when the handle's command connection is ready. */
static bool is_up(const struct redis_store *rs)
{
    return rs->live[ROLE_CMD] && rs->live[ROLE_CMD]->state == CS_READY;
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
    if (events & UV_READABLE)
        redisAsyncHandleRead(c->ac);
    if (c->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(c->ac);
}

/* Start/stop polling for the current interest set. */
static void poll_update(struct conn *c)
{
    if (!c->poll_open || uv_is_closing((uv_handle_t *)&c->poll))
        return;
    if (c->events)
        uv_poll_start(&c->poll, c->events, poll_cb);
    else
        uv_poll_stop(&c->poll);
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

static void ev_add_write(void *p)
{
    struct conn *c = p;
    c->events |= UV_WRITABLE;
    poll_update(c);
}

static void ev_del_write(void *p)
{
    struct conn *c = p;
    c->events &= ~UV_WRITABLE;
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
static struct req *req_new(enum op op, int argc, const char **argv, const size_t *argl)
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

/* Free a request. */
static void req_free(struct req *q)
{
    if (!q)
        return;
    free(q->buf);
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

static void reply_cb(redisAsyncContext *ac, void *r, void *privdata);

/* Queue q on c; 0, or -ENOTCONN when hiredis refuses (q not queued). */
static int req_send(struct conn *c, struct req *q)
{
    if (!c || !c->ac)
        return -ENOTCONN;
    q->conn = c;
    if (redisAsyncCommandArgv(c->ac, reply_cb, q, q->argc, q->argv, q->argl) != REDIS_OK)
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
    struct req *q = req_new(op, argc, argv, argl);
    if (!q)
        return -ENOMEM;
    if (req_send(c, q) != 0) {
        req_free(q);
        return -ENOTCONN;
    }
    c->setup_left++;
    return 0;
}

static void sub_cb(redisAsyncContext *ac, void *r, void *privdata);

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
    conn_dead(c, -ECONNRESET, status == REDIS_OK ? "closed" : ac->errstr);
}

/* Queue the setup of c: credentials, database, role check, script or subscription. */
static int conn_setup(struct conn *c)
{
    const struct pr_redis_url *u = &g.url;
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
        const char *ch = c->role == ROLE_SUB ? g.channel : "+switch-master";
        const char *a[] = {"SUBSCRIBE", ch};
        size_t l[] = {9, strlen(ch)};
        if (redisAsyncCommandArgv(c->ac, sub_cb, c, 2, a, l) != REDIS_OK)
            rc = -ENOTCONN;
    }
    return rc;
}

/* Connect c to the numeric address ip; failures end in conn_dead. */
static void conn_connect(struct conn *c, const char *ip)
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
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    if (conn_setup(c) != 0 && c->ac) {
        c->kill = true;
        c->fail_status = -ENOMEM;
        schedule_soon(c->rs);
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

static void writeback_start(struct redis_store *rs, bool full);
static void reload_pods(struct redis_store *rs);

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
    if (c->role == ROLE_CMD && rs->owner) {
        writeback_start(rs, true);
        reload_pods(rs);
    }
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
    if (rs->closing)
        return;
    uint32_t wait = next_backoff(rs, c->role);
    rs->retry_at[c->role] = now_ms() + wait;
    if (c->role == ROLE_CMD && rs->owner && g.url.sentinel)
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
        schedule_soon(c->rs);
    }
}

/* true when reply is an error whose message starts with word. */
static bool reply_error_is(const redisReply *r, const char *word)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, word, strlen(word)) == 0;
}

static void handle_reply(struct req *q, redisReply *r, int status);

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
        if (req_send(c, q) == 0)
            return;
    }
    handle_reply(q, reply, reply ? 0 : c->fail_status);
    req_free(q);
}

/* Messages on a subscription (P events or +switch-master). */
static void apply_event(struct redis_store *rs, const char *msg, size_t len);
static void switch_master(struct redis_store *rs, const char *msg, size_t len);

static void sub_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct conn *c = privdata;
    redisReply *reply = r;
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
        apply_event(c->rs, reply->element[2]->str, reply->element[2]->len);
    else
        switch_master(c->rs, reply->element[2]->str, reply->element[2]->len);
}

/* A podId another writer gave as a DNS name (backend-1.backend.ns.svc…) names the
 * registered pod of its first label, unless a pod is registered under the full name. */
static void pod_alias(struct pr_registry *reg, char pod[PR_POD_NAME_MAX + 1])
{
    const char *dot = strchr(pod, '.');
    struct pr_pod_info info;
    if (!dot || pr_registry_get(reg, pod, &info) == 0)
        return;
    char first[PR_POD_NAME_MAX + 1];
    snprintf(first, sizeof(first), "%.*s", (int)(dot - pod), pod);
    if (pr_registry_get(reg, first, &info) == 0)
        memcpy(pod, first, sizeof(first));
}

/* Parse a plain or room value of q's key; 0 with pod/count/at, or -EINVAL. */
static int value_of(const struct req *q, const redisReply *v, char pod[PR_POD_NAME_MAX + 1],
                    uint32_t *count, uint64_t *at)
{
    if (!v || v->type != REDIS_REPLY_STRING)
        return -EINVAL;
    int rc = pr_redis_value_pod((enum pr_key_kind)q->kind, v->str, v->len, pod, count, at);
    if (rc == 0)
        pod_alias(q->conn->rs->reg, pod);
    return rc;
}

/* The [flag, value] answer of create/replace; 0 with the value parsed, else -EINVAL. */
static int script_value(const struct req *q, const redisReply *r, char pod[PR_POD_NAME_MAX + 1],
                        uint32_t *count, uint64_t *at, bool *written)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return -EINVAL;
    *written = r->element[0]->integer == 1;
    return value_of(q, r->element[1], pod, count, at);
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
            master_set(r->element[0]->str, port);
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

static void writeback_done(struct redis_store *rs);
static void send_renew(struct redis_store *rs, enum pr_key_kind kind, const char *key, size_t len,
                       const char *pod);

/* Per-pod totals of an OP_ACTIVE answer. */
struct active_row {
    char name[PR_POD_NAME_MAX + 1];
    uint32_t rooms, participants;
};

/* Set every registered pod's load from the shared activity sums ({pod, rooms, parts}...):
 * active rooms over all replicas (SPEC 5). */
static void apply_active(struct redis_store *rs, const redisReply *r)
{
    struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
    struct active_row *rows = calloc(r->elements / 3 + 1, sizeof(*rows));
    if (!pods || !rows) {
        free(pods);
        free(rows);
        return;
    }
    size_t nrows = 0;
    for (size_t i = 0; i + 2 < r->elements; i += 3) {
        const redisReply *p = r->element[i], *a = r->element[i + 1], *b = r->element[i + 2];
        if (p->type != REDIS_REPLY_STRING || a->type != REDIS_REPLY_INTEGER ||
            b->type != REDIS_REPLY_INTEGER || p->len > PR_POD_NAME_MAX)
            continue;
        struct active_row *row = &rows[nrows++];
        memcpy(row->name, p->str, p->len);
        row->name[p->len] = '\0';
        row->rooms = a->integer < 0            ? 0
                     : a->integer > UINT32_MAX ? UINT32_MAX
                                               : (uint32_t)a->integer;
        row->participants = b->integer < 0            ? 0
                            : b->integer > UINT32_MAX ? UINT32_MAX
                                                      : (uint32_t)b->integer;
    }
    size_t n = pr_registry_snapshot(rs->reg, pods, PR_MAX_PODS);
    for (size_t i = 0; i < n && i < PR_MAX_PODS; i++) {
        uint32_t rooms = 0, parts = 0;
        for (size_t k = 0; k < nrows; k++) {
            if (strcmp(rows[k].name, pods[i].name) == 0) {
                rooms = rows[k].rooms;
                parts = rows[k].participants;
                break;
            }
        }
        pr_registry_set_load(rs->reg, pods[i].name, rooms, parts);
    }
    rs->active_at = now_ms();
    free(pods);
    free(rows);
}

/* Dispatch a reply (r NULL with status < 0 when none came) to what asked for it. */
static void handle_reply(struct req *q, redisReply *r, int status)
{
    struct conn *c = q->conn;
    struct redis_store *rs = c->rs;
    enum pr_key_kind kind = (enum pr_key_kind)q->kind;
    char pod[PR_POD_NAME_MAX + 1], out[PR_POD_NAME_MAX + 1];
    uint32_t count = 0;
    uint64_t at = 0;
    bool written = false;
    if (r && r->type == REDIS_REPLY_ERROR && q->op >= OP_GET) {
        char why[160];
        snprintf(why, sizeof(why), "%s", r->str ? r->str : "error");
        pr_warn("redis command failed", "error", why);
        status = -EIO;
    }
    switch ((enum op)q->op) {
    case OP_SETUP:
    case OP_ROLE:
    case OP_SENTINEL:
        handle_setup(q, r, status);
        return;
    case OP_GET:
        if (status != 0) {
            q->cb(q->arg, status, NULL);
        } else if (r->type == REDIS_REPLY_NIL || value_of(q, r, pod, &count, &at) != 0) {
            q->cb(q->arg, -ENOENT, NULL); /* absent, or garbage nobody can route by */
        } else if (pr__rc_put(kind, q->key, q->key_len, pod, count, at, PR_RC_IF_ABSENT, false,
                              out) == 0) {
            /* Found in Redis: another request (maybe elsewhere) created it, so this is at least
             * its second use: live for its full TTL there too (SPEC 3.6). */
            pr__rc_use(kind, q->key, q->key_len, 0, true, NULL, NULL, NULL);
            send_renew(rs, kind, q->key, q->key_len, out);
            q->cb(q->arg, 0, out);
        } else {
            q->cb(q->arg, 0, pod);
        }
        return;
    case OP_CREATE:
    case OP_REPLACE:
        if (status == 0 && script_value(q, r, pod, &count, &at, &written) == 0) {
            if (pr__rc_put(kind, q->key, q->key_len, pod, count, at, PR_RC_OVERWRITE, false, out) !=
                0)
                snprintf(out, sizeof(out), "%s", pod);
            /* A create that found a winner, or a move: this request is a second use (the
             * script gave the key its full TTL). A fresh create stays tentative. */
            if (q->op == OP_REPLACE || !written)
                pr__rc_use(kind, q->key, q->key_len, 0, true, NULL, NULL, NULL);
            q->cb(q->arg, 0, out);
            return;
        }
        /* No answer: keep our choice locally, to be written back (SPEC 6.3). */
        if (q->op == OP_CREATE)
            pr__rc_put(kind, q->key, q->key_len, q->pod, 0, 0, PR_RC_IF_ABSENT, true, NULL);
        q->cb(q->arg, status ? status : -EPROTO, NULL);
        return;
    case OP_WRITEBACK:
        if (rs->wb_inflight > 0)
            rs->wb_inflight--;
        if (status == 0 && script_value(q, r, pod, &count, &at, &written) == 0) {
            if (written) {
                rs->wb_written++;
            } else if (strcmp(pod, q->pod) != 0) {
                rs->wb_adopted++;
                pr_info("assignment adopted from another replica", "kind", pr_redis_kind_name(kind),
                        "key", q->key, "pod", pod, "was", q->pod);
            }
            pr__rc_put(kind, q->key, q->key_len, pod, count, at, PR_RC_OVERWRITE, false, NULL);
        }
        writeback_done(rs);
        return;
    case OP_JOIN:
        if (status == 0 && r->type == REDIS_REPLY_INTEGER && r->integer >= 0)
            pr__rc_set_count(q->key, q->key_len, (uint32_t)r->integer);
        return;
    case OP_RENEW:
        /* The key vanished from Redis (restarted without data, evicted): write it back. */
        if (status == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
            pr__rc_put(kind, q->key, q->key_len, q->pod, 0, 0, PR_RC_OVERWRITE, true, NULL);
        return;
    case OP_PODS:
        if (status == 0 && r->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < r->elements; i++) {
                const redisReply *e = r->element[i];
                struct pr_redis_pod p;
                if (e->type != REDIS_REPLY_STRING || pr_redis_pod_parse(e->str, e->len, &p) != 0)
                    continue;
                struct pr_pod_remote rem = {p.name,        p.address,          p.zone,
                                            p.cap_rooms,   p.cap_participants, p.draining,
                                            p.last_seen_ms};
                bool created = false;
                if (pr_registry_merge(rs->reg, &rem, &created) == 0 && created)
                    pr_info("pod learned from another replica", "pod", p.name, "address",
                            p.address);
            }
        }
        return;
    case OP_ACTIVE:
        if (status == 0 && r->type == REDIS_REPLY_ARRAY)
            apply_active(rs, r);
        return;
    case OP_FIRE:
        return;
    }
}

/* ---- commands -------------------------------------------------------------------------- */

/* Run the script: keys then args (C strings; args[0] is the op). q->op set by caller via op.
 * Returns the queued request, or NULL (not queued: connection down or out of memory). */
static struct req *script(struct redis_store *rs, enum op op, int nkeys, const char **keys,
                          int nargs, const char **args)
{
    if (!is_up(rs))
        return NULL;
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    char nk[4];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    int argc = 0;
    if (3 + nkeys + 1 + nargs > MAX_ARGS)
        return NULL;
    argv[argc++] = "EVALSHA";
    argv[argc++] = g.sha;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    argv[argc++] = args[0];
    argv[argc++] = g.channel;
    for (int i = 1; i < nargs; i++)
        argv[argc++] = args[i];
    for (int i = 0; i < argc; i++)
        argl[i] = strlen(argv[i]);
    struct req *q = req_new(op, argc, argv, argl);
    if (!q)
        return NULL;
    if (req_send(rs->live[ROLE_CMD], q) != 0) {
        req_free(q);
        return NULL;
    }
    return q;
}

/* Fill q's key fields. */
static void req_key(struct req *q, enum pr_key_kind kind, const char *key, size_t len,
                    const char *pod)
{
    q->kind = (uint8_t)kind;
    q->key_len = (uint8_t)len;
    memcpy(q->key, key, len);
    q->key[len] = '\0';
    if (pod)
        snprintf(q->pod, sizeof(q->pod), "%s", pod);
}

/* Push buffered commands to the socket now (sid pins must reach Redis before the client
 * can ask another replica). */
static void flush_now(struct redis_store *rs)
{
    struct conn *c = rs->live[ROLE_CMD];
    if (c && c->ac && c->state == CS_READY)
        redisAsyncHandleWrite(c->ac);
}

/* Assignment key of kind:key into buf; false when it cannot be built. */
static bool akey(char *buf, size_t cap, enum pr_key_kind kind, const char *key, size_t len)
{
    return pr_redis_assignment_key(buf, cap, g.prefix, kind, key, len) > 0;
}

/* Send the create script for kind:key -> pod (count/at for rooms). */
static struct req *send_create(struct redis_store *rs, enum op op, enum pr_key_kind kind,
                               const char *key, size_t len, const char *pod, uint32_t count,
                               uint64_t at, bool tentative)
{
    char k[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1], ttl[24], cnt[16], ats[24], shortttl[24];
    if (!akey(k, sizeof(k), kind, key, len))
        return NULL;
    snprintf(id, sizeof(id), "%.*s", (int)len, key);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)g.ttl[kind]);
    snprintf(cnt, sizeof(cnt), "%u", (unsigned)count);
    snprintf(ats, sizeof(ats), "%llu", (unsigned long long)(at ? at : pr_now_ms()));
    snprintf(shortttl, sizeof(shortttl), "%llu", (unsigned long long)(tentative ? g.active_ms : 0));
    const char *keys[] = {k};
    const char *args[] = {"create", pr_redis_kind_name(kind), id, pod, ttl, cnt, ats, shortttl};
    struct req *q = script(rs, op, 1, keys, 8, args);
    if (q) {
        req_key(q, kind, key, len, pod);
        q->count = count;
        q->at = at;
    }
    return q;
}

/* Renew kind:key's TTL in Redis (fire-and-forget; a vanished key is written back). */
static void send_renew(struct redis_store *rs, enum pr_key_kind kind, const char *key, size_t len,
                       const char *pod)
{
    char k[PR_REDIS_KEY_MAX], m[PR_REDIS_KEY_MAX], ttl[24];
    if (!akey(k, sizeof(k), kind, key, len))
        return;
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)g.ttl[kind]);
    const char *keys[] = {k, m};
    int nkeys = 1;
    if (kind == PR_KEY_ROOM && pr_redis_members_key(m, sizeof(m), g.prefix, key, len) > 0)
        nkeys = 2;
    const char *args[] = {"renew", ttl};
    struct req *q = script(rs, OP_RENEW, nkeys, keys, 2, args);
    if (q)
        req_key(q, kind, key, len, pod);
}

/* ---- store operations ------------------------------------------------------------------ */

/* Look up kind:key: the cache first, then Redis. */
static void r_get(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                  pr_store_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    char pod[PR_POD_NAME_MAX + 1], k[PR_REDIS_KEY_MAX];
    bool renew = false;
    int rc = pr__rc_get(kind, key, len, pod, &renew);
    if (rc == -EINVAL || !akey(k, sizeof(k), kind, key, len)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    if (rc == 0) {
        if (renew)
            send_renew(rs, kind, key, len, pod);
        pr__touch_due(&rs->touched, pr__atab_hash((uint8_t)kind, key, len), now_ms(),
                      pr__rc_touch_every());
        cb(arg, 0, pod);
        return;
    }
    if (!is_up(rs)) {
        cb(arg, -ENOTCONN, NULL);
        return;
    }
    const char *argv[] = {"GET", k};
    size_t argl[] = {3, strlen(k)};
    struct req *q = req_new(OP_GET, 2, argv, argl);
    if (!q) {
        cb(arg, -ENOMEM, NULL);
        return;
    }
    req_key(q, kind, key, len, NULL);
    q->cb = cb;
    q->arg = arg;
    if (req_send(rs->live[ROLE_CMD], q) != 0) {
        req_free(q);
        cb(arg, -ENOTCONN, NULL);
    }
}

/* Create kind:key -> pod unless assigned; cb gets the winner. */
static void r_create(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                     const char *pod, pr_store_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    char cached[PR_POD_NAME_MAX + 1], k[PR_REDIS_KEY_MAX];
    if (!pod || !pr_pod_name_valid(pod, strlen(pod)) || !akey(k, sizeof(k), kind, key, len)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    bool renew = false;
    if (pr__rc_get(kind, key, len, cached, &renew) == 0) {
        if (renew)
            send_renew(rs, kind, key, len, cached);
        cb(arg, 0, cached);
        return;
    }
    if (pr__rc_full(kind)) {
        cb(arg, -ENOSPC, NULL); /* --max-assignments: routed, not stored (SPEC 3.6) */
        return;
    }
    struct req *q = is_up(rs) ? send_create(rs, OP_CREATE, kind, key, len, pod, 0, 0, true) : NULL;
    if (!q) {
        /* Degraded: the choice is ours until Redis is back (then first writer wins). */
        int rc = pr__rc_put(kind, key, len, pod, 0, 0, PR_RC_IF_ABSENT, true, cached);
        cb(arg, rc, rc == 0 ? cached : NULL);
        return;
    }
    q->cb = cb;
    q->arg = arg;
    if (kind == PR_KEY_SID)
        flush_now(rs);
}

/* Compare-and-set kind:key from expect (or absent) to pod. */
static void r_replace(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                      const char *expect, const char *pod, pr_store_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1], ttl[24], now[24], out[PR_POD_NAME_MAX + 1];
    if (!pod || !pr_pod_name_valid(pod, strlen(pod)) || !akey(k, sizeof(k), kind, key, len)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    struct req *q = NULL;
    if (is_up(rs)) {
        snprintf(id, sizeof(id), "%.*s", (int)len, key);
        snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)g.ttl[kind]);
        snprintf(now, sizeof(now), "%llu", (unsigned long long)pr_now_ms());
        const char *keys[] = {k};
        const char *args[] = {
            "replace", pr_redis_kind_name(kind), id, expect ? expect : "", pod, ttl, now};
        q = script(rs, OP_REPLACE, 1, keys, 7, args);
    }
    if (!q) {
        int rc = pr__rc_replace(kind, key, len, expect, pod, out);
        cb(arg, rc, rc == 0 ? out : NULL);
        return;
    }
    req_key(q, kind, key, len, pod);
    q->cb = cb;
    q->arg = arg;
}

/* Operator pin: cache now, Redis in the background; -ENOTCONN while Redis is down. */
static int r_set(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                 const char *pod)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1], ttl[24], now[24];
    if (!pod || !pr_pod_name_valid(pod, strlen(pod)) || !akey(k, sizeof(k), kind, key, len))
        return -EINVAL;
    if (!is_up(rs))
        return -ENOTCONN;
    snprintf(id, sizeof(id), "%.*s", (int)len, key);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)g.ttl[kind]);
    uint64_t at = pr_now_ms();
    snprintf(now, sizeof(now), "%llu", (unsigned long long)at);
    const char *keys[] = {k};
    const char *args[] = {"set", pr_redis_kind_name(kind), id, pod, ttl, now};
    if (!script(rs, OP_FIRE, 1, keys, 6, args))
        return -ENOTCONN;
    int rc = pr__rc_put(kind, key, len, pod, 0, at, PR_RC_OVERWRITE, false, NULL);
    if (rc == 0) /* an operator pin is live at once (the script wrote the full TTL) */
        pr__rc_use(kind, key, len, 0, false, NULL, NULL, NULL);
    return rc;
}

/* Operator removal: 0 when this replica knew the assignment, else -ENOENT (removed from
 * Redis either way); -ENOTCONN while Redis is down. */
static int r_del(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX], m[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1];
    if (!akey(k, sizeof(k), kind, key, len))
        return -EINVAL;
    if (!is_up(rs))
        return -ENOTCONN;
    snprintf(id, sizeof(id), "%.*s", (int)len, key);
    const char *keys[] = {k, m};
    int nkeys = 1;
    if (kind == PR_KEY_ROOM && pr_redis_members_key(m, sizeof(m), g.prefix, key, len) > 0)
        nkeys = 2;
    const char *args[] = {"del", pr_redis_kind_name(kind), id};
    if (!script(rs, OP_FIRE, nkeys, keys, 3, args))
        return -ENOTCONN;
    return pr__rc_del(kind, key, len);
}

/* Count a distinct participant identity into a room (one script call per new identity). */
static void r_room_join(struct pr_store *s, const char *room, size_t len, const char *who,
                        size_t who_len)
{
    struct redis_store *rs = (struct redis_store *)s;
    char pod[PR_POD_NAME_MAX + 1];
    if (pr__rc_join(room, len, who, who_len, pod) != 1 || !is_up(rs))
        return;
    char k[PR_REDIS_KEY_MAX], m[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1], w[PR_KEY_MAX + 1], ttl[24],
        max[16];
    if (!akey(k, sizeof(k), PR_KEY_ROOM, room, len) ||
        pr_redis_members_key(m, sizeof(m), g.prefix, room, len) <= 0 || who_len > PR_KEY_MAX)
        return;
    snprintf(id, sizeof(id), "%.*s", (int)len, room);
    snprintf(w, sizeof(w), "%.*s", (int)who_len, who);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)g.ttl[PR_KEY_ROOM]);
    snprintf(max, sizeof(max), "%u", MEMBERS_MAX);
    const char *keys[] = {k, m};
    const char *args[] = {"join", id, w, ttl, max};
    struct req *q = script(rs, OP_JOIN, 2, keys, 5, args);
    if (q)
        req_key(q, PR_KEY_ROOM, room, len, pod);
}

/* This replica's view of an assignment. */
static int r_info(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                  struct pr_assignment *out)
{
    return pr__rc_info(kind, key, len, out);
}

/* A pod was deleted or forgotten: drop its assignments from the cache (Redis keeps them; the
 * next use finds the pod gone and moves them with replace). */
static void r_release_pod(struct pr_store *s, const char *pod)
{
    pr__rc_release_pod(pod);
}

static void r_counts(struct pr_store *s, uint64_t *rooms, uint64_t *participants)
{
    pr__rc_counts(rooms, participants);
}

/* true while this handle's command connection is ready. */
static bool r_up(struct pr_store *s)
{
    return is_up((struct redis_store *)s);
}

/* Remember that name heartbeated here just now. */
static void beat_record(struct redis_store *rs, const char *name)
{
    if (!rs->beats)
        return;
    size_t i = 0;
    while (i < rs->nbeats && strcmp(rs->beats[i].name, name) != 0)
        i++;
    if (i == rs->nbeats) {
        if (rs->nbeats >= PR_MAX_PODS)
            return;
        rs->nbeats++;
        snprintf(rs->beats[i].name, sizeof(rs->beats[i].name), "%s", name);
    }
    rs->beats[i].mono = now_ms();
}

/* true when name heartbeated through this replica within the pod TTL. */
static bool beat_recent(const struct redis_store *rs, const char *name, uint64_t now)
{
    for (size_t i = 0; i < rs->nbeats; i++)
        if (strcmp(rs->beats[i].name, name) == 0)
            return now - rs->beats[i].mono < g.pod_ttl;
    return false;
}

/* While Redis is down, pods that heartbeat only through other replicas cannot be heard
 * from: keep the live ones live (SPEC 6.3: keep routing from what we know) instead of
 * letting them go down and their rooms move. */
static void keep_remote_pods_alive(struct redis_store *rs)
{
    struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
    if (!pods)
        return;
    uint64_t now = now_ms(), wall = pr_now_ms();
    size_t n = pr_registry_snapshot(rs->reg, pods, PR_MAX_PODS);
    for (size_t i = 0; i < n && i < PR_MAX_PODS; i++) {
        const struct pr_pod_info *p = &pods[i];
        if (p->state == PR_POD_DOWN || beat_recent(rs, p->name, now))
            continue;
        struct pr_pod_remote rem = {p->name, p->address, p->zone, p->cap_rooms, p->cap_participants,
                                    false,   wall};
        pr_registry_merge(rs->reg, &rem, NULL);
    }
    free(pods);
}

/* Write pod name's registry row to Redis (podput script; fire-and-forget). */
static void pod_share(struct redis_store *rs, const char *name)
{
    struct pr_pod_info info;
    if (!is_up(rs) || pr_registry_get(rs->reg, name, &info) != 0)
        return;
    struct pr_redis_pod p;
    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "%s", info.name);
    snprintf(p.address, sizeof(p.address), "%s", info.address);
    snprintf(p.zone, sizeof(p.zone), "%s", info.zone);
    p.cap_rooms = info.cap_rooms;
    p.cap_participants = info.cap_participants;
    p.draining = info.draining;
    p.last_seen_ms = info.last_seen_ms;
    char *json = pr_redis_pod_format(&p);
    char k[PR_REDIS_KEY_MAX], ttl[24];
    if (json && pr_redis_pod_key(k, sizeof(k), g.prefix, name) > 0) {
        snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)g.pod_key_ttl);
        const char *keys[] = {k, g.pods_key};
        const char *args[] = {"podput", name, json, ttl};
        script(rs, OP_FIRE, 2, keys, 4, args);
    }
    free(json);
}

/* A pod registered or heartbeated through this replica: share it. */
static void r_pod_put(struct pr_store *s, const char *name)
{
    struct redis_store *rs = (struct redis_store *)s;
    beat_record(rs, name);
    pod_share(rs, name);
}

/* Share a drain. */
static void r_pod_drain(struct pr_store *s, const char *name)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX];
    if (pr_redis_pod_key(k, sizeof(k), g.prefix, name) <= 0)
        return;
    const char *keys[] = {k};
    const char *args[] = {"poddrain", name};
    if (!script(rs, OP_FIRE, 1, keys, 2, args))
        return;
    pod_share(rs, name); /* in case Redis had no row for it yet */
}

/* Share a deletion. */
static void r_pod_delete(struct pr_store *s, const char *name)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX];
    if (pr_redis_pod_key(k, sizeof(k), g.prefix, name) <= 0)
        return;
    const char *keys[] = {k, g.pods_key};
    const char *args[] = {"poddel", name};
    script(rs, OP_FIRE, 2, keys, 2, args);
}

/* ---- owner duties: events, pods, write-back, sentinel ------------------------------------ */

/* Apply one P events message to the cache and the registry. */
static void apply_event(struct redis_store *rs, const char *msg, size_t len)
{
    struct pr_redis_event ev;
    if (pr_redis_event_parse(msg, len, &ev) != 0)
        return;
    switch (ev.type) {
    case PR_REDIS_EV_SET:
        pr__rc_put(ev.kind, ev.key, ev.key_len, ev.pod, ev.count, ev.assigned_at_ms,
                   PR_RC_OVERWRITE, false, NULL);
        break;
    case PR_REDIS_EV_DEL:
        pr__rc_del(ev.kind, ev.key, ev.key_len);
        break;
    case PR_REDIS_EV_COUNT:
        pr__rc_set_count(ev.key, ev.key_len, ev.count);
        break;
    case PR_REDIS_EV_POD: {
        struct pr_redis_pod p;
        if (pr_redis_pod_parse(ev.json, ev.json_len, &p) != 0)
            break;
        struct pr_pod_remote rem = {
            p.name, p.address, p.zone, p.cap_rooms, p.cap_participants, p.draining, p.last_seen_ms};
        pr_registry_merge(rs->reg, &rem, NULL);
        break;
    }
    case PR_REDIS_EV_DELPOD:
        if (pr_registry_delete(rs->reg, ev.pod) == 0) {
            pr_info("pod deleted through another replica", "pod", ev.pod);
            pr__rc_release_pod(ev.pod);
        }
        break;
    }
}

/* +switch-master <name> <old-ip> <old-port> <new-ip> <new-port>: follow our master. */
static void switch_master(struct redis_store *rs, const char *msg, size_t len)
{
    char buf[512], name[PR_REDIS_MASTER_MAX + 1], oip[PR_REDIS_HOST_MAX + 1],
        nip[PR_REDIS_HOST_MAX + 1];
    unsigned oport, nport;
    if (len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    if (sscanf(buf, "%127s %255s %u %255s %u", name, oip, &oport, nip, &nport) != 5 ||
        strcmp(name, g.url.master) != 0 || nport == 0 || nport > 65535)
        return;
    pr_info("redis sentinel failover", "master", name, "new_host", nip);
    master_set(nip, (uint16_t)nport);
    rs->need_master = false;
}

/* Reload the shared pod table (one EVALSHA). */
static void reload_pods(struct redis_store *rs)
{
    rs->last_reload = now_ms();
    const char *keys[] = {g.pods_key};
    const char *args[] = {"pods", g.pod_key_prefix};
    script(rs, OP_PODS, 1, keys, 2, args);
}

/* Share this replica's active rooms (new, moved, recounted, or used again after half a
 * window) in P active: one pipelined HSET per ACTIVE_BATCH rooms, so a room costs at most a
 * few commands per --room-active window; then read the per-pod sums over all replicas. */
static void share_activity(struct redis_store *rs)
{
    struct pr__rc_item *items = malloc(ACTIVE_MAX * sizeof(*items));
    if (!items)
        return;
    size_t n = pr__rc_collect_active(items, ACTIVE_MAX);
    uint64_t wall = pr_now_ms();
    char fields[ACTIVE_BATCH][PR_KEY_MAX + 16], values[ACTIVE_BATCH][PR_POD_NAME_MAX + 48];
    for (size_t i = 0; i < n;) {
        const char *argv[2 + 2 * ACTIVE_BATCH];
        size_t argl[2 + 2 * ACTIVE_BATCH];
        int argc = 0;
        argv[argc] = "HSET";
        argl[argc++] = 4;
        argv[argc] = g.active_key;
        argl[argc++] = strlen(g.active_key);
        for (size_t b = 0; b < ACTIVE_BATCH && i < n; b++, i++) {
            const struct pr__rc_item *it = &items[i];
            bool room = it->kind == PR_KEY_ROOM;
            int fl = snprintf(fields[b], sizeof(fields[b]), "%s:%s",
                              pr_redis_kind_name((enum pr_key_kind)it->kind), it->key);
            int vl =
                snprintf(values[b], sizeof(values[b]), "%s %u %u %llu", it->pod, room ? 1u : 0u,
                         room ? it->count : 1u, (unsigned long long)(wall - it->active_ago_ms));
            argv[argc] = fields[b];
            argl[argc++] = (size_t)fl;
            argv[argc] = values[b];
            argl[argc++] = (size_t)vl;
        }
        struct req *q = req_new(OP_FIRE, argc, argv, argl);
        if (q && req_send(rs->live[ROLE_CMD], q) != 0)
            req_free(q);
    }
    free(items);
    char now[24], win[24];
    snprintf(now, sizeof(now), "%llu", (unsigned long long)wall);
    snprintf(win, sizeof(win), "%llu", (unsigned long long)g.active_ms);
    const char *keys[] = {g.active_key};
    const char *args[] = {"active", now, win};
    script(rs, OP_ACTIVE, 1, keys, 3, args);
}

/* Begin writing cached assignments back (all of them after a reconnect, else dirty ones). */
static void writeback_start(struct redis_store *rs, bool full)
{
    if (rs->wb_active && !full)
        return;
    rs->wb_active = true;
    rs->wb_full = rs->wb_full || full;
    rs->wb_cursor = 0;
    rs->wb_written = rs->wb_adopted = 0;
    if (full) {
        /* Re-share the live pods too (Redis may have lost them). */
        struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
        size_t n = pods ? pr_registry_snapshot(rs->reg, pods, PR_MAX_PODS) : 0;
        for (size_t i = 0; i < n && i < PR_MAX_PODS; i++)
            if (pods[i].state != PR_POD_DOWN)
                pod_share(rs, pods[i].name);
        free(pods);
    }
    schedule_soon(rs);
}

/* One write-back step: queue the next batch while few are in flight. */
static void writeback_step(struct redis_store *rs)
{
    if (!rs->wb_active || !is_up(rs) || rs->wb_inflight >= WRITEBACK_INFLIGHT)
        return;
    struct pr__rc_item *items = malloc(WRITEBACK_BATCH * sizeof(*items));
    if (!items)
        return;
    size_t before = rs->wb_cursor;
    size_t n = pr__rc_collect(&rs->wb_cursor, !rs->wb_full, items, WRITEBACK_BATCH);
    for (size_t i = 0; i < n; i++) {
        struct pr__rc_item *it = &items[i];
        struct req *q =
            send_create(rs, OP_WRITEBACK, (enum pr_key_kind)it->kind, it->key, it->key_len, it->pod,
                        it->count, it->assigned_at_ms, it->tentative);
        if (q)
            rs->wb_inflight++;
    }
    free(items);
    if (rs->wb_cursor == 0 || (n == 0 && before == rs->wb_cursor)) {
        rs->wb_active = false; /* walk finished; the answers may still be coming */
        writeback_done(rs);
    }
}

/* Log the end of a write-back once its answers are in. */
static void writeback_done(struct redis_store *rs)
{
    if (rs->wb_active || rs->wb_inflight > 0 || !rs->wb_full)
        return;
    rs->wb_full = false;
    char w[24], a[24];
    snprintf(w, sizeof(w), "%llu", (unsigned long long)rs->wb_written);
    snprintf(a, sizeof(a), "%llu", (unsigned long long)rs->wb_adopted);
    pr_info("redis write-back finished", "#written", w, "#adopted", a);
}

/* ---- timer: timeouts, kills, reconnects ------------------------------------------------- */

/* Connect whatever role is missing and due. */
static void reconnect(struct redis_store *rs, uint64_t now)
{
    char host[PR_REDIS_HOST_MAX + 1];
    uint16_t port;
    uint32_t gen;
    const struct pr_redis_url *u = &g.url;
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
    if (!master_addr(host, sizeof(host), &port, &gen))
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
static void timer_cb(uv_timer_t *t)
{
    struct redis_store *rs = t->data;
    uint64_t now = now_ms();
    uint32_t gen = master_gen();
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
    writeback_step(rs);
    if (uv_timer_get_repeat(t) != TIMER_MS)
        uv_timer_start(t, timer_cb, TIMER_MS, TIMER_MS);
}

/* Run the timer at once (e.g. to free a context marked inside its callback). */
static void schedule_soon(struct redis_store *rs)
{
    if (rs->closing || uv_is_closing((uv_handle_t *)&rs->timer))
        return;
    uv_timer_start(&rs->timer, timer_cb, 0, 1);
}

/* Housekeeping from worker 0 about once a second: cache expiry and loads, pod reload,
 * write-back of what other loops placed while their connection was down. */
static void r_tick(struct pr_store *s)
{
    struct redis_store *rs = (struct redis_store *)s;
    /* Loads come from the shared activity sums while they are fresh, else from this
     * replica's own active entries (Redis down: the best view there is). */
    bool fresh = rs->owner && is_up(rs) && now_ms() - rs->active_at < ACTIVE_FRESH_MS;
    pr__rc_tick(!fresh);
    if (rs->owner && !is_up(rs))
        keep_remote_pods_alive(rs);
    if (!rs->owner || !is_up(rs))
        return;
    if (now_ms() - rs->last_reload >= RELOAD_MS - 100) {
        share_activity(rs);
        reload_pods(rs);
    }
    if (!rs->wb_active && pr__rc_dirty() > 0)
        writeback_start(rs, false);
}

/* ---- open / close ---------------------------------------------------------------------- */

/* Close the handle: pending calls get -ECANCELED, then every connection is freed. */
static void r_close(struct pr_store *s)
{
    struct redis_store *rs = (struct redis_store *)s;
    if (!rs)
        return;
    rs->closing = true;
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
        uv_close((uv_handle_t *)&rs->timer, NULL);
        run = true;
    }
    for (int i = 0; run && i < 100 && rs->all; i++)
        uv_run(rs->loop, UV_RUN_NOWAIT);
    /* Whatever is left had its poll handle closed by the loop's shutdown walk. */
    while (rs->all) {
        struct conn *c = rs->all;
        rs->all = c->next_all;
        if (!c->resolving)
            free(c);
    }
    if (rs->owner) {
        pthread_mutex_lock(&g_mu);
        g.owner_taken = false;
        pthread_mutex_unlock(&g_mu);
    }
    pr__rc_close();
    pthread_mutex_lock(&g_mu);
    if (--g.refs == 0)
        memset(&g, 0, sizeof(g));
    pthread_mutex_unlock(&g_mu);
    free(rs->beats);
    free(rs);
}

/* Mark kind:key (or its hash) used now: lock-free when this loop stamped it recently; a
 * promotion renews the key's full TTL in Redis (once per key). */
static void touch_at(struct redis_store *rs, enum pr_key_kind kind, const char *key, size_t len,
                     uint64_t hash)
{
    if (!pr__touch_due(&rs->touched, hash, now_ms(), pr__rc_touch_every()))
        return;
    char k[PR_KEY_MAX + 1], pod[PR_POD_NAME_MAX + 1];
    size_t kl = 0;
    int r = pr__rc_use(kind, key, len, hash, true, k, &kl, pod);
    if (r > 0 && (r & PR_ATAB_PROMOTED) && is_up(rs))
        send_renew(rs, kind, k, kl, pod);
}

static void r_touch(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len)
{
    if ((unsigned)kind > PR_KEY_PARTICIPANT || !key || len == 0 || len > PR_KEY_MAX)
        return;
    touch_at((struct redis_store *)s, kind, key, len, pr__atab_hash((uint8_t)kind, key, len));
}

static void r_touch_hash(struct pr_store *s, enum pr_key_kind kind, uint64_t hash)
{
    if ((unsigned)kind > PR_KEY_PARTICIPANT)
        return;
    touch_at((struct redis_store *)s, kind, NULL, 0, hash);
}

static const struct pr_store_ops redis_ops = {
    .name = "redis",
    .close = r_close,
    .get = r_get,
    .create = r_create,
    .replace = r_replace,
    .set = r_set,
    .del = r_del,
    .room_join = r_room_join,
    .info = r_info,
    .release_pod = r_release_pod,
    .counts = r_counts,
    .up = r_up,
    .tick = r_tick,
    .pod_put = r_pod_put,
    .pod_drain = r_pod_drain,
    .pod_delete = r_pod_delete,
    .touch = r_touch,
    .touch_hash = r_touch_hash,
};

/* Fill the process-wide settings from cfg on first open (lock held); 0 or -EINVAL. */
static int shared_init(const struct pr_config *cfg, char *err, size_t errlen)
{
    char why[200];
    if (pr_redis_url_parse(cfg->store, &g.url, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "--store: %s", why);
        return -EINVAL;
    }
    snprintf(g.prefix, sizeof(g.prefix), "%s", cfg->key_prefix);
    if (pr_redis_prefixed(g.channel, sizeof(g.channel), g.prefix, "events") < 0 ||
        pr_redis_prefixed(g.pods_key, sizeof(g.pods_key), g.prefix, "pods") < 0 ||
        pr_redis_prefixed(g.pod_key_prefix, sizeof(g.pod_key_prefix), g.prefix, "pod:") < 0 ||
        pr_redis_prefixed(g.active_key, sizeof(g.active_key), g.prefix, "active") < 0) {
        snprintf(err, errlen, "--key-prefix: too long");
        return -EINVAL;
    }
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)pr_redis_script, strlen(pr_redis_script), md);
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(g.sha + 2 * i, 3, "%02x", md[i]);
    g.ttl[PR_KEY_SID] = cfg->sid_ttl_ms;
    g.ttl[PR_KEY_ROOM] = cfg->room_ttl_ms;
    g.ttl[PR_KEY_PARTICIPANT] = cfg->participant_ttl_ms;
    g.pod_key_ttl = cfg->pod_ttl_ms * 4;
    g.active_ms = cfg->room_active_ms;
    g.max_per_kind = cfg->max_assignments;
    g.pod_ttl = cfg->pod_ttl_ms;
    if (!g.url.sentinel) {
        snprintf(g.master_host, sizeof(g.master_host), "%s", g.url.hosts[0].host);
        g.master_port = g.url.hosts[0].port;
        g.master_gen = 1;
    }
    return 0;
}

/* A handle on loop; the first one in the process becomes the owner. */
struct pr_store *pr_store_redis_open(const struct pr_config *cfg, struct pr_registry *reg,
                                     uv_loop_t *loop, char *err, size_t errlen)
{
    if (!cfg || !loop) {
        snprintf(err, errlen, "store: redis needs a configuration and an event loop");
        return NULL;
    }
    struct redis_store *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        snprintf(err, errlen, "store: out of memory");
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    if (g.refs == 0 && shared_init(cfg, err, errlen) != 0) {
        memset(&g, 0, sizeof(g));
        pthread_mutex_unlock(&g_mu);
        free(rs);
        return NULL;
    }
    g.refs++;
    rs->owner = !g.owner_taken;
    g.owner_taken = true;
    uint64_t ttl[3] = {g.ttl[0], g.ttl[1], g.ttl[2]};
    uint64_t active_ms = g.active_ms, max_per_kind = g.max_per_kind;
    pthread_mutex_unlock(&g_mu);
    if (pr__rc_open(reg, ttl, active_ms, max_per_kind) != 0) {
        snprintf(err, errlen, "store: out of memory");
        rs->owner = false;
        pthread_mutex_lock(&g_mu);
        if (--g.refs == 0)
            memset(&g, 0, sizeof(g));
        pthread_mutex_unlock(&g_mu);
        free(rs);
        return NULL;
    }
    if (rs->owner)
        rs->beats = calloc(PR_MAX_PODS, sizeof(*rs->beats));
    rs->base.ops = &redis_ops;
    rs->loop = loop;
    rs->reg = reg;
    rs->need_master = g.url.sentinel;
    rs->rand_state = (uint32_t)(uintptr_t)rs ^ (uint32_t)uv_hrtime();
    uv_timer_init(loop, &rs->timer);
    rs->timer.data = rs;
    uv_timer_start(&rs->timer, timer_cb, 0, TIMER_MS);
    return &rs->base;
}
