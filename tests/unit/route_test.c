/* Table-driven tests of the routing decision (route.h, SPEC 3.1, 3.6, 5): the request's keys
 * come from real request heads (pr_affinity_extract), the store is either the memory store
 * or a scripted fake that answers at once or later with any status, and the caller is a
 * fake that keeps its request in heap memory it frees when it "leaves" (run under ASan). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "podrouter/affinity.h"
#include "podrouter/config.h"
#include "podrouter/policy.h"
#include "podrouter/ratelimit.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"
#include "../../src/route.h"

#define NPODS 3
#define LATER 1    /* a scripted answer kept until fake_flush() */
#define OURS NULL  /* a create/replace answer naming the pod we asked for */
#define END {1, NULL, 0} /* end of a script: any further store call fails the test */

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
static const struct pr_affinity_config aff_cfg = {
    .room_param = "roomId",
    .participant_param = "participantId",
    .cookie_name = "pr_affinity",
    .secret = secret,
    .secret_len = 32,
};

/* ---- scripted fake store ------------------------------------------------------------ */

struct answer {
    int status;
    const char *pod; /* OURS: the pod the call asked for */
    int later;
};

struct pending {
    pr_store_cb cb;
    void *arg;
    int status;
    char pod[PR_POD_NAME_MAX + 1];
    bool has_pod;
};

struct fake_store {
    struct pr_store base;
    bool up;
    const struct answer *script;
    size_t next;
    char calls[512];   /* "get room r1; create room r1 backend-1; ..." */
    char touched[256]; /* "room r1; ..." */
    char joined[256];  /* "r1 <- u1; ..." */
    struct pending pending[8];
    size_t npending;
};

static struct fake_store fake;

static void fake_answer(const char *op, enum pr_key_kind kind, const char *key, size_t len,
                        const char *pod, const char *expect, pr_store_cb cb, void *arg)
{
    char line[300];
    snprintf(line, sizeof(line), "%s %s %.*s%s%s%s%s; ", op, pr_key_kind_name(kind), (int)len,
             key, expect ? " " : "", expect ? expect : "", pod ? " " : "", pod ? pod : "");
    strncat(fake.calls, line, sizeof(fake.calls) - strlen(fake.calls) - 1);
    cr_assert(fake.script && fake.script[fake.next].status != 1, "unexpected store call: %s",
              line);
    const struct answer *a = &fake.script[fake.next++];
    const char *ap = a->status == 0 ? (a->pod ? a->pod : pod) : NULL;
    if (!a->later) {
        cb(arg, a->status, ap);
        return;
    }
    cr_assert_lt(fake.npending, 8);
    struct pending *p = &fake.pending[fake.npending++];
    *p = (struct pending){.cb = cb, .arg = arg, .status = a->status, .has_pod = ap != NULL};
    snprintf(p->pod, sizeof(p->pod), "%s", ap ? ap : "");
}

static void f_get(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                  pr_store_cb cb, void *arg)
{
    (void)s;
    fake_answer("get", kind, key, len, NULL, NULL, cb, arg);
}

static void f_create(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                     const char *pod, pr_store_cb cb, void *arg)
{
    (void)s;
    fake_answer("create", kind, key, len, pod, NULL, cb, arg);
}

static void f_replace(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len,
                      const char *expect, const char *pod, pr_store_cb cb, void *arg)
{
    (void)s;
    fake_answer("replace", kind, key, len, pod, expect, cb, arg);
}

static void f_room_join(struct pr_store *s, const char *room, size_t len, const char *who,
                        size_t who_len)
{
    (void)s;
    char line[300];
    snprintf(line, sizeof(line), "%.*s <- %.*s; ", (int)len, room, (int)who_len, who);
    strncat(fake.joined, line, sizeof(fake.joined) - strlen(fake.joined) - 1);
}

static void f_touch(struct pr_store *s, enum pr_key_kind kind, const char *key, size_t len)
{
    (void)s;
    char line[300];
    snprintf(line, sizeof(line), "%s %.*s; ", pr_key_kind_name(kind), (int)len, key);
    strncat(fake.touched, line, sizeof(fake.touched) - strlen(fake.touched) - 1);
}

static bool f_up(struct pr_store *s)
{
    (void)s;
    return fake.up;
}

/* Only what routing may use: any other op is NULL and would crash the test. */
static const struct pr_store_ops fake_ops = {
    .name = "fake",
    .get = f_get,
    .create = f_create,
    .replace = f_replace,
    .room_join = f_room_join,
    .touch = f_touch,
    .up = f_up,
};

/* Deliver the answers kept so far, oldest first (calls they cause wait for the next). */
static void fake_flush(void)
{
    size_t n = fake.npending;
    struct pending now[8];
    memcpy(now, fake.pending, sizeof(now));
    memmove(fake.pending, fake.pending + n, (8 - n) * sizeof(now[0]));
    fake.npending = 0;
    for (size_t i = 0; i < n; i++)
        now[i].cb(now[i].arg, now[i].status, now[i].has_pod ? now[i].pod : NULL);
}

/* ---- fake caller: its request lives in heap memory freed when it leaves --------------- */

struct exchange {
    struct pr_route_req r;
    struct pr_affinity aff;
    char request_id[32];
};

struct caller {
    struct exchange *x;
    int refs, answers_dropped;
    bool gone;
    int routed, responded;
    struct pr_route_result res;
    char pod[PR_POD_NAME_MAX + 1];
    struct pr_route_response ref;
    char location[320];
};

static struct pr_route_ctx ctx;

static void t_hold(void *arg)
{
    ((struct caller *)arg)->refs++;
}

static void t_answer(void *arg, int status, const char *pod)
{
    struct caller *c = arg;
    cr_assert_gt(c->refs, 0, "an answer came without a hold");
    c->refs--;
    if (c->gone) {
        c->answers_dropped++;
        return;
    }
    pr_route_resume(&ctx, &c->x->r, status, pod);
}

static void t_routed(void *arg, const struct pr_route_result *res)
{
    struct caller *c = arg;
    cr_assert(!c->gone, "routed called for a caller that left");
    c->routed++;
    c->res = *res;
    snprintf(c->pod, sizeof(c->pod), "%s", res->pod->name);
    c->res.pod = NULL; /* borrowed */
}

static void t_respond(void *arg, const struct pr_route_response *resp)
{
    struct caller *c = arg;
    cr_assert(!c->gone, "respond called for a caller that left");
    c->responded++;
    c->ref = *resp;
    snprintf(c->location, sizeof(c->location), "%s",
             resp->extra_headers ? resp->extra_headers : "");
    c->ref.extra_headers = NULL; /* borrowed */
}

static const struct pr_route_handlers handlers = {
    .hold = t_hold,
    .answer = t_answer,
    .routed = t_routed,
    .respond = t_respond,
};

/* ---- world: registry pods backend-0..2, metrics, store ----------------------------- */

static struct pr_registry *reg;
static struct pr_metrics *metrics;
static struct pr_store *mem;
static struct pr_config cfg;

static const char *const pod_names[NPODS] = {"backend-0", "backend-1", "backend-2"};

/* states: one letter per pod: R ready, D draining, X down, F ready but a connect just
 * failed, - absent. Loads: backend-1 least loaded unless loads says otherwise. */
static void world(const char *states, const uint32_t loads[NPODS])
{
    static const uint32_t dflt[NPODS] = {5, 0, 5};
    reg = pr_registry_create(15000);
    cr_assert_not_null(reg);
    for (int i = 0; i < NPODS; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.0.0.%d:3000", i + 1);
        if (states[i] == 'X') {
            struct pr_pod_remote rr = {pod_names[i], addr, NULL, 20, 80, false,
                                       pr_now_ms() - 20000}; /* older than pod_ttl: down */
            cr_assert_eq(pr_registry_merge(reg, &rr, NULL), 0);
        } else if (states[i] != '-') {
            cr_assert_eq(pr_registry_put(reg, pod_names[i], addr, 20, 80, NULL, NULL), 0);
        }
        if (states[i] == 'D')
            cr_assert_eq(pr_registry_drain(reg, pod_names[i]), 0);
        if (states[i] == 'F')
            pr_registry_record_failure(reg, pod_names[i]);
        pr_registry_set_load(reg, pod_names[i], (loads ? loads : dflt)[i], 0);
    }
}

static void ctx_init(struct pr_store *store)
{
    metrics = calloc(1, sizeof(*metrics));
    cr_assert_not_null(metrics);
    ctx = (struct pr_route_ctx){
        .h = &handlers,
        .store = store,
        .reg = reg,
        .m = metrics,
        .placement = PR_PLACEMENT_LEAST_LOADED,
        .pack_utilization = 0.75,
        .balance_factor = 1.25,
        .cookies = true,
        .policy_pods = calloc(PR_MAX_PODS, sizeof(struct pr_policy_pod)),
        .pod_infos = calloc(PR_MAX_PODS, sizeof(struct pr_pod_info)),
    };
    cr_assert(ctx.policy_pods && ctx.pod_infos);
}

static void fake_world(const char *states, const struct answer *script)
{
    world(states, NULL);
    memset(&fake, 0, sizeof(fake));
    fake.base.ops = &fake_ops;
    fake.up = true;
    fake.script = script;
    ctx_init(&fake.base);
}

static void mem_world(const char *states, uint64_t max_assignments)
{
    world(states, NULL);
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.store, sizeof(cfg.store), "memory");
    cfg.room_ttl_ms = cfg.participant_ttl_ms = 3600 * 1000;
    cfg.sid_ttl_ms = 120000;
    cfg.pod_ttl_ms = 15000;
    cfg.max_assignments = max_assignments;
    mem = pr_store_memory_open(&cfg, reg);
    cr_assert_not_null(mem);
    ctx_init(mem);
}

static void teardown(void)
{
    if (mem)
        mem->ops->close(mem);
    mem = NULL;
    pr_ratelimit_destroy(ctx.rl);
    free(ctx.policy_pods);
    free(ctx.pod_infos);
    memset(&ctx, 0, sizeof(ctx));
    free(metrics);
    metrics = NULL;
    pr_registry_destroy(reg);
    reg = NULL;
}

TestSuite(route, .fini = teardown);

/* ---- requests ------------------------------------------------------------------------ */

/* A request for url with optional extra header lines ("Name: value"; "COOKIE <pod>" is a
 * cookie signed for pod, "BADCOOKIE <pod>" one with a broken signature). */
static void request(struct caller *c, const char *url, const char *const *lines, int family,
                    const char *ip4)
{
    static char cookie[4][300];
    struct pr_header hs[4];
    size_t n = 0;
    for (; lines && lines[n] && n < 4; n++) {
        const char *l = lines[n];
        if (strncmp(l, "COOKIE ", 7) == 0 || strncmp(l, "BADCOOKIE ", 10) == 0) {
            bool bad = l[0] == 'B';
            char v[200];
            cr_assert_gt(pr_cookie_sign(secret, 32, l + (bad ? 10 : 7), v, sizeof(v)), 0);
            if (bad)
                v[strlen(v) - 1] = v[strlen(v) - 1] == '0' ? '1' : '0';
            snprintf(cookie[n], sizeof(cookie[n]), "Cookie: pr_affinity=%s", v);
            l = cookie[n];
        }
        const char *colon = strchr(l, ':');
        hs[n] = (struct pr_header){l, colon + 2, (uint32_t)(colon - l), (uint32_t)strlen(colon + 2)};
    }
    struct pr_request_head h = {"GET", 3, url, strlen(url), hs, n};
    memset(c, 0, sizeof(*c));
    c->x = calloc(1, sizeof(*c->x));
    cr_assert_not_null(c->x);
    snprintf(c->x->request_id, sizeof(c->x->request_id), "req-%p", (void *)c);
    const char *bad = NULL;
    cr_assert_eq(pr_affinity_extract(&aff_cfg, &h, &c->x->aff, &bad), 0, "%s", url);
    uint8_t addr[16] = {0};
    if (ip4)
        sscanf(ip4, "%hhu.%hhu.%hhu.%hhu", &addr[0], &addr[1], &addr[2], &addr[3]);
    pr_route_req_init(&c->x->r, c, &c->x->aff, c->x->request_id, family, addr, 1000);
}

static void leave(struct caller *c)
{
    c->gone = true;
    free(c->x);
    c->x = NULL;
}

static void route(struct caller *c, const char *url, const char *const *lines)
{
    request(c, url, lines, AF_INET, "10.1.2.3");
    pr_route_start(&ctx, &c->x->r);
}

/* ---- the table ----------------------------------------------------------------------- */

#define POLL "/socket.io/?EIO=4&transport=polling"
#define NOLOAD NULL

struct row {
    const char *name;
    const char *states; /* see world() */
    const uint32_t *loads;
    const char *url;
    const char *lines[3];
    bool store_down;
    struct answer script[4];
    int status; /* 0: routed; else the refusal's */
    const char *pod;
    enum pr_key_kind kind;
    enum pr_outcome outcome;
    const char *calls, *touched, *joined;
    bool set_cookie;
};

/* r1's rendezvous order is backend-2, backend-0, backend-1: with these loads bounded-load
 * hashing (degraded) picks backend-2 where least-loaded picks backend-1. */
static const uint32_t tight[NPODS] = {1, 0, 1};

static const struct row rows[] = {
    {"sid hit on a live pod", "RRR", NOLOAD, POLL "&sid=s1", {NULL}, false,
     {{0, "backend-2", 0}, END}, 0, "backend-2", PR_KEY_SID, PR_OUTCOME_HIT, "get sid s1; ", "",
     "", false},
    {"sid pinned to a dead pod: Session ID unknown", "RRX", NOLOAD, POLL "&sid=s1", {NULL}, false,
     {{0, "backend-2", 0}, END}, 400, NULL, PR_KEY_SID, 0, "get sid s1; ", "", "", false},
    {"sid pinned to a forgotten pod: Session ID unknown", "RR-", NOLOAD, POLL "&sid=s1&roomId=r1",
     {NULL}, false, {{0, "backend-2", 0}, END}, 400, NULL, PR_KEY_SID, 0, "get sid s1; ", "", "",
     false},
    {"unknown sid falls through to the room", "RRR", NOLOAD, POLL "&sid=s1&roomId=r1", {NULL},
     false, {{-ENOENT, NULL, 0}, {0, "backend-0", 0}, END}, 0, "backend-0", PR_KEY_ROOM,
     PR_OUTCOME_HIT, "get sid s1; get room r1; ", "room r1; ", "r1 <- s1; ", false},
    {"sid look-up failing falls through to the room", "RRR", NOLOAD, POLL "&sid=s1&roomId=r1",
     {NULL}, false, {{-ETIMEDOUT, NULL, 0}, {0, "backend-0", 0}, END}, 0, "backend-0",
     PR_KEY_ROOM, PR_OUTCOME_HIT, "get sid s1; get room r1; ", "room r1; ", "r1 <- s1; ",
     false},
    {"room hit", "RRR", NOLOAD, POLL "&roomId=r1", {NULL}, false, {{0, "backend-0", 0}, END}, 0,
     "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT, "get room r1; ", "room r1; ", "", false},
    {"room hit counts the participant", "RRR", NOLOAD, POLL "&roomId=r1&participantId=u1", {NULL},
     false, {{0, "backend-0", 0}, END}, 0, "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT,
     "get room r1; ", "room r1; ", "r1 <- u1; ", false},
    {"room hit on a draining pod stays", "RDR", NOLOAD, POLL "&roomId=r1", {NULL}, false,
     {{0, "backend-1", 0}, END}, 0, "backend-1", PR_KEY_ROOM, PR_OUTCOME_HIT, "get room r1; ",
     "room r1; ", "", false},
    {"room miss: created on the least-loaded pod", "RRR", NOLOAD, POLL "&roomId=r1",
     {"X-Participant-Id: u1"}, false, {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, 0, "backend-1",
     PR_KEY_ROOM, PR_OUTCOME_CREATED, "get room r1; create room r1 backend-1; ", "", "r1 <- u1; ",
     false},
    {"room miss avoids draining pods", "RDR", NOLOAD, POLL "&roomId=r1", {NULL}, false,
     {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, 0, "backend-2", PR_KEY_ROOM, PR_OUTCOME_CREATED,
     "get room r1; create room r1 backend-2; ", "", "", false},
    {"room miss avoids a pod a connect just failed to", "RFR", NOLOAD, POLL "&roomId=r1", {NULL},
     false, {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, 0, "backend-2", PR_KEY_ROOM,
     PR_OUTCOME_CREATED, "get room r1; create room r1 backend-2; ", "", "", false},
    {"every pod failed lately: still placed", "FFF", NOLOAD, POLL "&roomId=r1", {NULL}, false,
     {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, 0, "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED,
     "get room r1; create room r1 backend-1; ", "", "", false},
    {"create race lost: the winner's pod", "RRR", NOLOAD, POLL "&roomId=r1", {NULL}, false,
     {{-ENOENT, NULL, 0}, {0, "backend-2", 0}, END}, 0, "backend-2", PR_KEY_ROOM, PR_OUTCOME_HIT,
     "get room r1; create room r1 backend-1; ", "room r1; ", "", false},
    {"create race lost to a pod that is down", "RRX", NOLOAD, "/api/x?roomId=r1", {NULL}, false,
     {{-ENOENT, NULL, 0}, {0, "backend-2", 0}, END}, 503, NULL, PR_KEY_ROOM, 0,
     "get room r1; create room r1 backend-1; ", "", "", false},
    {"room on a dead pod is moved", "RRX", NOLOAD, POLL "&roomId=r1", {NULL}, false,
     {{0, "backend-2", 0}, {0, OURS, 0}, END}, 0, "backend-1", PR_KEY_ROOM,
     PR_OUTCOME_REASSIGNED, "get room r1; replace room r1 backend-2 backend-1; ", "room r1; ", "",
     false},
    {"move race lost: the mover's pod", "RRX", NOLOAD, POLL "&roomId=r1", {NULL}, false,
     {{0, "backend-2", 0}, {0, "backend-0", 0}, END}, 0, "backend-0", PR_KEY_ROOM,
     PR_OUTCOME_HIT, "get room r1; replace room r1 backend-2 backend-1; ", "room r1; ", "",
     false},
    {"store down: degraded placement, cached", "RRR", tight, POLL "&roomId=r1", {NULL}, false,
     {{-ENOTCONN, NULL, 0}, {-ENOTCONN, NULL, 0}, END}, 0, "backend-2", PR_KEY_ROOM,
     PR_OUTCOME_DEGRADED, "get room r1; create room r1 backend-2; ", "", "", false},
    {"store timing out: degraded placement, stored", "RRR", tight, POLL "&roomId=r1", {NULL}, false,
     {{-ETIMEDOUT, NULL, 0}, {0, OURS, 0}, END}, 0, "backend-2", PR_KEY_ROOM, PR_OUTCOME_DEGRADED,
     "get room r1; create room r1 backend-2; ", "", "", false},
    {"store down, miss from its cache: hashed placement", "RRR", tight, POLL "&roomId=r1", {NULL},
     true, {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, 0, "backend-2", PR_KEY_ROOM,
     PR_OUTCOME_CREATED, "get room r1; create room r1 backend-2; ", "", "", false},
    {"store down, no key: hashed placement", "RRR", tight, "/api/x", {NULL}, true, {END}, 0, NULL,
     PR_KEY_NONE, PR_OUTCOME_CREATED, "", "", "", false},
    {"--max-assignments: routed, not stored", "RRR", tight, POLL "&roomId=r1", {NULL}, false,
     {{-ENOENT, NULL, 0}, {-ENOSPC, NULL, 0}, END}, 0, "backend-2", PR_KEY_ROOM,
     PR_OUTCOME_OVERFLOW, "get room r1; create room r1 backend-1; ", "room r1; ", "",
     false},
    {"participant hit", "RRR", NOLOAD, "/api/x?participantId=u1", {NULL}, false,
     {{0, "backend-0", 0}, END}, 0, "backend-0", PR_KEY_PARTICIPANT, PR_OUTCOME_HIT,
     "get participant u1; ", "", "", false},
    {"participant header miss: created", "RRR", NOLOAD, "/api/x", {"X-Participant-Id: u2"}, false,
     {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, 0, "backend-1", PR_KEY_PARTICIPANT,
     PR_OUTCOME_CREATED, "get participant u2; create participant u2 backend-1; ", "", "",
     false},
    {"cookie naming a live pod", "RRR", NOLOAD, POLL, {"COOKIE backend-2"}, false, {END}, 0,
     "backend-2", PR_KEY_COOKIE, PR_OUTCOME_HIT, "", "", "", false},
    {"cookie naming a draining pod", "RRD", NOLOAD, POLL, {"COOKIE backend-2"}, false, {END}, 0,
     "backend-2", PR_KEY_COOKIE, PR_OUTCOME_HIT, "", "", "", false},
    {"cookie naming a dead pod: placed anew", "RRX", NOLOAD, POLL, {"COOKIE backend-2"}, false,
     {END}, 0, "backend-1", PR_KEY_NONE, PR_OUTCOME_CREATED, "", "", "", true},
    {"cookie with a bad signature: placed anew", "RRR", NOLOAD, POLL, {"BADCOOKIE backend-2"},
     false, {END}, 0, "backend-1", PR_KEY_NONE, PR_OUTCOME_CREATED, "", "", "", true},
    {"room before cookie", "RRR", NOLOAD, POLL "&roomId=r1", {"COOKIE backend-2"}, false,
     {{0, "backend-0", 0}, END}, 0, "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT, "get room r1; ",
     "room r1; ", "", false},
    {"no key: least-loaded pod", "RRR", NOLOAD, "/api/x", {NULL}, false, {END}, 0, "backend-1",
     PR_KEY_NONE, PR_OUTCOME_CREATED, "", "", "", false},
    {"no key, only draining pods: 503", "DDD", NOLOAD, "/api/x", {NULL}, false, {END}, 503, NULL,
     PR_KEY_SID, 0, "", "", "", false},
    {"no pod at all: 503", "---", NOLOAD, POLL, {NULL}, false, {END}, 503, NULL, PR_KEY_SID, 0, "",
     "", "", false},
    {"every pod down, room miss: 503", "XXX", NOLOAD, POLL "&roomId=r1", {NULL}, false,
     {{-ENOENT, NULL, 0}, END}, 503, NULL, PR_KEY_ROOM, 0, "get room r1; ", "", "", false},
    {"browser asking for a room page: redirect", "RRR", NOLOAD, "/experiment/room_r1",
     {"Accept: text/html"}, false, {{0, "backend-0", 0}, END}, 302, "backend-0", PR_KEY_ROOM,
     PR_OUTCOME_HIT, "get room room_r1; ", "room room_r1; ", "", false},
    {"browser page of a new room: redirect", "RRR", NOLOAD, "/experiment/room_r2/",
     {"Accept: text/html"}, false, {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, 302, "backend-1",
     PR_KEY_ROOM, PR_OUTCOME_CREATED, "get room room_r2; create room room_r2 backend-1; ", "",
     "", false},
    {"room page without Accept: text/html is proxied", "RRR", NOLOAD, "/experiment/room_r1",
     {NULL}, false, {{0, "backend-0", 0}, END}, 0, "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT,
     "get room room_r1; ", "room room_r1; ", "", false},
};

static void check_row(const struct row *w, const struct caller *c)
{
    if (w->status == 0) {
        cr_assert_eq(c->routed, 1, "%s: routed %d, responded %d (status %d)", w->name, c->routed,
                     c->responded, c->ref.status);
        cr_assert_eq(c->responded, 0, "%s", w->name);
        if (w->pod)
            cr_expect_str_eq(c->pod, w->pod, "%s", w->name);
        cr_expect_eq(c->res.kind, w->kind, "%s: kind %d", w->name, c->res.kind);
        cr_expect_eq(c->res.outcome, w->outcome, "%s: outcome %d", w->name, c->res.outcome);
        cr_expect_eq(c->res.set_cookie, w->set_cookie, "%s: set_cookie", w->name);
        cr_expect_eq(metrics->assignments[w->kind][w->outcome], 1, "%s: counter", w->name);
        cr_expect_str_eq(c->x->r.pod, c->pod, "%s: r->pod", w->name);
    } else {
        cr_assert_eq(c->responded, 1, "%s: routed %d to %s, responded %d", w->name, c->routed,
                     c->pod, c->responded);
        cr_assert_eq(c->routed, 0, "%s", w->name);
        cr_expect_eq(c->ref.status, w->status, "%s: status %d", w->name, c->ref.status);
        cr_expect_eq(c->ref.kind, w->kind, "%s: kind %d", w->name, c->ref.kind);
        cr_expect_eq(metrics->proxy_errors[PR_ERR_NO_POD], w->status == 503, "%s", w->name);
        if (w->status == 302) {
            char loc[320];
            snprintf(loc, sizeof(loc), "Location: /experiment?roomId=%s&pod=%s\r\n",
                     c->x->aff.room, w->pod);
            cr_expect_str_eq(c->location, loc, "%s", w->name);
            cr_expect_eq(c->ref.body_len, strlen("{\"redirect\":true}"), "%s", w->name);
            cr_expect_eq(metrics->assignments[w->kind][w->outcome], 1, "%s: counter", w->name);
        }
    }
    cr_expect_str_eq(fake.calls, w->calls, "%s: store calls", w->name);
    cr_expect_str_eq(fake.touched, w->touched, "%s: touched", w->name);
    cr_expect_str_eq(fake.joined, w->joined, "%s: joined", w->name);
    cr_expect_eq(c->refs, 0, "%s: holds left", w->name);
}

/* Every row twice: store answers at once, and later (as Redis does). */
Test(route, table)
{
    for (int later = 0; later <= 1; later++) {
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            const struct row *w = &rows[i];
            struct answer script[4];
            memcpy(script, w->script, sizeof(script));
            for (int k = 0; k < 4 && script[k].status != 1; k++)
                script[k].later = later;
            fake_world(w->states, script);
            if (w->loads)
                for (int k = 0; k < NPODS; k++)
                    pr_registry_set_load(reg, pod_names[k], w->loads[k], 0);
            fake.up = !w->store_down;
            struct caller c;
            route(&c, w->url, w->lines);
            for (int k = 0; k < 4 && fake.npending; k++)
                fake_flush();
            check_row(w, &c);
            leave(&c);
            teardown();
        }
    }
}

/* Which handshakes may answer before their sid pin lands: those routed by a room or
 * participant the store holds (found, created, moved there, store up). */
Test(route, pin_covered_by_a_stored_room_or_participant)
{
    static const struct {
        const char *name, *url;
        struct answer script[3];
        bool down, covered;
    } cases[] = {
        {"room hit", POLL "&roomId=r1", {{0, "backend-0", 0}, END}, false, true},
        {"room created", POLL "&roomId=r1", {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, false, true},
        {"participant hit", POLL "&participantId=u1", {{0, "backend-0", 0}, END}, false, true},
        {"room, store timing out: degraded", POLL "&roomId=r1",
         {{-ETIMEDOUT, NULL, 0}, {0, OURS, 0}, END}, false, false},
        {"room, store down", POLL "&roomId=r1", {{-ENOENT, NULL, 0}, {0, OURS, 0}, END}, true,
         false},
        {"room hit, store down", POLL "&roomId=r1", {{0, "backend-0", 0}, END}, true, false},
        {"no key", POLL, {END}, false, false},
        {"cookie", POLL, {END}, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_world("RRR", cases[i].script);
        fake.up = !cases[i].down;
        struct caller c;
        const char *const cookie[] = {"COOKIE backend-2", NULL};
        route(&c, cases[i].url, strcmp(cases[i].name, "cookie") == 0 ? cookie : NULL);
        for (int k = 0; k < 4 && fake.npending; k++)
            fake_flush();
        cr_assert_eq(c.routed, 1, "%s", cases[i].name);
        cr_expect_eq(pr_route_pin_covered(&ctx, &c.x->r), cases[i].covered, "%s",
                     cases[i].name);
        leave(&c);
        teardown();
    }
}

/* ---- the memory store ---------------------------------------------------------------- */

static void expect_routed(const struct caller *c, const char *pod, enum pr_key_kind kind,
                          enum pr_outcome outcome)
{
    cr_assert_eq(c->routed, 1, "routed %d responded %d (%d)", c->routed, c->responded,
                 c->ref.status);
    if (pod)
        cr_expect_str_eq(c->pod, pod);
    cr_expect_eq(c->res.kind, kind, "kind %d", c->res.kind);
    cr_expect_eq(c->res.outcome, outcome, "outcome %d", c->res.outcome);
}

static void stored(enum pr_key_kind kind, const char *key, const char *pod)
{
    cr_assert_eq(mem->ops->set(mem, kind, key, strlen(key), pod), 0);
}

Test(route, memory_room_created_then_hit)
{
    mem_world("RRR", 0);
    struct caller a, b;
    route(&a, POLL "&roomId=r1&participantId=u1", NULL);
    expect_routed(&a, "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    route(&b, "/api/x?roomId=r1", NULL);
    expect_routed(&b, "backend-1", PR_KEY_ROOM, PR_OUTCOME_HIT);
    struct pr_assignment as;
    cr_assert_eq(mem->ops->info(mem, PR_KEY_ROOM, "r1", 2, &as), 0);
    cr_expect_str_eq(as.pod, "backend-1");
    cr_expect_eq(as.participant_count, 1);
    leave(&a);
    leave(&b);
}

Test(route, memory_sid)
{
    mem_world("RRR", 0);
    stored(PR_KEY_SID, "s1", "backend-2");
    stored(PR_KEY_ROOM, "r1", "backend-0");
    struct caller a, b;
    route(&a, POLL "&sid=s1&roomId=r1", NULL);
    expect_routed(&a, "backend-2", PR_KEY_SID, PR_OUTCOME_HIT);
    route(&b, POLL "&sid=s2&roomId=r1", NULL); /* unknown sid: the room decides */
    expect_routed(&b, "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT);
    leave(&a);
    leave(&b);
}

Test(route, memory_sid_on_dead_pod)
{
    mem_world("RRX", 0);
    stored(PR_KEY_SID, "s1", "backend-2");
    struct caller a;
    route(&a, POLL "&sid=s1&roomId=r1", NULL);
    cr_assert_eq(a.responded, 1);
    cr_expect_eq(a.ref.why, PR_ROUTE_SESSION_UNKNOWN);
    cr_expect_eq(a.ref.status, 400);
    cr_expect_eq(a.ref.kind, PR_KEY_SID);
    cr_assert_not_null(a.ref.body);
    cr_expect_eq(strncmp(a.ref.body, "{\"code\":1,\"message\":\"Session ID unknown\"}",
                         a.ref.body_len),
                 0);
    leave(&a);
}

Test(route, memory_room_moved_off_a_dead_pod)
{
    mem_world("RRX", 0);
    stored(PR_KEY_ROOM, "r1", "backend-2");
    struct caller a;
    route(&a, POLL "&roomId=r1", NULL);
    expect_routed(&a, "backend-1", PR_KEY_ROOM, PR_OUTCOME_REASSIGNED);
    struct pr_assignment as;
    cr_assert_eq(mem->ops->info(mem, PR_KEY_ROOM, "r1", 2, &as), 0);
    cr_expect_str_eq(as.pod, "backend-1");
    leave(&a);
}

Test(route, memory_max_assignments)
{
    mem_world("RRR", 1);
    struct caller a, b, c;
    route(&a, "/api/x?roomId=r1", NULL);
    expect_routed(&a, "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    route(&b, "/api/x?roomId=r2", NULL);
    expect_routed(&b, b.pod, PR_KEY_ROOM, PR_OUTCOME_OVERFLOW);
    route(&c, "/api/x?roomId=r2", NULL); /* not stored: overflows again */
    expect_routed(&c, b.pod, PR_KEY_ROOM, PR_OUTCOME_OVERFLOW);
    struct pr_assignment as;
    cr_expect_eq(mem->ops->info(mem, PR_KEY_ROOM, "r2", 2, &as), -ENOENT);
    cr_expect_eq(metrics->assignments[PR_KEY_ROOM][PR_OUTCOME_OVERFLOW], 2);
    leave(&a);
    leave(&b);
    leave(&c);
}

/* --placement pack: lowest ordinal first while it stays under the utilization. */
Test(route, memory_pack_placement)
{
    mem_world("RRR", 0);
    ctx.placement = PR_PLACEMENT_PACK;
    struct caller a;
    route(&a, "/api/x?roomId=r6", NULL); /* least-loaded would say backend-1 */
    expect_routed(&a, "backend-0", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    leave(&a);
}

/* ---- rate limit (SPEC 3.6) ------------------------------------------------------------- */

static void route_from(struct caller *c, const char *url, int family, const char *ip4)
{
    request(c, url, NULL, family, ip4);
    pr_route_start(&ctx, &c->x->r);
}

Test(route, rate_limit)
{
    mem_world("RRR", 0);
    ctx.rl = pr_ratelimit_create(0.001, 2, 64);
    cr_assert_not_null(ctx.rl);
    struct caller c[12];
    route_from(&c[0], "/api/x?roomId=a1", AF_INET, "10.1.2.3");
    route_from(&c[1], "/api/x?participantId=a2", AF_INET, "10.1.2.3");
    route_from(&c[2], "/api/x?roomId=a3", AF_INET, "10.1.2.3");
    for (int i = 0; i < 2; i++)
        expect_routed(&c[i], NULL, i ? PR_KEY_PARTICIPANT : PR_KEY_ROOM,
                      PR_OUTCOME_CREATED);
    cr_assert_eq(c[2].responded, 1);
    cr_expect_eq(c[2].ref.why, PR_ROUTE_RATE_LIMITED);
    cr_expect_eq(c[2].ref.status, 429);
    cr_expect(c[2].ref.close_if_incomplete);
    cr_expect_str_eq(c[2].location, "Retry-After: 1\r\n");
    cr_expect_eq(metrics->rate_limited, 1);
    struct pr_assignment as;
    cr_expect_eq(mem->ops->info(mem, PR_KEY_ROOM, "a3", 2, &as), -ENOENT);
    /* Which pod does not matter here (loads change as rooms get used). Existing keys and key-less requests cost nothing; another address has its own bucket;
     * loopback and unknown addresses are never limited. */
    route_from(&c[3], "/api/x?roomId=a1", AF_INET, "10.1.2.3");
    expect_routed(&c[3], NULL, PR_KEY_ROOM, PR_OUTCOME_HIT);
    route_from(&c[4], "/api/x", AF_INET, "10.1.2.3");
    expect_routed(&c[4], NULL, PR_KEY_NONE, PR_OUTCOME_CREATED);
    route_from(&c[5], "/api/x?roomId=b1", AF_INET, "10.9.9.9");
    expect_routed(&c[5], NULL, PR_KEY_ROOM, PR_OUTCOME_CREATED);
    route_from(&c[6], "/api/x?roomId=l1", AF_INET, "127.0.0.1");
    route_from(&c[7], "/api/x?roomId=l2", AF_INET, "127.0.0.2");
    route_from(&c[8], "/api/x?roomId=l3", AF_INET, "127.0.0.1");
    route_from(&c[9], "/api/x?roomId=u1", 0, NULL);
    route_from(&c[10], "/api/x?roomId=u2", 0, NULL);
    for (int i = 6; i < 11; i++)
        expect_routed(&c[i], NULL, PR_KEY_ROOM, PR_OUTCOME_CREATED);
    route_from(&c[11], "/api/x?roomId=u3", 0, NULL);
    expect_routed(&c[11], NULL, PR_KEY_ROOM, PR_OUTCOME_CREATED);
    for (int i = 0; i < 12; i++)
        leave(&c[i]);
}

Test(route, rate_limit_ipv6_loopback_exempt)
{
    mem_world("RRR", 0);
    ctx.rl = pr_ratelimit_create(0.001, 1, 64);
    struct caller c[4];
    for (int i = 0; i < 4; i++) {
        char url[64];
        snprintf(url, sizeof(url), "/api/x?roomId=v%d", i);
        request(&c[i], url, NULL, AF_INET6, NULL);
        c[i].x->r.addr[i < 2 ? 15 : 0] = i < 2 ? 1 : 0x20; /* ::1, then 2000:: */
        pr_route_start(&ctx, &c[i].x->r);
    }
    expect_routed(&c[0], "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    expect_routed(&c[1], "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    expect_routed(&c[2], "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    cr_expect_eq(c[3].responded, 1);
    cr_expect_eq(c[3].ref.status, 429);
    for (int i = 0; i < 4; i++)
        leave(&c[i]);
}

/* ---- the caller leaves before the store answers ---------------------------------------- */

static void gone_before(const struct answer *script, int answers_before)
{
    fake_world("RRR", script);
    struct caller c;
    route(&c, POLL "&roomId=r1", NULL);
    for (int i = 0; i < answers_before; i++)
        fake_flush();
    cr_assert_eq(c.refs, 1, "one store call pending");
    cr_assert_eq(c.routed + c.responded, 0);
    leave(&c); /* its request memory is freed now (ASan: no use after this) */
    fake_flush();
    cr_expect_eq(c.answers_dropped, 1);
    cr_expect_eq(c.refs, 0);
    cr_expect_eq(c.routed + c.responded, 0);
    cr_expect_str_eq(fake.touched, "");
}

Test(route, caller_gone_before_lookup_answer)
{
    static const struct answer script[] = {{0, "backend-0", LATER}, END};
    gone_before(script, 0);
    cr_expect_str_eq(fake.calls, "get room r1; ");
}

Test(route, caller_gone_before_create_answer)
{
    static const struct answer script[] = {{-ENOENT, NULL, LATER}, {0, OURS, LATER}, END};
    gone_before(script, 1);
    cr_expect_str_eq(fake.calls, "get room r1; create room r1 backend-1; ");
}

Test(route, later_answer_reaches_a_caller_still_there)
{
    static const struct answer script[] = {{-ENOENT, NULL, LATER}, {0, OURS, LATER}, END};
    fake_world("RRR", script);
    struct caller c;
    route(&c, POLL "&roomId=r1", NULL);
    cr_assert_eq(c.routed, 0);
    fake_flush();
    cr_assert_eq(c.routed, 0);
    cr_assert_eq(c.refs, 1);
    fake_flush();
    expect_routed(&c, "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    cr_expect_eq(c.refs, 0);
    leave(&c);
}

/* ---- the routed pod refuses the connection ---------------------------------------------- */

Test(route, retry_moves_a_new_room)
{
    static const struct answer script[] = {{-ENOENT, NULL, 0}, {0, OURS, 0}, {0, OURS, 0}, END};
    fake_world("RRR", script);
    struct caller c;
    route(&c, POLL "&roomId=r1", NULL);
    expect_routed(&c, "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    cr_assert(pr_route_movable(&c.x->r));
    cr_assert_eq(pr_route_retry(&ctx, &c.x->r), 0);
    cr_assert_eq(c.routed, 2);
    cr_expect_str_eq(c.pod, "backend-2"); /* r1 prefers backend-2 over backend-0 */
    cr_expect_eq(c.res.outcome, PR_OUTCOME_REASSIGNED);
    cr_expect_str_eq(fake.calls, "get room r1; create room r1 backend-1; "
                                 "replace room r1 backend-1 backend-2; ");
    leave(&c);
}

Test(route, retry_without_key_and_cookie)
{
    fake_world("RRR", (const struct answer[]){END});
    struct caller a, b;
    route(&a, POLL, NULL);
    expect_routed(&a, "backend-1", PR_KEY_NONE, PR_OUTCOME_CREATED);
    cr_assert(pr_route_movable(&a.x->r));
    cr_assert_eq(pr_route_retry(&ctx, &a.x->r), 0);
    cr_assert_eq(a.routed, 2);
    cr_expect_str_neq(a.pod, "backend-1");
    cr_expect(a.res.set_cookie);
    route(&b, POLL, (const char *const[]){"COOKIE backend-0", NULL});
    expect_routed(&b, "backend-0", PR_KEY_COOKIE, PR_OUTCOME_HIT);
    cr_assert(pr_route_movable(&b.x->r));
    cr_assert_eq(pr_route_retry(&ctx, &b.x->r), 0);
    cr_expect_eq(b.res.kind, PR_KEY_NONE);
    cr_expect_str_neq(b.pod, "backend-0");
    cr_expect_str_eq(fake.calls, "");
    leave(&a);
    leave(&b);
}

Test(route, pinned_keys_do_not_move)
{
    static const struct answer script[] = {{0, "backend-0", 0}, {0, "backend-0", 0}, END};
    fake_world("RRR", script);
    struct caller a, b;
    route(&a, POLL "&roomId=r1", NULL);
    expect_routed(&a, "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT);
    cr_expect_not(pr_route_movable(&a.x->r));
    route(&b, POLL "&sid=s1", NULL);
    expect_routed(&b, "backend-0", PR_KEY_SID, PR_OUTCOME_HIT);
    cr_expect_not(pr_route_movable(&b.x->r));
    leave(&a);
    leave(&b);
}

Test(route, keys_of_a_pod_marked_unreachable_move_sids_do_not)
{
    /* r1 hit on backend-0, which then fails --pod-fall (2) fresh connects: the room leaves
     * it through the compare-and-set (replace), exactly as for an expired heartbeat. */
    static const struct answer script[] = {
        {0, "backend-0", 0}, {0, "backend-0", 0}, {0, OURS, 0}, {0, "backend-0", 0}, END};
    fake_world("RRR", script);
    struct caller a, b, c;
    route(&a, POLL "&roomId=r1", NULL);
    expect_routed(&a, "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT);
    route(&b, POLL "&sid=s1", NULL);
    expect_routed(&b, "backend-0", PR_KEY_SID, PR_OUTCOME_HIT);
    cr_expect_not(pr_route_pod_lost(&ctx, &a.x->r), "one failure is not enough");
    cr_expect_not(pr_registry_connect_failed(reg, "backend-0", NULL));
    cr_expect_not(pr_route_pod_lost(&ctx, &a.x->r));
    cr_assert(pr_registry_connect_failed(reg, "backend-0", NULL));
    cr_expect(pr_route_pod_lost(&ctx, &a.x->r));
    cr_expect_not(pr_route_pod_lost(&ctx, &b.x->r), "a sid never leaves its pod");
    cr_assert_eq(pr_route_retry(&ctx, &a.x->r), 0);
    cr_expect_str_neq(a.pod, "backend-0");
    cr_expect_eq(a.res.outcome, PR_OUTCOME_REASSIGNED);
    /* the sid's next request: Engine.IO's own answer, the client re-handshakes */
    route(&c, POLL "&sid=s1", NULL);
    cr_expect_eq(c.routed, 0);
    cr_expect_eq(c.responded, 1);
    cr_expect_eq(c.ref.why, PR_ROUTE_SESSION_UNKNOWN);
    char want[256];
    snprintf(want, sizeof(want), "get room r1; get sid s1; replace room r1 backend-0 %s; "
                                 "get sid s1; ", a.pod);
    cr_expect_str_eq(fake.calls, want);
    leave(&a);
    leave(&b);
    leave(&c);
}

Test(route, retry_with_no_other_pod)
{
    fake_world("-R-", (const struct answer[]){END});
    struct caller a;
    route(&a, "/api/x", NULL);
    expect_routed(&a, "backend-1", PR_KEY_NONE, PR_OUTCOME_CREATED);
    cr_expect_eq(pr_route_retry(&ctx, &a.x->r), -ENOENT);
    cr_expect_eq(a.routed, 1);
    cr_expect_eq(a.responded, 0);
    leave(&a);
}

/* ---- the sid a handshake answer carried ------------------------------------------------ */

static void on_pinned(void *arg, int status, const char *pod)
{
    char *out = arg;
    snprintf(out, 64, "%d %s", status, pod ? pod : "-");
}

Test(route, pin_sid_memory)
{
    mem_world("RRR", 0);
    struct caller a, b, c, d;
    route(&a, POLL "&roomId=r1", NULL);
    expect_routed(&a, "backend-1", PR_KEY_ROOM, PR_OUTCOME_CREATED);
    char got[64] = "";
    pr_route_pin_sid(&ctx, &a.x->r, "s1", 2, on_pinned, got);
    cr_expect_str_eq(got, "0 backend-1");
    cr_expect_eq(metrics->assignments[PR_KEY_SID][PR_OUTCOME_CREATED], 1);
    struct pr_assignment as;
    cr_assert_eq(mem->ops->info(mem, PR_KEY_ROOM, "r1", 2, &as), 0);
    cr_expect_eq(as.participant_count, 1, "the session counts into the room");
    route(&b, POLL "&sid=s1&roomId=r1", NULL);
    expect_routed(&b, "backend-1", PR_KEY_SID, PR_OUTCOME_HIT);
    /* A participant id already counted the client: its session does not count twice. */
    route(&c, POLL "&roomId=r2&participantId=u1", NULL);
    expect_routed(&c, NULL, PR_KEY_ROOM, PR_OUTCOME_CREATED);
    pr_route_pin_sid(&ctx, &c.x->r, "s2", 2, on_pinned, got);
    cr_assert_eq(mem->ops->info(mem, PR_KEY_ROOM, "r2", 2, &as), 0);
    cr_expect_eq(as.participant_count, 1);
    route(&d, POLL "&sid=s2", NULL);
    expect_routed(&d, c.pod, PR_KEY_SID, PR_OUTCOME_HIT);
    leave(&a);
    leave(&b);
    leave(&c);
    leave(&d);
}

Test(route, pin_sid_store_calls)
{
    static const struct answer script[] = {{0, "backend-0", 0}, {0, OURS, LATER}, END};
    fake_world("RRR", script);
    struct caller a;
    route(&a, POLL "&roomId=r1", NULL);
    expect_routed(&a, "backend-0", PR_KEY_ROOM, PR_OUTCOME_HIT);
    char got[64] = "";
    pr_route_pin_sid(&ctx, &a.x->r, "s1", 2, on_pinned, got);
    cr_expect_str_eq(got, "", "the store answers later");
    fake_flush();
    cr_expect_str_eq(got, "0 backend-0");
    cr_expect_str_eq(fake.calls, "get room r1; create sid s1 backend-0; ");
    cr_expect_str_eq(fake.joined, "r1 <- s1; ");
    leave(&a);
}
