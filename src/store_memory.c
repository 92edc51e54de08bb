/* In-process store: one chained hash table per process, shared by every handle, behind the
 * lock of its struct pr_shared_atab (atable_shared.c). Entries expire by TTL (lazily on access,
 * incrementally in tick) and keep the registry's room/participant loads in step with what is
 * assigned. */
#include <errno.h>
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

static struct pr_shared_atab g_mem = PR_SHARED_ATAB_INIT;

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
    if (pr__satab_get(&g_mem, (uint8_t)kind, key, len, hash, now, pod, NULL) != 0) {
        cb(arg, -ENOENT, NULL);
        return;
    }
    pr__touch_due(&((struct mem_store *)s)->touched, hash, now, pr__satab_touch_every(&g_mem));
    cb(arg, 0, pod);
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
    struct pr_atab_op op;
    pr__satab_begin(&g_mem, (uint8_t)kind, key, len, &op);
    struct pr_atab_entry **pp = op.pp;
    struct pr_atab_entry *e = NULL;
    if (pp) {
        e = *pp; /* created meanwhile: this request is its second use */
        pr__atab_use(op.t, e, op.now, true);
        pr__atab_renew(op.t, e, op.now);
    } else if (pr__atab_full(op.t, (uint8_t)kind)) {
        rc = -ENOSPC; /* --max-assignments: route without storing (SPEC 3.6) */
    } else {
        e = pr__atab_insert(op.t, (uint8_t)kind, key, len, op.hash, pod, 0, 0, op.now);
    }
    if (e)
        memcpy(out, e->pod->name, sizeof(out));
    else if (rc == 0)
        rc = -ENOMEM;
    pr__satab_unlock(&g_mem);
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
    struct pr_atab_op op;
    pr__satab_begin(&g_mem, (uint8_t)kind, key, len, &op);
    struct pr_atab_entry **pp = op.pp;
    struct pr_atab_entry *e;
    if (pp) {
        e = *pp;
        if (expect && strcmp(e->pod->name, expect) == 0)
            pr__atab_move(op.t, e, pod, e->participant_count, 0, op.now);
        pr__atab_use(op.t, e, op.now, true);
    } else {
        e = pr__atab_insert(op.t, (uint8_t)kind, key, len, op.hash, pod, 0, 0, op.now);
    }
    if (e)
        memcpy(out, e->pod->name, sizeof(out));
    else
        rc = -ENOMEM;
    pr__satab_unlock(&g_mem);
    cb(arg, rc, rc == 0 ? out : NULL);
}

/* Unconditionally point kind:key at pod; 0, -EINVAL or -ENOMEM. */
static int mem_set(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                   const char *pod)
{
    if (!pod || !args_ok(kind, key, len, pod))
        return -EINVAL;
    int rc = 0;
    struct pr_atab_op op;
    pr__satab_begin(&g_mem, (uint8_t)kind, key, len, &op);
    struct pr_atab_entry **pp = op.pp;
    struct pr_atab_entry *e = pp ? *pp : NULL;
    if (e) {
        pr__atab_move(op.t, e, pod, e->participant_count, 0, op.now);
        pr__atab_renew(op.t, e, op.now);
    } else {
        e = pr__atab_insert(op.t, (uint8_t)kind, key, len, op.hash, pod, 0, 0, op.now);
    }
    if (e)
        pr__atab_use(op.t, e, op.now, false); /* an operator pin is live at once */
    else
        rc = -ENOMEM;
    pr__satab_unlock(&g_mem);
    return rc;
}

/* Remove kind:key; 0 or -ENOENT. */
static int mem_del(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len)
{
    if (!args_ok(kind, key, len, NULL))
        return -EINVAL;
    return pr__satab_del(&g_mem, (uint8_t)kind, key, len);
}

/* Count who into the room's distinct participants (and its pod's participant load). */
static void mem_room_join(struct pr_store *s, const char *room, size_t len, const char *who,
                          size_t who_len)
{
    if (!args_ok(PR_KEY_ROOM, room, len, NULL) || !who || who_len == 0)
        return;
    uint64_t id = pr__atab_hash(0xff, who, who_len);
    struct pr_atab_op op;
    pr__satab_begin(&g_mem, PR_KEY_ROOM, room, len, &op);
    struct pr_atab_entry **pp = op.pp;
    if (pp && pr__idset_add(&(*pp)->ids, id)) {
        (*pp)->participant_count++;
        if ((*pp)->counted)
            pr_registry_add_load(op.t->reg, (*pp)->pod->name, 0, 1);
    }
    pr__satab_unlock(&g_mem);
}

/* Copy the assignment of kind:key for the admin API; 0 or -ENOENT. */
static int mem_info(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                    struct pr_assignment *out)
{
    if (!args_ok(kind, key, len, NULL))
        return -EINVAL;
    return pr__satab_info(&g_mem, (uint8_t)kind, key, len, out);
}

/* Drop every assignment that points at pod. */
static void mem_release_pod(struct pr_store *s, const char *pod)
{
    if (!pod)
        return;
    pr__satab_release_pod(&g_mem, pod);
}

/* Numbers of room and participant assignments (expired ones count until evicted). */
static void mem_counts(struct pr_store *s, uint64_t *rooms, uint64_t *participants)
{
    pr__satab_counts(&g_mem, rooms, participants);
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
    pr__satab_tick(&g_mem, true);
}

/* Mark kind:key used now; lock-free when this handle stamped it recently. */
static void mem_touch_at(struct mem_store *ms, enum pr_key_kind kind, const char *key, size_t len,
                         uint64_t hash)
{
    if (!pr__touch_due(&ms->touched, hash, pr_mono_ms(), pr__satab_touch_every(&g_mem)))
        return;
    pr__satab_use(&g_mem, (uint8_t)kind, key, len, hash, true, NULL, NULL, NULL);
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
    pr__satab_close(&g_mem);
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

    if (pr__satab_open(&g_mem, reg, ttl, cfg ? cfg->room_active_ms : 0,
                       cfg ? cfg->max_assignments : 0) != 0) {
        free(ms);
        return NULL;
    }
    return &ms->base;
}
