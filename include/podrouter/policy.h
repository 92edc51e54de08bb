/* Key -> pod choice (SPEC 5): least loaded with HRW tie-break, bounded-load hashing. */
#ifndef PODROUTER_POLICY_H
#define PODROUTER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pr_policy_pod {
    const char *name;
    uint32_t cap_rooms, cap_participants;    /* >= 1 */
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

#endif
