#include "podrouter/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define HOST_NAME_MAX_LEN 253 /* RFC 1035 2.3.4 */
#define LABEL_MAX 63
#define V6_TEXT_MAX 45 /* INET6_ADDRSTRLEN - 1 */

static const char *const key_kind_names[PR_KEY__COUNT] = {
    [PR_KEY_SID] = "sid",
    [PR_KEY_ROOM] = "room",
    [PR_KEY_PARTICIPANT] = "participant",
    [PR_KEY_COOKIE] = "cookie",
    [PR_KEY_NONE] = "none",
};

static const char *const outcome_names[PR_OUTCOME__COUNT] = {
    [PR_OUTCOME_HIT] = "hit",
    [PR_OUTCOME_CREATED] = "created",
    [PR_OUTCOME_REASSIGNED] = "reassigned",
    [PR_OUTCOME_DEGRADED] = "degraded",
    [PR_OUTCOME_OVERFLOW] = "overflow",
};

const char *pr_key_kind_name(enum pr_key_kind k)
{
    return (unsigned)k < PR_KEY__COUNT ? key_kind_names[k] : "?";
}

const char *pr_outcome_name(enum pr_outcome o)
{
    return (unsigned)o < PR_OUTCOME__COUNT ? outcome_names[o] : "?";
}

uint64_t pr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pr_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Buffers are whole pages mapped outside the malloc heap (issue 11): they exist only while a
 * request flows, and a heap buffer freed after a burst of requests left a hole between the
 * long-lived connection structs allocated meanwhile, pages glibc can never give back (idle
 * tunnels paid ~100-200 B each for it). Pooled exchanges keep theirs, so the steady request
 * path makes no system call. Under AddressSanitizer they stay on the heap, to be checked. */
#if defined(PR_ASAN)
#define PR_BUF_MAPPED 0
#else
#define PR_BUF_MAPPED 1
#endif

int pr_buf_reserve(struct pr_buf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    if (need > UINT32_MAX / 2)
        return -ENOMEM;
    size_t n = b->cap ? b->cap : 4096;
    while (n < need)
        n *= 2;
#if PR_BUF_MAPPED
    char *p = b->p ? mremap(b->p, b->cap, n, MREMAP_MAYMOVE)
                   : mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
#else
    char *p = realloc(b->p, n);
    if (!p)
        return -ENOMEM;
#endif
    b->p = p;
    b->cap = (uint32_t)n;
    return 0;
}

int pr_buf_append_grow(struct pr_buf *b, const void *s, size_t n)
{
    if (n == 0)
        return 0;
    if (pr_buf_reserve(b, (size_t)b->len + n) != 0)
        return -ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += (uint32_t)n;
    return 0;
}

size_t pr_str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

void pr_buf_trim(struct pr_buf *b, uint32_t keep)
{
    if (b->cap > keep)
        pr_buf_free(b);
}

void pr_buf_free(struct pr_buf *b)
{
#if PR_BUF_MAPPED
    if (b->p)
        munmap(b->p, b->cap);
#else
    free(b->p);
#endif
    b->p = NULL;
    b->len = b->cap = 0;
}

int pr_read_token_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    if ((size_t)n == cap - 1)
        return -EFBIG;
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (n == 0)
        return -ENODATA;
    for (ssize_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
            return -EILSEQ;
    return 0;
}

/* ---- pod names and host:port: one grammar for the router and the sidecar ------------------ */

/* true when s[0..len) matches ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ */
bool pr_pod_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > PR_POD_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum)
            continue;
        if ((c == '.' || c == '-') && i != 0 && i != len - 1)
            continue;
        return false;
    }
    return true;
}

bool pr_port_valid(const char *s, size_t len)
{
    if (len == 0 || len > 5 || s[0] == '0')
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    return v <= 65535;
}

/* An RFC 1123 name (labels of [A-Za-z0-9-], none empty, no edge hyphen) or, when it has only
 * digits and dots, a dotted-quad IPv4 literal ("10.0.0" is neither). */
bool pr_host_valid(const char *s, size_t len)
{
    if (len == 0 || len > HOST_NAME_MAX_LEN)
        return false;
    bool numeric = true;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool digit = c >= '0' && c <= '9';
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if ((!digit && !alpha && c != '-') || (c == '-' && label == 0) || ++label > LABEL_MAX)
            return false;
        numeric = numeric && digit;
    }
    if (label == 0 || s[len - 1] == '-')
        return false;
    if (!numeric)
        return true;
    char buf[HOST_NAME_MAX_LEN + 1];
    struct in_addr a4;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a4) == 1;
}

/* true when s[0..len) (without brackets) is an IPv6 literal, without a zone id. */
static bool v6_valid(const char *s, size_t len)
{
    char buf[V6_TEXT_MAX + 1];
    struct in6_addr a6;
    if (len == 0 || len > V6_TEXT_MAX)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1;
}

bool pr_hostport_valid(const char *s, size_t len, bool port_required)
{
    if (s == NULL || len == 0)
        return false;
    const char *end = s + len;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb == NULL || !v6_valid(s + 1, (size_t)(rb - s - 1)))
            return false;
        if (rb + 1 == end)
            return !port_required;
        return rb[1] == ':' && pr_port_valid(rb + 2, (size_t)(end - rb - 2));
    }
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return !port_required && pr_host_valid(s, len);
    return pr_host_valid(s, (size_t)(colon - s)) &&
           pr_port_valid(colon + 1, (size_t)(end - colon - 1));
}

/* SipHash-1-3 (Aumasson and Bernstein; 1 compression round, 3 finalization rounds: the
 * variant of Rust's HashMap and CPython's str hash), keyed per process. Keys come from clients
 * (roomId, participantId, X-Participant-Id; sids from pods), so an unkeyed hash would let one
 * client pick keys that all land in one bucket of a table (hash flooding: every lookup then
 * walks them all); the rate limiter's table is keyed by client addresses. The key is drawn at
 * every start; nothing outside the process sees a hash. */
static uint64_t hash_key[2];

__attribute__((constructor)) static void hash_key_init(void)
{
    if (getrandom(hash_key, sizeof(hash_key), GRND_NONBLOCK) == (ssize_t)sizeof(hash_key))
        return;
    /* no entropy pool yet (very early boot): still different per process and start */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hash_key[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    hash_key[1] ^= (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9u ^ (uint64_t)(uintptr_t)&ts;
}

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13) ^ v0;                                                                    \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16) ^ v2;                                                                    \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21) ^ v0;                                                                    \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17) ^ v2;                                                                    \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t pr_siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const unsigned char *d = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575u, v1 = k1 ^ 0x646f72616e646f6du;
    uint64_t v2 = k0 ^ 0x6c7967656e657261u, v3 = k1 ^ 0x7465646279746573u;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = load_le64(d + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t m = (uint64_t)len << 56;
    for (size_t j = 0; i + j < len; j++)
        m |= (uint64_t)d[i + j] << (8 * j);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t pr_hash_keyed(uint8_t seed, const void *data, size_t len)
{
    return pr_siphash13(hash_key[0], hash_key[1] ^ seed, data, len);
}
