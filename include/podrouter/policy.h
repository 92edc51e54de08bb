/* Key -> pod choice (SPEC 5): least loaded with HRW tie-break, bounded-load hashing. */
#ifndef PODROUTER_POLICY_H
#define PODROUTER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pr_policy_pod {
    const char *name;
    uint32_t cap_rooms, cap_participants; /* >= 1 */
    uint32_t load_rooms, load_participants;
    bool eligible; /* ready and not excluded (e.g. just refused a connection) */
};

/* Rendezvous score of (pod, key): 64-bit, deterministic across processes/architectures. */
uint64_t pr_hrw_score(const char *pod, size_t pod_len, const char *key, size_t key_len);

/* Load ratio max(rooms/cap_rooms, participants/cap_participants). */
double pr_policy_ratio(const struct pr_policy_pod *p);

/* Index of the eligible pod with the lowest ratio, skipping pods at/over capacity (ratio
 * >= 1) unless all eligible are (then the least over); ties (equal ratio) by highest HRW
 * score of key. -1 when no pod is eligible. */
int pr_policy_least_loaded(const struct pr_policy_pod *pods, size_t n, const char *key,
                           size_t key_len);

/* Consistent hashing with bounded loads (Mirrokni et al.) over eligible pods: pods ordered
 * by HRW score of key; the first whose load (rooms + participants) is below
 * ceil(factor * (total + 1) / n_eligible) wins. Same inputs -> same result on every
 * replica. -1 when none eligible. */
int pr_policy_bounded_hash(const struct pr_policy_pod *pods, size_t n, const char *key,
                           size_t key_len, double factor);

/* StatefulSet ordinal of a pod name: the decimal number after its last '-' ("backend-12" ->
 * 12), or -1 when the name has none (no '-', nothing or a non-digit after it, or more than
 * 9 digits). */
long pr_policy_ordinal(const char *name);

/* --placement pack (SPEC 5): among eligible pods in StatefulSet order (ordinal ascending;
 * pods without an ordinal after, by name), the first whose load ratio after taking the key
 * (one more room when room is true, else one more participant) stays <= utilization; when
 * none does, pr_policy_least_loaded. -1 when no pod is eligible. */
int pr_policy_pack(const struct pr_policy_pod *pods, size_t n, const char *key, size_t key_len,
                   bool room, double utilization);

/* One pod as the desired-replicas formula sees it (SPEC 5.1). */
struct pr_desired_pod {
    const char *name;
    bool live; /* ready or draining */
    uint32_t cap_rooms, cap_participants;
    uint32_t active_rooms, active_participants;
};

struct pr_desired_params {
    double utilization; /* --pack-utilization, (0, 1] */
    uint32_t headroom;  /* --headroom-pods */
    uint32_t min, max;  /* --min-replicas / --max-replicas */
};

/* D = clamp(max(H + 1, ceil(R / (Cr*u)), ceil(P / (Cp*u))) + headroom, min, max): H the
 * highest ordinal of a live pod holding an active room (-1 if none), R and P the active rooms
 * and participants over all pods, Cr and Cp the smallest capacities of the live pods (of all
 * pods when none is live; 20 and 80 when there are none). */
uint32_t pr_policy_desired_replicas(const struct pr_desired_pod *pods, size_t n,
                                    const struct pr_desired_params *p);

#endif
