/* Request exchange (L2): llhttp request parsing, head checks (SPEC 3.5), head completion,
 * keep-alive and pipelining between exchanges, and the handler tables that wire a public
 * client connection to the forwarding code (proxy.c). */
#include "exchange.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "hdr.h"
#include "podrouter/http_rewrite.h"
#include "podrouter/log.h"
#include "proxy.h"
#include "respond.h"
#include "upstream.h"
#include "worker.h"

static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_header_field(llhttp_t *p, const char *at, size_t len);
static int on_header_value(llhttp_t *p, const char *at, size_t len);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);

static void settings_once_init(void);
static llhttp_settings_t req_settings;
static uv_once_t settings_once = UV_ONCE_INIT;

void pr__exchange_settings_init(void)
{
    uv_once(&settings_once, settings_once_init);
}

static void settings_once_init(void)
{
    llhttp_settings_init(&req_settings);
    req_settings.on_url = on_url;
    req_settings.on_header_field = on_header_field;
    req_settings.on_header_value = on_header_value;
    req_settings.on_headers_complete = on_headers_complete;
    req_settings.on_body = on_body;
    req_settings.on_message_complete = on_message_complete;
}

/* ---- llhttp callbacks: record slices as offsets into x->head ---- */

static struct pr_exchange *px(llhttp_t *p)
{
    return ((struct pr_client *)p->data)->x;
}

/* Offset in x->head of a slice the parser hands back from the bytes being fed. */
static uint32_t feed_offset(const struct pr_exchange *x, const char *at)
{
    return x->feed_off + (uint32_t)(at - x->feed_ptr);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    if (x->url_len == 0)
        x->url_off = feed_offset(x, at);
    x->url_len += (uint32_t)len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    return pr__hdr_on_field(&x->req_hdrs, feed_offset(x, at), at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    return pr__hdr_on_value(&x->req_hdrs, feed_offset(x, at), at, len);
}

/* Pause right after the head when a body follows; a bodyless request pauses at its
 * message end instead, so the head is known complete either way. */
static int on_headers_complete(llhttp_t *p)
{
    struct pr_exchange *x = px(p);
    x->req_hdrs.done = true;
    x->req_chunked = (p->flags & F_CHUNKED) != 0;
    x->req_content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    x->req_has_body = x->req_chunked || x->req_content_length > 0;
    pr_chunked_init(&x->req_chunk);
    return x->req_has_body ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct pr_client *c = p->data;
    struct pr_exchange *x = c->x;
    if (!c->admin)
        return 0;
    if ((size_t)x->body_len + len > PR_ADMIN_BODY_MAX) {
        x->status = 413;
        return HPE_USER;
    }
    if (!x->body) {
        x->body = malloc(PR_ADMIN_BODY_MAX);
        if (!x->body)
            return HPE_USER;
    }
    memcpy(x->body + x->body_len, at, len);
    x->body_len += (uint32_t)len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct pr_client *c = p->data;
    c->x->req_complete = true;
    return HPE_PAUSED;
}

/* ---- head completion ---- */

/* "<8 hex start>-<2 hex worker><10 hex seq>": unique per process start, no snprintf. */
static void format_request_id(char *out, uint32_t start, uint8_t worker, uint64_t seq)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 7; i >= 0; i--, start >>= 4)
        out[i] = hex[start & 15];
    out[8] = '-';
    out[9] = hex[worker >> 4];
    out[10] = hex[worker & 15];
    for (int i = 20; i >= 11; i--, seq >>= 4)
        out[i] = hex[seq & 15];
    out[21] = 0;
}

/* An incoming X-Request-Id is kept when it is 1..128 visible ASCII characters. */
static bool request_id_ok(const char *v, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return false;
    return true;
}

static bool name_is(const struct pr_header *h, const char *lit)
{
    size_t n = strlen(lit);
    return h->name_len == n && strncasecmp(h->name, lit, n) == 0;
}

static bool list_has(const char *v, size_t len, const char *tok)
{
    return pr_list_has(v, len, tok, strlen(tok));
}

/* RFC 9112 framing and field syntax, strictly (SPEC 3.5): the reason the head is refused,
 * or NULL. Line endings, obs-fold and control bytes are checked on the raw bytes, so what
 * llhttp tolerates cannot reach the pod in a form the pod would parse differently. */
static const char *check_request(struct pr_exchange *x)
{
    const llhttp_t *p = &x->req_parser;
    if (p->http_major != 1 || p->http_minor > 1)
        return "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 only)";
    if (p->method == HTTP_CONNECT)
        return "CONNECT is not supported";
    const char *lines = pr_head_lines_check(x->head.p, x->head_end);
    if (lines)
        return lines;
    const char *url = x->head.p + x->url_off;
    if (x->url_len == 0)
        return "empty request target";
    if (pr_vchar_span(url, x->url_len) != x->url_len)
        return "invalid byte in the request target";
    if (url[0] != '/' && !(x->url_len == 1 && url[0] == '*' && p->method == HTTP_OPTIONS) &&
        !(x->url_len > 7 && strncasecmp(url, "http://", 7) == 0) &&
        !(x->url_len > 8 && strncasecmp(url, "https://", 8) == 0))
        return "request target must be origin-form";
    unsigned hosts = 0, te = 0, cl = 0;
    for (size_t k = 0; k < x->rh.nheaders; k++) {
        const struct pr_header *f = &x->rh.headers[k];
        if (f->name_len == 0)
            return "empty header name";
        for (uint32_t j = 0; j < f->name_len; j++)
            if (!pr_tchar((unsigned char)f->name[j]))
                return "invalid byte in a header name";
        if (!pr_field_value_ok(f->value, f->value_len))
            return "control byte in a header value";
        if (name_is(f, "host"))
            hosts++;
        else if (name_is(f, "transfer-encoding")) {
            te++;
            if (f->value_len != 7 || strncasecmp(f->value, "chunked", 7) != 0)
                return "unsupported Transfer-Encoding (only chunked)";
        } else if (name_is(f, "content-length"))
            cl++;
        else if (name_is(f, "connection")) {
            if (list_has(f->value, f->value_len, "host") ||
                list_has(f->value, f->value_len, "content-length") ||
                list_has(f->value, f->value_len, "transfer-encoding"))
                return "Connection must not name Host, Content-Length or Transfer-Encoding";
        }
    }
    if (p->http_minor == 1 ? hosts != 1 : hosts > 1)
        return hosts ? "more than one Host header" : "HTTP/1.1 request without Host";
    if (te > 1 || cl > 1 || (te && cl))
        return "ambiguous message framing";
    if (te && p->http_minor == 0)
        return "Transfer-Encoding in an HTTP/1.0 request";
    if (x->req_upgrade && x->req_has_body)
        return "an Upgrade request must not carry a body";
    return NULL;
}

static void head_complete(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    struct pr_worker *w = c->w;
    pr__client_queue(c, NULL);
    pr__hdr_export(&x->req_hdrs, x->head.p, x->headers);
    const char *method = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    x->rh.method = method;
    x->rh.method_len = strlen(method);
    x->rh.url = x->head.p + x->url_off;
    x->rh.url_len = x->url_len;
    x->rh.headers = x->headers;
    x->rh.nheaders = x->req_hdrs.n;
    x->req_keepalive = llhttp_should_keep_alive(&x->req_parser);
    x->req_upgrade = x->req_parser.upgrade;
    x->is_head = x->req_parser.method == HTTP_HEAD;
    x->http10 = x->req_parser.http_major == 1 && x->req_parser.http_minor == 0;
    const struct pr_header *rid = pr_head_find(&x->rh, "x-request-id");
    if (rid && request_id_ok(rid->value, rid->value_len) &&
        !pr_hop_by_hop(x->rh.headers, x->rh.nheaders, "x-request-id", 12)) {
        memcpy(x->request_id, rid->value, rid->value_len);
        x->request_id[rid->value_len] = 0;
        x->rid_from_client = true;
    } else {
        /* Absent, empty, oversized or unprintable: ours replaces it, for pod and log alike. */
        uint64_t seq = atomic_fetch_add_explicit(&w->srv->request_seq, 1, memory_order_relaxed);
        format_request_id(x->request_id, (uint32_t)w->srv->start_ms, (uint8_t)w->id, seq);
    }
    c->state = PR_C_ROUTING;
    const char *bad = check_request(x);
    if (bad) {
        PR_CNT_INC(w->m->proxy_errors[PR_ERR_BAD_REQUEST]);
        char msg[160];
        snprintf(msg, sizeof(msg), "malformed HTTP request: %s", bad);
        pr__client_error(c, 400, "bad_request", msg, NULL, true);
        return;
    }
    c->h->on_head(c);
}

void pr__exchange_parse_error(struct pr_client *c, llhttp_errno_t err)
{
    struct pr_exchange *x = c->x;
    if (x && x->status == 413) {
        pr__client_error(c, 413, "body_too_large", "request body over 64 KiB", NULL, true);
        return;
    }
    if (x && x->req_hdrs.n >= PR_MAX_HEADERS && c->state == PR_C_HEAD) {
        pr__client_error(c, 431, "header_too_large", "too many request header fields", NULL,
                         true);
        return;
    }
    PR_CNT_INC(c->w->m->proxy_errors[PR_ERR_BAD_REQUEST]);
    char msg[160];
    snprintf(msg, sizeof(msg), "malformed HTTP request: %s",
             x ? llhttp_get_error_reason(&x->req_parser) : llhttp_errno_name(err));
    if (c->state == PR_C_HEAD || c->state == PR_C_IDLE || c->state == PR_C_ROUTING)
        pr__client_error(c, 400, "bad_request", msg, NULL, true);
    else
        pr__client_close(c);
}

/* RFC 9112 3: method SP request-target SP HTTP-version CRLF, exactly, after optional empty
 * lines. 1 valid, 0 not complete yet, -1 invalid. Checked as soon as the line is in, so an
 * HTTP/0.9 request is answered at once rather than after the header timeout. */
static int request_line_check(const char *buf, size_t len)
{
    size_t i = 0;
    while (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
        i += 2;
    const char *line = buf + i;
    const char *eol = memchr(line, '\n', len - i);
    if (!eol)
        return 0;
    size_t n = (size_t)(eol - line);
    if (n < 2 || line[n - 1] != '\r')
        return -1;
    n--;
    size_t m = 0;
    while (m < n && pr_tchar((unsigned char)line[m]))
        m++;
    if (m == 0 || m >= n || line[m] != ' ')
        return -1;
    size_t t = m + 1, te = t + pr_vchar_span(line + t, n - t);
    if (te == t || te >= n || line[te] != ' ')
        return -1;
    const char *v = line + te + 1;
    if ((size_t)(line + n - v) != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9')
        return -1;
    return 1;
}

/* Parse request-head bytes in place; only what the parser consumed is copied into x->head.p,
 * so a long pipeline costs one pass over its bytes. Returns bytes consumed. */
static size_t consume_head(struct pr_client *c, const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    uint32_t max = c->w->srv->cfg.max_header_bytes;
    /* Never look further than the limit allows: a head that is not complete by then is
     * refused, whatever follows. */
    size_t room = x->head.len < max + 1u ? (size_t)(max + 1u - x->head.len) : 0;
    size_t n = len < room ? len : room;
    x->feed_ptr = data;
    x->feed_off = x->head.len;
    llhttp_errno_t err = llhttp_execute(&x->req_parser, data, n);
    size_t used = n;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
        used = (size_t)(llhttp_get_error_pos(&x->req_parser) - data);
    if (pr_buf_reserve(&x->head, (size_t)x->head.len + used + 1)) {
        pr__client_close(c);
        return len;
    }
    memcpy(x->head.p + x->head.len, data, used);
    x->head.len += (uint32_t)used;
    x->feed_ptr = NULL;
    if (!x->line_checked) {
        int lc = request_line_check(x->head.p, x->head.len);
        if (lc < 0) {
            PR_CNT_INC(c->w->m->proxy_errors[PR_ERR_BAD_REQUEST]);
            pr__client_error(c, 400, "bad_request",
                             "malformed HTTP request: invalid request line (METHOD SP target SP "
                             "HTTP/1.x expected)",
                             NULL, true);
            return len;
        }
        x->line_checked = lc > 0;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        x->head_end = x->head.len;
        if (x->head_end > max) {
            pr__client_error(c, 431, "header_too_large", "request head too large", NULL, true);
            return len;
        }
        if (err == HPE_PAUSED_UPGRADE)
            llhttp_resume_after_upgrade(&x->req_parser);
        x->defer_head = x->req_has_body;
        head_complete(c);
        if (c->closing || c->x != x || !x->defer_head)
            return used;
        /* The pod was chosen at once (no store round trip): the body bytes that came with
         * the head leave in the same write as the head (one segment for a polling POST). */
        x->defer_head = false;
        return used + pr__proxy_head_with_body(c, data + used, len - used);
    }
    if (err != HPE_OK) {
        pr__exchange_parse_error(c, err);
        return len;
    }
    if (x->head.len > max) {
        pr__client_error(c, 431, "header_too_large", "request head too large", NULL, true);
        return len;
    }
    return used;
}

/* One step of the input state machine over data; returns the bytes it consumed (0: the
 * current state takes no input now, the bytes wait in c->in). */
size_t pr__exchange_consume(struct pr_client *c, const char *data, size_t len)
{
    struct pr_worker *w = c->w;
    switch (c->state) {
    case PR_C_IDLE: {
        if (c->writing)
            return 0; /* the client has not taken our last answer yet: the next waits */
        struct pr_exchange *x = pr__exchange_get(w);
        if (!x) {
            pr__client_close(c);
            return len;
        }
        c->x = x;
        llhttp_init(&x->req_parser, HTTP_REQUEST, &req_settings);
        x->req_parser.data = c;
        x->start_ns = uv_hrtime();
        c->state = PR_C_HEAD;
        pr__client_queue(c, &w->q_header);
        return consume_head(c, data, len);
    }
    case PR_C_HEAD:
        return consume_head(c, data, len);
    case PR_C_PROXYING:
        return pr__proxy_client_body(c, data, len);
    case PR_C_CLOSING:
        return len; /* we close once our answer is written: nothing more is read */
    case PR_C_LOCAL:
    default:
        return 0;
    }
}

/* ---- the request exchange's handler tables ---- */

/* The header timeout answers 408 to a started head; an idle keep-alive connection closes. */
void pr__exchange_on_timeout(struct pr_client *c)
{
    if (c->state == PR_C_HEAD)
        pr__client_error(c, 408, "request_timeout", "request head not received in time", NULL,
                         true);
    else
        pr__client_close(c);
}

void pr__exchange_on_drained(struct pr_client *c)
{
    if (c->close_after_write && c->state != PR_C_PROXYING) {
        pr__client_linger(c);
        return;
    }
    pr__proxy_client_drained(c);
}

void pr__exchange_on_gone(struct pr_client *c)
{
    if (c->up)
        pr__proxy_client_gone(c);
    if (c->x) {
        if (c->x->status && !c->admin)
            pr__access_log(c);
        pr__exchange_release(c->w, c->x);
        c->x = NULL;
    }
}

/* While a body is relayed the pod side decides when the client is read. */
void pr__exchange_on_room(struct pr_client *c)
{
    if (c->state != PR_C_PROXYING && c->state != PR_C_CLOSING)
        pr__client_start_read(c);
}

static void http_drain(struct pr_client *c)
{
    if (c->state == PR_C_IDLE || c->state == PR_C_HEAD)
        pr__client_close(c);
    else
        c->close_after_write = true;
}

void pr__on_connection(uv_stream_t *server, int status)
{
    struct pr_server *srv = ((struct pr_worker *)server->data)->srv;
    pr__exchange_settings_init();
    if (status < 0)
        return;
    if (atomic_load(&srv->nclients) >= srv->cfg.max_connections) {
        pr__client_reject(server);
        return;
    }
    pr__client_accept(server, &pr__http_client_handlers, false);
}

const struct pr_client_handlers pr__http_client_handlers = {
    .on_head = pr__proxy_route, /* bytes that arrive meanwhile wait in c->in (bounded) */
    .on_data = pr__exchange_consume,
    .on_drained = pr__exchange_on_drained,
    .on_gone = pr__exchange_on_gone,
    .on_timeout = pr__exchange_on_timeout,
    .on_room = pr__exchange_on_room,
    .on_drain = http_drain,
};

const struct pr_upstream_handlers pr__proxy_upstream_handlers = {
    .ready = pr__proxy_upstream_ready,
    .failed = pr__proxy_upstream_failed,
    .data = pr__proxy_on_upstream_data,
    .eof = pr__proxy_on_upstream_eof,
    .drained = pr__proxy_upstream_drained,
    .timeout = pr__proxy_upstream_timeout,
    .resolved = pr__proxy_pool_resolved,
};
