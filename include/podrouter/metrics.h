/* Counters and histograms: per-thread, merged at scrape time (SPEC 7). */
#ifndef PODROUTER_METRICS_H
#define PODROUTER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"

#define PR_HIST_BUCKETS 16

enum pr_listener_kind { PR_LISTENER_PUBLIC = 0, PR_LISTENER_ADMIN, PR_LISTENER__COUNT };
enum pr_conn_kind { PR_CONN_CLIENT = 0, PR_CONN_UPSTREAM, PR_CONN_WEBSOCKET, PR_CONN__COUNT };
enum pr_proxy_error {
    PR_ERR_CONNECT = 0,
    PR_ERR_RESET,
    PR_ERR_TIMEOUT,
    PR_ERR_NO_POD,
    PR_ERR_BAD_REQUEST,
    PR_ERR__COUNT
};

struct pr_histogram {
    uint64_t buckets[PR_HIST_BUCKETS]; /* non-cumulative counts per upper bound */
    uint64_t count;
    double sum;
};

/* Per-pod counters live in a slot table indexed like the registry. */
struct pr_pod_counters {
    uint32_t gen;
    uint64_t routed;
    uint64_t tunnels;
};

/* Every counter of a block has one writer (its loop thread) and one concurrent reader (the
 * scraper, pr_metrics_render, on another thread): both sides use relaxed atomic accesses,
 * so no value is torn and there is no data race. An increment is a relaxed load plus a
 * relaxed store, not a locked read-modify-write: nobody else writes the counter. */
#define PR_CNT_ADD(var, n)                                                                  \
    __atomic_store_n(&(var), __atomic_load_n(&(var), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define PR_CNT_SUB(var, n)                                                                  \
    __atomic_store_n(&(var), __atomic_load_n(&(var), __ATOMIC_RELAXED) - (n), __ATOMIC_RELAXED)
#define PR_CNT_INC(var) PR_CNT_ADD(var, 1)
#define PR_CNT_DEC(var) PR_CNT_SUB(var, 1)
#define PR_CNT_GET(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

/* Same for a double (histogram sums). */
static inline void pr_cnt_add_double(double *var, double v)
{
    double cur;
    __atomic_load(var, &cur, __ATOMIC_RELAXED);
    cur += v;
    __atomic_store(var, &cur, __ATOMIC_RELAXED);
}

static inline double pr_cnt_get_double(const double *var)
{
    double cur;
    __atomic_load(var, &cur, __ATOMIC_RELAXED);
    return cur;
}

/* One block per event-loop thread; only its own thread writes it (PR_CNT_* above). */
struct pr_metrics {
    uint64_t requests[PR_LISTENER__COUNT][6]; /* code class 1xx..5xx at [1..5] */
    int64_t conns[PR_CONN__COUNT];
    uint64_t assignments[PR_KEY__COUNT][PR_OUTCOME__COUNT];
    uint64_t proxy_errors[PR_ERR__COUNT];
    uint64_t bytes_to_pod, bytes_to_client;
    uint64_t rejected_connections;
    uint64_t rate_limited;
    struct pr_histogram request_duration;
    struct pr_histogram connect_duration;
    struct pr_histogram store_duration;
    struct pr_pod_counters pods[PR_MAX_PODS];
};

struct pr_registry;
struct pr_store;

/* The calling loop thread's block (NULL outside loop threads). Modules without access to
 * their worker (e.g. a store) count through it. */
extern _Thread_local struct pr_metrics *pr_metrics_self;

/* Register a thread's block (called once per loop thread at start-up). */
struct pr_metrics *pr_metrics_thread_create(void);
void pr_metrics_global_set(struct pr_registry *reg, struct pr_store *store);

void pr_hist_observe(struct pr_histogram *h, double seconds);
void pr_metrics_pod_routed(struct pr_metrics *m, uint32_t slot, uint32_t gen);
void pr_metrics_pod_tunnel(struct pr_metrics *m, uint32_t slot, uint32_t gen);

/* Render every metric in Prometheus text format 0.0.4; malloc'd. */
char *pr_metrics_render(size_t *len);
void pr_metrics_free_all(void);

#endif
