/* A small async HTTP/1.1 client on libuv + llhttp (http_client.h).
 *
 * Ownership: the client owns a timer and at most one connection at a time (struct conn,
 * heap, embeds its uv_tcp_t). A connection is freed in its close_cb; the client is freed in
 * the last close_cb of its handles after pr_http_client_destroy(). A name resolution in
 * flight is a separate heap object that the client abandons (client = NULL) when it no
 * longer wants the answer; it frees itself in its callback. */
#include "podrouter/http_client.h"
#include "podrouter/http_rewrite.h"

#include <errno.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_BUF_SIZE (16 * 1024)

#ifndef PR_VERSION
#define PR_VERSION "dev"
#endif

enum conn_state { CONN_CONNECTING, CONN_ACTIVE, CONN_IDLE, CONN_CLOSING };

struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct pr_http_client *client;
    enum conn_state state;
    bool reading;
    bool writing;
};

struct resolve {
    uv_getaddrinfo_t req;
    struct pr_http_client *client; /* NULL once abandoned */
};

struct pr_http_client {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct pr_http_url url;
    char host_header[300];
    char port_str[8];
    bool keep_alive;
    bool destroyed;
    unsigned open_handles; /* the timer and every conn not yet through its close_cb */

    struct conn *conn;         /* connecting, active or idle; NULL when none */
    struct resolve *resolving; /* name resolution in flight, or NULL */
    struct addrinfo *addrs;    /* addresses being tried, owned */
    struct addrinfo *next_addr;
    int last_connect_err;

    /* The request in flight. */
    bool busy;
    pr_http_client_cb cb;
    void *data;
    bool is_head;
    bool reused;    /* sent on a kept-alive connection */
    bool retried;   /* already retried once on a fresh connection */
    bool got_bytes; /* any response byte seen */
    int deferred_err;
    uint64_t deadline; /* loop time at which the whole exchange times out */
    uint64_t connect_timeout_ms;
    char *out;
    size_t out_len, out_cap;

    /* The response being parsed. */
    llhttp_t parser;
    bool complete;
    int parse_err;
    size_t head_bytes;
    bool in_field, in_value;
    size_t head_len;
    size_t name_off[PR_HTTP_CLIENT_MAX_HEADERS], value_off[PR_HTTP_CLIENT_MAX_HEADERS];
    size_t nheaders;
    char head[PR_HTTP_CLIENT_MAX_HEAD + PR_HTTP_CLIENT_MAX_HEADERS * 2];
    size_t body_len;
    char body[PR_HTTP_CLIENT_MAX_BODY + 1];
    char rbuf[READ_BUF_SIZE];
    struct pr_http_response res;
};

static void fail(struct pr_http_client *c, int err);
static void start_exchange(struct pr_http_client *c, struct conn *conn);
static void try_next_addr(struct pr_http_client *c);

/* ---- lifetime ------------------------------------------------------------------------ */

/* Frees the client once it was destroyed and its last handle is closed. */
static void maybe_free(struct pr_http_client *c)
{
    if (!c->destroyed || c->open_handles > 0)
        return;
    if (c->addrs)
        uv_freeaddrinfo(c->addrs);
    free(c->out);
    free(c);
}

/* Frees a connection after libuv has closed it. */
static void conn_close_cb(uv_handle_t *h)
{
    struct conn *conn = h->data;
    struct pr_http_client *c = conn->client;
    free(conn);
    c->open_handles--;
    maybe_free(c);
}

/* Accounts for the closed timer. */
static void timer_close_cb(uv_handle_t *h)
{
    struct pr_http_client *c = h->data;
    c->open_handles--;
    maybe_free(c);
}

/* Starts closing conn (idempotent); it is detached from the client at once. */
static void close_conn(struct conn *conn)
{
    if (conn->state == CONN_CLOSING)
        return;
    conn->state = CONN_CLOSING;
    if (conn->client->conn == conn)
        conn->client->conn = NULL;
    uv_close((uv_handle_t *)&conn->tcp, conn_close_cb);
}

/* Drops the name resolution in flight and the address list, if any. */
static void abandon_connect(struct pr_http_client *c)
{
    if (c->resolving) {
        c->resolving->client = NULL;
        uv_cancel((uv_req_t *)&c->resolving->req);
        c->resolving = NULL;
    }
    if (c->addrs) {
        uv_freeaddrinfo(c->addrs);
        c->addrs = NULL;
    }
    c->next_addr = NULL;
}

/* A client for base_url, or NULL. */
struct pr_http_client *pr_http_client_create(uv_loop_t *loop, const char *base_url, bool keep_alive)
{
    struct pr_http_url url;
    if (loop == NULL || pr_http_url_parse(base_url, &url) != 0)
        return NULL;
    struct pr_http_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->url = url;
    c->keep_alive = keep_alive;
    bool v6 = strchr(url.host, ':') != NULL;
    snprintf(c->port_str, sizeof(c->port_str), "%u", (unsigned)url.port);
    snprintf(c->host_header, sizeof(c->host_header), "%s%s%s%s%s", v6 ? "[" : "", url.host,
             v6 ? "]" : "", url.port == 80 ? "" : ":", url.port == 80 ? "" : c->port_str);
    if (uv_timer_init(loop, &c->timer) != 0) {
        free(c);
        return NULL;
    }
    c->timer.data = c;
    c->open_handles = 1;
    return c;
}

/* Cancels, closes and schedules the free; accepts NULL. */
void pr_http_client_destroy(struct pr_http_client *c)
{
    if (c == NULL || c->destroyed)
        return;
    c->destroyed = true; /* first: the cancelled callback may call destroy again */
    pr_http_client_cancel(c);
    abandon_connect(c);
    if (c->conn)
        close_conn(c->conn);
    uv_close((uv_handle_t *)&c->timer, timer_close_cb);
}

/* true while a request is in flight. */
bool pr_http_client_busy(const struct pr_http_client *c)
{
    return c != NULL && c->busy;
}

/* Aborts the request in flight with UV_ECANCELED. */
void pr_http_client_cancel(struct pr_http_client *c)
{
    if (c != NULL && c->busy)
        fail(c, UV_ECANCELED);
}

/* ---- completion ---------------------------------------------------------------------- */

/* Ends the request in flight with err (never 0): cleans up, then runs the callback. */
static void fail(struct pr_http_client *c, int err)
{
    if (!c->busy)
        return;
    uv_timer_stop(&c->timer);
    c->deferred_err = 0;
    abandon_connect(c);
    if (c->conn)
        close_conn(c->conn);
    c->busy = false;
    pr_http_client_cb cb = c->cb;
    void *data = c->data;
    c->cb = NULL;
    c->data = NULL;
    cb(c, err, NULL, data);
}

/* Ends the request in flight with the parsed response; keeps conn alive when allowed. */
static void finish_ok(struct pr_http_client *c, struct conn *conn, bool extra_bytes)
{
    uv_timer_stop(&c->timer);
    bool keep = c->keep_alive && !extra_bytes && !conn->writing &&
                llhttp_should_keep_alive(&c->parser) && !c->destroyed;
    if (keep)
        conn->state = CONN_IDLE; /* still reading: EOF or stray bytes close it */
    else
        close_conn(conn);
    struct pr_http_response *res = &c->res;
    res->status = llhttp_get_status_code(&c->parser);
    c->body[c->body_len] = '\0';
    res->body = c->body;
    res->body_len = c->body_len;
    res->nheaders = c->nheaders;
    for (size_t i = 0; i < c->nheaders; i++) {
        res->headers[i].name = c->head + c->name_off[i];
        res->headers[i].value = c->head + c->value_off[i];
    }
    c->busy = false;
    pr_http_client_cb cb = c->cb;
    void *data = c->data;
    c->cb = NULL;
    c->data = NULL;
    cb(c, 0, res, data);
}

/* The connect or total timeout fired, or a deferred error is due. */
static void timer_cb(uv_timer_t *t)
{
    struct pr_http_client *c = t->data;
    fail(c, c->deferred_err ? c->deferred_err : UV_ETIMEDOUT);
}

/* Reports err from the loop, never from the caller's stack. */
static void fail_soon(struct pr_http_client *c, int err)
{
    c->deferred_err = err;
    uv_timer_start(&c->timer, timer_cb, 0, 0);
}

/* Arms the timer to fire in ms, but never after the total deadline. */
static void arm_timer(struct pr_http_client *c, uint64_t ms)
{
    uint64_t now = uv_now(c->loop);
    uint64_t left = c->deadline > now ? c->deadline - now : 0;
    uv_timer_start(&c->timer, timer_cb, ms < left ? ms : left, 0);
}

/* ---- response parsing ---------------------------------------------------------------- */

/* Appends len bytes to the header store; false when over PR_HTTP_CLIENT_MAX_HEAD. */
static bool head_append(struct pr_http_client *c, const char *at, size_t len)
{
    c->head_bytes += len;
    if (c->head_bytes > PR_HTTP_CLIENT_MAX_HEAD || c->head_len + len >= sizeof(c->head)) {
        c->parse_err = UV_EMSGSIZE;
        return false;
    }
    memcpy(c->head + c->head_len, at, len);
    c->head_len += len;
    return true;
}

/* Counts status line bytes against the head limit. */
static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct pr_http_client *c = p->data;
    c->head_bytes += len;
    if (c->head_bytes > PR_HTTP_CLIENT_MAX_HEAD) {
        c->parse_err = UV_EMSGSIZE;
        return -1;
    }
    return 0;
}

/* Collects a header name piece. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct pr_http_client *c = p->data;
    if (!c->in_field) {
        if (c->nheaders >= PR_HTTP_CLIENT_MAX_HEADERS) {
            c->parse_err = UV_EMSGSIZE;
            return -1;
        }
        c->name_off[c->nheaders] = c->head_len;
        c->in_field = true;
    }
    return head_append(c, at, len) ? 0 : -1;
}

/* Terminates a header name. */
static int on_header_field_complete(llhttp_t *p)
{
    struct pr_http_client *c = p->data;
    if (!c->in_field) /* empty name: llhttp rejects these, keep the store consistent anyway */
        return -1;
    c->in_field = false;
    c->value_off[c->nheaders] = c->head_len + 1;
    return head_append(c, "", 1) ? 0 : -1;
}

/* Collects a header value piece. */
static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct pr_http_client *c = p->data;
    c->in_value = true;
    return head_append(c, at, len) ? 0 : -1;
}

/* Terminates a header value and counts the header. */
static int on_header_value_complete(llhttp_t *p)
{
    struct pr_http_client *c = p->data;
    c->in_value = false;
    if (!head_append(c, "", 1))
        return -1;
    c->nheaders++;
    return 0;
}

/* A HEAD response has no body; 101 is not something this client can use. */
static int on_headers_complete(llhttp_t *p)
{
    struct pr_http_client *c = p->data;
    if (llhttp_get_status_code(p) == 101) {
        c->parse_err = UV_EPROTO;
        return -1;
    }
    return c->is_head ? 1 : 0;
}

/* Collects body bytes up to PR_HTTP_CLIENT_MAX_BODY. */
static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct pr_http_client *c = p->data;
    if (len > PR_HTTP_CLIENT_MAX_BODY - c->body_len) {
        c->parse_err = UV_EMSGSIZE;
        return -1;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

/* Forgets what was parsed so far (new request, or after a 1xx interim response). */
static void reset_response(struct pr_http_client *c)
{
    c->complete = false;
    c->parse_err = 0;
    c->head_bytes = 0;
    c->in_field = c->in_value = false;
    c->head_len = 0;
    c->nheaders = 0;
    c->body_len = 0;
}

/* Stops at the end of the final response; skips 1xx interim responses. */
static int on_message_complete(llhttp_t *p)
{
    struct pr_http_client *c = p->data;
    if (llhttp_get_status_code(p) < 200) {
        reset_response(c);
        return 0;
    }
    c->complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connection ------------------------------------------------------------------------ */

/* Hands libuv the client's read buffer (one reading connection at a time). */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *conn = h->data;
    buf->base = conn->client->rbuf;
    buf->len = sizeof(conn->client->rbuf);
}

/* Starts over on a fresh connection; false when not allowed (then the caller fails). */
static bool retry_fresh(struct pr_http_client *c, struct conn *conn);

/* Feeds response bytes to the parser; ends the request on completion or error. */
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *conn = s->data;
    struct pr_http_client *c = conn->client;
    if (nread == 0 || conn->state == CONN_CLOSING)
        return;
    if (conn->state == CONN_IDLE) {
        /* The server closed (or babbled on) an idle keep-alive connection. */
        close_conn(conn);
        return;
    }
    if (nread < 0) {
        if (!c->got_bytes && retry_fresh(c, conn))
            return;
        if (nread == UV_EOF) {
            /* A body delimited by the close completes here (on_message_complete pauses). */
            if (c->got_bytes && !c->parse_err)
                llhttp_finish(&c->parser);
            if (c->complete) {
                finish_ok(c, conn, true);
                return;
            }
            fail(c, c->parse_err ? c->parse_err : UV_ECONNRESET);
            return;
        }
        fail(c, (int)nread);
        return;
    }
    c->got_bytes = true;
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (c->complete) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        bool extra = e != HPE_PAUSED || pos == NULL || pos != buf->base + nread;
        finish_ok(c, conn, extra);
        return;
    }
    if (e != HPE_OK)
        fail(c, c->parse_err ? c->parse_err : UV_EPROTO);
}

/* Notes the end of the request write; a failed write fails the request. */
static void write_cb(uv_write_t *req, int status)
{
    struct conn *conn = req->data;
    struct pr_http_client *c = conn->client;
    conn->writing = false;
    if (conn->state == CONN_CLOSING || status == 0)
        return;
    if (!c->got_bytes && retry_fresh(c, conn))
        return;
    fail(c, status);
}

/* Sends the request on conn and reads the response. */
static void start_exchange(struct pr_http_client *c, struct conn *conn)
{
    reset_response(c);
    llhttp_init(&c->parser, HTTP_RESPONSE, &parser_settings);
    c->parser.data = c;
    conn->state = CONN_ACTIVE;
    int rc = 0;
    if (!conn->reading) {
        rc = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
        conn->reading = rc == 0;
    }
    if (rc == 0) {
        uv_buf_t b = uv_buf_init(c->out, (unsigned)c->out_len);
        conn->write_req.data = conn;
        rc = uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, &b, 1, write_cb);
        conn->writing = rc == 0;
    }
    if (rc != 0) {
        close_conn(conn);
        fail_soon(c, rc);
    }
}

/* A connection attempt finished: exchange, or try the next address. */
static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *conn = req->data;
    struct pr_http_client *c = conn->client;
    if (conn->state == CONN_CLOSING)
        return;
    if (status < 0) {
        c->last_connect_err = status;
        close_conn(conn);
        try_next_addr(c);
        return;
    }
    if (c->addrs) {
        uv_freeaddrinfo(c->addrs);
        c->addrs = NULL;
        c->next_addr = NULL;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    arm_timer(c, UINT64_MAX);
    start_exchange(c, conn);
}

/* Connects to the next resolved address; fails the request when none is left. */
static void try_next_addr(struct pr_http_client *c)
{
    while (c->next_addr) {
        struct addrinfo *ai = c->next_addr;
        c->next_addr = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        struct conn *conn = calloc(1, sizeof(*conn));
        if (conn == NULL) {
            c->last_connect_err = UV_ENOMEM;
            break;
        }
        conn->client = c;
        conn->state = CONN_CONNECTING;
        int rc = uv_tcp_init(c->loop, &conn->tcp);
        if (rc != 0) {
            free(conn);
            c->last_connect_err = rc;
            break;
        }
        conn->tcp.data = conn;
        c->open_handles++;
        c->conn = conn;
        conn->connect_req.data = conn;
        rc = uv_tcp_connect(&conn->connect_req, &conn->tcp, ai->ai_addr, connect_cb);
        if (rc == 0)
            return;
        c->last_connect_err = rc;
        close_conn(conn);
    }
    fail(c, c->last_connect_err ? c->last_connect_err : UV_EAI_NONAME);
}

/* Name resolution finished: try the addresses, unless the client lost interest. */
static void resolve_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *r = req->data;
    struct pr_http_client *c = r->client;
    free(r);
    if (c == NULL) {
        if (res)
            uv_freeaddrinfo(res);
        return;
    }
    c->resolving = NULL;
    if (status < 0) {
        if (res)
            uv_freeaddrinfo(res);
        fail(c, status);
        return;
    }
    c->addrs = res;
    c->next_addr = res;
    c->last_connect_err = 0;
    try_next_addr(c);
}

/* Resolves the host anew and connects; 0 or a negative libuv code. */
static int start_connect(struct pr_http_client *c)
{
    struct resolve *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    r->client = c;
    r->req.data = r;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_ADDRCONFIG;
    int rc = uv_getaddrinfo(c->loop, &r->req, resolve_cb, c->url.host, c->port_str, &hints);
    if (rc != 0) {
        free(r);
        return rc;
    }
    c->resolving = r;
    arm_timer(c, c->connect_timeout_ms);
    return 0;
}

static bool retry_fresh(struct pr_http_client *c, struct conn *conn)
{
    if (!c->reused || c->retried)
        return false;
    /* A kept-alive connection the server had already closed: one more try on a new one. */
    c->retried = true;
    c->reused = false;
    close_conn(conn);
    int rc = start_connect(c);
    if (rc != 0)
        fail_soon(c, rc);
    return true;
}

/* ---- request --------------------------------------------------------------------------- */

/* true when s is a non-empty RFC 9110 token. */
static bool is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        if (!pr_tchar((unsigned char)*s))
            return false;
    }
    return true;
}

/* true when s is a header value without CR, LF or other control bytes except HTAB. */
static bool is_field_value(const char *s)
{
    if (s == NULL)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

/* Appends printf output to c->out, growing it; false on no memory. */
static bool out_printf(struct pr_http_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static bool out_printf(struct pr_http_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    size_t need = c->out_len + (size_t)n + 1;
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 512;
        while (cap < need)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (p == NULL)
            return false;
        c->out = p;
        c->out_cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(c->out + c->out_len, c->out_cap - c->out_len, fmt, ap);
    va_end(ap);
    c->out_len += (size_t)n;
    return true;
}

/* Appends len raw bytes to c->out; false on no memory. */
static bool out_append(struct pr_http_client *c, const void *p, size_t len)
{
    if (len > SIZE_MAX / 2 - c->out_len)
        return false;
    size_t need = c->out_len + len + 1;
    if (need > c->out_cap) {
        char *q = realloc(c->out, need);
        if (q == NULL)
            return false;
        c->out = q;
        c->out_cap = need;
    }
    if (len > 0)
        memcpy(c->out + c->out_len, p, len);
    c->out_len += len;
    return true;
}

/* Starts req on c; cb runs exactly once from the loop when this returns 0. */
int pr_http_client_request(struct pr_http_client *c, const struct pr_http_request *req,
                           pr_http_client_cb cb, void *data)
{
    if (c == NULL || req == NULL || cb == NULL || c->destroyed)
        return -EINVAL;
    if (c->busy)
        return -EBUSY;
    if (!is_token(req->method) || req->path == NULL || req->path[0] != '/' ||
        (req->body_len > 0 && req->body == NULL) || (req->nheaders > 0 && req->headers == NULL))
        return -EINVAL;
    for (const char *s = req->path; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return -EINVAL;
    for (size_t i = 0; i < req->nheaders; i++)
        if (!is_token(req->headers[i].name) || !is_field_value(req->headers[i].value))
            return -EINVAL;

    bool body_method = strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0 ||
                       strcmp(req->method, "PATCH") == 0;
    c->out_len = 0;
    bool ok = out_printf(c,
                         "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pod-router/%s\r\n"
                         "%s",
                         req->method, c->url.path, req->path, c->host_header, PR_VERSION,
                         c->keep_alive ? "" : "Connection: close\r\n");
    for (size_t i = 0; ok && i < req->nheaders; i++)
        ok = out_printf(c, "%s: %s\r\n", req->headers[i].name, req->headers[i].value);
    if (ok && (req->body_len > 0 || body_method))
        ok = out_printf(c, "Content-Length: %zu\r\n", req->body_len);
    ok = ok && out_append(c, "\r\n", 2) && out_append(c, req->body, req->body_len);
    if (!ok)
        return -ENOMEM;

    uv_update_time(c->loop);
    uint64_t total = req->timeout_ms ? req->timeout_ms : PR_HTTP_CLIENT_TIMEOUT_MS;
    c->connect_timeout_ms =
        req->connect_timeout_ms ? req->connect_timeout_ms : PR_HTTP_CLIENT_CONNECT_TIMEOUT_MS;
    c->deadline = uv_now(c->loop) + total;
    c->is_head = strcmp(req->method, "HEAD") == 0;
    c->retried = false;
    c->got_bytes = false;
    c->deferred_err = 0;
    c->cb = cb;
    c->data = data;
    c->busy = true;
    if (c->conn && c->conn->state == CONN_IDLE) {
        c->reused = true;
        arm_timer(c, UINT64_MAX);
        start_exchange(c, c->conn);
        return 0;
    }
    c->reused = false;
    if (c->conn) /* cannot happen: a connection is idle or gone between requests */
        close_conn(c->conn);
    int rc = start_connect(c);
    if (rc != 0) {
        c->busy = false;
        c->cb = NULL;
        c->data = NULL;
        return rc;
    }
    return 0;
}

/* The value of header name in res (case-insensitive), or NULL. */
const char *pr_http_response_header(const struct pr_http_response *res, const char *name)
{
    if (res == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}
