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

int pr_chunked_feed(struct pr_chunked *c, const char *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = b[i];
        switch (c->state) {
        case S_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > 15) /* 15 hex digits: below 2^60, no overflow */
                    return -1;
                c->remaining = c->remaining * 16 + (uint64_t)v;
            } else if (c->digits && (ch == ';' || ch == ' ' || ch == '\t')) {
                c->state = S_EXT;
            } else if (c->digits && ch == '\r') {
                c->state = S_SIZE_LF;
            } else {
                return -1;
            }
            break;
        }
        case S_EXT:
            if (ch == '\r')
                c->state = S_SIZE_LF;
            else if (!text_byte(ch))
                return -1;
            break;
        case S_SIZE_LF:
            if (ch != '\n')
                return -1;
            c->digits = 0;
            c->state = c->remaining ? S_DATA : S_TLINE;
            break;
        case S_DATA: {
            size_t take = n - i;
            if (take > c->remaining)
                take = (size_t)c->remaining;
            c->remaining -= take;
            i += take - 1;
            if (c->remaining == 0)
                c->state = S_DATA_CR;
            break;
        }
        case S_DATA_CR:
            if (ch != '\r')
                return -1;
            c->state = S_DATA_LF;
            break;
        case S_DATA_LF:
            if (ch != '\n')
                return -1;
            c->state = S_SIZE;
            break;
        case S_TLINE:
            if (ch == '\r')
                c->state = S_FINAL_LF;
            else if (pr_tchar(ch))
                c->state = S_TNAME;
            else
                return -1; /* obs-fold, bare LF, junk */
            break;
        case S_TNAME:
            if (ch == ':')
                c->state = S_TVALUE;
            else if (!pr_tchar(ch))
                return -1;
            break;
        case S_TVALUE:
            if (ch == '\r')
                c->state = S_TLF;
            else if (!text_byte(ch))
                return -1;
            break;
        case S_TLF:
            if (ch != '\n')
                return -1;
            c->state = S_TLINE;
            break;
        case S_FINAL_LF:
            if (ch != '\n')
                return -1;
            c->state = S_DONE;
            if (i + 1 != n)
                return -1;
            return 1;
        default:
            return -1;
        }
    }
    return c->state == S_DONE ? 1 : 0;
}
