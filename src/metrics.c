/* Per-thread counters merged at scrape time; Prometheus text exposition 0.0.4. */
#include "podrouter/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "podrouter/registry.h"
#include "podrouter/scaling.h"
#include "podrouter/store.h"

static const double bucket_bounds[PR_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10,
};

_Thread_local struct pr_metrics *pr_metrics_self;

static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pr_metrics **blocks;
static size_t nblocks;
static struct pr_registry *g_reg;
static struct pr_store *g_store;
static double start_time_s;

struct pr_metrics *pr_metrics_thread_create(void)
{
    struct pr_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_lock(&blocks_lock);
    struct pr_metrics **nb = realloc(blocks, (nblocks + 1) * sizeof(*nb));
    if (!nb) {
        pthread_mutex_unlock(&blocks_lock);
        free(m);
        return NULL;
    }
    blocks = nb;
    blocks[nblocks++] = m;
    if (start_time_s == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    }
    pthread_mutex_unlock(&blocks_lock);
    return m;
}

void pr_metrics_global_set(struct pr_registry *reg, struct pr_store *store)
{
    g_reg = reg;
    g_store = store;
}

void pr_metrics_free_all(void)
{
    pthread_mutex_lock(&blocks_lock);
    for (size_t i = 0; i < nblocks; i++)
        free(blocks[i]);
    free(blocks);
    blocks = NULL;
    nblocks = 0;
    g_reg = NULL;
    g_store = NULL;
    pthread_mutex_unlock(&blocks_lock);
}

void pr_hist_observe(struct pr_histogram *h, double seconds)
{
    size_t i = 0;
    while (i < PR_HIST_BUCKETS && seconds > bucket_bounds[i])
        i++;
    if (i < PR_HIST_BUCKETS)
        PR_CNT_INC(h->buckets[i]);
    PR_CNT_INC(h->count);
    pr_cnt_add_double(&h->sum, seconds);
}

static struct pr_pod_counters *pod_counters(struct pr_metrics *m, uint32_t slot, uint32_t gen)
{
    if (slot >= PR_MAX_PODS)
        return NULL;
    struct pr_pod_counters *pc = &m->pods[slot];
    if (pc->gen != gen) {
        __atomic_store_n(&pc->gen, gen, __ATOMIC_RELAXED);
        __atomic_store_n(&pc->routed, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pc->tunnels, 0, __ATOMIC_RELAXED);
    }
    return pc;
}

void pr_metrics_pod_routed(struct pr_metrics *m, uint32_t slot, uint32_t gen)
{
    struct pr_pod_counters *pc = pod_counters(m, slot, gen);
    if (pc)
        PR_CNT_INC(pc->routed);
}

void pr_metrics_pod_tunnel(struct pr_metrics *m, uint32_t slot, uint32_t gen)
{
    struct pr_pod_counters *pc = pod_counters(m, slot, gen);
    if (pc)
        PR_CNT_INC(pc->tunnels);
}

struct out {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
    if (o->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t nc = o->cap * 2 + (size_t)n;
        char *p = realloc(o->buf, nc);
        if (!p) {
            o->oom = true;
            return;
        }
        o->buf = p;
        o->cap = nc;
    }
}

static void header(struct out *o, const char *name, const char *type, const char *help)
{
    outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(struct out *o, const char *name, const char *help, size_t field_off)
{
    struct pr_histogram sum;
    memset(&sum, 0, sizeof(sum));
    for (size_t b = 0; b < nblocks; b++) {
        const struct pr_histogram *h =
            (const struct pr_histogram *)((const char *)blocks[b] + field_off);
        for (size_t i = 0; i < PR_HIST_BUCKETS; i++)
            sum.buckets[i] += PR_CNT_GET(h->buckets[i]);
        sum.count += PR_CNT_GET(h->count);
        sum.sum += pr_cnt_get_double(&h->sum);
    }
    header(o, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < PR_HIST_BUCKETS; i++) {
        cum += sum.buckets[i];
        outf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_bounds[i], (unsigned long long)cum);
    }
    outf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)sum.count);
    outf(o, "%s_sum %.9f\n%s_count %llu\n", name, sum.sum, name, (unsigned long long)sum.count);
}

static void process_metrics(struct out *o)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    header(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    outf(o, "process_cpu_seconds_total %.6f\n", cpu);
    long rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &rss_pages) != 2)
            rss_pages = 0;
        fclose(f);
    }
    header(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    outf(o, "process_resident_memory_bytes %lld\n",
         (long long)rss_pages * (long long)sysconf(_SC_PAGESIZE));
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        fds--; /* the directory handle itself */
    }
    header(o, "process_open_fds", "gauge", "Number of open file descriptors.");
    outf(o, "process_open_fds %ld\n", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        header(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        outf(o, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    header(o, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    outf(o, "process_start_time_seconds %.3f\n", start_time_s);
}

/* Build info, requests by listener and class, request and connect latency. */
static void render_requests(struct out *o)
{
    header(o, "podrouter_build_info", "gauge", "Build information; always 1.");
    outf(o, "podrouter_build_info{version=\"%s\"} 1\n", PR_VERSION);

    static const char *const listeners[] = {"public", "admin"};
    header(o, "podrouter_http_requests_total", "counter",
           "HTTP responses sent, by listener and status class.");
    for (int l = 0; l < PR_LISTENER__COUNT; l++)
        for (int cls = 1; cls <= 5; cls++) {
            uint64_t v = 0;
            for (size_t b = 0; b < nblocks; b++)
                v += PR_CNT_GET(blocks[b]->requests[l][cls]);
            outf(o, "podrouter_http_requests_total{listener=\"%s\",code=\"%dxx\"} %llu\n",
                 listeners[l], cls, (unsigned long long)v);
        }

    histogram(o, "podrouter_request_duration_seconds",
              "Public requests: time from request start to the response head.",
              offsetof(struct pr_metrics, request_duration));
    histogram(o, "podrouter_upstream_connect_duration_seconds",
              "Time to establish a TCP connection to a pod.",
              offsetof(struct pr_metrics, connect_duration));
}

/* Connections, assignment decisions, proxy errors, bytes and refusals. */
static void render_traffic(struct out *o)
{
    static const char *const kinds[] = {"client", "upstream", "websocket"};
    header(o, "podrouter_connections_active", "gauge", "Open connections by kind.");
    for (int k = 0; k < PR_CONN__COUNT; k++) {
        int64_t v = 0;
        for (size_t b = 0; b < nblocks; b++)
            v += PR_CNT_GET(blocks[b]->conns[k]);
        outf(o, "podrouter_connections_active{kind=\"%s\"} %lld\n", kinds[k],
             (long long)(v < 0 ? 0 : v));
    }

    header(o, "podrouter_assignments_total", "counter",
           "Affinity decisions by key source and outcome.");
    for (int k = 0; k < PR_KEY__COUNT; k++)
        for (int oc = 0; oc < PR_OUTCOME__COUNT; oc++) {
            uint64_t v = 0;
            for (size_t b = 0; b < nblocks; b++)
                v += PR_CNT_GET(blocks[b]->assignments[k][oc]);
            outf(o, "podrouter_assignments_total{kind=\"%s\",outcome=\"%s\"} %llu\n",
                 pr_key_kind_name((enum pr_key_kind)k), pr_outcome_name((enum pr_outcome)oc),
                 (unsigned long long)v);
        }

    static const char *const reasons[] = {"connect", "reset", "timeout", "no_pod", "bad_request"};
    header(o, "podrouter_proxy_errors_total", "counter", "Proxy failures by reason.");
    for (int r = 0; r < PR_ERR__COUNT; r++) {
        uint64_t v = 0;
        for (size_t b = 0; b < nblocks; b++)
            v += PR_CNT_GET(blocks[b]->proxy_errors[r]);
        outf(o, "podrouter_proxy_errors_total{reason=\"%s\"} %llu\n", reasons[r],
             (unsigned long long)v);
    }

    uint64_t to_pod = 0, to_client = 0, rejected = 0, limited = 0;
    for (size_t b = 0; b < nblocks; b++) {
        to_pod += PR_CNT_GET(blocks[b]->bytes_to_pod);
        to_client += PR_CNT_GET(blocks[b]->bytes_to_client);
        rejected += PR_CNT_GET(blocks[b]->rejected_connections);
        limited += PR_CNT_GET(blocks[b]->rate_limited);
    }
    header(o, "podrouter_bytes_total", "counter", "Bytes relayed, by direction.");
    outf(o, "podrouter_bytes_total{direction=\"to_pod\"} %llu\n", (unsigned long long)to_pod);
    outf(o, "podrouter_bytes_total{direction=\"to_client\"} %llu\n",
         (unsigned long long)to_client);
    header(o, "podrouter_rejected_connections_total", "counter",
           "Client connections closed at once because --max-connections was reached.");
    outf(o, "podrouter_rejected_connections_total %llu\n", (unsigned long long)rejected);
    header(o, "podrouter_rate_limited_total", "counter",
           "Requests answered 429 because their client created new keys too fast.");
    outf(o, "podrouter_rate_limited_total %llu\n", (unsigned long long)limited);
}

/* Per-pod series (registered pods only: bounded cardinality) and desired replicas. */
static void render_pods(struct out *o)
{
    /* Per-pod series only for registered pods: bounded cardinality. */
    static struct pr_pod_info pods[PR_MAX_PODS];
    size_t np = g_reg ? pr_registry_snapshot(g_reg, pods, PR_MAX_PODS) : 0;
    if (np > PR_MAX_PODS)
        np = PR_MAX_PODS;
    uint32_t states[3] = {0, 0, 0};
    for (size_t i = 0; i < np; i++)
        states[pods[i].state]++;
    header(o, "podrouter_pods", "gauge", "Registered pods by state.");
    outf(o, "podrouter_pods{state=\"ready\"} %u\n", states[PR_POD_READY]);
    outf(o, "podrouter_pods{state=\"draining\"} %u\n", states[PR_POD_DRAINING]);
    outf(o, "podrouter_pods{state=\"down\"} %u\n", states[PR_POD_DOWN]);

    header(o, "podrouter_pod_load", "gauge", "Load of each registered pod by resource: active rooms (traffic within --room-active) "
           "and their participants, over all replicas sharing the store; open connections.");
    for (size_t i = 0; i < np; i++) {
        outf(o, "podrouter_pod_load{pod=\"%s\",resource=\"rooms\"} %u\n", pods[i].name,
             pods[i].load_rooms);
        outf(o, "podrouter_pod_load{pod=\"%s\",resource=\"participants\"} %u\n", pods[i].name,
             pods[i].load_participants);
        outf(o, "podrouter_pod_load{pod=\"%s\",resource=\"connections\"} %u\n", pods[i].name,
             pods[i].load_connections);
    }
    struct pr_desired_params dp = pr_scaling_params(NULL);
    pr_scaling_current_params(&dp);
    header(o, "podrouter_backend_desired_replicas", "gauge",
           "Backend replicas needed for the active rooms (SPEC 5.1); drives the backend HPA.");
    outf(o, "podrouter_backend_desired_replicas %u\n", pr_scaling_desired_of(pods, np, &dp));
    header(o, "podrouter_rooms_interrupted_total", "counter",
           "Active rooms whose pod went down or was deleted (every replica sharing a store "
           "counts the same rooms: aggregate with max, not sum).");
    outf(o, "podrouter_rooms_interrupted_total %llu\n",
         (unsigned long long)pr_scaling_rooms_interrupted());
    header(o, "podrouter_pod_marked_down_total", "counter",
           "Times this replica marked a pod down itself, by reason (unreachable: --pod-fall "
           "consecutive failed connects).");
    for (size_t i = 0; i < np; i++)
        outf(o, "podrouter_pod_marked_down_total{pod=\"%s\",reason=\"unreachable\"} %llu\n",
             pods[i].name, (unsigned long long)pods[i].marked_down);
    header(o, "podrouter_routed_requests_total", "counter", "Requests forwarded, by pod.");
    for (size_t i = 0; i < np; i++) {
        uint64_t v = 0;
        for (size_t b = 0; b < nblocks; b++)
            if (PR_CNT_GET(blocks[b]->pods[pods[i].slot].gen) == pods[i].gen)
                v += PR_CNT_GET(blocks[b]->pods[pods[i].slot].routed);
        outf(o, "podrouter_routed_requests_total{pod=\"%s\"} %llu\n", pods[i].name,
             (unsigned long long)v);
    }
    header(o, "podrouter_websocket_tunnels_total", "counter",
           "WebSocket tunnels established, by pod.");
    for (size_t i = 0; i < np; i++) {
        uint64_t v = 0;
        for (size_t b = 0; b < nblocks; b++)
            if (PR_CNT_GET(blocks[b]->pods[pods[i].slot].gen) == pods[i].gen)
                v += PR_CNT_GET(blocks[b]->pods[pods[i].slot].tunnels);
        outf(o, "podrouter_websocket_tunnels_total{pod=\"%s\"} %llu\n", pods[i].name,
             (unsigned long long)v);
    }
}

char *pr_metrics_render(size_t *len)
{
    struct out o = {.cap = 16384};
    o.buf = malloc(o.cap);
    if (!o.buf)
        return NULL;
    o.buf[0] = 0;
    pthread_mutex_lock(&blocks_lock);
    render_requests(&o);
    render_traffic(&o);
    render_pods(&o);
    header(&o, "podrouter_store_up", "gauge", "1 when the assignment store is reachable.");
    outf(&o, "podrouter_store_up %d\n", g_store && g_store->ops->up(g_store) ? 1 : 0);
    histogram(&o, "podrouter_store_operation_duration_seconds",
              "Latency of store commands (round trip).",
              offsetof(struct pr_metrics, store_duration));
    process_metrics(&o);
    pthread_mutex_unlock(&blocks_lock);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
