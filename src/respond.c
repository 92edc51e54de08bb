/* Local answers: responses the router writes itself (errors, redirects, admin replies) and
 * the access log line of an exchange. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/admin.h"
#include "podrouter/log.h"

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
    memcpy(url, x->head + x->url_off, ul);
    url[ul] = 0;
    const char *method = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    pr_info("request", "request_id", x->request_id[0] ? x->request_id : NULL, "method", method,
            "path", url, "#status", status, "#duration_ms", dur, "pod", x->pod[0] ? x->pod : NULL,
            "key", x->key_kind != PR_KEY_NONE || x->pod[0] ? pr_key_kind_name(x->key_kind) : NULL,
            "room", x->aff.room_len ? x->aff.room : NULL, "sid",
            x->aff.sid_len ? x->aff.sid : NULL);
}
