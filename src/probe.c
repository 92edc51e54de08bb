/* Passive failure detection (see probe.h): counting failed connects (any worker) and
 * probing pods marked down by --pod-fall (worker 0's loop only). */
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>

#include "podrouter/common.h"
#include "podrouter/log.h"
#include "podrouter/registry.h"
#include "tq.h"
#include "upstream.h"
#include "worker.h"

const char pr__probe_tag = 'p';

/* A connect to the pod failed. A fresh connect's failure (fresh: a connection was being
 * set up, not a reused one) counts towards --pod-fall; a name not resolving does not. */
void pr__pod_connect_failed(struct pr_worker *w, const char *pod, int err, bool fresh)
{
    bool counts = err == UV_ECONNREFUSED || err == UV_ETIMEDOUT || err == UV_EHOSTUNREACH ||
                  err == UV_ENETUNREACH || err == UV_ECONNRESET;
    if (!fresh && err != UV_ENETUNREACH)
        counts = false; /* no connection was attempted (e.g. an unresolved name) */
    uint32_t n = 0;
    char num[16];
    if (!counts) {
        pr_registry_record_failure(w->srv->reg, pod);
    } else if (pr_registry_connect_failed(w->srv->reg, pod, &n)) {
        snprintf(num, sizeof(num), "%u", (unsigned)n);
        pr_warn("pod marked down", "pod", pod, "reason", "unreachable", "error",
                uv_err_name(err), "#failures", num);
    }
}

struct pr_prober;

struct pr_probe {
    uv_tcp_t tcp;
    uv_connect_t req;
    struct pr_prober *owner;
    uint32_t slot, gen;
    bool closing;
    char name[PR_POD_NAME_MAX + 1];
};

struct pr_prober {
    uv_timer_t timer;
    struct pr_worker *w;
    uint32_t nprobes;
    bool timer_closed;
    struct pr_probe *inflight[PR_MAX_PODS]; /* by registry slot */
    struct pr_pod_info infos[PR_MAX_PODS];
};

/* Free the prober once its timer and every probe are closed. */
static void prober_maybe_free(struct pr_prober *pb)
{
    if (pb->timer_closed && pb->nprobes == 0)
        free(pb);
}

static void probe_closed(uv_handle_t *h)
{
    struct pr_probe *p = pr__container_of(h, struct pr_probe, tcp);
    struct pr_prober *pb = p->owner;
    pb->nprobes--;
    free(p);
    prober_maybe_free(pb);
}

static void probe_close(struct pr_probe *p)
{
    if (p->closing)
        return;
    p->closing = true;
    if (p->owner->inflight[p->slot] == p)
        p->owner->inflight[p->slot] = NULL; /* the next interval may probe again */
    uv_close((uv_handle_t *)&p->tcp, probe_closed);
}

static void probe_connected(uv_connect_t *req, int status)
{
    struct pr_probe *p = pr__container_of(req, struct pr_probe, req);
    if (p->closing)
        return; /* timed out or stopping: uv_close cancelled the connect */
    if (status == 0 && pr_registry_connect_ok(p->owner->w->srv->reg, p->slot, p->gen))
        pr_warn("pod up again", "pod", p->name, "by", "probe");
    else if (status < 0)
        pr_debug("pod probe failed", "pod", p->name, "error", uv_err_name(status));
    probe_close(p);
}

/* Start one probe of pod (unreachable, none in flight). */
static void probe_start(struct pr_prober *pb, const struct pr_pod_info *pod)
{
    struct pr_pool *pool = pr__pool_get(pb->w, pod);
    if (!pool || !pool->resolved)
        return; /* a DNS name still resolving (or not resolving): next interval */
    struct pr_probe *p = calloc(1, sizeof(*p));
    if (!p || uv_tcp_init(&pb->w->loop, &p->tcp) != 0) {
        free(p);
        return;
    }
    p->tcp.data = (void *)&pr__probe_tag;
    p->owner = pb;
    p->slot = pod->slot;
    p->gen = pod->gen;
    snprintf(p->name, sizeof(p->name), "%s", pod->name);
    pb->inflight[p->slot] = p;
    pb->nprobes++;
    int rc = uv_tcp_connect(&p->req, &p->tcp, (struct sockaddr *)&pool->addr, probe_connected);
    if (rc != 0) {
        pr_debug("pod probe failed", "pod", p->name, "error", uv_err_name(rc));
        probe_close(p);
    }
}

/* Every interval: abandon the probes still unanswered since the last one (a connect gets one
 * interval), then probe each unreachable pod that has none in flight. */
static void prober_tick(uv_timer_t *t)
{
    struct pr_prober *pb = pr__container_of(t, struct pr_prober, timer);
    struct pr_worker *w = pb->w;
    for (size_t i = 0; i < PR_MAX_PODS; i++) {
        struct pr_probe *p = pb->inflight[i];
        if (p && !p->closing) {
            pr_debug("pod probe failed", "pod", p->name, "error", "ETIMEDOUT");
            probe_close(p);
        }
    }
    if (w->draining || w->stopping)
        return;
    size_t n = pr_registry_snapshot(w->srv->reg, pb->infos, PR_MAX_PODS);
    for (size_t i = 0; i < n && i < PR_MAX_PODS; i++) {
        const struct pr_pod_info *pod = &pb->infos[i];
        if (pod->unreachable && pod->slot < PR_MAX_PODS && !pb->inflight[pod->slot])
            probe_start(pb, pod);
    }
}

int pr__probe_start(struct pr_worker *w)
{
    const struct pr_config *cfg = &w->srv->cfg;
    if (cfg->pod_fall == 0)
        return 0; /* nothing is ever marked down passively */
    struct pr_prober *pb = calloc(1, sizeof(*pb));
    if (!pb)
        return UV_ENOMEM;
    pb->w = w;
    uint64_t interval = cfg->pod_check_interval_ms;
    int rc = uv_timer_init(&w->loop, &pb->timer);
    if (rc != 0) {
        free(pb);
        return rc;
    }
    pb->timer.data = (void *)&pr__probe_tag;
    return uv_timer_start(&pb->timer, prober_tick, interval, interval);
}

static void timer_closed(uv_handle_t *h)
{
    struct pr_prober *pb = pr__container_of(h, struct pr_prober, timer);
    pb->timer_closed = true;
    prober_maybe_free(pb);
}

void pr__probe_close_handle(uv_handle_t *h)
{
    if (h->type == UV_TIMER)
        uv_close(h, timer_closed);
    else
        probe_close(pr__container_of(h, struct pr_probe, tcp));
}
