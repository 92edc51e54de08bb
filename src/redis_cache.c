/* Process-wide assignment cache of the Redis store: a chained hash table behind one mutex,
 * TTL expiry, throttled renewal stamps, per-room identity sets, dirty marks for write-back,
 * and the registry loads derived from its content (SPEC 6.2). */
#include "redis_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "podrouter/registry.h"

#define KIND_COUNT 3u
#define INITIAL_BUCKETS 1024u
#define TICK_BUCKETS 8192u
#define RENEW_MIN_MS 60000u     /* renew a key's TTL at most once a minute... */
#define RENEW_SHORT_TTL 120000u /* ...or every ttl/2 when the ttl is under 2 minutes */

struct entry {
    struct entry *next;
    uint64_t hash;
    uint64_t expires; /* monotonic ms; UINT64_MAX = never */
    uint64_t renewed; /* monotonic ms of the last TTL renewal sent */
    uint64_t assigned_at_ms;
    struct pr_idset *ids;
    uint32_t participant_count;
    uint8_t kind;
    uint8_t keylen;
    bool dirty;
    char pod[PR_POD_NAME_MAX + 1];
    char key[];
};

struct table {
    struct entry **buckets;
    size_t nbuckets;
    size_t count;
    size_t dirty;
    uint64_t kind_count[KIND_COUNT];
    size_t cursor;
    unsigned refs;
    struct pr_registry *reg;
    uint64_t ttl[KIND_COUNT];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct table *g_t;

/* 64-bit FNV-1a of (seed, data) with a final avalanche. */
static uint64_t hash64(uint8_t seed, const char *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    h = (h ^ seed) * 0x100000001b3u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)data[i]) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

/* true when (kind, key) can be cached. */
static bool args_ok(enum pr_key_kind kind, const char *key, size_t len)
{
    return (unsigned)kind < KIND_COUNT && key && len > 0 && len <= PR_KEY_MAX;
}

/* Apply an entry's weight to its pod's load, sign = +1 or -1 (lock held). */
static void entry_load(const struct entry *e, int sign)
{
    if (e->kind == PR_KEY_ROOM)
        pr_registry_add_load(g_t->reg, e->pod, sign, sign * (int)e->participant_count);
    else if (e->kind == PR_KEY_PARTICIPANT)
        pr_registry_add_load(g_t->reg, e->pod, 0, sign);
}

/* Unlink *pp, undo its load and free it (lock held). */
static void entry_remove(struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    entry_load(e, -1);
    g_t->count--;
    g_t->kind_count[e->kind]--;
    if (e->dirty)
        g_t->dirty--;
    free(e->ids);
    free(e);
}

/* Double the bucket array; on allocation failure the table just stays denser. */
static void table_grow(struct table *t)
{
    size_t n = t->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i];
        while (e) {
            struct entry *next = e->next;
            size_t j = (size_t)e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    t->cursor = 0;
}

/* Slot of the live entry for (kind, key), or NULL; an expired one is removed (lock held). */
static struct entry **lookup(uint8_t kind, const char *key, size_t len, uint64_t hash, uint64_t now)
{
    struct entry **pp = &g_t->buckets[hash & (g_t->nbuckets - 1)];
    while (*pp) {
        struct entry *e = *pp;
        if (e->hash == hash && e->kind == kind && e->keylen == len &&
            memcmp(e->key, key, len) == 0) {
            if (now >= e->expires) {
                entry_remove(pp);
                return NULL;
            }
            return pp;
        }
        pp = &e->next;
    }
    return NULL;
}

/* Expiry deadline of a key of kind refreshed at now. */
static uint64_t deadline(uint8_t kind, uint64_t now)
{
    uint64_t ttl = g_t->ttl[kind];
    return ttl == 0 ? UINT64_MAX : now + ttl;
}

/* Insert kind:key -> pod (lock held); NULL when out of memory. */
static struct entry *insert(uint8_t kind, const char *key, size_t len, uint64_t hash,
                            const char *pod, uint32_t count, uint64_t assigned_at, uint64_t now)
{
    struct entry *e = calloc(1, sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    e->hash = hash;
    e->kind = kind;
    e->keylen = (uint8_t)len;
    memcpy(e->key, key, len);
    snprintf(e->pod, sizeof(e->pod), "%s", pod);
    e->renewed = now;
    e->expires = deadline(kind, now);
    e->assigned_at_ms = assigned_at ? assigned_at : pr_now_ms();
    e->participant_count = kind == PR_KEY_ROOM ? count : 0;
    size_t b = (size_t)hash & (g_t->nbuckets - 1);
    e->next = g_t->buckets[b];
    g_t->buckets[b] = e;
    g_t->count++;
    g_t->kind_count[kind]++;
    entry_load(e, +1);
    if (g_t->count > g_t->nbuckets)
        table_grow(g_t);
    return e;
}

/* Set e's dirty mark, keeping the dirty count (lock held). */
static void set_dirty(struct entry *e, bool dirty)
{
    if (e->dirty == dirty)
        return;
    e->dirty = dirty;
    if (dirty)
        g_t->dirty++;
    else
        g_t->dirty--;
}

/* Point e at pod with the given room count, moving its load (lock held). */
static void move(struct entry *e, const char *pod, uint32_t count, uint64_t assigned_at,
                 uint64_t now)
{
    bool same = strcmp(e->pod, pod) == 0;
    if (same && (e->kind != PR_KEY_ROOM || e->participant_count == count))
        return;
    entry_load(e, -1);
    if (!same) {
        snprintf(e->pod, sizeof(e->pod), "%s", pod);
        e->assigned_at_ms = assigned_at ? assigned_at : pr_now_ms();
        e->renewed = now;
        e->expires = deadline(e->kind, now);
    }
    if (e->kind == PR_KEY_ROOM)
        e->participant_count = count;
    entry_load(e, +1);
}

/* Take a reference on the shared cache. */
int pr__rc_open(struct pr_registry *reg, const uint64_t ttl[3])
{
    pthread_mutex_lock(&g_mu);
    if (!g_t) {
        struct table *t = calloc(1, sizeof(*t));
        struct entry **b = calloc(INITIAL_BUCKETS, sizeof(*b));
        if (!t || !b) {
            pthread_mutex_unlock(&g_mu);
            free(t);
            free(b);
            return -ENOMEM;
        }
        t->buckets = b;
        t->nbuckets = INITIAL_BUCKETS;
        t->reg = reg;
        memcpy(t->ttl, ttl, sizeof(t->ttl));
        g_t = t;
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
        for (size_t i = 0; i < g_t->nbuckets; i++) {
            struct entry *e = g_t->buckets[i];
            while (e) {
                struct entry *next = e->next;
                free(e->ids);
                free(e);
                e = next;
            }
        }
        free(g_t->buckets);
        free(g_t);
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
    if (!args_ok(kind, key, len))
        return -EINVAL;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup((uint8_t)kind, key, len, hash, now);
    if (pp) {
        struct entry *e = *pp;
        memcpy(pod, e->pod, PR_POD_NAME_MAX + 1);
        uint64_t ttl = g_t->ttl[e->kind];
        uint64_t every = ttl < RENEW_SHORT_TTL ? ttl / 2 : RENEW_MIN_MS;
        if (now > e->renewed && now - e->renewed > every) {
            e->renewed = now;
            e->expires = deadline(e->kind, now);
            if (renew)
                *renew = true;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Cache kind:key -> pod. */
int pr__rc_put(enum pr_key_kind kind, const char *key, size_t len, const char *pod, uint32_t count,
               uint64_t assigned_at, enum pr__rc_mode mode, bool dirty,
               char out[PR_POD_NAME_MAX + 1])
{
    if (!args_ok(kind, key, len) || !pod || !pod[0])
        return -EINVAL;
    int rc = 0;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup((uint8_t)kind, key, len, hash, now);
    struct entry *e = pp ? *pp : NULL;
    if (!e) {
        e = insert((uint8_t)kind, key, len, hash, pod, count, assigned_at, now);
        if (e)
            set_dirty(e, dirty);
    } else if (mode == PR_RC_OVERWRITE) {
        uint32_t c = e->participant_count;
        if (strcmp(e->pod, pod) != 0 || count > c)
            c = count;
        move(e, pod, c, assigned_at, now);
        e->expires = deadline(e->kind, now);
        set_dirty(e, dirty);
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
    if (!args_ok(kind, key, len) || !pod || !pod[0])
        return -EINVAL;
    int rc = 0;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup((uint8_t)kind, key, len, hash, now);
    struct entry *e = pp ? *pp : NULL;
    if (!e) {
        e = insert((uint8_t)kind, key, len, hash, pod, 0, 0, now);
        if (e)
            set_dirty(e, true);
    } else if (expect && strcmp(e->pod, expect) == 0) {
        move(e, pod, e->participant_count, 0, now);
        set_dirty(e, true);
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
    if (!args_ok(kind, key, len))
        return -EINVAL;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup((uint8_t)kind, key, len, hash, now);
    if (pp)
        entry_remove(pp);
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Count who into the room's identities seen by this replica. */
int pr__rc_join(const char *room, size_t len, const char *who, size_t who_len,
                char pod[PR_POD_NAME_MAX + 1])
{
    if (!args_ok(PR_KEY_ROOM, room, len) || !who || who_len == 0)
        return -EINVAL;
    uint64_t hash = hash64(PR_KEY_ROOM, room, len), now = pr_mono_ms();
    uint64_t id = hash64(0xff, who, who_len);
    int rc = -ENOENT;
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(PR_KEY_ROOM, room, len, hash, now);
    if (pp) {
        rc = 0;
        if (pr__idset_add(&(*pp)->ids, id)) {
            /* Counted locally at once; the store's answer (all replicas) follows. */
            move(*pp, (*pp)->pod, (*pp)->participant_count + 1, 0, now);
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
    if (!args_ok(PR_KEY_ROOM, room, len))
        return;
    uint64_t hash = hash64(PR_KEY_ROOM, room, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(PR_KEY_ROOM, room, len, hash, now);
    if (pp && count > (*pp)->participant_count)
        move(*pp, (*pp)->pod, count, 0, now);
    pthread_mutex_unlock(&g_mu);
}

/* The cached assignment for the admin API. */
int pr__rc_info(enum pr_key_kind kind, const char *key, size_t len, struct pr_assignment *out)
{
    if (!args_ok(kind, key, len))
        return -EINVAL;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup((uint8_t)kind, key, len, hash, now);
    if (pp) {
        memcpy(out->pod, (*pp)->pod, sizeof(out->pod));
        out->participant_count = (*pp)->participant_count;
        out->assigned_at_ms = (*pp)->assigned_at_ms;
    }
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Forget every assignment pointing at pod. */
void pr__rc_release_pod(const char *pod)
{
    if (!pod)
        return;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_t->nbuckets; i++) {
        struct entry **pp = &g_t->buckets[i];
        while (*pp) {
            if (strcmp((*pp)->pod, pod) == 0)
                entry_remove(pp);
            else
                pp = &(*pp)->next;
        }
    }
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

/* Per-pod totals while recounting loads. */
struct load_row {
    const char *name;
    uint32_t rooms, participants;
};

/* Order load rows by pod name. */
static int load_cmp(const void *a, const void *b)
{
    return strcmp(((const struct load_row *)a)->name, ((const struct load_row *)b)->name);
}

/* Expire entries of the next TICK_BUCKETS buckets, then recount every pod's load from the
 * whole cache so pods registered after their assignments were cached get theirs too. */
void pr__rc_tick(void)
{
    struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
    struct load_row *rows = malloc(PR_MAX_PODS * sizeof(*rows));
    if (!pods || !rows) {
        free(pods);
        free(rows);
        return;
    }
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    size_t todo = g_t->nbuckets < TICK_BUCKETS ? g_t->nbuckets : TICK_BUCKETS;
    for (size_t k = 0; k < todo; k++) {
        struct entry **pp = &g_t->buckets[g_t->cursor];
        while (*pp) {
            if (now >= (*pp)->expires)
                entry_remove(pp);
            else
                pp = &(*pp)->next;
        }
        g_t->cursor = (g_t->cursor + 1) & (g_t->nbuckets - 1);
    }
    size_t n = pr_registry_snapshot(g_t->reg, pods, PR_MAX_PODS);
    if (n > PR_MAX_PODS)
        n = PR_MAX_PODS;
    for (size_t i = 0; i < n; i++)
        rows[i] = (struct load_row){pods[i].name, 0, 0};
    qsort(rows, n, sizeof(*rows), load_cmp);
    for (size_t i = 0; i < g_t->nbuckets && n > 0; i++) {
        for (const struct entry *e = g_t->buckets[i]; e; e = e->next) {
            if (e->kind == PR_KEY_SID)
                continue;
            struct load_row key = {e->pod, 0, 0};
            struct load_row *r = bsearch(&key, rows, n, sizeof(*rows), load_cmp);
            if (!r)
                continue;
            if (e->kind == PR_KEY_ROOM) {
                r->rooms++;
                r->participants += e->participant_count;
            } else {
                r->participants++;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        pr_registry_set_load(g_t->reg, rows[i].name, rows[i].rooms, rows[i].participants);
    pthread_mutex_unlock(&g_mu);
    free(pods);
    free(rows);
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
    if (!args_ok(kind, key, len))
        return;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup((uint8_t)kind, key, len, hash, now);
    if (pp && strcmp((*pp)->pod, pod) == 0)
        set_dirty(*pp, false);
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
        for (const struct entry *e = g_t->buckets[i]; e; e = e->next)
            here += (!dirty_only || e->dirty) && now < e->expires;
        if (n > 0 && n + here > max)
            break;
        for (const struct entry *e = g_t->buckets[i]; e && n < max; e = e->next) {
            if ((dirty_only && !e->dirty) || now >= e->expires)
                continue;
            struct pr__rc_item *it = &items[n++];
            it->kind = e->kind;
            it->key_len = e->keylen;
            memcpy(it->key, e->key, e->keylen);
            it->key[e->keylen] = '\0';
            memcpy(it->pod, e->pod, sizeof(it->pod));
            it->count = e->participant_count;
            it->assigned_at_ms = e->assigned_at_ms;
        }
    }
    *cursor = i >= g_t->nbuckets ? 0 : i;
    pthread_mutex_unlock(&g_mu);
    return n;
}
