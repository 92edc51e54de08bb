/* Unit tests of the registration sidecar (register.h): pr_register_main() runs on the test's
 * main thread against a scripted admin server on 127.0.0.1:0 in a second thread; the
 * server signals the process to stop the sidecar. Logs (stdout) go to a temporary file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "podrouter/register.h"

#define MAX_SEEN 256

struct seen {
    char method[8];
    char path[64];
    char auth[64];
    char body[256];
    uint64_t ms; /* since the server started */
};

/* What the server answers to request number i (0-based) of a method; 0 closes the socket. */
typedef int (*responder_fn)(const char *method, int i);

struct server {
    uv_loop_t loop;
    uv_tcp_t tcp;
    uv_async_t stop;
    pthread_t thread;
    pthread_mutex_t mu;
    int port;
    uint64_t t0;
    responder_fn respond;
    int sigterm_after_puts; /* raise SIGTERM when this many PUTs were answered (0: never) */
    void (*on_put)(int nput);
    int (*health)(int i);     /* status of GET number i (the --health-url checks) */
    int sigterm_after_gets;   /* raise SIGTERM when this many GETs were answered (0: never) */
    int nput, npost, ndelete, nget;
    int nseen;
    struct seen seen[MAX_SEEN];
};

struct sconn {
    uv_tcp_t tcp;
    struct server *srv;
    size_t len;
    char buf[8192];
    char out[512];
    uv_write_t w;
};

static struct server srv;

static void sconn_close_cb(uv_handle_t *h)
{
    free(h->data);
}

static void sconn_close(struct sconn *sc)
{
    if (!uv_is_closing((uv_handle_t *)&sc->tcp))
        uv_close((uv_handle_t *)&sc->tcp, sconn_close_cb);
}

static void write_cb(uv_write_t *w, int status)
{
    (void)w;
}

/* Copies the value of header name (case-insensitive) in head[0..len) into out. */
static void header_value(const char *head, size_t len, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = head; p + nl < head + len; p++) {
        if ((p == head || p[-1] == '\n') && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r");
            snprintf(out, cap, "%.*s", (int)n, v);
            return;
        }
    }
}

/* Records and answers each complete request. */
static void serve(struct sconn *sc)
{
    struct server *s = sc->srv;
    char *end = memmem(sc->buf, sc->len, "\r\n\r\n", 4);
    if (end == NULL)
        return;
    size_t head = (size_t)(end - sc->buf) + 4;
    char cl[16];
    header_value(sc->buf, head, "Content-Length", cl, sizeof(cl));
    size_t body = strtoul(cl, NULL, 10);
    if (sc->len < head + body)
        return;
    struct seen e;
    memset(&e, 0, sizeof(e));
    sscanf(sc->buf, "%7s %63s", e.method, e.path);
    header_value(sc->buf, head, "Authorization", e.auth, sizeof(e.auth));
    snprintf(e.body, sizeof(e.body), "%.*s", (int)body, sc->buf + head);
    e.ms = uv_now(&s->loop) - s->t0;
    memmove(sc->buf, sc->buf + head + body, sc->len - head - body);
    sc->len -= head + body;

    pthread_mutex_lock(&s->mu);
    int i = strcmp(e.method, "PUT") == 0    ? s->nput++
            : strcmp(e.method, "POST") == 0 ? s->npost++
            : strcmp(e.method, "GET") == 0  ? s->nget++
                                            : s->ndelete++;
    if (s->nseen < MAX_SEEN)
        s->seen[s->nseen++] = e;
    pthread_mutex_unlock(&s->mu);

    bool get = strcmp(e.method, "GET") == 0;
    int status = get ? (s->health ? s->health(i) : 200) : s->respond(e.method, i);
    if (get && s->sigterm_after_gets && i + 1 == s->sigterm_after_gets)
        kill(getpid(), SIGTERM);
    if (status == 0) {
        sconn_close(sc);
        return;
    }
    int n = status == 204 ? snprintf(sc->out, sizeof(sc->out), "HTTP/1.1 204 No Content\r\n\r\n")
                          : snprintf(sc->out, sizeof(sc->out),
                                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                                     "Content-Length: 41\r\n\r\n"
                                     "{\"error\":\"x\",\"message\":\"scripted answer\"}",
                                     status);
    uv_buf_t b = uv_buf_init(sc->out, (unsigned)n);
    uv_write(&sc->w, (uv_stream_t *)&sc->tcp, &b, 1, write_cb);
    if (strcmp(e.method, "PUT") == 0) {
        if (s->on_put)
            s->on_put(i + 1);
        if (s->sigterm_after_puts && i + 1 == s->sigterm_after_puts)
            kill(getpid(), SIGTERM);
    }
}

static void salloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sconn *sc = h->data;
    buf->base = sc->buf + sc->len;
    buf->len = sizeof(sc->buf) - sc->len;
}

static void sread(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *sc = st->data;
    if (nread < 0) {
        sconn_close(sc);
        return;
    }
    sc->len += (size_t)nread;
    serve(sc);
}

static void on_conn(uv_stream_t *server, int status)
{
    struct server *s = server->data;
    struct sconn *sc = calloc(1, sizeof(*sc));
    sc->srv = s;
    uv_tcp_init(&s->loop, &sc->tcp);
    sc->tcp.data = sc;
    if (uv_accept(server, (uv_stream_t *)&sc->tcp) != 0) {
        sconn_close(sc);
        return;
    }
    uv_read_start((uv_stream_t *)&sc->tcp, salloc, sread);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&srv.tcp)
        uv_close(h, sconn_close_cb);
    else
        uv_close(h, NULL);
}

static void stop_cb(uv_async_t *a)
{
    uv_walk(a->loop, close_walk, NULL);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    return NULL;
}

static void server_start(responder_fn respond)
{
    memset(&srv, 0, sizeof(srv));
    srv.respond = respond;
    pthread_mutex_init(&srv.mu, NULL);
    cr_assert_eq(uv_loop_init(&srv.loop), 0);
    uv_tcp_init(&srv.loop, &srv.tcp);
    srv.tcp.data = &srv;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    cr_assert_eq(uv_tcp_bind(&srv.tcp, (const struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&srv.tcp, 16, on_conn), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&srv.tcp, (struct sockaddr *)&ss, &len);
    srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_async_init(&srv.loop, &srv.stop, stop_cb);
    uv_update_time(&srv.loop);
    srv.t0 = uv_now(&srv.loop);
    cr_assert_eq(pthread_create(&srv.thread, NULL, server_main, &srv), 0);
}

static void server_stop(void)
{
    uv_async_send(&srv.stop);
    pthread_join(srv.thread, NULL);
    pthread_mutex_destroy(&srv.mu);
}

/* ---- helpers -------------------------------------------------------------------------- */

static char log_path[64];
static int saved_stdout = -1;

/* Sends stdout (the sidecar's log) to a temporary file. */
static void capture_log(void)
{
    snprintf(log_path, sizeof(log_path), "/tmp/register_test_%d.log", (int)getpid());
    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    FILE *f = fopen(log_path, "w");
    cr_assert_not_null(f);
    dup2(fileno(f), STDOUT_FILENO);
    fclose(f);
}

/* Restores stdout and returns the captured log (static buffer). */
static const char *captured_log(void)
{
    static char buf[1 << 16];
    fflush(stdout);
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);
    FILE *f = fopen(log_path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    unlink(log_path);
    return buf;
}

static const char *health_url_arg; /* --health-url of the next run_sidecar(), or NULL */

static int run_sidecar(const char *interval, const char *grace, const char *token_file)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
    char *argv[20];
    int argc = 0;
    argv[argc++] = "--admin-url";
    argv[argc++] = url;
    argv[argc++] = "--name";
    argv[argc++] = "backend-3";
    argv[argc++] = "--address";
    argv[argc++] = "10.0.0.3:3000";
    argv[argc++] = "--zone";
    argv[argc++] = "z1";
    argv[argc++] = "--capacity-rooms";
    argv[argc++] = "7";
    argv[argc++] = "--interval";
    argv[argc++] = (char *)interval;
    argv[argc++] = "--drain-grace";
    argv[argc++] = (char *)grace;
    argv[argc++] = "--log-level";
    argv[argc++] = "debug";
    if (token_file) {
        argv[argc++] = "--token-file";
        argv[argc++] = (char *)token_file;
    }
    if (health_url_arg) {
        argv[argc++] = "--health-url";
        argv[argc++] = (char *)health_url_arg;
    }
    argv[argc] = NULL;
    return pr_register_main(argc, argv);
}

static int always_ok(const char *method, int i)
{
    if (strcmp(method, "PUT") == 0)
        return i == 0 ? 201 : 200;
    return strcmp(method, "POST") == 0 ? 200 : 204;
}

static const struct seen *find(const char *method, int nth)
{
    for (int i = 0; i < srv.nseen; i++)
        if (strcmp(srv.seen[i].method, method) == 0 && nth-- == 0)
            return &srv.seen[i];
    return NULL;
}

/* ---- tests ---------------------------------------------------------------------------- */

Test(register_sidecar, heartbeats_then_drain_grace_delete_exit, .timeout = 20)
{
    server_start(always_ok);
    srv.sigterm_after_puts = 3;
    capture_log();
    int rc = run_sidecar("100ms", "500ms", NULL);
    const char *log = captured_log();
    server_stop();
    cr_assert_eq(rc, 0);

    const struct seen *put0 = find("PUT", 0), *drain = find("POST", 0), *del = find("DELETE", 0);
    cr_assert_not_null(put0);
    cr_assert_str_eq(put0->path, "/v1/pods/backend-3");
    cr_assert_str_eq(put0->body, "{\"address\":\"10.0.0.3:3000\",\"capacity\":{\"rooms\":7,"
                                 "\"participants\":80},\"zone\":\"z1\"}");
    cr_assert_str_eq(put0->auth, "");
    cr_assert_not_null(drain);
    cr_assert_str_eq(drain->path, "/v1/pods/backend-3/drain");
    cr_assert_not_null(del);
    cr_assert_str_eq(del->path, "/v1/pods/backend-3");
    cr_assert_eq(srv.ndelete, 1);
    cr_assert_eq(srv.npost, 1);
    /* Heartbeats go on during the grace, which lasts --drain-grace after the drain. */
    int during = 0;
    for (int i = 0; i < srv.nseen; i++)
        if (strcmp(srv.seen[i].method, "PUT") == 0 && srv.seen[i].ms > drain->ms &&
            srv.seen[i].ms < del->ms)
            during++;
    cr_assert(during >= 3, "%d heartbeats during the grace", during);
    cr_assert(del->ms - drain->ms >= 490 && del->ms - drain->ms < 1500, "grace %llu ms",
              (unsigned long long)(del->ms - drain->ms));
    cr_assert_eq(strcmp(srv.seen[srv.nseen - 1].method, "DELETE"), 0, "DELETE comes last");
    /* Heartbeats every ~100 ms. */
    const struct seen *put1 = find("PUT", 1), *put2 = find("PUT", 2);
    cr_assert(put2->ms - put1->ms >= 90 && put2->ms - put1->ms < 400);

    cr_assert_not_null(strstr(log, "\"msg\":\"registered\""), "%s", log);
    cr_assert_not_null(strstr(log, "\"msg\":\"heartbeat\""));
    cr_assert_not_null(strstr(log, "\"msg\":\"draining\""));
    cr_assert_not_null(strstr(log, "\"msg\":\"deregistered\""));
    cr_assert_null(strstr(log, "\"level\":\"warn\""), "%s", log);
}

static int unavailable_three_times(const char *method, int i)
{
    if (strcmp(method, "PUT") == 0)
        return i == 0 ? 0 : i < 3 ? 503 : i == 3 ? 201 : 200;
    return always_ok(method, i);
}

Test(register_sidecar, unreachable_and_5xx_back_off_then_register, .timeout = 20)
{
    server_start(unavailable_three_times);
    srv.sigterm_after_puts = 6;
    capture_log();
    int rc = run_sidecar("200ms", "0s", NULL);
    const char *log = captured_log();
    server_stop();
    cr_assert_eq(rc, 0);
    /* Backoff doubles from 200 ms with "equal jitter": [100,200], [200,400], [400,800]. */
    uint64_t gap1 = find("PUT", 1)->ms - find("PUT", 0)->ms;
    uint64_t gap2 = find("PUT", 2)->ms - find("PUT", 1)->ms;
    uint64_t gap3 = find("PUT", 3)->ms - find("PUT", 2)->ms;
    cr_assert(gap1 >= 90 && gap1 <= 350, "gap1 %llu", (unsigned long long)gap1);
    cr_assert(gap2 >= 190 && gap2 <= 550, "gap2 %llu", (unsigned long long)gap2);
    cr_assert(gap3 >= 390 && gap3 <= 950, "gap3 %llu", (unsigned long long)gap3);
    const char *warn = strstr(log, "\"msg\":\"router unreachable\"");
    cr_assert_not_null(warn, "%s", log);
    cr_assert_not_null(strstr(log, "\"retry_in_ms\":"));
    cr_assert_not_null(strstr(log, "\"status\":503"));
    cr_assert_not_null(strstr(warn, "\"msg\":\"registered\""), "registered after the outage");
    cr_assert_eq(srv.ndelete, 1);
}

static int bad_request(const char *method, int i)
{
    if (strcmp(method, "PUT") == 0)
        return i < 2 ? 400 : 201;
    return always_ok(method, i);
}

Test(register_sidecar, other_4xx_is_logged_and_retried_at_the_interval, .timeout = 20)
{
    server_start(bad_request);
    srv.sigterm_after_puts = 3;
    capture_log();
    int rc = run_sidecar("300ms", "0s", NULL);
    const char *log = captured_log();
    server_stop();
    cr_assert_eq(rc, 0);
    uint64_t gap = find("PUT", 1)->ms - find("PUT", 0)->ms;
    cr_assert(gap >= 290 && gap < 700, "gap %llu", (unsigned long long)gap);
    cr_assert_not_null(strstr(log, "\"level\":\"error\",\"msg\":\"heartbeat rejected\""), "%s",
                       log);
    cr_assert_not_null(strstr(log, "scripted answer"));
}

static char token_path[64];

/* Rotates the token after the second heartbeat. */
static void rotate_token(int nput)
{
    if (nput != 2)
        return;
    FILE *f = fopen(token_path, "w");
    fputs("tok-new\n", f);
    fclose(f);
}

static int token_checked(const char *method, int i)
{
    pthread_mutex_lock(&srv.mu);
    const char *auth = srv.seen[srv.nseen - 1].auth;
    bool ok = strcmp(auth, "Bearer tok-old") == 0 || strcmp(auth, "Bearer tok-new") == 0;
    pthread_mutex_unlock(&srv.mu);
    if (!ok)
        return 401;
    return always_ok(method, i);
}

Test(register_sidecar, token_is_sent_reread_and_never_logged, .timeout = 20)
{
    snprintf(token_path, sizeof(token_path), "/tmp/register_test_tok_%d", (int)getpid());
    FILE *f = fopen(token_path, "w");
    fputs("tok-old\n", f);
    fclose(f);
    server_start(token_checked);
    srv.on_put = rotate_token;
    srv.sigterm_after_puts = 5;
    capture_log();
    int rc = run_sidecar("100ms", "100ms", token_path);
    const char *log = captured_log();
    server_stop();
    unlink(token_path);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(find("PUT", 0)->auth, "Bearer tok-old");
    cr_assert_str_eq(find("PUT", 4)->auth, "Bearer tok-new");
    cr_assert_str_eq(find("POST", 0)->auth, "Bearer tok-new");
    cr_assert_str_eq(find("DELETE", 0)->auth, "Bearer tok-new");
    cr_assert_null(strstr(log, "tok-"), "token in the log: %s", log);
    cr_assert_null(strstr(log, "Bearer"), "%s", log);
}

static int unauthorized(const char *method, int i)
{
    return 401;
}

Test(register_sidecar, unauthorized_is_logged_retried_and_exit_is_bounded, .timeout = 20)
{
    snprintf(token_path, sizeof(token_path), "/tmp/register_test_tok_%d", (int)getpid());
    FILE *f = fopen(token_path, "w");
    fputs("wrong\n", f);
    fclose(f);
    server_start(unauthorized);
    srv.sigterm_after_puts = 3;
    capture_log();
    int rc = run_sidecar("100ms", "0s", token_path);
    const char *log = captured_log();
    server_stop();
    unlink(token_path);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(log, "check --token-file"), "%s", log);
    cr_assert_not_null(strstr(log, "\"status\":401"));
    cr_assert_null(strstr(log, "wrong"), "token in the log: %s", log);
    cr_assert_eq(srv.npost, 1);
    cr_assert_eq(srv.ndelete, 1);
}

static int router_gone_at_exit(const char *method, int i)
{
    return strcmp(method, "PUT") == 0 ? always_ok(method, i) : 503;
}

Test(register_sidecar, exits_0_within_a_few_seconds_when_the_router_fails_at_exit, .timeout = 20)
{
    server_start(router_gone_at_exit);
    srv.sigterm_after_puts = 2;
    capture_log();
    uint64_t t0 = uv_hrtime();
    int rc = run_sidecar("100ms", "200ms", NULL);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    const char *log = captured_log();
    server_stop();
    cr_assert_eq(rc, 0);
    cr_assert(ms < 9000, "took %llu ms", (unsigned long long)ms);
    cr_assert(srv.npost >= 2, "drain retried");
    cr_assert(srv.ndelete >= 2, "DELETE retried");
    cr_assert_not_null(strstr(log, "giving up"), "%s", log);
}

Test(register_sidecar, bad_flags_exit_2)
{
    char *a1[] = {"--name", "backend-0", "--address", "1.2.3.4:5", NULL};
    cr_assert_eq(pr_register_main(4, a1), 2);
    char *a2[] = {"--admin-url", "https://x:1", "--name", "b", "--address", "1.2.3.4:5", NULL};
    cr_assert_eq(pr_register_main(6, a2), 2);
    char *a3[] = {"--admin-url", "http://x:1", "--name", "b", "--address",
                  "1.2.3.4:5",   "--interval", "soon",   NULL};
    cr_assert_eq(pr_register_main(8, a3), 2);
}

/* --health-url: 503 for the first 3 checks, 200 for the next 5, then the connection is closed. */
static int health_up_then_down(int i)
{
    return i < 3 ? 503 : i < 8 ? 200 : 0;
}

Test(register_sidecar, health_url_gates_registration_and_heartbeats, .timeout = 20)
{
    server_start(always_ok);
    srv.health = health_up_then_down;
    srv.sigterm_after_gets = 12;
    char hurl[80];
    snprintf(hurl, sizeof(hurl), "http://127.0.0.1:%d/health", srv.port);
    health_url_arg = hurl;
    capture_log();
    int rc = run_sidecar("100ms", "0s", NULL);
    health_url_arg = NULL;
    const char *log = captured_log();
    server_stop();
    cr_assert_eq(rc, 0);

    const struct seen *get0 = find("GET", 0), *ok0 = find("GET", 3), *bad = find("GET", 8);
    cr_assert_not_null(bad, "%d health checks", srv.nget);
    cr_assert_str_eq(get0->path, "/health");
    /* Not registered while the backend is not healthy: the first PUT follows the first 2xx. */
    const struct seen *put0 = find("PUT", 0);
    cr_assert_not_null(put0, "%s", log);
    cr_assert(put0->ms >= ok0->ms, "PUT at %llu ms before the first healthy check at %llu ms",
              (unsigned long long)put0->ms, (unsigned long long)ok0->ms);
    /* One heartbeat per healthy check, none after the health check failed again. */
    int puts_before_drain = 0, puts_after_bad = 0;
    const struct seen *drain = find("POST", 0);
    cr_assert_not_null(drain);
    for (int i = 0; i < srv.nseen; i++) {
        if (strcmp(srv.seen[i].method, "PUT") != 0)
            continue;
        if (srv.seen[i].ms < drain->ms)
            puts_before_drain++;
        if (srv.seen[i].ms > bad->ms)
            puts_after_bad++;
    }
    cr_assert_eq(puts_before_drain, 5, "%d heartbeats for 5 healthy checks", puts_before_drain);
    cr_assert_eq(puts_after_bad, 0, "%d heartbeats after the backend turned unhealthy",
                 puts_after_bad);
    /* Checked every interval while unhealthy. */
    const struct seen *g9 = find("GET", 9), *g10 = find("GET", 10);
    cr_assert(g10->ms - g9->ms >= 90 && g10->ms - g9->ms < 400, "checks %llu ms apart",
              (unsigned long long)(g10->ms - g9->ms));
    /* Unhealthy is not drained: the only drain is the one of SIGTERM, after the last check. */
    cr_assert_eq(srv.npost, 1);
    cr_assert(drain->ms >= find("GET", 11)->ms);
    cr_assert_eq(srv.ndelete, 1);
    cr_assert_not_null(strstr(log, "backend not healthy yet"), "%s", log);
    cr_assert_not_null(strstr(log, "backend healthy: heartbeating"), "%s", log);
    cr_assert_not_null(strstr(log, "backend unhealthy: heartbeats stopped"), "%s", log);
}

