/* Redis store, the owner's duties (worker 0's handle; see store_redis.c for the design):
 * apply P events to the cache and the registry, share and reload the pod table, share room
 * activity and apply the per-pod sums, write cached assignments back after an outage, and
 * the once-a-second tick. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_redis_int.h"

static void writeback_done(struct redis_store *rs);

/* Per-pod totals of an OP_ACTIVE answer. */
struct active_row {
    char name[PR_POD_NAME_MAX + 1];
    uint32_t rooms, participants;
};

/* Set every registered pod's load from the shared activity sums ({pod, rooms, parts}...):
 * active rooms over all replicas (SPEC 5). */
void pr__rs_apply_active(struct redis_store *rs, const redisReply *r)
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
            return now - rs->beats[i].mono < pr__rs_g.pod_ttl;
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
    if (json && pr_redis_pod_key(k, sizeof(k), pr__rs_g.prefix, name) > 0) {
        snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)pr__rs_g.pod_key_ttl);
        const char *keys[] = {k, pr__rs_g.pods_key};
        const char *args[] = {"podput", name, json, ttl};
        pr__rs_script(rs, OP_FIRE, 2, keys, 4, args);
    }
    free(json);
}

/* A pod registered or heartbeated through this replica: share it. */
void pr__rs_pod_put(struct pr_store *s, const char *name)
{
    struct redis_store *rs = (struct redis_store *)s;
    beat_record(rs, name);
    pod_share(rs, name);
}

/* Share a drain. */
void pr__rs_pod_drain(struct pr_store *s, const char *name)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX];
    if (pr_redis_pod_key(k, sizeof(k), pr__rs_g.prefix, name) <= 0)
        return;
    const char *keys[] = {k};
    const char *args[] = {"poddrain", name};
    if (!pr__rs_script(rs, OP_FIRE, 1, keys, 2, args))
        return;
    pod_share(rs, name); /* in case Redis had no row for it yet */
}

/* Share a deletion. */
void pr__rs_pod_delete(struct pr_store *s, const char *name)
{
    struct redis_store *rs = (struct redis_store *)s;
    char k[PR_REDIS_KEY_MAX];
    if (pr_redis_pod_key(k, sizeof(k), pr__rs_g.prefix, name) <= 0)
        return;
    const char *keys[] = {k, pr__rs_g.pods_key};
    const char *args[] = {"poddel", name};
    pr__rs_script(rs, OP_FIRE, 2, keys, 2, args);
}

/* ---- owner duties: events, pods, write-back, sentinel ------------------------------------ */

/* One "<roomId> <participantCount>" pair at p (up to end or a space) into id/n; false when
 * malformed. *next: after the pair. The id is not checked: the cache holds only ids that were
 * checked when stored, so one the parser would reject is simply not found. */
static bool count_pair(const char *p, const char *end, size_t *id_len, uint32_t *count,
                       const char **next)
{
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp == p || sp + 1 == end)
        return false;
    const char *d = memchr(sp + 1, ' ', (size_t)(end - sp - 1));
    d = d ? d : end;
    uint64_t n = 0;
    if (!pr_redis_uint(sp + 1, (size_t)(d - sp - 1), UINT32_MAX, &n))
        return false;
    *id_len = (size_t)(sp - p);
    *count = (uint32_t)n;
    *next = d;
    return true;
}

/* "count <roomId> <participantCount>" (a single join) and "counts @<origin> 0 <roomId> <count>
 * ..." (the joins of one batch, one message per batch; this process's own, which its batch's
 * answer has applied already, are skipped), applied in place without the full parser's copy. A malformed pair ends a counts message (the pairs
 * before it apply). true when msg is a count message (applied, or malformed and ignored as the
 * parser would). */
static bool count_event(const char *msg, size_t len)
{
    if (len < 6 || len > PR_REDIS_EVENT_MAX || memcmp(msg, "count", 5) != 0)
        return false;
    const char *end = msg + len, *p = msg + 6, *next;
    size_t id_len;
    uint32_t n;
    if (msg[5] == ' ') {
        if (count_pair(p, end, &id_len, &n, &next) && next == end)
            pr__rc_set_count(p, id_len, n);
        return true;
    }
    if (len < 7 || msg[5] != 's' || msg[6] != ' ')
        return false;
    p = msg + 7;
    if (p < end && *p == '@') { /* the origin: this process's own joins are counted already */
        size_t ol = pr__rs_g.origin_len;
        if ((size_t)(end - p) > ol && memcmp(p, pr__rs_g.origin, ol) == 0 && p[ol] == ' ')
            return true;
        if (!count_pair(p, end, &id_len, &n, &next) || next == end)
            return true;
        p = next + 1;
    }
    for (; p < end && count_pair(p, end, &id_len, &n, &next); p = next + 1) {
        pr__rc_set_count(p, id_len, n);
        if (next == end || next + 1 == end)
            break;
    }
    return true;
}

/* Apply one P events message to the cache and the registry. */
void pr__rs_apply_event(struct redis_store *rs, const char *msg, size_t len)
{
    struct pr_redis_event ev;
    if (count_event(msg, len) || pr_redis_event_parse(msg, len, &ev) != 0)
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

/* Reload the shared pod table (one EVALSHA). */
void pr__rs_reload_pods(struct redis_store *rs)
{
    rs->last_reload = now_ms();
    const char *keys[] = {pr__rs_g.pods_key};
    const char *args[] = {"pods", pr__rs_g.pod_key_prefix};
    pr__rs_script(rs, OP_PODS, 1, keys, 2, args);
}

/* "kind:key" of an activity report into f (PR_KEY_MAX + 16 bytes); its length. */
static size_t active_field(char *f, const struct pr__rc_item *it)
{
    const char *kind = pr_redis_kind_name((enum pr_key_kind)it->kind);
    kind = kind ? kind : "";
    size_t kl = strlen(kind), n = strnlen(it->key, PR_KEY_MAX);
    memcpy(f, kind, kl);
    f[kl] = ':';
    memcpy(f + kl + 1, it->key, n);
    f[kl + 1 + n] = '\0';
    return kl + 1 + n;
}

/* "pod rooms parts lastActiveMs" of an activity report into v (PR_POD_NAME_MAX + 48 bytes). */
static size_t active_value(char *v, const struct pr__rc_item *it, bool room, uint64_t wall)
{
    size_t n = strnlen(it->pod, PR_POD_NAME_MAX);
    memcpy(v, it->pod, n);
    v[n++] = ' ';
    v[n++] = room ? '1' : '0';
    v[n++] = ' ';
    n += pr_redis_u64(v + n, room ? it->count : 1u);
    v[n++] = ' ';
    n += pr_redis_u64(v + n, wall - it->active_ago_ms);
    return n;
}

/* One HSET of n activity reports as a whole RESP command (sent as it is, no copy of its
 * arguments); NULL when out of memory. */
static struct req *active_hset(const struct pr__rc_item *items, size_t n, uint64_t wall)
{
    size_t kl = strlen(pr__rs_g.active_key);
    char *buf = malloc(64 + kl + n * (PR_KEY_MAX + PR_POD_NAME_MAX + 128));
    struct req *q = buf ? pr__rs_req_new(OP_FIRE, 0, NULL, NULL) : NULL;
    if (!q) {
        free(buf);
        return NULL;
    }
    char *p = buf, f[PR_KEY_MAX + 16], v[PR_POD_NAME_MAX + 48];
    *p++ = '*';
    p += pr_redis_u64(p, 2 + 2 * (uint64_t)n);
    memcpy(p, "\r\n$4\r\nHSET\r\n", 12);
    p += 12;
    p += pr_redis_bulk(p, pr__rs_g.active_key, kl);
    for (size_t i = 0; i < n; i++) {
        p += pr_redis_bulk(p, f, active_field(f, &items[i]));
        p += pr_redis_bulk(p, v, active_value(v, &items[i], items[i].kind == PR_KEY_ROOM, wall));
    }
    q->tail = buf;
    q->tail_off = q->head_len = (size_t)(p - buf); /* the whole command, argv empty */
    return q;
}

/* Share this replica's active rooms and participants (new, moved, recounted, or used again
 * after half a window) in P active: one HSET per ACTIVE_CHUNK of them, so an entry costs at
 * most a few commands per --room-active window; then read the per-pod sums over all
 * replicas. */
static void share_activity(struct redis_store *rs)
{
    struct pr__rc_item *items = malloc(ACTIVE_MAX * sizeof(*items));
    if (!items)
        return;
    size_t n = pr__rc_collect_active(items, ACTIVE_MAX);
    uint64_t wall = pr_now_ms();
    for (size_t i = 0; i < n; i += ACTIVE_CHUNK) {
        struct req *q = active_hset(items + i, n - i < ACTIVE_CHUNK ? n - i : ACTIVE_CHUNK, wall);
        if (q && pr__rs_req_send(rs->live[ROLE_CMD], q) != 0)
            pr__rs_req_free(q);
    }
    free(items);
    char now[24], win[24];
    snprintf(now, sizeof(now), "%llu", (unsigned long long)wall);
    snprintf(win, sizeof(win), "%llu", (unsigned long long)pr__rs_g.active_ms);
    const char *keys[] = {pr__rs_g.active_key};
    const char *args[] = {"active", now, win};
    pr__rs_script(rs, OP_ACTIVE, 1, keys, 3, args);
}

/* Begin writing cached assignments back (all of them after a reconnect, else dirty ones). */
void pr__rs_writeback_start(struct redis_store *rs, bool full)
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
    pr__rs_schedule_soon(rs);
}

/* One write-back step: queue the next batch while few are in flight. */
void pr__rs_writeback_step(struct redis_store *rs)
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
            pr__rs_send_create(rs, OP_WRITEBACK, (enum pr_key_kind)it->kind, it->key, it->key_len,
                               it->pod, it->count, it->assigned_at_ms, it->tentative);
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

/* Housekeeping from worker 0 every pr_config_housekeeping_ms (1 s by default): cache expiry
 * and loads, activity sharing and pod reload, write-back of what other loops placed while
 * their connection was down. */
void pr__rs_tick(struct pr_store *s)
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
    if (now_ms() - rs->last_reload + pr__rs_g.housekeeping_ms / 10 >= pr__rs_g.housekeeping_ms) {
        share_activity(rs);
        pr__rs_reload_pods(rs);
    }
    if (!rs->wb_active && pr__rc_dirty() > 0)
        pr__rs_writeback_start(rs, false);
}

/* A write-back create answered: count it, adopt another replica's winner. */
void pr__rs_reply_writeback(struct req *q, redisReply *r, int status)
{
    struct redis_store *rs = q->conn->rs;
    enum pr_key_kind kind = (enum pr_key_kind)q->kind;
    char pod[PR_POD_NAME_MAX + 1];
    uint32_t count = 0;
    uint64_t at = 0;
    bool written = false;
    if (rs->wb_inflight > 0)
        rs->wb_inflight--;
    if (status == 0 && pr__rs_script_value(q, r, pod, &count, &at, &written) == 0) {
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
}

/* The shared pod table ({json, ...}): merge every row into the registry. */
void pr__rs_reply_pods(struct redis_store *rs, const redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        struct pr_redis_pod p;
        if (e->type != REDIS_REPLY_STRING || pr_redis_pod_parse(e->str, e->len, &p) != 0)
            continue;
        struct pr_pod_remote rem = {
            p.name, p.address, p.zone, p.cap_rooms, p.cap_participants, p.draining, p.last_seen_ms};
        bool created = false;
        if (pr_registry_merge(rs->reg, &rem, &created) == 0 && created)
            pr_info("pod learned from another replica", "pod", p.name, "address", p.address);
    }
}

/* The owner's command connection is (re)connected: write everything back, reload the pods. */
void pr__rs_owner_cmd_ready(struct redis_store *rs)
{
    pr__rs_writeback_start(rs, true);
    pr__rs_reload_pods(rs);
}
