/* Request and response head rewriting (SPEC 3.3, 3.5): pure, table-tested, fuzzed. */
#include "podrouter/http_rewrite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Appending to out; after the first failure nothing more is added and the result is
 * -ENOMEM. */
struct pr_obuf {
    struct pr_buf *b;
    bool oom;
};

static void pr_obuf_add(struct pr_obuf *o, const char *s, size_t n)
{
    if (!o->oom && pr_buf_append(o->b, s, n) != 0)
        o->oom = true;
}

static void pr_obuf_str(struct pr_obuf *o, const char *s)
{
    pr_obuf_add(o, s, strlen(s));
}

static void add_field(struct pr_obuf *o, const char *n, size_t nl, const char *v, size_t vl)
{
    pr_obuf_add(o, n, nl);
    pr_obuf_add(o, ": ", 2);
    pr_obuf_add(o, v, vl);
    pr_obuf_add(o, "\r\n", 2);
}

static bool is(const char *n, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    return l == len && strncasecmp(n, lit, len) == 0;
}

bool pr_list_has(const char *v, size_t len, const char *tok, size_t tlen)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t st = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > st && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - st == tlen && tlen && strncasecmp(v + st, tok, tlen) == 0)
            return true;
    }
    return false;
}

/* The Connection headers of a head, found once per rewrite. */
struct conn_list {
    const struct pr_header *h[8];
    size_t n;
    bool more; /* over 8: fall back to scanning every header */
};

static void conn_list_of(const struct pr_header *headers, size_t n, struct conn_list *cl)
{
    cl->n = 0;
    cl->more = false;
    for (size_t i = 0; i < n; i++) {
        if (headers[i].name_len != 10 || !is(headers[i].name, 10, "connection"))
            continue;
        if (cl->n < 8)
            cl->h[cl->n++] = &headers[i];
        else
            cl->more = true;
    }
}

static bool hop(const struct pr_header *headers, size_t n, const struct conn_list *cl,
                const char *name, size_t nlen)
{
    static const char *const fixed[] = {"connection", "keep-alive", "proxy-connection", "te",
                                        "trailer", "upgrade", "proxy-authorization"};
    static const size_t fixed_len[] = {10, 10, 16, 2, 7, 7, 19};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (nlen == fixed_len[i] && strncasecmp(name, fixed[i], nlen) == 0)
            return true;
    if (cl->more)
        return pr_hop_by_hop(headers, n, name, nlen);
    for (size_t i = 0; i < cl->n; i++)
        if (pr_list_has(cl->h[i]->value, cl->h[i]->value_len, name, nlen))
            return true;
    return false;
}

bool pr_hop_by_hop(const struct pr_header *headers, size_t n, const char *name, size_t nlen)
{
    static const char *const fixed[] = {"connection", "keep-alive", "proxy-connection", "te",
                                        "trailer", "upgrade", "proxy-authorization"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (is(name, nlen, fixed[i]))
            return true;
    for (size_t i = 0; i < n; i++)
        if (is(headers[i].name, headers[i].name_len, "connection") &&
            pr_list_has(headers[i].value, headers[i].value_len, name, nlen))
            return true;
    return false;
}

/* Every X-Forwarded-For line, in order, as one list ending with the peer (none when the
 * client made it hop-by-hop by naming it in Connection). */
static void add_xff(struct pr_obuf *o, const struct pr_request_head *rh,
                    const struct conn_list *cl, const char *client_ip)
{
    bool xff = false;
    bool xff_hop = hop(rh->headers, rh->nheaders, cl, "x-forwarded-for", 15);
    pr_obuf_str(o, "X-Forwarded-For: ");
    for (size_t i = 0; i < rh->nheaders && !xff_hop; i++) {
        const struct pr_header *h = &rh->headers[i];
        if (!is(h->name, h->name_len, "x-forwarded-for") || h->value_len == 0)
            continue;
        if (xff)
            pr_obuf_add(o, ", ", 2);
        pr_obuf_add(o, h->value, h->value_len);
        xff = true;
    }
    if (xff)
        pr_obuf_add(o, ", ", 2);
    pr_obuf_str(o, client_ip ? client_ip : "");
    pr_obuf_add(o, "\r\n", 2);
}

/* The body framing the router chose: chunked, a Content-Length, or none. */
static void add_framing(struct pr_obuf *o, const struct pr_req_fwd *f)
{
    if (f->chunked) {
        pr_obuf_str(o, "Transfer-Encoding: chunked\r\n");
    } else if (f->has_content_length) {
        char num[24];
        int k = 0;
        uint64_t v = f->content_length;
        char tmp[24];
        do {
            tmp[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v && k < 20);
        for (int j = 0; j < k; j++)
            num[j] = tmp[k - 1 - j];
        add_field(o, "Content-Length", 14, num, (size_t)k);
    }
}

static int request_into(const struct pr_request_head *rh, const struct pr_req_fwd *f,
                        struct pr_obuf *o)
{
    pr_obuf_add(o, rh->method, rh->method_len);
    pr_obuf_add(o, " ", 1);
    pr_obuf_add(o, rh->url, rh->url_len);
    pr_obuf_str(o, " HTTP/1.1\r\n");
    const struct pr_header *upgrade = NULL, *host = NULL;
    bool has_proto = false, has_fhost = false, has_rid = false;
    struct conn_list cl;
    conn_list_of(rh->headers, rh->nheaders, &cl);
    for (size_t i = 0; i < rh->nheaders; i++) {
        const struct pr_header *h = &rh->headers[i];
        if (is(h->name, h->name_len, "upgrade") && !upgrade)
            upgrade = h;
        if (hop(rh->headers, rh->nheaders, &cl, h->name, h->name_len) ||
            is(h->name, h->name_len, "content-length") ||
            is(h->name, h->name_len, "transfer-encoding") ||
            is(h->name, h->name_len, "x-forwarded-for"))
            continue;
        /* The router's own headers appear once: the first incoming one is kept. */
        if (is(h->name, h->name_len, "host"))
            host = h;
        else if (is(h->name, h->name_len, "x-forwarded-proto")) {
            if (has_proto)
                continue;
            has_proto = true;
        } else if (is(h->name, h->name_len, "x-forwarded-host")) {
            if (has_fhost)
                continue;
            has_fhost = true;
        } else if (is(h->name, h->name_len, "x-request-id")) {
            if (!f->rid_from_client || has_rid)
                continue; /* replaced by ours below */
            has_rid = true;
        }
        add_field(o, h->name, h->name_len, h->value, h->value_len);
    }
    if (!host && f->default_host)
        add_field(o, "Host", 4, f->default_host, strlen(f->default_host));
    add_xff(o, rh, &cl, f->client_ip);
    if (!has_proto)
        pr_obuf_str(o, "X-Forwarded-Proto: http\r\n");
    if (!has_fhost && host)
        add_field(o, "X-Forwarded-Host", 16, host->value, host->value_len);
    if (!has_rid && f->request_id)
        add_field(o, "X-Request-Id", 12, f->request_id, strlen(f->request_id));
    if (f->upgrade && upgrade) {
        pr_obuf_str(o, "Connection: Upgrade\r\n");
        add_field(o, "Upgrade", 7, upgrade->value, upgrade->value_len);
    }
    add_framing(o, f);
    pr_obuf_add(o, "\r\n", 2);
    return o->oom ? -ENOMEM : 0;
}

static int response_into(const struct pr_resp_fwd *f, struct pr_obuf *o)
{
    pr_obuf_add(o, f->status_line, f->status_line_len);
    const struct pr_header *upgrade = NULL;
    struct conn_list cl;
    conn_list_of(f->headers, f->nheaders, &cl);
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct pr_header *h = &f->headers[i];
        if (is(h->name, h->name_len, "upgrade") && !upgrade)
            upgrade = h;
        if (hop(f->headers, f->nheaders, &cl, h->name, h->name_len) ||
            is(h->name, h->name_len, "x-pod-router-pod") ||
            (f->dechunk && is(h->name, h->name_len, "transfer-encoding")))
            continue;
        /* A listed Content-Length or Transfer-Encoding is framing, never hop-by-hop. */
        add_field(o, h->name, h->name_len, h->value, h->value_len);
    }
    /* Framing headers named by Connection were skipped above: put them back. */
    for (size_t i = 0; i < f->nheaders; i++) {
        const struct pr_header *h = &f->headers[i];
        bool framing = is(h->name, h->name_len, "content-length") ||
                       (!f->dechunk && is(h->name, h->name_len, "transfer-encoding"));
        if (framing && hop(f->headers, f->nheaders, &cl, h->name, h->name_len))
            add_field(o, h->name, h->name_len, h->value, h->value_len);
    }
    if (f->status == 101 && upgrade) {
        pr_obuf_str(o, "Connection: Upgrade\r\n");
        add_field(o, "Upgrade", 7, upgrade->value, upgrade->value_len);
    }
    add_field(o, "X-Pod-Router-Pod", 16, f->pod, strlen(f->pod));
    if (f->cookie_name && f->cookie_value) {
        pr_obuf_str(o, "Set-Cookie: ");
        pr_obuf_str(o, f->cookie_name);
        pr_obuf_str(o, "=");
        pr_obuf_str(o, f->cookie_value);
        pr_obuf_str(o, "; HttpOnly; Path=/; SameSite=Lax\r\n");
    }
    if (f->close)
        pr_obuf_str(o, "Connection: close\r\n");
    pr_obuf_add(o, "\r\n", 2);
    return o->oom ? -ENOMEM : 0;
}

/* Every line ends in CRLF, no CR or LF elsewhere, no NUL, no line starts with SP/HT
 * (obs-fold). The first fault from the left is reported. Line by line with memchr (a head
 * is ~10 lines of ~25 bytes) instead of a branch per byte: run on every request. */
const char *pr_head_lines_check(const char *head, size_t len)
{
    const char *h = head;
    size_t i = 0;
    while (i + 1 < len && h[i] == '\r' && h[i + 1] == '\n')
        i += 2; /* empty lines before the request line (RFC 9112 2.2) */
    const char *nul = memchr(h + i, 0, len - i);
    size_t stop = nul ? (size_t)(nul - h) : len; /* a fault before the NUL comes first */
    while (i < stop) {
        const char *lf = memchr(h + i, '\n', stop - i);
        size_t end = lf ? (size_t)(lf - h) : stop; /* this line: [i, end) */
        const char *cr = memchr(h + i, '\r', end - i);
        if (cr && (!lf || cr != lf - 1))
            return "bare CR in the head"; /* a CR not right before this line's LF */
        if (!lf)
            break;
        if (end == 0 || h[end - 1] != '\r')
            return "bare LF in the head";
        i = end + 1;
        if (i < stop && (h[i] == ' ' || h[i] == '\t'))
            return "obsolete line folding";
    }
    return nul ? "NUL in the head" : NULL;
}

int pr_rewrite_request(const struct pr_request_head *rh, const struct pr_req_fwd *f,
                       struct pr_buf *out)
{
    struct pr_obuf o = {.b = out};
    return request_into(rh, f, &o);
}

int pr_rewrite_response(const struct pr_resp_fwd *f, struct pr_buf *out)
{
    struct pr_obuf o = {.b = out};
    return response_into(f, &o);
}
