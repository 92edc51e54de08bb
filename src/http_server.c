/* Client side: accept, llhttp request parsing, limits, timeouts, local responses, admin. */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "podrouter/admin.h"
#include "podrouter/http_rewrite.h"
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
        if (w->nfree_exchanges < w->free_low)
            w->free_low = (uint32_t)w->nfree_exchanges;
    } else {
        x = calloc(1, sizeof(*x));
        if (!x)
            return NULL;
    }
    char *head = x->head, *out = x->out, *resp = x->resp, *replay = x->replay;
    uint32_t head_cap = x->head_cap, out_cap = x->out_cap, resp_cap = x->resp_cap,
             replay_cap = x->replay_cap;
    memset(x, 0, offsetof(struct pr_exchange, req_hdrs));
    x->req_hdrs.n = 0;
    x->req_hdrs.in_value = x->req_hdrs.done = false;
    x->resp_hdrs.n = 0;
    x->resp_hdrs.in_value = x->resp_hdrs.done = false;
    memset(&x->rh, 0, sizeof(*x) - offsetof(struct pr_exchange, rh));
    x->head = head;
    x->head_cap = head_cap;
    x->out = out;
    x->out_cap = out_cap;
    x->resp = resp;
    x->resp_cap = resp_cap;
    x->replay = replay;
    x->replay_cap = replay_cap;
    return x;
}

void pr__exchange_free(struct pr_exchange *x)
{
    free(x->head);
    free(x->out);
    free(x->resp);
    free(x->replay);
    free(x->body);
    free(x);
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
    if (x->replay_cap > 8192) {
        free(x->replay);
        x->replay = NULL;
        x->replay_cap = 0;
    }
    free(x->body);
    x->body = NULL;
    if (w->nfree_exchanges >= PR_EXCHANGE_FREELIST) {
        pr__exchange_free(x);
        return;
    }
    x->next_free = w->free_exchanges;
    w->free_exchanges = x;
    w->nfree_exchanges++;
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

/* Record a (possibly split) header-name slice. Fields after the head (trailers) are not
 * recorded: they travel inside the relayed chunked body and mean nothing to the router. */
int pr__hdr_field(struct pr_hdr_tab *t, uint32_t off, size_t len)
{
    if (t->done)
        return 0;
    if (t->in_value || t->n == 0) {
        if (t->n >= PR_MAX_HEADERS)
            return -1;
        t->name_off[t->n] = off;
        t->name_len[t->n] = 0;
        t->val_off[t->n] = 0;
        t->val_len[t->n] = 0;
        t->n++;
        t->in_value = false;
    }
    t->name_len[t->n - 1] += (uint32_t)len;
    return 0;
}

/* Record a (possibly split) header-value slice. */
int pr__hdr_value(struct pr_hdr_tab *t, uint32_t off, size_t len)
{
    if (t->done || t->n == 0)
        return 0;
    if (!t->in_value) {
        t->val_off[t->n - 1] = off;
        t->in_value = true;
    }
    t->val_len[t->n - 1] += (uint32_t)len;
    return 0;
}

/* Trailer fields are relayed inside the chunked body, so they get the head's field syntax
 * check here: a trailer the pod would parse differently aborts the request. */
int pr__trailer_bytes_ok(const char *at, size_t len, bool name)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if (name ? !pr_tchar(ch) : ((ch < 0x20 && ch != '\t') || ch == 0x7f))
            return 0;
    }
    return 1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    if (x->req_hdrs.done)
        return pr__trailer_bytes_ok(at, len, true) ? 0 : HPE_USER;
    return pr__hdr_field(&x->req_hdrs, feed_offset(x, at), len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = px(p);
    if (x->req_hdrs.done)
        return pr__trailer_bytes_ok(at, len, false) ? 0 : HPE_USER;
    return pr__hdr_value(&x->req_hdrs, feed_offset(x, at), len);
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

/* ---- connection lifecycle ---- */

static void client_free(struct pr_client *c)
{
    free(c->in);
    free(c);
}

static void client_close_cb(uv_handle_t *h)
{
    struct pr_client *c = pr__container_of(h, struct pr_client, tcp);
    c->handle_closed = true;
    if (c->store_refs == 0)
        client_free(c);
}

/* An asynchronous callback (store, name resolution) will still come for c: keep its memory
 * until then, even if the connection closes meanwhile. */
void pr__client_hold(struct pr_client *c)
{
    c->store_refs++;
}

/* The callback came; false when the client is gone and its answer must be ignored. */
bool pr__client_unhold(struct pr_client *c)
{
    c->store_refs--;
    if (!c->closing)
        return true;
    if (c->store_refs == 0 && c->handle_closed)
        client_free(c);
    return false;
}

/* The input buffer (c->in) is freed with the client, not here: an input loop further up
 * the stack may still be reading it. */
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
    c->h->on_gone(c);
    PR_CNT_DEC(w->m->conns[PR_CONN_CLIENT]);
    atomic_fetch_sub(&pr__srv.nclients, 1);
    uv_close((uv_handle_t *)&c->tcp, client_close_cb);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void pr__client_start_read(struct pr_client *c)
{
    if (c->reading || c->closing || c->in_full)
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

/* Put the client's timer in queue q (NULL: none), unless the send timeout owns it. */
void pr__client_queue(struct pr_client *c, struct pr_tq *q)
{
    c->tq_home = q;
    if (c->tq_send)
        return;
    if (q)
        pr__tq_push(q, &c->tq, pr__now(c->w));
    else
        pr__tq_remove(&c->tq);
}

/* A client with bytes queued for it is watched by the send timeout; once they are taken it
 * goes back to the timer of its state. */
void pr__client_arm_send(struct pr_client *c)
{
    struct pr_worker *w = c->w;
    if (c->writing) {
        if (!c->tq_send) {
            pr__tq_push(&w->q_send, &c->tq, pr__now(w));
            c->tq_send = true;
        }
        return;
    }
    if (!c->tq_send)
        return;
    c->tq_send = false;
    pr__client_queue(c, c->tq_home);
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
    if (c->tcp.write_queue_size > 0) {
        if (c->tq_send) /* progress: a queued write completed */
            pr__tq_push(&c->w->q_send, &c->tq, pr__now(c->w));
        return;
    }
    c->writing = false;
    pr__client_arm_send(c);
    c->h->on_drained(c);
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
    if (rc == 1 && !c->writing) {
        c->writing = true;
        pr__client_arm_send(c);
    }
    return rc;
}

int pr__client_send(struct pr_client *c, const char *data, size_t len)
{
    return pr__client_send2(c, data, len, NULL, 0);
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
    case 429: return "Too Many Requests";
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
    PR_CNT_INC(c->w->m->requests[c->admin ? PR_LISTENER_ADMIN : PR_LISTENER_PUBLIC][cls]);
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

/* The current request/response is finished: recycle the exchange, then either close or
 * go back to idle keep-alive (answering pipelined requests first, in the input loop). */
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
    pr__client_queue(c, &w->q_idle);
    if (c->feeding)
        return; /* the input loop below us goes on with the next request */
    pr__client_drive(c);
    if (!c->closing && (c->state == PR_C_IDLE || c->state == PR_C_HEAD))
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

/* Parses one X-Forwarded-For element ("1.2.3.4", "[::1]:80", "::1", "1.2.3.4:80"). */
static bool parse_xff_ip(const char *s, size_t len, int *family, uint8_t addr[16])
{
    char buf[64];
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *h = buf;
    if (h[0] == '[') {
        char *rb = strchr(h, ']');
        if (!rb)
            return false;
        *rb = 0;
        h++;
    } else if (strchr(h, '.') && strchr(h, ':')) {
        *strchr(h, ':') = 0; /* IPv4 with a port */
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, h, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, h, addr) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

void pr__client_addr(const struct pr_client *c, const struct pr_request_head *rh,
                     int *family, uint8_t addr[16])
{
    const struct pr_config *cfg = &pr__srv.cfg;
    *family = c->peer_family;
    memcpy(addr, c->peer_addr, 16);
    if (!c->peer_family || !pr_cidr_match(cfg->trusted, cfg->ntrusted, c->peer_family,
                                          c->peer_addr))
        return;
    /* Walk the X-Forwarded-For elements from the right (last header last). */
    for (size_t i = rh->nheaders; i-- > 0;) {
        const struct pr_header *h = &rh->headers[i];
        if (h->name_len != 15 || strncasecmp(h->name, "x-forwarded-for", 15) != 0)
            continue;
        size_t end = h->value_len;
        while (end > 0) {
            size_t st = end;
            while (st > 0 && h->value[st - 1] != ',')
                st--;
            int f;
            uint8_t a[16];
            if (!parse_xff_ip(h->value + st, end - st, &f, a))
                return; /* unparsable: keep the last address we trusted */
            *family = f;
            memcpy(addr, a, 16);
            if (!pr_cidr_match(cfg->trusted, cfg->ntrusted, f, a))
                return;
            end = st ? st - 1 : 0;
        }
    }
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
    /* Header values as C strings, whatever their length (bounded by the head limit). */
    static const char *const names[] = {"authorization", "content-type", "origin", "host",
                                        "sec-fetch-site"};
    char *vals[5] = {NULL, NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < 5; i++) {
        const struct pr_header *h = pr_head_find(&x->rh, names[i]);
        if (h)
            vals[i] = strndup(h->value, h->value_len);
    }
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
        .authorization = vals[0],
        .content_type = vals[1],
        .origin = vals[2],
        .host = vals[3],
        .fetch_site = vals[4],
        .body = x->body,
        .body_len = x->body_len,
        .peer_loopback = c->peer_loopback,
    };
    struct pr_admin_response resp;
    memset(&resp, 0, sizeof(resp));
    pr_admin_handle(&ctx, &req, &resp);
    for (size_t i = 0; i < 5; i++)
        free(vals[i]);
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
    const char *lines = pr_head_lines_check(x->head, x->head_end);
    if (lines)
        return lines;
    const char *url = x->head + x->url_off;
    if (x->url_len == 0)
        return "empty request target";
    for (uint32_t k = 0; k < x->url_len; k++)
        if ((unsigned char)url[k] <= 0x20 || (unsigned char)url[k] >= 0x7f)
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
        for (uint32_t j = 0; j < f->value_len; j++) {
            unsigned char ch = (unsigned char)f->value[j];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return "control byte in a header value";
        }
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
    for (uint32_t i = 0; i < x->req_hdrs.n; i++) {
        x->headers[i].name = x->head + x->req_hdrs.name_off[i];
        x->headers[i].name_len = x->req_hdrs.name_len[i];
        x->headers[i].value = x->head + x->req_hdrs.val_off[i];
        x->headers[i].value_len = x->req_hdrs.val_len[i];
    }
    const char *method = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    x->rh.method = method;
    x->rh.method_len = strlen(method);
    x->rh.url = x->head + x->url_off;
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
        uint64_t seq = atomic_fetch_add_explicit(&pr__srv.request_seq, 1, memory_order_relaxed);
        format_request_id(x->request_id, (uint32_t)pr__srv.start_ms, (uint8_t)w->id, seq);
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

/* An admin head is complete: its (small, bounded) body is read through the parser by the
 * input loop, then the request is dispatched. */
static void admin_head(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    if (x->req_content_length > PR_ADMIN_BODY_MAX) {
        pr__client_error(c, 413, "body_too_large", "request body over 64 KiB", NULL, true);
        return;
    }
    if (x->req_complete)
        admin_dispatch(c);
    else
        llhttp_resume(&x->req_parser);
}

static void parse_error(struct pr_client *c, llhttp_errno_t err)
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
    size_t t = m + 1, te = t;
    while (te < n && line[te] > 0x20 && line[te] < 0x7f)
        te++;
    if (te == t || te >= n || line[te] != ' ')
        return -1;
    const char *v = line + te + 1;
    if ((size_t)(line + n - v) != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9')
        return -1;
    return 1;
}

/* Parse request-head bytes in place; only what the parser consumed is copied into x->head,
 * so a long pipeline costs one pass over its bytes. Returns bytes consumed. */
static size_t consume_head(struct pr_client *c, const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    uint32_t max = pr__srv.cfg.max_header_bytes;
    /* Never look further than the limit allows: a head that is not complete by then is
     * refused, whatever follows. */
    size_t room = x->head_len < max + 1u ? (size_t)(max + 1u - x->head_len) : 0;
    size_t n = len < room ? len : room;
    x->feed_ptr = data;
    x->feed_off = x->head_len;
    llhttp_errno_t err = llhttp_execute(&x->req_parser, data, n);
    size_t used = n;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
        used = (size_t)(llhttp_get_error_pos(&x->req_parser) - data);
    if (pr_grow(&x->head, &x->head_cap, (size_t)x->head_len + used + 1)) {
        pr__client_close(c);
        return len;
    }
    memcpy(x->head + x->head_len, data, used);
    x->head_len += (uint32_t)used;
    x->feed_ptr = NULL;
    if (!x->line_checked) {
        int lc = request_line_check(x->head, x->head_len);
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
        x->head_end = x->head_len;
        if (x->head_end > max) {
            pr__client_error(c, 431, "header_too_large", "request head too large", NULL, true);
            return len;
        }
        if (err == HPE_PAUSED_UPGRADE)
            llhttp_resume_after_upgrade(&x->req_parser);
        head_complete(c);
        return used;
    }
    if (err != HPE_OK) {
        parse_error(c, err);
        return len;
    }
    if (x->head_len > max) {
        pr__client_error(c, 431, "header_too_large", "request head too large", NULL, true);
        return len;
    }
    return used;
}

/* Admin request body bytes through the parser; dispatch once the message is complete. */
static size_t consume_admin_body(struct pr_client *c, const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    llhttp_errno_t err = llhttp_execute(&x->req_parser, data, len);
    size_t used = len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
        used = (size_t)(llhttp_get_error_pos(&x->req_parser) - data);
    else if (err != HPE_OK) {
        parse_error(c, err);
        return len;
    }
    if (x->req_complete)
        admin_dispatch(c);
    return used;
}

/* One step of the input state machine over data; returns the bytes it consumed (0: the
 * current state takes no input now, the bytes wait in c->in). */
static size_t exchange_consume(struct pr_client *c, const char *data, size_t len)
{
    struct pr_worker *w = c->w;
    switch (c->state) {
    case PR_C_IDLE: {
        if (c->writing)
            return 0; /* the client has not taken our last answer yet: the next waits */
        struct pr_exchange *x = exchange_get(w);
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
    case PR_C_ROUTING:
        if (c->admin && c->x && !c->x->req_complete)
            return consume_admin_body(c, data, len);
        return 0;
    case PR_C_PROXYING:
        return pr__proxy_client_body(c, data, len);
    case PR_C_CLOSING:
        return len; /* we close once our answer is written: nothing more is read */
    case PR_C_LOCAL:
    default:
        return 0;
    }
}

/* Run the input state machine over data until it consumes no more; returns bytes used. */
static size_t client_feed(struct pr_client *c, const char *data, size_t len)
{
    size_t off = 0;
    bool outer = !c->feeding;
    c->feeding = true;
    while (off < len && !c->closing) {
        size_t n = c->h->on_data(c, data + off, len - off);
        if (n == 0)
            break;
        off += n;
    }
    if (outer)
        c->feeding = false;
    return off;
}

static void in_compact(struct pr_client *c)
{
    if (c->in_off == c->in_len) {
        c->in_off = c->in_len = 0;
        if (c->in_cap > 16384) { /* buffers only while data flows */
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    bool full = c->in_len - c->in_off >= PR_CLIENT_IN_MAX;
    if (full && !c->in_full) {
        pr__client_stop_read(c);
        c->in_full = true;
    } else if (!full && c->in_full) {
        c->in_full = false;
        c->h->on_room(c);
    }
}

/* Process what waits in c->in (after a request finished or a pod connection came up). */
void pr__client_drive(struct pr_client *c)
{
    if (c->feeding || c->closing || c->in_off == c->in_len)
        return;
    size_t n = client_feed(c, c->in + c->in_off, c->in_len - c->in_off);
    if (c->closing)
        return;
    c->in_off += (uint32_t)n;
    in_compact(c);
}

static void client_input(struct pr_client *c, const char *data, size_t len)
{
    if (c->in_off < c->in_len) {
        /* Older bytes wait: keep the order, append and process from the buffer. */
        if (c->in_off > 0 && c->in_off >= c->in_len / 2) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        if (pr_grow(&c->in, &c->in_cap, (size_t)c->in_len + len)) {
            pr__client_close(c);
            return;
        }
        memcpy(c->in + c->in_len, data, len);
        c->in_len += (uint32_t)len;
        pr__client_drive(c);
        return;
    }
    size_t n = client_feed(c, data, len);
    if (c->closing || n == len)
        return;
    c->in_off = c->in_len = 0;
    if (pr_grow(&c->in, &c->in_cap, len - n)) {
        pr__client_close(c);
        return;
    }
    memcpy(c->in, data + n, len - n);
    c->in_len = (uint32_t)(len - n);
    in_compact(c);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pr_client *c = pr__container_of(s, struct pr_client, tcp);
    if (nread > 0) {
        client_input(c, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    /* EOF or error. A client that hangs up mid-exchange (e.g. leaves a pending long-poll)
     * has left: release it and its pod connection now rather than when the pod answers
     * (on_gone); a tunnel's last bytes still reach the pod. */
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
    c->h = admin ? &pr__admin_client_handlers : &pr__http_client_handlers;
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, client_close_cb);
        return NULL;
    }
    atomic_fetch_add(&pr__srv.nclients, 1);
    PR_CNT_INC(w->m->conns[PR_CONN_CLIENT]);
    uv_tcp_nodelay(&c->tcp, 1);
    read_peer(c);
    c->next = w->clients;
    if (w->clients)
        w->clients->prev = c;
    w->clients = c;
    c->state = PR_C_IDLE;
    /* The header timeout runs from accept until the first head is complete. */
    pr__client_queue(c, &w->q_header);
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
    PR_CNT_INC(w->m->rejected_connections);
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

/* SIGTERM: each connection's layer decides (idle keep-alive ones close now, the rest after
 * their response, tunnels when the worker stops). */
void pr__client_drain(struct pr_worker *w)
{
    struct pr_client *c = w->clients;
    while (c) {
        struct pr_client *next = c->next;
        c->h->on_drain(c);
        c = next;
    }
}

/* ---- timers of client connections ---- */

static void expire_state(struct pr_tq_node *n)
{
    struct pr_client *c = pr__container_of(n, struct pr_client, tq);
    c->h->on_timeout(c);
}

/* A client that took none of its queued bytes for --send-timeout. */
static void expire_send(struct pr_tq_node *n)
{
    struct pr_client *c = pr__container_of(n, struct pr_client, tq);
    c->tq_send = false;
    pr_debug("send timeout", "state", "client");
    pr__client_close(c);
}

void pr__client_queues_init(struct pr_worker *w, const struct pr_config *cfg)
{
    pr__tq_init(&w->q_header, cfg->header_timeout_ms, expire_state);
    pr__tq_init(&w->q_idle, cfg->idle_timeout_ms, expire_state);
    pr__tq_init(&w->q_tunnel, cfg->idle_timeout_ms, expire_state);
    pr__tq_init(&w->q_send, cfg->send_timeout_ms, expire_send);
}

/* ---- the request exchange's handler tables ---- */

/* The header timeout answers 408 to a started head; an idle keep-alive connection closes. */
static void http_timeout(struct pr_client *c)
{
    if (c->state == PR_C_HEAD)
        pr__client_error(c, 408, "request_timeout", "request head not received in time", NULL,
                         true);
    else
        pr__client_close(c);
}

static void http_drained(struct pr_client *c)
{
    if (c->close_after_write && c->state != PR_C_PROXYING) {
        pr__client_close(c);
        return;
    }
    pr__proxy_client_drained(c);
}

static void http_gone(struct pr_client *c)
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
static void http_room(struct pr_client *c)
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

static void admin_drain(struct pr_client *c)
{
    (void)c; /* the admin listener answers until the worker stops */
}

const struct pr_client_handlers pr__http_client_handlers = {
    .on_head = pr__proxy_route, /* bytes that arrive meanwhile wait in c->in (bounded) */
    .on_data = exchange_consume,
    .on_drained = http_drained,
    .on_gone = http_gone,
    .on_timeout = http_timeout,
    .on_room = http_room,
    .on_drain = http_drain,
};

const struct pr_client_handlers pr__admin_client_handlers = {
    .on_head = admin_head,
    .on_data = exchange_consume,
    .on_drained = http_drained,
    .on_gone = http_gone,
    .on_timeout = http_timeout,
    .on_room = http_room,
    .on_drain = admin_drain,
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
