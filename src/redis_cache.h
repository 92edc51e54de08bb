/* The Redis store's process-wide cache of assignments (internal to store_redis.c). One
 * chained hash table shared by every loop's handle, guarded by one mutex; it keeps the
 * registry's room/participant loads in step with what it holds (as store_memory.c does). */
#ifndef PODROUTER_REDIS_CACHE_H
#define PODROUTER_REDIS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"
#include "podrouter/store.h"

struct pr_registry;

/* How pr__rc_put treats an entry that is already there. */
enum pr__rc_mode {
    PR_RC_IF_ABSENT = 0, /* keep what is cached (a GET reply racing an event) */
    PR_RC_OVERWRITE,     /* the store's answer wins */
};

/* One cached assignment copied out for a write-back. */
struct pr__rc_item {
    uint8_t kind;
    uint8_t key_len;
    char key[PR_KEY_MAX + 1];
    char pod[PR_POD_NAME_MAX + 1];
    uint32_t count;
    uint64_t assigned_at_ms;
    bool tentative;         /* write-back: recreate with the short TTL */
    uint64_t active_ago_ms; /* activity reports: ms since its last use */
};

/* Take a reference on the shared cache (created on first use); ttl[] indexed by kind
 * (sid, room, participant). 0 or -ENOMEM. */
int pr__rc_open(struct pr_registry *reg, const uint64_t ttl[3], uint64_t active_ms,
                uint64_t max_per_kind);
/* Drop a reference; the cache goes with the last one. */
void pr__rc_close(void);

/* 0 with pod filled, or -ENOENT. Counts as a use (promotes a tentative entry, activates a
 * room). *renew (may be NULL) is set when the key's TTL in the store is due for renewal (at
 * most once a minute, or at its promotion; the stamp is taken now). */
int pr__rc_get(enum pr_key_kind kind, const char *key, size_t len, char pod[PR_POD_NAME_MAX + 1],
               bool *renew);
/* Cache kind:key -> pod (count/assigned_at for rooms; assigned_at 0 = now). dirty marks an
 * assignment the store has not seen yet. out (may be NULL) gets the cached pod after. */
int pr__rc_put(enum pr_key_kind kind, const char *key, size_t len, const char *pod, uint32_t count,
               uint64_t assigned_at, enum pr__rc_mode mode, bool dirty,
               char out[PR_POD_NAME_MAX + 1]);
/* Local compare-and-set (store unreachable): move to pod if at expect or absent. Marks dirty.
 * out gets the value after. 0 or -ENOMEM. */
int pr__rc_replace(enum pr_key_kind kind, const char *key, size_t len, const char *expect,
                   const char *pod, char out[PR_POD_NAME_MAX + 1]);
/* Forget kind:key; 0 or -ENOENT. */
int pr__rc_del(enum pr_key_kind kind, const char *key, size_t len);
/* Count who into the room: 1 when new here (*count gets the room's participantCount after),
 * 0 when already counted, -ENOENT when the room is not cached. */
int pr__rc_join(const char *room, size_t len, const char *who, size_t who_len, uint32_t *count);
/* The room's participantCount as the store reports it (never lowered). */
void pr__rc_set_count(const char *room, size_t len, uint32_t count);
/* The cached assignment for the admin API; 0 or -ENOENT. */
int pr__rc_info(enum pr_key_kind kind, const char *key, size_t len, struct pr_assignment *out);
/* Forget every assignment pointing at pod. */
void pr__rc_release_pod(const char *pod);
/* Numbers of cached room and participant assignments. */
void pr__rc_counts(uint64_t *rooms, uint64_t *participants);
/* Expire old entries, stop counting idle ones, and (when recount) set every pod's load from
 * the active entries cached here. */
void pr__rc_tick(bool recount);
/* A use of kind:key (by key, or by hash when key is NULL): PR_ATAB_* bits, or -ENOENT. When
 * the result has PR_ATAB_PROMOTED, key_out/key_len/pod get the entry's key and pod (for the
 * store's TTL renewal). activate: count it as load. */
int pr__rc_use(enum pr_key_kind kind, const char *key, size_t len, uint64_t hash, bool activate,
               char key_out[PR_KEY_MAX + 1], size_t *key_len, char pod[PR_POD_NAME_MAX + 1]);
/* true when kind already holds --max-assignments cached entries. */
bool pr__rc_full(enum pr_key_kind kind);
/* The touch throttle period (see pr__touch_every). */
uint64_t pr__rc_touch_every(void);
/* Copy up to max active entries whose activity is due to be shared (new, moved, count
 * changed, or used again after half a window), marking them shared now. */
size_t pr__rc_collect_active(struct pr__rc_item *items, size_t max);
/* Number of entries still marked dirty. */
size_t pr__rc_dirty(void);
/* The entry was written back: clear its dirty mark if it still points at pod. */
void pr__rc_clean(enum pr_key_kind kind, const char *key, size_t len, const char *pod);
/* Copy up to max entries (only dirty ones when dirty_only) starting at bucket *cursor into
 * items; advances *cursor; returns how many were copied. *cursor == 0 after the call means
 * the walk wrapped around (finished). */
size_t pr__rc_collect(size_t *cursor, bool dirty_only, struct pr__rc_item *items, size_t max);

#endif
