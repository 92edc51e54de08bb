/* The registration sidecar: heartbeat PUT /v1/pods/{name}, drain and delete on SIGTERM.
 *
 * One libuv loop, one HTTP client with one request in flight at a time. What to send next
 * is decided by pump() from three "due" flags, in the order DELETE > drain > heartbeat:
 *
 *   running   heartbeat every --interval; capped exponential backoff with jitter while the
 *             router is unreachable or answers 5xx; never exits by itself.
 *   draining  (SIGTERM/SIGINT) POST .../drain, then keep heartbeating for --drain-grace.
 *   leaving   DELETE /v1/pods/{name}, then exit 0. Drain and DELETE retry only for
 *             EXIT_RETRY_MS each, so an unreachable router cannot hold the pod's exit.
 *
 * With --health-url every heartbeat is preceded by GET of that URL (own client, 1 s timeout):
 * only a 2xx answer lets the heartbeat go out. A backend that is still starting is therefore
 * never registered, and one that stops answering (crash loop, hung event loop) stops being
 * heartbeated, so the router marks it down after its --pod-ttl and places its rooms elsewhere;
 * once the URL answers 2xx again, heartbeats resume and the pod is ready again. An unhealthy
 * backend is deliberately NOT drained: the router keeps a drained pod draining across
 * heartbeats (SPEC 4), so a short health blip would take the pod out of placement until it is
 * deleted, while "down" heals by itself with the next heartbeat. */
#include "podrouter/register.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "podrouter/common.h"
#include "podrouter/config.h"
#include "podrouter/http_client.h"
#include "podrouter/log.h"

#define EXIT_RETRY_MS 3000 /* budget for drain, and again for DELETE, after a signal */
#define EXIT_REQ_TIMEOUT_MS 1500
#define EXIT_RETRY_FIRST_MS 200
#define TOKEN_MAX 4096
#define HEALTH_TIMEOUT_MS 1000 /* SPEC 8: the whole health check, connect included */

enum phase { PHASE_RUNNING, PHASE_DRAINING, PHASE_LEAVING, PHASE_DONE };
enum op { OP_NONE, OP_HEARTBEAT, OP_DRAIN, OP_DELETE };

struct sidecar {
    const struct pr_register_config *cfg;
    uv_loop_t loop;
    struct pr_http_client *http;
    struct pr_http_client *health; /* --health-url, or NULL */
    char health_path[256];         /* path of --health-url ("/" when none) */
    bool health_inflight;
    bool healthy;             /* the last health check answered 2xx */
    unsigned health_failures; /* consecutive failed health checks */
    uv_timer_t hb_timer;    /* next heartbeat */
    uv_timer_t retry_timer; /* next attempt of a failed drain or DELETE */
    uv_timer_t grace_timer; /* end of --drain-grace */
    uv_signal_t sigterm, sigint;
    enum phase phase;
    enum op inflight;
    bool hb_due, drain_due, delete_due;
    bool grace_started;
    unsigned hb_failures;   /* consecutive failed heartbeats */
    unsigned exit_attempts; /* attempts of the current drain or DELETE */
    uint64_t exit_deadline; /* loop time after which drain or DELETE stop retrying */
    uint64_t rng;
    char pod_path[96];
    char drain_path[112];
    char *body; /* heartbeat JSON */
    size_t body_len;
};

static void pump(struct sidecar *s);
static void start_leaving(struct sidecar *s);

/* The name of op in logs. */
static const char *op_name(enum op op)
{
    return op == OP_HEARTBEAT ? "heartbeat" : op == OP_DRAIN ? "drain" : "deregister";
}

/* A uniformly distributed number in [0, n) (n > 0), from a per-process xorshift. */
static uint64_t rand_below(struct sidecar *s, uint64_t n)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng % n;
}

/* Delay before the next heartbeat after `failures` consecutive failures: doubling from
 * min(interval, 1s) (at least 100 ms), capped at max(interval, 1s) so a returning router sees the
 * pod again within one interval, with "equal jitter" (half fixed, half random). */
static uint64_t backoff_ms(struct sidecar *s, unsigned failures)
{
    uint64_t iv = s->cfg->interval_ms;
    uint64_t base = iv < 100 ? 100 : iv < 1000 ? iv : 1000, cap = iv > 1000 ? iv : 1000;
    uint64_t d = base;
    for (unsigned i = 1; i < failures && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    return d / 2 + rand_below(s, d / 2 + 1);
}


/* ---- scheduling ------------------------------------------------------------------------ */

static void check_health(struct sidecar *s);

/* The heartbeat interval (or backoff) elapsed: heartbeat, after a health check if asked. */
static void hb_timer_cb(uv_timer_t *t)
{
    struct sidecar *s = t->data;
    if (s->health != NULL) {
        check_health(s);
        return;
    }
    s->hb_due = true;
    pump(s);
}

/* Arms the next heartbeat ms from now. */
static void schedule_heartbeat(struct sidecar *s, uint64_t ms)
{
    s->hb_due = false;
    if (s->phase == PHASE_RUNNING || s->phase == PHASE_DRAINING)
        uv_timer_start(&s->hb_timer, hb_timer_cb, ms, 0);
}

/* Time to try the failed drain or DELETE again. */
static void retry_timer_cb(uv_timer_t *t)
{
    struct sidecar *s = t->data;
    if (s->phase == PHASE_DRAINING)
        s->drain_due = true;
    else if (s->phase == PHASE_LEAVING)
        s->delete_due = true;
    pump(s);
}

/* --drain-grace is over. */
static void grace_timer_cb(uv_timer_t *t)
{
    start_leaving(t->data);
}

/* Starts the grace period once (after the drain was acknowledged or given up). */
static void start_grace(struct sidecar *s)
{
    if (s->grace_started || s->phase != PHASE_DRAINING)
        return;
    s->grace_started = true;
    uv_timer_start(&s->grace_timer, grace_timer_cb, s->cfg->drain_grace_ms, 0);
}

/* Stops everything; uv_run returns once the handles are closed. */
static void finish(struct sidecar *s)
{
    if (s->phase == PHASE_DONE)
        return;
    s->phase = PHASE_DONE;
    pr_http_client_destroy(s->http);
    s->http = NULL;
    pr_http_client_destroy(s->health);
    s->health = NULL;
    uv_close((uv_handle_t *)&s->hb_timer, NULL);
    uv_close((uv_handle_t *)&s->retry_timer, NULL);
    uv_close((uv_handle_t *)&s->grace_timer, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
}

/* ---- responses ------------------------------------------------------------------------ */

/* A short human-readable cause: the router's JSON "message", else the body's start. */
static void response_detail(const struct pr_http_response *res, char *out, size_t outlen)
{
    out[0] = '\0';
    if (res == NULL || res->body_len == 0)
        return;
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
    if (cJSON_IsString(m))
        snprintf(out, outlen, "%s", m->valuestring);
    else
        snprintf(out, outlen, "%.*s", (int)(res->body_len < 200 ? res->body_len : 200), res->body);
    cJSON_Delete(j);
}

/* Logs and schedules the next heartbeat after a heartbeat answer or failure. */
static void heartbeat_done(struct sidecar *s, int err, const struct pr_http_response *res)
{
    const struct pr_register_config *cfg = s->cfg;
    char status[16], retry[24], fails[16], detail[256];
    int code = res ? res->status : 0;
    snprintf(status, sizeof(status), "%d", code);
    if (err == UV_ECANCELED) { /* cut short by a signal: try again at the usual pace */
        schedule_heartbeat(s, cfg->interval_ms);
        return;
    }
    if (err == 0 && (code == 200 || code == 201)) {
        if (code == 201)
            pr_info("registered", "pod", cfg->name, "address", cfg->address, "admin_url",
                    cfg->admin_url, "zone", cfg->zone[0] ? cfg->zone : NULL);
        else if (s->hb_failures > 0)
            pr_info("router reachable again", "pod", cfg->name, "admin_url", cfg->admin_url);
        else
            pr_debug("heartbeat", "pod", cfg->name, "#status", status);
        /* A router that restarted while we drain has forgotten the drain: repeat it. */
        if (code == 201 && s->phase == PHASE_DRAINING) {
            s->drain_due = true;
            s->exit_attempts = 0;
            s->exit_deadline = uv_now(&s->loop) + EXIT_RETRY_MS;
        }
        s->hb_failures = 0;
        schedule_heartbeat(s, cfg->interval_ms);
        return;
    }
    response_detail(res, detail, sizeof(detail));
    if (err != 0 || code >= 500) {
        s->hb_failures++;
        uint64_t wait = backoff_ms(s, s->hb_failures);
        snprintf(retry, sizeof(retry), "%llu", (unsigned long long)wait);
        snprintf(fails, sizeof(fails), "%u", s->hb_failures);
        pr_warn("router unreachable", "pod", cfg->name, "admin_url", cfg->admin_url, "error",
                err ? uv_strerror(err) : detail, "#status", err ? NULL : status, "#failures", fails,
                "#retry_in_ms", retry);
        schedule_heartbeat(s, wait);
        return;
    }
    if (code == 401 || code == 403)
        pr_error("heartbeat rejected: check --token-file against the router's", "pod", cfg->name,
                 "#status", status, "error", detail);
    else
        pr_error("heartbeat rejected", "pod", cfg->name, "#status", status, "error", detail);
    s->hb_failures = 0;
    schedule_heartbeat(s, cfg->interval_ms);
}

/* true (after arming the retry) when a failed drain/DELETE may try again in time. */
static bool exit_retry(struct sidecar *s, enum op op, int err, const struct pr_http_response *res)
{
    if (err == 0 && res->status < 500)
        return false;
    unsigned n = s->exit_attempts > 0 ? s->exit_attempts - 1 : 0;
    unsigned shift = n < 4 ? n : 4;
    uint64_t wait = (uint64_t)EXIT_RETRY_FIRST_MS << shift;
    char detail[256], retry[24], status[16];
    response_detail(res, detail, sizeof(detail));
    snprintf(status, sizeof(status), "%d", res ? res->status : 0);
    uint64_t now = uv_now(&s->loop);
    uint64_t left = s->exit_deadline > now ? s->exit_deadline - now : 0;
    if (left < 2 * EXIT_RETRY_FIRST_MS) {
        pr_warn("router unreachable: giving up", "pod", s->cfg->name, "admin_url",
                s->cfg->admin_url, "op", op_name(op), "error", err ? uv_strerror(err) : detail,
                "#status", err ? NULL : status);
        return false;
    }
    if (wait > left - EXIT_RETRY_FIRST_MS)
        wait = left - EXIT_RETRY_FIRST_MS; /* leave the last attempt some time */
    snprintf(retry, sizeof(retry), "%llu", (unsigned long long)wait);
    pr_warn("router unreachable", "pod", s->cfg->name, "admin_url", s->cfg->admin_url, "op",
            op_name(op), "error", err ? uv_strerror(err) : detail, "#status", err ? NULL : status,
            "#retry_in_ms", retry);
    uv_timer_start(&s->retry_timer, retry_timer_cb, wait, 0);
    return true;
}

/* Handles the answer to POST .../drain: start the grace period unless retrying. */
static void drain_done(struct sidecar *s, int err, const struct pr_http_response *res)
{
    if (err == UV_ECANCELED)
        return;
    s->exit_attempts++;
    if (err == 0 && res->status == 200) {
        pr_debug("drain acknowledged", "pod", s->cfg->name);
    } else if (exit_retry(s, OP_DRAIN, err, res)) {
        return;
    } else if (err == 0 && res->status < 500) {
        char status[16], detail[256];
        snprintf(status, sizeof(status), "%d", res->status);
        response_detail(res, detail, sizeof(detail));
        pr_error("drain rejected", "pod", s->cfg->name, "#status", status, "error", detail);
    }
    start_grace(s);
}

/* Handles the answer to DELETE: exit now unless retrying. */
static void delete_done(struct sidecar *s, int err, const struct pr_http_response *res)
{
    if (err == UV_ECANCELED)
        return;
    s->exit_attempts++;
    char status[16], detail[256];
    snprintf(status, sizeof(status), "%d", res ? res->status : 0);
    if (err == 0 && (res->status == 204 || res->status == 200 || res->status == 404)) {
        pr_info("deregistered", "pod", s->cfg->name, "#status", status);
    } else if (exit_retry(s, OP_DELETE, err, res)) {
        return;
    } else if (err == 0 && res->status < 500) {
        response_detail(res, detail, sizeof(detail));
        pr_error("deregister rejected", "pod", s->cfg->name, "#status", status, "error", detail);
    }
    finish(s);
}

/* Routes a response (or failure) to the handler of the operation that was in flight. */
static void on_response(struct pr_http_client *http, int err, const struct pr_http_response *res,
                        void *data)
{
    struct sidecar *s = data;
    enum op op = s->inflight;
    s->inflight = OP_NONE;
    if (op == OP_HEARTBEAT)
        heartbeat_done(s, err, res);
    else if (op == OP_DRAIN)
        drain_done(s, err, res);
    else if (op == OP_DELETE)
        delete_done(s, err, res);
    if (s->phase != PHASE_DONE && err != UV_ECANCELED)
        pump(s);
}

/* ---- health check (--health-url) ------------------------------------------------------- */

/* The answer to the health GET: heartbeat now when 2xx, else wait one interval and ask again. */
static void health_done(struct pr_http_client *http, int err, const struct pr_http_response *res,
                        void *data)
{
    struct sidecar *s = data;
    const struct pr_register_config *cfg = s->cfg;
    s->health_inflight = false;
    if (err == UV_ECANCELED || s->phase == PHASE_LEAVING || s->phase == PHASE_DONE)
        return;
    char status[16], fails[16];
    snprintf(status, sizeof(status), "%d", res ? res->status : 0);
    if (err == 0 && res->status >= 200 && res->status < 300) {
        if (!s->healthy)
            pr_info("backend healthy: heartbeating", "pod", cfg->name, "health_url",
                    cfg->health_url, "#status", status);
        s->healthy = true;
        s->health_failures = 0;
        s->hb_due = true;
        pump(s);
        return;
    }
    s->health_failures++;
    snprintf(fails, sizeof(fails), "%u", s->health_failures);
    const char *why = err ? uv_strerror(err) : "status is not 2xx";
    if (s->healthy)
        pr_warn("backend unhealthy: heartbeats stopped (the router marks the pod down after its "
                "--pod-ttl)",
                "pod", cfg->name, "health_url", cfg->health_url, "error", why, "#status",
                err ? NULL : status);
    else if (s->health_failures == 1)
        pr_info("backend not healthy yet: not registering", "pod", cfg->name, "health_url",
                cfg->health_url, "error", why, "#status", err ? NULL : status);
    else
        pr_debug("backend still unhealthy", "pod", cfg->name, "error", why, "#status",
                 err ? NULL : status, "#failures", fails);
    s->healthy = false;
    schedule_heartbeat(s, cfg->interval_ms);
}

/* GETs --health-url (1 s for the whole exchange); health_done() decides about the heartbeat. */
static void check_health(struct sidecar *s)
{
    if (s->health_inflight || s->phase == PHASE_LEAVING || s->phase == PHASE_DONE)
        return;
    struct pr_http_request req = {0};
    req.method = "GET";
    req.path = s->health_path;
    req.timeout_ms = HEALTH_TIMEOUT_MS;
    req.connect_timeout_ms = HEALTH_TIMEOUT_MS;
    s->health_inflight = true;
    int rc = pr_http_client_request(s->health, &req, health_done, s);
    if (rc != 0) {
        s->health_inflight = false;
        health_done(s->health, rc == UV_ECANCELED ? UV_EIO : rc, NULL, s);
    }
}

/* ---- requests ------------------------------------------------------------------------- */

/* Sends op; on a synchronous failure reports it like an asynchronous one. */
static void send_op(struct sidecar *s, enum op op)
{
    const struct pr_register_config *cfg = s->cfg;
    char token[TOKEN_MAX], auth[TOKEN_MAX + 16];
    struct pr_http_header headers[2];
    size_t nheaders = 0;
    if (cfg->token_file[0]) {
        int rc = pr_read_token_file(cfg->token_file, token, sizeof(token));
        if (rc == 0) {
            snprintf(auth, sizeof(auth), "Bearer %s", token);
            headers[nheaders++] = (struct pr_http_header){"Authorization", auth};
        } else {
            pr_error("cannot read --token-file; sending without a token", "pod", cfg->name, "file",
                     cfg->token_file, "error",
                     rc == -EILSEQ ? "token contains whitespace or control characters"
                                   : strerror(-rc));
        }
    }
    struct pr_http_request req = {0};
    if (op == OP_HEARTBEAT) {
        headers[nheaders++] = (struct pr_http_header){"Content-Type", "application/json"};
        req.method = "PUT";
        req.path = s->pod_path;
        req.body = s->body;
        req.body_len = s->body_len;
        uint64_t t = cfg->interval_ms < 2000 ? 2000 : cfg->interval_ms;
        req.timeout_ms = t < 10000 ? t : 10000;
        req.connect_timeout_ms = req.timeout_ms < 3000 ? req.timeout_ms : 3000;
    } else {
        req.method = op == OP_DRAIN ? "POST" : "DELETE";
        req.path = op == OP_DRAIN ? s->drain_path : s->pod_path;
        uint64_t now = uv_now(&s->loop);
        uint64_t left = s->exit_deadline > now ? s->exit_deadline - now : 0;
        req.timeout_ms =
            left < EXIT_REQ_TIMEOUT_MS ? (left < 200 ? 200 : left) : EXIT_REQ_TIMEOUT_MS;
        req.connect_timeout_ms = req.timeout_ms;
    }
    req.headers = headers;
    req.nheaders = nheaders;
    s->inflight = op;
    int rc = pr_http_client_request(s->http, &req, on_response, s);
    memset(token, 0, sizeof(token));
    memset(auth, 0, sizeof(auth));
    if (rc != 0) {
        /* Handled like an unreachable router: backoff, or the exit budget. */
        pr_error("cannot send request", "pod", cfg->name, "op", op_name(op), "error",
                 uv_strerror(rc));
        on_response(s->http, rc == UV_ECANCELED ? UV_EIO : rc, NULL, s);
    }
}

/* Sends what is due, DELETE first, unless a request is in flight. */
static void pump(struct sidecar *s)
{
    if (s->inflight != OP_NONE || s->phase == PHASE_DONE)
        return;
    if (s->delete_due) {
        s->delete_due = false;
        send_op(s, OP_DELETE);
    } else if (s->drain_due) {
        s->drain_due = false;
        send_op(s, OP_DRAIN);
    } else if (s->hb_due) {
        s->hb_due = false;
        send_op(s, OP_HEARTBEAT);
    }
}

/* Stops heartbeating and sends DELETE (bounded retries), then exits. */
static void start_leaving(struct sidecar *s)
{
    if (s->phase == PHASE_LEAVING || s->phase == PHASE_DONE)
        return;
    s->phase = PHASE_LEAVING;
    s->hb_due = s->drain_due = false;
    uv_timer_stop(&s->hb_timer);
    uv_timer_stop(&s->retry_timer);
    uv_timer_stop(&s->grace_timer);
    s->exit_attempts = 0;
    s->exit_deadline = uv_now(&s->loop) + EXIT_RETRY_MS;
    s->delete_due = true;
    pr_http_client_cancel(s->http); /* a heartbeat or drain in flight no longer matters */
    pr_http_client_cancel(s->health);
    pump(s);
}

/* SIGTERM/SIGINT: drain, then leave after the grace; a second signal leaves at once. */
static void signal_cb(uv_signal_t *h, int signum)
{
    struct sidecar *s = h->data;
    const char *sig = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (s->phase == PHASE_RUNNING) {
        char grace[24];
        snprintf(grace, sizeof(grace), "%llu", (unsigned long long)s->cfg->drain_grace_ms);
        pr_info("draining", "pod", s->cfg->name, "signal", sig, "#drain_grace_ms", grace);
        s->phase = PHASE_DRAINING;
        s->exit_attempts = 0;
        s->exit_deadline = uv_now(&s->loop) + EXIT_RETRY_MS;
        s->drain_due = true;
        if (s->inflight == OP_HEARTBEAT)
            pr_http_client_cancel(s->http);
        pump(s);
    } else if (s->phase == PHASE_DRAINING) {
        pr_info("second signal: leaving now", "pod", s->cfg->name, "signal", sig);
        start_leaving(s);
    }
}

/* ---- setup ---------------------------------------------------------------------------- */

/* The heartbeat body {"address":…,"capacity":{…},"zone":…}; NULL on no memory. */
static char *heartbeat_body(const struct pr_register_config *cfg)
{
    char *out = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *cap = cJSON_CreateObject();
    if (root == NULL || cap == NULL)
        goto fail;
    if (!cJSON_AddStringToObject(root, "address", cfg->address) ||
        !cJSON_AddNumberToObject(cap, "rooms", cfg->capacity_rooms) ||
        !cJSON_AddNumberToObject(cap, "participants", cfg->capacity_participants))
        goto fail;
    cJSON_AddItemToObject(root, "capacity", cap);
    cap = NULL;
    if (cfg->zone[0] && !cJSON_AddStringToObject(root, "zone", cfg->zone))
        goto fail;
    out = cJSON_PrintUnformatted(root);
fail:
    cJSON_Delete(cap);
    cJSON_Delete(root);
    return out;
}

/* Points a handle of the sidecar back at it. */
static void own_handle(struct sidecar *s, uv_handle_t *h)
{
    h->data = s;
}

/* The --health-url client: base URL scheme://host:port, the URL's path as request path;
 * 0, or -EINVAL with the reason printed. */
static int health_client(struct sidecar *s)
{
    struct pr_http_url hu;
    char base[300];
    if (pr_http_url_parse(s->cfg->health_url, &hu) != 0) {
        fprintf(stderr, "pod-router register: --health-url: not a usable http://host[:port]"
                        "[/path] URL\n");
        return -EINVAL;
    }
    snprintf(base, sizeof(base), strchr(hu.host, ':') ? "http://[%s]:%u" : "http://%s:%u",
             hu.host, (unsigned)hu.port);
    snprintf(s->health_path, sizeof(s->health_path), "%s", hu.path[0] ? hu.path : "/");
    s->health = pr_http_client_create(&s->loop, base, false);
    if (s->health == NULL) {
        fprintf(stderr, "pod-router register: --health-url: unusable URL\n");
        return -EINVAL;
    }
    return 0;
}

/* Starts the timers and the SIGTERM/SIGINT watchers, each pointing back at the sidecar. */
static void start_handles(struct sidecar *s)
{
    uv_timer_init(&s->loop, &s->hb_timer);
    own_handle(s, (uv_handle_t *)&s->hb_timer);
    uv_timer_init(&s->loop, &s->retry_timer);
    own_handle(s, (uv_handle_t *)&s->retry_timer);
    uv_timer_init(&s->loop, &s->grace_timer);
    own_handle(s, (uv_handle_t *)&s->grace_timer);
    uv_signal_init(&s->loop, &s->sigterm);
    own_handle(s, (uv_handle_t *)&s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    own_handle(s, (uv_handle_t *)&s->sigint);
    uv_signal_start(&s->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&s->sigint, signal_cb, SIGINT);
}

/* Runs the sidecar until it has deregistered after a signal; the process exit status. */
static int run(const struct pr_register_config *cfg)
{
    struct sidecar s;
    int status = 1;
    memset(&s, 0, sizeof(s));
    s.cfg = cfg;
    s.rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    snprintf(s.pod_path, sizeof(s.pod_path), "/v1/pods/%s", cfg->name);
    snprintf(s.drain_path, sizeof(s.drain_path), "/v1/pods/%s/drain", cfg->name);
    s.body = heartbeat_body(cfg);
    if (s.body == NULL) {
        fprintf(stderr, "pod-router register: out of memory\n");
        return 1;
    }
    s.body_len = strlen(s.body);
    if (uv_loop_init(&s.loop) != 0) {
        fprintf(stderr, "pod-router register: cannot create the event loop\n");
        goto fail_body;
    }
    s.http = pr_http_client_create(&s.loop, cfg->admin_url, true);
    if (s.http == NULL) {
        fprintf(stderr, "pod-router register: --admin-url: unusable URL (use http://host:port)\n");
        status = 2;
        goto fail_loop;
    }
    if (cfg->health_url[0] && health_client(&s) != 0) {
        status = 2;
        goto fail_http;
    }
    start_handles(&s);

    char interval[24];
    snprintf(interval, sizeof(interval), "%llu", (unsigned long long)cfg->interval_ms);
    pr_info("register sidecar started", "pod", cfg->name, "address", cfg->address, "admin_url",
            cfg->admin_url, "#interval_ms", interval, "token_file",
            cfg->token_file[0] ? cfg->token_file : NULL, "health_url",
            cfg->health_url[0] ? cfg->health_url : NULL);
    if (s.health != NULL) {
        check_health(&s);
    } else {
        s.hb_due = true;
        pump(&s);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    status = 0;
    /* Only a resolution abandoned in the thread pool can still be pending here. */
    while (uv_loop_close(&s.loop) == UV_EBUSY)
        uv_run(&s.loop, UV_RUN_ONCE);
    free(s.body);
    return status;

fail_http:
    pr_http_client_destroy(s.http);
    while (uv_loop_close(&s.loop) == UV_EBUSY)
        uv_run(&s.loop, UV_RUN_ONCE);
    free(s.body);
    return status;
fail_loop:
    uv_loop_close(&s.loop);
fail_body:
    free(s.body);
    return status;
}

/* Parses the register flags and runs the sidecar; the process exit status. */
int pr_register_main(int argc, char **argv)
{
    struct pr_register_config cfg;
    char err[512] = "";
    pr_register_config_defaults(&cfg);
    enum pr_config_result r = pr_register_config_parse(&cfg, argc, argv, err, sizeof(err));
    if (r == PR_CONFIG_HELP) {
        fputs(pr_register_usage(), stdout);
        return 0;
    }
    if (r != PR_CONFIG_OK) {
        fprintf(stderr, "pod-router register: %s\n", err);
        return 2;
    }
    struct pr_http_url url;
    if (pr_http_url_parse(cfg.admin_url, &url) != 0) {
        fprintf(stderr, "pod-router register: --admin-url: not a usable http://host[:port] URL\n");
        return 2;
    }
    pr_log_init(cfg.log_level, cfg.log_format);
    signal(SIGPIPE, SIG_IGN);
    return run(&cfg);
}
