/* Value parsers and checks of the flag tables (config.c): each flag value is parsed or
 * checked here, without knowing the tables; config.c owns the tables, the engine and usage. */
#include "config_values.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "podrouter/common.h"
#include "podrouter/http_rewrite.h"
#include "podrouter/registry.h"

#define KEY_PREFIX_MAX 100

/* ---- messages -------------------------------------------------------------------------- */

/* Copy v into out for an error message: quoted-safe, printable, truncated with "...". */
const char *pr__cfg_shown(const char *v, char *out, size_t outlen)
{
    size_t n = 0, i = 0;
    for (; v[i] != '\0' && n + 4 < outlen && i < 80; i++) {
        unsigned char c = (unsigned char)v[i];
        out[n++] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (v[i] != '\0' && n + 4 <= outlen) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Shows a URL with its userinfo (password) replaced by "***", so errors never leak it. */
void pr__cfg_redact_userinfo(const char *url, char *out, size_t outlen)
{
    const char *scheme = strstr(url, "://");
    const char *at = strrchr(url, '@');
    if (scheme == NULL || at == NULL || at < scheme)
        return;
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%.*s://***%.60s", (int)(scheme - url < 20 ? scheme - url : 20), url,
             at);
    pr__cfg_shown(tmp, out, outlen);
}

/* ---- the pieces of public API that parse one value ----------------------------------- */

/* Parses "250ms", "15s", "1.5s", "2m", "24h" or a bare number of seconds into whole ms. */
int pr_parse_duration(const char *s, uint64_t *out_ms)
{
    if (s == NULL || out_ms == NULL)
        return -EINVAL;
    const char *p = s;
    uint64_t ip = 0, frac = 0, frac_scale = 1;
    size_t ndig = 0;
    while (*p >= '0' && *p <= '9') {
        if (ip > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        ip = ip * 10 + (uint64_t)(*p++ - '0');
        ndig++;
    }
    if (*p == '.') {
        p++;
        size_t nfrac = 0;
        while (*p >= '0' && *p <= '9') {
            if (++nfrac > 9)
                return -EINVAL;
            frac = frac * 10 + (uint64_t)(*p++ - '0');
            frac_scale *= 10;
        }
        if (nfrac == 0)
            return -EINVAL;
        ndig += nfrac;
    }
    if (ndig == 0)
        return -EINVAL;
    uint64_t mult;
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0 || *p == '\0')
        mult = 1000;
    else if (strcmp(p, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        mult = 3600 * 1000;
    else
        return -EINVAL;
    if (ip > UINT64_MAX / mult)
        return -EINVAL;
    /* A fraction must land on a whole millisecond: "1.5s" yes, "1.5ms" no. */
    if ((frac * mult) % frac_scale != 0)
        return -EINVAL;
    uint64_t ms = ip * mult, fms = frac * mult / frac_scale;
    if (ms > UINT64_MAX - fms)
        return -EINVAL;
    *out_ms = ms + fms;
    return 0;
}

/* Parses "host:port", "[v6]:port" or ":port" where host is an IP literal or "localhost". */
int pr_parse_listen(const char *s, struct pr_listen_addr *out)
{
    if (s == NULL || out == NULL)
        return -EINVAL;
    size_t len = strlen(s);
    const char *host, *port;
    size_t host_len;
    bool v6 = false;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return -EINVAL;
        host = s + 1;
        host_len = (size_t)(rb - host);
        port = rb + 2;
        v6 = true;
    } else {
        const char *colon = strchr(s, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return -EINVAL; /* bare IPv6 must be bracketed */
        host = s;
        host_len = (size_t)(colon - s);
        port = colon + 1;
    }
    if (!pr_port_valid(port, len - (size_t)(port - s)))
        return -EINVAL;
    char buf[sizeof(out->host)];
    if (host_len >= sizeof(buf))
        return -EINVAL;
    if (host_len == 0) {
        if (v6)
            return -EINVAL;
        snprintf(buf, sizeof(buf), "0.0.0.0");
    } else {
        memcpy(buf, host, host_len);
        buf[host_len] = '\0';
        unsigned char a[sizeof(struct in6_addr)];
        if (v6) {
            if (inet_pton(AF_INET6, buf, a) != 1)
                return -EINVAL;
        } else if (strcmp(buf, "localhost") != 0 && inet_pton(AF_INET, buf, a) != 1) {
            return -EINVAL;
        }
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->host, sizeof(out->host), "%s", buf);
    out->port = (uint16_t)strtoul(port, NULL, 10);
    return 0;
}

/* ---- string checks ------------------------------------------------------------------- */

#define STORE_HINT                                                                                 \
    "use memory, redis://[:password@]host[:port][/db] or "                                         \
    "redis-sentinel://host:port[,host:port...]/master-name"

/* Accepts memory, redis://[userinfo@]host[:port][/db], redis-sentinel://[userinfo@]h:p,.../m. */
int pr__cfg_check_store(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "memory") == 0)
        return 0;
    bool sentinel;
    const char *rest;
    if (strncmp(v, "redis://", 8) == 0) {
        sentinel = false;
        rest = v + 8;
    } else if (strncmp(v, "redis-sentinel://", 17) == 0) {
        sentinel = true;
        rest = v + 17;
    } else {
        snprintf(why, whylen, "unsupported store (" STORE_HINT ")");
        return -EINVAL;
    }
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            snprintf(why, whylen, "store URL contains a space or control character");
            return -EINVAL;
        }
    }
    const char *at = strrchr(rest, '@');
    if (at != NULL) {
        if (at == rest || at[-1] == ':') {
            snprintf(why, whylen, "empty password before '@' (" STORE_HINT ")");
            return -EINVAL;
        }
        rest = at + 1;
    }
    const char *slash = strchr(rest, '/');
    size_t hosts_len = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!sentinel) {
        if (!pr_hostport_valid(rest, hosts_len, false)) {
            snprintf(why, whylen, "invalid redis host[:port] (" STORE_HINT ")");
            return -EINVAL;
        }
        if (slash != NULL) {
            size_t n = strlen(slash + 1);
            bool ok = n >= 1 && n <= 6;
            for (size_t i = 0; ok && i < n; i++)
                ok = slash[1 + i] >= '0' && slash[1 + i] <= '9';
            if (!ok) {
                snprintf(why, whylen, "redis database must be a number (" STORE_HINT ")");
                return -EINVAL;
            }
        }
        return 0;
    }
    /* Sentinel: one or more host:port separated by commas, then /master-name. */
    const char *p = rest, *end = rest + hosts_len;
    if (hosts_len == 0) {
        snprintf(why, whylen, "redis-sentinel needs at least one host:port (" STORE_HINT ")");
        return -EINVAL;
    }
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (!pr_hostport_valid(p, (size_t)(e - p), true)) {
            snprintf(why, whylen, "invalid sentinel host:port (" STORE_HINT ")");
            return -EINVAL;
        }
        p = comma ? comma + 1 : end;
        if (comma && p == end) {
            snprintf(why, whylen, "invalid sentinel host:port (" STORE_HINT ")");
            return -EINVAL;
        }
    }
    const char *m = slash ? slash + 1 : "";
    size_t mlen = strlen(m);
    bool ok = mlen >= 1 && mlen <= 63;
    for (size_t i = 0; ok && i < mlen; i++)
        ok = isalnum((unsigned char)m[i]) || m[i] == '_' || m[i] == '-' || m[i] == '.';
    if (!ok) {
        snprintf(why, whylen,
                 "redis-sentinel needs /master-name of [A-Za-z0-9_.-] (" STORE_HINT ")");
        return -EINVAL;
    }
    return 0;
}

/* Key prefix: at most 100 printable bytes without spaces (may be empty). */
int pr__cfg_check_key_prefix(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    if (n > KEY_PREFIX_MAX) {
        snprintf(why, whylen, "too long (%zu bytes, at most %d)", n, KEY_PREFIX_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c >= 0x7f) {
            snprintf(why, whylen, "must be printable ASCII without spaces");
            return -EINVAL;
        }
    }
    return 0;
}

/* Query parameter name: 1..63 bytes of [A-Za-z0-9_-]. */
int pr__cfg_check_param_name(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    bool ok = n >= 1 && n <= 63;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '_' || v[i] == '-';
    if (!ok) {
        snprintf(why, whylen, "must be 1..63 characters of [A-Za-z0-9_-]");
        return -EINVAL;
    }
    return 0;
}

/* Cookie name: empty (disabled) or an RFC 7230 token of at most 63 bytes. */
int pr__cfg_check_cookie_name(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    bool ok = n <= 63;
    for (size_t i = 0; ok && i < n; i++)
        ok = pr_tchar((unsigned char)v[i]);
    if (!ok) {
        snprintf(why, whylen,
                 "must be empty (disables the cookie) or a cookie token of at most "
                 "63 characters");
        return -EINVAL;
    }
    return 0;
}

/* A file path that, when given, names a readable file. */
int pr__cfg_check_readable_file(const char *v, char *why, size_t whylen)
{
    if (v[0] == '\0')
        return 0;
    if (access(v, R_OK) != 0) {
        int e = errno;
        snprintf(why, whylen, "cannot read file: %s", strerror(e));
        return -EINVAL;
    }
    return 0;
}

/* http://host[:port][/path] without spaces; health URLs also refuse a query or fragment
 * and a path of 256 bytes or more. */
static int check_http_url(const char *v, char *why, size_t whylen, const char *hint, bool health)
{
    if (strncmp(v, "http://", 7) != 0) {
        snprintf(why, whylen, "%s (%s)",
                 strncmp(v, "https://", 8) == 0 ? "https is not supported" : "not an http:// URL",
                 hint);
        return -EINVAL;
    }
    const char *h = v + 7;
    for (const char *p = h; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            snprintf(why, whylen, "URL contains a space or control character");
            return -EINVAL;
        }
        if (health && (*p == '?' || *p == '#')) {
            snprintf(why, whylen, "a query or fragment is not supported (%s)", hint);
            return -EINVAL;
        }
    }
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (!pr_hostport_valid(h, hl, false)) {
        snprintf(why, whylen, "invalid host or port (%s)", hint);
        return -EINVAL;
    }
    if (health && slash != NULL && strlen(slash) >= 256) {
        snprintf(why, whylen, "path longer than 255 bytes");
        return -EINVAL;
    }
    return 0;
}

/* Admin URL: http://host[:port][/path], no spaces. */
int pr__cfg_check_admin_url(const char *v, char *why, size_t whylen)
{
    return check_http_url(v, why, whylen,
                          "use http://host:port, e.g. http://pod-router-admin:3002", false);
}

/* --health-url: empty (off) or http://host[:port][/path], no query or fragment. */
int pr__cfg_check_health_url(const char *v, char *why, size_t whylen)
{
    if (v[0] == '\0')
        return 0;
    return check_http_url(v, why, whylen,
                          "use http://host:port/path, e.g. http://127.0.0.1:3000/health", true);
}

/* Pod name: the registry's own check (SPEC 4.2), ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ */
int pr__cfg_check_pod_name(const char *v, char *why, size_t whylen)
{
    if (!pr_pod_name_valid(v, strlen(v))) {
        snprintf(why, whylen,
                 "must be 1..63 characters of [a-z0-9.-], starting and ending with "
                 "a letter or digit");
        return -EINVAL;
    }
    return 0;
}

/* Pod address: the very check the router applies to PUT /v1/pods (SPEC 4.2), so an address
 * the sidecar accepts is never refused by the router. */
int pr__cfg_check_address(const char *v, char *why, size_t whylen)
{
    if (!pr_pod_address_valid(v, strlen(v))) {
        snprintf(why, whylen,
                 "must be host:port or [v6]:port (host a DNS name of [A-Za-z0-9.-] or an IP "
                 "literal, port 1-65535, at most %d bytes)",
                 PR_ADDRESS_MAX);
        return -EINVAL;
    }
    return 0;
}

/* Zone label: empty or 1..63 bytes of [A-Za-z0-9._-]. */
int pr__cfg_check_zone(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    bool ok = n <= PR_ZONE_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '_' || v[i] == '-';
    if (!ok) {
        snprintf(why, whylen, "must be at most 63 characters of [A-Za-z0-9._-]");
        return -EINVAL;
    }
    return 0;
}

bool pr__cfg_parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* Parses true/false (also 1/0, yes/no, on/off). */
bool pr__cfg_parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"true", "1", "yes", "on"};
    static const char *const f[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, f[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* ---- trusted proxies ------------------------------------------------------------------ */

/* Parses one "ip[/prefix]" of len bytes. */
static int parse_cidr(const char *s, size_t len, struct pr_cidr *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        uint64_t v;
        if (!pr__cfg_parse_u64(slash + 1, &v) || v > 128)
            return -EINVAL;
        prefix = (long)v;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix > 32)
            return -EINVAL;
        out->prefix = (uint8_t)(prefix < 0 ? 32 : prefix);
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = (uint8_t)(prefix < 0 ? 128 : prefix);
    } else {
        return -EINVAL;
    }
    return 0;
}

int pr_parse_cidrs(const char *s, struct pr_cidr *out, size_t max, uint32_t *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if (*n >= max || parse_cidr(p, (size_t)(e - p), &out[*n]) != 0)
            return -EINVAL;
        (*n)++;
        p = e;
    }
    return 0;
}

bool pr_cidr_match(const struct pr_cidr *list, uint32_t n, int family, const uint8_t *addr)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct pr_cidr *c = &list[i];
        if (c->family != family)
            continue;
        unsigned bits = c->prefix, full = bits / 8, rest = bits % 8;
        if (memcmp(c->addr, addr, full) != 0)
            continue;
        if (rest) {
            uint8_t mask = (uint8_t)(0xff << (8 - rest));
            if ((c->addr[full] & mask) != (addr[full] & mask))
                continue;
        }
        return true;
    }
    return false;
}


/* Formats a duration in the largest exact unit, for messages and usage. */
void pr__cfg_fmt_duration(uint64_t ms, char *out, size_t outlen)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, outlen, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, outlen, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, outlen, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, outlen, "%llums", (unsigned long long)ms);
}
