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

/* One block per event-loop thread; only its own thread writes it (plain stores). */
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
