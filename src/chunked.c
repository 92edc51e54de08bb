/* Strict chunked transfer coding (RFC 9112 7.1):
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 * llhttp 8.1 (Debian's) accepts chunk data followed by two arbitrary bytes instead of CRLF,
 * bare CRs in extensions and lax trailer lines; this checker runs over the bytes the router
 * relays and refuses all of that. */
#include "podrouter/chunked.h"
#include "podrouter/http_rewrite.h"

#include <stdbool.h>
#include <string.h>

enum {
    S_SIZE = 0, /* hex digits of a chunk size */
    S_EXT,      /* chunk extension, up to CR */
    S_SIZE_LF,  /* LF after the size line */
    S_DATA,
    S_DATA_CR,
    S_DATA_LF,
    S_TLINE,    /* start of a trailer line (or the final CRLF) */
    S_TNAME,
    S_TVALUE,
    S_TLF,
    S_FINAL_LF,
    S_DONE,
};

void pr_chunked_init(struct pr_chunked *c)
{
    memset(c, 0, sizeof(*c));
}


static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Field-value and extension bytes: VCHAR, SP, HTAB, obs-text. */
static bool text_byte(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* A hex digit, or the end of the digits of a chunk size: the next state, or -1. */
static int size_byte(struct pr_chunked *c, unsigned char ch)
{
    int v = hexval(ch);
    if (v >= 0) {
        if (++c->digits > 15) /* 15 hex digits: below 2^60, no overflow */
            return -1;
        c->remaining = c->remaining * 16 + (uint64_t)v;
        return S_SIZE;
    }
    if (c->digits && (ch == ';' || ch == ' ' || ch == '\t'))
        return S_EXT;
    if (c->digits && ch == '\r')
        return S_SIZE_LF;
    return -1;
}

/* One byte outside chunk data (size line, CRLF after data, trailer section): the next state,
 * or -1 on framing another parser could read differently. */
static int step(struct pr_chunked *c, unsigned char ch)
{
    switch (c->state) {
    case S_SIZE:
        return size_byte(c, ch);
    case S_EXT:
        return ch == '\r' ? S_SIZE_LF : text_byte(ch) ? S_EXT : -1;
    case S_SIZE_LF:
        if (ch != '\n')
            return -1;
        c->digits = 0;
        return c->remaining ? S_DATA : S_TLINE;
    case S_DATA_CR:
        return ch == '\r' ? S_DATA_LF : -1;
    case S_DATA_LF:
        return ch == '\n' ? S_SIZE : -1;
    case S_TLINE: /* obs-fold, bare LF and junk are refused */
        return ch == '\r' ? S_FINAL_LF : pr_tchar(ch) ? S_TNAME : -1;
    case S_TNAME:
        return ch == ':' ? S_TVALUE : pr_tchar(ch) ? S_TNAME : -1;
    case S_TVALUE:
        return ch == '\r' ? S_TLF : text_byte(ch) ? S_TVALUE : -1;
    case S_TLF:
        return ch == '\n' ? S_TLINE : -1;
    case S_FINAL_LF:
        return ch == '\n' ? S_DONE : -1;
    default: /* S_DONE: bytes after the end */
        return -1;
    }
}

int pr_chunked_feed(struct pr_chunked *c, const char *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        if (c->state == S_DATA) {
            size_t take = n - i;
            if (take > c->remaining)
                take = (size_t)c->remaining;
            c->remaining -= take;
            i += take - 1;
            if (c->remaining == 0)
                c->state = S_DATA_CR;
            continue;
        }
        int next = step(c, b[i]);
        if (next < 0)
            return -1;
        c->state = (uint8_t)next;
        if (next == S_DONE)
            return i + 1 == n ? 1 : -1;
    }
    return c->state == S_DONE ? 1 : 0;
}
