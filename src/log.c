#include "podrouter/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum pr_log_level log_level = PR_LOG_INFO;
static enum pr_log_format log_format = PR_LOG_JSON;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void pr_log_init(enum pr_log_level level, enum pr_log_format format)
{
    log_level = level;
    log_format = format;
}

bool pr_log_enabled(enum pr_log_level level)
{
    return level >= log_level;
}

/* Append s as a JSON string body (without quotes), escaping as RFC 8259 requires. */
static size_t json_escape(char *out, size_t cap, size_t n, const char *s)
{
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

static size_t append(char *out, size_t cap, size_t n, const char *s)
{
    if (n + 1 >= cap)
        return n;
    size_t l = strlen(s);
    if (l > cap - n - 1)
        l = cap - n - 1;
    memcpy(out + n, s, l);
    return n + l;
}

void pr_log(enum pr_log_level level, const char *msg, ...)
{
    if (level < log_level)
        return;
    char line[4096];
    size_t cap = sizeof(line) - 2, n = 0;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[80];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000) % 1000);
    va_list ap;
    va_start(ap, msg);
    if (log_format == PR_LOG_JSON) {
        n += (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                              level_names[level]);
        n = json_escape(line, cap, n, msg);
        n = append(line, cap, n, "\"");
        const char *k;
        while ((k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *);
            bool raw = k[0] == '#';
            if (raw)
                k++;
            if (!v)
                continue;
            n = append(line, cap, n, ",\"");
            n = json_escape(line, cap, n, k);
            n = append(line, cap, n, raw ? "\":" : "\":\"");
            n = raw ? append(line, cap, n, v) : json_escape(line, cap, n, v);
            if (!raw)
                n = append(line, cap, n, "\"");
        }
        n = append(line, cap, n, "}");
    } else {
        n += (size_t)snprintf(line, cap, "%s %-5s %s", ts, level_names[level], msg);
        const char *k;
        while ((k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *);
            if (!v)
                continue;
            if (k[0] == '#')
                k++;
            n = append(line, cap, n, " ");
            n = append(line, cap, n, k);
            n = append(line, cap, n, "=");
            n = append(line, cap, n, v);
        }
    }
    va_end(ap);
    if (n > cap)
        n = cap;
    line[n++] = '\n';
    /* One write per line keeps lines whole across threads. */
    ssize_t w = write(STDOUT_FILENO, line, n);
    (void)w;
}
