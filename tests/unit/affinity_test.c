/* Table-driven tests: request head -> affinity keys, signed cookie, sid sniffer (SPEC 3.1). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "podrouter/affinity.h"
#include "podrouter/http_head.h"

#define K16 "abcdefghijklmnop"
#define K64 K16 K16 K16 K16
#define K127 K64 K16 K16 K16 "ABCDEFGHIJKLMNO"
#define K128 K64 K64
#define K129 K128 "x"
/* 5 + 64 + 59 = a 128-byte room path segment */
#define RP59 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234-_"

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
static const uint8_t other_secret[] = "fedcba9876543210fedcba9876543210";

static const struct pr_affinity_config cfg = {
    .room_param = "roomId",
    .participant_param = "participantId",
    .cookie_name = "pr_affinity",
    .secret = secret,
    .secret_len = 32,
};

/* Splits "Name: value" strings into borrowed pr_header slices. */
static size_t make_headers(const char *const *lines, struct pr_header *hs, size_t max)
{
    size_t n = 0;
    for (; n < max && lines[n] != NULL; n++) {
        const char *colon = strchr(lines[n], ':');
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        hs[n].name = lines[n];
        hs[n].name_len = (uint32_t)(colon - lines[n]);
        hs[n].value = v;
        hs[n].value_len = (uint32_t)strlen(v);
    }
    return n;
}

struct row {
    const char *method;
    const char *url;
    const char *headers[5];
    int rc;
    const char *bad;
    const char *sid, *room, *participant;
    bool engineio, handshake, websocket, redirect;
};

/* clang-format off */
static const struct row rows[] = {
    /* nothing */
    {"GET", "/", {NULL}, 0, NULL, "", "", "", false, false, false, false},
    {"GET", "/api/experiment/list", {NULL}, 0, NULL, "", "", "", false, false, false, false},
    /* Engine.IO handshake, polling and websocket */
    {"GET", "/socket.io/?EIO=4&transport=polling&t=Nx1", {NULL}, 0, NULL, "", "", "", true, true, false, false},
    {"GET", "/socket.io/?EIO=4&transport=websocket", {NULL}, 0, NULL, "", "", "", true, true, true, false},
    {"GET", "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", {NULL}, 0, NULL, "lv_VI97HAXpY6yYWAAAC", "", "", true, false, false, false},
    {"GET", "/socket.io/?EIO=4&transport=websocket&sid=abc-_123", {"Upgrade: websocket"}, 0, NULL, "abc-_123", "", "", true, false, true, false},
    {"POST", "/socket.io/?EIO=4&transport=polling&sid=s1", {NULL}, 0, NULL, "s1", "", "", true, false, false, false},
    /* sid without EIO is still a key, but not a handshake */
    {"GET", "/x?sid=s2", {NULL}, 0, NULL, "s2", "", "", false, false, false, false},
    /* all sources at once (the router applies precedence) */
    {"GET", "/socket.io/?EIO=4&transport=polling&sid=S&roomId=room_a&participantId=p1", {"X-Participant-Id: p2"}, 0, NULL, "S", "room_a", "p1", true, false, false, false},
    /* room: query beats path */
    {"GET", "/experiment/room_path?roomId=room_query", {NULL}, 0, NULL, "", "room_query", "", false, false, false, false},
    /* room from path segments */
    {"GET", "/experiment/room_xyz", {NULL}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"GET", "/api/room/room_xyz/state", {NULL}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"GET", "/api/room/room_a-B_9/state?x=1", {NULL}, 0, NULL, "", "room_a-B_9", "", false, false, false, false},
    {"GET", "/api/room_/x", {NULL}, 0, NULL, "", "", "", false, false, false, false},          /* "room_" alone */
    {"GET", "/api/myroom_x/y", {NULL}, 0, NULL, "", "", "", false, false, false, false},      /* not whole segment */
    {"GET", "/api/room_x.json", {NULL}, 0, NULL, "", "", "", false, false, false, false},     /* '.' not allowed */
    {"GET", "/api/Room_x", {NULL}, 0, NULL, "", "", "", false, false, false, false},          /* case-sensitive */
    {"GET", "/a/room_first/room_second", {NULL}, 0, NULL, "", "room_first", "", false, false, false, false},
    {"GET", "/x?q=/room_inquery", {NULL}, 0, NULL, "", "", "", false, false, false, false},   /* query is not path */
    /* participant: query beats header; header name case-insensitive; OWS trimmed */
    {"GET", "/?participantId=p1", {"X-Participant-Id: p2"}, 0, NULL, "", "", "p1", false, false, false, false},
    {"GET", "/", {"x-participant-id: p2"}, 0, NULL, "", "", "p2", false, false, false, false},
    {"GET", "/", {"X-PARTICIPANT-ID:   p3  "}, 0, NULL, "", "", "p3", false, false, false, false},
    /* percent-encoding */
    {"GET", "/?roomId=room%5Fx%3A1", {NULL}, 0, NULL, "", "room_x:1", "", false, false, false, false},
    {"GET", "/?room%49d=r1&%73id=s%2D1", {NULL}, 0, NULL, "s-1", "r1", "", false, false, false, false},
    {"GET", "/?roomId=a%zz", {NULL}, -EINVAL, "roomId", "", "", "", false, false, false, false},
    {"GET", "/?roomId=a%2", {NULL}, -EINVAL, "roomId", "", "", "", false, false, false, false},
    {"GET", "/?roomId=a+b", {NULL}, -EINVAL, "roomId", "", "", "", false, false, false, false}, /* '+' is not a space */
    {"GET", "/?roomId=a%20b", {NULL}, -EINVAL, "roomId", "", "", "", false, false, false, false},
    {"GET", "/?roomId=%00", {NULL}, -EINVAL, "roomId", "", "", "", false, false, false, false},
    /* first occurrence wins */
    {"GET", "/?roomId=r1&roomId=r2&sid=a&sid=b", {NULL}, 0, NULL, "a", "r1", "", false, false, false, false},
    /* length limits: 128 ok, 129 bad, for each source */
    {"GET", "/?sid=" K128, {NULL}, 0, NULL, K128, "", "", false, false, false, false},
    {"GET", "/?sid=" K129, {NULL}, -EINVAL, "sid", "", "", "", false, false, false, false},
    {"GET", "/?roomId=" K128, {NULL}, 0, NULL, "", K128, "", false, false, false, false},
    {"GET", "/?roomId=" K129, {NULL}, -EINVAL, "roomId", "", "", "", false, false, false, false},
    {"GET", "/?participantId=" K128, {NULL}, 0, NULL, "", "", K128, false, false, false, false},
    {"GET", "/?participantId=" K129, {NULL}, -EINVAL, "participantId", "", "", "", false, false, false, false},
    {"GET", "/", {"X-Participant-Id: " K128}, 0, NULL, "", "", K128, false, false, false, false},
    {"GET", "/", {"X-Participant-Id: " K129}, -EINVAL, "X-Participant-Id", "", "", "", false, false, false, false},
    {"GET", "/experiment/room_" K64 RP59 "7/x", {NULL}, -EINVAL, "room path", "", "", "", false, false, false, false},
    {"GET", "/experiment/room_" K64 RP59, {NULL}, 0, NULL, "", "room_" K64 RP59, "", false, false, false, false},
    /* %-encoded 128-byte value is measured after decoding */
    {"GET", "/?roomId=%61" K64 K16 K16 K16 "ABCDEFGHIJKLMNO", {NULL}, 0, NULL, "", "a" K127, "", false, false, false, false},
    /* empty values are present and therefore bad */
    {"GET", "/?sid=", {NULL}, -EINVAL, "sid", "", "", "", false, false, false, false},
    {"GET", "/?EIO=4&roomId=", {NULL}, -EINVAL, "roomId", "", "", "", true, true, false, false},
    {"GET", "/?participantId", {NULL}, -EINVAL, "participantId", "", "", "", false, false, false, false},
    {"GET", "/", {"X-Participant-Id: "}, -EINVAL, "X-Participant-Id", "", "", "", false, false, false, false},
    /* bad characters */
    {"GET", "/?sid=a/b", {NULL}, -EINVAL, "sid", "", "", "", false, false, false, false},
    {"GET", "/?roomId=%C3%A9", {NULL}, -EINVAL, "roomId", "", "", "", false, false, false, false},
    {"GET", "/", {"X-Participant-Id: p 1"}, -EINVAL, "X-Participant-Id", "", "", "", false, false, false, false},
    /* names are exact (case-sensitive), empty names and bare '&' are skipped */
    {"GET", "/?roomid=x&SID=y&eio=4&&=z&", {NULL}, 0, NULL, "", "", "", false, false, false, false},
    /* EIO without value still counts; transport is decoded */
    {"GET", "/?EIO&transport=web%73ocket", {NULL}, 0, NULL, "", "", "", true, true, true, false},
    {"GET", "/?EIO=4&transport=websockets", {NULL}, 0, NULL, "", "", "", true, true, false, false},
    /* fragments are not part of the query */
    {"GET", "/?roomId=r1#sid=zz", {NULL}, 0, NULL, "", "r1", "", false, false, false, false},
    /* absolute-form target */
    {"GET", "http://router:3001/experiment/room_abs?participantId=p9", {NULL}, 0, NULL, "", "room_abs", "p9", false, false, false, false},
    /* browser redirect */
    {"GET", "/experiment/room_xyz", {"Accept: text/html,application/xhtml+xml"}, 0, NULL, "", "room_xyz", "", false, false, false, true},
    {"GET", "/experiment/room_xyz/", {"accept: TEXT/HTML"}, 0, NULL, "", "room_xyz", "", false, false, false, true},
    {"GET", "/experiment/room_xyz?x=1", {"Accept: */*;q=0.1, text/html"}, 0, NULL, "", "room_xyz", "", false, false, false, true},
    {"GET", "/experiment/room_xyz", {"Accept: application/json"}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"GET", "/experiment/room_xyz", {NULL}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"POST", "/experiment/room_xyz", {"Accept: text/html"}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"HEAD", "/experiment/room_xyz", {"Accept: text/html"}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"GET", "/experiment/room_xyz/state", {"Accept: text/html"}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"GET", "/experiment/room_xyz//", {"Accept: text/html"}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"GET", "/experiments/room_xyz", {"Accept: text/html"}, 0, NULL, "", "room_xyz", "", false, false, false, false},
    {"GET", "/x/experiment/room_xyz", {"Accept: text/html"}, 0, NULL, "", "room_xyz", "", false, false, false, false},
};
/* clang-format on */

Test(affinity, extract_table)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct pr_header hs[8];
        struct pr_request_head h = {r->method, strlen(r->method), r->url, strlen(r->url), hs, 0};
        h.nheaders = make_headers(r->headers, hs, 8);
        struct pr_affinity a;
        const char *bad = "unset";
        int rc = pr_affinity_extract(&cfg, &h, &a, &bad);
        cr_expect_eq(rc, r->rc, "row %zu %s: rc %d", i, r->url, rc);
        if (r->rc != 0) {
            cr_expect(bad != NULL && strcmp(bad, r->bad) == 0, "row %zu %s: bad=%s want %s", i,
                      r->url, bad ? bad : "(null)", r->bad);
            continue;
        }
        cr_expect_null(bad, "row %zu: bad must be NULL on success", i);
        cr_expect_str_eq(a.sid, r->sid, "row %zu %s: sid", i, r->url);
        cr_expect_eq(a.sid_len, strlen(r->sid), "row %zu: sid_len", i);
        cr_expect_str_eq(a.room, r->room, "row %zu %s: room", i, r->url);
        cr_expect_eq(a.room_len, strlen(r->room), "row %zu: room_len", i);
        cr_expect_str_eq(a.participant, r->participant, "row %zu %s: participant", i, r->url);
        cr_expect_eq(a.participant_len, strlen(r->participant), "row %zu: participant_len", i);
        cr_expect_eq(a.engineio, r->engineio, "row %zu %s: engineio", i, r->url);
        cr_expect_eq(a.handshake, r->handshake, "row %zu %s: handshake", i, r->url);
        cr_expect_eq(a.websocket, r->websocket, "row %zu %s: websocket", i, r->url);
        cr_expect_eq(a.browser_redirect, r->redirect, "row %zu %s: redirect", i, r->url);
        cr_expect_eq(a.cookie_pod_len, 0, "row %zu: no cookie", i);
    }
}

Test(affinity, configurable_param_names)
{
    struct pr_affinity_config c = cfg;
    c.room_param = "room";
    c.participant_param = "pid";
    struct pr_request_head h = {"GET", 3, "/?roomId=ignored&room=r7&pid=u1", 31, NULL, 0};
    struct pr_affinity a;
    const char *bad;
    cr_assert_eq(pr_affinity_extract(&c, &h, &a, &bad), 0);
    cr_expect_str_eq(a.room, "r7");
    cr_expect_str_eq(a.participant, "u1");

    struct pr_request_head h2 = {"GET", 3, "/?room=a%20b", 12, NULL, 0};
    cr_expect_eq(pr_affinity_extract(&c, &h2, &a, &bad), -EINVAL);
    cr_expect_str_eq(bad, "room");
}

Test(affinity, key_valid)
{
    cr_expect(pr_key_valid("a", 1));
    cr_expect(pr_key_valid("A-z_0.9:", 8));
    cr_expect(pr_key_valid(K128, 128));
    cr_expect_not(pr_key_valid(K129, 129));
    cr_expect_not(pr_key_valid("", 0));
    cr_expect_not(pr_key_valid(NULL, 0));
    cr_expect_not(pr_key_valid("a b", 3));
    cr_expect_not(pr_key_valid("a\0b", 3));
    cr_expect_not(pr_key_valid("{x}", 3));
    cr_expect_not(pr_key_valid("\xc3\xa9", 2));
}

Test(affinity, head_find)
{
    const char *lines[] = {"Host: a", "X-Thing: 1", "x-thing: 2", NULL};
    struct pr_header hs[4];
    struct pr_request_head h = {"GET", 3, "/", 1, hs, 0};
    h.nheaders = make_headers(lines, hs, 4);
    const struct pr_header *f = pr_head_find(&h, "x-THING");
    cr_assert_not_null(f);
    cr_expect_eq(f->value[0], '1', "first match");
    cr_expect_null(pr_head_find(&h, "X-Thin"));
    cr_expect_null(pr_head_find(&h, "X-Things"));
    cr_expect_null(pr_head_find(NULL, "Host"));
    cr_expect_null(pr_head_find(&h, NULL));
}

/* ---- cookie -------------------------------------------------------------------------- */

Test(affinity, cookie_sign_verify)
{
    char v[160], pod[64];
    int n = pr_cookie_sign(secret, 32, "backend-1", v, sizeof(v));
    cr_assert_eq(n, 9 + 1 + 64);
    cr_expect_eq((size_t)n, strlen(v));
    cr_expect_eq(strncmp(v, "backend-1.", 10), 0);
    for (int i = 10; i < n; i++)
        cr_expect((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f'), "lowercase hex");
    cr_expect_eq(pr_cookie_verify(secret, 32, v, (size_t)n, pod), 0);
    cr_expect_str_eq(pod, "backend-1");

    /* Sizes: exactly enough, one short */
    char small[75];
    cr_expect_eq(pr_cookie_sign(secret, 32, "backend-1", small, 75), 74);
    cr_expect_eq(pr_cookie_sign(secret, 32, "backend-1", small, 74), -ENOSPC);
    /* Invalid pod names and empty secrets are refused */
    cr_expect_eq(pr_cookie_sign(secret, 32, "Backend", v, sizeof(v)), -EINVAL);
    cr_expect_eq(pr_cookie_sign(secret, 32, "", v, sizeof(v)), -EINVAL);
    cr_expect_eq(pr_cookie_sign(secret, 0, "backend-1", v, sizeof(v)), -EINVAL);
    cr_expect_eq(pr_cookie_verify(secret, 0, v, (size_t)n, pod), -EINVAL);
}

Test(affinity, cookie_known_answer)
{
    /* Pinned once with `printf backend-0 | openssl dgst -sha256 -hmac key`. */
    char kv[160];
    cr_assert_eq(pr_cookie_sign((const uint8_t *)"key", 3, "backend-0", kv, sizeof(kv)), 74);
    cr_expect_str_eq(kv,
                     "backend-0.9484dff18951b1bb0449ec38e552ed3efe1c1f1a3a298338625d819f16cd5983");
}

enum mutation { M_NONE, M_FLIP_MAC, M_FLIP_POD, M_TRUNCATE, M_UPPER, M_WRONG_SECRET, M_EXTRA };

struct cookie_row {
    const char *fmt; /* Cookie header value; %s = the signed value */
    enum mutation m;
    const char *pod; /* expected cookie_pod, "" = none */
};

static const struct cookie_row cookie_rows[] = {
    {"pr_affinity=%s", M_NONE, "backend-1"},
    {"a=b; pr_affinity=%s; c=d", M_NONE, "backend-1"},
    {"a=b;pr_affinity=%s", M_NONE, "backend-1"},
    {"  pr_affinity = %s  ;", M_NONE, "backend-1"},
    {"pr_affinity=\"%s\"", M_NONE, "backend-1"},
    {"pr_affinity=%s", M_FLIP_MAC, ""},
    {"pr_affinity=%s", M_FLIP_POD, ""}, /* backend-2 with backend-1's MAC */
    {"pr_affinity=%s", M_TRUNCATE, ""},
    {"pr_affinity=%s", M_UPPER, ""},
    {"pr_affinity=%s", M_WRONG_SECRET, ""},
    {"pr_affinity=%s", M_EXTRA, ""},
    {"xpr_affinity=%s", M_NONE, ""},
    {"pr_affinityx=%s", M_NONE, ""},
    {"PR_AFFINITY=%s", M_NONE, ""}, /* cookie names are case-sensitive */
    {"pr_affinity", M_NONE, ""},
    {"pr_affinity=", M_NONE, ""},
    {"pr_affinity=backend-1", M_NONE, ""},
    {"pr_affinity=.", M_NONE, ""},
    /* a bad first copy does not hide a good second one */
    {"pr_affinity=garbage; pr_affinity=%s", M_NONE, "backend-1"},
};

/* The signed value for backend-1, mutated as the row asks. */
static void mutated(enum mutation m, char *v, size_t vlen)
{
    pr_cookie_sign(m == M_WRONG_SECRET ? other_secret : secret, 32, "backend-1", v, vlen);
    size_t n = strlen(v);
    switch (m) {
    case M_FLIP_MAC:
        v[n - 1] = v[n - 1] == '0' ? '1' : '0';
        break;
    case M_FLIP_POD:
        v[8] = '2';
        break;
    case M_TRUNCATE:
        v[n - 1] = '\0';
        break;
    case M_UPPER:
        for (size_t i = 10; i < n; i++)
            v[i] = (char)(v[i] >= 'a' && v[i] <= 'f' ? v[i] - 32 : v[i]);
        if (strcspn(v + 10, "ABCDEF") == n - 10)
            v[10] = 'A'; /* ensure at least one letter changed */
        break;
    case M_EXTRA:
        snprintf(v + n, vlen - n, "0");
        break;
    default:
        break;
    }
}

Test(affinity, cookie_table)
{
    for (size_t i = 0; i < sizeof(cookie_rows) / sizeof(cookie_rows[0]); i++) {
        const struct cookie_row *r = &cookie_rows[i];
        char v[160], hv[400], line[420];
        mutated(r->m, v, sizeof(v));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(hv, sizeof(hv), r->fmt, v);
#pragma GCC diagnostic pop
        snprintf(line, sizeof(line), "Cookie: %s", hv);
        const char *lines[] = {"Host: x", line, NULL};
        struct pr_header hs[4];
        struct pr_request_head h = {"GET", 3, "/", 1, hs, 0};
        h.nheaders = make_headers(lines, hs, 4);
        struct pr_affinity a;
        const char *bad;
        cr_expect_eq(pr_affinity_extract(&cfg, &h, &a, &bad), 0,
                     "row %zu: a bad cookie is "
                     "ignored, not an error",
                     i);
        cr_expect_str_eq(a.cookie_pod, r->pod, "row %zu: %s", i, hv);
        cr_expect_eq(a.cookie_pod_len, strlen(r->pod), "row %zu", i);
    }
}

Test(affinity, cookie_in_second_header_and_disabled)
{
    char v[160], line[200];
    pr_cookie_sign(secret, 32, "backend-3", v, sizeof(v));
    snprintf(line, sizeof(line), "cookie: pr_affinity=%s", v);
    const char *lines[] = {"Cookie: a=1", line, NULL};
    struct pr_header hs[4];
    struct pr_request_head h = {"GET", 3, "/", 1, hs, 0};
    h.nheaders = make_headers(lines, hs, 4);
    struct pr_affinity a;
    const char *bad;
    cr_assert_eq(pr_affinity_extract(&cfg, &h, &a, &bad), 0);
    cr_expect_str_eq(a.cookie_pod, "backend-3");

    struct pr_affinity_config off = cfg;
    off.cookie_name = "";
    cr_assert_eq(pr_affinity_extract(&off, &h, &a, &bad), 0);
    cr_expect_eq(a.cookie_pod_len, 0);
    off.cookie_name = NULL;
    cr_assert_eq(pr_affinity_extract(&off, &h, &a, &bad), 0);
    cr_expect_eq(a.cookie_pod_len, 0);
}

Test(affinity, cookie_verify_edges)
{
    char v[160], pod[64];
    /* longest pod name */
    const char *p63 = "a23456789012345678901234567890123456789012345678901234567890123";
    int n = pr_cookie_sign(secret, 32, p63, v, sizeof(v));
    cr_assert_eq(n, 63 + 65);
    cr_expect_eq(pr_cookie_verify(secret, 32, v, (size_t)n, pod), 0);
    cr_expect_str_eq(pod, p63);
    /* dotted pod names split at the last dot */
    n = pr_cookie_sign(secret, 32, "backend-1.ns.svc", v, sizeof(v));
    cr_expect_eq(pr_cookie_verify(secret, 32, v, (size_t)n, pod), 0);
    cr_expect_str_eq(pod, "backend-1.ns.svc");
    /* short or empty values */
    cr_expect_eq(pr_cookie_verify(secret, 32, v, 65, pod), -EINVAL);
    cr_expect_eq(pr_cookie_verify(secret, 32, "", 0, pod), -EINVAL);
    cr_expect_eq(pr_cookie_verify(secret, 32, NULL, 0, pod), -EINVAL);
}

/* ---- sid sniffer --------------------------------------------------------------------- */

#define OPEN_PKT                                                                                   \
    "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"      \
    "\"pingTimeout\":20000,\"maxPayload\":1000000}"

struct sniff_row {
    const char *body;
    size_t len; /* 0 = strlen */
    int rc;     /* after feeding the whole body */
    const char *sid;
};

static char big_nosid[600];
static char big_latesid[600];

/* clang-format off */
static const struct sniff_row sniff_rows[] = {
    {OPEN_PKT, 0, 1, "lv_VI97HAXpY6yYWAAAC"},
    {OPEN_PKT "\x1e" "40{\"sid\":\"other\"}", 0, 1, "lv_VI97HAXpY6yYWAAAC"},
    {"0{\"upgrades\":[],\"sid\":\"late-sid\"}\x1e" "2", 0, 1, "late-sid"},
    {"0{\"sid\":\"" K128 "\"}", 0, 1, K128},
    {"0{\"sid\":\"" K129 "\"}", 0, -1, ""},
    {"0{\"sid\":\"" K129, 0, -1, ""},                     /* too long before the quote */
    {"0{\"sid\":\"\"}", 0, -1, ""},                       /* empty sid */
    {"0{\"sid\":\"a b\"}", 0, -1, ""},                    /* invalid sid */
    {"0{\"sid\":\"a\\\"b\"}", 0, -1, ""},                 /* escaped quote -> invalid */
    {"0{\"x\":1}\x1e" "0{\"sid\":\"s\"}", 0, -1, ""},     /* sid only in a later packet */
    {"0{\"sid\":\"abc\x1e\"}", 0, -1, ""},               /* separator inside the value */
    {"2", 0, -1, ""},                                     /* ping */
    {"40", 0, -1, ""},                                    /* socket.io connect */
    {"4{\"sid\":\"x\"}", 0, -1, ""},
    {"6", 0, -1, ""},
    {"0", 0, 0, ""},                                      /* need more */
    {"0{\"si", 0, 0, ""},
    {"0{\"sid\":\"abc", 0, 0, ""},
    {"0[\"sid\"]", 0, -1, ""},
    {"{\"sid\":\"x\"}", 0, -1, ""},
    {"HTTP/1.1 200 OK", 0, -1, ""},
    {"\x00\x01\x02", 3, -1, ""},
    {"0{\"sid\" : \"x\"}", 0, 0, ""},                     /* not Engine.IO's own encoding */
    {big_nosid, 600, -1, ""},                             /* nothing within 512 bytes */
    {big_latesid, 600, -1, ""},                           /* sid starts beyond 512 bytes */
};
/* clang-format on */

/* Fills the oversize bodies. */
static void init_big(void)
{
    memset(big_nosid, 'x', sizeof(big_nosid));
    memcpy(big_nosid, "0{\"pad\":\"", 9);
    memset(big_latesid, 'x', sizeof(big_latesid));
    memcpy(big_latesid, "0{\"pad\":\"", 9);
    memcpy(big_latesid + 500, "\",\"sid\":\"abc\"}", 14);
}

/* Feeds body in chunks of at most step bytes, splitting first at split; returns last rc. */
static int feed_split(const struct sniff_row *r, size_t split, size_t step, char *sid,
                      size_t *sid_len)
{
    struct pr_sid_sniffer s;
    pr_sid_sniffer_init(&s);
    size_t len = r->len ? r->len : strlen(r->body);
    int rc = 0;
    size_t off = 0;
    if (split > 0) {
        rc = pr_sid_sniffer_feed(&s, r->body, split, sid, sid_len);
        off = split;
    }
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        int r2 = pr_sid_sniffer_feed(&s, r->body + off, n, sid, sid_len);
        if (rc != 0)
            cr_expect_eq(r2, rc, "a decided sniffer keeps its answer");
        rc = r2;
        off += n;
    }
    /* decided answers are sticky, also with more input */
    if (rc != 0) {
        char sid2[PR_KEY_MAX + 1];
        size_t l2 = 0;
        cr_expect_eq(pr_sid_sniffer_feed(&s, "more", 4, sid2, &l2), rc);
        if (rc == 1) {
            cr_expect_str_eq(sid2, sid);
            cr_expect_eq(l2, *sid_len);
        }
    }
    return rc;
}

Test(affinity, sid_sniffer_whole_split_and_bytewise, .init = init_big)
{
    for (size_t i = 0; i < sizeof(sniff_rows) / sizeof(sniff_rows[0]); i++) {
        const struct sniff_row *r = &sniff_rows[i];
        size_t len = r->len ? r->len : strlen(r->body);
        char sid[PR_KEY_MAX + 1];
        size_t sid_len = 0;

        /* whole, byte at a time */
        int rc = feed_split(r, 0, len ? len : 1, sid, &sid_len);
        cr_expect_eq(rc, r->rc, "row %zu whole: rc %d", i, rc);
        if (rc == 1) {
            cr_expect_str_eq(sid, r->sid, "row %zu", i);
            cr_expect_eq(sid_len, strlen(r->sid), "row %zu", i);
        }
        rc = feed_split(r, 0, 1, sid, &sid_len);
        cr_expect_eq(rc, r->rc, "row %zu bytewise: rc %d", i, rc);
        if (rc == 1)
            cr_expect_str_eq(sid, r->sid, "row %zu bytewise", i);

        /* split in two at every position */
        for (size_t k = 1; k < len; k++) {
            memset(sid, 0, sizeof(sid));
            rc = feed_split(r, k, len, sid, &sid_len);
            cr_expect_eq(rc, r->rc, "row %zu split at %zu: rc %d", i, k, rc);
            if (rc == 1 && r->rc == 1)
                cr_expect_str_eq(sid, r->sid, "row %zu split at %zu", i, k);
        }
    }
}

Test(affinity, sid_sniffer_empty_feeds)
{
    struct pr_sid_sniffer s;
    char sid[PR_KEY_MAX + 1];
    size_t sl = 0;
    pr_sid_sniffer_init(&s);
    cr_expect_eq(pr_sid_sniffer_feed(&s, "", 0, sid, &sl), 0);
    cr_expect_eq(pr_sid_sniffer_feed(&s, NULL, 0, sid, &sl), 0);
    cr_expect_eq(pr_sid_sniffer_feed(&s, "0{\"sid\":\"q\"", 11, sid, &sl), 1);
    cr_expect_str_eq(sid, "q");
    cr_expect_eq(pr_sid_sniffer_feed(&s, NULL, 0, NULL, NULL), 1);
}

/* Every byte against the grammar [A-Za-z0-9_.:-] (the key check is a bit table). */
Test(affinity, key_bytes_exactly_the_grammar)
{
    for (int c = 0; c < 256; c++) {
        char k[3] = {'a', (char)c, 'b'};
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '-';
        cr_assert_eq(pr_key_valid(k, 3), want, "byte 0x%02x", c);
    }
}

/* A parameter name is decoded once and then compared with each name; a decoded name that
 * is too long, or an encoded one that decodes to a known name plus more, matches nothing. */
Test(affinity, encoded_parameter_names)
{
    struct pr_request_head h = {0};
    struct pr_affinity a;
    const char *bad = NULL;
    h.method = "GET";
    h.method_len = 3;
    const char *url = "/?room%49d%00=x&%72oomId=r2&sid%=s&" K64 "=y";
    h.url = url;
    h.url_len = strlen(url);
    cr_assert_eq(pr_affinity_extract(&cfg, &h, &a, &bad), 0);
    cr_assert_str_eq(a.room, "r2");
    cr_assert_eq(a.sid_len, 0, "'sid%%' is not 'sid'");
}
