/* Head rewriting for the proxy (SPEC 3.3, 3.5): pure functions from a parsed head to the
 * bytes sent on, with no I/O and no connection state, so they are tested and fuzzed alone. */
#ifndef PODROUTER_HTTP_REWRITE_H
#define PODROUTER_HTTP_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* The two byte-class scans of every request head (the request target, each header value),
 * eight bytes at a time: per byte, bit 7 of a word's flag says "outside the class". The sums
 * never carry between bytes (each byte is masked to 0..0x7f first), so the lowest flagged
 * byte is the first one outside. Scalar on big-endian machines. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PR_SWAR 1
#endif
#define PR_SWAR_ONES 0x0101010101010101ull
#define PR_SWAR_HIGH 0x8080808080808080ull

/* Length of the prefix of s[0..n) in visible ASCII (0x21..0x7e): a request target. */
static inline size_t pr_vchar_span(const char *s, size_t n)
{
    size_t i = 0;
#ifdef PR_SWAR
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        uint64_t x = v & ~PR_SWAR_HIGH;
        uint64_t bad = (v & PR_SWAR_HIGH) | (~(x + 0x5f * PR_SWAR_ONES) & PR_SWAR_HIGH) |
                       ((x + PR_SWAR_ONES) & PR_SWAR_HIGH); /* >= 0x80, < 0x21, == 0x7f */
        if (bad)
            return i + (size_t)(__builtin_ctzll(bad) >> 3);
    }
#endif
    while (i < n && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f)
        i++;
    return i;
}

/* true when s[0..n) holds no control byte but HTAB (RFC 9110 5.5: a header value; obs-text,
 * 0x80..0xff, is allowed through). */
static inline bool pr_field_value_ok(const char *s, size_t n)
{
    size_t i = 0;
#ifdef PR_SWAR
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        uint64_t x = v & ~PR_SWAR_HIGH;
        uint64_t bad = ((~(x + 0x60 * PR_SWAR_ONES) & PR_SWAR_HIGH) |
                        ((x + PR_SWAR_ONES) & PR_SWAR_HIGH)) & /* < 0x20, == 0x7f */
                       ~(v & PR_SWAR_HIGH);                   /* obs-text is fine */
        if (bad)
            break; /* a control byte, or only a tab: the rest byte by byte */
    }
#endif
    for (; i < n; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
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
