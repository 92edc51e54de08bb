/* The exchange's lifecycle below the parser and the forwarding code: the per-worker pool of
 * exchanges, the end of a request (keep-alive, pipelining), the client address, the local
 * answers the router writes itself (errors, redirects, admin replies) and the access log. */
#include "respond.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "client.h"
#include "exchange.h"
#include "podrouter/admin.h"
#include "podrouter/log.h"
#include "worker.h"

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
    if (atomic_load(&c->w->srv->draining) && !c->admin)
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
    if (!c->w->srv->cfg.access_log || !pr_log_enabled(PR_LOG_INFO) || !x)
        return;
    char status[8], dur[32], url[512];
    snprintf(status, sizeof(status), "%d", x->status);
    double ms = (double)(uv_hrtime() - x->start_ns) / 1e6;
    snprintf(dur, sizeof(dur), "%.3f", ms);
    size_t ul = x->url_len < sizeof(url) - 1 ? x->url_len : sizeof(url) - 1;
    memcpy(url, x->head.p + x->url_off, ul);
    url[ul] = 0;
    const char *method = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    pr_info("request", "request_id", x->request_id[0] ? x->request_id : NULL, "method", method,
            "path", url, "#status", status, "#duration_ms", dur, "pod", x->pod[0] ? x->pod : NULL,
            "key", x->key_kind != PR_KEY_NONE || x->pod[0] ? pr_key_kind_name(x->key_kind) : NULL,
            "room", x->aff.room_len ? x->aff.room : NULL, "sid",
            x->aff.sid_len ? x->aff.sid : NULL);
}

/* ---- exchanges (pooled per worker) ---- */

/* Exchanges (7 KiB) are mapped apart from the malloc heap, like their buffers (pr_buf in
 * common.c): freed after a burst of requests, they give their pages back instead of leaving
 * holes between the connection structs of the tunnels and keep-alive connections allocated
 * meanwhile (issue 11). Pooled, so only a burst maps new ones. On the heap under ASan. */
#if defined(PR_ASAN)
static struct pr_exchange *exchange_alloc(void)
{
    return calloc(1, sizeof(struct pr_exchange));
}

static void exchange_unmap(struct pr_exchange *x)
{
    free(x);
}
#else
#define EXCHANGE_MAP_SIZE ((sizeof(struct pr_exchange) + 4095) & ~(size_t)4095)

static struct pr_exchange *exchange_alloc(void)
{
    void *p = mmap(NULL, EXCHANGE_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p; /* zero-filled, like calloc */
}

static void exchange_unmap(struct pr_exchange *x)
{
    munmap(x, EXCHANGE_MAP_SIZE);
}
#endif

struct pr_exchange *pr__exchange_get(struct pr_worker *w)
{
    struct pr_exchange *x = w->free_exchanges;
    if (x) {
        w->free_exchanges = x->next_free;
        w->nfree_exchanges--;
        if (w->nfree_exchanges < w->free_low)
            w->free_low = (uint32_t)w->nfree_exchanges;
    } else {
        x = exchange_alloc();
        if (!x)
            return NULL;
    }
    /* Keep the buffers (emptied) across the reset: pooled exchanges reuse them. */
    struct pr_buf bufs[4] = {x->head, x->out, x->resp, x->replay};
    memset(x, 0, offsetof(struct pr_exchange, req_hdrs));
    x->req_hdrs.n = 0;
    x->req_hdrs.in_value = x->req_hdrs.done = false;
    x->resp_hdrs.n = 0;
    x->resp_hdrs.in_value = x->resp_hdrs.done = false;
    memset(&x->rh, 0, sizeof(*x) - offsetof(struct pr_exchange, rh));
    x->head = bufs[0];
    x->out = bufs[1];
    x->resp = bufs[2];
    x->replay = bufs[3];
    x->head.len = x->out.len = x->resp.len = x->replay.len = 0;
    return x;
}

void pr__exchange_free(struct pr_exchange *x)
{
    pr_buf_free(&x->head);
    pr_buf_free(&x->out);
    pr_buf_free(&x->resp);
    pr_buf_free(&x->replay);
    free(x->body);
    exchange_unmap(x);
}

void pr__exchange_release(struct pr_worker *w, struct pr_exchange *x)
{
    if (!x)
        return;
    /* Keep buffers of ordinary size; give back what a large request made us grow. */
    pr_buf_trim(&x->head, 32768);
    pr_buf_trim(&x->resp, 32768);
    pr_buf_trim(&x->replay, 8192);
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
        if (!pr__client_writing(c))
            pr__client_linger(c);
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
    const struct pr_config *cfg = &c->w->srv->cfg;
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
