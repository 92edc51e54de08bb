/* Unit tests of the admin API (admin.h): routes, methods, auth, validation, JSON bodies. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "podrouter/admin.h"
#include "podrouter/config.h"
#include "podrouter/log.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"

#define TOKEN "s3cret-token"

static struct pr_config cfg;
static struct pr_registry *reg;
static struct pr_store *st;
static struct pr_admin_ctx ctx_token, ctx_open;
static bool draining_flag;

static bool is_draining(void)
{
    return draining_flag;
}

static char *render_metrics(size_t *len)
{
    static const char text[] = "# TYPE podrouter_store_up gauge\npodrouter_store_up 1\n";
    char *s = strdup(text);
    *len = sizeof(text) - 1;
    return s;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Registry (pod_ttl_ms) with backend-0 ready and backend-1 draining, a memory store with
 * room_a -> backend-0, and two contexts: with a token and without. */
static void setup_ttl(uint64_t pod_ttl_ms)
{
    pr_log_init(PR_LOG_ERROR, PR_LOG_JSON);
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.store, sizeof(cfg.store), "memory");
    cfg.pod_ttl_ms = pod_ttl_ms;
    cfg.room_ttl_ms = cfg.participant_ttl_ms = 24 * 3600 * 1000ull;
    cfg.sid_ttl_ms = 120000;
    reg = pr_registry_create(pod_ttl_ms);
    cr_assert_not_null(reg);
    cr_assert_eq(pr_registry_put(reg, "backend-0", "10.0.0.7:3000", 20, 80, "nyc1-a", NULL), 0);
    cr_assert_eq(pr_registry_put(reg, "backend-1", "10.0.0.8:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_drain(reg, "backend-1"), 0);
    st = pr_store_memory_open(&cfg, reg);
    cr_assert_not_null(st);
    cr_assert_eq(st->ops->set(st, PR_KEY_ROOM, "room_a", 6, "backend-0"), 0);
    struct pr_admin_ctx base = {
        .cfg = &cfg,
        .reg = reg,
        .store = st,
        .token = NULL,
        .token_len = 0,
        .draining = is_draining,
        .render_metrics = render_metrics,
    };
    ctx_open = base;
    ctx_token = base;
    ctx_token.token = TOKEN;
    ctx_token.token_len = strlen(TOKEN);
    draining_flag = false;
}

static void setup(void)
{
    setup_ttl(15000);
}

static void teardown(void)
{
    if (st)
        st->ops->close(st);
    st = NULL;
    pr_registry_destroy(reg);
    reg = NULL;
}

TestSuite(admin, .init = setup, .fini = teardown);

struct req {
    const struct pr_admin_ctx *ctx;
    const char *method, *path, *auth, *ctype, *body;
    bool remote; /* peer is not loopback */
};

/* Run one request; the caller frees resp->body. */
static void run(const struct req *r, struct pr_admin_response *resp)
{
    struct pr_admin_request q = {
        .method = r->method,
        .path = r->path,
        .authorization = r->auth,
        .content_type = r->ctype,
        .body = r->body,
        .body_len = r->body ? strlen(r->body) : 0,
        .peer_loopback = !r->remote,
    };
    pr_admin_handle(r->ctx ? r->ctx : &ctx_token, &q, resp);
}

/* Run and parse the JSON body (NULL when there is none). */
static cJSON *run_json(const struct req *r, int want_status)
{
    struct pr_admin_response resp;
    run(r, &resp);
    cr_assert_eq(resp.status, want_status, "%s %s: status %d, want %d (%.*s)", r->method, r->path,
                 resp.status, want_status, (int)resp.body_len, resp.body ? resp.body : "");
    cJSON *j = resp.body ? cJSON_ParseWithLength(resp.body, resp.body_len) : NULL;
    if (resp.body)
        cr_assert_not_null(j, "body is JSON: %.*s", (int)resp.body_len, resp.body);
    if (resp.body)
        cr_assert_str_eq(resp.content_type, "application/json");
    free(resp.body);
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsString(v), "\"%s\" is a string", k);
    return v->valuestring;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "\"%s\" is a number", k);
    return v->valuedouble;
}

#define POD2 "{\"address\":\"10.0.0.9:3000\",\"capacity\":{\"rooms\":10,\"participants\":40}}"
#define JSON "application/json"
#define AUTH "Bearer " TOKEN

/* One row of the request table: what is sent and what must come back. */
struct row {
    bool open; /* context without token */
    bool remote;
    bool big; /* body_len just over 64 KiB */
    const char *method, *path, *auth, *ctype, *body;
    int status;
    const char *error;  /* expected "error" code, or NULL for success bodies */
    const char *header; /* substring of extra_headers, or NULL */
};

static const struct row rows[] = {
    /* health */
    {false, false, false, "GET", "/healthz", NULL, NULL, NULL, 200, NULL, NULL},
    {false, true, false, "HEAD", "/healthz", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "POST", "/healthz", AUTH, NULL, NULL, 405, "method_not_allowed",
     "Allow: GET, HEAD\r\n"},
    {false, false, false, "GET", "/readyz", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "DELETE", "/readyz", AUTH, NULL, NULL, 405, "method_not_allowed",
     "Allow: GET"},
    /* unknown routes */
    {false, false, false, "GET", "/nope", NULL, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1", NULL, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1/pods/backend-0/x", NULL, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1/rooms/a/b", NULL, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1/rooms/", NULL, NULL, NULL, 404, "not_found", NULL},
    /* pod list and reads (open to everyone) */
    {false, true, false, "GET", "/v1/pods", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "GET", "/v1/pods/", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "DELETE", "/v1/pods", AUTH, NULL, NULL, 405, "method_not_allowed",
     "Allow: GET, HEAD\r\n"},
    {false, true, false, "GET", "/v1/pods/backend-0", NULL, NULL, NULL, 200, NULL, NULL},
    {true, true, false, "GET", "/v1/pods/backend-0", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "GET", "/v1/pods/backend-9", NULL, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1/pods/Bad_Name", NULL, NULL, NULL, 404, "not_found", NULL},
    /* register, then heartbeat */
    {false, true, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, POD2, 201, NULL, NULL},
    {false, true, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, POD2, 200, NULL, NULL},
    /* auth with a token */
    {false, false, false, "PUT", "/v1/pods/backend-2", NULL, JSON, POD2, 401, "unauthorized",
     "WWW-Authenticate: Bearer\r\n"},
    {false, false, false, "PUT", "/v1/pods/backend-2", "Bearer nope", JSON, POD2, 401,
     "unauthorized", "WWW-Authenticate: Bearer"},
    {false, false, false, "PUT", "/v1/pods/backend-2", "Basic " TOKEN, JSON, POD2, 401,
     "unauthorized", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", "Bearer s3cret-toke", JSON, POD2, 401,
     "unauthorized", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH "x", JSON, POD2, 401, "unauthorized",
     NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", "Bearer ", JSON, POD2, 401, "unauthorized",
     NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", "bearer  " TOKEN " ", JSON, POD2, 200, NULL,
     NULL},
    {false, false, false, "POST", "/v1/pods/backend-2/drain", NULL, NULL, NULL, 401, "unauthorized",
     NULL},
    {false, false, false, "DELETE", "/v1/rooms/room_a", "Bearer x", NULL, NULL, 401, "unauthorized",
     NULL},
    {false, false, true, "PUT", "/v1/pods/backend-2", NULL, JSON, NULL, 401, "unauthorized", NULL},
    /* auth without a token: loopback only */
    {true, false, false, "PUT", "/v1/pods/backend-2", NULL, JSON, POD2, 200, NULL, NULL},
    {true, true, false, "PUT", "/v1/pods/backend-2", NULL, JSON, POD2, 403, "forbidden", NULL},
    {true, true, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, POD2, 403, "forbidden", NULL},
    {true, true, false, "DELETE", "/v1/pods/backend-2", NULL, NULL, NULL, 403, "forbidden", NULL},
    {true, true, false, "GET", "/v1/cluster", NULL, NULL, NULL, 200, NULL, NULL},
    /* bodies */
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, "not json", 400, "bad_json",
     NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, "[1,2]", 400, "bad_json", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, NULL, 400, "bad_json", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, POD2 " x", 400, "bad_json",
     NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, "{\"address\":", 400, "bad_json",
     NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, "{}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, "{\"address\":3000}", 400,
     "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, "{\"address\":\"nohost\"}", 400,
     "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON, "{\"address\":\"h:0\"}", 400,
     "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"capacity\":\"x\"}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"capacity\":{\"rooms\":0}}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"capacity\":{\"rooms\":1.5}}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"capacity\":{\"participants\":-1}}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"capacity\":{\"participants\":\"80\"}}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"zone\":5}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"zone\":"
     "\"z234567890123456789012345678901234567890123456789012345678901234\"}",
     400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, JSON,
     "{\"address\":\"h:1\",\"zone\":null,\"capacity\":null}", 200, NULL, NULL},
    {false, false, false, "PUT", "/v1/pods/Bad_Name", AUTH, JSON, POD2, 400, "bad_field", NULL},
    /* content types */
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, "text/plain", POD2, 415,
     "unsupported_media_type", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, NULL, POD2, 415,
     "unsupported_media_type", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, "application/jsonx", POD2, 415,
     "unsupported_media_type", NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, "application/json; charset=utf-8",
     POD2, 200, NULL, NULL},
    {false, false, false, "PUT", "/v1/pods/backend-2", AUTH, "Application/JSON", POD2, 200, NULL,
     NULL},
    {false, false, true, "PUT", "/v1/pods/backend-2", AUTH, JSON, NULL, 413, "body_too_large",
     NULL},
    {false, false, false, "PATCH", "/v1/pods/backend-2", AUTH, JSON, POD2, 405,
     "method_not_allowed", "Allow: GET, HEAD, PUT, DELETE\r\n"},
    /* drain */
    {false, false, false, "POST", "/v1/pods/backend-2/drain", AUTH, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "GET", "/v1/pods/backend-2/drain", NULL, NULL, NULL, 405,
     "method_not_allowed", "Allow: POST\r\n"},
    {false, false, false, "POST", "/v1/pods/backend-9/drain", AUTH, NULL, NULL, 404, "not_found",
     NULL},
    {false, false, false, "POST", "/v1/pods/backend-2/undrain", AUTH, NULL, NULL, 404, "not_found",
     NULL},
    /* rooms */
    {false, true, false, "GET", "/v1/rooms/room_a", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "GET", "/v1/rooms/room_zz", NULL, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1/rooms/bad%20key", NULL, NULL, NULL, 400, "bad_key", NULL},
    {false, false, false, "GET",
     "/v1/rooms/r234567890123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789012345678x",
     NULL, NULL, NULL, 400, "bad_key", NULL},
    {false, false, false, "PUT", "/v1/rooms/bad!", AUTH, JSON, "{\"pod\":\"backend-0\"}", 400,
     "bad_key", NULL},
    {false, false, false, "PUT", "/v1/rooms/room_b", AUTH, JSON, "{\"pod\":\"backend-9\"}", 409,
     "conflict", NULL},
    {false, false, false, "PUT", "/v1/rooms/room_b", AUTH, JSON, "{\"pod\":5}", 400, "bad_field",
     NULL},
    {false, false, false, "PUT", "/v1/rooms/room_b", AUTH, JSON, "{}", 400, "bad_field", NULL},
    {false, false, false, "PUT", "/v1/rooms/room_b", AUTH, "text/html", "{\"pod\":\"backend-0\"}",
     415, "unsupported_media_type", NULL},
    {false, false, false, "PUT", "/v1/rooms/room_b", AUTH, JSON, "{\"pod\":\"backend-0\"}", 200,
     NULL, NULL},
    {false, false, false, "PUT", "/v1/rooms/room_b", AUTH, JSON, "{\"pod\":\"backend-1\"}", 200,
     NULL, NULL},
    {false, false, false, "DELETE", "/v1/rooms/room_b", AUTH, NULL, NULL, 204, NULL, NULL},
    {false, false, false, "DELETE", "/v1/rooms/room_b", AUTH, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "POST", "/v1/rooms/room_a", AUTH, NULL, NULL, 405, "method_not_allowed",
     "Allow: GET, HEAD, PUT, DELETE\r\n"},
    /* participants */
    {false, false, false, "PUT", "/v1/participants/p-1", AUTH, JSON, "{\"pod\":\"backend-0\"}", 200,
     NULL, NULL},
    {false, false, false, "GET", "/v1/participants/p-1", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "PUT", "/v1/participants/p-1", AUTH, JSON, "{\"pod\":\"nope\"}", 409,
     "conflict", NULL},
    {false, false, false, "DELETE", "/v1/participants/p-1", AUTH, NULL, NULL, 204, NULL, NULL},
    {false, false, false, "GET", "/v1/participants/p.1:x_y-z", NULL, NULL, NULL, 404, "not_found",
     NULL},
    {false, false, false, "GET", "/v1/participants/p/1", NULL, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1/participants/p~1", NULL, NULL, NULL, 400, "bad_key", NULL},
    /* cluster, metrics, status page */
    {false, false, false, "GET", "/v1/cluster", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "POST", "/v1/cluster", AUTH, NULL, NULL, 405, "method_not_allowed",
     "Allow: GET, HEAD\r\n"},
    {false, true, false, "GET", "/metrics", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "PUT", "/metrics", AUTH, NULL, NULL, 405, "method_not_allowed", NULL},
    {false, true, false, "GET", "/status", NULL, NULL, NULL, 200, NULL, NULL},
    {false, true, false, "GET", "/", NULL, NULL, NULL, 200, NULL, NULL},
    {false, false, false, "POST", "/status", AUTH, NULL, NULL, 405, "method_not_allowed", NULL},
    /* delete */
    {false, false, false, "DELETE", "/v1/pods/backend-2", AUTH, NULL, NULL, 204, NULL, NULL},
    {false, false, false, "DELETE", "/v1/pods/backend-2", AUTH, NULL, NULL, 404, "not_found", NULL},
    {false, false, false, "GET", "/v1/pods/backend-2", NULL, NULL, NULL, 404, "not_found", NULL},
};

Test(admin, request_table)
{
    static char big[PR_ADMIN_BODY_MAX + 2];
    memset(big, ' ', sizeof(big));
    cr_assert_geq(sizeof(rows) / sizeof(rows[0]), 40);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        struct pr_admin_request q = {
            .method = w->method,
            .path = w->path,
            .authorization = w->auth,
            .content_type = w->ctype,
            .body = w->big ? big : w->body,
            .body_len = w->big ? PR_ADMIN_BODY_MAX + 1 : (w->body ? strlen(w->body) : 0),
            .peer_loopback = !w->remote,
        };
        struct pr_admin_response resp;
        memset(&resp, 0xa5, sizeof(resp));
        pr_admin_handle(w->open ? &ctx_open : &ctx_token, &q, &resp);
        cr_expect_eq(resp.status, w->status, "row %zu: %s %s -> %d, want %d (%.*s)", i, w->method,
                     w->path, resp.status, w->status, (int)resp.body_len,
                     resp.body ? resp.body : "");
        if (w->header)
            cr_expect_not_null(strstr(resp.extra_headers, w->header),
                               "row %zu: extra headers \"%s\" lack \"%s\"", i, resp.extra_headers,
                               w->header);
        else if (w->status != 405 && w->status != 401)
            cr_expect_str_eq(resp.extra_headers, "", "row %zu", i);
        if (w->status == 204) {
            cr_expect_null(resp.body, "row %zu: 204 has no body", i);
            cr_expect_null(resp.content_type, "row %zu: 204 has no content type", i);
            cr_expect_eq(resp.body_len, 0);
        } else {
            cr_assert_not_null(resp.body, "row %zu has a body", i);
            cr_expect_not_null(resp.content_type, "row %zu", i);
        }
        if (w->error) {
            cJSON *j = cJSON_ParseWithLength(resp.body, resp.body_len);
            cr_assert_not_null(j, "row %zu: error body is JSON", i);
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
            cr_expect(cJSON_IsString(e) && strcmp(e->valuestring, w->error) == 0,
                      "row %zu: error %s, want %s", i, cJSON_IsString(e) ? e->valuestring : "?",
                      w->error);
            cr_expect(cJSON_IsString(m) && m->valuestring[0], "row %zu: message", i);
            cr_expect_eq(cJSON_GetArraySize(j), 2, "row %zu: only error and message", i);
            cJSON_Delete(j);
        }
        free(resp.body);
    }
}

Test(admin, pod_object_shape)
{
    cJSON *j = run_json(&(struct req){.method = "GET", .path = "/v1/pods/backend-0"}, 200);
    cr_expect_eq(cJSON_GetArraySize(j), 8);
    cr_expect_str_eq(jstr(j, "name"), "backend-0");
    cr_expect_str_eq(jstr(j, "address"), "10.0.0.7:3000");
    cr_expect_str_eq(jstr(j, "state"), "ready");
    cr_expect_str_eq(jstr(j, "zone"), "nyc1-a");
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(j, "capacity");
    cr_expect_eq(jnum(cap, "rooms"), 20);
    cr_expect_eq(jnum(cap, "participants"), 80);
    const cJSON *load = cJSON_GetObjectItemCaseSensitive(j, "load");
    cr_expect_eq(jnum(load, "rooms"), 1); /* room_a */
    cr_expect_eq(jnum(load, "participants"), 0);
    cr_expect_eq(jnum(load, "connections"), 0);
    cr_expect_geq(jnum(j, "last_seen_ms"), 0);
    cr_expect_leq(jnum(j, "last_seen_ms"), 1000);
    cr_expect_gt(jnum(j, "expires_in_ms"), 14000);
    cr_expect_leq(jnum(j, "expires_in_ms"), 15000);
    cJSON_Delete(j);

    j = run_json(&(struct req){.method = "GET", .path = "/v1/pods/backend-1"}, 200);
    cr_expect_str_eq(jstr(j, "state"), "draining");
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "zone")));
    cJSON_Delete(j);
}

Test(admin, register_201_then_200_returns_pod)
{
    struct req r = {.method = "PUT",
                    .path = "/v1/pods/backend-5",
                    .auth = AUTH,
                    .ctype = JSON,
                    .body = "{\"address\":\"[::1]:3000\",\"zone\":\"z1\",\"extra\":true}"};
    cJSON *j = run_json(&r, 201);
    cr_expect_str_eq(jstr(j, "name"), "backend-5");
    cr_expect_str_eq(jstr(j, "address"), "[::1]:3000");
    cr_expect_str_eq(jstr(j, "state"), "ready");
    cr_expect_str_eq(jstr(j, "zone"), "z1");
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(j, "capacity");
    cr_expect_eq(jnum(cap, "rooms"), 20, "default capacity");
    cr_expect_eq(jnum(cap, "participants"), 80);
    cJSON_Delete(j);
    r.body = "{\"address\":\"[::1]:3000\",\"capacity\":{\"rooms\":5}}";
    j = run_json(&r, 200);
    cap = cJSON_GetObjectItemCaseSensitive(j, "capacity");
    cr_expect_eq(jnum(cap, "rooms"), 5);
    cr_expect_eq(jnum(cap, "participants"), 80);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "zone")));
    cJSON_Delete(j);

    /* A drained pod stays draining across heartbeats. */
    cJSON_Delete(run_json(
        &(struct req){.method = "POST", .path = "/v1/pods/backend-5/drain", .auth = AUTH}, 200));
    j = run_json(&r, 200);
    cr_expect_str_eq(jstr(j, "state"), "draining");
    cJSON_Delete(j);
}

Test(admin, pod_list_sorted)
{
    cJSON *j = run_json(&(struct req){.method = "GET", .path = "/v1/pods"}, 200);
    const cJSON *pods = cJSON_GetObjectItemCaseSensitive(j, "pods");
    cr_assert(cJSON_IsArray(pods));
    cr_assert_eq(cJSON_GetArraySize(pods), 2);
    cr_expect_str_eq(jstr(cJSON_GetArrayItem(pods, 0), "name"), "backend-0");
    cr_expect_str_eq(jstr(cJSON_GetArrayItem(pods, 1), "name"), "backend-1");
    cJSON_Delete(j);

    teardown();
    setup();
    pr_registry_delete(reg, "backend-0");
    pr_registry_delete(reg, "backend-1");
    j = run_json(&(struct req){.method = "GET", .path = "/v1/pods"}, 200);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "pods")), 0);
    cJSON_Delete(j);
}

Test(admin, delete_releases_assignments)
{
    cr_assert_eq(st->ops->set(st, PR_KEY_PARTICIPANT, "p1", 2, "backend-0"), 0);
    cr_assert_eq(st->ops->set(st, PR_KEY_ROOM, "room_c", 6, "backend-1"), 0);
    cr_assert_null(run_json(
        &(struct req){.method = "DELETE", .path = "/v1/pods/backend-0", .auth = AUTH}, 204));
    cJSON_Delete(run_json(&(struct req){.method = "GET", .path = "/v1/rooms/room_a"}, 404));
    cJSON_Delete(run_json(&(struct req){.method = "GET", .path = "/v1/participants/p1"}, 404));
    cJSON *j = run_json(&(struct req){.method = "GET", .path = "/v1/rooms/room_c"}, 200);
    cr_expect_str_eq(jstr(j, "pod"), "backend-1");
    cJSON_Delete(j);
    uint64_t rooms = 0, parts = 0;
    st->ops->counts(st, &rooms, &parts);
    cr_expect_eq(rooms, 1);
    cr_expect_eq(parts, 0);
}

Test(admin, assignment_objects)
{
    uint64_t before = pr_now_ms();
    cJSON *j = run_json(&(struct req){.method = "PUT",
                                      .path = "/v1/rooms/room_q",
                                      .auth = AUTH,
                                      .ctype = JSON,
                                      .body = "{\"pod\":\"backend-0\"}"},
                        200);
    cr_expect_str_eq(jstr(j, "room"), "room_q");
    cr_expect_str_eq(jstr(j, "pod"), "backend-0");
    cr_expect_eq(jnum(j, "participantCount"), 0);
    cr_expect_geq(jnum(j, "assignedAt"), (double)before);
    cJSON_Delete(j);

    st->ops->room_join(st, "room_q", 6, "alice", 5);
    st->ops->room_join(st, "room_q", 6, "bob", 3);
    j = run_json(&(struct req){.method = "GET", .path = "/v1/rooms/room_q"}, 200);
    cr_expect_eq(cJSON_GetArraySize(j), 4);
    cr_expect_eq(jnum(j, "participantCount"), 2);
    cJSON_Delete(j);

    /* Operator override moves the room. */
    j = run_json(&(struct req){.method = "PUT",
                               .path = "/v1/rooms/room_q",
                               .auth = AUTH,
                               .ctype = JSON,
                               .body = "{\"pod\":\"backend-1\"}"},
                 200);
    cr_expect_str_eq(jstr(j, "pod"), "backend-1");
    cJSON_Delete(j);

    j = run_json(&(struct req){.method = "PUT",
                               .path = "/v1/participants/u:1",
                               .auth = AUTH,
                               .ctype = JSON,
                               .body = "{\"pod\":\"backend-0\"}"},
                 200);
    cr_expect_eq(cJSON_GetArraySize(j), 3);
    cr_expect_str_eq(jstr(j, "participant"), "u:1");
    cr_expect_str_eq(jstr(j, "pod"), "backend-0");
    cr_expect_gt(jnum(j, "assignedAt"), 0);
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(j, "participantCount"));
    cJSON_Delete(j);
}

Test(admin, pin_to_down_pod_conflicts)
{
    teardown();
    setup_ttl(60);
    sleep_ms(100); /* both pods down */
    cr_assert_eq(pr_registry_put(reg, "backend-0", "10.0.0.7:3000", 20, 80, NULL, NULL), 0);
    struct req r = {.method = "PUT",
                    .path = "/v1/rooms/room_z",
                    .auth = AUTH,
                    .ctype = JSON,
                    .body = "{\"pod\":\"backend-1\"}"};
    cJSON *j = run_json(&r, 409);
    cr_expect_str_eq(jstr(j, "error"), "conflict");
    cr_expect_not_null(strstr(jstr(j, "message"), "down"));
    cJSON_Delete(j);
    r.body = "{\"pod\":\"backend-0\"}";
    cJSON_Delete(run_json(&r, 200));
    j = run_json(&(struct req){.method = "GET", .path = "/v1/pods/backend-1"}, 200);
    cr_expect_str_eq(jstr(j, "state"), "down");
    cr_expect_eq(jnum(j, "expires_in_ms"), 0);
    cr_expect_geq(jnum(j, "last_seen_ms"), 60);
    cJSON_Delete(j);
}

Test(admin, cluster_counts)
{
    cr_assert_eq(st->ops->set(st, PR_KEY_ROOM, "room_b", 6, "backend-1"), 0);
    cr_assert_eq(st->ops->set(st, PR_KEY_PARTICIPANT, "p1", 2, "backend-1"), 0);
    cr_assert_eq(st->ops->set(st, PR_KEY_SID, "sid1", 4, "backend-1"), 0);
    cJSON *j = run_json(&(struct req){.method = "GET", .path = "/v1/cluster"}, 200);
    const cJSON *pods = cJSON_GetObjectItemCaseSensitive(j, "pods");
    cr_expect_eq(jnum(pods, "ready"), 1);
    cr_expect_eq(jnum(pods, "draining"), 1);
    cr_expect_eq(jnum(pods, "down"), 0);
    cr_expect_eq(jnum(j, "rooms"), 2);
    cr_expect_eq(jnum(j, "participants"), 1);
    cr_expect_str_eq(jstr(j, "store"), "up");
    cJSON_Delete(j);
}

Test(admin, health_and_readiness)
{
    cJSON *j = run_json(&(struct req){.method = "GET", .path = "/healthz"}, 200);
    cr_expect_str_eq(jstr(j, "status"), "ok");
    cJSON_Delete(j);
    j = run_json(&(struct req){.method = "GET", .path = "/readyz"}, 200);
    cr_expect_str_eq(jstr(j, "status"), "ready");
    cr_expect_str_eq(jstr(j, "store"), "up");
    cJSON_Delete(j);

    struct pr_admin_ctx nostore = ctx_token;
    nostore.store = NULL;
    j = run_json(&(struct req){.ctx = &nostore, .method = "GET", .path = "/readyz"}, 200);
    cr_expect_str_eq(jstr(j, "store"), "degraded");
    cJSON_Delete(j);

    draining_flag = true;
    j = run_json(&(struct req){.method = "GET", .path = "/readyz"}, 503);
    cr_expect_str_eq(jstr(j, "status"), "draining");
    cr_expect_eq(cJSON_GetArraySize(j), 1);
    cJSON_Delete(j);
    j = run_json(&(struct req){.method = "GET", .path = "/healthz"}, 200);
    cJSON_Delete(j);

    struct pr_admin_ctx nodrain = ctx_token;
    nodrain.draining = NULL;
    cJSON_Delete(run_json(&(struct req){.ctx = &nodrain, .method = "GET", .path = "/readyz"}, 200));
}

Test(admin, metrics_and_status_page)
{
    struct pr_admin_response resp;
    run(&(struct req){.method = "GET", .path = "/metrics"}, &resp);
    cr_expect_eq(resp.status, 200);
    cr_expect_str_eq(resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    cr_expect_eq(resp.body_len, strlen("# TYPE podrouter_store_up gauge\npodrouter_store_up 1\n"));
    free(resp.body);

    struct pr_admin_ctx nometrics = ctx_token;
    nometrics.render_metrics = NULL;
    cJSON *j = run_json(&(struct req){.ctx = &nometrics, .method = "GET", .path = "/metrics"}, 404);
    cr_expect_str_eq(jstr(j, "error"), "not_found");
    cJSON_Delete(j);

    const char *paths[] = {"/status", "/", "/status/"};
    for (size_t i = 0; i < 3; i++) {
        run(&(struct req){.method = "GET", .path = paths[i]}, &resp);
        cr_expect_eq(resp.status, 200);
        cr_expect_str_eq(resp.content_type, "text/html; charset=utf-8");
        cr_assert_not_null(resp.body);
        char *html = strndup(resp.body, resp.body_len);
        const char *hooks[] = {"<!doctype html>",
                               "id=\"pods\"",
                               "id=\"ready\"",
                               "id=\"draining\"",
                               "id=\"down\"",
                               "id=\"rooms\"",
                               "id=\"participants\"",
                               "id=\"store\"",
                               "data-pod",
                               "'state'",
                               "'drain'",
                               "/v1/pods",
                               "/v1/cluster",
                               "2000",
                               "Bearer ",
                               "</html>"};
        for (size_t k = 0; k < sizeof(hooks) / sizeof(hooks[0]); k++)
            cr_expect_not_null(strstr(html, hooks[k]), "status page lacks %s", hooks[k]);
        cr_expect_null(strstr(html, "http://"), "no external assets");
        cr_expect_null(strstr(html, "https://"), "no external assets");
        free(html);
        free(resp.body);
    }
}

Test(admin, error_json_helper)
{
    size_t len = 0;
    char *s = pr_error_json("bad_key", "say \"hi\"", &len);
    cr_assert_not_null(s);
    cr_expect_str_eq(s, "{\"error\":\"bad_key\",\"message\":\"say \\\"hi\\\"\"}");
    cr_expect_eq(len, strlen(s));
    free(s);
}

Test(admin, weird_requests_do_not_crash)
{
    struct pr_admin_request q;
    struct pr_admin_response resp;
    memset(&q, 0, sizeof(q));
    pr_admin_handle(&ctx_token, &q, &resp);
    cr_expect_eq(resp.status, 404);
    free(resp.body);

    char longpath[2048];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    q.method = "GET";
    q.path = longpath;
    pr_admin_handle(&ctx_token, &q, &resp);
    cr_expect_eq(resp.status, 404);
    free(resp.body);

    /* Body bytes are length-delimited, not NUL-terminated. */
    static const char body[] = "{\"address\":\"10.1.1.1:80\"}GARBAGE";
    q.method = "PUT";
    q.path = "/v1/pods/nul";
    q.authorization = AUTH;
    q.content_type = JSON;
    q.body = body;
    q.body_len = 25;
    pr_admin_handle(&ctx_token, &q, &resp);
    cr_expect_eq(resp.status, 201, "%.*s", (int)resp.body_len, resp.body);
    free(resp.body);
}

/* SPEC 4.3: without a token file, a loopback write a browser could have sent cross-site is
 * refused (Origin not the listener's own, DNS-name Host, Sec-Fetch-Site cross-site). */
Test(admin, cross_site_writes_refused)
{
    static const struct {
        const char *origin, *host, *site;
        int want;
    } rows[] = {
        {NULL, NULL, NULL, 200},
        {NULL, "127.0.0.1:3002", NULL, 200},
        {NULL, "localhost:3002", NULL, 200},
        {NULL, "[::1]:3002", NULL, 200},
        {"http://127.0.0.1:3002", "127.0.0.1:3002", NULL, 200},
        {"http://localhost:3002", "localhost:3002", "same-origin", 200},
        {NULL, "127.0.0.1:3002", "none", 200},
        {"http://evil.example", "127.0.0.1:3002", NULL, 403},
        {"null", "127.0.0.1:3002", NULL, 403},
        {"http://127.0.0.1:3002", NULL, NULL, 403},
        {"http://evil.example:3002", "evil.example:3002", NULL, 403},
        {NULL, "evil.example:3002", NULL, 403},
        {NULL, "pod-router-admin:3002", NULL, 403},
        {NULL, "127.0.0.1:3002", "cross-site", 403},
        {NULL, "127.0.0.1:3002", "same-site", 403},
        {"https://127.0.0.1:3002", "127.0.0.1:3002", NULL, 403},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct pr_admin_request q = {
            .method = "POST",
            .path = "/v1/pods/backend-0/drain",
            .origin = rows[i].origin,
            .host = rows[i].host,
            .fetch_site = rows[i].site,
            .peer_loopback = true,
        };
        struct pr_admin_response resp;
        pr_admin_handle(&ctx_open, &q, &resp);
        cr_expect_eq(resp.status, rows[i].want, "row %zu (%s, %s, %s): %d, want %d", i,
                     rows[i].origin ? rows[i].origin : "-", rows[i].host ? rows[i].host : "-",
                     rows[i].site ? rows[i].site : "-", resp.status, rows[i].want);
        if (rows[i].want == 403)
            cr_expect(resp.body && strstr(resp.body, "forbidden"));
        free(resp.body);
    }
    /* With a token file, a valid token allows the write whatever the origin. */
    struct pr_admin_request q = {.method = "POST",
                                 .path = "/v1/pods/backend-0/drain",
                                 .authorization = "Bearer " TOKEN,
                                 .origin = "http://evil.example",
                                 .host = "evil.example",
                                 .peer_loopback = false};
    struct pr_admin_response resp;
    pr_admin_handle(&ctx_token, &q, &resp);
    cr_expect_neq(resp.status, 403);
    cr_expect_neq(resp.status, 401);
    free(resp.body);
}
