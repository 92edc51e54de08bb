/* The exchange's side of routing (L2): route.c's handler table {hold, answer, routed,
 * respond} and its context, the request head rewritten for the chosen pod, and getting a
 * connection of that pod's pool. Failures go back to proxy.c through the exchange's
 * pod-connection table (pr__proxy_upstream_handlers.failed), so this file calls nothing in
 * proxy.c. */
#include "proxy.h"

#include <stdio.h>
#include <string.h>

#include "client.h"
#include "exchange.h"
#include "podrouter/http_rewrite.h"
#include "podrouter/registry.h"
#include "respond.h"
#include "route.h"
#include "tq.h"
#include "upstream.h"
#include "worker.h"

/* Rewrite the request head for the pod into x->out.p (SPEC 3.3): framing from the parser. */
static int build_request_head(struct pr_client *c, const struct pr_pod_info *pod)
{
    struct pr_exchange *x = c->x;
    char ip[64];
    pr__peer_ip(c, ip, sizeof(ip));
    struct pr_req_fwd f = {
        .client_ip = ip,
        .request_id = x->request_id,
        .rid_from_client = x->rid_from_client,
        .chunked = x->req_chunked,
        .has_content_length = !x->req_chunked && (x->req_parser.flags & F_CONTENT_LENGTH),
        .content_length = x->req_content_length,
        .upgrade = x->req_upgrade,
        .default_host = pod->address,
    };
    x->out.len = 0;
    return pr_rewrite_request(&x->rh, &f, &x->out);
}

/* ---- decision (route.c) ---- */

static void route_hold(void *arg)
{
    pr__client_hold(arg);
}

static void route_answer(void *arg, int status, const char *pod);

/* The pod is chosen: build the head for it and get a connection. */
static void route_routed(void *arg, const struct pr_route_result *res)
{
    struct pr_client *c = arg;
    struct pr_exchange *x = c->x;
    x->key_kind = (uint8_t)res->kind;
    x->outcome = (uint8_t)res->outcome;
    x->set_cookie = res->set_cookie;
    pr_str_copy(x->pod, sizeof(x->pod), res->pod->name);
    struct pr_pool *p = NULL;
    if (build_request_head(c, res->pod) != 0 || !(p = pr__pool_get(c->w, res->pod))) {
        pr__client_close(c);
        return;
    }
    int rc = pr__upstream_acquire(p, c);
    if (rc < 0)
        pr__proxy_upstream_handlers.failed(c, NULL, rc);
}

static void route_respond(void *arg, const struct pr_route_response *resp)
{
    struct pr_client *c = arg;
    struct pr_exchange *x = c->x;
    x->key_kind = (uint8_t)resp->kind;
    x->outcome = x->route.outcome;
    pr_str_copy(x->pod, sizeof(x->pod), x->route.pod);
    bool close = resp->close_if_incomplete && !x->req_complete;
    if (resp->body)
        pr__client_respond(c, resp->status, "application/json", resp->extra_headers,
                           resp->body, resp->body_len, close);
    else
        pr__client_error(c, resp->status, resp->code, resp->message, resp->extra_headers,
                         close);
}

static const struct pr_route_handlers route_handlers = {
    .hold = route_hold,
    .answer = route_answer,
    .routed = route_routed,
    .respond = route_respond,
};

/* What the route module needs of this worker (it keeps no pointer to it). */
void pr__proxy_route_ctx(struct pr_worker *w, struct pr_route_ctx *ctx)
{
    const struct pr_server *srv = w->srv;
    *ctx = (struct pr_route_ctx){
        .h = &route_handlers,
        .store = w->store,
        .reg = srv->reg,
        .rl = srv->rl,
        .m = w->m,
        .placement = srv->cfg.placement,
        .pack_utilization = srv->cfg.pack_utilization,
        .balance_factor = srv->cfg.balance_factor,
        .cookies = srv->aff.cookie_name != NULL,
        .policy_pods = w->policy_pods,
        .pod_infos = w->pod_infos,
    };
}

/* A store answer for the route module: ignored when the client left meanwhile. */
static void route_answer(void *arg, int status, const char *pod)
{
    struct pr_client *c = arg;
    if (!pr__client_unhold(c))
        return;
    struct pr_route_ctx ctx;
    pr__proxy_route_ctx(c->w, &ctx);
    c->x->route.now_ms = pr__now(c->w);
    pr_route_resume(&ctx, &c->x->route, status, pod);
}

void pr__proxy_route(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    const char *bad = NULL;
    if (pr_affinity_extract(&c->w->srv->aff, &x->rh, &x->aff, &bad) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "%s must be 1-128 characters of [A-Za-z0-9_.:-]", bad ? bad : "affinity key");
        pr__client_error(c, 400, "bad_key", msg, NULL, !x->req_complete);
        return;
    }
    int family = 0;
    uint8_t addr[16] = {0};
    if (c->w->srv->rl)
        pr__client_addr(c, &x->rh, &family, addr); /* only the rate limiter needs it */
    pr_route_req_init(&x->route, c, &x->aff, x->request_id, family, addr, pr__now(c->w));
    struct pr_route_ctx ctx;
    pr__proxy_route_ctx(c->w, &ctx);
    pr_route_start(&ctx, &x->route);
}

/* A connection of pool p for the exchange of c: ready now (reused), connecting, or waiting
 * for the pod's name to resolve (c is held until pr__proxy_pool_resolved). */
int pr__upstream_acquire(struct pr_pool *p, struct pr_client *c)
{
    struct pr_upstream *u;
    int rc = pr__pool_acquire(p, c, &pr__proxy_upstream_handlers, &u);
    if (rc == PR_POOL_WAIT) {
        pr__client_hold(c);
        return 0;
    }
    if (rc < 0)
        return rc;
    c->up = u;
    if (rc == PR_POOL_REUSED)
        u->h->ready(c, u);
    return 0;
}

/* The name c waited for resolved (or did not): acquire again, unless c has moved on. */
void pr__proxy_pool_resolved(struct pr_client *c, struct pr_pool *p)
{
    if (!pr__client_unhold(c) || c->state != PR_C_ROUTING || !c->x)
        return;
    int rc = pr__upstream_acquire(p, c);
    if (rc < 0)
        pr__proxy_upstream_handlers.failed(c, NULL, rc);
}
