/* Client side: accept, llhttp request parsing, limits, timeouts, local responses, admin. */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/admin.h"
#include "podrouter/log.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"

static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_header_field(llhttp_t *p, const char *at, size_t len);
static int on_header_value(llhttp_t *p, const char *at, size_t len);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);

static llhttp_settings_t req_settings;
static uv_once_t settings_once = UV_ONCE_INIT;

static void settings_init(void)
{
    llhttp_settings_init(&req_settings);
    req_settings.on_url = on_url;
    req_settings.on_header_field = on_header_field;
    req_settings.on_header_value = on_header_value;
    req_settings.on_headers_complete = on_headers_complete;
    req_settings.on_body = on_body;
    req_settings.on_message_complete = on_message_complete;
}

/* ---- exchanges (pooled per worker) ---- */

static struct pr_exchange *exchange_get(struct pr_worker *w)
{
    struct pr_exchange *x = w->free_exchanges;
    if (x) {
        w->free_exchanges = x->next_free;
        w->nfree_exchanges--;
    } else {
        x = calloc(1, sizeof(*x));
        if (!x)
            return NULL;
    }
    char *head = x->head, *out = x->out, *resp = x->resp, *body = x->body;
    uint32_t head_cap = x->head_cap, out_cap = x->out_cap, resp_cap = x->resp_cap;
    memset(x, 0, offsetof(struct pr_exchange, hdr_name_off));
    memset(&x->rh, 0, sizeof(*x) - offsetof(struct pr_exchange, rh));
    x->head = head;
    x->head_cap = head_cap;
    x->out = out;
    x->out_cap = out_cap;
    x->resp = resp;
    x->resp_cap = resp_cap;
    x->body = body;
    x->status = 0;
    return x;
}

void pr__exchange_release(struct pr_worker *w, struct pr_exchange *x)
{
    if (!x)
        return;
    /* Keep buffers of ordinary size; give back what a large request made us grow. */
    if (x->head_cap > 32768) {
        free(x->head);
        x->head = NULL;
        x->head_cap = 0;
    }
    if (x->resp_cap > 32768) {
        free(x->resp);
        x->resp = NULL;
        x->resp_cap = 0;
    }
    free(x->body);
    x->body = NULL;
    if (w->nfree_exchanges >= PR_EXCHANGE_FREELIST) {
        free(x->head);
        free(x->out);
        free(x->resp);
        free(x);
        return;
    }
    x->next_free = w->free_exchanges;
    w->free_exchanges = x;
    w->nfree_exchanges++;
}

static int grow(char **buf, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = (uint32_t)n;
    return 0;
}

/* ---- llhttp callbacks: record slices as offsets into x->head ---- */

static struct pr_exchange *px(llhttp_t *p)
{
    return ((struct pr_client *)p->data)->x;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    if (x->url_len == 0)
        x->url_off = (uint32_t)(at - x->head);
    x->url_len += (uint32_t)len;
    return 0;
}

/* Record a (possibly split) header-name slice as an offset from base. */
int pr__hdr_field(struct pr_exchange *x, const char *base, const char *at, size_t len)
{
    if (x->in_value || x->nheaders == 0) {
        if (x->nheaders >= PR_MAX_HEADERS)
            return -1;
        x->hdr_name_off[x->nheaders] = (uint32_t)(at - base);
        x->hdr_name_len[x->nheaders] = 0;
        x->hdr_val_off[x->nheaders] = 0;
        x->hdr_val_len[x->nheaders] = 0;
        x->nheaders++;
        x->in_value = false;
    }
    x->hdr_name_len[x->nheaders - 1] += (uint32_t)len;
    return 0;
}

/* Record a (possibly split) header-value slice as an offset from base. */
int pr__hdr_value(struct pr_exchange *x, const char *base, const char *at, size_t len)
{
    if (x->nheaders == 0)
        return 0;
    if (!x->in_value) {
        x->hdr_val_off[x->nheaders - 1] = (uint32_t)(at - base);
        x->in_value = true;
    }
    x->hdr_val_len[x->nheaders - 1] += (uint32_t)len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    return pr__hdr_field(x, x->head, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    return pr__hdr_value(x, x->head, at, len);
}

/* Pause right after the head when a body follows; a bodyless request pauses at its
 * message end instead, so the head is known complete either way. */
static int on_headers_complete(llhttp_t *p)
{
    bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    return body && !p->upgrade ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct pr_client *c = p->data;
    struct pr_exchange *x = c->x;
    if (!c->admin)
        return 0;
    if (x->body_len + len > PR_ADMIN_BODY_MAX) {
        x->status = 413;
        return HPE_USER;
    }
    uint32_t cap = x->body ? PR_ADMIN_BODY_MAX : 0;
    if (!x->body) {
        x->body = malloc(PR_ADMIN_BODY_MAX);
        if (!x->body)
            return HPE_USER;
        cap = PR_ADMIN_BODY_MAX;
    }
    (void)cap;
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

/* ---- connection lifecycle ---- */

static void client_close_cb(uv_handle_t *h)
{
    struct pr_client *c = pr__container_of(h, struct pr_client, tcp);
    c->handle_closed = true;
    if (c->store_refs == 0)
        free(c);
}

void pr__client_close(struct pr_client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct pr_worker *w = c->w;
    pr__tq_remove(&c->tq);
    if (c->prev)
        c->prev->next = c->next;
    else if (w->clients == c)
        w->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->up)
        pr__proxy_client_gone(c);
    if (c->x) {
        if (c->x->status && !c->admin)
            pr__access_log(c);
        pr__exchange_release(w, c->x);
        c->x = NULL;
    }
    free(c->pending);
    c->pending = NULL;
    if (c->state == PR_C_TUNNEL)
        w->m->conns[PR_CONN_WEBSOCKET]--;
    w->m->conns[PR_CONN_CLIENT]--;
    atomic_fetch_sub(&pr__srv.nclients, 1);
    uv_close((uv_handle_t *)&c->tcp, client_close_cb);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void pr__client_start_read(struct pr_client *c)
{
    if (c->reading || c->closing)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, pr__alloc_cb, client_read_cb) == 0)
        c->reading = true;
}

void pr__client_stop_read(struct pr_client *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void client_write_cb(uv_write_t *req, int status)
{
    struct pr_wreq *wr = pr__container_of(req, struct pr_wreq, req);
    struct pr_client *c = wr->owner;
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        pr__client_close(c);
        return;
    }
    if (c->tcp.write_queue_size > 0)
        return;
    c->writing = false;
    if (c->close_after_write && c->state != PR_C_PROXYING && c->state != PR_C_TUNNEL) {
        pr__client_close(c);
        return;
    }
    pr__proxy_client_drained(c);
}

int pr__stream_send2(uv_stream_t *s, void *owner, const char *a, size_t alen, const char *b,
                     size_t blen, uv_write_cb cb)
{
    size_t len = alen + blen, off = 0;
    if (len == 0)
        return 0;
    if (s->write_queue_size == 0) {
        uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen),
                            uv_buf_init((char *)b, (unsigned)blen)};
        int n = uv_try_write(s, alen ? bufs : bufs + 1, alen && blen ? 2 : 1);
        if (n >= 0 && (size_t)n == len)
            return 0;
        if (n > 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN)
            return n;
    }
    /* The socket is full: keep a copy of the rest until it drains. */
    struct pr_wreq *wr = malloc(sizeof(*wr) + (len - off));
    if (!wr)
        return UV_ENOMEM;
    wr->owner = owner;
    wr->len = len - off;
    size_t w = 0;
    if (off < alen) {
        memcpy(wr->data, a + off, alen - off);
        w = alen - off;
        if (blen)
            memcpy(wr->data + w, b, blen);
    } else {
        memcpy(wr->data, b + (off - alen), blen - (off - alen));
    }
    uv_buf_t buf = uv_buf_init(wr->data, (unsigned)wr->len);
    int rc = uv_write(&wr->req, s, &buf, 1, cb);
    if (rc) {
        free(wr);
        return rc;
    }
    return 1;
}

int pr__stream_send(uv_stream_t *s, void *owner, const char *data, size_t len, uv_write_cb cb)
{
    return pr__stream_send2(s, owner, data, len, NULL, 0, cb);
}

int pr__client_send2(struct pr_client *c, const char *a, size_t alen, const char *b, size_t blen)
{
    int rc = pr__stream_send2((uv_stream_t *)&c->tcp, c, a, alen, b, blen, client_write_cb);
    if (rc == 1)
        c->writing = true;
    return rc;
}

int pr__client_send(struct pr_client *c, const char *data, size_t len)
{
    int rc = pr__stream_send((uv_stream_t *)&c->tcp, c, data, len, client_write_cb);
    if (rc == 1)
        c->writing = true;
    return rc;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static void count_request(struct pr_client *c, int status)
{
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    c->w->m->requests[c->admin ? PR_LISTENER_ADMIN : PR_LISTENER_PUBLIC][cls]++;
}

/* Send a complete locally generated response; the request ends when it is written. */
void pr__client_respond(struct pr_client *c, int status, const char *content_type,
                        const char *extra_headers, const char *body, size_t body_len,
                        bool close)
{
    struct pr_exchange *x = c->x;
    if (pr__srv.draining && !c->admin)
        close = true;
    if (x && !x->req_complete)
        close = true; /* unread request body: do not try to resync */
    if (x && x->head_end && !x->req_keepalive)
        close = true; /* the client asked for Connection: close (or spoke HTTP/1.0) */
    bool bodyless = status == 204 || status == 304;
    if (bodyless)
        body_len = 0;
    char clen[48] = "";
    if (!bodyless)
        snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", body_len);
    if (x && x->is_head)
        body_len = 0; /* HEAD: the head of the GET response, without its body */
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n%s%s%s%s%s%s%s%s\r\n", status,
                     reason(status), clen, content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "",
                     x && x->request_id[0] ? "X-Request-Id: " : "",
                     x && x->request_id[0] ? x->request_id : "",
                     x && x->request_id[0] ? "\r\n" : "", close ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = (int)sizeof(head) - 1;
    size_t elen = extra_headers ? strlen(extra_headers) : 0;
    /* Move the blank line after the extra headers. */
    size_t total = (size_t)n + elen + body_len;
    char stackbuf[4096];
    char *buf = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
    if (!buf) {
        pr__client_close(c);
        return;
    }
    memcpy(buf, head, (size_t)n - 2);
    memcpy(buf + n - 2, extra_headers ? extra_headers : "", elen);
    memcpy(buf + n - 2 + elen, "\r\n", 2);
    if (body_len)
        memcpy(buf + n + elen, body, body_len);
    count_request(c, status);
    if (x)
        x->status = status;
    if (!close && x && x->head_end && x->head_len > x->head_end) {
        /* Pipelined requests that arrived while this one was routed: keep them. */
        uint32_t n = x->head_len - x->head_end;
        char *p = realloc(c->pending, c->pending_len + n);
        if (!p) {
            pr__client_close(c);
            return;
        }
        memcpy(p + c->pending_len, x->head + x->head_end, n);
        c->pending = p;
        c->pending_len += n;
        x->head_len = x->head_end;
    }
    c->state = PR_C_LOCAL;
    c->close_after_write = close;
    int rc = pr__client_send(c, buf, total);
    if (buf != stackbuf)
        free(buf);
    if (rc < 0) {
        pr__client_close(c);
        return;
    }
    pr__client_request_done(c);
}

void pr__client_error(struct pr_client *c, int status, const char *code, const char *message,
                      const char *extra_headers, bool close)
{
    size_t len;
    char *body = pr_error_json(code, message, &len);
    pr__client_respond(c, status, "application/json", extra_headers, body ? body : "",
                       body ? len : 0, close);
    free(body);
}

void pr__access_log(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    if (!pr__srv.cfg.access_log || !pr_log_enabled(PR_LOG_INFO) || !x)
        return;
    char status[8], dur[32], url[512];
    snprintf(status, sizeof(status), "%d", x->status);
    double ms = (double)(uv_hrtime() - x->start_ns) / 1e6;
    snprintf(dur, sizeof(dur), "%.3f", ms);
    size_t ul = x->url_len < sizeof(url) - 1 ? x->url_len : sizeof(url) - 1;
    memcpy(url, x->head + x->url_off, ul);
    url[ul] = 0;
    const char *method = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    pr_info("request", "request_id", x->request_id[0] ? x->request_id : NULL, "method", method,
            "path", url, "#status", status, "#duration_ms", dur, "pod", x->pod[0] ? x->pod : NULL,
            "key", x->key_kind != PR_KEY_NONE || x->pod[0] ? pr_key_kind_name(x->key_kind) : NULL,
            "room", x->aff.room_len ? x->aff.room : NULL, "sid",
            x->aff.sid_len ? x->aff.sid : NULL);
}

static void client_feed(struct pr_client *c, const char *data, size_t len);

/* The current request/response is finished: recycle the exchange, then either close or
 * go back to idle keep-alive (processing pipelined bytes first). */
void pr__client_request_done(struct pr_client *c)
{
    struct pr_worker *w = c->w;
    if (c->closing)
        return;
    if (c->x) {
        if (!c->admin)
            pr__access_log(c);
        pr__exchange_release(w, c->x);
        c->x = NULL;
    }
    if (c->close_after_write) {
        pr__client_stop_read(c);
        if (!c->writing)
            pr__client_close(c);
        else
            c->state = PR_C_CLOSING;
        return;
    }
    c->state = PR_C_IDLE;
    if (c->pending) {
        char *p = c->pending;
        uint32_t n = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        client_feed(c, p, n);
        free(p);
        if (c->closing || c->state != PR_C_IDLE)
            return;
    }
    pr__tq_push(&w->q_idle, &c->tq, pr__now(w));
    pr__client_start_read(c);
}

/* Remember the peer address once per connection (no getpeername per request). */
static void read_peer(struct pr_client *c)
{
    struct sockaddr_storage ss;
    int l = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &l))
        return;
    if (ss.ss_family == AF_INET) {
        memcpy(c->peer_addr, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
        c->peer_family = AF_INET;
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(c->peer_addr, a->s6_addr + 12, 4);
            c->peer_family = AF_INET;
        } else {
            memcpy(c->peer_addr, a, 16);
            c->peer_family = AF_INET6;
        }
    }
}

void pr__peer_ip(const struct pr_client *c, char *out, size_t outlen)
{
    out[0] = 0;
    if (c->peer_family == AF_INET || c->peer_family == AF_INET6)
        inet_ntop(c->peer_family, c->peer_addr, out, (socklen_t)outlen);
}

static bool peer_is_loopback(const struct pr_client *c)
{
    if (c->peer_family == AF_INET)
        return c->peer_addr[0] == 127;
    if (c->peer_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)c->peer_addr);
    return false;
}

/* ---- admin requests ---- */

static bool admin_draining(void)
{
    return atomic_load(&pr__srv.draining);
}

static void admin_handle(struct pr_client *c);

/* The shared store answered the look-up below; its cache now holds the key, if any. */
static void admin_prefetched(void *arg, int status, const char *pod)
{
    struct pr_client *c = arg;
    c->store_refs--;
    if (c->closing) {
        if (c->store_refs == 0 && c->handle_closed)
            free(c);
        return;
    }
    admin_handle(c);
}

/* With a shared store (Redis) this replica's cache may not know an assignment another
 * replica made: GET /v1/rooms/{id} and /v1/participants/{id} look it up in the store first
 * (asynchronously), then answer from the cache like every other admin route. */
static void admin_dispatch(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    struct pr_store *st = c->w->store;
    if (st->ops->pod_put && x->req_parser.method == HTTP_GET) {
        static const struct {
            const char *prefix;
            enum pr_key_kind kind;
        } routes[] = {{"/v1/rooms/", PR_KEY_ROOM}, {"/v1/participants/", PR_KEY_PARTICIPANT}};
        const char *url = x->head + x->url_off;
        size_t ul = x->url_len;
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            size_t pl = strlen(routes[i].prefix);
            if (ul <= pl || memcmp(url, routes[i].prefix, pl) != 0)
                continue;
            size_t kl = 0;
            while (pl + kl < ul && url[pl + kl] != '?' && url[pl + kl] != '/')
                kl++;
            if (!pr_key_valid(url + pl, kl))
                break;
            c->store_refs++;
            st->ops->get(st, routes[i].kind, url + pl, kl, admin_prefetched, c);
            return;
        }
    }
    admin_handle(c);
}

static void admin_handle(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    char method[16], path[1024];
    const char *m = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    snprintf(method, sizeof(method), "%s", m);
    size_t pl = 0;
    const char *url = x->head + x->url_off;
    while (pl < x->url_len && url[pl] != '?' && pl < sizeof(path) - 1) {
        path[pl] = url[pl];
        pl++;
    }
    path[pl] = 0;
    char auth[512] = "", ctype[256] = "";
    const struct pr_header *h = pr_head_find(&x->rh, "authorization");
    if (h)
        snprintf(auth, sizeof(auth), "%.*s", (int)h->value_len, h->value);
    h = pr_head_find(&x->rh, "content-type");
    if (h)
        snprintf(ctype, sizeof(ctype), "%.*s", (int)h->value_len, h->value);
    struct pr_admin_ctx ctx = {
        .cfg = &pr__srv.cfg,
        .reg = pr__srv.reg,
        .store = c->w->store,
        .token = pr__srv.token,
        .token_len = pr__srv.token_len,
        .draining = admin_draining,
        .render_metrics = pr_metrics_render,
    };
    struct pr_admin_request req = {
        .method = method,
        .path = path,
        .authorization = auth[0] ? auth : NULL,
        .content_type = ctype[0] ? ctype : NULL,
        .body = x->body,
        .body_len = x->body_len,
        .peer_loopback = c->peer_loopback,
    };
    struct pr_admin_response resp;
    memset(&resp, 0, sizeof(resp));
    pr_admin_handle(&ctx, &req, &resp);
    bool close = !llhttp_should_keep_alive(&x->req_parser);
    pr__client_respond(c, resp.status, resp.content_type,
                       resp.extra_headers[0] ? resp.extra_headers : NULL, resp.body,
                       resp.body_len, close);
    free(resp.body);
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

static void head_complete(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    struct pr_worker *w = c->w;
    pr__tq_remove(&c->tq);
    for (uint32_t i = 0; i < x->nheaders; i++) {
        x->headers[i].name = x->head + x->hdr_name_off[i];
        x->headers[i].name_len = x->hdr_name_len[i];
        x->headers[i].value = x->head + x->hdr_val_off[i];
        x->headers[i].value_len = x->hdr_val_len[i];
    }
    const char *method = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    x->rh.method = method;
    x->rh.method_len = strlen(method);
    x->rh.url = x->head + x->url_off;
    x->rh.url_len = x->url_len;
    x->rh.headers = x->headers;
    x->rh.nheaders = x->nheaders;
    x->req_keepalive = llhttp_should_keep_alive(&x->req_parser);
    x->req_upgrade = x->req_parser.upgrade;
    x->is_head = x->req_parser.method == HTTP_HEAD;
    const struct pr_header *rid = pr_head_find(&x->rh, "x-request-id");
    if (rid && request_id_ok(rid->value, rid->value_len)) {
        memcpy(x->request_id, rid->value, rid->value_len);
        x->request_id[rid->value_len] = 0;
        x->rid_from_client = true;
    } else {
        /* Absent, empty, oversized or unprintable: ours replaces it, for pod and log alike. */
        uint64_t seq = atomic_fetch_add_explicit(&pr__srv.request_seq, 1, memory_order_relaxed);
        format_request_id(x->request_id, (uint32_t)pr__srv.start_ms, (uint8_t)w->id, seq);
    }
    c->state = PR_C_ROUTING;
    if (c->admin) {
        if (x->req_parser.content_length > PR_ADMIN_BODY_MAX &&
            (x->req_parser.flags & F_CONTENT_LENGTH)) {
            pr__client_error(c, 413, "body_too_large", "request body over 64 KiB", NULL, true);
            return;
        }
        /* Read the (small, bounded) body through the parser, then dispatch. */
        size_t rest = x->head_len - x->head_end;
        x->head_len = x->head_end;
        if (x->req_complete) {
            if (rest) {
                c->pending = malloc(rest);
                if (c->pending) {
                    memcpy(c->pending, x->head + x->head_end, rest);
                    c->pending_len = (uint32_t)rest;
                }
            }
            pr__client_stop_read(c);
            admin_dispatch(c);
            return;
        }
        llhttp_resume(&x->req_parser);
        if (rest)
            client_feed(c, x->head + x->head_end, rest);
        else
            pr__client_start_read(c);
        return;
    }
    /* Reading goes on while a pod is chosen: early body bytes join the head buffer. */
    pr__proxy_route(c);
}

static void parse_error(struct pr_client *c, llhttp_errno_t err)
{
    struct pr_exchange *x = c->x;
    if (x && x->status == 413) {
        pr__client_error(c, 413, "body_too_large", "request body over 64 KiB", NULL, true);
        return;
    }
    if (x && x->nheaders >= PR_MAX_HEADERS && c->state == PR_C_HEAD) {
        pr__client_error(c, 431, "header_too_large", "too many request header fields", NULL,
                         true);
        return;
    }
    c->w->m->proxy_errors[PR_ERR_BAD_REQUEST]++;
    char msg[160];
    snprintf(msg, sizeof(msg), "malformed HTTP request: %s",
             x ? llhttp_get_error_reason(&x->req_parser) : llhttp_errno_name(err));
    if (c->state == PR_C_HEAD || c->state == PR_C_IDLE || c->state == PR_C_ROUTING)
        pr__client_error(c, 400, "bad_request", msg, NULL, true);
    else
        pr__client_close(c);
}

/* Route incoming client bytes by state. */
static void client_feed(struct pr_client *c, const char *data, size_t len)
{
    struct pr_worker *w = c->w;
    if (c->state == PR_C_IDLE) {
        c->x = exchange_get(w);
        if (!c->x) {
            pr__client_close(c);
            return;
        }
        struct pr_exchange *x = c->x;
        llhttp_init(&x->req_parser, HTTP_REQUEST, &req_settings);
        x->req_parser.data = c;
        x->start_ns = uv_hrtime();
        c->state = PR_C_HEAD;
        pr__tq_push(&w->q_header, &c->tq, pr__now(w));
    }
    struct pr_exchange *x = c->x;
    switch (c->state) {
    case PR_C_HEAD: {
        uint32_t max = pr__srv.cfg.max_header_bytes;
        if (grow(&x->head, &x->head_cap, (size_t)x->head_len + len)) {
            pr__client_close(c);
            return;
        }
        char *start = x->head + x->head_len;
        memcpy(start, data, len);
        x->head_len += (uint32_t)len;
        llhttp_errno_t err = llhttp_execute(&x->req_parser, start, len);
        if (err == HPE_PAUSED) {
            x->head_end = (uint32_t)(llhttp_get_error_pos(&x->req_parser) - x->head);
            if (x->head_end > max) {
                pr__client_error(c, 431, "header_too_large", "request head too large", NULL,
                                 true);
                return;
            }
            head_complete(c);
            return;
        }
        if (err != HPE_OK) {
            parse_error(c, err);
            return;
        }
        if (x->head_len > max)
            pr__client_error(c, 431, "header_too_large", "request head too large", NULL, true);
        return;
    }
    case PR_C_ROUTING:
        if (c->admin) {
            llhttp_errno_t err = llhttp_execute(&x->req_parser, data, len);
            if (err == HPE_PAUSED && x->req_complete) {
                const char *pos = llhttp_get_error_pos(&x->req_parser);
                size_t used = (size_t)(pos - data);
                if (used < len) {
                    c->pending = malloc(len - used);
                    if (c->pending) {
                        memcpy(c->pending, pos, len - used);
                        c->pending_len = (uint32_t)(len - used);
                    }
                }
                pr__client_stop_read(c);
                admin_dispatch(c);
            } else if (err != HPE_OK) {
                parse_error(c, err);
            }
            return;
        }
        /* Public: body bytes that arrive while a pod is chosen (async store) wait in the
         * head buffer; past a bound, reading pauses until the pod connection is up. */
        if (grow(&x->head, &x->head_cap, (size_t)x->head_len + len)) {
            pr__client_close(c);
            return;
        }
        memcpy(x->head + x->head_len, data, len);
        x->head_len += (uint32_t)len;
        if (x->head_len - x->head_end > PR_ROUTING_BUFFER)
            pr__client_stop_read(c);
        return;
    case PR_C_PROXYING:
        pr__proxy_on_client_body(c, data, len);
        return;
    case PR_C_TUNNEL:
        pr__tunnel_from_client(c, data, len);
        return;
    case PR_C_LOCAL:
    case PR_C_CLOSING:
    default:
        /* Unsolicited bytes while a local response is written: ignore; we close after. */
        return;
    }
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pr_client *c = pr__container_of(s, struct pr_client, tcp);
    if (nread > 0) {
        client_feed(c, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    /* EOF or error. A client that hangs up mid-exchange (e.g. leaves a pending long-poll)
     * has left: release it and its pod connection now rather than when the pod answers. */
    pr__client_close(c);
}

static struct pr_client *client_accept(uv_stream_t *server, bool admin)
{
    struct pr_worker *w = server->data;
    struct pr_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (uv_tcp_init(&w->loop, &c->tcp)) {
        free(c);
        return NULL;
    }
    c->w = w;
    c->admin = admin;
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, client_close_cb);
        return NULL;
    }
    atomic_fetch_add(&pr__srv.nclients, 1);
    w->m->conns[PR_CONN_CLIENT]++;
    uv_tcp_nodelay(&c->tcp, 1);
    read_peer(c);
    c->next = w->clients;
    if (w->clients)
        w->clients->prev = c;
    w->clients = c;
    c->state = PR_C_IDLE;
    /* The header timeout runs from accept until the first head is complete. */
    pr__tq_push(&w->q_header, &c->tq, pr__now(w));
    pr__client_start_read(c);
    return c;
}

static void reject(uv_stream_t *server)
{
    struct pr_worker *w = server->data;
    uv_tcp_t *t = malloc(sizeof(*t));
    if (!t)
        return;
    uv_tcp_init(&w->loop, t);
    if (uv_accept(server, (uv_stream_t *)t) == 0) {
        /* RST at once: no resources kept for connections over the limit. */
        uv_tcp_close_reset(t, (uv_close_cb)free);
    } else {
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
    }
    w->m->rejected_connections++;
}

void pr__on_connection(uv_stream_t *server, int status)
{
    uv_once(&settings_once, settings_init);
    if (status < 0)
        return;
    if (atomic_load(&pr__srv.nclients) >= pr__srv.cfg.max_connections) {
        reject(server);
        return;
    }
    client_accept(server, false);
}

void pr__on_admin_connection(uv_stream_t *server, int status)
{
    uv_once(&settings_once, settings_init);
    if (status < 0)
        return;
    struct pr_client *c = client_accept(server, true);
    if (c)
        c->peer_loopback = peer_is_loopback(c);
}

/* SIGTERM: close idle keep-alive connections now, the rest after their response. */
void pr__client_drain(struct pr_worker *w)
{
    struct pr_client *c = w->clients;
    while (c) {
        struct pr_client *next = c->next;
        if (!c->admin) {
            if (c->state == PR_C_IDLE || c->state == PR_C_HEAD)
                pr__client_close(c);
            else
                c->close_after_write = c->state != PR_C_TUNNEL;
        }
        c = next;
    }
}
