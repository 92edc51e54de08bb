/* In-process store: one chained hash table per process, shared by every handle, guarded by
 * one mutex. Entries expire by TTL (lazily on access, incrementally in tick) and keep the
 * registry's room/participant loads in step with what is assigned. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atable.h"
#include "podrouter/config.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"

struct mem_store {
    struct pr_store base;
    struct pr_touch_cache touched; /* this handle's loop thread only */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pr_atab *g_table;

/* true when (kind, key, pod) are acceptable arguments (pod may be NULL when unused). */
static bool args_ok(enum pr_key_kind kind, const char *key, size_t len, const char *pod)
{
    if (!pr__atab_key_ok(kind, key, len))
        return false;
    return !pod || (pod[0] != '\0' && strnlen(pod, PR_POD_NAME_MAX + 1) <= PR_POD_NAME_MAX);
}

/* Look up kind:key, renewing its TTL; cb gets the pod or -ENOENT. */
static void mem_get(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                    pr_store_cb cb, void *arg)
{
    if (!args_ok(kind, key, len, NULL)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    char pod[PR_POD_NAME_MAX + 1];
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_table, (uint8_t)kind, key, len, hash, now);
    if (pp) {
        pr__atab_use(g_table, *pp, now, true);
        pr__atab_renew(g_table, *pp, now);
        memcpy(pod, (*pp)->pod, sizeof(pod));
    }
    uint64_t every = pr__touch_every(g_table);
    pthread_mutex_unlock(&g_mu);
    if (pp)
        pr__touch_due(&((struct mem_store *)s)->touched, hash, now, every);
    if (pp)
        cb(arg, 0, pod);
    else
        cb(arg, -ENOENT, NULL);
}

/* Atomically create kind:key -> pod unless present; cb gets the winner. */
static void mem_create(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                       const char *pod, pr_store_cb cb, void *arg)
{
    if (!pod || !args_ok(kind, key, len, pod)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    char out[PR_POD_NAME_MAX + 1];
    int rc = 0;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_table, (uint8_t)kind, key, len, hash, now);
    struct pr_atab_entry *e = NULL;
    if (pp) {
        e = *pp; /* created meanwhile: this request is its second use */
        pr__atab_use(g_table, e, now, true);
        pr__atab_renew(g_table, e, now);
    } else if (pr__atab_full(g_table, (uint8_t)kind)) {
        rc = -ENOSPC; /* --max-assignments: route without storing (SPEC 3.6) */
    } else {
        e = pr__atab_insert(g_table, (uint8_t)kind, key, len, hash, pod, 0, 0, now);
    }
    if (e)
        memcpy(out, e->pod, sizeof(out));
    else if (rc == 0)
        rc = -ENOMEM;
    pthread_mutex_unlock(&g_mu);
    cb(arg, rc, rc == 0 ? out : NULL);
}

/* Compare-and-set kind:key from expect (or absent) to pod; cb gets the value after. */
static void mem_replace(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                        const char *expect, const char *pod, pr_store_cb cb, void *arg)
{
    if (!pod || !args_ok(kind, key, len, pod)) {
        cb(arg, -EINVAL, NULL);
        return;
    }
    char out[PR_POD_NAME_MAX + 1];
    int rc = 0;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_table, (uint8_t)kind, key, len, hash, now);
    struct pr_atab_entry *e;
    if (pp) {
        e = *pp;
        if (expect && strcmp(e->pod, expect) == 0)
            pr__atab_move(g_table, e, pod, e->participant_count, 0, now);
        pr__atab_use(g_table, e, now, true);
    } else {
        e = pr__atab_insert(g_table, (uint8_t)kind, key, len, hash, pod, 0, 0, now);
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
    if (!pod || !args_ok(kind, key, len, pod))
        return -EINVAL;
    int rc = 0;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_table, (uint8_t)kind, key, len, hash, now);
    struct pr_atab_entry *e = pp ? *pp : NULL;
    if (e) {
        pr__atab_move(g_table, e, pod, e->participant_count, 0, now);
        pr__atab_renew(g_table, e, now);
    } else {
        e = pr__atab_insert(g_table, (uint8_t)kind, key, len, hash, pod, 0, 0, now);
    }
    if (e)
        pr__atab_use(g_table, e, now, false); /* an operator pin is live at once */
    else
        rc = -ENOMEM;
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Remove kind:key; 0 or -ENOENT. */
static int mem_del(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len)
{
    if (!args_ok(kind, key, len, NULL))
        return -EINVAL;
    uint64_t hash = pr__atab_hash((uint8_t)kind, key, len), now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_table, (uint8_t)kind, key, len, hash, now);
    if (pp)
        pr__atab_remove(g_table, pp);
    pthread_mutex_unlock(&g_mu);
    return pp ? 0 : -ENOENT;
}

/* Count who into the room's distinct participants (and its pod's participant load). */
static void mem_room_join(struct pr_store *s, const char *room, size_t len, const char *who,
                          size_t who_len)
{
    if (!args_ok(PR_KEY_ROOM, room, len, NULL) || !who || who_len == 0)
        return;
    uint64_t hash = pr__atab_hash(PR_KEY_ROOM, room, len), now = pr_mono_ms();
    uint64_t id = pr__atab_hash(0xff, who, who_len);
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry **pp = pr__atab_lookup(g_table, PR_KEY_ROOM, room, len, hash, now);
    if (pp && pr__idset_add(&(*pp)->ids, id)) {
        (*pp)->participant_count++;
        if ((*pp)->counted)
            pr_registry_add_load(g_table->reg, (*pp)->pod, 0, 1);
    }
    pthread_mutex_unlock(&g_mu);
}

/* Copy the assignment of kind:key for the admin API; 0 or -ENOENT. */
static int mem_info(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                    struct pr_assignment *out)
{
    if (!args_ok(kind, key, len, NULL))
        return -EINVAL;
    pthread_mutex_lock(&g_mu);
    int rc = pr__atab_info(g_table, (uint8_t)kind, key, len, out);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Drop every assignment that points at pod. */
static void mem_release_pod(struct pr_store *s, const char *pod)
{
    if (!pod)
        return;
    pthread_mutex_lock(&g_mu);
    pr__atab_release_pod(g_table, pod);
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

/* Evict expired entries from the next TICK_BUCKETS buckets, stop counting rooms idle for
 * --room-active and set the pods' loads from the active ones. */
static void mem_tick(struct pr_store *s)
{
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&g_mu);
    pr__atab_expire_some(g_table, now);
    pr__atab_deactivate_idle(g_table, now);
    pr__atab_recount(g_table);
    pthread_mutex_unlock(&g_mu);
}

/* Mark kind:key used now; lock-free when this handle stamped it recently. */
static void mem_touch_at(struct mem_store *ms, enum pr_key_kind kind, const char *key, size_t len,
                         uint64_t hash)
{
    uint64_t now = pr_mono_ms();
    /* g_table->active_ms is fixed after open: reading it unlocked is safe. */
    if (!pr__touch_due(&ms->touched, hash, now, pr__touch_every(g_table)))
        return;
    pthread_mutex_lock(&g_mu);
    struct pr_atab_entry *e = NULL;
    if (key) {
        struct pr_atab_entry **pp = pr__atab_lookup(g_table, (uint8_t)kind, key, len, hash, now);
        e = pp ? *pp : NULL;
    } else {
        e = pr__atab_find_hash(g_table, (uint8_t)kind, hash, now);
    }
    if (e)
        pr__atab_use(g_table, e, now, true);
    pthread_mutex_unlock(&g_mu);
}

static void mem_touch(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len)
{
    if (!args_ok(kind, key, len, NULL))
        return;
    mem_touch_at((struct mem_store *)s, kind, key, len, pr__atab_hash((uint8_t)kind, key, len));
}

static void mem_touch_hash(struct pr_store *s, enum pr_key_kind kind, uint64_t hash)
{
    if ((unsigned)kind >= PR_ATAB_KINDS)
        return;
    mem_touch_at((struct mem_store *)s, kind, NULL, 0, hash);
}

/* Release a handle; the shared table goes with the last one. */
static void mem_close(struct pr_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&g_mu);
    if (g_table && --g_table->refs == 0) {
        pr__atab_destroy(g_table);
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
    .touch = mem_touch,
    .touch_hash = mem_touch_hash,
};

/* A handle on the process-wide memory table (created on first open); NULL on ENOMEM. */
struct pr_store *pr_store_memory_open(const struct pr_config *cfg, struct pr_registry *reg)
{
    struct mem_store *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return NULL;
    ms->base.ops = &mem_ops;
    uint64_t ttl[PR_ATAB_KINDS];
    ttl[PR_KEY_SID] = cfg ? cfg->sid_ttl_ms : 2 * 60 * 1000u;
    ttl[PR_KEY_ROOM] = cfg ? cfg->room_ttl_ms : 24 * 3600 * 1000u;
    ttl[PR_KEY_PARTICIPANT] = cfg ? cfg->participant_ttl_ms : 24 * 3600 * 1000u;

    pthread_mutex_lock(&g_mu);
    if (!g_table) {
        g_table = pr__atab_create(reg, ttl);
        if (g_table) {
            g_table->active_ms = cfg ? cfg->room_active_ms : 0;
            g_table->max_per_kind = cfg ? cfg->max_assignments : 0;
        }
    }
    if (!g_table) {
        pthread_mutex_unlock(&g_mu);
        free(ms);
        return NULL;
    }
    g_table->refs++;
    pthread_mutex_unlock(&g_mu);
    return &ms->base;
}
