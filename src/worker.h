/* loop.c (L3): one event-loop thread (struct pr_worker) and the process-wide state
 * (struct pr_server). loop.c owns both and passes the server to the modules as w->srv. */
#ifndef PODROUTER_WORKER_H
#define PODROUTER_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "podrouter/affinity.h"
#include "podrouter/config.h"
#include "podrouter/ratelimit.h"
#include "podrouter/registry.h"
#include "slab.h"
#include "stream.h"
#include "tq.h"

#define PR_READ_BUF 65536

struct pr_client;
struct pr_exchange;
struct pr_metrics;
struct pr_policy_pod;
struct pr_pod_info;
struct pr_pool;
struct pr_server;
struct pr_store;

/* One event-loop thread. */
struct pr_worker {
    uv_loop_t loop;
    struct pr_server *srv; /* the process-wide state, passed to the modules through here */
    int id;
    uv_thread_t thread;
    uv_tcp_t listener;
    uv_tcp_t admin_listener;
    bool has_listener, has_admin;
    uv_timer_t tick;
    uv_async_t wake;
    struct pr_tq q_header;   /* clients waiting for a complete head */
    struct pr_tq q_idle;     /* idle keep-alive clients */
    struct pr_tq q_tunnel;   /* websocket tunnels */
    struct pr_tq q_connect;  /* upstream connects */
    struct pr_tq q_wait;     /* upstream exchanges in flight */
    struct pr_tq q_pool;     /* idle pooled upstream connections */
    struct pr_tq q_send;     /* clients with queued bytes they do not take */
    struct pr_tq q_linger;   /* pod connections of closed tunnels, flushing their last bytes */
    struct pr_tq q_clinger;  /* clients we close after their answer: read until they close */
    struct pr_store *store;
    struct pr_metrics *m;
    struct pr_pool **pools;
    size_t npools;
    struct pr_exchange *free_exchanges;
    size_t nfree_exchanges;
    struct pr_slab client_slab;   /* struct pr_client of this loop (slab.h) */
    struct pr_slab upstream_slab; /* struct pr_upstream of this loop */
    uint32_t free_low;  /* fewest pooled exchanges since the last memory tick */
    uint64_t mem_last;  /* last memory tick */
    struct pr_policy_pod *policy_pods; /* scratch for new assignments */
    struct pr_pod_info *pod_infos;
    bool draining, stopping;
    uint64_t drain_deadline;
    struct pr_iobatch sb; /* small sends of one loop iteration leave together (stream.h) */
    char readbuf[PR_READ_BUF];
};

/* Process-wide state, read-only after start-up except the atomics. */
struct pr_server {
    struct pr_config cfg;
    struct pr_registry *reg;
    struct pr_worker **workers;
    uint32_t nworkers;
    uint8_t secret[32];
    char *token;
    size_t token_len;
    struct pr_affinity_config aff;
    atomic_bool draining;
    atomic_uint_fast32_t nclients;
    atomic_uint_fast64_t request_seq;
    atomic_uint stopped_workers;
    uint64_t start_ms;
    bool ipv6_admin;
    struct pr_ratelimit *rl; /* --key-rate buckets (NULL: disabled) */
};

/* Give the freed heap back to the system after a burst (called from the worker's tick). */
void pr__memory_tick(struct pr_worker *w, uint64_t now);

#endif
