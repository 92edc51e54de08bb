/* Process-wide assignment cache of the Redis store: a chained hash table behind one mutex,
 * TTL expiry, throttled renewal stamps, per-room identity sets, dirty marks for write-back,
 * and the registry loads derived from its content (SPEC 6.2). */
#include "redis_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atable.h"
#include "podrouter/registry.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pr_atab *g_t;

/* Take a reference on the shared cache. */
int pr__rc_open(struct pr_registry *reg, const uint64_t ttl[3], uint64_t active_ms,
                uint64_t max_per_kind)
{
    pthread_mutex_lock(&g_mu);
    if (!g_t) {
        g_t = pr__atab_create(reg, ttl);
        if (g_t) {
            g_t->active_ms = active_ms;
            g_t->max_per_kind = max_per_kind;
        }
    }
    if (!g_t) {
        pthread_mutex_unlock(&g_mu);
        return -ENOMEM;
    }
    g_t->refs++;
    pthread_mutex_unlock(&g_mu);
    return 0;
}

/* Drop a reference; the last one frees every entry. */
void pr__rc_close(void)
{
    pthread_mutex_lock(&g_mu);
    if (g_t && --g_t->refs == 0) {
        pr__atab_destroy(g_t);
        g_t = NULL;
    }
    pthread_mutex_unlock(&g_mu);
}

/* Cached pod of kind:key; flags a due TTL renewal. */
int pr__rc_get(enum pr_key_kind kind, const char *key, size_t len, char pod[PR_POD_NAME_MAX + 1],
               bool *renew)
{
    if (renew)
        *renew = false;
    if (!pr__atab_key_ok(kind, key, len))
        return -EINVAL;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_t, (uint8_t)kind, key, len, hash, now);
    if (pp) {
        struct pr_atab_entry *e = *pp;
        memcpy(pod, e->pod, PR_POD_NAME_MAX + 1);
        bool promoted = pr__atab_use(g_t, e, now, true) & PR_ATAB_PROMOTED;
        if ((pr__atab_renew(g_t, e, now) || promoted) && renew)
            *renew = true;
    }
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Cache kind:key -> pod. */
int pr__rc_put(enum pr_key_kind kind, const char *key, size_t len, const char *pod, uint32_t count,
               uint64_t assigned_at, enum pr__rc_mode mode, bool dirty,
               char out[PR_POD_NAME_MAX + 1])
{
    if (!pr__atab_key_ok(kind, key, len) || !pod || !pod[0])
        return -EINVAL;
    int rc = 0;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_t, (uint8_t)kind, key, len, hash, now);
    struct pr_atab_entry *e = pp ? *pp : NULL;
    if (!e) {
        e = pr__atab_insert(g_t, (uint8_t)kind, key, len, hash, pod, count, assigned_at, now);
        if (e)
            pr__atab_set_dirty(g_t, e, dirty);
    } else if (mode == PR_RC_OVERWRITE) {
        uint32_t c = e->participant_count;
        if (strcmp(e->pod, pod) != 0 || count > c)
            c = count;
        pr__atab_move(g_t, e, pod, c, assigned_at, now);
        if (!e->tentative)
            e->expires = pr__atab_deadline(g_t, e->kind, now);
        pr__atab_set_dirty(g_t, e, dirty);
    }
    if (e && out)
        memcpy(out, e->pod, PR_POD_NAME_MAX + 1);
    if (!e)
        rc = -ENOMEM;
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Local compare-and-set while the store is unreachable. */
int pr__rc_replace(enum pr_key_kind kind, const char *key, size_t len, const char *expect,
                   const char *pod, char out[PR_POD_NAME_MAX + 1])
{
    if (!pr__atab_key_ok(kind, key, len) || !pod || !pod[0])
        return -EINVAL;
    int rc = 0;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_t, (uint8_t)kind, key, len, hash, now);
    struct pr_atab_entry *e = pp ? *pp : NULL;
    if (!e) {
        e = pr__atab_insert(g_t, (uint8_t)kind, key, len, hash, pod, 0, 0, now);
        if (e)
            pr__atab_set_dirty(g_t, e, true);
    } else if (expect && strcmp(e->pod, expect) == 0) {
        pr__atab_move(g_t, e, pod, e->participant_count, 0, now);
        pr__atab_set_dirty(g_t, e, true);
    }
    if (e)
        memcpy(out, e->pod, PR_POD_NAME_MAX + 1);
    else
        rc = -ENOMEM;
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Forget kind:key. */
int pr__rc_del(enum pr_key_kind kind, const char *key, size_t len)
{
    if (!pr__atab_key_ok(kind, key, len))
        return -EINVAL;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_t, (uint8_t)kind, key, len, hash, now);
    if (pp)
        pr__atab_remove(g_t, pp);
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Count who into the room's identities seen by this replica. */
int pr__rc_join(const char *room, size_t len, const char *who, size_t who_len,
                char pod[PR_POD_NAME_MAX + 1])
{
    if (!pr__atab_key_ok(PR_KEY_ROOM, room, len) || !who || who_len == 0)
        return -EINVAL;
    uint64_t hash = pr__atab_hash(PR_KEY_ROOM, room, len), now = pr_mono_ms();
    uint64_t id = pr__atab_hash(0xff, who, who_len);
    int rc = -ENOENT;
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_t, PR_KEY_ROOM, room, len, hash, now);
    if (pp) {
        rc = 0;
        if (pr__idset_add(&(*pp)->ids, id)) {
            /* Counted locally at once; the store's answer (all replicas) follows. */
            pr__atab_move(g_t, *pp, (*pp)->pod, (*pp)->participant_count + 1, 0, now);
            memcpy(pod, (*pp)->pod, PR_POD_NAME_MAX + 1);
            rc = 1;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Raise a room's participantCount to the store's figure. */
void pr__rc_set_count(const char *room, size_t len, uint32_t count)
{
    if (!pr__atab_key_ok(PR_KEY_ROOM, room, len))
        return;
    uint64_t hash = pr__atab_hash(PR_KEY_ROOM, room, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_t, PR_KEY_ROOM, room, len, hash, now);
    if (pp && count > (*pp)->participant_count)
        pr__atab_move(g_t, *pp, (*pp)->pod, count, 0, now);
    pthread_mutex_unlock(&g_mu);
}

/* The cached assignment for the admin API. */
int pr__rc_info(enum pr_key_kind kind, const char *key, size_t len, struct pr_assignment *out)
{
    if (!pr__atab_key_ok(kind, key, len))
        return -EINVAL;
    pthread_mutex_lock(&g_mu);
    int rc = pr__atab_info(g_t, (uint8_t)kind, key, len, out);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Forget every assignment pointing at pod. */
void pr__rc_release_pod(const char *pod)
{
    if (!pod)
        return;
    pthread_mutex_lock(&g_mu);
    pr__atab_release_pod(g_t, pod);
    pthread_mutex_unlock(&g_mu);
}

/* Numbers of cached room and participant assignments. */
void pr__rc_counts(uint64_t *rooms, uint64_t *participants)
{
    pthread_mutex_lock(&g_mu);
    if (rooms)
        *rooms = g_t->kind_count[PR_KEY_ROOM];
    if (participants)
        *participants = g_t->kind_count[PR_KEY_PARTICIPANT];
    pthread_mutex_unlock(&g_mu);
}

/* Expire entries of the next few thousand buckets, stop counting idle ones, and recount the
 * pods' loads from the active entries when asked (the store's shared figures are absent). */
void pr__rc_tick(bool recount)
{
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    pr__atab_expire_some(g_t, now);
    pr__atab_deactivate_idle(g_t, now);
    if (recount)
        pr__atab_recount(g_t);
    pthread_mutex_unlock(&g_mu);
}

/* A use of kind:key (or of its hash). */
int pr__rc_use(enum pr_key_kind kind, const char *key, size_t len, uint64_t hash, bool activate,
               char key_out[PR_KEY_MAX + 1], size_t *key_len, char pod[PR_POD_NAME_MAX + 1])
{
    if ((unsigned)kind >= PR_ATAB_KINDS || (key && !pr__atab_key_ok(kind, key, len)))
        return -EINVAL;
    uint64_t now = pr_mono_ms();
    if (key)
        hash = pr__atab_hash((uint8_t)kind, key, len);
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry *e;
    if (key) {
        struct pr_atab_entry **pp = pr__atab_lookup(g_t, (uint8_t)kind, key, len, hash, now);
        e = pp ? *pp : NULL;
    } else {
        e = pr__atab_find_hash(g_t, (uint8_t)kind, hash, now);
    }
    int r = -ENOENT;
    if (e) {
        r = pr__atab_use(g_t, e, now, activate);
        if ((r & PR_ATAB_PROMOTED) && key_out && key_len && pod) {
            memcpy(key_out, e->key, e->keylen);
            key_out[e->keylen] = '\0';
            *key_len = e->keylen;
            memcpy(pod, e->pod, PR_POD_NAME_MAX + 1);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return r;
}

bool pr__rc_full(enum pr_key_kind kind)
{
    pthread_mutex_lock(&g_mu);
    bool full = pr__atab_full(g_t, (uint8_t)kind);
    pthread_mutex_unlock(&g_mu);
    return full;
}

uint64_t pr__rc_touch_every(void)
{
    return pr__touch_every(g_t); /* active_ms is fixed once the cache exists */
}

/* One entry as a write-back/report item (the caller holds the table lock). */
static void item_from(struct pr__rc_item *it, const struct pr_atab_entry *e,
                      uint64_t active_ago_ms)
{
    it->kind = e->kind;
    it->key_len = e->keylen;
    memcpy(it->key, e->key, e->keylen);
    it->key[e->keylen] = '\0';
    memcpy(it->pod, e->pod, sizeof(it->pod));
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
    pthread_mutex_lock(&g_mu);
    uint64_t half = g_t->active_ms / 2;
    for (struct pr_atab_entry *e = g_t->ahead; e && n < max; e = e->anext) {
        bool due = e->report_due || (e->active > e->reported && now - e->reported >= half);
        if (!due)
            continue;
        e->report_due = false;
        e->reported = now;
        item_from(&items[n++], e, now > e->active ? now - e->active : 0);
    }
    pthread_mutex_unlock(&g_mu);
    return n;
}

/* Number of dirty entries. */
size_t pr__rc_dirty(void)
{
    pthread_mutex_lock(&g_mu);
    size_t n = g_t ? g_t->dirty : 0;
    pthread_mutex_unlock(&g_mu);
    return n;
}

/* Clear kind:key's dirty mark when it still points at pod. */
void pr__rc_clean(enum pr_key_kind kind, const char *key, size_t len, const char *pod)
{
    if (!pr__atab_key_ok(kind, key, len))
        return;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_t, (uint8_t)kind, key, len, hash, now);
    if (pp && strcmp((*pp)->pod, pod) == 0)
        pr__atab_set_dirty(g_t, *pp, false);
    pthread_mutex_unlock(&g_mu);
}

/* Copy entries for a write-back walk. */
size_t pr__rc_collect(size_t *cursor, bool dirty_only, struct pr__rc_item *items, size_t max)
{
    size_t n = 0;
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    size_t i = *cursor;
    if (i >= g_t->nbuckets)
        i = 0;
    for (; i < g_t->nbuckets; i++) {
        size_t here = 0;
        for (const struct pr_atab_entry *e = g_t->buckets[i]; e; e = e->next)
            here += (!dirty_only || e->dirty) && now < e->expires;
        if (n > 0 && n + here > max)
            break;
        for (const struct pr_atab_entry *e = g_t->buckets[i]; e && n < max; e = e->next) {
            if ((dirty_only && !e->dirty) || now >= e->expires)
                continue;
            item_from(&items[n++], e, 0);
        }
    }
    *cursor = i >= g_t->nbuckets ? 0 : i;
    pthread_mutex_unlock(&g_mu);
    return n;
}
