/* Room-aware scaling figures: desired replicas (SPEC 5.1) from the registry's active loads,
 * and the rooms-interrupted counter (a pod with active rooms went down or was deleted). */
#include "podrouter/scaling.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/config.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pr_desired_params g_params = {0.75, 1, 3, 12};
static _Atomic uint64_t g_interrupted;

/* Last tick's live pods with active rooms (worker 0 only). */
struct seen {
    char name[PR_POD_NAME_MAX + 1];
    uint32_t rooms;
};
static struct seen *g_seen;
static size_t g_nseen;

struct pr_desired_params pr_scaling_params(const struct pr_config *cfg)
{
    if (!cfg)
        return (struct pr_desired_params){0.75, 1, 3, 12};
    return (struct pr_desired_params){cfg->pack_utilization, cfg->headroom_pods, cfg->min_replicas,
                                      cfg->max_replicas};
}

void pr_scaling_configure(const struct pr_config *cfg)
{
    pthread_mutex_lock(&g_mu);
    g_params = pr_scaling_params(cfg);
    pthread_mutex_unlock(&g_mu);
}

void pr_scaling_current_params(struct pr_desired_params *out)
{
    pthread_mutex_lock(&g_mu);
    *out = g_params;
    pthread_mutex_unlock(&g_mu);
}

uint32_t pr_scaling_desired_of(const struct pr_pod_info *pods, size_t n,
                               const struct pr_desired_params *p)
{
    struct pr_desired_pod d[64];
    if (n <= 64) {
        for (size_t i = 0; i < n; i++)
            d[i] = (struct pr_desired_pod){pods[i].name,       pods[i].state != PR_POD_DOWN,
                                           pods[i].cap_rooms,  pods[i].cap_participants,
                                           pods[i].load_rooms, pods[i].load_participants};
        return pr_policy_desired_replicas(d, n, p);
    }
    struct pr_desired_pod *big = malloc(n * sizeof(*big));
    if (!big)
        return p ? p->max : 0; /* never scale down on an allocation failure */
    for (size_t i = 0; i < n; i++)
        big[i] = (struct pr_desired_pod){pods[i].name,       pods[i].state != PR_POD_DOWN,
                                         pods[i].cap_rooms,  pods[i].cap_participants,
                                         pods[i].load_rooms, pods[i].load_participants};
    uint32_t r = pr_policy_desired_replicas(big, n, p);
    free(big);
    return r;
}

uint32_t pr_scaling_desired(struct pr_registry *reg, const struct pr_config *cfg)
{
    struct pr_desired_params p;
    if (cfg)
        p = pr_scaling_params(cfg);
    else
        pr_scaling_current_params(&p);
    struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
    if (!pods)
        return p.max;
    size_t n = pr_registry_snapshot(reg, pods, PR_MAX_PODS);
    if (n > PR_MAX_PODS)
        n = PR_MAX_PODS;
    uint32_t r = pr_scaling_desired_of(pods, n, &p);
    free(pods);
    return r;
}

void pr_scaling_tick(struct pr_registry *reg)
{
    struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
    if (!pods)
        return;
    if (!g_seen)
        g_seen = calloc(PR_MAX_PODS, sizeof(*g_seen));
    if (!g_seen) {
        free(pods);
        return;
    }
    size_t n = pr_registry_snapshot(reg, pods, PR_MAX_PODS);
    if (n > PR_MAX_PODS)
        n = PR_MAX_PODS;
    /* Both lists are sorted by name: one merge pass. */
    uint64_t lost = 0;
    size_t j = 0;
    for (size_t i = 0; i < g_nseen; i++) {
        while (j < n && strcmp(pods[j].name, g_seen[i].name) < 0)
            j++;
        bool gone =
            j >= n || strcmp(pods[j].name, g_seen[i].name) != 0 || pods[j].state == PR_POD_DOWN;
        if (gone)
            lost += g_seen[i].rooms;
    }
    g_nseen = 0;
    for (size_t i = 0; i < n; i++) {
        if (pods[i].state == PR_POD_DOWN || pods[i].load_rooms == 0)
            continue;
        memcpy(g_seen[g_nseen].name, pods[i].name, sizeof(g_seen[0].name));
        g_seen[g_nseen++].rooms = pods[i].load_rooms;
    }
    if (lost)
        atomic_fetch_add(&g_interrupted, lost);
    free(pods);
}

uint64_t pr_scaling_rooms_interrupted(void)
{
    return atomic_load(&g_interrupted);
}
