/* Pod table: registration, heartbeats, states, loads (SPEC 4.2). Thread-safe. */
#ifndef PODROUTER_REGISTRY_H
#define PODROUTER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"

enum pr_pod_state { PR_POD_READY = 0, PR_POD_DRAINING, PR_POD_DOWN };

/* Why a pod is down: no heartbeat for --pod-ttl ("expired"), or --pod-fall consecutive
 * connect failures on this replica ("unreachable"; the heartbeat wins when both hold). */
enum pr_down_reason { PR_DOWN_NONE = 0, PR_DOWN_EXPIRED, PR_DOWN_UNREACHABLE };

#define PR_POD_FALL_DEFAULT 2u

const char *pr_pod_state_name(enum pr_pod_state s);
const char *pr_down_reason_name(enum pr_down_reason r); /* "", "expired", "unreachable" */

/* A copy of one pod's row, taken under the registry lock. */
struct pr_pod_info {
    char name[PR_POD_NAME_MAX + 1];
    char address[PR_ADDRESS_MAX + 1];
    char zone[PR_ZONE_MAX + 1];
    enum pr_pod_state state; /* down when not heard from for pod_ttl, else draining/ready */
    bool draining;           /* drain flag, kept while down */
    uint32_t cap_rooms, cap_participants;
    uint32_t load_rooms, load_participants, load_connections;
    uint64_t last_seen_ms;   /* epoch ms of the last heartbeat */
    int64_t last_seen_ago_ms;
    int64_t expires_in_ms;   /* until down (0 once down) */
    bool recently_failed;    /* a connect to it failed within the last 2 s */
    enum pr_down_reason down_reason; /* PR_DOWN_NONE unless state is down */
    bool unreachable;        /* passively down (also while its heartbeat expired) */
    uint32_t connect_failures; /* consecutive failed connects */
    uint64_t marked_down;    /* times marked unreachable since registered at this address */
    uint32_t slot;           /* stable index while the pod exists */
    uint32_t gen;            /* bumps when the slot is reused or the address changes */
};

struct pr_registry;

/* pod_ttl_ms: a pod not heard from for this long is down; it is forgotten after 4x. */
struct pr_registry *pr_registry_create(uint64_t pod_ttl_ms);
void pr_registry_destroy(struct pr_registry *reg);

/* Register or heartbeat. 0 (with *created set) or -EINVAL (bad name/address/capacity) or
 * -ENOSPC (table full). A draining pod stays draining. */
int pr_registry_put(struct pr_registry *reg, const char *name, const char *address,
                    uint32_t cap_rooms, uint32_t cap_participants, const char *zone,
                    bool *created);
/* A pod row as another router replica shared it (Redis store, SPEC 6.1 P pod:{name}). */
struct pr_pod_remote {
    const char *name;
    const char *address;
    const char *zone; /* "" or NULL: none */
    uint32_t cap_rooms, cap_participants;
    bool draining;
    uint64_t last_seen_ms; /* epoch ms of the pod's last heartbeat at any replica */
};

/* Merge a remote row: creates the pod unless it was last seen so long ago that it would be
 * forgotten; updates address, capacity and zone; draining is sticky; last_seen never moves
 * backwards. 0 (with *created set), -EINVAL, -ENOSPC, or -ESTALE (too old, not created). */
int pr_registry_merge(struct pr_registry *reg, const struct pr_pod_remote *r, bool *created);
int pr_registry_drain(struct pr_registry *reg, const char *name);  /* 0 or -ENOENT */
int pr_registry_delete(struct pr_registry *reg, const char *name); /* 0 or -ENOENT */
int pr_registry_get(struct pr_registry *reg, const char *name, struct pr_pod_info *out);

/* Copy every pod (including down ones not yet forgotten) into out, sorted by name; returns
 * how many there are (may exceed max). */
size_t pr_registry_snapshot(struct pr_registry *reg, struct pr_pod_info *out, size_t max);

/* ready or draining */
bool pr_registry_is_live(struct pr_registry *reg, const char *name);

void pr_registry_counts(struct pr_registry *reg, uint32_t *ready, uint32_t *draining,
                        uint32_t *down);

/* Load bookkeeping (called by the store and the proxy). Unknown pods are ignored. */
void pr_registry_add_load(struct pr_registry *reg, const char *pod, int d_rooms,
                          int d_participants);
void pr_registry_set_load(struct pr_registry *reg, const char *pod, uint32_t rooms,
                          uint32_t participants);
/* Active proxied connections by slot/gen (lock-free). */
void pr_registry_add_connections(struct pr_registry *reg, uint32_t slot, uint32_t gen,
                                 int delta);
/* A connect to the pod failed: it is passed over for new keys for 2 s. Not counted
 * towards --pod-fall (a failure on a reused keep-alive connection, a name not resolving). */
void pr_registry_record_failure(struct pr_registry *reg, const char *name);

/* Passive failure detection (HAProxy's observe layer4 + on-error mark-down). fall
 * consecutive failed fresh connects (default PR_POD_FALL_DEFAULT; 0 disables) mark a pod
 * down with reason "unreachable" on this registry: no new assignments, and its rooms and
 * participants move on their next use as if its heartbeat had expired. */
void pr_registry_set_fall(struct pr_registry *reg, uint32_t fall);
/* A fresh connect to the pod failed (refused, timed out, unreachable, reset): records it
 * like pr_registry_record_failure and counts it. Returns true when this failure marked the
 * pod down; *failures (may be NULL) gets the consecutive count. */
bool pr_registry_connect_failed(struct pr_registry *reg, const char *name, uint32_t *failures);
/* A connect (a request's or a probe's) to slot/gen succeeded: the failure count restarts and
 * an unreachable pod is up again (ready or draining if its heartbeat is fresh). Returns
 * true when it revived the pod. A heartbeat with a new address also clears the passive
 * state; one with the same address does not. Lock-free when nothing failed. */
bool pr_registry_connect_ok(struct pr_registry *reg, uint32_t slot, uint32_t gen);

/* Forget pods down for longer than 4 x pod_ttl; returns how many were forgotten (their
 * names are passed to forgotten(), e.g. to release their assignments). */
size_t pr_registry_expire(struct pr_registry *reg, void (*forgotten)(void *arg, const char *pod),
                          void *arg);

/* true when s[0..len) is a pod address, host:port or [v6]:port (SPEC 4.2): the grammar of
 * pr_hostport_valid (common.h) within PR_ADDRESS_MAX bytes, a host name of at most 53. Both
 * PUT /v1/pods and `register --address` call this. (pr_pod_name_valid is in common.h.) */
bool pr_pod_address_valid(const char *s, size_t len);

#endif
