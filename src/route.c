/* Which pod a request goes to (SPEC 3.1, 3.6, 5). Keys are tried in precedence order: a
 * sid the store knows is final (its pod down: Engine.IO's own "Session ID unknown", so the
 * client starts a fresh handshake); a room or participant the store knows goes to its pod,
 * or is moved when that pod is down; a new one is placed by the policy and created in the
 * store, where a concurrent creation by another replica wins. A signed cookie naming a live
 * pod comes next, then plain placement. The store being down never fails a request: it is
 * placed by bounded-load hashing, which every replica computes alike. */
#include "route.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

void pr_route_req_init(struct pr_route_req *r, void *arg, const struct pr_affinity *aff,
                       const char *request_id, int family, const uint8_t addr[16],
                       uint64_t now_ms)
{
    memset(r, 0, sizeof(*r));
    r->arg = arg;
    r->aff = aff;
    r->request_id = request_id;
    r->family = family;
    if (addr)
        memcpy(r->addr, addr, sizeof(r->addr));
    r->now_ms = now_ms;
}

static void count(const struct pr_route_ctx *ctx, enum pr_key_kind kind, enum pr_outcome o)
{
    PR_CNT_INC(ctx->m->assignments[kind][o]);
}

static void respond(const struct pr_route_ctx *ctx, struct pr_route_req *r,
                    struct pr_route_response *resp)
{
    r->step = PR_ROUTE_STEP_NONE;
    resp->kind = (enum pr_key_kind)r->kind;
    ctx->h->respond(r->arg, resp);
}

static void fail_no_pod(const struct pr_route_ctx *ctx, struct pr_route_req *r)
{
    PR_CNT_INC(ctx->m->proxy_errors[PR_ERR_NO_POD]);
    struct pr_route_response resp = {
        .why = PR_ROUTE_NO_POD,
        .status = 503,
        .code = "no_pod",
        .message = "no live pod can take the request",
        .extra_headers = "Retry-After: 1\r\n",
    };
    respond(ctx, r, &resp);
}

static void session_unknown(const struct pr_route_ctx *ctx, struct pr_route_req *r)
{
    static const char body[] = "{\"code\":1,\"message\":\"Session ID unknown\"}";
    struct pr_route_response resp = {
        .why = PR_ROUTE_SESSION_UNKNOWN,
        .status = 400,
        .body = body,
        .body_len = sizeof(body) - 1,
    };
    respond(ctx, r, &resp);
}

static bool store_degraded(const struct pr_route_ctx *ctx)
{
    return !ctx->store->ops->up(ctx->store);
}

/* The registry's pods as policy input: ready ones, minus the pod that just refused us, minus
 * pods a connect failed to within 2 s unless nothing else is left. Returns how many. */
static size_t candidates(const struct pr_route_ctx *ctx, const struct pr_route_req *r,
                         size_t *eligible)
{
    size_t n = pr_registry_snapshot(ctx->reg, ctx->pod_infos, PR_MAX_PODS);
    if (n > PR_MAX_PODS)
        n = PR_MAX_PODS;
    size_t ok = 0, healthy = 0;
    for (size_t i = 0; i < n; i++) {
        const struct pr_pod_info *p = &ctx->pod_infos[i];
        struct pr_policy_pod *pp = &ctx->policy_pods[i];
        pp->name = p->name;
        pp->cap_rooms = p->cap_rooms;
        pp->cap_participants = p->cap_participants;
        pp->load_rooms = p->load_rooms;
        pp->load_participants = p->load_participants;
        pp->eligible = p->state == PR_POD_READY && strcmp(p->name, r->exclude) != 0;
        ok += pp->eligible;
        healthy += pp->eligible && !p->recently_failed;
    }
    if (healthy)
        for (size_t i = 0; i < n; i++)
            if (ctx->pod_infos[i].recently_failed)
                ctx->policy_pods[i].eligible = false;
    *eligible = ok;
    return n;
}

/* A pod for a new key: least loaded or packed, or bounded hashing when the store is down
 * (degraded). 0 with *out filled, or -ENOENT. */
static int choose(const struct pr_route_ctx *ctx, const struct pr_route_req *r,
                  enum pr_key_kind kind, const char *key, size_t key_len, bool degraded,
                  struct pr_pod_info *out)
{
    size_t eligible;
    size_t n = candidates(ctx, r, &eligible);
    if (!eligible)
        return -ENOENT;
    int idx;
    if (degraded)
        idx = pr_policy_bounded_hash(ctx->policy_pods, n, key, key_len, ctx->balance_factor);
    else if (ctx->placement == PR_PLACEMENT_PACK)
        idx = pr_policy_pack(ctx->policy_pods, n, key, key_len, kind == PR_KEY_ROOM,
                             ctx->pack_utilization);
    else
        idx = pr_policy_least_loaded(ctx->policy_pods, n, key, key_len);
    if (idx < 0)
        return -ENOENT;
    *out = ctx->pod_infos[idx];
    return 0;
}

/* One registry look-up per routed request: the pod's row, if it is live. */
static bool live_info(const struct pr_route_ctx *ctx, const char *pod, struct pr_pod_info *info)
{
    return pr_registry_get(ctx->reg, pod, info) == 0 && info->state != PR_POD_DOWN;
}

/* HyperStudy's browser entry: the room page, with the room's pod named. */
static void redirect(const struct pr_route_ctx *ctx, struct pr_route_req *r)
{
    static const char body[] = "{\"redirect\":true}";
    struct pr_route_response resp = {
        .why = PR_ROUTE_REDIRECT,
        .status = 302,
        .body = body,
        .body_len = sizeof(body) - 1,
    };
    snprintf(resp.headers, sizeof(resp.headers), "Location: /experiment?roomId=%s&pod=%s\r\n",
             r->aff->room, r->pod);
    resp.extra_headers = resp.headers;
    respond(ctx, r, &resp);
}

/* Hand the pod to the caller. A room's use keeps it active (SPEC 5), except the creation
 * itself, which the store already counted. */
static void deliver(const struct pr_route_ctx *ctx, struct pr_route_req *r,
                    const struct pr_pod_info *pod)
{
    const struct pr_affinity *a = r->aff;
    r->step = PR_ROUTE_STEP_NONE;
    pr_str_copy(r->pod, sizeof(r->pod), pod->name);
    if (a->room_len && !(r->kind == PR_KEY_ROOM && (r->outcome == PR_OUTCOME_CREATED ||
                                                     r->outcome == PR_OUTCOME_DEGRADED)))
        ctx->store->ops->touch(ctx->store, PR_KEY_ROOM, a->room, a->room_len);
    if (a->browser_redirect && r->kind == PR_KEY_ROOM) {
        redirect(ctx, r);
        return;
    }
    struct pr_route_result res = {
        .pod = pod,
        .kind = (enum pr_key_kind)r->kind,
        .outcome = (enum pr_outcome)r->outcome,
        .set_cookie = r->kind == PR_KEY_NONE && a->handshake && ctx->cookies,
    };
    ctx->h->routed(r->arg, &res);
}

static void route_info(const struct pr_route_ctx *ctx, struct pr_route_req *r,
                       const struct pr_pod_info *info, enum pr_key_kind kind,
                       enum pr_outcome outcome)
{
    r->kind = (uint8_t)kind;
    r->outcome = (uint8_t)outcome;
    count(ctx, kind, outcome);
    deliver(ctx, r, info);
}

static void route_to(const struct pr_route_ctx *ctx, struct pr_route_req *r, const char *pod,
                     enum pr_key_kind kind, enum pr_outcome outcome)
{
    struct pr_pod_info info;
    if (!live_info(ctx, pod, &info)) {
        fail_no_pod(ctx, r);
        return;
    }
    route_info(ctx, r, &info, kind, outcome);
}

static const char *key_of(const struct pr_route_req *r, enum pr_key_kind kind, size_t *len)
{
    const struct pr_affinity *a = r->aff;
    switch (kind) {
    case PR_KEY_SID:
        *len = a->sid_len;
        return a->sid;
    case PR_KEY_ROOM:
        *len = a->room_len;
        return a->room;
    case PR_KEY_PARTICIPANT:
        *len = a->participant_len;
        return a->participant;
    default:
        *len = strlen(r->request_id);
        return r->request_id;
    }
}

/* A room counts distinct identities: the participant, else the Engine.IO session. */
static void join_room(const struct pr_route_ctx *ctx, const struct pr_route_req *r)
{
    const struct pr_affinity *a = r->aff;
    if (!a->room_len)
        return;
    const char *who = a->participant_len ? a->participant : NULL;
    size_t wl = a->participant_len;
    if (!who && a->sid_len) {
        who = a->sid;
        wl = a->sid_len;
    }
    if (who)
        ctx->store->ops->room_join(ctx->store, a->room, a->room_len, who, wl);
}

/* Store calls go out with the caller's arg; its answer handler brings us back to r. */
static void store_get(const struct pr_route_ctx *ctx, struct pr_route_req *r,
                      enum pr_key_kind kind, const char *key, size_t len)
{
    r->kind = (uint8_t)kind;
    r->step = kind == PR_KEY_SID ? PR_ROUTE_SID : PR_ROUTE_KEY;
    ctx->h->hold(r->arg);
    ctx->store->ops->get(ctx->store, kind, key, len, ctx->h->answer, r->arg);
}

static void store_assign(const struct pr_route_ctx *ctx, struct pr_route_req *r,
                         enum pr_outcome outcome, const char *old)
{
    size_t kl;
    const char *key = key_of(r, (enum pr_key_kind)r->kind, &kl);
    struct pr_store *s = ctx->store;
    r->outcome = (uint8_t)outcome;
    r->step = PR_ROUTE_ASSIGNED;
    ctx->h->hold(r->arg);
    if (old)
        s->ops->replace(s, (enum pr_key_kind)r->kind, key, kl, old, r->pod, ctx->h->answer,
                        r->arg);
    else
        s->ops->create(s, (enum pr_key_kind)r->kind, key, kl, r->pod, ctx->h->answer, r->arg);
}

/* The store answered a create or move: route to the winner. */
static void assigned(const struct pr_route_ctx *ctx, struct pr_route_req *r, int status,
                     const char *pod)
{
    enum pr_key_kind kind = (enum pr_key_kind)r->kind;
    enum pr_outcome outcome = (enum pr_outcome)r->outcome;
    if (status == -ENOSPC) {
        /* --max-assignments reached: place as in degraded mode, store nothing (SPEC 3.6). */
        struct pr_pod_info chosen;
        size_t kl;
        const char *key = key_of(r, kind, &kl);
        if (choose(ctx, r, kind, key, kl, true, &chosen) != 0) {
            fail_no_pod(ctx, r);
            return;
        }
        route_info(ctx, r, &chosen, kind, PR_OUTCOME_OVERFLOW);
        return;
    }
    if (status != 0) {
        /* Store unreachable: place without coordination; written back when it returns. */
        if (r->pod[0]) {
            route_to(ctx, r, r->pod, kind, PR_OUTCOME_DEGRADED);
            return;
        }
        fail_no_pod(ctx, r);
        return;
    }
    if (strcmp(pod, r->pod) != 0)
        outcome = PR_OUTCOME_HIT; /* another router won the race: use its pod */
    if (kind == PR_KEY_ROOM)
        join_room(ctx, r);
    route_to(ctx, r, pod, kind, outcome);
}

static bool loopback(int family, const uint8_t addr[16])
{
    return (family == AF_INET && addr[0] == 127) ||
           (family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)addr));
}

/* SPEC 3.6: a client address creates at most --key-rate new assignments per second
 * (--key-burst at once); loopback clients (the machine itself) are never limited. False
 * after refusing with 429. */
static bool may_create(const struct pr_route_ctx *ctx, struct pr_route_req *r)
{
    if (!ctx->rl || r->family == 0 || loopback(r->family, r->addr))
        return true;
    if (pr_ratelimit_take(ctx->rl, r->family, r->addr, r->now_ms))
        return true;
    PR_CNT_INC(ctx->m->rate_limited);
    struct pr_route_response resp = {
        .why = PR_ROUTE_RATE_LIMITED,
        .status = 429,
        .code = "rate_limited",
        .message = "too many new rooms or participants from this client",
        .extra_headers = "Retry-After: 1\r\n",
        .close_if_incomplete = true,
    };
    respond(ctx, r, &resp);
    return false;
}

/* The store answered a room or participant look-up. */
static void key_looked_up(const struct pr_route_ctx *ctx, struct pr_route_req *r, int status,
                          const char *pod)
{
    enum pr_key_kind kind = (enum pr_key_kind)r->kind;
    size_t kl;
    const char *key = key_of(r, kind, &kl);
    struct pr_pod_info info;
    if (status == 0 && live_info(ctx, pod, &info)) {
        if (kind == PR_KEY_ROOM)
            join_room(ctx, r);
        route_info(ctx, r, &info, kind, PR_OUTCOME_HIT);
        return;
    }
    bool degraded = status != 0 && status != -ENOENT;
    struct pr_pod_info chosen;
    if (choose(ctx, r, kind, key, kl, degraded || store_degraded(ctx), &chosen) != 0) {
        fail_no_pod(ctx, r);
        return;
    }
    pr_str_copy(r->pod, sizeof(r->pod), chosen.name);
    if (degraded) {
        store_assign(ctx, r, PR_OUTCOME_DEGRADED, NULL);
    } else if (status == 0) {
        /* Its pod is down or gone: move it (only if nobody moved it first). */
        char old[PR_POD_NAME_MAX + 1];
        pr_str_copy(old, sizeof(old), pod);
        store_assign(ctx, r, PR_OUTCOME_REASSIGNED, old);
    } else {
        if (!may_create(ctx, r))
            return;
        store_assign(ctx, r, PR_OUTCOME_CREATED, NULL);
    }
}

static void decide_from(const struct pr_route_ctx *ctx, struct pr_route_req *r,
                        enum pr_key_kind from);

static void sid_looked_up(const struct pr_route_ctx *ctx, struct pr_route_req *r, int status,
                          const char *pod)
{
    if (status != 0) {
        decide_from(ctx, r, PR_KEY_ROOM);
        return;
    }
    struct pr_pod_info info;
    if (live_info(ctx, pod, &info))
        route_info(ctx, r, &info, PR_KEY_SID, PR_OUTCOME_HIT);
    else
        session_unknown(ctx, r);
}

/* A verified cookie naming a live pod (other than one that just refused us). */
static bool cookie_pod(const struct pr_route_ctx *ctx, const struct pr_route_req *r,
                       struct pr_pod_info *info)
{
    const struct pr_affinity *a = r->aff;
    return a->cookie_pod_len && pr_registry_get(ctx->reg, a->cookie_pod, info) == 0 &&
           info->state != PR_POD_DOWN && strcmp(info->name, r->exclude) != 0;
}

static void decide_from(const struct pr_route_ctx *ctx, struct pr_route_req *r,
                        enum pr_key_kind from)
{
    const struct pr_affinity *a = r->aff;
    if (from <= PR_KEY_SID && a->sid_len) {
        store_get(ctx, r, PR_KEY_SID, a->sid, a->sid_len);
        return;
    }
    if (from <= PR_KEY_ROOM && a->room_len) {
        store_get(ctx, r, PR_KEY_ROOM, a->room, a->room_len);
        return;
    }
    if (from <= PR_KEY_PARTICIPANT && a->participant_len) {
        store_get(ctx, r, PR_KEY_PARTICIPANT, a->participant, a->participant_len);
        return;
    }
    struct pr_pod_info chosen;
    if (from <= PR_KEY_COOKIE && cookie_pod(ctx, r, &chosen)) {
        route_info(ctx, r, &chosen, PR_KEY_COOKIE, PR_OUTCOME_HIT);
        return;
    }
    size_t kl;
    const char *key = key_of(r, PR_KEY_NONE, &kl);
    if (choose(ctx, r, PR_KEY_NONE, key, kl, store_degraded(ctx), &chosen) != 0) {
        fail_no_pod(ctx, r);
        return;
    }
    route_info(ctx, r, &chosen, PR_KEY_NONE, PR_OUTCOME_CREATED);
}

void pr_route_start(const struct pr_route_ctx *ctx, struct pr_route_req *r)
{
    decide_from(ctx, r, PR_KEY_SID);
}

void pr_route_resume(const struct pr_route_ctx *ctx, struct pr_route_req *r, int status,
                     const char *pod)
{
    enum pr_route_step step = (enum pr_route_step)r->step;
    r->step = PR_ROUTE_STEP_NONE;
    switch (step) {
    case PR_ROUTE_SID:
        sid_looked_up(ctx, r, status, pod);
        break;
    case PR_ROUTE_KEY:
        key_looked_up(ctx, r, status, pod);
        break;
    case PR_ROUTE_ASSIGNED:
        assigned(ctx, r, status, pod);
        break;
    default:
        break; /* no store call of ours is pending: not our answer */
    }
}

bool pr_route_movable(const struct pr_route_req *r)
{
    return !r->aff->sid_len &&
           (r->kind == PR_KEY_NONE || r->kind == PR_KEY_COOKIE ||
            r->outcome == PR_OUTCOME_CREATED || r->outcome == PR_OUTCOME_REASSIGNED);
}

bool pr_route_pod_lost(const struct pr_route_ctx *ctx, const struct pr_route_req *r)
{
    return !r->aff->sid_len && r->pod[0] && !pr_registry_is_live(ctx->reg, r->pod);
}

int pr_route_retry(const struct pr_route_ctx *ctx, struct pr_route_req *r)
{
    pr_str_copy(r->exclude, sizeof(r->exclude), r->pod);
    enum pr_key_kind kind = (enum pr_key_kind)r->kind;
    size_t kl;
    const char *key = key_of(r, kind, &kl);
    struct pr_pod_info chosen;
    if (choose(ctx, r, kind, key, kl, store_degraded(ctx), &chosen) != 0)
        return -ENOENT;
    pr_str_copy(r->pod, sizeof(r->pod), chosen.name);
    if (kind == PR_KEY_ROOM || kind == PR_KEY_PARTICIPANT) {
        store_assign(ctx, r, PR_OUTCOME_REASSIGNED, r->exclude);
    } else {
        r->kind = PR_KEY_NONE;
        deliver(ctx, r, &chosen);
    }
    return 0;
}

bool pr_route_pin_covered(const struct pr_route_ctx *ctx, const struct pr_route_req *r)
{
    return (r->kind == PR_KEY_ROOM || r->kind == PR_KEY_PARTICIPANT) &&
           (r->outcome == PR_OUTCOME_HIT || r->outcome == PR_OUTCOME_CREATED ||
            r->outcome == PR_OUTCOME_REASSIGNED) &&
           !store_degraded(ctx);
}

void pr_route_pin_sid(const struct pr_route_ctx *ctx, const struct pr_route_req *r,
                      const char *sid, size_t sid_len, pr_store_cb cb, void *arg)
{
    struct pr_store *s = ctx->store;
    const struct pr_affinity *a = r->aff;
    s->ops->create(s, PR_KEY_SID, sid, sid_len, r->pod, cb, arg);
    count(ctx, PR_KEY_SID, PR_OUTCOME_CREATED);
    if (a->room_len && !a->participant_len)
        s->ops->room_join(s, a->room, a->room_len, sid, sid_len);
}
