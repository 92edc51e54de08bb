/* `pod-router drain` (SPEC 2): POST /v1/pods/NAME/drain, then with --wait-empty poll
 * GET /v1/pods/NAME until the pod holds no active room (exit 0) or --timeout passes (exit 3).
 * Used by room-aware rollouts: replace a pod only once no experiment runs on it.
 *
 * Exit status: 0 drained (and empty with --wait-empty), 2 bad usage, 3 timed out with active
 * rooms left, 4 the router does not know the pod, 1 anything else (router unreachable or
 * refusing the drain). Progress goes to stderr, one line per change (and every 30 s). */
#include "podrouter/drain.h"

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
#include "podrouter/registry.h"

#define PROGRESS_EVERY_MS 30000u
#define REQUEST_TIMEOUT_MS 5000u

/* Parsed flags. */
struct drain_opts {
    char admin_url[512];
    char token_file[1024];
    bool wait_empty;
    uint64_t timeout_ms;
    uint64_t poll_ms;
    char name[PR_POD_NAME_MAX + 1];
};

struct drainer {
    uv_loop_t loop;
    uv_timer_t timer;
    struct pr_http_client *http;
    const struct drain_opts *o;
    char auth[4200];
    char path[160];
    uint64_t start, deadline, last_print;
    long last_rooms, last_parts;
    char last_state[16];
    bool drained; /* the drain POST was accepted */
    int status;   /* exit status once done, -1 while running */
};

static const char usage[] =
    "usage: pod-router drain --admin-url URL [--token-file F] [--wait-empty] [--timeout 2h]\n"
    "                        [--poll-interval 1s] NAME\n"
    "\n"
    "Marks pod NAME draining (no new rooms; existing ones keep working). With --wait-empty,\n"
    "waits until the pod holds no active room (exit 0) or --timeout passes (exit 3).\n"
    "Every flag also reads POD_ROUTER_<FLAG> (e.g. POD_ROUTER_ADMIN_URL); a flag wins.\n"
    "Exit status: 0 done, 1 router unreachable or drain refused, 2 bad usage, 3 timed out,\n"
    "4 pod not registered.\n";

const char *pr_drain_usage(void)
{
    return usage;
}

/* true for "1", "true", "yes", "on" (case-sensitive, as the other boolean variables). */
static bool truthy(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
                 strcmp(v, "on") == 0);
}

/* true for "0", "false", "no", "off", "". */
static bool falsy(const char *v)
{
    return v && (v[0] == '\0' || strcmp(v, "0") == 0 || strcmp(v, "false") == 0 ||
                 strcmp(v, "no") == 0 || strcmp(v, "off") == 0);
}

/* Copy v into dst[cap]; false when it does not fit. */
static bool set_str(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

/* Apply one flag value; 0 or PR_CONFIG_ERROR with err filled. */
static int apply(struct drain_opts *o, const char *flag, const char *v, char *err, size_t errlen)
{
    if (strcmp(flag, "admin-url") == 0) {
        struct pr_http_url u;
        if (!set_str(o->admin_url, sizeof(o->admin_url), v) || pr_http_url_parse(v, &u) != 0) {
            snprintf(err, errlen, "--admin-url: not a usable http://host[:port] URL");
            return PR_CONFIG_ERROR;
        }
    } else if (strcmp(flag, "token-file") == 0) {
        if (!set_str(o->token_file, sizeof(o->token_file), v)) {
            snprintf(err, errlen, "--token-file: path too long");
            return PR_CONFIG_ERROR;
        }
    } else if (strcmp(flag, "wait-empty") == 0) {
        if (truthy(v)) {
            o->wait_empty = true;
        } else if (falsy(v)) {
            o->wait_empty = false;
        } else {
            snprintf(err, errlen, "--wait-empty: expected true or false, got \"%.40s\"", v);
            return PR_CONFIG_ERROR;
        }
    } else if (strcmp(flag, "timeout") == 0 || strcmp(flag, "poll-interval") == 0) {
        uint64_t ms;
        if (pr_parse_duration(v, &ms) != 0 || ms == 0) {
            snprintf(err, errlen, "--%s: expected a positive duration like 30s, 10m, 2h", flag);
            return PR_CONFIG_ERROR;
        }
        if (flag[0] == 't')
            o->timeout_ms = ms;
        else
            o->poll_ms = ms;
    } else {
        snprintf(err, errlen, "unknown flag --%.60s", flag);
        return PR_CONFIG_ERROR;
    }
    return PR_CONFIG_OK;
}

static const char *const env_flags[][2] = {
    {"POD_ROUTER_ADMIN_URL", "admin-url"},         {"POD_ROUTER_TOKEN_FILE", "token-file"},
    {"POD_ROUTER_WAIT_EMPTY", "wait-empty"},       {"POD_ROUTER_TIMEOUT", "timeout"},
    {"POD_ROUTER_POLL_INTERVAL", "poll-interval"},
};

/* Parse drain flags (argv[0] is the first flag) over defaults and POD_ROUTER_* variables. */
static enum pr_config_result parse(struct drain_opts *o, int argc, char **argv, char *err,
                                   size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 2 * 3600 * 1000u;
    o->poll_ms = 1000;
    for (size_t i = 0; i < sizeof(env_flags) / sizeof(env_flags[0]); i++) {
        const char *v = getenv(env_flags[i][0]);
        if (v && apply(o, env_flags[i][1], v, err, errlen) != PR_CONFIG_OK) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (from %s)", env_flags[i][0]);
            return PR_CONFIG_ERROR;
        }
    }
    const char *name = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return PR_CONFIG_HELP;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (name) {
                snprintf(err, errlen, "one pod NAME expected, got \"%.60s\" and \"%.60s\"", name,
                         a);
                return PR_CONFIG_ERROR;
            }
            name = a;
            continue;
        }
        char flag[64];
        const char *eq = strchr(a + 2, '=');
        size_t fl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (fl >= sizeof(flag)) {
            snprintf(err, errlen, "unknown flag %.60s", a);
            return PR_CONFIG_ERROR;
        }
        memcpy(flag, a + 2, fl);
        flag[fl] = '\0';
        const char *v = eq ? eq + 1 : NULL;
        if (!v && strcmp(flag, "wait-empty") == 0) {
            v = "true";
        } else if (!v) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s: missing value", flag);
                return PR_CONFIG_ERROR;
            }
            v = argv[++i];
        }
        if (apply(o, flag, v, err, errlen) != PR_CONFIG_OK)
            return PR_CONFIG_ERROR;
    }
    if (!o->admin_url[0]) {
        snprintf(err, errlen, "--admin-url: required (or POD_ROUTER_ADMIN_URL)");
        return PR_CONFIG_ERROR;
    }
    if (!name) {
        snprintf(err, errlen, "the pod NAME to drain is required");
        return PR_CONFIG_ERROR;
    }
    if (!pr_pod_name_valid(name, strlen(name))) {
        snprintf(err, errlen, "NAME: \"%.63s\" is not a pod name ([a-z0-9.-], 1-63)", name);
        return PR_CONFIG_ERROR;
    }
    memcpy(o->name, name, strlen(name) + 1);
    return PR_CONFIG_OK;
}


/* "1h02m03s"-style rendering of ms for progress lines. */
static void fmt_dur(char *out, size_t cap, uint64_t ms)
{
    uint64_t s = ms / 1000, h = s / 3600, m = (s / 60) % 60;
    s %= 60;
    if (h)
        snprintf(out, cap, "%lluh%02llum%02llus", (unsigned long long)h, (unsigned long long)m,
                 (unsigned long long)s);
    else if (m)
        snprintf(out, cap, "%llum%02llus", (unsigned long long)m, (unsigned long long)s);
    else
        snprintf(out, cap, "%llus", (unsigned long long)s);
}

static void send_next(struct drainer *d);

/* Stop the loop with an exit status. */
static void finish(struct drainer *d, int status)
{
    d->status = status;
    uv_timer_stop(&d->timer);
    uv_stop(&d->loop);
}

static void timer_cb(uv_timer_t *t)
{
    send_next(t->data);
}

/* Poll again after the interval (never past the deadline by more than one poll). */
static void again(struct drainer *d)
{
    uv_timer_start(&d->timer, timer_cb, d->o->poll_ms, 0);
}

/* The error message of a JSON error body, or the start of the body. */
static void body_detail(const struct pr_http_response *res, char *out, size_t cap)
{
    out[0] = '\0';
    if (!res || res->body_len == 0)
        return;
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
    if (cJSON_IsString(m))
        snprintf(out, cap, "%s", m->valuestring);
    else
        snprintf(out, cap, "%.*s", (int)(res->body_len < 160 ? res->body_len : 160), res->body);
    cJSON_Delete(j);
}

/* A GET /v1/pods/NAME answer while waiting. */
static void on_pod(struct drainer *d, const struct pr_http_response *res)
{
    const struct drain_opts *o = d->o;
    uint64_t now = uv_now(&d->loop);
    char waited[32], limit[32];
    fmt_dur(waited, sizeof(waited), now - d->start);
    fmt_dur(limit, sizeof(limit), o->timeout_ms);
    if (res->status == 404) {
        fprintf(stderr,
                "pod-router drain: %s is no longer registered: it holds no room (after %s)\n",
                o->name, waited);
        finish(d, 0);
        return;
    }
    cJSON *j = res->status == 200 ? cJSON_ParseWithLength(res->body, res->body_len) : NULL;
    const cJSON *load = j ? cJSON_GetObjectItemCaseSensitive(j, "load") : NULL;
    const cJSON *rooms = load ? cJSON_GetObjectItemCaseSensitive(load, "rooms") : NULL;
    const cJSON *parts = load ? cJSON_GetObjectItemCaseSensitive(load, "participants") : NULL;
    const cJSON *state = j ? cJSON_GetObjectItemCaseSensitive(j, "state") : NULL;
    if (!cJSON_IsNumber(rooms)) {
        char detail[200];
        body_detail(res, detail, sizeof(detail));
        fprintf(stderr, "pod-router drain: %s: unexpected answer %d from the router: %s\n", o->name,
                res->status, detail);
        cJSON_Delete(j);
        if (now >= d->deadline)
            finish(d, 3);
        else
            again(d);
        return;
    }
    long r = (long)rooms->valuedouble;
    long p = cJSON_IsNumber(parts) ? (long)parts->valuedouble : 0;
    char st[16];
    snprintf(st, sizeof(st), "%s", cJSON_IsString(state) ? state->valuestring : "?");
    cJSON_Delete(j);
    if (r <= 0) {
        fprintf(stderr, "pod-router drain: %s holds no active room (%s, after %s)\n", o->name, st,
                waited);
        finish(d, 0);
        return;
    }
    bool changed = r != d->last_rooms || p != d->last_parts || strcmp(st, d->last_state) != 0;
    if (changed || now - d->last_print >= PROGRESS_EVERY_MS) {
        fprintf(stderr,
                "pod-router drain: %s %s: %ld active room%s, %ld participant%s (waited %s of %s)\n",
                o->name, st, r, r == 1 ? "" : "s", p, p == 1 ? "" : "s", waited, limit);
        d->last_print = now;
        d->last_rooms = r;
        d->last_parts = p;
        memcpy(d->last_state, st, sizeof(st));
    }
    if (now >= d->deadline) {
        fprintf(stderr,
                "pod-router drain: timed out after %s: %s still holds %ld active room%s; it "
                "stays draining and its rooms keep running\n",
                waited, o->name, r, r == 1 ? "" : "s");
        finish(d, 3);
        return;
    }
    again(d);
}

static void on_response(struct pr_http_client *c, int err, const struct pr_http_response *res,
                        void *data)
{
    struct drainer *d = data;
    const struct drain_opts *o = d->o;
    uint64_t now = uv_now(&d->loop);
    if (err != 0) {
        fprintf(stderr, "pod-router drain: %s: router %s unreachable: %s\n", o->name, o->admin_url,
                uv_strerror(err));
        if (!d->drained) {
            finish(d, 1);
            return;
        }
        if (now >= d->deadline) {
            finish(d, 3);
            return;
        }
        again(d); /* keep waiting through a router restart */
        return;
    }
    if (!d->drained) {
        char detail[200];
        body_detail(res, detail, sizeof(detail));
        if (res->status == 404) {
            fprintf(stderr, "pod-router drain: %s is not registered at %s\n", o->name,
                    o->admin_url);
            finish(d, 4);
            return;
        }
        if (res->status != 200) {
            fprintf(stderr, "pod-router drain: %s: the router refused the drain: %d %s\n", o->name,
                    res->status, detail);
            finish(d, 1);
            return;
        }
        d->drained = true;
        fprintf(stderr, "pod-router drain: %s is draining: no new rooms go to it\n", o->name);
        if (!o->wait_empty) {
            finish(d, 0);
            return;
        }
        snprintf(d->path, sizeof(d->path), "/v1/pods/%s", o->name);
        send_next(d);
        return;
    }
    on_pod(d, res);
}

/* Send the drain POST (first) or the next GET. */
static void send_next(struct drainer *d)
{
    struct pr_http_header h[1] = {{"Authorization", d->auth}};
    struct pr_http_request req = {
        .method = d->drained ? "GET" : "POST",
        .path = d->path,
        .headers = h,
        .nheaders = d->auth[0] ? 1 : 0,
        .timeout_ms = REQUEST_TIMEOUT_MS,
    };
    int rc = pr_http_client_request(d->http, &req, on_response, d);
    if (rc != 0) {
        fprintf(stderr, "pod-router drain: cannot send a request: %s\n", strerror(-rc));
        finish(d, 1);
    }
}

/* Run the drain; the exit status. */
static int run(const struct drain_opts *o)
{
    struct drainer d;
    memset(&d, 0, sizeof(d));
    d.o = o;
    d.status = -1;
    d.last_rooms = -1;
    if (o->token_file[0]) {
        char tok[4096];
        int rc = pr_read_token_file(o->token_file, tok, sizeof(tok));
        if (rc != 0) {
            fprintf(stderr, "pod-router drain: --token-file: cannot read %s: %s\n", o->token_file,
                    strerror(-rc));
            return 2;
        }
        snprintf(d.auth, sizeof(d.auth), "Bearer %s", tok);
        memset(tok, 0, sizeof(tok));
    }
    if (uv_loop_init(&d.loop) != 0)
        return 1;
    d.http = pr_http_client_create(&d.loop, o->admin_url, true);
    if (!d.http) {
        uv_loop_close(&d.loop);
        fprintf(stderr, "pod-router drain: --admin-url: not a usable http://host[:port] URL\n");
        return 2;
    }
    uv_timer_init(&d.loop, &d.timer);
    d.timer.data = &d;
    d.start = uv_now(&d.loop);
    d.deadline = d.start + o->timeout_ms;
    snprintf(d.path, sizeof(d.path), "/v1/pods/%s/drain", o->name);
    send_next(&d);
    if (d.status < 0)
        uv_run(&d.loop, UV_RUN_DEFAULT);
    pr_http_client_destroy(d.http);
    uv_close((uv_handle_t *)&d.timer, NULL);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    memset(d.auth, 0, sizeof(d.auth));
    return d.status < 0 ? 1 : d.status;
}

int pr_drain_main(int argc, char **argv)
{
    struct drain_opts o;
    char err[512] = "";
    enum pr_config_result r = parse(&o, argc, argv, err, sizeof(err));
    if (r == PR_CONFIG_HELP) {
        fputs(usage, stdout);
        return 0;
    }
    if (r != PR_CONFIG_OK) {
        fprintf(stderr, "pod-router drain: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return run(&o);
}
