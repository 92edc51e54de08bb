/* Strict chunked framing (RFC 9112 7.1): table-driven, and every split point of each row. */
#include <criterion/criterion.h>
#include <string.h>

#include "podrouter/chunked.h"

static const struct {
    const char *body;
    int want; /* 1 complete, 0 incomplete, -1 refused */
} rows[] = {
    {"5\r\nhello\r\n0\r\n\r\n", 1},
    {"5;ext=1\r\nhello\r\n0\r\n\r\n", 1},
    {"A\r\n0123456789\r\n0\r\nX-T: a\r\nY: b c\r\n\r\n", 1},
    {"000\r\n\r\n", 1},
    {"5\r\nhello\r\n", 0},
    {"5\r\nhel", 0},
    {"4\r\nhelloGE\r\n0\r\n\r\n", -1},     /* data longer than its size */
    {"5;e=1\r)\nhello\r\n0\r\n\r\n", -1}, /* bare CR in an extension line */
    {"5\nhello\r\n0\r\n\r\n", -1},         /* bare LF after the size */
    {"0\r\nX: a\r\n b\r\n\r\n", -1},       /* obs-fold in the trailer */
    {"0\r\nX: a\rY: b\r\n\r\n", -1},       /* bare CR in the trailer */
    {"0\r\nX: a\nY: b\r\n\r\n", -1},       /* bare LF in the trailer */
    {"0\r\nX : a\r\n\r\n", -1},            /* space before the colon */
    {"0\r\n\r\nGET / HTTP/1.1\r\n", -1},   /* bytes after the end */
    {"-5\r\nhello\r\n0\r\n\r\n", -1},
    {"\r\n", -1},
    {"1234567890abcdef0\r\n", -1},         /* too many digits */
    {"5 \r\nhello\r\n0\r\n\r\n", 1},       /* BWS before an (empty) extension */
    {"5\r\nhello\r\n0\r\nX: a\x01\r\n\r\n", -1},
};

Test(chunked, table_and_every_split)
{
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        size_t n = strlen(rows[r].body);
        struct pr_chunked c;
        pr_chunked_init(&c);
        cr_expect_eq(pr_chunked_feed(&c, rows[r].body, n), rows[r].want, "row %zu whole", r);
        for (size_t s = 1; s < n; s++) {
            pr_chunked_init(&c);
            int a = pr_chunked_feed(&c, rows[r].body, s);
            int got = a < 0 ? -1 : a == 1 ? (s == n ? 1 : -1) : pr_chunked_feed(&c, rows[r].body + s, n - s);
            if (rows[r].want == -1)
                cr_expect_eq(a < 0 || got < 0 || (a == 1), true, "row %zu split %zu refused", r, s);
            else
                cr_expect_eq(got, rows[r].want, "row %zu split %zu", r, s);
        }
    }
}
