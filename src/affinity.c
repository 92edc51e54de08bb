/* Request head -> affinity keys (SPEC 3.1), the signed affinity cookie, and the Engine.IO
 * open-packet sniffer that learns a session's sid from the handshake response body. */
#include "podrouter/affinity.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <strings.h>

#define MAC_LEN 32
#define MAC_HEX (2 * MAC_LEN)
/* Longest query parameter name we ever compare against (config limits them to 63). */
#define PARAM_NAME_MAX 63

/* Bits c & 63 of the bytes 0..63 and 64..127 a key may hold: [A-Za-z0-9_.:-]. */
#define BITS(lo, hi) ((~0ULL >> (63 - ((hi)&63))) & (~0ULL << ((lo)&63)))
static const uint64_t key_bits[2] = {
    BITS('0', '9') | BITS('-', '.') | BITS(':', ':'),
    BITS('A', 'Z') | BITS('_', '_') | BITS('a', 'z'),
};
#undef BITS

static bool key_char(unsigned char c)
{
    return c < 128 && (key_bits[c >> 6] >> (c & 63)) & 1;
}

/* true when s[0..len) is 1..128 bytes of [A-Za-z0-9_.:-]. */
bool pr_key_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > PR_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!key_char((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Value of one hex digit, or -1. */
static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes of s[0..len) into out[0..cap); '+' and malformed escapes stay literal.
 * Returns the decoded length, or cap + 1 when the result does not fit. */
static size_t pct_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < len && hexval((unsigned char)s[i + 1]) >= 0 &&
            hexval((unsigned char)s[i + 2]) >= 0) {
            c = (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 +
                                hexval((unsigned char)s[i + 2]));
            i += 2;
        }
        if (n == cap)
            return cap + 1;
        out[n++] = (char)c;
    }
    return n;
}

/* A borrowed slice of the request target. */
struct slice {
    const char *p;
    size_t len;
    bool present;
};

/* true when the (already decoded) name[0..len) equals want. */
static bool name_is(const char *name, size_t len, const char *want)
{
    return want != NULL && want[0] != '\0' && strlen(want) == len && memcmp(name, want, len) == 0;
}

/* Copies an already trimmed, unencoded key into dst; false when it is not a valid key. */
static bool take_raw_key(const char *v, size_t len, char *dst, uint8_t *dst_len)
{
    if (!pr_key_valid(v, len))
        return false;
    memcpy(dst, v, len);
    dst[len] = '\0';
    *dst_len = (uint8_t)len;
    return true;
}

/* Decodes and validates a query key into dst (PR_KEY_MAX + 1 bytes); false when invalid. */
static bool take_query_key(const struct slice *v, char *dst, uint8_t *dst_len)
{
    char buf[PR_KEY_MAX + 1];
    size_t n = pct_decode(v->p, v->len, buf, PR_KEY_MAX);
    return take_raw_key(buf, n, dst, dst_len);
}

/* true for the bytes of a room path segment after "room_": [A-Za-z0-9_-]. */
static bool room_seg_char(unsigned char c)
{
    return key_char(c) && c != '.' && c != ':';
}

/* true when seg[0..len) is a whole path segment matching room_[A-Za-z0-9_-]+. */
static bool room_segment(const char *seg, size_t len)
{
    if (len <= 5 || memcmp(seg, "room_", 5) != 0)
        return false;
    for (size_t i = 5; i < len; i++) {
        if (!room_seg_char((unsigned char)seg[i]))
            return false;
    }
    return true;
}

/* true when hay[0..len) contains needle, ASCII case-insensitively. */
static bool contains_ci(const char *hay, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; nl <= len && i <= len - nl; i++) {
        if (strncasecmp(hay + i, needle, nl) == 0)
            return true;
    }
    return false;
}

/* Trims optional whitespace (SP / HTAB) from both ends of *p[0..*len). */
static void trim_ows(const char **p, size_t *len)
{
    while (*len > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t'))
        (*len)--;
}

/* Looks through every Cookie header for cfg->cookie_name with a verifying value. */
static void find_cookie(const struct pr_affinity_config *cfg, const struct pr_request_head *h,
                        struct pr_affinity *out)
{
    size_t cn_len = strlen(cfg->cookie_name);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct pr_header *hd = &h->headers[i];
        if (hd->name == NULL || hd->value == NULL || hd->name_len != 6 ||
            strncasecmp(hd->name, "cookie", 6) != 0)
            continue;
        const char *p = hd->value, *end = hd->value + hd->value_len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *e = semi ? semi : end;
            const char *pair = p;
            size_t plen = (size_t)(e - p);
            p = semi ? semi + 1 : end;
            trim_ows(&pair, &plen);
            const char *eq = memchr(pair, '=', plen);
            if (eq == NULL)
                continue;
            const char *name = pair, *val = eq + 1;
            size_t nlen = (size_t)(eq - pair), vlen = plen - nlen - 1;
            trim_ows(&name, &nlen);
            trim_ows(&val, &vlen);
            if (nlen != cn_len || memcmp(name, cfg->cookie_name, nlen) != 0)
                continue;
            if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') { /* RFC 6265 DQUOTEs */
                val++;
                vlen -= 2;
            }
            if (pr_cookie_verify(cfg->secret, cfg->secret_len, val, vlen, out->cookie_pod) == 0) {
                out->cookie_pod_len = (uint8_t)strlen(out->cookie_pod);
                return;
            }
        }
    }
}

/* The parts of a request target that carry keys: the path and the query, without the
 * scheme and authority of an absolute-form target or a fragment. */
struct target {
    const char *url; /* the path starts here */
    size_t path_len;
    const char *query;
    size_t query_len;
};

static void split_target(const struct pr_request_head *h, struct target *t)
{
    const char *url = h->url ? h->url : "";
    size_t url_len = h->url ? h->url_len : 0;
    /* Tolerate absolute-form targets (RFC 9112 3.2.2) by skipping scheme and authority. */
    if (url_len >= 7 && (strncasecmp(url, "http://", 7) == 0 ||
                         (url_len >= 8 && strncasecmp(url, "https://", 8) == 0))) {
        const char *auth = (const char *)memchr(url, ':', url_len) + 3;
        const char *slash = memchr(auth, '/', url_len - (size_t)(auth - url));
        const char *q = memchr(auth, '?', url_len - (size_t)(auth - url));
        const char *start = slash && (!q || slash < q) ? slash : (q ? q : url + url_len);
        url_len -= (size_t)(start - url);
        url = start;
    }
    const char *frag = memchr(url, '#', url_len);
    if (frag != NULL)
        url_len = (size_t)(frag - url);
    const char *qmark = memchr(url, '?', url_len);
    t->url = url;
    t->path_len = qmark ? (size_t)(qmark - url) : url_len;
    t->query = qmark ? qmark + 1 : url + url_len;
    t->query_len = url_len - t->path_len - (qmark ? 1 : 0);
}

/* The query parameters that matter; the first occurrence of each name counts. */
struct query_keys {
    struct slice sid, room, part, transport;
    bool eio;
};

static void scan_query(const struct pr_affinity_config *cfg, const struct target *t,
                       struct query_keys *q)
{
    memset(q, 0, sizeof(*q));
    const char *p = t->query, *qend = t->query + t->query_len;
    while (p < qend) {
        const char *amp = memchr(p, '&', (size_t)(qend - p));
        const char *e = amp ? amp : qend;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *name = p;
        size_t nlen = (size_t)((eq ? eq : e) - p);
        struct slice v = {eq ? eq + 1 : e, eq ? (size_t)(e - eq - 1) : 0, true};
        p = amp ? amp + 1 : qend;
        char buf[PARAM_NAME_MAX + 1];
        if (memchr(name, '%', nlen)) { /* decode once, compare with every name below */
            nlen = pct_decode(name, nlen, buf, sizeof(buf));
            name = buf;
        }
        if (nlen == 0 || nlen > PARAM_NAME_MAX)
            continue;
        if (!q->sid.present && name_is(name, nlen, "sid"))
            q->sid = v;
        else if (!q->eio && name_is(name, nlen, "EIO"))
            q->eio = true;
        else if (!q->transport.present && name_is(name, nlen, "transport"))
            q->transport = v;
        else if (!q->room.present && name_is(name, nlen, cfg->room_param))
            q->room = v;
        else if (!q->part.present && name_is(name, nlen, cfg->participant_param))
            q->part = v;
    }
}

/* The first path segment that is exactly room_<id>, or a slice not present. */
static struct slice path_room(const struct target *t)
{
    struct slice r = {NULL, 0, false};
    for (const char *s = t->url, *pend = t->url + t->path_len; s < pend;) {
        const char *slash = memchr(s, '/', (size_t)(pend - s));
        const char *e = slash ? slash : pend;
        if (room_segment(s, (size_t)(e - s))) {
            r = (struct slice){s, (size_t)(e - s), true};
            break;
        }
        s = slash ? slash + 1 : pend;
    }
    return r;
}

/* Participant: the query parameter, else the X-Participant-Id header; false when invalid. */
static bool take_participant(const struct pr_request_head *h, const struct query_keys *q,
                             struct pr_affinity *out)
{
    if (q->part.present)
        return take_query_key(&q->part, out->participant, &out->participant_len);
    const struct pr_header *ph = pr_head_find(h, "X-Participant-Id");
    if (ph == NULL)
        return true;
    const char *v = ph->value ? ph->value : "";
    size_t vlen = ph->value ? ph->value_len : 0;
    trim_ows(&v, &vlen);
    return take_raw_key(v, vlen, out->participant, &out->participant_len);
}

/* HyperStudy's browser entry: GET /experiment/room_<id>[/] asking for HTML. */
static bool browser_entry(const struct pr_request_head *h, const struct target *t,
                          const struct slice *room)
{
    size_t n = t->path_len;
    if (h->method_len != 3 || h->method == NULL || memcmp(h->method, "GET", 3) != 0 ||
        !room->present || room->p != t->url + 12 || n < 12 ||
        memcmp(t->url, "/experiment/", 12) != 0 ||
        !(n == 12 + room->len || (n == 13 + room->len && t->url[n - 1] == '/')))
        return false;
    const struct pr_header *acc = pr_head_find(h, "Accept");
    return acc != NULL && acc->value != NULL &&
           contains_ci(acc->value, acc->value_len, "text/html");
}

/* Fills out with every key of the request; -EINVAL and *bad on the first invalid used key. */
int pr_affinity_extract(const struct pr_affinity_config *cfg, const struct pr_request_head *h,
                        struct pr_affinity *out, const char **bad)
{
    const char *dummy;
    if (bad == NULL)
        bad = &dummy;
    *bad = NULL;
    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (cfg == NULL || h == NULL)
        return -EINVAL;

    struct target t;
    struct query_keys q;
    split_target(h, &t);
    scan_query(cfg, &t, &q);
    out->engineio = q.eio;
    if (q.transport.present) {
        char buf[16];
        size_t n = pct_decode(q.transport.p, q.transport.len, buf, sizeof(buf));
        out->websocket = n == 9 && memcmp(buf, "websocket", 9) == 0;
    }
    if (q.sid.present && !take_query_key(&q.sid, out->sid, &out->sid_len)) {
        *bad = "sid";
        return -EINVAL;
    }
    out->handshake = out->engineio && !q.sid.present;

    /* Room: the query parameter, else the first path segment that is exactly room_<id>. */
    struct slice proom = path_room(&t);
    if (q.room.present ? !take_query_key(&q.room, out->room, &out->room_len)
                       : proom.present && !take_raw_key(proom.p, proom.len, out->room,
                                                        &out->room_len)) {
        *bad = q.room.present ? cfg->room_param : "room path";
        return -EINVAL;
    }
    if (!take_participant(h, &q, out)) {
        *bad = q.part.present ? cfg->participant_param : "X-Participant-Id";
        return -EINVAL;
    }
    out->browser_redirect = browser_entry(h, &t, &proom);
    if (cfg->cookie_name != NULL && cfg->cookie_name[0] != '\0' && cfg->secret != NULL &&
        cfg->secret_len > 0 && h->headers != NULL)
        find_cookie(cfg, h, out);
    return 0;
}

/* ---- signed cookie ------------------------------------------------------------------- */

/* Lowercase hex HMAC-SHA256(secret, pod) into hex[MAC_HEX]; 0 or -EINVAL. */
static int mac_hex(const uint8_t *secret, size_t secret_len, const char *pod, size_t pod_len,
                   char hex[MAC_HEX])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (secret_len > (size_t)INT32_MAX ||
        HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)pod, pod_len, md,
             &md_len) == NULL ||
        md_len != MAC_LEN)
        return -EINVAL;
    for (size_t i = 0; i < MAC_LEN; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xf];
    }
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

/* Writes "<pod>.<64 lowercase hex HMAC-SHA256(secret, pod)>"; its length, -ENOSPC or
 * -EINVAL (no secret, or pod not a valid pod name). */
int pr_cookie_sign(const uint8_t *secret, size_t secret_len, const char *pod, char *out,
                   size_t outlen)
{
    if (secret == NULL || secret_len == 0 || pod == NULL || out == NULL)
        return -EINVAL;
    size_t pod_len = strlen(pod);
    if (!pr_pod_name_valid(pod, pod_len))
        return -EINVAL;
    size_t total = pod_len + 1 + MAC_HEX;
    if (outlen < total + 1)
        return -ENOSPC;
    char hex[MAC_HEX];
    if (mac_hex(secret, secret_len, pod, pod_len, hex) != 0)
        return -EINVAL;
    memcpy(out, pod, pod_len);
    out[pod_len] = '.';
    memcpy(out + pod_len + 1, hex, MAC_HEX);
    out[total] = '\0';
    return (int)total;
}

/* 0 and the pod name copied to pod when value is a cookie this secret signed, else -EINVAL. */
int pr_cookie_verify(const uint8_t *secret, size_t secret_len, const char *value, size_t len,
                     char *pod)
{
    if (secret == NULL || secret_len == 0 || value == NULL || pod == NULL)
        return -EINVAL;
    if (len < 1 + 1 + MAC_HEX || value[len - MAC_HEX - 1] != '.')
        return -EINVAL;
    size_t pod_len = len - MAC_HEX - 1;
    if (!pr_pod_name_valid(value, pod_len))
        return -EINVAL;
    char hex[MAC_HEX];
    if (mac_hex(secret, secret_len, value, pod_len, hex) != 0)
        return -EINVAL;
    if (CRYPTO_memcmp(hex, value + pod_len + 1, MAC_HEX) != 0)
        return -EINVAL;
    memcpy(pod, value, pod_len);
    pod[pod_len] = '\0';
    return 0;
}

/* ---- Engine.IO open packet sniffer --------------------------------------------------- */

/* Resets the sniffer for a new response body. */
void pr_sid_sniffer_init(struct pr_sid_sniffer *s)
{
    memset(s, 0, sizeof(*s));
}

/* Scans the buffered prefix: 1 (sid at *off, *vlen), 0 need more, -1 not an open packet. */
static int sniff_scan(const char *b, size_t len, size_t *off, size_t *vlen)
{
    static const char needle[] = "\"sid\":\"";
    const size_t nl = sizeof(needle) - 1;
    if (len >= 1 && b[0] != '0')
        return -1;
    if (len >= 2 && b[1] != '{')
        return -1;
    if (len < 2)
        return 0;
    /* Only the first packet counts: stop at the 0x1e record separator. */
    const char *rs = memchr(b, 0x1e, len);
    size_t limit = rs ? (size_t)(rs - b) : len;
    for (size_t i = 2; i + nl <= limit; i++) {
        if (memcmp(b + i, needle, nl) != 0)
            continue;
        size_t v = i + nl;
        const char *q = memchr(b + v, '"', limit - v);
        if (q == NULL) {
            if (rs != NULL || limit - v > PR_KEY_MAX)
                return -1;
            return 0;
        }
        *off = v;
        *vlen = (size_t)(q - (b + v));
        return pr_key_valid(b + v, *vlen) ? 1 : -1;
    }
    return rs != NULL ? -1 : 0;
}

/* Feeds body bytes; 1 once the open packet's sid is known, -1 when it cannot be, else 0. */
int pr_sid_sniffer_feed(struct pr_sid_sniffer *s, const char *data, size_t len,
                        char sid[PR_KEY_MAX + 1], size_t *sid_len)
{
    if (s->state == 0 && len > 0 && data != NULL) {
        size_t room = sizeof(s->buf) - s->len;
        size_t n = len < room ? len : room;
        memcpy(s->buf + s->len, data, n);
        s->len = (uint16_t)(s->len + n);
        size_t off = 0, vlen = 0;
        int r = sniff_scan(s->buf, s->len, &off, &vlen);
        if (r == 0 && s->len == sizeof(s->buf))
            r = -1; /* no sid within the first 512 bytes */
        if (r == 1) {
            memmove(s->buf, s->buf + off, vlen); /* keep only the sid */
            s->len = (uint16_t)vlen;
        }
        s->state = (int8_t)r;
    }
    if (s->state == 1) {
        if (sid != NULL) {
            memcpy(sid, s->buf, s->len);
            sid[s->len] = '\0';
        }
        if (sid_len != NULL)
            *sid_len = s->len;
    }
    return s->state;
}
