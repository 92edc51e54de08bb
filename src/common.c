#include "podrouter/common.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
#include <time.h>

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

int pr_grow(char **buf, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    if (need > UINT32_MAX / 2)
        return -ENOMEM;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = (uint32_t)n;
    return 0;
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
