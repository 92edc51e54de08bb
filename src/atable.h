/* The assignment table shared by the memory store and the Redis store's cache: kind:key ->
 * pod with TTLs, room identity sets and per-pod load bookkeeping. Internal. The pr__atab_*
 * functions expect the caller to hold the table's lock; struct pr_shared_atab (at the end,
 * atable_shared.c) owns that lock, the table and its references. */
#ifndef PODROUTER_ATABLE_H
#define PODROUTER_ATABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idset.h"
#include "podrouter/common.h"
#include "podrouter/store.h"

#define PR_ATAB_KINDS 3u /* sid, room, participant */

struct pr_registry;

/* A pod name, kept once per table and shared by the entries that point at it (counted): an
 * entry holds a pointer instead of its own 64-byte copy, which is a third of a room's or a
 * sid's entry (idle tunnels and handshakes: issue 11). */
struct pr_atab_pod {
    struct pr_atab_pod *next;
    uint32_t refs;
    char name[PR_POD_NAME_MAX + 1];
};
#define PR_ATAB_POD_BUCKETS 64u

struct pr_atab_entry {
    struct pr_atab_entry *next;
    struct pr_atab_entry *aprev, *anext; /* active list (counted entries, oldest first) */
    uint64_t hash;
    uint64_t expires; /* monotonic ms; UINT64_MAX = never */
    uint64_t renewed; /* monotonic ms of the last TTL renewal */
    uint64_t assigned_at_ms;
    uint64_t active;      /* monotonic ms of the last use (0: none since creation) */
    uint64_t reported;    /* Redis cache: monotonic ms activity was last shared */
    struct pr_idset *ids; /* rooms only */
    uint32_t participant_count;
    uint8_t kind;
    uint8_t keylen;
    bool dirty;      /* Redis cache: still to be written back */
    bool tentative;  /* only its creating request used it: expires after active_ms (SPEC 3.6) */
    bool counted;    /* active: its load is applied to the registry and it is on the list */
    bool report_due; /* Redis cache: activity, pod or count changed since the last share */
    struct pr_atab_pod *pod; /* never NULL */
    char key[];
};

/* What pr__atab_use did. */
enum {
    PR_ATAB_PROMOTED = 1,  /* a tentative entry became live (store: renew its full TTL) */
    PR_ATAB_ACTIVATED = 2, /* it started counting as load */
};

/* Per store handle (one loop thread, no lock): when each recently touched key was last
 * stamped in the table, so repeated touches of one room cost no lock. 8-way set-associative
 * (a set's tags fill half a cache line), 8192 entries: a few thousand active rooms per loop
 * fit without conflict misses. 32-bit tags (the hash's low half) and 32-bit loop-clock
 * stamps (compared modulo 2^32) keep it at 64 KiB per loop, paid in every worker's resident
 * memory (idle tunnels: issue 11); a tag collision can only delay one room's stamp by one
 * period. */
#define PR_TOUCH_WAYS 8u
#define PR_TOUCH_SETS 1024u
struct pr_touch_cache {
    uint32_t tag[PR_TOUCH_SETS][PR_TOUCH_WAYS];
    uint32_t at[PR_TOUCH_SETS][PR_TOUCH_WAYS]; /* 0: empty */
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
    uint64_t active_ms;          /* --room-active: activity window and tentative TTL; 0 = off */
    uint64_t max_per_kind;       /* --max-assignments; 0 = unlimited */
    struct pr_atab_entry *ahead, *atail; /* active list, least recently used first */
    size_t nactive;
    struct pr_atab_pod *pods[PR_ATAB_POD_BUCKETS]; /* the names entries point at */
};

/* A new empty table whose loads go to reg; NULL on ENOMEM. */
struct pr_atab *pr__atab_create(struct pr_registry *reg, const uint64_t ttl[PR_ATAB_KINDS]);
/* Free every entry and the table (loads are left as they are). Accepts NULL. */
void pr__atab_destroy(struct pr_atab *t);

/* pr_hash_keyed of data, seed the key kind: table buckets cannot be targeted from outside. */
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

/* true when kind already holds max_per_kind entries (new keys are not stored). */
bool pr__atab_full(const struct pr_atab *t, uint8_t kind);
/* A use of e at now (a request routed by it, or its room touched): a tentative entry is
 * promoted to its full TTL; a room or participant (when activate) becomes active and counts
 * as load. Returns PR_ATAB_PROMOTED | PR_ATAB_ACTIVATED bits. */
int pr__atab_use(struct pr_atab *t, struct pr_atab_entry *e, uint64_t now, bool activate);
/* The entry of (kind, hash) alone (64-bit hash: a collision is as good as impossible), live,
 * or NULL. */
struct pr_atab_entry *pr__atab_find_hash(struct pr_atab *t, uint8_t kind, uint64_t hash,
                                         uint64_t now);
/* Stop counting entries not used within active_ms (bounded by the number that lapsed). */
void pr__atab_deactivate_idle(struct pr_atab *t, uint64_t now);
/* Set every registered pod's room/participant load from the active entries. */
void pr__atab_recount(struct pr_atab *t);

/* true when the touch of hash at now is due (not stamped within every_ms by this handle);
 * stamps it. */
bool pr__touch_due(struct pr_touch_cache *c, uint64_t hash, uint64_t now, uint64_t every_ms);
/* The throttle period for a table's activity window. */
uint64_t pr__touch_every(const struct pr_atab *t);

/* ---- the process-wide table and its lock (atable_shared.c) ---------------------------- */

/* One table shared by every handle of a store (one per loop thread), the mutex guarding it
 * and its reference count. The memory store and the Redis store's cache each own one. */
struct pr_shared_atab {
    pthread_mutex_t mu;
    struct pr_atab *t; /* NULL until the first open and after the last close */
};
#define PR_SHARED_ATAB_INIT {PTHREAD_MUTEX_INITIALIZER, NULL}

/* Take a reference, creating the table on first use (its settings come from that first
 * open): 0 or -ENOMEM. */
int pr__satab_open(struct pr_shared_atab *s, struct pr_registry *reg,
                   const uint64_t ttl[PR_ATAB_KINDS], uint64_t active_ms, uint64_t max_per_kind);
/* Drop a reference; the last one frees every entry (loads are left as they are). */
void pr__satab_close(struct pr_shared_atab *s);

/* One keyed operation under the lock: the table, the clock, the key's hash and the slot of
 * its live entry (NULL when there is none). */
struct pr_atab_op {
    struct pr_atab *t;
    uint64_t hash, now;
    struct pr_atab_entry **pp;
};
/* Lock s and look kind:key up (an expired entry met is removed). The caller has checked the
 * key (pr__atab_key_ok) and ends the operation with pr__satab_unlock. */
void pr__satab_begin(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                     struct pr_atab_op *op);
/* Lock s for an operation that is not about one key; returns the table. */
struct pr_atab *pr__satab_lock(struct pr_shared_atab *s);
void pr__satab_unlock(struct pr_shared_atab *s);

/* The operations both owners share, each one critical section. */
/* A read by a request at now (pr_mono_ms): 0 with pod filled, or -ENOENT. Counts as a use
 * (promotes a tentative entry, activates it); *renew (may be NULL) is set when its TTL was due
 * for renewal or it was promoted. hash is pr__atab_hash of (kind, key). */
int pr__satab_get(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                  uint64_t hash, uint64_t now, char pod[PR_POD_NAME_MAX + 1], bool *renew);
/* A use of kind:key (by key, or by hash when key is NULL): PR_ATAB_* bits, or -ENOENT. When
 * the result has PR_ATAB_PROMOTED and key_out/key_len/pod are not NULL, they get the entry's
 * key and pod. */
int pr__satab_use(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                  uint64_t hash, bool activate, char key_out[PR_KEY_MAX + 1], size_t *key_len,
                  char pod[PR_POD_NAME_MAX + 1]);
/* Forget kind:key: 0 or -ENOENT. */
int pr__satab_del(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len);
/* Copy kind:key's assignment for the admin API: 0 or -ENOENT. */
int pr__satab_info(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                   struct pr_assignment *out);
/* Forget every assignment pointing at pod. */
void pr__satab_release_pod(struct pr_shared_atab *s, const char *pod);
/* Numbers of room and participant entries (expired ones count until evicted). */
void pr__satab_counts(struct pr_shared_atab *s, uint64_t *rooms, uint64_t *participants);
/* true when kind holds --max-assignments entries. */
bool pr__satab_full(struct pr_shared_atab *s, uint8_t kind);
/* Expire entries of the next few thousand buckets, stop counting idle ones and, when
 * recount, set every pod's load from the active entries. */
void pr__satab_tick(struct pr_shared_atab *s, bool recount);
/* The touch throttle period of the open table (fixed once it exists: read without lock). */
uint64_t pr__satab_touch_every(const struct pr_shared_atab *s);

#endif
