/* Admin API (SPEC 4): routing, authentication, validation and JSON for one request. The HTTP
 * plumbing lives in admin_conn.c; this file is a pure function of (ctx, request). */
#include "podrouter/admin.h"

#include <arpa/inet.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "podrouter/affinity.h"
#include "podrouter/common.h"
#include "podrouter/log.h"
#include "podrouter/registry.h"
#include "podrouter/scaling.h"
#include "podrouter/status_page.h"
#include "podrouter/store.h"

#define CT_JSON "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_HTML "text/html; charset=utf-8"
#define PATH_MAX_LEN 512
#define DEFAULT_CAP_ROOMS 20u
#define DEFAULT_CAP_PARTICIPANTS 80u

#define ALLOW_READ "GET, HEAD"
#define ALLOW_RW "GET, HEAD, PUT, DELETE"
#define ALLOW_POST "POST"

enum route {
    R_NONE = 0,
    R_STATUS,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
    R_PODS,
    R_POD,
    R_DRAIN,
    R_ROOM,
    R_PARTICIPANT,
    R_CLUSTER,
};

/* A matched route and the {name}/{id} it carries (borrowed from the normalized path). */
struct match {
    enum route route;
    const char *allow;
    const char *arg;
};

/* {"error":code,"message":msg} into a malloc'd body; NULL when out of memory. */
char *pr_error_json(const char *code, const char *message, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "error", code ? code : "error");
    cJSON_AddStringToObject(o, "message", message ? message : "");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s && len)
        *len = strlen(s);
    return s;
}

/* Set the status and a borrowed-then-owned body. */
static void respond(struct pr_admin_response *resp, int status, const char *ctype, char *body,
                    size_t len)
{
    resp->status = status;
    resp->content_type = ctype;
    resp->body = body;
    resp->body_len = len;
}

/* An error response with the JSON shape of SPEC 3.4. */
static void respond_error(struct pr_admin_response *resp, int status, const char *code,
                          const char *message)
{
    size_t len = 0;
    char *body = pr_error_json(code, message, &len);
    respond(resp, body ? status : 500, CT_JSON, body, body ? len : 0);
}

/* A JSON response from obj (consumed). */
static void respond_json(struct pr_admin_response *resp, int status, cJSON *obj)
{
    char *body = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!body) {
        respond(resp, 500, CT_JSON, NULL, 0);
        return;
    }
    respond(resp, status, CT_JSON, body, strlen(body));
}

/* true when method is one of the comma-separated names in allow. */
static bool method_allowed(const char *allow, const char *method)
{
    size_t mlen = strlen(method);
    const char *p = allow;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == mlen && memcmp(p, method, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* Match a normalized path (no trailing slash) to a route; cuts "/drain" off path. */
static struct match route_of(const struct pr_admin_ctx *ctx, char *path)
{
    struct match m = {R_NONE, NULL, NULL};
    static const struct {
        const char *path;
        enum route route;
        const char *allow;
    } fixed[] = {
        {"/", R_STATUS, ALLOW_READ},
        {"/status", R_STATUS, ALLOW_READ},
        {"/healthz", R_HEALTHZ, ALLOW_READ},
        {"/readyz", R_READYZ, ALLOW_READ},
        {"/metrics", R_METRICS, ALLOW_READ},
        {"/v1/pods", R_PODS, ALLOW_READ},
        {"/v1/cluster", R_CLUSTER, ALLOW_READ},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(path, fixed[i].path) == 0) {
            if (fixed[i].route == R_METRICS && !ctx->render_metrics)
                return m;
            m.route = fixed[i].route;
            m.allow = fixed[i].allow;
            return m;
        }
    }
    static const struct {
        const char *prefix;
        enum route route;
    } nested[] = {
        {"/v1/pods/", R_POD},
        {"/v1/rooms/", R_ROOM},
        {"/v1/participants/", R_PARTICIPANT},
    };
    for (size_t i = 0; i < sizeof(nested) / sizeof(nested[0]); i++) {
        size_t plen = strlen(nested[i].prefix);
        if (strncmp(path, nested[i].prefix, plen) != 0 || path[plen] == '\0')
            continue;
        char *arg = path + plen;
        char *slash = strchr(arg, '/');
        if (!slash) {
            m.route = nested[i].route;
            m.allow = ALLOW_RW;
            m.arg = arg;
        } else if (nested[i].route == R_POD && strcmp(slash, "/drain") == 0 && slash != arg) {
            m.route = R_DRAIN;
            m.allow = ALLOW_POST;
            m.arg = arg;
            *slash = '\0';
        }
        return m;
    }
    return m;
}

/* true when the Authorization value carries the configured bearer token; the comparison
 * time depends only on the length of what the client sent. */
static bool bearer_ok(const struct pr_admin_ctx *ctx, const char *auth)
{
    if (!auth)
        return false;
    while (*auth == ' ' || *auth == '\t')
        auth++;
    if (strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
        return false;
    const char *p = auth + 7;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    volatile unsigned char diff = len != ctx->token_len;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)p[i] ^ (unsigned char)ctx->token[i % ctx->token_len];
    return len > 0 && diff == 0;
}

/* true when ctype is application/json, optionally followed by parameters. */
static bool content_type_json(const char *ctype)
{
    if (!ctype)
        return false;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    size_t n = strlen(CT_JSON);
    if (strncasecmp(ctype, CT_JSON, n) != 0)
        return false;
    const char *p = ctype + n;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';';
}

/* Parse a request body that must be one JSON object (nothing but whitespace after it). */
static cJSON *parse_object(const struct pr_admin_request *req)
{
    if (!req->body || req->body_len == 0)
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, false);
    if (!root)
        return NULL;
    if (!cJSON_IsObject(root) || !end) {
        cJSON_Delete(root);
        return NULL;
    }
    for (const char *p = end; p < req->body + req->body_len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

/* The pod object of SPEC 4.2. */
static cJSON *pod_json(const struct pr_pod_info *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "address", p->address);
    cJSON_AddStringToObject(o, "state", pr_pod_state_name(p->state));
    if (p->state == PR_POD_DOWN) /* extension: why (heartbeat "expired", or "unreachable") */
        cJSON_AddStringToObject(o, "down_reason", pr_down_reason_name(p->down_reason));
    cJSON *cap = cJSON_AddObjectToObject(o, "capacity");
    if (cap) {
        cJSON_AddNumberToObject(cap, "rooms", p->cap_rooms);
        cJSON_AddNumberToObject(cap, "participants", p->cap_participants);
    }
    cJSON *load = cJSON_AddObjectToObject(o, "load");
    if (load) {
        cJSON_AddNumberToObject(load, "rooms", p->load_rooms);
        cJSON_AddNumberToObject(load, "participants", p->load_participants);
        cJSON_AddNumberToObject(load, "connections", p->load_connections);
    }
    if (p->zone[0])
        cJSON_AddStringToObject(o, "zone", p->zone);
    else
        cJSON_AddNullToObject(o, "zone");
    cJSON_AddNumberToObject(o, "last_seen_ms", (double)p->last_seen_ago_ms);
    cJSON_AddNumberToObject(o, "expires_in_ms", (double)p->expires_in_ms);
    return o;
}

/* Respond with the current row of pod name, or 404. */
static void respond_pod(const struct pr_admin_ctx *ctx, struct pr_admin_response *resp, int status,
                        const char *name)
{
    struct pr_pod_info info;
    if (pr_registry_get(ctx->reg, name, &info) != 0) {
        respond_error(resp, 404, "not_found", "no such pod");
        return;
    }
    respond_json(resp, status, pod_json(&info));
}

/* GET /v1/pods */
static void handle_pods(const struct pr_admin_ctx *ctx, struct pr_admin_response *resp)
{
    struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = o ? cJSON_AddArrayToObject(o, "pods") : NULL;
    if (!pods || !arr) {
        free(pods);
        cJSON_Delete(o);
        respond(resp, 500, CT_JSON, NULL, 0);
        return;
    }
    size_t n = pr_registry_snapshot(ctx->reg, pods, PR_MAX_PODS);
    for (size_t i = 0; i < n && i < PR_MAX_PODS; i++) {
        cJSON *p = pod_json(&pods[i]);
        if (p)
            cJSON_AddItemToArray(arr, p);
    }
    free(pods);
    respond_json(resp, 200, o);
}

/* Read capacity.<field> into *out: absent/null keeps the default; else an integer >= 1. */
static bool capacity_field(const cJSON *cap, const char *field, uint32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cap, field);
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 1 && d <= UINT32_MAX) || floor(d) != d)
        return false;
    *out = (uint32_t)d;
    return true;
}

/* PUT /v1/pods/{name}: register (201) or heartbeat (200). */
static void handle_pod_put(const struct pr_admin_ctx *ctx, const struct pr_admin_request *req,
                           struct pr_admin_response *resp, const char *name)
{
    if (!pr_pod_name_valid(name, strlen(name))) {
        respond_error(resp, 400, "bad_field",
                      "name: must match ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$");
        return;
    }
    cJSON *root = parse_object(req);
    if (!root) {
        respond_error(resp, 400, "bad_json", "body must be a JSON object");
        return;
    }
    const cJSON *addr = cJSON_GetObjectItemCaseSensitive(root, "address");
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(root, "capacity");
    const cJSON *zone = cJSON_GetObjectItemCaseSensitive(root, "zone");
    uint32_t cap_rooms = DEFAULT_CAP_ROOMS, cap_participants = DEFAULT_CAP_PARTICIPANTS;
    const char *bad = NULL;
    if (!cJSON_IsString(addr) ||
        !pr_pod_address_valid(addr->valuestring, strlen(addr->valuestring)))
        bad = "address: required string host:port or [v6]:port (port 1-65535)";
    else if (cap && !cJSON_IsNull(cap) && !cJSON_IsObject(cap))
        bad = "capacity: must be an object {\"rooms\":n,\"participants\":n}";
    else if (cJSON_IsObject(cap) && !capacity_field(cap, "rooms", &cap_rooms))
        bad = "capacity.rooms: must be an integer >= 1";
    else if (cJSON_IsObject(cap) && !capacity_field(cap, "participants", &cap_participants))
        bad = "capacity.participants: must be an integer >= 1";
    else if (zone && !cJSON_IsNull(zone) &&
             (!cJSON_IsString(zone) || strlen(zone->valuestring) > PR_ZONE_MAX))
        bad = "zone: must be a string of at most 63 bytes";
    if (bad) {
        cJSON_Delete(root);
        respond_error(resp, 400, "bad_field", bad);
        return;
    }
    const char *address = addr->valuestring;
    const char *zone_s = cJSON_IsString(zone) ? zone->valuestring : "";
    struct pr_pod_info before;
    bool existed = pr_registry_get(ctx->reg, name, &before) == 0;
    bool created = false;
    int rc =
        pr_registry_put(ctx->reg, name, address, cap_rooms, cap_participants, zone_s, &created);
    if (rc == 0 && created)
        pr_info("pod registered", "pod", name, "address", address, "zone",
                zone_s[0] ? zone_s : NULL);
    else if (rc == 0 && existed && strcmp(before.address, address) != 0)
        pr_info("pod address changed", "pod", name, "address", address, "old_address",
                before.address);
    else if (rc == 0 && existed && before.state == PR_POD_DOWN)
        pr_info("pod back up", "pod", name, "address", address);
    cJSON_Delete(root);
    if (rc == -ENOSPC) {
        respond_error(resp, 409, "conflict", "pod table is full");
        return;
    }
    if (rc != 0) {
        respond_error(resp, 400, "bad_field", "zone: must not contain control characters");
        return;
    }
    if (ctx->store && ctx->store->ops->pod_put)
        ctx->store->ops->pod_put(ctx->store, name);
    respond_pod(ctx, resp, created ? 201 : 200, name);
}

/* /v1/pods/{name} and /v1/pods/{name}/drain */
static void handle_pod(const struct pr_admin_ctx *ctx, const struct pr_admin_request *req,
                       struct pr_admin_response *resp, enum route route, const char *name)
{
    const char *m = req->method;
    if (route == R_DRAIN) {
        if (pr_registry_drain(ctx->reg, name) != 0) {
            respond_error(resp, 404, "not_found", "no such pod");
            return;
        }
        if (ctx->store && ctx->store->ops->pod_drain)
            ctx->store->ops->pod_drain(ctx->store, name);
        pr_info("pod draining", "pod", name);
        respond_pod(ctx, resp, 200, name);
    } else if (strcmp(m, "PUT") == 0) {
        handle_pod_put(ctx, req, resp, name);
    } else if (strcmp(m, "DELETE") == 0) {
        if (pr_registry_delete(ctx->reg, name) != 0) {
            respond_error(resp, 404, "not_found", "no such pod");
            return;
        }
        if (ctx->store)
            ctx->store->ops->release_pod(ctx->store, name);
        if (ctx->store && ctx->store->ops->pod_delete)
            ctx->store->ops->pod_delete(ctx->store, name);
        pr_info("pod deleted", "pod", name);
        respond(resp, 204, NULL, NULL, 0);
    } else {
        respond_pod(ctx, resp, 200, name);
    }
}

/* The assignment object of a room or participant. */
static cJSON *assignment_json(enum pr_key_kind kind, const char *id, const struct pr_assignment *a)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, kind == PR_KEY_ROOM ? "room" : "participant", id);
    cJSON_AddStringToObject(o, "pod", a->pod);
    if (kind == PR_KEY_ROOM)
        cJSON_AddNumberToObject(o, "participantCount", a->participant_count);
    cJSON_AddNumberToObject(o, "assignedAt", (double)a->assigned_at_ms);
    return o;
}

/* Respond with the stored assignment of kind:id, 404 or 503. */
static void respond_assignment(const struct pr_admin_ctx *ctx, struct pr_admin_response *resp,
                               enum pr_key_kind kind, const char *id)
{
    struct pr_assignment a;
    memset(&a, 0, sizeof(a));
    int rc = ctx->store->ops->info(ctx->store, kind, id, strlen(id), &a);
    if (rc == -ENOENT)
        respond_error(resp, 404, "not_found",
                      kind == PR_KEY_ROOM ? "room is not assigned" : "participant is not assigned");
    else if (rc != 0)
        respond_error(resp, 503, "store_unavailable", "store error");
    else
        respond_json(resp, 200, assignment_json(kind, id, &a));
}

/* PUT /v1/{rooms,participants}/{id}: operator pin to a known, not-down pod. */
static void handle_assignment_put(const struct pr_admin_ctx *ctx,
                                  const struct pr_admin_request *req,
                                  struct pr_admin_response *resp, enum pr_key_kind kind,
                                  const char *id)
{
    cJSON *root = parse_object(req);
    if (!root) {
        respond_error(resp, 400, "bad_json", "body must be a JSON object");
        return;
    }
    const cJSON *pod = cJSON_GetObjectItemCaseSensitive(root, "pod");
    if (!cJSON_IsString(pod) || !pr_pod_name_valid(pod->valuestring, strlen(pod->valuestring))) {
        cJSON_Delete(root);
        respond_error(resp, 400, "bad_field", "pod: required string, a valid pod name");
        return;
    }
    char name[PR_POD_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%s", pod->valuestring);
    cJSON_Delete(root);

    struct pr_pod_info info;
    char msg[128];
    if (pr_registry_get(ctx->reg, name, &info) != 0) {
        snprintf(msg, sizeof(msg), "pod %s is unknown", name);
        respond_error(resp, 409, "conflict", msg);
        return;
    }
    if (info.state == PR_POD_DOWN) {
        snprintf(msg, sizeof(msg), "pod %s is down", name);
        respond_error(resp, 409, "conflict", msg);
        return;
    }
    int rc = ctx->store->ops->set(ctx->store, kind, id, strlen(id), name);
    if (rc != 0) {
        respond_error(resp, 503, "store_unavailable", "store error");
        return;
    }
    if (kind == PR_KEY_ROOM)
        pr_info("room pinned", "room", id, "pod", name);
    else
        pr_info("participant pinned", "participant", id, "pod", name);
    respond_assignment(ctx, resp, kind, id);
}

/* /v1/rooms/{id} and /v1/participants/{id} */
static void handle_assignment(const struct pr_admin_ctx *ctx, const struct pr_admin_request *req,
                              struct pr_admin_response *resp, enum pr_key_kind kind, const char *id)
{
    if (!pr_key_valid(id, strlen(id))) {
        respond_error(resp, 400, "bad_key", "ids are 1-128 bytes of [A-Za-z0-9_.:-]");
        return;
    }
    if (!ctx->store) {
        respond_error(resp, 503, "store_unavailable", "no store");
        return;
    }
    const char *m = req->method;
    if (strcmp(m, "PUT") == 0) {
        handle_assignment_put(ctx, req, resp, kind, id);
    } else if (strcmp(m, "DELETE") == 0) {
        int rc = ctx->store->ops->del(ctx->store, kind, id, strlen(id));
        if (rc == -ENOENT) {
            respond_error(resp, 404, "not_found", "not assigned");
        } else if (rc != 0) {
            respond_error(resp, 503, "store_unavailable", "store error");
        } else {
            if (kind == PR_KEY_ROOM)
                pr_info("room unassigned", "room", id);
            else
                pr_info("participant unassigned", "participant", id);
            respond(resp, 204, NULL, NULL, 0);
        }
    } else {
        respond_assignment(ctx, resp, kind, id);
    }
}

/* true when the store answers (no store counts as degraded). */
static bool store_up(const struct pr_admin_ctx *ctx)
{
    return ctx->store && ctx->store->ops->up(ctx->store);
}

/* GET /v1/cluster */
static void handle_cluster(const struct pr_admin_ctx *ctx, struct pr_admin_response *resp)
{
    uint32_t ready = 0, draining = 0, down = 0;
    uint64_t rooms = 0, participants = 0;
    pr_registry_counts(ctx->reg, &ready, &draining, &down);
    if (ctx->store)
        ctx->store->ops->counts(ctx->store, &rooms, &participants);
    cJSON *o = cJSON_CreateObject();
    cJSON *pods = o ? cJSON_AddObjectToObject(o, "pods") : NULL;
    if (pods) {
        cJSON_AddNumberToObject(pods, "ready", ready);
        cJSON_AddNumberToObject(pods, "draining", draining);
        cJSON_AddNumberToObject(pods, "down", down);
    }
    uint64_t active_rooms = 0, active_participants = 0;
    uint32_t desired = 0;
    struct pr_pod_info *all = malloc(PR_MAX_PODS * sizeof(*all));
    if (all) {
        size_t n = pr_registry_snapshot(ctx->reg, all, PR_MAX_PODS);
        if (n > PR_MAX_PODS)
            n = PR_MAX_PODS;
        for (size_t i = 0; i < n; i++) {
            active_rooms += all[i].load_rooms;
            active_participants += all[i].load_participants;
        }
        struct pr_desired_params dp = pr_scaling_params(ctx->cfg);
        desired = pr_scaling_desired_of(all, n, &dp);
        free(all);
    }
    if (o) {
        cJSON_AddNumberToObject(o, "rooms", (double)rooms);
        cJSON_AddNumberToObject(o, "participants", (double)participants);
        cJSON_AddNumberToObject(o, "activeRooms", (double)active_rooms);
        cJSON_AddNumberToObject(o, "activeParticipants", (double)active_participants);
        cJSON_AddNumberToObject(o, "desiredReplicas", desired);
        cJSON_AddNumberToObject(o, "roomsInterrupted", (double)pr_scaling_rooms_interrupted());
        cJSON_AddStringToObject(o, "store", store_up(ctx) ? "up" : "degraded");
    }
    respond_json(resp, 200, o);
}

/* GET /readyz */
static void handle_readyz(const struct pr_admin_ctx *ctx, struct pr_admin_response *resp)
{
    cJSON *o = cJSON_CreateObject();
    if (ctx->draining && ctx->draining()) {
        cJSON_AddStringToObject(o, "status", "draining");
        respond_json(resp, 503, o);
        return;
    }
    cJSON_AddStringToObject(o, "status", "ready");
    cJSON_AddStringToObject(o, "store", store_up(ctx) ? "up" : "degraded");
    respond_json(resp, 200, o);
}

/* Static-text responses: health, metrics, status page. */
static void handle_text(const struct pr_admin_ctx *ctx, struct pr_admin_response *resp,
                        enum route route)
{
    if (route == R_HEALTHZ) {
        static const char ok[] = "{\"status\":\"ok\"}";
        char *body = strdup(ok);
        respond(resp, body ? 200 : 500, CT_JSON, body, body ? sizeof(ok) - 1 : 0);
    } else if (route == R_METRICS) {
        size_t len = 0;
        char *body = ctx->render_metrics(&len);
        if (!body)
            respond_error(resp, 500, "internal", "metrics unavailable");
        else
            respond(resp, 200, CT_METRICS, body, len);
    } else {
        size_t len = strlen(pr_status_page_html);
        char *body = malloc(len);
        if (body)
            memcpy(body, pr_status_page_html, len);
        respond(resp, body ? 200 : 500, CT_HTML, body, body ? len : 0);
    }
}

/* true when host[0..len) is an IP literal or localhost, with an optional :port. */
static bool host_is_local_name(const char *h, size_t len)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, h, len);
    buf[len] = '\0';
    char *host = buf;
    if (buf[0] == '[') {
        char *rb = strchr(buf, ']');
        if (!rb || (rb[1] != '\0' && rb[1] != ':'))
            return false;
        *rb = '\0';
        host = buf + 1;
        unsigned char a[16];
        return inet_pton(AF_INET6, host, a) == 1;
    }
    char *colon = strchr(buf, ':');
    if (colon)
        *colon = '\0';
    unsigned char a[4];
    return strcasecmp(host, "localhost") == 0 || inet_pton(AF_INET, host, a) == 1;
}

/* A write a browser could have sent from another site (SPEC 4.3): an Origin other than the
 * admin listener's own, a Host that is a DNS name (rebinding), or Sec-Fetch-Site saying so. */
static bool cross_site(const struct pr_admin_request *req)
{
    if (req->host && !host_is_local_name(req->host, strlen(req->host)))
        return true;
    if (req->origin) {
        if (!req->host)
            return true;
        size_t hl = strlen(req->host);
        if (strncasecmp(req->origin, "http://", 7) != 0 || strlen(req->origin) != 7 + hl ||
            strncasecmp(req->origin + 7, req->host, hl) != 0)
            return true;
    }
    if (req->fetch_site && strcasecmp(req->fetch_site, "same-origin") != 0 &&
        strcasecmp(req->fetch_site, "none") != 0)
        return true;
    return false;
}

/* Authorize a write (SPEC 4.3); false after filling resp with 401/403. */
static bool authorize_write(const struct pr_admin_ctx *ctx, const struct pr_admin_request *req,
                            struct pr_admin_response *resp)
{
    if (ctx->token && ctx->token_len > 0) {
        if (bearer_ok(ctx, req->authorization))
            return true;
        snprintf(resp->extra_headers, sizeof(resp->extra_headers), "WWW-Authenticate: Bearer\r\n");
        respond_error(resp, 401, "unauthorized", "a valid bearer token is required");
        return false;
    }
    if (!req->peer_loopback) {
        respond_error(resp, 403, "forbidden",
                      "writes are accepted from loopback only (no --token-file)");
        return false;
    }
    if (cross_site(req)) {
        respond_error(resp, 403, "forbidden",
                      "cross-site admin writes are refused (Origin or Host is not this listener)");
        return false;
    }
    return true;
}

/* Answer one admin request synchronously into resp (body malloc'd, caller frees). */
void pr_admin_handle(const struct pr_admin_ctx *ctx, const struct pr_admin_request *req,
                     struct pr_admin_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    const char *method = req->method ? req->method : "";
    const char *raw = req->path ? req->path : "";
    char path[PATH_MAX_LEN];
    size_t plen = strlen(raw);
    if (plen >= sizeof(path)) {
        respond_error(resp, 404, "not_found", "no such route");
        return;
    }
    memcpy(path, raw, plen + 1);
    if (plen > 1 && path[plen - 1] == '/')
        path[--plen] = '\0';

    struct match m = route_of(ctx, path);
    if (m.route == R_NONE) {
        respond_error(resp, 404, "not_found", "no such route");
        return;
    }
    if (!method_allowed(m.allow, method)) {
        snprintf(resp->extra_headers, sizeof(resp->extra_headers), "Allow: %s\r\n", m.allow);
        respond_error(resp, 405, "method_not_allowed", "method not allowed on this route");
        return;
    }
    bool write = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    if (write && !authorize_write(ctx, req, resp))
        return;
    if (req->body_len > PR_ADMIN_BODY_MAX) {
        respond_error(resp, 413, "body_too_large", "request body is over 64 KiB");
        return;
    }
    if (strcmp(method, "PUT") == 0 && req->body_len > 0 && !content_type_json(req->content_type)) {
        respond_error(resp, 415, "unsupported_media_type", "Content-Type must be application/json");
        return;
    }

    switch (m.route) {
    case R_HEALTHZ:
    case R_METRICS:
    case R_STATUS:
        handle_text(ctx, resp, m.route);
        break;
    case R_READYZ:
        handle_readyz(ctx, resp);
        break;
    case R_PODS:
        handle_pods(ctx, resp);
        break;
    case R_POD:
    case R_DRAIN:
        handle_pod(ctx, req, resp, m.route, m.arg);
        break;
    case R_ROOM:
        handle_assignment(ctx, req, resp, PR_KEY_ROOM, m.arg);
        break;
    case R_PARTICIPANT:
        handle_assignment(ctx, req, resp, PR_KEY_PARTICIPANT, m.arg);
        break;
    case R_CLUSTER:
        handle_cluster(ctx, resp);
        break;
    case R_NONE:
        break;
    }
}
