/* Figures for room-aware scaling derived from the registry's active loads (SPEC 5, 5.1, 7):
 * desired backend replicas and rooms interrupted by a pod going away. */
#ifndef PODROUTER_SCALING_H
#define PODROUTER_SCALING_H

#include <stddef.h>
#include <stdint.h>

#include "podrouter/policy.h"
#include "podrouter/registry.h"

struct pr_config;

/* Remember the §5.1 parameters (--pack-utilization, --headroom-pods, --min/--max-replicas);
 * until called, the SPEC defaults 0.75 / 1 / 3 / 12 apply. */
void pr_scaling_configure(const struct pr_config *cfg);
/* The parameters from cfg (defaults when cfg is NULL). */
struct pr_desired_params pr_scaling_params(const struct pr_config *cfg);
/* The parameters pr_scaling_configure stored. */
void pr_scaling_current_params(struct pr_desired_params *out);

/* SPEC 5.1 over a registry snapshot (loads are active loads). */
uint32_t pr_scaling_desired_of(const struct pr_pod_info *pods, size_t n,
                               const struct pr_desired_params *p);
/* SPEC 5.1 over the registry now, with the configured parameters (cfg NULL) or cfg's. */
uint32_t pr_scaling_desired(struct pr_registry *reg, const struct pr_config *cfg);

/* Once a second (worker 0, after the store's tick): a pod that was live with active rooms
 * at the previous call and is now down or gone adds those rooms to the interrupted count. */
void pr_scaling_tick(struct pr_registry *reg);
/* podrouter_rooms_interrupted_total */
uint64_t pr_scaling_rooms_interrupted(void);

#endif
