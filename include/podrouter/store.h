/* The store interface: where assignments live (SPEC 6). memory or redis. */
#ifndef PODROUTER_STORE_H
#define PODROUTER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"

struct pr_config;
struct pr_registry;
typedef struct uv_loop_s uv_loop_t;

/* One assignment as the admin API shows it. */
struct pr_assignment {
    char pod[PR_POD_NAME_MAX + 1];
    uint32_t participant_count; /* rooms only */
    uint64_t assigned_at_ms;    /* epoch ms */
};

/* status: 0 = *pod holds the value; -ENOENT = no assignment; other negative errno = store
 * failure (unreachable, timeout). pod is borrowed for the duration of the call. The
 * callback may run before the issuing call returns (memory store). */
typedef void (*pr_store_cb)(void *arg, int status, const char *pod);

struct pr_store;

struct pr_store_ops {
    const char *name;
    void (*close)(struct pr_store *s);
    /* Look up kind:key; renews its TTL (at most once a minute per key). */
    void (*get)(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                pr_store_cb cb, void *arg);
    /* Create kind:key -> pod unless present; cb gets the winner (ours or the earlier one). */
    void (*create)(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                   const char *pod, pr_store_cb cb, void *arg);
    /* Move kind:key to pod only if it currently points at expect (or is absent); cb gets
     * the value after the operation. */
    void (*replace)(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                    const char *expect, const char *pod, pr_store_cb cb, void *arg);
    /* Operator override / removal. 0, -ENOENT (del of absent key) or store error. */
    int (*set)(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
               const char *pod);
    int (*del)(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len);
    /* Count a distinct participant identity (participant id, else sid) into a room. */
    void (*room_join)(struct pr_store *s, const char *room, size_t len, const char *who,
                      size_t who_len);
    /* Admin reads from this replica's view: 0 or -ENOENT. kind is ROOM or PARTICIPANT. */
    int (*info)(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                struct pr_assignment *out);
    /* Drop every assignment that points at pod (pod deleted). */
    void (*release_pod)(struct pr_store *s, const char *pod);
    void (*counts)(struct pr_store *s, uint64_t *rooms, uint64_t *participants);
    bool (*up)(struct pr_store *s);
    /* Periodic housekeeping (TTL expiry), called about once a second from one loop. */
    void (*tick)(struct pr_store *s);
    /* Optional (NULL for the memory store): share a registry change made through this
     * replica's admin API with the other replicas, after the local registry applied it.
     * pod_put reads the pod's current row from the registry. Fire-and-forget. */
    void (*pod_put)(struct pr_store *s, const char *name);
    void (*pod_drain)(struct pr_store *s, const char *name);
    void (*pod_delete)(struct pr_store *s, const char *name);
    /* Activity (SPEC 5, 3.6): a request or tunnel for kind:key (a room, normally) was seen
     * now. The room counts as active load for --room-active, and a tentative assignment's
     * second use makes it live for its full TTL. O(1) and lock-free on repeats: each handle
     * stamps a key at most every min(1 s, --room-active/8); never a Redis round trip (a
     * promotion sends one fire-and-forget TTL renewal, once per key). Unknown keys are
     * ignored. Call it from the handle's own loop thread. */
    void (*touch)(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len);
    /* The same by pr_store_key_hash(kind, key, len), for holders that keep 8 bytes instead
     * of the key (WebSocket tunnels). */
    void (*touch_hash)(struct pr_store *s, enum pr_key_kind kind, uint64_t hash);
};

/* The 64-bit identity of kind:key for touch_hash. */
uint64_t pr_store_key_hash(enum pr_key_kind kind, const char *key, size_t len);

struct pr_store {
    const struct pr_store_ops *ops;
};

/* Open the store named by cfg->store for use from loop's thread. Handles opened for
 * different loops of one process share their data. NULL with err filled on failure. */
struct pr_store *pr_store_open(const struct pr_config *cfg, struct pr_registry *reg,
                               uv_loop_t *loop, char *err, size_t errlen);

struct pr_store *pr_store_memory_open(const struct pr_config *cfg, struct pr_registry *reg);

/* A Redis store handle bound to loop (redis:// or redis-sentinel:// in cfg->store). The first
 * handle opened in a process also owns the pub/sub subscriber (and the Sentinel watch). The
 * handle connects in the background: until Redis answers it routes in degraded mode. NULL
 * with err filled when the URL is unusable or memory runs out. */
struct pr_store *pr_store_redis_open(const struct pr_config *cfg, struct pr_registry *reg,
                                     uv_loop_t *loop, char *err, size_t errlen);

#endif
