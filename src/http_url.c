/* "http://host[:port][/path]" -> struct pr_http_url (http_client.h), for the sidecar's
 * --admin-url and --health-url and the drain subcommand. No I/O. */
#include "podrouter/http_client.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* Parses "http://host[:port][/path]" into out; 0 or -EINVAL. The host may be a bracketed IPv6
 * literal with a zone id; a query or fragment is refused; trailing slashes are dropped. */
int pr_http_url_parse(const char *url, struct pr_http_url *out)
{
    if (url == NULL || out == NULL || strncasecmp(url, "http://", 7) != 0)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    const char *h = url + 7;
    const char *end = h + strcspn(h, "/?#");
    if (*end == '?' || *end == '#')
        return -EINVAL;
    const char *host = h, *host_end, *port = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL)
            return -EINVAL;
        host = h + 1;
        host_end = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return -EINVAL;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));
        host_end = colon ? colon : end;
        if (colon)
            port = colon + 1;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof(out->host))
        return -EINVAL;
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_' && ch != ':' && ch != '%')
            return -EINVAL;
        if ((ch == ':' || ch == '%') && *h != '[')
            return -EINVAL;
    }
    memcpy(out->host, host, hl);
    unsigned long p = 80;
    if (port) {
        size_t pl = (size_t)(end - port);
        if (pl == 0 || pl > 5)
            return -EINVAL;
        p = 0;
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9')
                return -EINVAL;
            p = p * 10 + (unsigned long)(port[i] - '0');
        }
        if (p < 1 || p > 65535)
            return -EINVAL;
    }
    out->port = (uint16_t)p;
    size_t pathl = strlen(end);
    while (pathl > 0 && end[pathl - 1] == '/')
        pathl--;
    if (pathl >= sizeof(out->path))
        return -EINVAL;
    for (size_t i = 0; i < pathl; i++) {
        unsigned char ch = (unsigned char)end[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return -EINVAL;
    }
    memcpy(out->path, end, pathl);
    return 0;
}
