/* The assignment table shared by the memory store and the Redis store's cache: kind:key ->
 * pod with TTLs, room identity sets and per-pod load bookkeeping. Internal; every function
 * expects the caller to hold the owner's lock. */
#ifndef PODROUTER_ATABLE_H
#define PODROUTER_ATABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idset.h"
#include "podrouter/common.h"
#include "podrouter/store.h"

#define PR_ATAB_KINDS 3u /* sid, room, participant */

struct pr_registry;

struct pr_atab_entry {
    struct pr_atab_entry *next;
    uint64_t hash;
    uint64_t expires; /* monotonic ms; UINT64_MAX = never */
    uint64_t renewed; /* monotonic ms of the last TTL renewal */
    uint64_t assigned_at_ms;
    struct pr_idset *ids; /* rooms only */
    uint32_t participant_count;
    uint8_t kind;
    uint8_t keylen;
    bool dirty; /* Redis cache: still to be written back */
    char pod[PR_POD_NAME_MAX + 1];
    char key[];
};

struct pr_atab {
    struct pr_atab_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count, dirty;
    uint64_t kind_count[PR_ATAB_KINDS];
    size_t cursor; /* next bucket pr__atab_expire_some examines */
    unsigned refs; /* handles sharing it (managed by the owner) */
    struct pr_registry *reg;
    uint64_t ttl[PR_ATAB_KINDS]; /* 0 = never expires */
};

/* A new empty table whose loads go to reg; NULL on ENOMEM. */
struct pr_atab *pr__atab_create(struct pr_registry *reg, const uint64_t ttl[PR_ATAB_KINDS]);
/* Free every entry and the table (loads are left as they are). Accepts NULL. */
void pr__atab_destroy(struct pr_atab *t);

/* 64-bit FNV-1a of (seed, data) with a final avalanche. */
uint64_t pr__atab_hash(uint8_t seed, const char *data, size_t len);
/* true when (kind, key) can be stored. */
bool pr__atab_key_ok(enum pr_key_kind kind, const char *key, size_t len);

/* Slot of the live entry for (kind, key), or NULL; an expired one met is removed. */
struct pr_atab_entry **pr__atab_lookup(struct pr_atab *t, uint8_t kind, const char *key, size_t len,
                                       uint64_t hash, uint64_t now);
/* Insert kind:key -> pod counting its load (assigned_at 0 = now); NULL on ENOMEM. */
struct pr_atab_entry *pr__atab_insert(struct pr_atab *t, uint8_t kind, const char *key, size_t len,
                                      uint64_t hash, const char *pod, uint32_t count,
                                      uint64_t assigned_at, uint64_t now);
/* Unlink *pp, undo its load and free it. */
void pr__atab_remove(struct pr_atab *t, struct pr_atab_entry **pp);
/* Point e at pod with the given room count, moving its load; a new pod restarts its TTL. */
void pr__atab_move(struct pr_atab *t, struct pr_atab_entry *e, const char *pod, uint32_t count,
                   uint64_t assigned_at, uint64_t now);
/* Expiry deadline of a key of kind refreshed at now. */
uint64_t pr__atab_deadline(const struct pr_atab *t, uint8_t kind, uint64_t now);
/* Push e's expiry out when its last renewal is old enough (SPEC 6.1: at most once a minute,
 * or every ttl/2 for TTLs under two minutes); true when it was renewed. */
bool pr__atab_renew(struct pr_atab *t, struct pr_atab_entry *e, uint64_t now);
/* Apply e's weight to its pod's load, sign +1 or -1. */
void pr__atab_load(const struct pr_atab *t, const struct pr_atab_entry *e, int sign);
/* Set e's dirty mark, keeping t->dirty. */
void pr__atab_set_dirty(struct pr_atab *t, struct pr_atab_entry *e, bool dirty);
/* Copy the live entry for (kind, key) for the admin API: 0 or -ENOENT. */
int pr__atab_info(struct pr_atab *t, uint8_t kind, const char *key, size_t len,
                  struct pr_assignment *out);
/* Drop every entry pointing at pod. */
void pr__atab_release_pod(struct pr_atab *t, const char *pod);
/* Evict expired entries from the next few thousand buckets (bounded work per call). */
void pr__atab_expire_some(struct pr_atab *t, uint64_t now);

#endif
