/* Threads, one uv_loop each, SO_REUSEPORT listeners, timeout queues, drain. */
#include "worker.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin_conn.h"
#include "client.h"
#include "exchange.h"
#include "podrouter/log.h"
#include "podrouter/loop.h"
#include "podrouter/registry.h"
#include "podrouter/scaling.h"
#include "podrouter/store.h"
#include "probe.h"
#include "respond.h"
#include "tq.h"
#include "upstream.h"

#define PR_TICK_MS 200
_Static_assert(PR_TICK_MS <= PR_HOUSEKEEPING_MIN_MS, "housekeeping runs on the tick");

/* The process-wide state. Only this file names it (the signal handler and start-up); the
 * modules reach it through their worker (w->srv). */
static struct pr_server process_srv;

/* After a burst of connections closes, give the freed memory back to the system (glibc keeps
 * heap memory otherwise). Each worker unmaps the pooled exchanges that stayed unused for a
 * whole window (keeping PR_MEM_KEEP); worker 0 also notices a drop in connections. Cheap when
 * nothing changed. The window is short so that the memory of a burst of handshakes (up to
 * PR_EXCHANGE_FREELIST pooled exchanges of ~20 KiB each per worker) is gone within a second
 * of it, e.g. once a wave of WebSocket upgrades became idle tunnels (issue 11). */
#define PR_MEM_WINDOW_MS 400
#define PR_MEM_KEEP 2
void pr__memory_tick(struct pr_worker *w, uint64_t now)
{
    static uint32_t peak; /* worker 0 only */
    if (now - w->mem_last < PR_MEM_WINDOW_MS)
        return;
    w->mem_last = now;
    uint32_t spare = w->free_low > PR_MEM_KEEP ? w->free_low - PR_MEM_KEEP : 0;
    bool trim = spare >= 8;
    while (spare-- && w->free_exchanges) {
        struct pr_exchange *x = w->free_exchanges;
        w->free_exchanges = x->next_free;
        w->nfree_exchanges--;
        pr__exchange_free(x);
    }
    w->free_low = (uint32_t)w->nfree_exchanges;
    if (w->id == 0) {
        uint32_t n = (uint32_t)atomic_load(&w->srv->nclients);
        if (n > peak) {
            peak = n;
        } else if (peak >= n + 256 && n < peak - peak / 4) {
            trim = true;
            peak = n;
        }
    }
#if !defined(PR_ASAN)
    /* Not under ASan: its allocator does not use glibc's heap, so glibc's malloc was never
     * initialised, and two workers trimming at once raced in its lazy initialisation
     * (a SEGV in mtrim seen in the sanitizer e2e run). */
    if (trim)
        malloc_trim(0);
#else
    (void)trim;
#endif
}

/* ---- listeners ---- */

static int addr_from_listen(const struct pr_listen_addr *la, struct sockaddr_storage *ss)
{
    const char *host = la->host;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (strchr(host, ':'))
        return uv_ip6_addr(host, la->port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(host, la->port, (struct sockaddr_in *)ss);
}

/* Bind a listening socket; with reuseport every worker accepts on its own socket. */
static int listen_on(struct pr_worker *w, uv_tcp_t *tcp, const struct pr_listen_addr *la,
                     bool reuseport, uv_connection_cb cb)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = addr_from_listen(la, &ss);
    if (rc)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    rc = uv_tcp_init(&w->loop, tcp);
    if (rc) {
        close(fd);
        return rc;
    }
    tcp->data = w;
    rc = uv_tcp_open(tcp, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, 4096, cb);
    if (rc) {
        uv_close((uv_handle_t *)tcp, NULL);
        return rc;
    }
    return 0;
}

/* SO_REUSEPORT would let a second router on the same port share its traffic silently:
 * check first, without it, that nobody listens there. 0 or a negative errno. */
static int probe_port_free(const struct pr_listen_addr *la)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = addr_from_listen(la, &ss);
    if (rc)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
    rc = bind(fd, (struct sockaddr *)&ss, sl) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* ---- drain and stop ---- */

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h->data == &pr__upstream_tag)
        pr__upstream_close_handle(h); /* freed in its own close callback */
    else if (h->data == &pr__probe_tag)
        pr__probe_close_handle(h); /* the prober frees itself */
    else
        uv_close(h, NULL);
}

static void worker_begin_drain(struct pr_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    w->drain_deadline = pr__now(w) + w->srv->cfg.drain_timeout_ms;
    if (w->has_listener) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        w->has_listener = false;
    }
    pr__client_drain(w);
}

static void worker_stop(struct pr_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    atomic_fetch_add(&w->srv->stopped_workers, 1);
    /* Close every connection and handle; uv_run returns once all close callbacks ran. */
    pr__iobatch_flush(&w->sb);
    pr__client_close_all(w);
    pr__pools_close_idle(w);
    uv_walk(&w->loop, close_walk_cb, NULL);
}

static void forgotten_cb(void *arg, const char *pod)
{
    struct pr_store *s = arg;
    pr_info("pod forgotten", "pod", pod);
    s->ops->release_pod(s, pod);
}

static void tick_cb(uv_timer_t *t)
{
    struct pr_worker *w = t->data;
    uint64_t now = pr__now(w);
    pr__tq_sweep(&w->q_header, now);
    pr__tq_sweep(&w->q_idle, now);
    pr__tq_sweep(&w->q_tunnel, now);
    pr__tq_sweep(&w->q_connect, now);
    pr__tq_sweep(&w->q_wait, now);
    pr__tq_sweep(&w->q_pool, now);
    pr__tq_sweep(&w->q_send, now);
    pr__tq_sweep(&w->q_linger, now);
    pr__tq_sweep(&w->q_clinger, now);
    pr__memory_tick(w, now);
    if (w->id == 0) {
        static uint64_t last_housekeeping;
        /* Half a tick early, so timer jitter does not skip a period. */
        if (now - last_housekeeping + PR_TICK_MS / 2 >= pr_config_housekeeping_ms(&w->srv->cfg)) {
            last_housekeeping = now;
            pr_registry_expire(w->srv->reg, forgotten_cb, w->store);
            if (w->store->ops->tick)
                w->store->ops->tick(w->store);
            pr_scaling_tick(w->srv->reg);
        }
    }
    if (w->draining) {
        if (!pr__client_any_public(w) || now >= w->drain_deadline) {
            /* Worker 0 keeps the admin listener until every other worker finished. */
            if (w->id == 0 && atomic_load(&w->srv->stopped_workers) + 1 < w->srv->nworkers)
                return;
            worker_stop(w);
        }
    }
}

static void wake_cb(uv_async_t *a)
{
    struct pr_worker *w = a->data;
    if (atomic_load(&w->srv->draining))
        worker_begin_drain(w);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    if (atomic_exchange(&process_srv.draining, true))
        return;
    pr_info("drain started", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    for (uint32_t i = 0; i < process_srv.nworkers; i++)
        uv_async_send(&process_srv.workers[i]->wake);
}

/* SIGHUP reopens nothing (SPEC 2): handled so it does not kill the process. */
static void sighup_cb(uv_signal_t *s, int signum)
{
}

/* ---- worker lifecycle ---- */

static struct pr_worker *worker_create(struct pr_server *srv, int id, char *err, size_t errlen)
{
    struct pr_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->id = id;
    w->srv = srv;
    int rc = uv_loop_init(&w->loop);
    if (rc)
        goto fail_free;
    w->loop.data = w;
    const struct pr_config *cfg = &srv->cfg;
    rc = pr__iobatch_init(&w->sb, &w->loop, cfg->io_uring);
    if (rc)
        goto fail_loop;
    pr__client_queues_init(w, cfg);   /* each transport owns its timers */
    pr__upstream_queues_init(w, cfg);
    w->m = pr_metrics_thread_create();
    w->policy_pods = calloc(PR_MAX_PODS, sizeof(*w->policy_pods));
    w->pod_infos = calloc(PR_MAX_PODS, sizeof(*w->pod_infos));
    if (!w->m || !w->policy_pods || !w->pod_infos)
        goto fail_loop;
    w->store = pr_store_open(cfg, srv->reg, &w->loop, err, errlen);
    if (!w->store)
        goto fail_loop;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_async_init(&w->loop, &w->wake, wake_cb);
    w->wake.data = w;
    rc = listen_on(w, &w->listener, &cfg->listen, true, pr__on_connection);
    if (rc) {
        snprintf(err, errlen, "--listen: cannot listen on %s:%u: %s", cfg->listen.host,
                 (unsigned)cfg->listen.port, uv_strerror(rc));
        goto fail_loop;
    }
    w->has_listener = true;
    if (id == 0) {
        rc = listen_on(w, &w->admin_listener, &cfg->admin_listen, false, pr__on_admin_connection);
        if (rc) {
            snprintf(err, errlen, "--admin-listen: cannot listen on %s:%u: %s",
                     cfg->admin_listen.host, (unsigned)cfg->admin_listen.port, uv_strerror(rc));
            goto fail_loop;
        }
        w->has_admin = true;
        rc = pr__probe_start(w); /* --pod-fall: probe pods marked down */
        if (rc) {
            snprintf(err, errlen, "cannot start pod probes: %s", uv_strerror(rc));
            goto fail_loop;
        }
    }
    uv_timer_start(&w->tick, tick_cb, PR_TICK_MS, PR_TICK_MS);
    return w;
fail_loop:
    /* Handles opened so far are closed by the caller via pr_loop_destroy semantics. */
    uv_walk(&w->loop, close_walk_cb, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->store)
        w->store->ops->close(w->store);
    uv_loop_close(&w->loop);
    pr__iobatch_finish(&w->sb);
    free(w->policy_pods);
    free(w->pod_infos);
fail_free:
    free(w);
    return NULL;
}

static void worker_destroy(struct pr_worker *w)
{
    if (!w)
        return;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->store)
        w->store->ops->close(w->store);
    pr__pools_destroy(w);
    pr__slab_destroy(&w->client_slab); /* every connection was closed and freed above */
    pr__slab_destroy(&w->upstream_slab);
    while (w->free_exchanges) {
        struct pr_exchange *x = w->free_exchanges;
        w->free_exchanges = x->next_free;
        pr__exchange_free(x);
    }
    uv_loop_close(&w->loop);
    pr__iobatch_finish(&w->sb);
    free(w->policy_pods);
    free(w->pod_infos);
    free(w);
}

static void worker_thread(void *arg)
{
    struct pr_worker *w = arg;
    pr_metrics_self = w->m;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* Raise the soft open-file limit to the hard limit; returns the resulting soft limit. */
static uint64_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1048576 : (uint64_t)rl.rlim_cur;
}

/* The process-wide state every worker reads (read-only after start-up but the atomics). */
static void server_init(const struct pr_config *cfg, struct pr_registry *reg,
                        const uint8_t secret[32], const char *token, size_t token_len)
{
    struct pr_server *s = &process_srv;
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->reg = reg;
    memcpy(s->secret, secret, 32);
    s->token = token ? strndup(token, token_len) : NULL;
    s->token_len = token_len;
    s->aff.room_param = s->cfg.room_param;
    s->aff.participant_param = s->cfg.participant_param;
    s->aff.cookie_name = s->cfg.cookie_name[0] ? s->cfg.cookie_name : NULL;
    s->aff.secret = s->secret;
    s->aff.secret_len = sizeof(s->secret);
    s->start_ms = pr_now_ms();
    atomic_init(&s->draining, false);
    atomic_init(&s->nclients, 0);
    atomic_init(&s->request_seq, 0);
    atomic_init(&s->stopped_workers, 0);
}

/* Log the open-file limit (raised to its maximum) and what it allows. */
static void log_nofile(const struct pr_config *cfg)
{
    uint64_t nofile = raise_nofile();
    uint64_t capacity = nofile > 64 ? (nofile - 64) / 2 : 0;
    char nofile_s[24], cap_s[24], maxc_s[24];
    snprintf(nofile_s, sizeof(nofile_s), "%llu", (unsigned long long)nofile);
    snprintf(cap_s, sizeof(cap_s), "%llu", (unsigned long long)capacity);
    snprintf(maxc_s, sizeof(maxc_s), "%u", cfg->max_connections);
    pr_info("open file limit", "#nofile", nofile_s, "#proxied_connection_capacity", cap_s,
            "#max_connections", maxc_s);
    if (capacity < cfg->max_connections)
        pr_warn("--max-connections exceeds what the open-file limit allows; the limit wins",
                "#capacity", cap_s);
}

/* Signals on worker 0, the other workers on their threads, worker 0 on this one, until
 * every worker stopped. */
static void run_workers(const struct pr_config *cfg, struct pr_registry *reg)
{
    struct pr_store *s0 = process_srv.workers[0]->store;
    pr_metrics_global_set(reg, s0);
    pr_scaling_configure(cfg);
    uv_signal_t sigterm, sigint, sighup;
    struct pr_worker *w0 = process_srv.workers[0];
    uv_signal_init(&w0->loop, &sigterm);
    uv_signal_init(&w0->loop, &sigint);
    uv_signal_init(&w0->loop, &sighup);
    uv_signal_start(&sigterm, signal_cb, SIGTERM);
    uv_signal_start(&sigint, signal_cb, SIGINT);
    uv_signal_start(&sighup, sighup_cb, SIGHUP);
    char pub[96], adm[96], thr_s[12];
    snprintf(thr_s, sizeof(thr_s), "%u", cfg->threads);
    snprintf(pub, sizeof(pub), "%s:%u", cfg->listen.host, (unsigned)cfg->listen.port);
    snprintf(adm, sizeof(adm), "%s:%u", cfg->admin_listen.host,
             (unsigned)cfg->admin_listen.port);
    pr_info("listening", "listen", pub, "admin_listen", adm, "#threads", thr_s, "store",
            w0->store->ops->name, "io_uring",
            !w0->sb.on         ? cfg->io_uring ? "refused by the kernel: one write per send" : "off"
            : w0->sb.rarena ? "on"
                            : "on for sends; reads the libuv way (libuv version not checked)");
    for (uint32_t i = 1; i < cfg->threads; i++)
        uv_thread_create(&process_srv.workers[i]->thread, worker_thread, process_srv.workers[i]);
    pr_metrics_self = w0->m;
    uv_run(&w0->loop, UV_RUN_DEFAULT);
    for (uint32_t i = 1; i < cfg->threads; i++)
        uv_thread_join(&process_srv.workers[i]->thread);
}

int pr_loop_run(const struct pr_config *cfg, struct pr_registry *reg, const uint8_t secret[32],
                const char *token, size_t token_len, char *err, size_t errlen)
{
    server_init(cfg, reg, secret, token, token_len);
    if (cfg->key_rate > 0) {
        process_srv.rl = pr_ratelimit_create(cfg->key_rate, cfg->key_burst, 65536);
        if (!process_srv.rl)
            return -ENOMEM;
    }
    log_nofile(cfg);
    int prc = probe_port_free(&cfg->listen);
    if (prc) {
        snprintf(err, errlen, "--listen: cannot listen on %s:%u: %s", cfg->listen.host,
                 (unsigned)cfg->listen.port, uv_strerror(prc));
        free(process_srv.token);
        return prc;
    }
    process_srv.nworkers = cfg->threads;
    process_srv.workers = calloc(cfg->threads, sizeof(*process_srv.workers));
    if (!process_srv.workers)
        return -ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < cfg->threads; i++) {
        process_srv.workers[i] = worker_create(&process_srv, (int)i, err, errlen);
        if (!process_srv.workers[i]) {
            rc = -EINVAL;
            break;
        }
    }
    if (rc == 0) {
        run_workers(cfg, reg);
        pr_info("stopped");
    }
    for (uint32_t i = 0; i < cfg->threads; i++)
        worker_destroy(process_srv.workers[i]);
    free(process_srv.workers);
    free(process_srv.token);
    pr_ratelimit_destroy(process_srv.rl);
    process_srv.rl = NULL;
    pr_metrics_free_all();
    return rc;
}

bool pr_loop_draining(void)
{
    return atomic_load(&process_srv.draining);
}
