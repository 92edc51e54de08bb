/* Test helper shared by the fake Redis servers of tests/unit/store_redis_test.c and
 * tests/fuzz/store_fuzz.c: where one RESP command (an array of bulk strings, as the store
 * sends them) ends. Not a general RESP reader: only what a client sends. */
#ifndef PODROUTER_TESTS_RESP_COMMAND_H
#define PODROUTER_TESTS_RESP_COMMAND_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Length of the complete command at p[0..n) with its first argument in *name (0: not
 * complete yet; -1: not a RESP array of bulk strings). */
static inline long resp_command(const char *p, size_t n, const char **name, size_t *name_len)
{
    if (n < 1)
        return 0;
    if (p[0] != '*')
        return -1;
    char *end;
    const char *nl = memchr(p, '\n', n);
    if (!nl)
        return 0;
    long argc = strtol(p + 1, &end, 10);
    size_t off = (size_t)(nl - p) + 1;
    for (long i = 0; i < argc; i++) {
        if (off >= n)
            return 0;
        if (p[off] != '$')
            return -1;
        nl = memchr(p + off, '\n', n - off);
        if (!nl)
            return 0;
        long len = strtol(p + off + 1, &end, 10);
        if (len < 0)
            return -1;
        off = (size_t)(nl - p) + 1;
        if (off + (size_t)len + 2 > n)
            return 0;
        if (i == 0) {
            *name = p + off;
            *name_len = (size_t)len;
        }
        off += (size_t)len + 2;
    }
    return (long)off;
}

/* Answer the complete commands at buf[0..*len) in turn with fn(arg, name, name_len) (false:
 * stop, the connection is gone) and move what is left to the front. The number answered, or
 * -1 when something is not a command or fn stopped. */
static inline int resp_consume(char *buf, size_t *len,
                               bool (*fn)(void *arg, const char *name, size_t name_len), void *arg)
{
    size_t used = 0;
    int count = 0;
    for (;;) {
        const char *name = NULL;
        size_t nl = 0;
        long t = resp_command(buf + used, *len - used, &name, &nl);
        if (t < 0 || (t > 0 && !fn(arg, name, nl)))
            return -1;
        if (t == 0)
            break;
        used += (size_t)t;
        count++;
    }
    memmove(buf, buf + used, *len - used);
    *len -= used;
    return count;
}

#endif
