/* Head rewriting for the proxy (SPEC 3.3, 3.5): pure functions from a parsed head to the
 * bytes sent on, with no I/O and no connection state, so they are tested and fuzzed alone. */
#ifndef PODROUTER_HTTP_REWRITE_H
#define PODROUTER_HTTP_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"
#include "podrouter/http_head.h"

/* tchar of RFC 9110 5.6.2 (header names, methods). */
static inline bool pr_tchar(unsigned char ch)
{
    unsigned char l = (unsigned char)(ch | 0x20);
    if ((l >= 'a' && l <= 'z') || (ch >= '0' && ch <= '9'))
        return true;
    switch (ch) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* true when the comma-separated list v[0..len) holds the token tok[0..tlen)
 * (case-insensitive, optional whitespace around elements). */
bool pr_list_has(const char *v, size_t len, const char *tok, size_t tlen);

/* true when name is hop-by-hop (RFC 9110 7.6.1) or listed by any Connection header. */
bool pr_hop_by_hop(const struct pr_header *headers, size_t n, const char *name, size_t nlen);

/* What the router adds to a request it forwards. Framing comes from the parser, never from
 * the client's own Content-Length / Transfer-Encoding lines. */
struct pr_req_fwd {
    const char *client_ip;    /* appended to X-Forwarded-For */
    const char *request_id;   /* X-Request-Id when the client's is not kept */
    bool rid_from_client;     /* the client's X-Request-Id is valid and kept */
    bool chunked;             /* Transfer-Encoding: chunked */
    bool has_content_length;  /* Content-Length: content_length */
    uint64_t content_length;
    bool upgrade;             /* a WebSocket upgrade: Connection: Upgrade + Upgrade kept */
    const char *default_host; /* Host for a request without one (HTTP/1.0), or NULL */
};

/* Appends the request head for the pod ("... HTTP/1.1\r\n ... \r\n\r\n") to out: 0 or
 * -ENOMEM. */
int pr_rewrite_request(const struct pr_request_head *rh, const struct pr_req_fwd *f,
                       struct pr_buf *out);

/* What the router changes in a response it relays. */
struct pr_resp_fwd {
    const char *status_line; /* the pod's first line, CRLF included */
    size_t status_line_len;
    int status;
    const struct pr_header *headers;
    size_t nheaders;
    const char *pod;          /* X-Pod-Router-Pod */
    const char *cookie_name;  /* Set-Cookie name=value when both are set */
    const char *cookie_value;
    bool close;               /* Connection: close */
    bool dechunk;             /* drop Transfer-Encoding: the body is relayed without chunks */
};

/* Appends the response head for the client to out: 0 or -ENOMEM. */
int pr_rewrite_response(const struct pr_resp_fwd *f, struct pr_buf *out);

/* Raw head bytes h[0..len) (request or status line first, ending with the blank line):
 * NULL when every line ends in CRLF with no bare CR, LF or NUL and no obs-fold, else the
 * reason. */
const char *pr_head_lines_check(const char *h, size_t len);

#endif
