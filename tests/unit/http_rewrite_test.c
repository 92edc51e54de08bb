/* Head rewriting (SPEC 3.3, 3.5): table-driven, no sockets. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/http_rewrite.h"

/* Parses "Name: value\r\n..." lines of a literal into headers (test helper, trusted input). */
static size_t headers_of(const char *text, struct pr_header *h, size_t max)
{
    size_t n = 0;
    const char *p = text;
    while (*p && n < max) {
        const char *eol = strstr(p, "\r\n");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        h[n].name = p;
        h[n].name_len = (uint32_t)(colon - p);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        h[n].value = v;
        h[n].value_len = (uint32_t)(eol - v);
        n++;
        p = eol + 2;
    }
    return n;
}

static char *rewrite_req(const char *hdrs, const struct pr_req_fwd *f, const char *method,
                         const char *url)
{
    struct pr_header h[32];
    struct pr_request_head rh = {.method = method, .method_len = strlen(method), .url = url,
                                 .url_len = strlen(url), .headers = h};
    rh.nheaders = headers_of(hdrs, h, 32);
    struct pr_buf o = {0};
    cr_assert_eq(pr_rewrite_request(&rh, f, &o), 0);
    char *s = strndup(o.p, o.len);
    pr_buf_free(&o);
    return s;
}

struct req_row {
    const char *name, *headers;
    struct pr_req_fwd fwd;
    const char *must[6];     /* substrings of the output */
    const char *must_not[6]; /* substrings that must not appear (case-sensitive) */
};

static const struct req_row req_rows[] = {
    {"plain GET gets XFF, proto, host, request id",
     "Host: a.example\r\n",
     {.client_ip = "203.0.113.7", .request_id = "rid-1"},
     {"GET /x?y=1 HTTP/1.1\r\n", "Host: a.example\r\n", "X-Forwarded-For: 203.0.113.7\r\n",
      "X-Forwarded-Proto: http\r\n", "X-Forwarded-Host: a.example\r\n", "X-Request-Id: rid-1\r\n"},
     {"Content-Length", "Transfer-Encoding"}},
    {"incoming XFF lines are joined, peer last",
     "Host: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n",
     {.client_ip = "127.0.0.1", .request_id = "r"},
     {"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1\r\n"},
     {"X-Forwarded-For: 1.1.1.1\r\n"}},
    {"kept proto/host/request id are not duplicated",
     "Host: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: b\r\nX-Request-Id: abc\r\n",
     {.client_ip = "1.2.3.4", .request_id = "abc", .rid_from_client = true},
     {"X-Forwarded-Proto: https\r\n", "X-Forwarded-Host: b\r\n", "X-Request-Id: abc\r\n"},
     {"X-Forwarded-Proto: http\r\n", "X-Forwarded-Host: a\r\n"}},
    {"an invalid client request id is replaced",
     "Host: a\r\nX-Request-Id: bad id\r\n",
     {.client_ip = "1.2.3.4", .request_id = "ours"},
     {"X-Request-Id: ours\r\n"},
     {"bad id"}},
    {"hop-by-hop and Connection-listed headers go",
     "Host: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\nX-Secret: s\r\nTE: trailers\r\n"
     "Trailer: X\r\nProxy-Authorization: p\r\nProxy-Connection: k\r\nX-Keep: k\r\n",
     {.client_ip = "1.2.3.4", .request_id = "r"},
     {"X-Keep: k\r\n"},
     {"Connection", "Keep-Alive", "X-Secret", "TE:", "Trailer", "Proxy-"}},
    {"framing comes from the parser: Content-Length",
     "Host: a\r\nContent-Length: 0005\r\n",
     {.client_ip = "1.2.3.4", .request_id = "r", .has_content_length = true,
      .content_length = 5},
     {"Content-Length: 5\r\n"},
     {"0005", "Transfer-Encoding"}},
    {"framing comes from the parser: chunked",
     "Host: a\r\nTransfer-Encoding: chunked\r\n",
     {.client_ip = "1.2.3.4", .request_id = "r", .chunked = true},
     {"Transfer-Encoding: chunked\r\n"},
     {"Content-Length"}},
    {"websocket upgrade keeps Upgrade with Connection: Upgrade",
     "Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n",
     {.client_ip = "1.2.3.4", .request_id = "r", .upgrade = true},
     {"Connection: Upgrade\r\nUpgrade: websocket\r\n", "Sec-WebSocket-Key: k\r\n"},
     {"Connection: Upgrade\r\nUpgrade: websocket\r\nConnection"}},
    {"upgrade header without an upgrade is dropped",
     "Host: a\r\nUpgrade: h2c\r\n",
     {.client_ip = "1.2.3.4", .request_id = "r"},
     {"Host: a\r\n"},
     {"Upgrade", "h2c"}},
    {"HTTP/1.0 without Host gets the pod's address",
     "",
     {.client_ip = "1.2.3.4", .request_id = "r", .default_host = "10.0.0.7:3000"},
     {"Host: 10.0.0.7:3000\r\n"},
     {"X-Forwarded-Host"}},
};

Test(http_rewrite, request_table)
{
    for (size_t i = 0; i < sizeof(req_rows) / sizeof(req_rows[0]); i++) {
        const struct req_row *r = &req_rows[i];
        char *out = rewrite_req(r->headers, &r->fwd, "GET", "/x?y=1");
        size_t n = strlen(out);
        cr_expect(n >= 4 && strcmp(out + n - 4, "\r\n\r\n") == 0, "%s: ends with a blank line",
                  r->name);
        cr_expect(strstr(out, "\r\n\r\n") == out + n - 4, "%s: exactly one blank line", r->name);
        for (size_t k = 0; k < 6 && r->must[k]; k++)
            cr_expect(strstr(out, r->must[k]) != NULL, "%s: has %s in\n%s", r->name, r->must[k],
                      out);
        for (size_t k = 0; k < 6 && r->must_not[k]; k++)
            cr_expect(strstr(out, r->must_not[k]) == NULL, "%s: no %s in\n%s", r->name,
                      r->must_not[k], out);
        free(out);
    }
}

Test(http_rewrite, response)
{
    struct pr_header h[16];
    size_t n = headers_of("Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: keep-alive, X-Internal\r\nX-Internal: 1\r\n"
                          "X-Pod-Router-Pod: spoofed\r\nKeep-Alive: timeout=5\r\n",
                          h, 16);
    const char *sl = "HTTP/1.1 200 OK\r\n";
    struct pr_resp_fwd f = {.status_line = sl, .status_line_len = strlen(sl), .status = 200,
                            .headers = h, .nheaders = n, .pod = "backend-1"};
    struct pr_buf o = {0};
    cr_assert_eq(pr_rewrite_response(&f, &o), 0);
    char *out = strndup(o.p, o.len);
    cr_expect(strncmp(out, sl, strlen(sl)) == 0);
    cr_expect(strstr(out, "Transfer-Encoding: chunked\r\n"));
    cr_expect(strstr(out, "X-Pod-Router-Pod: backend-1\r\n"));
    cr_expect(!strstr(out, "spoofed"));
    cr_expect(!strstr(out, "X-Internal"));
    cr_expect(!strstr(out, "Keep-Alive"));
    free(out);
    /* HTTP/1.0 client: no chunked framing, and a close. */
    f.dechunk = true;
    f.close = true;
    o.len = 0;
    cr_assert_eq(pr_rewrite_response(&f, &o), 0);
    out = strndup(o.p, o.len);
    cr_expect(!strstr(out, "Transfer-Encoding"));
    cr_expect(strstr(out, "Connection: close\r\n"));
    free(out);
    /* 101: Connection: Upgrade and Upgrade survive the hop-by-hop rule. */
    size_t n2 = headers_of("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n",
                           h, 16);
    const char *sl2 = "HTTP/1.1 101 Switching Protocols\r\n";
    struct pr_resp_fwd g = {.status_line = sl2, .status_line_len = strlen(sl2), .status = 101,
                            .headers = h, .nheaders = n2, .pod = "p",
                            .cookie_name = "pr_affinity", .cookie_value = "p.abc"};
    o.len = 0;
    cr_assert_eq(pr_rewrite_response(&g, &o), 0);
    out = strndup(o.p, o.len);
    cr_expect(strstr(out, "Connection: Upgrade\r\nUpgrade: websocket\r\n"), "%s", out);
    cr_expect(strstr(out, "Set-Cookie: pr_affinity=p.abc; HttpOnly; Path=/; SameSite=Lax\r\n"));
    free(out);
    pr_buf_free(&o);
}

Test(http_rewrite, head_lines)
{
    static const struct {
        const char *head;
        bool ok;
    } rows[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", false},
        {"GET / HTTP/1.1\nHost: a\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\n\n", false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *why = pr_head_lines_check(rows[i].head, strlen(rows[i].head));
        cr_expect_eq(why == NULL, rows[i].ok, "row %zu: %s", i, why ? why : "ok");
    }
    const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    cr_expect_not_null(pr_head_lines_check(nul, sizeof(nul) - 1));
}

Test(http_rewrite, list_and_hop)
{
    cr_expect(pr_list_has("close, Content-Length", 21, "content-length", 14));
    cr_expect(pr_list_has(" a ,b\t", 6, "b", 1));
    cr_expect_not(pr_list_has("ab", 2, "a", 1));
    cr_expect_not(pr_list_has(",,", 2, "", 0));
}

/* The byte-by-byte definition of pr_head_lines_check (its first version): the memchr one
 * must give the same verdict, the same first fault, on every input. */
static const char *lines_check_reference(const char *head, size_t len)
{
    const unsigned char *h = (const unsigned char *)head;
    size_t i = 0;
    while (i + 1 < len && h[i] == '\r' && h[i + 1] == '\n')
        i += 2;
    bool line_start = false;
    for (; i < len; i++) {
        unsigned char ch = h[i];
        if (line_start && (ch == ' ' || ch == '\t'))
            return "obsolete line folding";
        line_start = false;
        if (ch == '\n') {
            if (i == 0 || h[i - 1] != '\r')
                return "bare LF in the head";
            line_start = true;
        } else if (ch == '\r') {
            if (i + 1 >= len || h[i + 1] != '\n')
                return "bare CR in the head";
        } else if (ch == 0) {
            return "NUL in the head";
        }
    }
    return NULL;
}

static void lines_check_same(const char *b, size_t n)
{
    const char *want = lines_check_reference(b, n), *got = pr_head_lines_check(b, n);
    if (want == NULL || got == NULL)
        cr_assert(want == got, "len %zu: want %s got %s", n, want ? want : "ok", got ? got : "ok");
    else
        cr_assert_str_eq(got, want, "len %zu", n);
}

Test(head_lines, same_verdict_as_the_bytewise_definition)
{
    static const char alpha[] = {'a', ' ', '\t', '\r', '\n', '\0'};
    char b[40];
    /* every string of up to 7 bytes over the bytes that matter */
    for (size_t n = 0; n <= 7; n++) {
        size_t total = 1;
        for (size_t k = 0; k < n; k++)
            total *= sizeof(alpha);
        for (size_t v = 0; v < total; v++) {
            size_t x = v;
            for (size_t k = 0; k < n; k++, x /= sizeof(alpha))
                b[k] = alpha[x % sizeof(alpha)];
            lines_check_same(b, n);
        }
    }
    /* longer ones at random, mostly well-formed lines with one or two faults */
    uint32_t r = 12345;
    for (int t = 0; t < 200000; t++) {
        size_t n = 8 + t % 32;
        for (size_t k = 0; k < n; k++) {
            r = r * 1103515245u + 12345u;
            b[k] = (r >> 16) % 8 ? "GET /x\r\n"[k % 9] : alpha[(r >> 8) % sizeof(alpha)];
        }
        lines_check_same(b, n);
    }
}

/* The eight-bytes-at-a-time scans against their byte-by-byte definitions: every byte value
 * at every position of every length up to 40 (both word-aligned and tail bytes), from every
 * start offset within a word, and random strings. */
static size_t vchar_span_ref(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f)
        i++;
    return i;
}

static bool field_value_ok_ref(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

Test(http_rewrite, byte_class_scans_match_their_definition)
{
    char buf[64];
    for (size_t off = 0; off < 8; off++) {
        for (size_t n = 0; n <= 40; n++) {
            for (size_t pos = 0; pos < n; pos++) {
                for (int b = 0; b < 256; b++) {
                    char *s = buf + off;
                    memset(s, 'a', n);
                    if (n > 3)
                        s[n - 1] = (char)0xe9; /* obs-text elsewhere in the value */
                    s[pos] = (char)b;
                    size_t got = pr_vchar_span(s, n), want = vchar_span_ref(s, n);
                    if (got != want)
                        cr_assert_eq(got, want, "vchar off %zu n %zu pos %zu byte %#x", off, n,
                                     pos, (unsigned)b);
                    if (pr_field_value_ok(s, n) != field_value_ok_ref(s, n))
                        cr_assert(false, "field value off %zu n %zu pos %zu byte %#x", off, n,
                                  pos, (unsigned)b);
                }
            }
        }
    }
    unsigned seed = 12345;
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)(rand_r(&seed) % 40);
        for (size_t i = 0; i < n; i++) {
            unsigned r = (unsigned)rand_r(&seed);
            /* mostly visible bytes, sometimes anything: a bad byte late in the string */
            buf[i] = (char)(r % 16 == 0 ? (r >> 8) & 0xff : 0x21 + (r >> 8) % 94);
        }
        cr_assert_eq(pr_vchar_span(buf, n), vchar_span_ref(buf, n));
        cr_assert_eq(pr_field_value_ok(buf, n), field_value_ok_ref(buf, n));
    }
}
