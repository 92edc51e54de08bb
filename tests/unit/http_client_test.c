/* Unit tests of the async HTTP/1.1 client (http_client.h) against a tiny libuv server on
 * 127.0.0.1:0 running on the same loop. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "podrouter/http_client.h"

/* ---- the test server ------------------------------------------------------------------ */

struct srv {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    int port;
    const char *response; /* written after each complete request, unless silent */
    size_t response_len;
    bool split;       /* write the response one byte per write */
    bool close_after; /* close the connection after each response */
    bool silent;      /* never answer */
    int drop_request; /* close without answering when request number N arrives (1-based) */
    int connections;
    int requests;
    char last_req[8192];
    size_t last_req_len;
    struct sconn *conns;
};

struct sconn {
    uv_tcp_t tcp;
    struct srv *srv;
    struct sconn *next;
    bool closing;
    size_t len;
    char buf[16384];
};

/* Frees a server connection after close. */
static void sconn_close_cb(uv_handle_t *h)
{
    struct sconn *sc = h->data;
    struct sconn **pp = &sc->srv->conns;
    while (*pp && *pp != sc)
        pp = &(*pp)->next;
    if (*pp)
        *pp = sc->next;
    free(sc);
}

static void sconn_close(struct sconn *sc)
{
    if (sc->closing)
        return;
    sc->closing = true;
    uv_close((uv_handle_t *)&sc->tcp, sconn_close_cb);
}

static void write_done(uv_write_t *w, int status)
{
    free(w);
}

static void close_after_write(uv_write_t *w, int status)
{
    struct sconn *sc = w->data;
    free(w);
    sconn_close(sc);
}

/* Writes len bytes of p (borrowed; must outlive the write); optionally closes after. */
static void sconn_write(struct sconn *sc, const char *p, size_t len, bool close)
{
    uv_write_t *w = malloc(sizeof(*w));
    cr_assert_not_null(w);
    w->data = sc;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    cr_assert_eq(
        uv_write(w, (uv_stream_t *)&sc->tcp, &b, 1, close ? close_after_write : write_done), 0);
}

/* Answers every complete request in sc->buf. */
static void sconn_serve(struct sconn *sc)
{
    struct srv *s = sc->srv;
    for (;;) {
        char *end = memmem(sc->buf, sc->len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        size_t head = (size_t)(end - sc->buf) + 4, body = 0;
        for (char *p = sc->buf; p < end; p++) {
            if ((p == sc->buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0)
                body = strtoul(p + 15, NULL, 10);
        }
        if (sc->len < head + body)
            return;
        size_t n = head + body;
        s->requests++;
        s->last_req_len = n < sizeof(s->last_req) - 1 ? n : sizeof(s->last_req) - 1;
        memcpy(s->last_req, sc->buf, s->last_req_len);
        s->last_req[s->last_req_len] = '\0';
        memmove(sc->buf, sc->buf + n, sc->len - n);
        sc->len -= n;
        if (s->requests == s->drop_request) {
            sconn_close(sc);
            return;
        }
        if (s->silent)
            continue;
        if (s->split) {
            for (size_t i = 0; i < s->response_len; i++)
                sconn_write(sc, s->response + i, 1, s->close_after && i + 1 == s->response_len);
        } else {
            sconn_write(sc, s->response, s->response_len, s->close_after);
        }
        if (s->close_after)
            return;
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
    if (!sc->closing)
        sconn_serve(sc);
}

static void on_conn(uv_stream_t *server, int status)
{
    struct srv *s = server->data;
    cr_assert_eq(status, 0);
    struct sconn *sc = calloc(1, sizeof(*sc));
    cr_assert_not_null(sc);
    sc->srv = s;
    uv_tcp_init(s->loop, &sc->tcp);
    sc->tcp.data = sc;
    sc->next = s->conns;
    s->conns = sc;
    cr_assert_eq(uv_accept(server, (uv_stream_t *)&sc->tcp), 0);
    uv_tcp_nodelay(&sc->tcp, 1);
    s->connections++;
    uv_read_start((uv_stream_t *)&sc->tcp, salloc, sread);
}

/* Listens on 127.0.0.1:0 and records the port. */
static void srv_start(struct srv *s, uv_loop_t *loop)
{
    s->loop = loop;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    cr_assert_eq(uv_tcp_init(loop, &s->tcp), 0);
    s->tcp.data = s;
    cr_assert_eq(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&s->tcp, 16, on_conn), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Closes the listener and every connection (they unlink themselves in their close_cb). */
static void srv_stop(struct srv *s)
{
    for (struct sconn *sc = s->conns; sc; sc = sc->next)
        sconn_close(sc);
    uv_close((uv_handle_t *)&s->tcp, NULL);
}

/* ---- fixture -------------------------------------------------------------------------- */

struct result {
    int calls;
    int err;
    int status;
    size_t body_len;
    char body[PR_HTTP_CLIENT_MAX_BODY + 1];
    char content_type[128];
    char xfoo[128];
    size_t nheaders;
};

static uv_loop_t loop;
static struct srv srv;
static struct result r;
static struct pr_http_client *client;
static char *owned; /* a response buffer freed after the loop is closed */

static void setup(void)
{
    memset(&srv, 0, sizeof(srv));
    memset(&r, 0, sizeof(r));
    cr_assert_eq(uv_loop_init(&loop), 0);
    srv_start(&srv, &loop);
}

/* Closes everything and checks that nothing is left on the loop (no leaked handle). */
static void teardown(void)
{
    pr_http_client_destroy(client);
    client = NULL;
    srv_stop(&srv);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) /* a callback may have called uv_stop() */
        ;
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open on the loop");
    free(owned);
    owned = NULL;
}

TestSuite(http_client, .init = setup, .fini = teardown, .timeout = 20);

static void copy_header(const struct pr_http_response *res, const char *name, char *out, size_t cap)
{
    const char *v = pr_http_response_header(res, name);
    snprintf(out, cap, "%s", v ? v : "");
}

/* Records the result and stops the loop. */
static void on_done(struct pr_http_client *c, int err, const struct pr_http_response *res,
                    void *data)
{
    struct result *out = data;
    out->calls++;
    out->err = err;
    if (res) {
        out->status = res->status;
        out->body_len = res->body_len;
        memcpy(out->body, res->body, res->body_len + 1);
        out->nheaders = res->nheaders;
        copy_header(res, "content-type", out->content_type, sizeof(out->content_type));
        copy_header(res, "X-FOO", out->xfoo, sizeof(out->xfoo));
    } else {
        cr_assert_neq(err, 0);
    }
    uv_stop(&loop);
}

static char base_url[64];

static struct pr_http_client *make_client(bool keep_alive)
{
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", srv.port);
    client = pr_http_client_create(&loop, base_url, keep_alive);
    cr_assert_not_null(client);
    return client;
}

/* Sends req and runs the loop until its callback ran. */
static void exchange(const struct pr_http_request *req)
{
    int before = r.calls;
    cr_assert_eq(pr_http_client_request(client, req, on_done, &r), 0);
    cr_assert_eq(r.calls, before, "callback ran synchronously");
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(r.calls, before + 1);
}

static void respond_with(const char *resp)
{
    srv.response = resp;
    srv.response_len = strlen(resp);
}

static const struct pr_http_request get_root = {.method = "GET", .path = "/"};

/* ---- tests ---------------------------------------------------------------------------- */

Test(http_client, status_headers_body_and_request_line)
{
    respond_with("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Foo: bar\r\n"
                 "Content-Length: 11\r\n\r\n{\"ok\":true}");
    make_client(false);
    struct pr_http_header h[] = {{"Content-Type", "application/json"},
                                 {"Authorization", "Bearer abc"}};
    struct pr_http_request req = {.method = "PUT",
                                  .path = "/v1/pods/backend-0",
                                  .headers = h,
                                  .nheaders = 2,
                                  .body = "{\"a\":1}",
                                  .body_len = 7};
    exchange(&req);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(r.body, "{\"ok\":true}");
    cr_assert_eq(r.body_len, 11);
    cr_assert_str_eq(r.content_type, "application/json");
    cr_assert_str_eq(r.xfoo, "bar");
    cr_assert_eq(r.nheaders, 3);
    cr_assert(strncmp(srv.last_req, "PUT /v1/pods/backend-0 HTTP/1.1\r\n", 33) == 0, "%s",
              srv.last_req);
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", srv.port);
    cr_assert_not_null(strstr(srv.last_req, host));
    cr_assert_not_null(strstr(srv.last_req, "\r\nContent-Length: 7\r\n"));
    cr_assert_not_null(strstr(srv.last_req, "\r\nAuthorization: Bearer abc\r\n"));
    cr_assert_not_null(strstr(srv.last_req, "\r\nConnection: close\r\n"));
    cr_assert(strcmp(srv.last_req + srv.last_req_len - 11, "\r\n\r\n{\"a\":1}") == 0);
}

Test(http_client, empty_body_methods_send_content_length_zero)
{
    respond_with("HTTP/1.1 204 No Content\r\n\r\n");
    make_client(false);
    struct pr_http_request req = {.method = "POST", .path = "/v1/pods/x/drain"};
    exchange(&req);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(r.body_len, 0);
    cr_assert_str_eq(r.body, "");
    cr_assert_not_null(strstr(srv.last_req, "\r\nContent-Length: 0\r\n"));
}

Test(http_client, url_path_prefix_is_prepended)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/admin/", srv.port);
    client = pr_http_client_create(&loop, base_url, false);
    cr_assert_not_null(client);
    struct pr_http_request req = {.method = "DELETE", .path = "/v1/pods/x"};
    exchange(&req);
    cr_assert_eq(r.status, 200);
    cr_assert(strncmp(srv.last_req, "DELETE /admin/v1/pods/x HTTP/1.1\r\n", 34) == 0, "%s",
              srv.last_req);
}

Test(http_client, chunked_response_split_into_single_bytes)
{
    respond_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n");
    srv.split = true;
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "hello world");
}

Test(http_client, body_until_eof)
{
    respond_with("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstream until close");
    srv.close_after = true;
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.body, "stream until close");
}

Test(http_client, interim_1xx_is_skipped)
{
    respond_with(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok");
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, 202);
    cr_assert_str_eq(r.body, "ok");
}

Test(http_client, head_response_has_no_body)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    make_client(true);
    struct pr_http_request req = {.method = "HEAD", .path = "/"};
    exchange(&req);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0);
}

static char *big_response(size_t body_len, bool chunked)
{
    size_t cap = body_len + 256;
    char *p = owned = malloc(cap);
    cr_assert_not_null(p);
    int n = chunked
                ? snprintf(p, cap, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
                           body_len)
                : snprintf(p, cap, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body_len);
    for (size_t i = 0; i < body_len; i++)
        p[n + (int)i] = (char)('a' + i % 26);
    size_t len = (size_t)n + body_len;
    if (chunked)
        len += (size_t)snprintf(p + len, cap - len, "\r\n0\r\n\r\n");
    else
        p[len] = '\0';
    return p;
}

Test(http_client, body_at_the_limit_is_accepted)
{
    char *resp = big_response(PR_HTTP_CLIENT_MAX_BODY, false);
    respond_with(resp);
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.body_len, PR_HTTP_CLIENT_MAX_BODY);
    cr_assert_eq(r.body[PR_HTTP_CLIENT_MAX_BODY - 1], 'a' + (PR_HTTP_CLIENT_MAX_BODY - 1) % 26);
}

Test(http_client, body_over_the_limit_fails)
{
    char *resp = big_response(PR_HTTP_CLIENT_MAX_BODY + 1, false);
    respond_with(resp);
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_EMSGSIZE, "%s", uv_strerror(r.err));
}

Test(http_client, chunked_body_over_the_limit_fails)
{
    char *resp = big_response(PR_HTTP_CLIENT_MAX_BODY + 1, true);
    respond_with(resp);
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_EMSGSIZE, "%s", uv_strerror(r.err));
}

Test(http_client, too_many_response_headers_fail)
{
    static char resp[8192];
    int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i <= PR_HTTP_CLIENT_MAX_HEADERS; i++)
        n += snprintf(resp + n, sizeof(resp) - (size_t)n, "X-H%d: v\r\n", i);
    snprintf(resp + n, sizeof(resp) - (size_t)n, "Content-Length: 0\r\n\r\n");
    respond_with(resp);
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_EMSGSIZE, "%s", uv_strerror(r.err));
}

Test(http_client, head_over_the_limit_fails)
{
    static char resp[PR_HTTP_CLIENT_MAX_HEAD + 256];
    int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(resp + n, 'x', PR_HTTP_CLIENT_MAX_HEAD);
    n += PR_HTTP_CLIENT_MAX_HEAD;
    snprintf(resp + n, sizeof(resp) - (size_t)n, "\r\nContent-Length: 0\r\n\r\n");
    respond_with(resp);
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_EMSGSIZE, "%s", uv_strerror(r.err));
}

Test(http_client, malformed_response_is_a_protocol_error)
{
    respond_with("SSH-2.0-OpenSSH\r\n\r\n");
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_EPROTO, "%s", uv_strerror(r.err));
}

Test(http_client, close_before_complete_is_a_reset)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    srv.close_after = true;
    make_client(false);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_ECONNRESET, "%s", uv_strerror(r.err));
}

Test(http_client, connect_refused)
{
    /* A port that was just free: bind, read the port, close. */
    uv_tcp_t t;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &t);
    uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", port);
    client = pr_http_client_create(&loop, base_url, true);
    cr_assert_not_null(client);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_ECONNREFUSED, "%s", uv_strerror(r.err));
}

Test(http_client, total_timeout)
{
    srv.silent = true;
    make_client(true);
    struct pr_http_request req = {.method = "GET", .path = "/", .timeout_ms = 200};
    uint64_t t0 = uv_hrtime();
    exchange(&req);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    cr_assert_eq(r.err, UV_ETIMEDOUT, "%s", uv_strerror(r.err));
    cr_assert(ms >= 190 && ms < 2000, "timed out after %llu ms", (unsigned long long)ms);
    cr_assert_eq(srv.requests, 1);
}

Test(http_client, host_name_is_resolved)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    snprintf(base_url, sizeof(base_url), "http://localhost:%d", srv.port);
    client = pr_http_client_create(&loop, base_url, false);
    cr_assert_not_null(client);
    exchange(&get_root);
    cr_assert_eq(r.err, 0, "%s", uv_strerror(r.err));
    cr_assert_str_eq(r.body, "hi");
}

Test(http_client, unknown_host_fails_with_a_resolver_error)
{
    client = pr_http_client_create(&loop, "http://no-such-host.invalid:80", false);
    cr_assert_not_null(client);
    exchange(&get_root);
    cr_assert_neq(r.err, 0);
    cr_assert(r.err != UV_ETIMEDOUT && r.err != UV_ECONNREFUSED, "%s", uv_strerror(r.err));
}

Test(http_client, keep_alive_reuses_one_connection)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    make_client(true);
    for (int i = 0; i < 3; i++) {
        exchange(&get_root);
        cr_assert_eq(r.err, 0);
        cr_assert_eq(r.status, 200);
    }
    cr_assert_eq(srv.requests, 3);
    cr_assert_eq(srv.connections, 1);
    cr_assert_null(strstr(srv.last_req, "Connection:"));
}

Test(http_client, keep_alive_survives_a_server_closing_idle_connections)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    srv.close_after = true; /* closes without saying Connection: close */
    make_client(true);
    for (int i = 0; i < 3; i++) {
        exchange(&get_root);
        cr_assert_eq(r.err, 0, "%s", uv_strerror(r.err));
        /* Let the client see the close of the idle connection, or not: both must work. */
        if (i == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(srv.requests, 3);
}

Test(http_client, a_dead_kept_alive_connection_is_retried_once)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    srv.drop_request = 2; /* the 2nd request's connection closes without an answer */
    make_client(true);
    exchange(&get_root);
    cr_assert_eq(r.err, 0);
    exchange(&get_root);
    cr_assert_eq(r.err, 0, "%s", uv_strerror(r.err));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(srv.requests, 3);
    cr_assert_eq(srv.connections, 2);
}

Test(http_client, a_fresh_connection_is_not_retried)
{
    srv.drop_request = 1;
    make_client(true);
    exchange(&get_root);
    cr_assert_eq(r.err, UV_ECONNRESET, "%s", uv_strerror(r.err));
    cr_assert_eq(srv.requests, 1);
}

Test(http_client, invalid_requests_are_refused_synchronously)
{
    make_client(false);
    struct pr_http_header crlf[] = {{"X-A", "v\r\nX-Injected: 1"}};
    struct pr_http_header badname[] = {{"X A", "v"}};
    struct pr_http_request reqs[] = {
        {.method = "GET", .path = "/", .headers = crlf, .nheaders = 1},
        {.method = "GET", .path = "/", .headers = badname, .nheaders = 1},
        {.method = "GET", .path = "/a b"},
        {.method = "GET", .path = "no-slash"},
        {.method = "G\r\nET", .path = "/"},
        {.method = "", .path = "/"},
        {.method = "PUT", .path = "/", .body = NULL, .body_len = 3},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
        cr_assert_eq(pr_http_client_request(client, &reqs[i], on_done, &r), -EINVAL, "case %zu", i);
    cr_assert_eq(r.calls, 0);
    cr_assert(!pr_http_client_busy(client));
}

Test(http_client, one_request_at_a_time)
{
    srv.silent = true;
    make_client(false);
    cr_assert_eq(pr_http_client_request(client, &get_root, on_done, &r), 0);
    cr_assert(pr_http_client_busy(client));
    cr_assert_eq(pr_http_client_request(client, &get_root, on_done, &r), -EBUSY);
    pr_http_client_cancel(client);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.err, UV_ECANCELED);
    cr_assert(!pr_http_client_busy(client));
}

Test(http_client, destroy_with_a_request_in_flight_cancels_it)
{
    srv.silent = true;
    make_client(true);
    cr_assert_eq(pr_http_client_request(client, &get_root, on_done, &r), 0);
    uv_run(&loop, UV_RUN_NOWAIT); /* resolving or connecting */
    pr_http_client_destroy(client);
    client = NULL;
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.err, UV_ECANCELED);
}

/* Destroys the client from inside its own callback. */
static void destroy_in_cb(struct pr_http_client *c, int err, const struct pr_http_response *res,
                          void *data)
{
    on_done(c, err, res, data);
    pr_http_client_destroy(c);
    client = NULL;
}

Test(http_client, destroy_from_the_callback)
{
    respond_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    make_client(true);
    cr_assert_eq(pr_http_client_request(client, &get_root, destroy_in_cb, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, 200);
}

struct url_case {
    const char *url;
    int rc;
    const char *host;
    int port;
    const char *path;
};

Test(http_client_url, parse)
{
    static const struct url_case cases[] = {
        {"http://pod-router-admin:3002", 0, "pod-router-admin", 3002, ""},
        {"http://127.0.0.1:3002/", 0, "127.0.0.1", 3002, ""},
        {"http://example.com", 0, "example.com", 80, ""},
        {"HTTP://example.com/admin/x/", 0, "example.com", 80, "/admin/x"},
        {"http://[::1]:8080", 0, "::1", 8080, ""},
        {"http://[fe80::1%eth0]:1/p", 0, "fe80::1%eth0", 1, "/p"},
        {"https://example.com", -EINVAL, NULL, 0, NULL},
        {"ftp://example.com", -EINVAL, NULL, 0, NULL},
        {"http://", -EINVAL, NULL, 0, NULL},
        {"http://:80", -EINVAL, NULL, 0, NULL},
        {"http://h:0", -EINVAL, NULL, 0, NULL},
        {"http://h:65536", -EINVAL, NULL, 0, NULL},
        {"http://h:", -EINVAL, NULL, 0, NULL},
        {"http://h:8x", -EINVAL, NULL, 0, NULL},
        {"http://user:pw@h:80", -EINVAL, NULL, 0, NULL},
        {"http://h?x=1", -EINVAL, NULL, 0, NULL},
        {"http://::1:80", -EINVAL, NULL, 0, NULL},
        {"http://[::1", -EINVAL, NULL, 0, NULL},
        {"http://h/a b", -EINVAL, NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pr_http_url u;
        int rc = pr_http_url_parse(cases[i].url, &u);
        cr_assert_eq(rc, cases[i].rc, "%s", cases[i].url);
        if (rc != 0)
            continue;
        cr_assert_str_eq(u.host, cases[i].host, "%s", cases[i].url);
        cr_assert_eq(u.port, cases[i].port, "%s", cases[i].url);
        cr_assert_str_eq(u.path, cases[i].path, "%s", cases[i].url);
    }
    cr_assert_eq(pr_http_url_parse(NULL, NULL), -EINVAL);
}

Test(http_client_url, create_refuses_bad_urls)
{
    uv_loop_t l;
    uv_loop_init(&l);
    cr_assert_null(pr_http_client_create(&l, "https://x", false));
    cr_assert_null(pr_http_client_create(NULL, "http://x", false));
    struct pr_http_client *c = pr_http_client_create(&l, "http://x:1", false);
    cr_assert_not_null(c);
    pr_http_client_destroy(c);
    pr_http_client_destroy(NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&l), 0);
}
