/* Routing (SPEC 3.1, 3.6, 5): which pod one request goes to. The affinity keys in precedence
 * order (sid, room, participant, cookie, none), the store's assignments, the policy for new
 * ones, the --key-rate limiter, --max-assignments and degraded mode. No sockets and no
 * globals: the caller passes its dependencies in a context and hears the outcome through a
 * handler table (proxy.c connects to the pod or sends the router's own answer). */
#ifndef PODROUTER_ROUTE_H
#define PODROUTER_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/affinity.h"
#include "podrouter/common.h"
#include "podrouter/config.h"
#include "podrouter/metrics.h"
#include "podrouter/policy.h"
#include "podrouter/ratelimit.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"

/* The pod the request goes to. pod is borrowed for the duration of the call. */
struct pr_route_result {
    const struct pr_pod_info *pod;
    enum pr_key_kind kind;
    enum pr_outcome outcome;
    bool set_cookie; /* a handshake placed without any key: its response sets the cookie */
};

enum pr_route_response_kind {
    PR_ROUTE_NO_POD = 0,      /* 503: no live pod can take the request */
    PR_ROUTE_RATE_LIMITED,    /* 429: --key-rate (SPEC 3.6) */
    PR_ROUTE_SESSION_UNKNOWN, /* 400: the sid's pod is down, as Engine.IO itself answers */
    PR_ROUTE_REDIRECT,        /* 302: a browser asked for a room page; Location names its pod */
};

/* The router answers the client itself instead of proxying: its error JSON (code, message),
 * or body (JSON) as it is when body is not NULL. Valid for the duration of the call. */
struct pr_route_response {
    enum pr_route_response_kind why;
    enum pr_key_kind kind; /* the key source being decided */
    int status;
    const char *code, *message;
    const char *extra_headers; /* "Name: value\r\n" lines or NULL */
    const char *body;
    size_t body_len;
    bool close_if_incomplete; /* close the connection rather than read the rest of the body */
    char headers[320];        /* storage for extra_headers when they are built */
};

/* How the module reaches up. arg is pr_route_req.arg. Store answers may come after the
 * issuing call returned (Redis) or inside it (memory store, cache hits); the caller may be
 * gone by then, and its pr_route_req with it. So the module never hands the request to the
 * store: it calls hold(arg) and passes answer as the store callback with arg, and answer
 * (the caller's) drops the reply when arg is gone, or else calls pr_route_resume on arg's
 * request. Exactly one of routed/respond is called per pr_route_start unless the caller left
 * first. */
struct pr_route_handlers {
    void (*hold)(void *arg);
    pr_store_cb answer;
    void (*routed)(void *arg, const struct pr_route_result *res);
    void (*respond)(void *arg, const struct pr_route_response *resp);
};

/* Dependencies of one event loop. The caller may build it on the stack for each call into
 * this module: nothing keeps a pointer to it. */
struct pr_route_ctx {
    const struct pr_route_handlers *h;
    struct pr_store *store;
    struct pr_registry *reg;
    struct pr_ratelimit *rl;    /* NULL: --key-rate 0 */
    struct pr_metrics *m;       /* assignments, proxy_errors[PR_ERR_NO_POD], rate_limited */
    enum pr_placement placement;
    double pack_utilization;    /* --pack-utilization */
    double balance_factor;      /* --balance-factor (degraded placement) */
    bool cookies;               /* --cookie-name is set */
    struct pr_policy_pod *policy_pods; /* scratch, PR_MAX_PODS entries each */
    struct pr_pod_info *pod_infos;
};

enum pr_route_step { PR_ROUTE_STEP_NONE = 0, PR_ROUTE_SID, PR_ROUTE_KEY, PR_ROUTE_ASSIGNED };

/* One request's routing state, owned by the caller (it lives as long as the request). The
 * caller fills the first block with pr_route_req_init and reads kind/outcome/pod. */
struct pr_route_req {
    void *arg;
    const struct pr_affinity *aff;
    const char *request_id; /* key of a request without one (placement tie-break) */
    int family;             /* client address (SPEC 3.6): AF_INET/AF_INET6, 0 unknown */
    uint8_t addr[16];
    uint64_t now_ms;        /* for the rate limiter */
    /* state */
    uint8_t kind, outcome, step;
    char pod[PR_POD_NAME_MAX + 1];     /* the pod chosen for a new assignment, then routed to */
    char exclude[PR_POD_NAME_MAX + 1]; /* a pod that refused the connection ("" none) */
};

void pr_route_req_init(struct pr_route_req *r, void *arg, const struct pr_affinity *aff,
                       const char *request_id, int family, const uint8_t addr[16],
                       uint64_t now_ms);

/* Decide r's pod: calls routed or respond now, or after the store answered. */
void pr_route_start(const struct pr_route_ctx *ctx, struct pr_route_req *r);

/* The store answered (status and pod as pr_store_cb): go on with r. Only the caller's
 * answer handler calls this, once it knows r is still there. */
void pr_route_resume(const struct pr_route_ctx *ctx, struct pr_route_req *r, int status,
                     const char *pod);

/* May r leave the pod it was routed to when that pod refuses the connection? Requests with
 * a sid, and keys found in the store, never move because of one failed connect. */
bool pr_route_movable(const struct pr_route_req *r);

/* Is the pod r was routed to down now (e.g. its failed connects just marked it down,
 * --pod-fall)? Then r may leave it like a movable request, unless r carries a sid (SPEC
 * 3.3: the client re-handshakes). */
bool pr_route_pod_lost(const struct pr_route_ctx *ctx, const struct pr_route_req *r);

/* The pod r was routed to (r->pod) refused the connection: choose another one, moving a room
 * or participant assignment in the store. 0 when routed/respond will be called, -ENOENT
 * when no other pod can take it (then nothing is called). */
int pr_route_retry(const struct pr_route_ctx *ctx, struct pr_route_req *r);

/* Does the key that routed r lead every later request of its session to r's pod while the
 * sid's pin is still on its way? A room or participant the store holds (found or created
 * there, store up) does: the client repeats its query on every request of the session
 * (ENGINEIO.md), and a replica that does not know the sid yet falls through to that key. */
bool pr_route_pin_covered(const struct pr_route_ctx *ctx, const struct pr_route_req *r);

/* The handshake r was routed with answered with a new Engine.IO sid: pin the sid to r's pod
 * (cb gets the store's answer for arg, exactly once, possibly before the call returns; the
 * caller holds arg itself) and count the session into r's room unless a participant id
 * already does. */
void pr_route_pin_sid(const struct pr_route_ctx *ctx, const struct pr_route_req *r,
                      const char *sid, size_t sid_len, pr_store_cb cb, void *arg);

#endif
