/* Redis store (SPEC 6): hiredis 0.14 async on each worker's libuv loop. This file: the
 * pr_store ops, the sid pin, renewals, reply dispatch, open/close; below it (calls only go
 * down) the owner's duties in store_redis_owner.c, the per-iteration batch in
 * store_redis_batch.c, the script calls in store_redis_cmd.c and the connections in
 * store_redis_conn.c (store_redis_int.h).
 *
 * Shape
 *   - One handle per loop (pr_store_open per worker). Each handle owns one command
 *     connection. The first handle opened in the process (worker 0) is the owner: it also
 *     owns the subscriber connection on P events, the Sentinel connections, the once-a-second
 *     pod reload and the write-back after an outage.
 *   - Every handle reads and writes one process-wide cache (redis_cache.c). A cache hit answers
 *     synchronously and sends nothing, so a steady stream of requests for known keys costs no
 *     Redis command; TTL renewals go out at most once a minute per key (fire-and-forget).
 *   - A new sid's pin is one SET NX (PX the tentative TTL); a sid that exists already keeps
 *     its value (full TTL). The pins and participant joins of one loop iteration are one
 *     script call (store_redis_batch.c); commands are not written one by one: the
 *     connection's flusher (store_redis_conn.c) writes all those of one iteration at once.
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
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atable.h"
#include "podrouter/affinity.h"
#include "podrouter/metrics.h"
#include "store_redis_int.h"

static void send_renew(struct redis_store *rs, enum pr_key_kind kind, const char *key, size_t len,
                       const char *pod);

/* A GET answer: cache what Redis holds and route by it. */
static void reply_get(struct req *q, redisReply *r, int status)
{
    enum pr_key_kind kind = (enum pr_key_kind)q->kind;
    char pod[PR_POD_NAME_MAX + 1], out[PR_POD_NAME_MAX + 1];
    uint32_t count = 0;
    uint64_t at = 0;
    if (status != 0) {
        q->cb(q->arg, status, NULL);
    } else if (r->type == REDIS_REPLY_NIL || pr__rs_value_of(q, r, pod, &count, &at) != 0) {
        q->cb(q->arg, -ENOENT, NULL); /* absent, or garbage nobody can route by */
    } else if (pr__rc_put(kind, q->key, q->key_len, pod, count, at, PR_RC_IF_ABSENT, false, out) ==
               0) {
        /* Found in Redis: another request (maybe elsewhere) created it, so this is at least
         * its second use: live for its full TTL there too (SPEC 3.6). */
        pr__rc_use(kind, q->key, q->key_len, 0, true, NULL, NULL, NULL);
        send_renew(q->conn->rs, kind, q->key, q->key_len, out);
        q->cb(q->arg, 0, out);
    } else {
        q->cb(q->arg, 0, pod);
    }
}

/* A create or replace answered with its winner (rc 0: pod, count, at parsed from the value;
 * written: this request's value went in): cache the winner and route by it. */
static void assigned(struct req *q, int status, int rc, const char *pod, uint32_t count,
                     uint64_t at, bool written)
{
    enum pr_key_kind kind = (enum pr_key_kind)q->kind;
    char out[PR_POD_NAME_MAX + 1];
    if (status == 0 && rc == 0) {
        if (pr__rc_put(kind, q->key, q->key_len, pod, count, at, PR_RC_OVERWRITE, false, out) != 0)
            pr_str_copy(out, sizeof(out), pod);
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
}

/* A create or replace answer ([written, value]). */
static void reply_assign(struct req *q, redisReply *r, int status)
{
    char pod[PR_POD_NAME_MAX + 1];
    uint32_t count = 0;
    uint64_t at = 0;
    bool written = false;
    int rc = status == 0 ? pr__rs_script_value(q, r, pod, &count, &at, &written) : -EINVAL;
    assigned(q, status, rc, pod, count, at, written);
}

/* The next space-separated token of a batch's codes at *p (before end) as a count; false when
 * there is none or it is not one (a join's -1, a room gone, raises nothing either). */
static bool next_code(const char **p, const char *end, long long *out)
{
    const char *sp = memchr(*p, ' ', (size_t)(end - *p));
    const char *tok_end = sp ? sp : end;
    uint64_t v = 0;
    bool ok = pr_redis_uint(*p, (size_t)(tok_end - *p), UINT32_MAX, &v);
    *p = sp ? sp + 1 : end;
    *out = (long long)v;
    return ok;
}

/* A batch's answers (store_redis_batch.c): [codes, value, ...], codes one token per entry (a
 * pin's 1 when written, its value being the pod it sent; 0 when there already, its value
 * next in the array, as the create script answers it; a join's count). None at all (status <
 * 0, or no codes string): pins keep our choice locally, to be written back; an entry without
 * its token or value is answered as a create without an answer. */
static void reply_batch(struct req *q, redisReply *r, int status)
{
    struct pr__rs_batch *b = q->batch;
    pr__rs_batch_answered(q->conn->rs);
    const redisReply *codes = status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements > 0
                                  ? r->element[0]
                                  : NULL;
    if (status == 0 && (!codes || codes->type != REDIS_REPLY_STRING))
        status = -EPROTO;
    const char *p = status == 0 ? codes->str : NULL, *end = p ? p + codes->len : NULL;
    size_t next_value = 1;
    struct req one = {.conn = q->conn, .op = OP_CREATE, .kind = PR_KEY_SID};
    for (uint32_t i = 0; i < b->n; i++) {
        const struct pr__rs_bentry *e = &b->e[i];
        long long code = -1;
        bool got = p && next_code(&p, end, &code);
        if (e->join) {
            /* The store's count raises the cached one (not when it is what this join made) */
            if (got && code > (long long)e->count)
                pr__rc_set_count(e->key, e->key_len, (uint32_t)code);
            continue;
        }
        if (got && code == 1) {
            /* Written: the value is our pod (a fresh pin stays tentative, as in reply_assign) */
            char out[PR_POD_NAME_MAX + 1];
            if (pr__rc_put(PR_KEY_SID, e->key, e->key_len, e->pod, 0, 0, PR_RC_OVERWRITE, false,
                           out) != 0)
                pr_str_copy(out, sizeof(out), e->pod);
            e->cb(e->arg, 0, out);
            continue;
        }
        one.key_len = e->key_len;
        memcpy(one.key, e->key, (size_t)e->key_len + 1);
        memcpy(one.pod, e->pod, sizeof(one.pod));
        one.cb = e->cb;
        one.arg = e->arg;
        char pod[PR_POD_NAME_MAX + 1];
        uint32_t count = 0;
        uint64_t at = 0;
        int rc = -EINVAL;
        if (got && code == 0 && next_value < r->elements)
            rc = pr__rs_value_of(&one, r->element[next_value++], pod, &count, &at);
        assigned(&one, status, rc, pod, count, at, false);
    }
}

/* Dispatch a command's reply (r NULL with status < 0 when none came) to what asked for it. */
static void handle_reply(struct req *q, redisReply *r, int status)
{
    enum pr_key_kind kind = (enum pr_key_kind)q->kind;
    if (r && r->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "%s", r->str ? r->str : "error");
        pr_warn("redis command failed", "error", why);
        status = -EIO;
    }
    switch ((enum op)q->op) {
    case OP_GET:
        reply_get(q, r, status);
        return;
    case OP_CREATE:
    case OP_REPLACE:
        reply_assign(q, r, status);
        return;
    case OP_BATCH:
        reply_batch(q, r, status);
        return;
    case OP_WRITEBACK:
        pr__rs_reply_writeback(q, r, status);
        return;
    case OP_RENEW:
        /* The key vanished from Redis (restarted without data, evicted): write it back. */
        if (status == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
            pr__rc_put(kind, q->key, q->key_len, q->pod, 0, 0, PR_RC_OVERWRITE, true, NULL);
        return;
    case OP_PODS:
        if (status == 0 && r->type == REDIS_REPLY_ARRAY)
            pr__rs_reply_pods(q->conn->rs, r);
        return;
    case OP_ACTIVE:
        if (status == 0 && r->type == REDIS_REPLY_ARRAY)
            pr__rs_apply_active(q->conn->rs, r);
        return;
    default: /* OP_FIRE; setup replies go to the connection */
        return;
    }
}

/* Renew kind:key's TTL in Redis (fire-and-forget; a vanished key is written back). */
static void send_renew(struct redis_store *rs, enum pr_key_kind kind, const char *key, size_t len,
                       const char *pod)
{
    char k[PR_REDIS_KEY_MAX], m[PR_REDIS_KEY_MAX], ttl[24];
    if (!pr__rs_akey(k, sizeof(k), kind, key, len))
        return;
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)pr__rs_g.ttl[kind]);
    const char *keys[] = {k, m};
    int nkeys = 1;
    if (kind == PR_KEY_ROOM && pr_redis_members_key(m, sizeof(m), pr__rs_g.prefix, key, len) > 0)
        nkeys = 2;
    const char *args[] = {"renew", ttl};
    struct req *q = pr__rs_script(rs, OP_RENEW, nkeys, keys, 2, args);
    if (q)
        pr__rs_req_key(q, kind, key, len, pod);
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
    if (rc == -EINVAL || (rc != 0 && !pr__rs_akey(k, sizeof(k), kind, key, len))) {
        cb(arg, -EINVAL, NULL); /* a hit is a key validated when it was stored */
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
    if (!is_up(rs) && !pr__rs_can_wait(rs)) {
        cb(arg, -ENOTCONN, NULL);
        return;
    }
    const char *argv[] = {"GET", k};
    size_t argl[] = {3, strlen(k)};
    struct req *q = pr__rs_req_new(OP_GET, 2, argv, argl);
    if (!q) {
        cb(arg, -ENOMEM, NULL);
        return;
    }
    pr__rs_req_key(q, kind, key, len, NULL);
    q->cb = cb;
    q->arg = arg;
    if (pr__rs_req_submit(rs, q) != 0) {
        pr__rs_req_free(q);
        cb(arg, -ENOTCONN, NULL);
    }
}

/* Create kind:key -> pod unless assigned; cb gets the winner. */
static void r_create(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                     const char *pod, pr_store_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    char cached[PR_POD_NAME_MAX + 1], k[PR_REDIS_KEY_MAX];
    size_t pl = pod ? strlen(pod) : 0;
    /* A sid comes from the handshake sniffer, which takes only valid ones (affinity.c): its
     * length bounds the batch's buffers, its characters were checked there. */
    if (!pod || !pr_pod_name_valid(pod, pl) || !key || len == 0 || len > PR_KEY_MAX ||
        (kind != PR_KEY_SID && !pr_key_valid(key, len))) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    /* A new sid's pin goes in this iteration's batch (store_redis_batch.c) without looking in
     * the cache first: a sid is new by nature (the pod just made it), and one Redis holds
     * already is answered as a create that lost (SET NX), with the value there. */
    if (kind == PR_KEY_SID && !pr__rc_full(kind) &&
        pr__rs_batch_pin(rs, key, len, pod, pl, cb, arg) == 0)
        return;
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
    if (!pr__rs_akey(k, sizeof(k), kind, key, len)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    struct req *q = (!is_up(rs) && !pr__rs_can_wait(rs)) || kind == PR_KEY_SID
                        ? NULL
                        : pr__rs_send_create(rs, OP_CREATE, kind, key, len, pod, 0, 0, true);
    if (!q) {
        /* Degraded: the choice is ours until Redis is back (then first writer wins). */
        int rc = pr__rc_put(kind, key, len, pod, 0, 0, PR_RC_IF_ABSENT, true, cached);
        cb(arg, rc, rc == 0 ? cached : NULL);
        return;
    }
    q->cb = cb;
    q->arg = arg;
}

/* Compare-and-set kind:key from expect (or absent) to pod. */
static void r_replace(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                      const char *expect, const char *pod, pr_store_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1], ttl[24], now[24], out[PR_POD_NAME_MAX + 1];
    if (!pod || !pr_pod_name_valid(pod, strlen(pod)) ||
        !pr__rs_akey(k, sizeof(k), kind, key, len)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    struct req *q = NULL;
    if (is_up(rs) || pr__rs_can_wait(rs)) {
        snprintf(id, sizeof(id), "%.*s", (int)len, key);
        snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)pr__rs_g.ttl[kind]);
        snprintf(now, sizeof(now), "%llu", (unsigned long long)pr_now_ms());
        const char *keys[] = {k};
        const char *args[] = {
            "replace", pr_redis_kind_name(kind), id, expect ? expect : "", pod, ttl, now};
        q = pr__rs_script(rs, OP_REPLACE, 1, keys, 7, args);
    }
    if (!q) {
        int rc = pr__rc_replace(kind, key, len, expect, pod, out);
        cb(arg, rc, rc == 0 ? out : NULL);
        return;
    }
    pr__rs_req_key(q, kind, key, len, pod);
    q->cb = cb;
    q->arg = arg;
}

/* Operator pin: cache now, Redis in the background; -ENOTCONN while Redis is down. */
static int r_set(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                 const char *pod)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1], ttl[24], now[24];
    if (!pod || !pr_pod_name_valid(pod, strlen(pod)) || !pr__rs_akey(k, sizeof(k), kind, key, len))
        return -EINVAL;
    if (!is_up(rs))
        return -ENOTCONN;
    snprintf(id, sizeof(id), "%.*s", (int)len, key);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)pr__rs_g.ttl[kind]);
    uint64_t at = pr_now_ms();
    snprintf(now, sizeof(now), "%llu", (unsigned long long)at);
    const char *keys[] = {k};
    const char *args[] = {"set", pr_redis_kind_name(kind), id, pod, ttl, now};
    if (!pr__rs_script(rs, OP_FIRE, 1, keys, 6, args))
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
    if (!pr__rs_akey(k, sizeof(k), kind, key, len))
        return -EINVAL;
    if (!is_up(rs))
        return -ENOTCONN;
    snprintf(id, sizeof(id), "%.*s", (int)len, key);
    const char *keys[] = {k, m};
    int nkeys = 1;
    if (kind == PR_KEY_ROOM && pr_redis_members_key(m, sizeof(m), pr__rs_g.prefix, key, len) > 0)
        nkeys = 2;
    const char *args[] = {"del", pr_redis_kind_name(kind), id};
    if (!pr__rs_script(rs, OP_FIRE, nkeys, keys, 3, args))
        return -ENOTCONN;
    return pr__rc_del(kind, key, len);
}

/* Count a distinct participant identity into a room (a new identity: one entry in this
 * iteration's batch). */
static void r_room_join(struct pr_store *s, const char *room, size_t len, const char *who,
                        size_t who_len)
{
    struct redis_store *rs = (struct redis_store *)s;
    uint32_t count = 0;
    if (pr__rc_join(room, len, who, who_len, &count) == 1)
        pr__rs_batch_join(rs, room, len, who, who_len, count);
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

/* true while every handle's command connection is ready. */
static bool r_up(struct pr_store *s)
{
    return is_up((struct redis_store *)s) && pr__rs_all_up();
}

/* Remember that name heartbeated here just now. */
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

/* Close the handle: pending calls get -ECANCELED, then every connection is freed. */
static void r_close(struct pr_store *s)
{
    struct redis_store *rs = (struct redis_store *)s;
    if (!rs)
        return;
    pr__rs_batch_cancel(rs, -ECANCELED);
    rs->closing = true;
    pr__rs_wait_expire(rs, 0, true);
    pr__rs_conns_close(rs);
    if (rs->owner) {
        pthread_mutex_lock(&pr__rs_mu);
        pr__rs_g.owner_taken = false;
        pthread_mutex_unlock(&pr__rs_mu);
    }
    pr__rc_close();
    pthread_mutex_lock(&pr__rs_mu);
    if (--pr__rs_g.refs == 0)
        memset(&pr__rs_g, 0, sizeof(pr__rs_g));
    pthread_mutex_unlock(&pr__rs_mu);
    free(rs->beats);
    free(rs);
}

/* What the connections call up into (store_redis_conn.c knows only this table). */
/* The command connection is ready (what waited for it goes first, then the owner's duties),
 * or was lost. */
static void cmd_state(struct redis_store *rs, bool ready)
{
    if (!ready) {
        pr__rs_wait_conn_lost(rs);
        return;
    }
    pr__rs_wait_ready(rs);
    if (rs->owner)
        pr__rs_owner_cmd_ready(rs);
}

static void timer_step(struct redis_store *rs)
{
    pr__rs_wait_expire(rs, now_ms(), false);
    pr__rs_writeback_step(rs);
}

static const struct pr__rs_hooks hooks = {
    .reply = handle_reply,
    .event = pr__rs_apply_event,
    .cmd_state = cmd_state,
    .lost = pr__rs_wait_lost,
    .timer = timer_step,
    .flush = pr__rs_batch_send,
};

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
    .tick = pr__rs_tick,
    .pod_put = pr__rs_pod_put,
    .pod_drain = pr__rs_pod_drain,
    .pod_delete = pr__rs_pod_delete,
    .touch = r_touch,
    .touch_hash = r_touch_hash,
};

/* Fill the process-wide settings from cfg on first open (lock held); 0 or -EINVAL. */
static int shared_init(const struct pr_config *cfg, char *err, size_t errlen)
{
    char why[200];
    if (pr_redis_url_parse(cfg->store, &pr__rs_g.url, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "--store: %s", why);
        return -EINVAL;
    }
    snprintf(pr__rs_g.prefix, sizeof(pr__rs_g.prefix), "%s", cfg->key_prefix);
    if (pr_redis_prefixed(pr__rs_g.channel, sizeof(pr__rs_g.channel), pr__rs_g.prefix, "events") <
            0 ||
        pr_redis_prefixed(pr__rs_g.pods_key, sizeof(pr__rs_g.pods_key), pr__rs_g.prefix, "pods") <
            0 ||
        pr_redis_prefixed(pr__rs_g.pod_key_prefix, sizeof(pr__rs_g.pod_key_prefix), pr__rs_g.prefix,
                          "pod:") < 0 ||
        pr_redis_prefixed(pr__rs_g.active_key, sizeof(pr__rs_g.active_key), pr__rs_g.prefix,
                          "active") < 0) {
        snprintf(err, errlen, "--key-prefix: too long");
        return -EINVAL;
    }
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)pr_redis_script, strlen(pr_redis_script), md);
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(pr__rs_g.sha + 2 * i, 3, "%02x", md[i]);
    pr__rs_g.ttl[PR_KEY_SID] = cfg->sid_ttl_ms;
    pr__rs_g.ttl[PR_KEY_ROOM] = cfg->room_ttl_ms;
    pr__rs_g.ttl[PR_KEY_PARTICIPANT] = cfg->participant_ttl_ms;
    pr__rs_g.pod_key_ttl = cfg->pod_ttl_ms * 4;
    pr__rs_g.active_ms = cfg->room_active_ms;
    pr__rs_g.housekeeping_ms = pr_config_housekeeping_ms(cfg);
    pr__rs_g.max_per_kind = cfg->max_assignments;
    pr__rs_g.pod_ttl = cfg->pod_ttl_ms;
    pr__rs_batch_init();
    pr__rs_message_prefix();
    if (!pr__rs_g.url.sentinel) {
        snprintf(pr__rs_g.master_host, sizeof(pr__rs_g.master_host), "%s",
                 pr__rs_g.url.hosts[0].host);
        pr__rs_g.master_port = pr__rs_g.url.hosts[0].port;
        pr__rs_g.master_gen = 1;
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
    pthread_mutex_lock(&pr__rs_mu);
    if (pr__rs_g.refs == 0 && shared_init(cfg, err, errlen) != 0) {
        memset(&pr__rs_g, 0, sizeof(pr__rs_g));
        pthread_mutex_unlock(&pr__rs_mu);
        free(rs);
        return NULL;
    }
    pr__rs_g.refs++;
    rs->owner = !pr__rs_g.owner_taken;
    pr__rs_g.owner_taken = true;
    uint64_t ttl[3] = {pr__rs_g.ttl[0], pr__rs_g.ttl[1], pr__rs_g.ttl[2]};
    uint64_t active_ms = pr__rs_g.active_ms, max_per_kind = pr__rs_g.max_per_kind;
    pthread_mutex_unlock(&pr__rs_mu);
    if (pr__rc_open(reg, ttl, active_ms, max_per_kind) != 0) {
        snprintf(err, errlen, "store: out of memory");
        rs->owner = false;
        pthread_mutex_lock(&pr__rs_mu);
        if (--pr__rs_g.refs == 0)
            memset(&pr__rs_g, 0, sizeof(pr__rs_g));
        pthread_mutex_unlock(&pr__rs_mu);
        free(rs);
        return NULL;
    }
    if (rs->owner)
        rs->beats = calloc(PR_MAX_PODS, sizeof(*rs->beats));
    rs->base.ops = &redis_ops;
    rs->hooks = &hooks;
    rs->loop = loop;
    rs->reg = reg;
    rs->need_master = pr__rs_g.url.sentinel;
    rs->rand_state = (uint32_t)(uintptr_t)rs ^ (uint32_t)uv_hrtime();
    uv_timer_init(loop, &rs->timer);
    rs->timer.data = rs;
    uv_prepare_init(loop, &rs->flusher);
    rs->flusher.data = rs;
    uv_timer_start(&rs->timer, pr__rs_timer_cb, 0, TIMER_MS);
    return &rs->base;
}
