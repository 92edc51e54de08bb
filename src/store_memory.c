/* In-process store: one chained hash table per process, shared by every handle, guarded by
 * one mutex. Entries expire by TTL (lazily on access, incrementally in tick) and keep the
 * registry's room/participant loads in step with what is assigned. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "podrouter/config.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"

#define KIND_COUNT 3u /* sid, room, participant */
#define INITIAL_BUCKETS 1024u
#define TICK_BUCKETS 8192u      /* buckets examined per tick */
#define RENEW_MIN_MS 60000u     /* renew a key's TTL at most once a minute... */
#define RENEW_SHORT_TTL 120000u /* ...or every ttl/2 when the ttl is under 2 minutes */

struct entry {
    struct entry *next;
    uint64_t hash;
    uint64_t expires; /* monotonic ms; UINT64_MAX = never */
    uint64_t renewed; /* monotonic ms of the last TTL renewal */
    uint64_t assigned_at_ms;
    struct pr_idset *ids; /* rooms only */
    uint32_t participant_count;
    uint8_t kind;
    uint8_t keylen;
    char pod[PR_POD_NAME_MAX + 1];
    char key[];
};

struct table {
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    uint64_t kind_count[KIND_COUNT];
    size_t cursor; /* next bucket tick examines */
    unsigned refs;
};

struct mem_store {
    struct pr_store base;
    struct pr_registry *reg;
    uint64_t ttl[KIND_COUNT];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct table *g_table;

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

/* Apply an entry's weight to its pod's load, sign = +1 or -1 (lock held). */
static void entry_load(const struct mem_store *ms, const struct entry *e, int sign)
{
    if (e->kind == PR_KEY_ROOM)
        pr_registry_add_load(ms->reg, e->pod, sign, sign * (int)e->participant_count);
    else if (e->kind == PR_KEY_PARTICIPANT)
        pr_registry_add_load(ms->reg, e->pod, 0, sign);
}

/* Free an entry already unlinked from its chain. */
static void entry_free(struct entry *e)
{
    free(e->ids);
    free(e);
}

/* Unlink *pp, undo its load and free it (lock held). */
static void entry_remove(struct mem_store *ms, struct table *t, struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    entry_load(ms, e, -1);
    t->count--;
    t->kind_count[e->kind]--;
    entry_free(e);
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

/* Slot pointing at the live entry for (kind, key), or NULL; an expired one found on the
 * way is removed (lock held). */
static struct entry **lookup(struct mem_store *ms, struct table *t, uint8_t kind, const char *key,
                             size_t len, uint64_t hash, uint64_t now)
{
    struct entry **pp = &t->buckets[hash & (t->nbuckets - 1)];
    while (*pp) {
        struct entry *e = *pp;
        if (e->hash == hash && e->kind == kind && e->keylen == len &&
            memcmp(e->key, key, len) == 0) {
            if (now >= e->expires) {
                entry_remove(ms, t, pp);
                return NULL;
            }
            return pp;
        }
        pp = &e->next;
    }
    return NULL;
}

/* Expiry deadline of a key of kind renewed at now. */
static uint64_t deadline(const struct mem_store *ms, uint8_t kind, uint64_t now)
{
    uint64_t ttl = ms->ttl[kind];
    return ttl == 0 ? UINT64_MAX : now + ttl;
}

/* Push e's expiry out if the last renewal is old enough (SPEC 6.1: throttled). */
static void renew(const struct mem_store *ms, struct entry *e, uint64_t now)
{
    uint64_t ttl = ms->ttl[e->kind];
    uint64_t every = ttl < RENEW_SHORT_TTL ? ttl / 2 : RENEW_MIN_MS;
    if (now > e->renewed && now - e->renewed > every) {
        e->renewed = now;
        e->expires = deadline(ms, e->kind, now);
    }
}

/* Insert a new assignment kind:key -> pod and count its load; NULL when out of memory. */
static struct entry *insert(struct mem_store *ms, struct table *t, uint8_t kind, const char *key,
                            size_t len, uint64_t hash, const char *pod, uint64_t now)
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
    e->expires = deadline(ms, kind, now);
    e->assigned_at_ms = pr_now_ms();
    size_t b = (size_t)hash & (t->nbuckets - 1);
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->count++;
    t->kind_count[kind]++;
    entry_load(ms, e, +1);
    if (t->count > t->nbuckets)
        table_grow(t);
    return e;
}

/* Point e at another pod, moving its load (lock held). */
static void move(struct mem_store *ms, struct entry *e, const char *pod, uint64_t now)
{
    if (strcmp(e->pod, pod) == 0)
        return;
    entry_load(ms, e, -1);
    snprintf(e->pod, sizeof(e->pod), "%s", pod);
    e->assigned_at_ms = pr_now_ms();
    e->renewed = now;
    e->expires = deadline(ms, e->kind, now);
    entry_load(ms, e, +1);
}

/* true when (kind, key, pod) are acceptable arguments (pod may be NULL when unused). */
static bool args_ok(enum pr_key_kind kind, const char *key, size_t len, const char *pod)
{
    if ((unsigned)kind >= KIND_COUNT || !key || len == 0 || len > PR_KEY_MAX)
        return false;
    return !pod || (pod[0] != '\0' && strnlen(pod, PR_POD_NAME_MAX + 1) <= PR_POD_NAME_MAX);
}

/* Look up kind:key, renewing its TTL; cb gets the pod or -ENOENT. */
static void mem_get(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                    pr_store_cb cb, void *arg)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!args_ok(kind, key, len, NULL)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    char pod[PR_POD_NAME_MAX + 1];
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(ms, g_table, (uint8_t)kind, key, len, hash, now);
    if (pp) {
        renew(ms, *pp, now);
        memcpy(pod, (*pp)->pod, sizeof(pod));
    }
    pthread_mutex_unlock(&g_mu);
    if (pp)
        cb(arg, 0, pod);
    else
        cb(arg, -ENOENT, NULL);
}

/* Atomically create kind:key -> pod unless present; cb gets the winner. */
static void mem_create(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                       const char *pod, pr_store_cb cb, void *arg)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!pod || !args_ok(kind, key, len, pod)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    char out[PR_POD_NAME_MAX + 1];
    int rc = 0;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(ms, g_table, (uint8_t)kind, key, len, hash, now);
    struct entry *e = pp ? *pp : insert(ms, g_table, (uint8_t)kind, key, len, hash, pod, now);
    if (pp)
        renew(ms, e, now);
    if (e)
        memcpy(out, e->pod, sizeof(out));
    else
        rc = -ENOMEM;
    pthread_mutex_unlock(&g_mu);
    cb(arg, rc, rc == 0 ? out : NULL);
}

/* Compare-and-set kind:key from expect (or absent) to pod; cb gets the value after. */
static void mem_replace(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                        const char *expect, const char *pod, pr_store_cb cb, void *arg)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!pod || !args_ok(kind, key, len, pod)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    char out[PR_POD_NAME_MAX + 1];
    int rc = 0;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(ms, g_table, (uint8_t)kind, key, len, hash, now);
    struct entry *e;
    if (pp) {
        e = *pp;
        if (expect && strcmp(e->pod, expect) == 0)
            move(ms, e, pod, now);
    } else {
        e = insert(ms, g_table, (uint8_t)kind, key, len, hash, pod, now);
    }
    if (e)
        memcpy(out, e->pod, sizeof(out));
    else
        rc = -ENOMEM;
    pthread_mutex_unlock(&g_mu);
    cb(arg, rc, rc == 0 ? out : NULL);
}

/* Unconditionally point kind:key at pod; 0, -EINVAL or -ENOMEM. */
static int mem_set(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                   const char *pod)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!pod || !args_ok(kind, key, len, pod))
        return -EINVAL;
    int rc = 0;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(ms, g_table, (uint8_t)kind, key, len, hash, now);
    if (pp) {
        move(ms, *pp, pod, now);
        renew(ms, *pp, now);
    } else if (!insert(ms, g_table, (uint8_t)kind, key, len, hash, pod, now)) {
        rc = -ENOMEM;
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Remove kind:key; 0 or -ENOENT. */
static int mem_del(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!args_ok(kind, key, len, NULL))
        return -EINVAL;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(ms, g_table, (uint8_t)kind, key, len, hash, now);
    if (pp)
        entry_remove(ms, g_table, pp);
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Count who into the room's distinct participants (and its pod's participant load). */
static void mem_room_join(struct pr_store *s, const char *room, size_t len, const char *who,
                          size_t who_len)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!args_ok(PR_KEY_ROOM, room, len, NULL) || !who || who_len == 0)
        return;
    uint64_t hash = hash64(PR_KEY_ROOM, room, len), now = pr_mono_ms();
    uint64_t id = hash64(0xff, who, who_len);
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(ms, g_table, PR_KEY_ROOM, room, len, hash, now);
    if (pp && pr__idset_add(&(*pp)->ids, id)) {
        (*pp)->participant_count++;
        pr_registry_add_load(ms->reg, (*pp)->pod, 0, 1);
    }
    pthread_mutex_unlock(&g_mu);
}

/* Copy the assignment of kind:key for the admin API; 0 or -ENOENT. */
static int mem_info(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                    struct pr_assignment *out)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!args_ok(kind, key, len, NULL))
        return -EINVAL;
    uint64_t hash = hash64((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct entry **pp = lookup(ms, g_table, (uint8_t)kind, key, len, hash, now);
    if (pp) {
        memcpy(out->pod, (*pp)->pod, sizeof(out->pod));
        out->participant_count = (*pp)->participant_count;
        out->assigned_at_ms = (*pp)->assigned_at_ms;
    }
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Drop every assignment that points at pod. */
static void mem_release_pod(struct pr_store *s, const char *pod)
{
    struct mem_store *ms = (struct mem_store *)s;
    if (!pod)
        return;
    pthread_mutex_lock(&g_mu);
    struct table *t = g_table;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry **pp = &t->buckets[i];
        while (*pp) {
            if (strcmp((*pp)->pod, pod) == 0)
                entry_remove(ms, t, pp);
            else
                pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(&g_mu);
}

/* Numbers of room and participant assignments (expired ones count until evicted). */
static void mem_counts(struct pr_store *s, uint64_t *rooms, uint64_t *participants)
{
    pthread_mutex_lock(&g_mu);
    if (rooms)
        *rooms = g_table->kind_count[PR_KEY_ROOM];
    if (participants)
        *participants = g_table->kind_count[PR_KEY_PARTICIPANT];
    pthread_mutex_unlock(&g_mu);
}

/* The memory store never loses its data. */
static bool mem_up(struct pr_store *s)
{
    return true;
}

/* Evict expired entries from the next TICK_BUCKETS buckets. */
static void mem_tick(struct pr_store *s)
{
    struct mem_store *ms = (struct mem_store *)s;
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct table *t = g_table;
    size_t todo = t->nbuckets < TICK_BUCKETS ? t->nbuckets : TICK_BUCKETS;
    for (size_t k = 0; k < todo; k++) {
        struct entry **pp = &t->buckets[t->cursor];
        while (*pp) {
            if (now >= (*pp)->expires)
                entry_remove(ms, t, pp);
            else
                pp = &(*pp)->next;
        }
        t->cursor = (t->cursor + 1) & (t->nbuckets - 1);
    }
    pthread_mutex_unlock(&g_mu);
}

/* Free every entry and the table itself (lock held, last handle gone). */
static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i];
        while (e) {
            struct entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    free(t->buckets);
    free(t);
}

/* Release a handle; the shared table goes with the last one. */
static void mem_close(struct pr_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&g_mu);
    if (g_table && --g_table->refs == 0) {
        table_free(g_table);
        g_table = NULL;
    }
    pthread_mutex_unlock(&g_mu);
    free(s);
}

static const struct pr_store_ops mem_ops = {
    .name = "memory",
    .close = mem_close,
    .get = mem_get,
    .create = mem_create,
    .replace = mem_replace,
    .set = mem_set,
    .del = mem_del,
    .room_join = mem_room_join,
    .info = mem_info,
    .release_pod = mem_release_pod,
    .counts = mem_counts,
    .up = mem_up,
    .tick = mem_tick,
};

/* A handle on the process-wide memory table (created on first open); NULL on ENOMEM. */
struct pr_store *pr_store_memory_open(const struct pr_config *cfg, struct pr_registry *reg)
{
    struct mem_store *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return NULL;
    ms->base.ops = &mem_ops;
    ms->reg = reg;
    ms->ttl[PR_KEY_SID] = cfg ? cfg->sid_ttl_ms : 2 * 60 * 1000u;
    ms->ttl[PR_KEY_ROOM] = cfg ? cfg->room_ttl_ms : 24 * 3600 * 1000u;
    ms->ttl[PR_KEY_PARTICIPANT] = cfg ? cfg->participant_ttl_ms : 24 * 3600 * 1000u;

    pthread_mutex_lock(&g_mu);
    if (!g_table) {
        struct table *t = calloc(1, sizeof(*t));
        struct entry **b = calloc(INITIAL_BUCKETS, sizeof(*b));
        if (!t || !b) {
            pthread_mutex_unlock(&g_mu);
            free(t);
            free(b);
            free(ms);
            return NULL;
        }
        t->buckets = b;
        t->nbuckets = INITIAL_BUCKETS;
        g_table = t;
    }
    g_table->refs++;
    pthread_mutex_unlock(&g_mu);
    return &ms->base;
}
