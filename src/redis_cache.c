/* Process-wide assignment cache of the Redis store: a chained hash table behind the lock of
 * its struct pr_shared_atab (atable_shared.c), TTL expiry, throttled renewal stamps, per-room
 * identity sets, dirty marks for write-back, and the registry loads derived from its content
 * (SPEC 6.2). */
#include "redis_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atable.h"
#include "podrouter/registry.h"

static struct pr_shared_atab g_cache = PR_SHARED_ATAB_INIT;

/* Take a reference on the shared cache. */
int pr__rc_open(struct pr_registry *reg, const uint64_t ttl[3], uint64_t active_ms,
                uint64_t max_per_kind)
{
    return pr__satab_open(&g_cache, reg, ttl, active_ms, max_per_kind);
}

/* Drop a reference; the last one frees every entry. */
void pr__rc_close(void)
{
    pr__satab_close(&g_cache);
}

/* Cached pod of kind:key; flags a due TTL renewal. */
int pr__rc_get(enum pr_key_kind kind, const char *key, size_t len, char pod[PR_POD_NAME_MAX + 1],
               bool *renew)
{
    if (renew)
        *renew = false;
    if (!pr__atab_key_ok(kind, key, len))
        return -EINVAL;
    return pr__satab_get(&g_cache, (uint8_t)kind, key, len, pr__atab_hash((uint8_t)kind, key, len),
                         pr_mono_ms(), pod, renew);
}

/* Cache kind:key -> pod. */
int pr__rc_put(enum pr_key_kind kind, const char *key, size_t len, const char *pod, uint32_t count,
               uint64_t assigned_at, enum pr__rc_mode mode, bool dirty,
               char out[PR_POD_NAME_MAX + 1])
{
    if (!pr__atab_key_ok(kind, key, len) || !pod || !pod[0])
        return -EINVAL;
    int rc = 0;
    struct pr_atab_op op;
    pr__satab_begin(&g_cache, (uint8_t)kind, key, len, &op);
    struct pr_atab_entry **pp = op.pp;
    struct pr_atab_entry *e = pp ? *pp : NULL;
    if (!e) {
        e = pr__atab_insert(op.t, (uint8_t)kind, key, len, op.hash, pod, count, assigned_at,
                            op.now);
        if (e)
            pr__atab_set_dirty(op.t, e, dirty);
    } else if (mode == PR_RC_OVERWRITE) {
        uint32_t c = e->participant_count;
        if (strcmp(e->pod->name, pod) != 0 || count > c)
            c = count;
        pr__atab_move(op.t, e, pod, c, assigned_at, op.now);
        if (!e->tentative)
            e->expires = pr__atab_deadline(op.t, e->kind, op.now);
        pr__atab_set_dirty(op.t, e, dirty);
    }
    if (e && out)
        memcpy(out, e->pod->name, PR_POD_NAME_MAX + 1);
    if (!e)
        rc = -ENOMEM;
    pr__satab_unlock(&g_cache);
    return rc;
}

/* Local compare-and-set while the store is unreachable. */
int pr__rc_replace(enum pr_key_kind kind, const char *key, size_t len, const char *expect,
                   const char *pod, char out[PR_POD_NAME_MAX + 1])
{
    if (!pr__atab_key_ok(kind, key, len) || !pod || !pod[0])
        return -EINVAL;
    int rc = 0;
    struct pr_atab_op op;
    pr__satab_begin(&g_cache, (uint8_t)kind, key, len, &op);
    struct pr_atab_entry **pp = op.pp;
    struct pr_atab_entry *e = pp ? *pp : NULL;
    if (!e) {
        e = pr__atab_insert(op.t, (uint8_t)kind, key, len, op.hash, pod, 0, 0, op.now);
        if (e)
            pr__atab_set_dirty(op.t, e, true);
    } else if (expect && strcmp(e->pod->name, expect) == 0) {
        pr__atab_move(op.t, e, pod, e->participant_count, 0, op.now);
        pr__atab_set_dirty(op.t, e, true);
    }
    if (e)
        memcpy(out, e->pod->name, PR_POD_NAME_MAX + 1);
    else
        rc = -ENOMEM;
    pr__satab_unlock(&g_cache);
    return rc;
}

/* Forget kind:key. */
int pr__rc_del(enum pr_key_kind kind, const char *key, size_t len)
{
    if (!pr__atab_key_ok(kind, key, len))
        return -EINVAL;
    return pr__satab_del(&g_cache, (uint8_t)kind, key, len);
}

/* Count who into the room's identities seen by this replica. */
int pr__rc_join(const char *room, size_t len, const char *who, size_t who_len, uint32_t *count)
{
    if (!pr__atab_key_ok(PR_KEY_ROOM, room, len) || !who || who_len == 0)
        return -EINVAL;
    uint64_t id = pr__atab_hash(0xff, who, who_len);
    int rc = -ENOENT;
    struct pr_atab_op op;
    pr__satab_begin(&g_cache, PR_KEY_ROOM, room, len, &op);
    struct pr_atab_entry **pp = op.pp;
    if (pp) {
        rc = 0;
        struct pr_atab_entry *e = *pp;
        if (pr__idset_add(&e->ids, id)) {
            /* Counted locally at once; the store's answer (all replicas) follows. What
             * pr__atab_move to the same pod with one more participant does, in one step. */
            if (e->counted && e->participant_count < 1000000)
                pr_registry_add_load(op.t->reg, e->pod->name, 0, 1);
            e->participant_count++;
            e->report_due = true;
            *count = e->participant_count;
            rc = 1;
        }
    }
    pr__satab_unlock(&g_cache);
    return rc;
}

/* Raise a room's participantCount to the store's figure. */
void pr__rc_set_count(const char *room, size_t len, uint32_t count)
{
    if (!pr__atab_key_ok(PR_KEY_ROOM, room, len))
        return;
    struct pr_atab_op op;
    pr__satab_begin(&g_cache, PR_KEY_ROOM, room, len, &op);
    struct pr_atab_entry **pp = op.pp;
    if (pp && count > (*pp)->participant_count)
        pr__atab_move(op.t, *pp, (*pp)->pod->name, count, 0, op.now);
    pr__satab_unlock(&g_cache);
}

/* The cached assignment for the admin API. */
int pr__rc_info(enum pr_key_kind kind, const char *key, size_t len, struct pr_assignment *out)
{
    if (!pr__atab_key_ok(kind, key, len))
        return -EINVAL;
    return pr__satab_info(&g_cache, (uint8_t)kind, key, len, out);
}

/* Forget every assignment pointing at pod. */
void pr__rc_release_pod(const char *pod)
{
    if (!pod)
        return;
    pr__satab_release_pod(&g_cache, pod);
}

/* Numbers of cached room and participant assignments. */
void pr__rc_counts(uint64_t *rooms, uint64_t *participants)
{
    pr__satab_counts(&g_cache, rooms, participants);
}

/* Expire entries of the next few thousand buckets, stop counting idle ones, and recount the
 * pods' loads from the active entries when asked (the store's shared figures are absent). */
void pr__rc_tick(bool recount)
{
    pr__satab_tick(&g_cache, recount);
}

/* A use of kind:key (or of its hash). */
int pr__rc_use(enum pr_key_kind kind, const char *key, size_t len, uint64_t hash, bool activate,
               char key_out[PR_KEY_MAX + 1], size_t *key_len, char pod[PR_POD_NAME_MAX + 1])
{
    if ((unsigned)kind >= PR_ATAB_KINDS || (key && !pr__atab_key_ok(kind, key, len)))
        return -EINVAL;
    if (key)
        hash = pr__atab_hash((uint8_t)kind, key, len);
    return pr__satab_use(&g_cache, (uint8_t)kind, key, len, hash, activate, key_out, key_len, pod);
}

bool pr__rc_full(enum pr_key_kind kind)
{
    return pr__satab_full(&g_cache, (uint8_t)kind);
}

uint64_t pr__rc_touch_every(void)
{
    return pr__satab_touch_every(&g_cache);
}

/* One entry as a write-back/report item (the caller holds the table lock). */
static void item_from(struct pr__rc_item *it, const struct pr_atab_entry *e,
                      uint64_t active_ago_ms)
{
    it->kind = e->kind;
    it->key_len = e->keylen;
    memcpy(it->key, e->key, e->keylen);
    it->key[e->keylen] = '\0';
    memcpy(it->pod, e->pod->name, sizeof(it->pod));
    it->count = e->participant_count;
    it->assigned_at_ms = e->assigned_at_ms;
    it->tentative = e->tentative;
    it->active_ago_ms = active_ago_ms;
}


/* Active entries whose activity the other replicas have not seen yet. */
size_t pr__rc_collect_active(struct pr__rc_item *items, size_t max)
{
    size_t n = 0;
    uint64_t now = pr_mono_ms();
    struct pr_atab *t = pr__satab_lock(&g_cache);
    uint64_t half = t->active_ms / 2;
    for (struct pr_atab_entry *e = t->ahead; e && n < max; e = e->anext) {
        bool due = e->report_due || (e->active > e->reported && now - e->reported >= half);
        if (!due)
            continue;
        e->report_due = false;
        e->reported = now;
        item_from(&items[n++], e, now > e->active ? now - e->active : 0);
    }
    pr__satab_unlock(&g_cache);
    return n;
}

/* Number of dirty entries. */
size_t pr__rc_dirty(void)
{
    struct pr_atab *t = pr__satab_lock(&g_cache);
    size_t n = t ? t->dirty : 0;
    pr__satab_unlock(&g_cache);
    return n;
}

/* Clear kind:key's dirty mark when it still points at pod. */
void pr__rc_clean(enum pr_key_kind kind, const char *key, size_t len, const char *pod)
{
    if (!pr__atab_key_ok(kind, key, len))
        return;
    struct pr_atab_op op;
    pr__satab_begin(&g_cache, (uint8_t)kind, key, len, &op);
    struct pr_atab_entry **pp = op.pp;
    if (pp && strcmp((*pp)->pod->name, pod) == 0)
        pr__atab_set_dirty(op.t, *pp, false);
    pr__satab_unlock(&g_cache);
}

/* Copy entries for a write-back walk. */
size_t pr__rc_collect(size_t *cursor, bool dirty_only, struct pr__rc_item *items, size_t max)
{
    size_t n = 0;
    uint64_t now = pr_mono_ms();
    struct pr_atab *t = pr__satab_lock(&g_cache);
    size_t i = *cursor;
    if (i >= t->nbuckets)
        i = 0;
    for (; i < t->nbuckets; i++) {
        size_t here = 0;
        for (const struct pr_atab_entry *e = t->buckets[i]; e; e = e->next)
            here += (!dirty_only || e->dirty) && now < e->expires;
        if (n > 0 && n + here > max)
            break;
        for (const struct pr_atab_entry *e = t->buckets[i]; e && n < max; e = e->next) {
            if ((dirty_only && !e->dirty) || now >= e->expires)
                continue;
            item_from(&items[n++], e, 0);
        }
    }
    *cursor = i >= t->nbuckets ? 0 : i;
    pr__satab_unlock(&g_cache);
    return n;
}
