/* Pod table: a fixed array of slots plus a name-sorted index, one mutex, per-slot atomics
 * for connection counts. Every critical section is a bounded scan without allocation. */
#include "podrouter/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FAILURE_WINDOW_MS 2000u
#define FORGET_FACTOR 4u
#define HOST_MAX 53u

struct pod_slot {
    bool used;
    bool draining;
    char name[PR_POD_NAME_MAX + 1];
    char address[PR_ADDRESS_MAX + 1];
    char zone[PR_ZONE_MAX + 1];
    uint32_t cap_rooms, cap_participants;
    uint32_t load_rooms, load_participants;
    uint64_t last_seen_ms;   /* wall clock, for display */
    uint64_t last_seen_mono; /* monotonic, for state */
    uint64_t failed_mono;    /* 0 = never */
    bool unreachable;        /* passively down (--pod-fall): a probe or a new address revives */
    _Atomic uint32_t fails;  /* consecutive connect failures (written under the lock) */
    uint64_t marked_down;    /* times marked unreachable (this generation) */
    uint32_t gen;            /* under the lock; mirrored in the high half of conn */
    /* (gen << 32) | connections: one word so a stale gen can never touch a new pod. */
    _Atomic uint64_t conn;
};

struct pr_registry {
    pthread_mutex_t mu;
    uint64_t ttl_ms;
    uint32_t fall;               /* --pod-fall: failures that mark a pod down, 0 never */
    uint32_t n;                  /* pods in order[] */
    uint16_t order[PR_MAX_PODS]; /* slot indices sorted by name */
    struct pod_slot slots[PR_MAX_PODS];
};

/* The state name used by the API ("ready", "draining", "down"). */
const char *pr_pod_state_name(enum pr_pod_state s)
{
    switch (s) {
    case PR_POD_READY:
        return "ready";
    case PR_POD_DRAINING:
        return "draining";
    case PR_POD_DOWN:
        return "down";
    }
    return "?";
}

/* The reason name used by the API ("expired", "unreachable"; "" when not down). */
const char *pr_down_reason_name(enum pr_down_reason r)
{
    switch (r) {
    case PR_DOWN_EXPIRED:
        return "expired";
    case PR_DOWN_UNREACHABLE:
        return "unreachable";
    case PR_DOWN_NONE:
        break;
    }
    return "";
}

/* true when s[0..len) is a pod address: host:port or [v6]:port (SPEC 4.2) in the grammar of
 * pr_hostport_valid, at most PR_ADDRESS_MAX bytes and a host name of at most HOST_MAX. The
 * router's PUT /v1/pods and the sidecar's --address both call this one function. */
bool pr_pod_address_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > PR_ADDRESS_MAX || memchr(s, '\0', len))
        return false;
    if (s[0] != '[') {
        const char *colon = memchr(s, ':', len);
        if (colon && (size_t)(colon - s) > HOST_MAX)
            return false;
    }
    return pr_hostport_valid(s, len, true);
}

/* A registry whose pods go down after pod_ttl_ms without heartbeat; NULL on failure. */
struct pr_registry *pr_registry_create(uint64_t pod_ttl_ms)
{
    if (pod_ttl_ms == 0)
        return NULL;
    struct pr_registry *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        free(reg);
        return NULL;
    }
    reg->ttl_ms = pod_ttl_ms;
    reg->fall = PR_POD_FALL_DEFAULT;
    for (size_t i = 0; i < PR_MAX_PODS; i++) {
        atomic_init(&reg->slots[i].conn, 0);
        atomic_init(&reg->slots[i].fails, 0);
    }
    return reg;
}

/* Free the registry; NULL is accepted. */
void pr_registry_destroy(struct pr_registry *reg)
{
    if (!reg)
        return;
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

/* Binary search of order[] by name: index in order[] when found, else -(insert pos) - 1. */
static long find_pos(const struct pr_registry *reg, const char *name)
{
    long lo = 0, hi = (long)reg->n - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        int c = strcmp(reg->slots[reg->order[mid]].name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

/* The slot holding name, or NULL. */
static struct pod_slot *find_slot(struct pr_registry *reg, const char *name)
{
    if (!name)
        return NULL;
    long pos = find_pos(reg, name);
    return pos >= 0 ? &reg->slots[reg->order[pos]] : NULL;
}

/* now - then, or 0 when another thread stamped then after we read now. */
static uint64_t age(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

/* Current state of a slot at monotonic time now. */
static enum pr_pod_state slot_state(const struct pr_registry *reg, const struct pod_slot *p,
                                    uint64_t now)
{
    if (p->unreachable || age(now, p->last_seen_mono) >= reg->ttl_ms)
        return PR_POD_DOWN;
    return p->draining ? PR_POD_DRAINING : PR_POD_READY;
}

/* Start a new generation of a slot: connection count, failures and passive state cleared. */
static void slot_bump_gen(struct pod_slot *p)
{
    p->gen++;
    atomic_store(&p->conn, (uint64_t)p->gen << 32);
    atomic_store(&p->fails, 0);
    p->failed_mono = 0;
    p->unreachable = false;
    p->marked_down = 0;
}

/* Why a slot is down at monotonic time now (PR_DOWN_NONE when it is not). */
static enum pr_down_reason slot_down_reason(const struct pr_registry *reg,
                                            const struct pod_slot *p, uint64_t now)
{
    if (age(now, p->last_seen_mono) >= reg->ttl_ms)
        return PR_DOWN_EXPIRED;
    return p->unreachable ? PR_DOWN_UNREACHABLE : PR_DOWN_NONE;
}

/* Fill out from slot i at monotonic time now (lock held). */
static void slot_info(const struct pr_registry *reg, uint32_t i, uint64_t now,
                      struct pr_pod_info *out)
{
    const struct pod_slot *p = &reg->slots[i];
    memcpy(out->name, p->name, sizeof(out->name));
    memcpy(out->address, p->address, sizeof(out->address));
    memcpy(out->zone, p->zone, sizeof(out->zone));
    out->state = slot_state(reg, p, now);
    out->draining = p->draining;
    out->cap_rooms = p->cap_rooms;
    out->cap_participants = p->cap_participants;
    out->load_rooms = p->load_rooms;
    out->load_participants = p->load_participants;
    uint64_t c = atomic_load(&p->conn);
    int32_t conns = (int32_t)(uint32_t)(c & 0xffffffffu);
    out->load_connections = conns > 0 ? (uint32_t)conns : 0;
    out->last_seen_ms = p->last_seen_ms;
    uint64_t ago = age(now, p->last_seen_mono);
    out->last_seen_ago_ms = (int64_t)ago;
    out->expires_in_ms = ago >= reg->ttl_ms ? 0 : (int64_t)(reg->ttl_ms - ago);
    out->recently_failed = p->failed_mono != 0 && age(now, p->failed_mono) < FAILURE_WINDOW_MS;
    out->down_reason = slot_down_reason(reg, p, now);
    out->unreachable = p->unreachable;
    out->connect_failures = atomic_load(&p->fails);
    out->marked_down = p->marked_down;
    out->slot = i;
    out->gen = p->gen;
}

/* Take a free slot for a new pod at sorted position -pos-1 (lock held); NULL when full. */
static struct pod_slot *slot_claim(struct pr_registry *reg, long pos, const char *name, size_t nlen,
                                   const char *address, size_t alen)
{
    if (reg->n >= PR_MAX_PODS)
        return NULL;
    uint32_t i = 0;
    while (reg->slots[i].used)
        i++;
    struct pod_slot *p = &reg->slots[i];
    p->used = true;
    p->draining = false;
    p->load_rooms = p->load_participants = 0;
    memcpy(p->name, name, nlen + 1);
    memcpy(p->address, address, alen + 1);
    slot_bump_gen(p);
    size_t at = (size_t)(-pos - 1);
    memmove(&reg->order[at + 1], &reg->order[at], (reg->n - at) * sizeof(reg->order[0]));
    reg->order[at] = (uint16_t)i;
    reg->n++;
    return p;
}

/* Register or heartbeat a pod; 0, -EINVAL or -ENOSPC. */
int pr_registry_put(struct pr_registry *reg, const char *name, const char *address,
                    uint32_t cap_rooms, uint32_t cap_participants, const char *zone, bool *created)
{
    if (!reg || !name || !address)
        return -EINVAL;
    size_t nlen = strlen(name), alen = strlen(address);
    size_t zlen = zone ? strnlen(zone, PR_ZONE_MAX + 1) : 0;
    if (!pr_pod_name_valid(name, nlen) || !pr_pod_address_valid(address, alen) || cap_rooms == 0 ||
        cap_participants == 0 || zlen > PR_ZONE_MAX)
        return -EINVAL;
    for (size_t i = 0; i < zlen; i++)
        if ((unsigned char)zone[i] < 0x20 || zone[i] == 0x7f)
            return -EINVAL;

    uint64_t now = pr_mono_ms(), wall = pr_now_ms();
    pthread_mutex_lock(&reg->mu);
    long pos = find_pos(reg, name);
    struct pod_slot *p;
    bool isnew = pos < 0;
    if (isnew) {
        p = slot_claim(reg, pos, name, nlen, address, alen);
        if (!p) {
            pthread_mutex_unlock(&reg->mu);
            return -ENOSPC;
        }
    } else {
        p = &reg->slots[reg->order[pos]];
        if (strcmp(p->address, address) != 0) {
            memcpy(p->address, address, alen + 1);
            slot_bump_gen(p); /* a new address: the passive state is forgotten */
        }
    }
    p->cap_rooms = cap_rooms;
    p->cap_participants = cap_participants;
    memcpy(p->zone, zone ? zone : "", zlen);
    p->zone[zlen] = '\0';
    p->last_seen_mono = now;
    p->last_seen_ms = wall;
    pthread_mutex_unlock(&reg->mu);
    if (created)
        *created = isnew;
    return 0;
}

/* Merge a row shared by another replica; see registry.h. */
int pr_registry_merge(struct pr_registry *reg, const struct pr_pod_remote *r, bool *created)
{
    if (created)
        *created = false;
    if (!reg || !r || !r->name || !r->address)
        return -EINVAL;
    size_t nlen = strlen(r->name), alen = strlen(r->address);
    size_t zlen = r->zone ? strnlen(r->zone, PR_ZONE_MAX + 1) : 0;
    if (!pr_pod_name_valid(r->name, nlen) || !pr_pod_address_valid(r->address, alen) ||
        r->cap_rooms == 0 || r->cap_participants == 0 || zlen > PR_ZONE_MAX)
        return -EINVAL;
    for (size_t i = 0; i < zlen; i++)
        if ((unsigned char)r->zone[i] < 0x20 || r->zone[i] == 0x7f)
            return -EINVAL;

    uint64_t now = pr_mono_ms(), wall = pr_now_ms();
    uint64_t ago = wall > r->last_seen_ms ? wall - r->last_seen_ms : 0;
    uint64_t seen_mono = now > ago ? now - ago : 0;
    pthread_mutex_lock(&reg->mu);
    long pos = find_pos(reg, r->name);
    struct pod_slot *p;
    if (pos < 0) {
        if (ago >= FORGET_FACTOR * reg->ttl_ms) {
            pthread_mutex_unlock(&reg->mu);
            return -ESTALE;
        }
        p = slot_claim(reg, pos, r->name, nlen, r->address, alen);
        if (!p) {
            pthread_mutex_unlock(&reg->mu);
            return -ENOSPC;
        }
        p->last_seen_mono = 0;
        p->last_seen_ms = 0;
        if (created)
            *created = true;
    } else {
        p = &reg->slots[reg->order[pos]];
        if (strcmp(p->address, r->address) != 0) {
            memcpy(p->address, r->address, alen + 1);
            slot_bump_gen(p);
        }
    }
    p->cap_rooms = r->cap_rooms;
    p->cap_participants = r->cap_participants;
    memcpy(p->zone, r->zone ? r->zone : "", zlen);
    p->zone[zlen] = '\0';
    if (r->draining)
        p->draining = true;
    if (seen_mono > p->last_seen_mono)
        p->last_seen_mono = seen_mono;
    if (r->last_seen_ms > p->last_seen_ms)
        p->last_seen_ms = r->last_seen_ms;
    pthread_mutex_unlock(&reg->mu);
    return 0;
}

/* Mark a pod draining (kept across heartbeats and downtime); 0 or -ENOENT. */
int pr_registry_drain(struct pr_registry *reg, const char *name)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&reg->mu);
    struct pod_slot *p = find_slot(reg, name);
    if (p) {
        p->draining = true;
        rc = 0;
    }
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

/* Remove order[pos] and free its slot (lock held). */
static void remove_at(struct pr_registry *reg, long pos)
{
    struct pod_slot *p = &reg->slots[reg->order[pos]];
    p->used = false;
    p->name[0] = '\0';
    p->load_rooms = p->load_participants = 0;
    slot_bump_gen(p);
    memmove(&reg->order[pos], &reg->order[pos + 1],
            (reg->n - (size_t)pos - 1) * sizeof(reg->order[0]));
    reg->n--;
}

/* Forget a pod and its loads; 0 or -ENOENT. */
int pr_registry_delete(struct pr_registry *reg, const char *name)
{
    if (!name)
        return -ENOENT;
    int rc = -ENOENT;
    pthread_mutex_lock(&reg->mu);
    long pos = find_pos(reg, name);
    if (pos >= 0) {
        remove_at(reg, pos);
        rc = 0;
    }
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

/* Copy one pod's row; 0 or -ENOENT. */
int pr_registry_get(struct pr_registry *reg, const char *name, struct pr_pod_info *out)
{
    int rc = -ENOENT;
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&reg->mu);
    long pos = name ? find_pos(reg, name) : -1;
    if (pos >= 0) {
        slot_info(reg, reg->order[pos], now, out);
        rc = 0;
    }
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

/* Copy up to max pods sorted by name; returns the total number of pods. */
size_t pr_registry_snapshot(struct pr_registry *reg, struct pr_pod_info *out, size_t max)
{
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&reg->mu);
    size_t n = reg->n;
    for (size_t k = 0; k < n && k < max; k++)
        slot_info(reg, reg->order[k], now, &out[k]);
    pthread_mutex_unlock(&reg->mu);
    return n;
}

/* true when the pod exists and is ready or draining. */
bool pr_registry_is_live(struct pr_registry *reg, const char *name)
{
    bool live = false;
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&reg->mu);
    struct pod_slot *p = find_slot(reg, name);
    if (p)
        live = slot_state(reg, p, now) != PR_POD_DOWN;
    pthread_mutex_unlock(&reg->mu);
    return live;
}

/* Number of pods in each state (any pointer may be NULL). */
void pr_registry_counts(struct pr_registry *reg, uint32_t *ready, uint32_t *draining,
                        uint32_t *down)
{
    uint32_t c[3] = {0, 0, 0};
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&reg->mu);
    for (size_t k = 0; k < reg->n; k++)
        c[slot_state(reg, &reg->slots[reg->order[k]], now)]++;
    pthread_mutex_unlock(&reg->mu);
    if (ready)
        *ready = c[PR_POD_READY];
    if (draining)
        *draining = c[PR_POD_DRAINING];
    if (down)
        *down = c[PR_POD_DOWN];
}

/* v + d clamped to 0..UINT32_MAX. */
static uint32_t clamp_add(uint32_t v, int d)
{
    int64_t r = (int64_t)v + d;
    if (r < 0)
        return 0;
    if (r > (int64_t)UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)r;
}

/* Adjust a pod's room/participant load (never below zero); unknown pods are ignored. */
void pr_registry_add_load(struct pr_registry *reg, const char *pod, int d_rooms, int d_participants)
{
    if (!reg || !pod || (d_rooms == 0 && d_participants == 0))
        return;
    pthread_mutex_lock(&reg->mu);
    struct pod_slot *p = find_slot(reg, pod);
    if (p) {
        p->load_rooms = clamp_add(p->load_rooms, d_rooms);
        p->load_participants = clamp_add(p->load_participants, d_participants);
    }
    pthread_mutex_unlock(&reg->mu);
}

/* Overwrite a pod's room/participant load; unknown pods are ignored. */
void pr_registry_set_load(struct pr_registry *reg, const char *pod, uint32_t rooms,
                          uint32_t participants)
{
    if (!reg || !pod)
        return;
    pthread_mutex_lock(&reg->mu);
    struct pod_slot *p = find_slot(reg, pod);
    if (p) {
        p->load_rooms = rooms;
        p->load_participants = participants;
    }
    pthread_mutex_unlock(&reg->mu);
}

/* Add delta to the connection count of slot/gen without locking; stale gens are ignored. */
void pr_registry_add_connections(struct pr_registry *reg, uint32_t slot, uint32_t gen, int delta)
{
    if (!reg || slot >= PR_MAX_PODS)
        return;
    _Atomic uint64_t *w = &reg->slots[slot].conn;
    uint64_t cur = atomic_load_explicit(w, memory_order_relaxed);
    for (;;) {
        if ((uint32_t)(cur >> 32) != gen)
            return;
        uint32_t lo = (uint32_t)(cur & 0xffffffffu);
        uint64_t next = (cur & 0xffffffff00000000u) | (uint32_t)(lo + (uint32_t)delta);
        if (atomic_compare_exchange_weak_explicit(w, &cur, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

/* Remember that a connect to the pod just failed (no effect on --pod-fall). */
void pr_registry_record_failure(struct pr_registry *reg, const char *name)
{
    if (!reg || !name)
        return;
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&reg->mu);
    struct pod_slot *p = find_slot(reg, name);
    if (p)
        p->failed_mono = now ? now : 1;
    pthread_mutex_unlock(&reg->mu);
}

/* Passive failure detection: see registry.h. */
void pr_registry_set_fall(struct pr_registry *reg, uint32_t fall)
{
    pthread_mutex_lock(&reg->mu);
    reg->fall = fall;
    pthread_mutex_unlock(&reg->mu);
}

/* A fresh connect to the pod failed: count it; true when this failure marked it down. */
bool pr_registry_connect_failed(struct pr_registry *reg, const char *name, uint32_t *failures)
{
    if (failures)
        *failures = 0;
    if (!reg || !name)
        return false;
    bool marked = false;
    uint64_t now = pr_mono_ms();
    pthread_mutex_lock(&reg->mu);
    struct pod_slot *p = find_slot(reg, name);
    if (p) {
        p->failed_mono = now ? now : 1;
        uint32_t n = atomic_load(&p->fails);
        if (n < UINT32_MAX)
            atomic_store(&p->fails, ++n);
        if (reg->fall && n >= reg->fall && !p->unreachable) {
            p->unreachable = true;
            p->marked_down++;
            marked = true;
        }
        if (failures)
            *failures = n;
    }
    pthread_mutex_unlock(&reg->mu);
    return marked;
}

/* A connect to slot/gen succeeded: see registry.h. Lock-free while nothing failed. */
bool pr_registry_connect_ok(struct pr_registry *reg, uint32_t slot, uint32_t gen)
{
    if (!reg || slot >= PR_MAX_PODS || atomic_load(&reg->slots[slot].fails) == 0)
        return false;
    bool revived = false;
    pthread_mutex_lock(&reg->mu);
    struct pod_slot *p = &reg->slots[slot];
    if (p->used && p->gen == gen) {
        atomic_store(&p->fails, 0);
        revived = p->unreachable;
        p->unreachable = false;
        if (revived)
            p->failed_mono = 0;
    }
    pthread_mutex_unlock(&reg->mu);
    return revived;
}

/* Forget pods not heard from for 4 x pod_ttl, reporting each to forgotten() outside the
 * lock; returns how many were forgotten. */
size_t pr_registry_expire(struct pr_registry *reg, void (*forgotten)(void *arg, const char *pod),
                          void *arg)
{
    size_t count = 0;
    for (;;) {
        char name[PR_POD_NAME_MAX + 1];
        bool found = false;
        uint64_t now = pr_mono_ms();
        pthread_mutex_lock(&reg->mu);
        for (size_t k = 0; k < reg->n; k++) {
            struct pod_slot *p = &reg->slots[reg->order[k]];
            if (age(now, p->last_seen_mono) >= FORGET_FACTOR * reg->ttl_ms) {
                memcpy(name, p->name, sizeof(name));
                remove_at(reg, (long)k);
                found = true;
                break;
            }
        }
        pthread_mutex_unlock(&reg->mu);
        if (!found)
            return count;
        count++;
        if (forgotten)
            forgotten(arg, name);
    }
}
