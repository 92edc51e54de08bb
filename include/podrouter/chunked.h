/* A strict checker of chunked transfer coding (RFC 9112 7.1), independent of llhttp: the
 * router relays chunked bodies as they come, so it must refuse framing that another parser
 * (the pod's, or the client's) could read differently. Pure; caller-owned state. */
#ifndef PODROUTER_CHUNKED_H
#define PODROUTER_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

struct pr_chunked {
    uint8_t state;
    uint8_t digits;     /* hex digits of the current chunk size */
    uint64_t remaining; /* chunk-data bytes still to come */
};

void pr_chunked_init(struct pr_chunked *c);

/* Feed the next n bytes of a chunked body: 0 all consumed, message not finished yet;
 * 1 the message ended exactly at the last byte; -1 invalid framing (or bytes after the
 * end). */
int pr_chunked_feed(struct pr_chunked *c, const char *p, size_t n);

#endif
