/* Shared constants and small types used across modules. */
#ifndef PODROUTER_COMMON_H
#define PODROUTER_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PR_POD_NAME_MAX 63   /* ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ */
#define PR_ADDRESS_MAX 63    /* host:port or [v6]:port */
#define PR_ZONE_MAX 63
#define PR_KEY_MAX 128       /* affinity keys: 1..128 bytes of [A-Za-z0-9_.:-] */
#define PR_MAX_PODS 1024
#define PR_ADMIN_BODY_MAX (64 * 1024)

/* Where an affinity key came from, in order of precedence (SPEC 3.1). */
enum pr_key_kind {
    PR_KEY_SID = 0,
    PR_KEY_ROOM,
    PR_KEY_PARTICIPANT,
    PR_KEY_COOKIE,
    PR_KEY_NONE,
    PR_KEY__COUNT
};

/* Outcome of an assignment decision (metric label). */
enum pr_outcome {
    PR_OUTCOME_HIT = 0,
    PR_OUTCOME_CREATED,
    PR_OUTCOME_REASSIGNED,
    PR_OUTCOME_DEGRADED,
    PR_OUTCOME_OVERFLOW, /* --max-assignments reached: placed as degraded, not stored */
    PR_OUTCOME__COUNT
};

const char *pr_key_kind_name(enum pr_key_kind k);
const char *pr_outcome_name(enum pr_outcome o);

/* Milliseconds since the Unix epoch (wall clock). */
uint64_t pr_now_ms(void);
/* Monotonic milliseconds. */
uint64_t pr_mono_ms(void);

/* A bearer token file's first line, trailing whitespace trimmed, printable ASCII only:
 * 0 or a negative errno (-EFBIG too long, -ENODATA empty, -EILSEQ bad byte). */
int pr_read_token_file(const char *path, char *buf, size_t cap);

/* PR_ASAN: built with AddressSanitizer (GCC or clang). Memory the router maps itself (pr_buf,
 * exchanges, connection slabs) comes from malloc instead, so that ASan checks it. */
#if defined(__SANITIZE_ADDRESS__)
#define PR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PR_ASAN 1
#endif
#endif

/* The one growable byte buffer (bytes [0, len) of p; p is NULL while cap is 0). Buffers
 * exist only while data flows: owners give them back with pr_buf_trim/pr_buf_free. */
struct pr_buf {
    char *p;
    uint32_t len, cap;
};

/* Room for need bytes in all (cap >= need; doubling from 4 KiB, whole pages mapped apart from
 * the malloc heap, see common.c); 0 or -ENOMEM. */
int pr_buf_reserve(struct pr_buf *b, size_t need);
/* Appends n bytes; 0 or -ENOMEM (b unchanged). Inline: the head rewriter appends ~60
 * pieces per request; only growing leaves the line. */
int pr_buf_append_grow(struct pr_buf *b, const void *s, size_t n);
static inline int pr_buf_append(struct pr_buf *b, const void *s, size_t n)
{
    if (n == 0)
        return 0;
    if (n > (size_t)(b->cap - b->len))
        return pr_buf_append_grow(b, s, n);
    memcpy(b->p + b->len, s, n);
    b->len += (uint32_t)n;
    return 0;
}
/* Frees the memory when more than keep bytes are allocated (len becomes 0). */
void pr_buf_trim(struct pr_buf *b, uint32_t keep);
void pr_buf_free(struct pr_buf *b);

/* Copies the string src into dst[cap] (cap >= 1), cut to cap - 1 bytes and terminated, and
 * returns the length copied: snprintf(dst, cap, "%s", src) without the formatter. */
size_t pr_str_copy(char *dst, size_t cap, const char *src);

/* true when s[0..len) is a pod name, ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ (SPEC 4.2). */
bool pr_pod_name_valid(const char *s, size_t len);

/* SipHash-1-3 of data[0..len) under the key (k0, k1) (k0: key bytes 0-7, little-endian). */
uint64_t pr_siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len);
/* SipHash-1-3 under the process's secret key (drawn at start), varied by seed: for every table
 * whose keys come from outside (store keys, client addresses), so no bucket can be targeted. */
uint64_t pr_hash_keyed(uint8_t seed, const void *data, size_t len);

/* host:port validation, one grammar for the router (PUT /v1/pods, SPEC 4.2) and the sidecar
 * (register --address, --admin-url, --health-url; --store hosts):
 *   hostport = ( host | "[" IPv6 "]" ) [ ":" port ]
 *   host     = RFC 1123 name: dot-separated labels of 1..63 [A-Za-z0-9-], no label starting
 *              or ending with '-', 1..253 bytes in all; when made of digits and dots only,
 *              a dotted-quad IPv4 address. No '_' (not a host name character), no zone id.
 *   port     = 1..65535 in decimal, no sign, no leading zero. */
/* true when s[0..len) is a decimal port 1..65535. */
bool pr_port_valid(const char *s, size_t len);
/* true when s[0..len) is a host name or an IPv4 literal as above. */
bool pr_host_valid(const char *s, size_t len);
/* true when s[0..len) is hostport as above; the port may be left out unless port_required. */
bool pr_hostport_valid(const char *s, size_t len, bool port_required);

#endif
