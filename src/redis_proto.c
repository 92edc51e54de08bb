/* Redis store wire formats: URL parsing, key names, room/pod JSON, event messages. No I/O,
 * no global state: everything here is unit-tested in tests/unit/store_redis_test.c. */
#include "podrouter/redis_proto.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/affinity.h"
#include "podrouter/common.h"
#include "podrouter/registry.h"
#include "redis_script.lua.h"

/* One script, sent once per connection: longer than C99's 4095-byte string minimum, which
 * GCC and Clang both handle. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
const char pr_redis_script[] = PR_REDIS_SCRIPT_TEXT;
#pragma GCC diagnostic pop

/* ---- URLs ------------------------------------------------------------------------------ */

/* Decode %XX escapes of s[0..len) into out (cap bytes incl. NUL); false when malformed or
 * too long. */
static bool percent_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return false;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            if (c == '\0')
                return false;
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

/* Parse a decimal port of s[0..len) into *port: the router's one port grammar (1..65535, no
 * leading zero). */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    if (!pr_port_valid(s, len))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (uint32_t)(s[i] - '0');
    *port = (uint16_t)v;
    return true;
}

/* Parse one host[:port] or [v6][:port] of s[0..len) into h. */
static bool parse_host(const char *s, size_t len, uint16_t def_port, struct pr_redis_host *h)
{
    const char *hs = s, *ps = NULL;
    size_t hl, pl = 0;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return false;
        hs = s + 1;
        hl = (size_t)(close - hs);
        size_t rest = len - (size_t)(close - s) - 1;
        if (rest > 0) {
            if (close[1] != ':')
                return false;
            ps = close + 2;
            pl = rest - 1;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        hl = colon ? (size_t)(colon - s) : len;
        if (colon) {
            ps = colon + 1;
            pl = len - hl - 1;
        }
    }
    if (hl == 0 || hl > PR_REDIS_HOST_MAX)
        return false;
    for (size_t i = 0; i < hl; i++) {
        char c = hs[i];
        if (!isalnum((unsigned char)c) && c != '.' && c != '-' && c != '_' && c != ':')
            return false;
    }
    memcpy(h->host, hs, hl);
    h->host[hl] = '\0';
    h->port = def_port;
    if (ps && !parse_port(ps, pl, &h->port))
        return false;
    return true;
}

/* The user:password@ part of the URL (before the last '@'), if any: *rest moves past it. */
static int url_userinfo(const char **rest, struct pr_redis_url *out, char *err, size_t errlen)
{
    const char *at = strrchr(*rest, '@');
    if (!at)
        return 0;
    const char *colon = memchr(*rest, ':', (size_t)(at - *rest));
    const char *pw = colon ? colon + 1 : *rest;
    size_t ul = colon ? (size_t)(colon - *rest) : 0;
    size_t pl = (size_t)(at - pw);
    if (pl == 0) {
        snprintf(err, errlen, "empty password before '@'");
        return -EINVAL;
    }
    if (!percent_decode(*rest, ul, out->user, sizeof(out->user)) ||
        !percent_decode(pw, pl, out->password, sizeof(out->password))) {
        snprintf(err, errlen, "bad or too long user/password in the store URL");
        return -EINVAL;
    }
    *rest = at + 1;
    return 0;
}

/* The comma-separated host[:port] list of [h, hend) into out->hosts. */
static int url_hosts(const char *h, const char *hend, struct pr_redis_url *out, char *err,
                     size_t errlen)
{
    uint16_t def_port = out->sentinel ? PR_REDIS_SENTINEL_PORT : PR_REDIS_DEFAULT_PORT;
    while (h < hend) {
        const char *comma = memchr(h, ',', (size_t)(hend - h));
        size_t hl = comma ? (size_t)(comma - h) : (size_t)(hend - h);
        if (!out->sentinel && comma) {
            snprintf(err, errlen, "redis:// takes one host (use redis-sentinel:// for a list)");
            return -EINVAL;
        }
        if (out->nhosts >= PR_REDIS_MAX_HOSTS) {
            snprintf(err, errlen, "at most %d sentinels", PR_REDIS_MAX_HOSTS);
            return -EINVAL;
        }
        if (!parse_host(h, hl, def_port, &out->hosts[out->nhosts])) {
            snprintf(err, errlen, "bad host:port \"%.*s\" in the store URL",
                     (int)(hl > 80 ? 80 : hl), h);
            return -EINVAL;
        }
        out->nhosts++;
        h += hl + (comma ? 1 : 0);
        if (comma && h == hend) {
            snprintf(err, errlen, "empty host after ',' in the store URL");
            return -EINVAL;
        }
    }
    return 0;
}

/* The part after the hosts' '/': the master name (Sentinel) or the database number. */
static int url_path(const char *path, struct pr_redis_url *out, char *err, size_t errlen)
{
    if (out->sentinel) {
        size_t ml = strlen(path);
        if (ml == 0 || ml > PR_REDIS_MASTER_MAX || strchr(path, '/')) {
            snprintf(err, errlen, "redis-sentinel:// needs /<master-name> (1-%d characters)",
                     PR_REDIS_MASTER_MAX);
            return -EINVAL;
        }
        memcpy(out->master, path, ml + 1);
        return 0;
    }
    if (path[0]) {
        char *end = NULL;
        errno = 0;
        unsigned long db = strtoul(path, &end, 10);
        if (errno || !end || *end || !isdigit((unsigned char)path[0]) || db > 100000) {
            snprintf(err, errlen, "bad database number \"/%.20s\" in the store URL", path);
            return -EINVAL;
        }
        out->db = (uint32_t)db;
    }
    return 0;
}

/* Parse a redis:// or redis-sentinel:// URL (SPEC 2 --store); 0 or -EINVAL with err. */
int pr_redis_url_parse(const char *url, struct pr_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *rest;
    if (!url) {
        snprintf(err, errlen, "no store URL");
        return -EINVAL;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        rest = url + 8;
    } else if (strncmp(url, "redis-sentinel://", 17) == 0) {
        out->sentinel = true;
        rest = url + 17;
    } else {
        snprintf(err, errlen, "store URL must start with redis:// or redis-sentinel://");
        return -EINVAL;
    }
    for (const char *p = rest; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            snprintf(err, errlen, "store URL contains a space or control character");
            return -EINVAL;
        }
    }
    if (url_userinfo(&rest, out, err, errlen) != 0)
        return -EINVAL;
    const char *slash = strchr(rest, '/');
    size_t hosts_len = slash ? (size_t)(slash - rest) : strlen(rest);
    if (hosts_len == 0) {
        snprintf(err, errlen, "store URL has no host");
        return -EINVAL;
    }
    if (url_hosts(rest, rest + hosts_len, out, err, errlen) != 0)
        return -EINVAL;
    return url_path(slash ? slash + 1 : "", out, err, errlen);
}

/* ---- keys ------------------------------------------------------------------------------ */

/* Name of kind in keys and events. */
const char *pr_redis_kind_name(enum pr_key_kind kind)
{
    switch (kind) {
    case PR_KEY_SID:
        return "sid";
    case PR_KEY_ROOM:
        return "room";
    case PR_KEY_PARTICIPANT:
        return "participant";
    default:
        return NULL;
    }
}

/* The kind named by s[0..len), or -1. */
int pr_redis_kind_parse(const char *s, size_t len)
{
    for (int k = PR_KEY_SID; k <= PR_KEY_PARTICIPANT; k++) {
        const char *n = pr_redis_kind_name((enum pr_key_kind)k);
        if (strlen(n) == len && memcmp(n, s, len) == 0)
            return k;
    }
    return -1;
}

/* snprintf into out; length, or -ENAMETOOLONG when it does not fit. */
static int fit(int n, size_t cap)
{
    if (n < 0)
        return -EINVAL;
    return (size_t)n < cap ? n : -ENAMETOOLONG;
}

/* out = the n parts one after another, NUL-terminated (no printf on the hot path); the length,
 * or -ENAMETOOLONG. */
static int cat(char *out, size_t cap, size_t n, const char *const *part, const size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += len[i];
    if (total >= cap)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < n; i++) {
        memcpy(out, part[i], len[i]);
        out += len[i];
    }
    *out = '\0';
    return (int)total;
}

/* The Redis key of kind:id (SPEC 6.1). */
int pr_redis_assignment_key(char *out, size_t cap, const char *prefix, enum pr_key_kind kind,
                            const char *id, size_t len)
{
    const char *name = pr_redis_kind_name(kind);
    if (!name || !id || !pr_key_valid(id, len))
        return -EINVAL;
    if (kind == PR_KEY_ROOM) {
        const char *part[] = {"room:", id, ":pod"};
        const size_t pl[] = {5, len, 4};
        return cat(out, cap, 3, part, pl);
    }
    prefix = prefix ? prefix : "";
    const char *part[] = {prefix, name, ":", id};
    const size_t pl[] = {strlen(prefix), strlen(name), 1, len};
    return cat(out, cap, 4, part, pl);
}

/* P room-members:{id}. */
int pr_redis_members_key(char *out, size_t cap, const char *prefix, const char *id, size_t len)
{
    if (!id || !pr_key_valid(id, len))
        return -EINVAL;
    prefix = prefix ? prefix : "";
    const char *part[] = {prefix, "room-members:", id};
    const size_t pl[] = {strlen(prefix), 13, len};
    return cat(out, cap, 3, part, pl);
}

/* Decimal digits of v into out (at least 21 bytes), NUL-terminated; their count. Two digits
 * per division (RESP lengths, TTLs and millisecond times on the store's hot path). */
size_t pr_redis_u64(char *out, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                "31323334353637383940414243444546474849505152535455565758596061"
                                "62636465666768697071727374757677787980818283848586878889909192"
                                "93949596979899";
    if (v < 10) { /* RESP lengths and counts are mostly one or two digits: no loop, no copy */
        out[0] = (char)('0' + v);
        out[1] = '\0';
        return 1;
    }
    if (v < 100) {
        out[0] = pairs[2 * v];
        out[1] = pairs[2 * v + 1];
        out[2] = '\0';
        return 2;
    }
    char tmp[20], *p = tmp + sizeof(tmp);
    while (v >= 100) {
        p -= 2;
        memcpy(p, pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

/* One RESP bulk string ("$<n>\r\n<s>\r\n", at most n + 25 bytes) into out; its length. */
size_t pr_redis_bulk(char *out, const char *s, size_t n)
{
    char *p = out;
    *p++ = '$';
    p += pr_redis_u64(p, n);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, s, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - out);
}

/* The command argv (then tail_argc arguments already in RESP, tail) as RESP, what
 * redisFormatCommandArgv makes without its per-argument formatting: into small when it fits
 * in cap bytes, else into a malloc'd buffer; *len set. NULL when out of memory. */
char *pr_redis_command(char *small, size_t cap, int argc, const char *const *argv,
                       const size_t *argl, const char *tail, size_t tail_len, int tail_argc,
                       size_t *len)
{
    size_t need = 24 + tail_len;
    for (int i = 0; i < argc; i++)
        need += argl[i] + 26;
    char *out = need <= cap ? small : malloc(need);
    if (!out)
        return NULL;
    char *p = out;
    *p++ = '*';
    p += pr_redis_u64(p, (uint64_t)argc + (uint64_t)tail_argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++)
        p += pr_redis_bulk(p, argv[i], argl[i]);
    if (tail_len)
        memcpy(p, tail, tail_len);
    *len = (size_t)(p - out) + tail_len;
    return out;
}

/* P pod:{name}. */
int pr_redis_pod_key(char *out, size_t cap, const char *prefix, const char *name)
{
    if (!name || !pr_pod_name_valid(name, strlen(name)))
        return -EINVAL;
    return fit(snprintf(out, cap, "%spod:%s", prefix ? prefix : "", name), cap);
}

/* P followed by suffix. */
int pr_redis_prefixed(char *out, size_t cap, const char *prefix, const char *suffix)
{
    return fit(snprintf(out, cap, "%s%s", prefix ? prefix : "", suffix), cap);
}

/* A valid pod name from s: itself, or its first DNS label lower-cased. */
bool pr_redis_pod_name_from(const char *s, size_t len, char out[PR_POD_NAME_MAX + 1])
{
    if (!s || len == 0)
        return false;
    if (pr_pod_name_valid(s, len)) {
        memcpy(out, s, len);
        out[len] = '\0';
        return true;
    }
    size_t l = 0;
    while (l < len && s[l] != '.')
        l++;
    if (l == 0 || l > PR_POD_NAME_MAX)
        return false;
    for (size_t i = 0; i < l; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[l] = '\0';
    return pr_pod_name_valid(out, l);
}

/* ---- room JSON -------------------------------------------------------------------------- */

/* A non-negative integer from a JSON number or digit string; false otherwise. */
static bool json_uint(const cJSON *v, uint64_t max, uint64_t *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d >= 0) || d > (double)max)
            return false;
        *out = (uint64_t)floor(d);
        return true;
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(v->valuestring, &end, 10);
        if (errno || *end || !isdigit((unsigned char)v->valuestring[0]) || n > max)
            return false;
        *out = n;
        return true;
    }
    return false;
}

/* Parse a room:{id}:pod value. */
int pr_redis_room_parse(const char *json, size_t len, struct pr_redis_room *out)
{
    memset(out, 0, sizeof(*out));
    if (!json || len == 0)
        return -EINVAL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = -EINVAL;
    if (!cJSON_IsObject(root))
        goto done;
    const cJSON *pod = cJSON_GetObjectItemCaseSensitive(root, "podId");
    if (!cJSON_IsString(pod) ||
        !pr_redis_pod_name_from(pod->valuestring, strlen(pod->valuestring), out->pod))
        goto done;
    uint64_t v = 0;
    if (json_uint(cJSON_GetObjectItemCaseSensitive(root, "participantCount"), 1000000, &v))
        out->participant_count = (uint32_t)v;
    if (json_uint(cJSON_GetObjectItemCaseSensitive(root, "assignedAt"), UINT64_MAX / 2, &v))
        out->assigned_at_ms = v;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* HyperStudy's room JSON. */
int pr_redis_room_format(char *out, size_t cap, const struct pr_redis_room *r)
{
    int n = snprintf(out, cap, "{\"podId\":\"%s\",\"participantCount\":%u,\"assignedAt\":%llu}",
                     r->pod, (unsigned)r->participant_count, (unsigned long long)r->assigned_at_ms);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

/* The pod of kind's value (room JSON or plain name). */
int pr_redis_value_pod(enum pr_key_kind kind, const char *v, size_t len,
                       char pod[PR_POD_NAME_MAX + 1], uint32_t *count, uint64_t *assigned_at)
{
    if (count)
        *count = 0;
    if (assigned_at)
        *assigned_at = 0;
    if (kind == PR_KEY_ROOM) {
        struct pr_redis_room r;
        if (pr_redis_room_parse(v, len, &r) != 0)
            return -EINVAL;
        memcpy(pod, r.pod, sizeof(r.pod));
        if (count)
            *count = r.participant_count;
        if (assigned_at)
            *assigned_at = r.assigned_at_ms;
        return 0;
    }
    return v && pr_redis_pod_name_from(v, len, pod) ? 0 : -EINVAL;
}

/* ---- pod JSON --------------------------------------------------------------------------- */

/* The shared pod row as JSON; malloc'd. */
char *pr_redis_pod_format(const struct pr_redis_pod *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "address", p->address);
    cJSON *cap = cJSON_AddObjectToObject(o, "capacity");
    if (cap) {
        cJSON_AddNumberToObject(cap, "rooms", p->cap_rooms);
        cJSON_AddNumberToObject(cap, "participants", p->cap_participants);
    }
    if (p->zone[0])
        cJSON_AddStringToObject(o, "zone", p->zone);
    else
        cJSON_AddNullToObject(o, "zone");
    cJSON_AddBoolToObject(o, "draining", p->draining);
    /* Written as digits, not through a double: cJSON prints 15 significant digits, so a
     * value of 16 digits or more would come back different from the next read. */
    char ms[24];
    snprintf(ms, sizeof(ms), "%" PRIu64, p->last_seen_ms);
    cJSON_AddRawToObject(o, "last_seen_at", ms);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Parse a shared pod row; validates name, address and capacities. */
int pr_redis_pod_parse(const char *json, size_t len, struct pr_redis_pod *out)
{
    memset(out, 0, sizeof(*out));
    if (!json || len == 0)
        return -EINVAL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = -EINVAL;
    if (!cJSON_IsObject(root))
        goto done;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    const cJSON *addr = cJSON_GetObjectItemCaseSensitive(root, "address");
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(root, "capacity");
    const cJSON *zone = cJSON_GetObjectItemCaseSensitive(root, "zone");
    const cJSON *drain = cJSON_GetObjectItemCaseSensitive(root, "draining");
    if (!cJSON_IsString(name) || !pr_pod_name_valid(name->valuestring, strlen(name->valuestring)))
        goto done;
    if (!cJSON_IsString(addr) ||
        !pr_pod_address_valid(addr->valuestring, strlen(addr->valuestring)))
        goto done;
    snprintf(out->name, sizeof(out->name), "%s", name->valuestring);
    snprintf(out->address, sizeof(out->address), "%s", addr->valuestring);
    uint64_t v = 0;
    out->cap_rooms = 20;
    out->cap_participants = 80;
    if (cJSON_IsObject(cap)) {
        if (json_uint(cJSON_GetObjectItemCaseSensitive(cap, "rooms"), UINT32_MAX, &v) && v > 0)
            out->cap_rooms = (uint32_t)v;
        if (json_uint(cJSON_GetObjectItemCaseSensitive(cap, "participants"), UINT32_MAX, &v) &&
            v > 0)
            out->cap_participants = (uint32_t)v;
    }
    if (zone && !cJSON_IsString(zone) && !cJSON_IsNull(zone))
        goto done;
    if (cJSON_IsString(zone)) {
        if (strlen(zone->valuestring) > PR_ZONE_MAX)
            goto done;
        snprintf(out->zone, sizeof(out->zone), "%s", zone->valuestring);
    }
    out->draining = cJSON_IsTrue(drain);
    if (json_uint(cJSON_GetObjectItemCaseSensitive(root, "last_seen_at"), UINT64_MAX / 2, &v))
        out->last_seen_ms = v;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- events ----------------------------------------------------------------------------- */

/* Next space-separated token of [p, end): sets tok and tl, advances p; false at end. */
static bool token(const char **p, const char *end, const char **tok, size_t *tl)
{
    const char *s = *p;
    if (s >= end)
        return false;
    const char *sp = memchr(s, ' ', (size_t)(end - s));
    const char *e = sp ? sp : end;
    if (e == s)
        return false;
    *tok = s;
    *tl = (size_t)(e - s);
    *p = sp ? sp + 1 : end;
    return true;
}

/* A decimal number token of at most max; false otherwise. */
bool pr_redis_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Copy a valid key token into ev. */
static bool tok_key(const char *s, size_t len, struct pr_redis_event *ev)
{
    if (!pr_key_valid(s, len))
        return false;
    memcpy(ev->key, s, len);
    ev->key[len] = '\0';
    ev->key_len = len;
    return true;
}

/* Copy a valid pod-name token into ev->pod. */
static bool tok_pod(const char *s, size_t len, struct pr_redis_event *ev)
{
    if (!pr_pod_name_valid(s, len))
        return false;
    memcpy(ev->pod, s, len);
    ev->pod[len] = '\0';
    return true;
}

/* Decode one events message. */
int pr_redis_event_parse(const char *msg, size_t len, struct pr_redis_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (!msg || len == 0 || len > PR_REDIS_EVENT_MAX)
        return -EINVAL;
    const char *p = msg, *end = msg + len, *t;
    size_t tl;
    if (!token(&p, end, &t, &tl))
        return -EINVAL;
#define IS(lit) (tl == sizeof(lit) - 1 && memcmp(t, lit, tl) == 0)
    if (IS("pod")) {
        ev->type = PR_REDIS_EV_POD;
        if (p >= end)
            return -EINVAL;
        ev->json = p;
        ev->json_len = (size_t)(end - p);
        return 0;
    }
    if (IS("delpod")) {
        ev->type = PR_REDIS_EV_DELPOD;
        if (!token(&p, end, &t, &tl) || !tok_pod(t, tl, ev) || p != end)
            return -EINVAL;
        return 0;
    }
    if (IS("count")) {
        uint64_t n;
        ev->type = PR_REDIS_EV_COUNT;
        ev->kind = PR_KEY_ROOM;
        if (!token(&p, end, &t, &tl) || !tok_key(t, tl, ev))
            return -EINVAL;
        if (!token(&p, end, &t, &tl) || !pr_redis_uint(t, tl, UINT32_MAX, &n) || p != end)
            return -EINVAL;
        ev->count = (uint32_t)n;
        return 0;
    }
    bool set = IS("set");
    if (!set && !IS("del"))
        return -EINVAL;
#undef IS
    ev->type = set ? PR_REDIS_EV_SET : PR_REDIS_EV_DEL;
    if (!token(&p, end, &t, &tl))
        return -EINVAL;
    int kind = pr_redis_kind_parse(t, tl);
    if (kind < 0)
        return -EINVAL;
    ev->kind = (enum pr_key_kind)kind;
    if (!token(&p, end, &t, &tl) || !tok_key(t, tl, ev))
        return -EINVAL;
    if (!set)
        return p == end ? 0 : -EINVAL;
    uint64_t n, at;
    if (!token(&p, end, &t, &tl) || !tok_pod(t, tl, ev))
        return -EINVAL;
    if (!token(&p, end, &t, &tl) || !pr_redis_uint(t, tl, UINT32_MAX, &n))
        return -EINVAL;
    if (!token(&p, end, &t, &tl) || !pr_redis_uint(t, tl, UINT64_MAX / 2, &at) || p != end)
        return -EINVAL;
    ev->count = (uint32_t)n;
    ev->assigned_at_ms = at;
    return 0;
}

/* Encode one events message. */
int pr_redis_event_format(char *out, size_t cap, const struct pr_redis_event *ev)
{
    const char *kind = pr_redis_kind_name(ev->kind);
    int n;
    switch (ev->type) {
    case PR_REDIS_EV_SET:
        if (!kind || !pr_key_valid(ev->key, ev->key_len) ||
            !pr_pod_name_valid(ev->pod, strlen(ev->pod)))
            return -EINVAL;
        n = snprintf(out, cap, "set %s %.*s %s %u %llu", kind, (int)ev->key_len, ev->key, ev->pod,
                     (unsigned)ev->count, (unsigned long long)ev->assigned_at_ms);
        break;
    case PR_REDIS_EV_DEL:
        if (!kind || !pr_key_valid(ev->key, ev->key_len))
            return -EINVAL;
        n = snprintf(out, cap, "del %s %.*s", kind, (int)ev->key_len, ev->key);
        break;
    case PR_REDIS_EV_COUNT:
        if (!pr_key_valid(ev->key, ev->key_len))
            return -EINVAL;
        n = snprintf(out, cap, "count %.*s %u", (int)ev->key_len, ev->key, (unsigned)ev->count);
        break;
    case PR_REDIS_EV_POD:
        if (!ev->json || ev->json_len == 0)
            return -EINVAL;
        if (ev->json_len + 4 >= cap)
            return -ENOSPC;
        memcpy(out, "pod ", 4); /* the bytes as they are (%.*s would stop at a NUL) */
        memcpy(out + 4, ev->json, ev->json_len);
        out[4 + ev->json_len] = '\0';
        n = (int)(4 + ev->json_len);
        break;
    case PR_REDIS_EV_DELPOD:
        if (!pr_pod_name_valid(ev->pod, strlen(ev->pod)))
            return -EINVAL;
        n = snprintf(out, cap, "delpod %s", ev->pod);
        break;
    default:
        return -EINVAL;
    }
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}
