/* Table-driven tests of flag/env parsing for `serve` and `register` (SPEC 2, 8). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "podrouter/config.h"
#include "podrouter/registry.h"

extern char **environ;

/* Removes every POD_ROUTER_* variable so the runner's environment cannot leak in. */
static void clear_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "POD_ROUTER_", 11) == 0) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                snprintf(name, sizeof(name), "%.*s", (int)n, *e);
                break;
            }
        }
        if (name[0] == '\0')
            return;
        unsetenv(name);
    }
}

/* Parses a NULL-terminated list of arguments. */
static enum pr_config_result parse_list(struct pr_config *cfg, char *err, size_t errlen,
                                        const char *const *args)
{
    char *argv[32];
    int argc = 0;
    while (args[argc] != NULL && argc < 31) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    return pr_config_parse(cfg, argc, argv, err, errlen);
}

static enum pr_config_result rparse_list(struct pr_register_config *cfg, char *err, size_t errlen,
                                         const char *const *args)
{
    char *argv[32];
    int argc = 0;
    while (args[argc] != NULL && argc < 31) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    return pr_register_config_parse(cfg, argc, argv, err, errlen);
}

TestSuite(config, .init = clear_env);

Test(config, defaults_match_spec)
{
    struct pr_config c;
    char err[256];
    cr_assert_eq(pr_config_parse(&c, 0, NULL, err, sizeof(err)), PR_CONFIG_OK, "%s", err);
    cr_expect_str_eq(c.listen.host, "0.0.0.0");
    cr_expect_eq(c.listen.port, 3001);
    cr_expect_str_eq(c.admin_listen.host, "0.0.0.0");
    cr_expect_eq(c.admin_listen.port, 3002);
    cr_expect_str_eq(c.store, "memory");
    cr_expect_str_eq(c.key_prefix, "podrouter:");
    cr_expect_eq(c.pod_ttl_ms, 15000);
    cr_expect_eq(c.room_ttl_ms, 24ull * 3600 * 1000);
    cr_expect_eq(c.participant_ttl_ms, 24ull * 3600 * 1000);
    cr_expect_eq(c.sid_ttl_ms, 120000);
    cr_expect_eq(c.balance_factor, 1.25);
    cr_expect_str_eq(c.room_param, "roomId");
    cr_expect_str_eq(c.participant_param, "participantId");
    cr_expect_str_eq(c.cookie_name, "pr_affinity");
    cr_expect_str_eq(c.cookie_secret_file, "");
    cr_expect_str_eq(c.token_file, "");
    cr_expect_eq(c.connect_timeout_ms, 3000);
    cr_expect_eq(c.header_timeout_ms, 10000);
    cr_expect_eq(c.idle_timeout_ms, 75000);
    cr_expect_eq(c.drain_timeout_ms, 30000);
    cr_expect_eq(c.max_connections, 100000);
    cr_expect_eq(c.max_header_bytes, 16384);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_eq(c.threads, (uint32_t)(ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu));
    cr_expect_eq(c.log_level, PR_LOG_INFO);
    cr_expect_eq(c.log_format, PR_LOG_JSON);
    cr_expect_eq(c.access_log, true);
    cr_expect_eq(c.send_timeout_ms, 30000);
    cr_expect_eq(c.ntrusted, 6);
    cr_expect_eq(c.key_rate, 50.0);
    cr_expect_eq(c.key_burst, 500);
    cr_expect_eq(c.max_assignments, 1000000);
    cr_expect_eq(c.room_active_ms, 120000);
    cr_expect_eq(c.placement, PR_PLACEMENT_LEAST_LOADED);
    cr_expect_eq(c.pack_utilization, 0.75);
    cr_expect_eq(c.min_replicas, 3);
    cr_expect_eq(c.max_replicas, 12);
    cr_expect_eq(c.headroom_pods, 1);
    cr_expect_eq(c.pod_fall, 2);
    cr_expect_eq(c.pod_check_interval_ms, 1000);

    struct pr_config d;
    pr_config_defaults(&d);
    cr_expect_eq(memcmp(&c, &d, sizeof(c)), 0, "parse with no flags == defaults");
}

enum ftype { T_STR, T_U64, T_U32, T_DBL, T_LISTEN, T_INT, T_BOOL };

struct flag_row {
    const char *flag; /* without dashes */
    const char *value;
    enum ftype t;
    size_t off;
    const char *exp_s; /* T_STR, T_LISTEN host */
    uint64_t exp_u;    /* T_U64, T_U32, T_INT, T_BOOL, T_LISTEN port */
    double exp_d;
};

#define OFF(f) offsetof(struct pr_config, f)

static const struct flag_row serve_rows[] = {
    {"listen", "127.0.0.1:8080", T_LISTEN, OFF(listen), "127.0.0.1", 8080, 0},
    {"listen", "[::]:3001", T_LISTEN, OFF(listen), "::", 3001, 0},
    {"admin-listen", "[::1]:3002", T_LISTEN, OFF(admin_listen), "::1", 3002, 0},
    {"admin-listen", "localhost:9000", T_LISTEN, OFF(admin_listen), "localhost", 9000, 0},
    {"store", "redis://:s3cret@redis.default.svc:6379/2", T_STR, OFF(store),
     "redis://:s3cret@redis.default.svc:6379/2", 0, 0},
    {"store", "redis-sentinel://s1:26379,s2:26379/mymaster", T_STR, OFF(store),
     "redis-sentinel://s1:26379,s2:26379/mymaster", 0, 0},
    {"key-prefix", "pr:", T_STR, OFF(key_prefix), "pr:", 0, 0},
    {"pod-ttl", "250ms", T_U64, OFF(pod_ttl_ms), NULL, 250, 0},
    {"pod-fall", "0", T_U32, OFF(pod_fall), NULL, 0, 0},
    {"pod-fall", "5", T_U32, OFF(pod_fall), NULL, 5, 0},
    {"pod-check-interval", "250ms", T_U64, OFF(pod_check_interval_ms), NULL, 250, 0},
    {"room-ttl", "2h", T_U64, OFF(room_ttl_ms), NULL, 7200000, 0},
    {"participant-ttl", "90m", T_U64, OFF(participant_ttl_ms), NULL, 5400000, 0},
    {"sid-ttl", "45s", T_U64, OFF(sid_ttl_ms), NULL, 45000, 0},
    {"balance-factor", "1.5", T_DBL, OFF(balance_factor), NULL, 0, 1.5},
    {"balance-factor", "10", T_DBL, OFF(balance_factor), NULL, 0, 10.0},
    {"room-param", "room", T_STR, OFF(room_param), "room", 0, 0},
    {"participant-param", "pid_2-x", T_STR, OFF(participant_param), "pid_2-x", 0, 0},
    {"cookie-name", "SRV", T_STR, OFF(cookie_name), "SRV", 0, 0},
    {"cookie-name", "", T_STR, OFF(cookie_name), "", 0, 0},
    {"cookie-secret-file", "/dev/null", T_STR, OFF(cookie_secret_file), "/dev/null", 0, 0},
    {"token-file", "/dev/null", T_STR, OFF(token_file), "/dev/null", 0, 0},
    {"connect-timeout", "500ms", T_U64, OFF(connect_timeout_ms), NULL, 500, 0},
    {"header-timeout", "1m", T_U64, OFF(header_timeout_ms), NULL, 60000, 0},
    {"idle-timeout", "10s", T_U64, OFF(idle_timeout_ms), NULL, 10000, 0},
    {"drain-timeout", "1h", T_U64, OFF(drain_timeout_ms), NULL, 3600000, 0},
    {"max-connections", "1", T_U32, OFF(max_connections), NULL, 1, 0},
    {"max-connections", "10000000", T_U32, OFF(max_connections), NULL, 10000000, 0},
    {"max-header-bytes", "1024", T_U32, OFF(max_header_bytes), NULL, 1024, 0},
    {"max-header-bytes", "1048576", T_U32, OFF(max_header_bytes), NULL, 1048576, 0},
    {"threads", "1", T_U32, OFF(threads), NULL, 1, 0},
    {"threads", "64", T_U32, OFF(threads), NULL, 64, 0},
    {"log-level", "debug", T_INT, OFF(log_level), NULL, PR_LOG_DEBUG, 0},
    {"log-level", "warn", T_INT, OFF(log_level), NULL, PR_LOG_WARN, 0},
    {"log-level", "error", T_INT, OFF(log_level), NULL, PR_LOG_ERROR, 0},
    {"log-format", "text", T_INT, OFF(log_format), NULL, PR_LOG_TEXT, 0},
    {"access-log", "false", T_BOOL, OFF(access_log), NULL, 0, 0},
    {"access-log", "true", T_BOOL, OFF(access_log), NULL, 1, 0},
};

/* Checks the field named by row r in cfg against the row's expectation. */
static void check_row(const void *cfg, const struct flag_row *r, const char *mode)
{
    const char *f = (const char *)cfg + r->off;
    switch (r->t) {
    case T_STR:
        cr_expect_str_eq(f, r->exp_s, "%s --%s %s", mode, r->flag, r->value);
        break;
    case T_U64: {
        uint64_t v;
        memcpy(&v, f, sizeof(v));
        cr_expect_eq(v, r->exp_u, "%s --%s %s: %llu", mode, r->flag, r->value,
                     (unsigned long long)v);
        break;
    }
    case T_U32: {
        uint32_t v;
        memcpy(&v, f, sizeof(v));
        cr_expect_eq(v, r->exp_u, "%s --%s %s: %u", mode, r->flag, r->value, v);
        break;
    }
    case T_DBL: {
        double v;
        memcpy(&v, f, sizeof(v));
        cr_expect_eq(v, r->exp_d, "%s --%s %s: %g", mode, r->flag, r->value, v);
        break;
    }
    case T_LISTEN: {
        struct pr_listen_addr a;
        memcpy(&a, f, sizeof(a));
        cr_expect_str_eq(a.host, r->exp_s, "%s --%s %s", mode, r->flag, r->value);
        cr_expect_eq(a.port, r->exp_u, "%s --%s %s", mode, r->flag, r->value);
        break;
    }
    case T_INT: {
        int v;
        memcpy(&v, f, sizeof(v));
        cr_expect_eq((uint64_t)v, r->exp_u, "%s --%s %s", mode, r->flag, r->value);
        break;
    }
    case T_BOOL: {
        bool v;
        memcpy(&v, f, sizeof(v));
        cr_expect_eq(v, r->exp_u != 0, "%s --%s %s", mode, r->flag, r->value);
        break;
    }
    }
}

/* POD_ROUTER_<FLAG> for a flag name. */
static void env_of(const char *flag, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "POD_ROUTER_");
    for (; *flag && n + 1 < len; flag++)
        out[n++] = *flag == '-' ? '_' : (char)(*flag >= 'a' && *flag <= 'z' ? *flag - 32 : *flag);
    out[n] = '\0';
}

Test(config, every_flag_from_argv_both_forms_and_env)
{
    for (size_t i = 0; i < sizeof(serve_rows) / sizeof(serve_rows[0]); i++) {
        const struct flag_row *r = &serve_rows[i];
        struct pr_config c;
        char err[512], a0[128], a1[1100], env[96];

        /* --flag value */
        snprintf(a0, sizeof(a0), "--%s", r->flag);
        const char *sep[] = {a0, r->value, NULL};
        cr_expect_eq(parse_list(&c, err, sizeof(err), sep), PR_CONFIG_OK, "--%s %s: %s", r->flag,
                     r->value, err);
        check_row(&c, r, "argv");

        /* --flag=value */
        snprintf(a1, sizeof(a1), "--%s=%s", r->flag, r->value);
        const char *eq[] = {a1, NULL};
        cr_expect_eq(parse_list(&c, err, sizeof(err), eq), PR_CONFIG_OK, "%s: %s", a1, err);
        check_row(&c, r, "argv=");

        /* POD_ROUTER_FLAG=value */
        env_of(r->flag, env, sizeof(env));
        setenv(env, r->value, 1);
        const char *none[] = {NULL};
        cr_expect_eq(parse_list(&c, err, sizeof(err), none), PR_CONFIG_OK, "%s=%s: %s", env,
                     r->value, err);
        check_row(&c, r, "env");
        unsetenv(env);
    }
}

Test(config, flag_beats_env)
{
    struct pr_config c;
    char err[256];
    setenv("POD_ROUTER_POD_TTL", "1m", 1);
    setenv("POD_ROUTER_LOG_LEVEL", "debug", 1);
    setenv("POD_ROUTER_THREADS", "not-a-number", 1); /* invalid, but the flag wins */
    setenv("POD_ROUTER_STORE", "redis://r:6379", 1);
    const char *args[] = {"--pod-ttl", "5s", "--threads=3", NULL};
    cr_assert_eq(parse_list(&c, err, sizeof(err), args), PR_CONFIG_OK, "%s", err);
    cr_expect_eq(c.pod_ttl_ms, 5000);
    cr_expect_eq(c.threads, 3);
    cr_expect_eq(c.log_level, PR_LOG_DEBUG, "env applies when no flag");
    cr_expect_str_eq(c.store, "redis://r:6379");
}

Test(config, bad_env_names_flag_and_variable)
{
    struct pr_config c;
    char err[256];
    setenv("POD_ROUTER_SID_TTL", "forever", 1);
    const char *none[] = {NULL};
    cr_assert_eq(parse_list(&c, err, sizeof(err), none), PR_CONFIG_ERROR);
    cr_expect(strstr(err, "--sid-ttl") != NULL, "%s", err);
    cr_expect(strstr(err, "POD_ROUTER_SID_TTL") != NULL, "%s", err);
    cr_expect(strstr(err, "\"forever\"") != NULL, "%s", err);
}

Test(config, last_flag_wins)
{
    struct pr_config c;
    char err[256];
    const char *args[] = {"--sid-ttl", "1s", "--sid-ttl=2s", NULL};
    cr_assert_eq(parse_list(&c, err, sizeof(err), args), PR_CONFIG_OK, "%s", err);
    cr_expect_eq(c.sid_ttl_ms, 2000);
}

Test(config, access_log_bare_flag_means_true)
{
    struct pr_config c;
    char err[256];
    setenv("POD_ROUTER_ACCESS_LOG", "false", 1);
    const char *args[] = {"--access-log", "--threads", "2", NULL};
    cr_assert_eq(parse_list(&c, err, sizeof(err), args), PR_CONFIG_OK, "%s", err);
    cr_expect_eq(c.access_log, true);
    cr_expect_eq(c.threads, 2);
}

struct dur_row {
    const char *in;
    int rc;
    uint64_t ms;
};

static const struct dur_row dur_rows[] = {
    {"250ms", 0, 250},
    {"1ms", 0, 1},
    {"15s", 0, 15000},
    {"2m", 0, 120000},
    {"24h", 0, 86400000},
    {"7", 0, 7000}, /* bare number = seconds */
    {"0s", 0, 0},   /* parses; the config rejects it as <= 0 */
    {"1.5s", 0, 1500},
    {"0.25m", 0, 15000},
    {".5s", 0, 500},
    {"1.5ms", -EINVAL, 0},
    {"1.s", -EINVAL, 0},
    {"", -EINVAL, 0},
    {"abc", -EINVAL, 0},
    {"s", -EINVAL, 0},
    {"ms", -EINVAL, 0},
    {"-1s", -EINVAL, 0},
    {"+1s", -EINVAL, 0},
    {"1x", -EINVAL, 0},
    {"1d", -EINVAL, 0},
    {"1 s", -EINVAL, 0},
    {" 1s", -EINVAL, 0},
    {"1s ", -EINVAL, 0},
    {"1sec", -EINVAL, 0},
    {"1S", -EINVAL, 0},
    {"1h30m", -EINVAL, 0},
    {"99999999999999999999s", -EINVAL, 0},
    {"18446744073709551615h", -EINVAL, 0},
};

Test(config, durations)
{
    for (size_t i = 0; i < sizeof(dur_rows) / sizeof(dur_rows[0]); i++) {
        uint64_t ms = 12345;
        int rc = pr_parse_duration(dur_rows[i].in, &ms);
        cr_expect_eq(rc, dur_rows[i].rc, "\"%s\": rc %d", dur_rows[i].in, rc);
        if (dur_rows[i].rc == 0)
            cr_expect_eq(ms, dur_rows[i].ms, "\"%s\": %llu", dur_rows[i].in,
                         (unsigned long long)ms);
    }
    uint64_t ms;
    cr_expect_eq(pr_parse_duration(NULL, &ms), -EINVAL);
}

struct listen_row {
    const char *in;
    int rc;
    const char *host;
    uint16_t port;
};

static const struct listen_row listen_rows[] = {
    {"0.0.0.0:3001", 0, "0.0.0.0", 3001},
    {"127.0.0.1:1", 0, "127.0.0.1", 1},
    {"10.1.2.3:65535", 0, "10.1.2.3", 65535},
    {"[::]:3001", 0, "::", 3001},
    {"[::1]:3002", 0, "::1", 3002},
    {"[fe80::1:2]:80", 0, "fe80::1:2", 80},
    {"localhost:3001", 0, "localhost", 3001},
    {":8080", 0, "0.0.0.0", 8080},
    {"127.0.0.1:0", -EINVAL, NULL, 0},
    {"127.0.0.1:65536", -EINVAL, NULL, 0},
    {"127.0.0.1:", -EINVAL, NULL, 0},
    {"127.0.0.1", -EINVAL, NULL, 0},
    {"127.0.0.1:80x", -EINVAL, NULL, 0},
    {"127.0.0.1:-1", -EINVAL, NULL, 0},
    {"127.0.0.1:+80", -EINVAL, NULL, 0},
    {"256.0.0.1:80", -EINVAL, NULL, 0},
    {"::1:3001", -EINVAL, NULL, 0},
    {"[::1]3001", -EINVAL, NULL, 0},
    {"[::1]", -EINVAL, NULL, 0},
    {"[]:80", -EINVAL, NULL, 0},
    {"[1.2.3.4]:80", -EINVAL, NULL, 0},
    {"example.com:80", -EINVAL, NULL, 0},
    {"", -EINVAL, NULL, 0},
    {":", -EINVAL, NULL, 0},
};

Test(config, listen_addresses)
{
    for (size_t i = 0; i < sizeof(listen_rows) / sizeof(listen_rows[0]); i++) {
        const struct listen_row *r = &listen_rows[i];
        struct pr_listen_addr a = {"unchanged", 7};
        int rc = pr_parse_listen(r->in, &a);
        cr_expect_eq(rc, r->rc, "\"%s\": rc %d", r->in, rc);
        if (r->rc == 0) {
            cr_expect_str_eq(a.host, r->host, "\"%s\"", r->in);
            cr_expect_eq(a.port, r->port, "\"%s\"", r->in);
        } else {
            cr_expect_str_eq(a.host, "unchanged", "\"%s\" must not touch out on error", r->in);
        }
    }
}

struct bad_row {
    const char *args[6];
    const char *must_contain[3];
};

static const struct bad_row bad_rows[] = {
    {{"--listen", "1.2.3.4:0"}, {"--listen", "\"1.2.3.4:0\""}},
    {{"--listen", "nohost"}, {"--listen"}},
    {{"--admin-listen", "[::1]"}, {"--admin-listen"}},
    {{"--store", "postgres://x"}, {"--store", "unsupported"}},
    {{"--store", "redis://"}, {"--store"}},
    {{"--store", "redis://host:0"}, {"--store"}},
    {{"--store", "redis://host:6379/x"}, {"--store", "database"}},
    {{"--store", "redis://:@host"}, {"--store"}},
    {{"--store", "redis://ho st"}, {"--store"}},
    {{"--store", "redis-sentinel://s1:26379"}, {"--store", "master"}},
    {{"--store", "redis-sentinel://s1/m"}, {"--store"}},
    {{"--store", "redis-sentinel://s1:1,/m"}, {"--store"}},
    {{"--store", "rediss://h"}, {"--store"}},
    {{"--store", ""}, {"--store"}},
    {{"--key-prefix", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                      "aaaaaaaaaaaaaaaaa"
                      "aaaaaaaa"},
     {"--key-prefix", "at most 100"}},
    {{"--key-prefix", "a b"}, {"--key-prefix"}},
    {{"--pod-ttl", "abc"}, {"--pod-ttl: invalid duration \"abc\" (use e.g. 250ms, 15s, 2m, 24h)"}},
    {{"--pod-ttl", "0s"}, {"--pod-ttl", "greater than 0"}},
    {{"--room-ttl", "10000h"}, {"--room-ttl", "too long"}},
    {{"--participant-ttl", "-5s"}, {"--participant-ttl", "invalid duration"}},
    {{"--sid-ttl", "0"}, {"--sid-ttl", "greater than 0"}},
    {{"--balance-factor", "1.0"}, {"--balance-factor"}},
    {{"--balance-factor", "0.5"}, {"--balance-factor"}},
    {{"--balance-factor", "10.01"}, {"--balance-factor"}},
    {{"--balance-factor", "nan"}, {"--balance-factor"}},
    {{"--balance-factor", "inf"}, {"--balance-factor"}},
    {{"--balance-factor", "1.5x"}, {"--balance-factor"}},
    {{"--balance-factor", ""}, {"--balance-factor"}},
    {{"--room-param", ""}, {"--room-param", "1..63"}},
    {{"--room-param", "room id"}, {"--room-param"}},
    {{"--room-param", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
     {"--room-param"}},
    {{"--participant-param", "p.id"}, {"--participant-param"}},
    {{"--cookie-name", "a=b"}, {"--cookie-name"}},
    {{"--cookie-name", "a;b"}, {"--cookie-name"}},
    {{"--cookie-secret-file", "/nonexistent/secret"}, {"--cookie-secret-file", "cannot read"}},
    {{"--token-file", "/nonexistent/token"}, {"--token-file", "cannot read"}},
    {{"--connect-timeout", "0ms"}, {"--connect-timeout"}},
    {{"--header-timeout", "10"
                          "q"},
     {"--header-timeout"}},
    {{"--idle-timeout", "0h"}, {"--idle-timeout"}},
    {{"--drain-timeout", "x"}, {"--drain-timeout"}},
    {{"--max-connections", "0"}, {"--max-connections", "1 to 10000000"}},
    {{"--max-connections", "10000001"}, {"--max-connections"}},
    {{"--max-connections", "-1"}, {"--max-connections"}},
    {{"--max-header-bytes", "1023"}, {"--max-header-bytes", "1024 to 1048576"}},
    {{"--max-header-bytes", "1048577"}, {"--max-header-bytes"}},
    {{"--max-header-bytes", "16k"}, {"--max-header-bytes"}},
    {{"--threads", "0"}, {"--threads", "1 to 64"}},
    {{"--threads", "65"}, {"--threads"}},
    {{"--threads", "99999999999999999999999"}, {"--threads"}},
    {{"--log-level", "verbose"}, {"--log-level", "debug, info, warn or error"}},
    {{"--log-level", "INFO"}, {"--log-level"}},
    {{"--log-format", "xml"}, {"--log-format", "json or text"}},
    {{"--access-log=maybe"}, {"--access-log", "true or false"}},
    {{"--bogus", "1"}, {"--bogus", "unknown flag"}},
    {{"--bogus=1"}, {"--bogus", "unknown flag"}},
    {{"--pod-ttl"}, {"--pod-ttl", "missing value"}},
    {{"--pod-ttl", "--sid-ttl", "1s"}, {"--pod-ttl", "missing value"}},
    {{"stray"}, {"unexpected argument \"stray\""}},
    {{"-x"}, {"unexpected argument"}},
    {{"--"}, {"unexpected argument"}},
};

Test(config, bad_values_name_the_flag)
{
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        const struct bad_row *r = &bad_rows[i];
        struct pr_config c;
        char err[512] = "untouched";
        enum pr_config_result rc = parse_list(&c, err, sizeof(err), r->args);
        cr_expect_eq(rc, PR_CONFIG_ERROR, "%s %s -> %d", r->args[0], r->args[1] ? r->args[1] : "",
                     rc);
        cr_expect(strchr(err, '\n') == NULL, "one line: %s", err);
        for (size_t k = 0; k < 3 && r->must_contain[k]; k++)
            cr_expect(strstr(err, r->must_contain[k]) != NULL, "%s %s: err \"%s\" lacks \"%s\"",
                      r->args[0], r->args[1] ? r->args[1] : "", err, r->must_contain[k]);
    }
}

Test(config, store_errors_never_show_the_password)
{
    struct pr_config c;
    char err[512];
    const char *args[] = {"--store", "redis://:hunter2@redis:99999", NULL};
    cr_assert_eq(parse_list(&c, err, sizeof(err), args), PR_CONFIG_ERROR);
    cr_expect(strstr(err, "hunter2") == NULL, "%s", err);
    cr_expect(strstr(err, "redis://***@redis:99999") != NULL, "%s", err);
}

Test(config, error_buffer_small_or_null)
{
    struct pr_config c;
    char err[8];
    const char *args[] = {"--pod-ttl", "abc", NULL};
    cr_expect_eq(parse_list(&c, err, sizeof(err), args), PR_CONFIG_ERROR);
    cr_expect_eq(strlen(err), 7);
    cr_expect_eq(parse_list(&c, NULL, 0, args), PR_CONFIG_ERROR);
}

Test(config, help)
{
    struct pr_config c;
    char err[256];
    const char *h1[] = {"--help", NULL};
    const char *h2[] = {"--threads", "2", "-h", NULL};
    cr_expect_eq(parse_list(&c, err, sizeof(err), h1), PR_CONFIG_HELP);
    cr_expect_eq(parse_list(&c, err, sizeof(err), h2), PR_CONFIG_HELP);
    struct pr_register_config r;
    cr_expect_eq(rparse_list(&r, err, sizeof(err), h1), PR_CONFIG_HELP);
}

Test(config, usage_lists_every_flag_default_and_env)
{
    static const char *const serve[][3] = {
        {"--listen", "POD_ROUTER_LISTEN", "0.0.0.0:3001"},
        {"--admin-listen", "POD_ROUTER_ADMIN_LISTEN", "0.0.0.0:3002"},
        {"--store", "POD_ROUTER_STORE", "default memory"},
        {"--key-prefix", "POD_ROUTER_KEY_PREFIX", "podrouter:"},
        {"--pod-ttl", "POD_ROUTER_POD_TTL", "default 15s"},
        {"--room-ttl", "POD_ROUTER_ROOM_TTL", "default 24h"},
        {"--participant-ttl", "POD_ROUTER_PARTICIPANT_TTL", "default 24h"},
        {"--sid-ttl", "POD_ROUTER_SID_TTL", "default 2m"},
        {"--balance-factor", "POD_ROUTER_BALANCE_FACTOR", "default 1.25"},
        {"--room-param", "POD_ROUTER_ROOM_PARAM", "default roomId"},
        {"--participant-param", "POD_ROUTER_PARTICIPANT_PARAM", "default participantId"},
        {"--cookie-name", "POD_ROUTER_COOKIE_NAME", "default pr_affinity"},
        {"--cookie-secret-file", "POD_ROUTER_COOKIE_SECRET_FILE", "FILE"},
        {"--token-file", "POD_ROUTER_TOKEN_FILE", "FILE"},
        {"--connect-timeout", "POD_ROUTER_CONNECT_TIMEOUT", "default 3s"},
        {"--header-timeout", "POD_ROUTER_HEADER_TIMEOUT", "default 10s"},
        {"--idle-timeout", "POD_ROUTER_IDLE_TIMEOUT", "default 75s"},
        {"--drain-timeout", "POD_ROUTER_DRAIN_TIMEOUT", "default 30s"},
        {"--max-connections", "POD_ROUTER_MAX_CONNECTIONS", "default 100000"},
        {"--max-header-bytes", "POD_ROUTER_MAX_HEADER_BYTES", "default 16384"},
        {"--threads", "POD_ROUTER_THREADS", "CPUs"},
        {"--log-level", "POD_ROUTER_LOG_LEVEL", "default info"},
        {"--log-format", "POD_ROUTER_LOG_FORMAT", "default json"},
        {"--access-log", "POD_ROUTER_ACCESS_LOG", "default true"},
        {"--help", "Usage:", "register"},
    };
    const char *u = pr_config_usage();
    for (size_t i = 0; i < sizeof(serve) / sizeof(serve[0]); i++)
        for (size_t k = 0; k < 3; k++)
            cr_expect(strstr(u, serve[i][k]) != NULL, "serve usage lacks %s", serve[i][k]);

    static const char *const reg[] = {
        "--admin-url",
        "POD_ROUTER_ADMIN_URL",
        "--name",
        "POD_ROUTER_NAME",
        "--address",
        "POD_ROUTER_ADDRESS",
        "--capacity-rooms",
        "default 20",
        "--capacity-participants",
        "default 80",
        "--zone",
        "POD_ROUTER_ZONE",
        "--interval",
        "default 5s",
        "--token-file",
        "--drain-grace",
        "default 30s",
        "POD_ROUTER_DRAIN_GRACE",
        "required",
        "--log-level",
        "--log-format",
    };
    const char *ru = pr_register_usage();
    for (size_t i = 0; i < sizeof(reg) / sizeof(reg[0]); i++)
        cr_expect(strstr(ru, reg[i]) != NULL, "register usage lacks %s", reg[i]);
}

/* ---- register ------------------------------------------------------------------------ */

Test(config, register_defaults_and_full)
{
    struct pr_register_config r;
    char err[256];
    pr_register_config_defaults(&r);
    cr_expect_str_eq(r.admin_url, "");
    cr_expect_eq(r.capacity_rooms, 20);
    cr_expect_eq(r.capacity_participants, 80);
    cr_expect_eq(r.interval_ms, 5000);
    cr_expect_eq(r.drain_grace_ms, 30000);
    cr_expect_str_eq(r.zone, "");
    cr_expect_str_eq(r.health_url, "");
    cr_expect_eq(r.log_level, PR_LOG_INFO);
    cr_expect_eq(r.log_format, PR_LOG_JSON);

    const char *args[] = {"--admin-url",
                          "http://pod-router-admin:3002",
                          "--name",
                          "backend-1",
                          "--address=10.0.0.7:3000",
                          "--capacity-rooms",
                          "5",
                          "--capacity-participants=40",
                          "--zone",
                          "nyc1-a",
                          "--interval",
                          "2s",
                          "--token-file",
                          "/dev/null",
                          "--drain-grace",
                          "0s",
                          "--health-url",
                          "http://127.0.0.1:3000/health",
                          "--log-level",
                          "warn",
                          "--log-format",
                          "text",
                          NULL};
    cr_assert_eq(rparse_list(&r, err, sizeof(err), args), PR_CONFIG_OK, "%s", err);
    cr_expect_str_eq(r.admin_url, "http://pod-router-admin:3002");
    cr_expect_str_eq(r.name, "backend-1");
    cr_expect_str_eq(r.address, "10.0.0.7:3000");
    cr_expect_eq(r.capacity_rooms, 5);
    cr_expect_eq(r.capacity_participants, 40);
    cr_expect_str_eq(r.zone, "nyc1-a");
    cr_expect_eq(r.interval_ms, 2000);
    cr_expect_str_eq(r.token_file, "/dev/null");
    cr_expect_eq(r.drain_grace_ms, 0);
    cr_expect_str_eq(r.health_url, "http://127.0.0.1:3000/health");
    cr_expect_eq(r.log_level, PR_LOG_WARN);
    cr_expect_eq(r.log_format, PR_LOG_TEXT);
}

Test(config, register_from_env_flag_wins)
{
    struct pr_register_config r;
    char err[256];
    setenv("POD_ROUTER_ADMIN_URL", "http://[::1]:3002/", 1);
    setenv("POD_ROUTER_NAME", "backend-0", 1);
    setenv("POD_ROUTER_ADDRESS", "[fd00::7]:3000", 1);
    setenv("POD_ROUTER_CAPACITY_ROOMS", "7", 1);
    setenv("POD_ROUTER_HEALTH_URL", "http://[::1]:3000/healthz", 1);
    const char *args[] = {"--name", "backend-9", NULL};
    cr_assert_eq(rparse_list(&r, err, sizeof(err), args), PR_CONFIG_OK, "%s", err);
    cr_expect_str_eq(r.health_url, "http://[::1]:3000/healthz");
    unsetenv("POD_ROUTER_HEALTH_URL");
    cr_expect_str_eq(r.admin_url, "http://[::1]:3002/");
    cr_expect_str_eq(r.name, "backend-9");
    cr_expect_str_eq(r.address, "[fd00::7]:3000");
    cr_expect_eq(r.capacity_rooms, 7);
}

static const struct bad_row register_bad_rows[] = {
    {{"--name", "backend-0", "--address", "1.2.3.4:3000"}, {"--admin-url", "required"}},
    {{"--admin-url", "http://a:1", "--address", "1.2.3.4:3000"}, {"--name", "required"}},
    {{"--admin-url", "http://a:1", "--name", "backend-0"}, {"--address", "required"}},
    {{"--admin-url", "https://a:1"}, {"--admin-url", "https"}},
    {{"--admin-url", "ftp://a"}, {"--admin-url"}},
    {{"--admin-url", "http://"}, {"--admin-url"}},
    {{"--admin-url", "http://a:99999"}, {"--admin-url"}},
    {{"--name", "Backend-0"}, {"--name"}},
    {{"--name", "-backend"}, {"--name"}},
    {{"--name", "backend-"}, {"--name"}},
    {{"--name", ""}, {"--name"}},
    {{"--name", "backend_0"}, {"--name"}},
    {{"--address", "10.0.0.7"}, {"--address"}},
    {{"--address", "10.0.0.7:0"}, {"--address"}},
    {{"--address", "[fd00::7]"}, {"--address"}},
    {{"--address", "my_host:3000"}, {"--address"}},
    {{"--capacity-rooms", "0"}, {"--capacity-rooms"}},
    {{"--capacity-participants", "0"}, {"--capacity-participants"}},
    {{"--capacity-participants", "x"}, {"--capacity-participants"}},
    {{"--interval", "0s"}, {"--interval"}},
    {{"--drain-grace", "soon"}, {"--drain-grace"}},
    {{"--zone", "a b"}, {"--zone"}},
    {{"--health-url", "https://127.0.0.1:3000/health"}, {"--health-url", "https"}},
    {{"--health-url", "127.0.0.1:3000/health"}, {"--health-url"}},
    {{"--health-url", "http://127.0.0.1:3000/health?x=1"}, {"--health-url", "query"}},
    {{"--health-url", "http://:3000/health"}, {"--health-url"}},
    {{"--listen", ":1"}, {"--listen", "unknown flag"}},
};

Test(config, register_bad_values)
{
    for (size_t i = 0; i < sizeof(register_bad_rows) / sizeof(register_bad_rows[0]); i++) {
        const struct bad_row *r = &register_bad_rows[i];
        struct pr_register_config c;
        char err[512] = "";
        cr_expect_eq(rparse_list(&c, err, sizeof(err), r->args), PR_CONFIG_ERROR, "%s %s",
                     r->args[0], r->args[1]);
        for (size_t k = 0; k < 3 && r->must_contain[k]; k++)
            cr_expect(strstr(err, r->must_contain[k]) != NULL, "%s %s: err \"%s\" lacks \"%s\"",
                      r->args[0], r->args[1], err, r->must_contain[k]);
    }
}

Test(config, trusted_proxies_match)
{
    struct pr_config c;
    char err[256];
    char *argv[] = {"--trusted-proxies", "10.0.0.0/8, 192.168.1.7,fd00::/8", NULL};
    cr_assert_eq(pr_config_parse(&c, 2, argv, err, sizeof(err)), PR_CONFIG_OK, "%s", err);
    cr_assert_eq(c.ntrusted, 3);
    uint8_t a[16] = {10, 200, 3, 4};
    cr_expect(pr_cidr_match(c.trusted, c.ntrusted, AF_INET, a));
    uint8_t b[16] = {192, 168, 1, 7};
    cr_expect(pr_cidr_match(c.trusted, c.ntrusted, AF_INET, b));
    b[3] = 8;
    cr_expect_not(pr_cidr_match(c.trusted, c.ntrusted, AF_INET, b));
    uint8_t v6[16] = {0xfd, 1};
    cr_expect(pr_cidr_match(c.trusted, c.ntrusted, AF_INET6, v6));
    v6[0] = 0xfe;
    cr_expect_not(pr_cidr_match(c.trusted, c.ntrusted, AF_INET6, v6));
    char *none[] = {"--trusted-proxies", "", NULL};
    cr_assert_eq(pr_config_parse(&c, 2, none, err, sizeof(err)), PR_CONFIG_OK, "%s", err);
    cr_expect_eq(c.ntrusted, 0);
    const char *bad[] = {"10.0.0.0/33", "::1/129", "1.2.3", "a.b.c.d/8", "10.0.0.0/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *av[] = {"--trusted-proxies", (char *)bad[i], NULL};
        cr_expect_eq(pr_config_parse(&c, 2, av, err, sizeof(err)), PR_CONFIG_ERROR, "%s", bad[i]);
        cr_expect(strstr(err, "--trusted-proxies") != NULL);
    }
}

Test(config, v11_flag_limits)
{
    struct pr_config c;
    char err[256];
    const char *bad[][2] = {{"--placement", "random"}, {"--pack-utilization", "0"},
                            {"--pack-utilization", "1.5"}, {"--key-rate", "-1"},
                            {"--key-burst", "0"},          {"--max-assignments", "0"},
                            {"--send-timeout", "0"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *av[] = {(char *)bad[i][0], (char *)bad[i][1], NULL};
        cr_expect_eq(pr_config_parse(&c, 2, av, err, sizeof(err)), PR_CONFIG_ERROR, "%s %s",
                     bad[i][0], bad[i][1]);
        cr_expect(strstr(err, bad[i][0]) != NULL, "%s", err);
    }
    char *ok[] = {"--placement", "pack", "--key-rate", "0", "--pack-utilization", "1", NULL};
    cr_assert_eq(pr_config_parse(&c, 6, ok, err, sizeof(err)), PR_CONFIG_OK, "%s", err);
    cr_expect_eq(c.placement, PR_PLACEMENT_PACK);
    cr_expect_eq(c.key_rate, 0.0);
    char *mm[] = {"--min-replicas", "5", "--max-replicas", "4", NULL};
    cr_expect_eq(pr_config_parse(&c, 4, mm, err, sizeof(err)), PR_CONFIG_ERROR);
}

/* Housekeeping follows --room-active: the default window keeps the 1-s tick, a short one
 * (a test, a simulation compressed in time) gets down to the 200-ms worker tick. */
Test(config, housekeeping_period_follows_room_active)
{
    struct pr_config c;
    pr_config_defaults(&c);
    cr_expect_eq(pr_config_housekeeping_ms(&c), 1000);
    const uint64_t rows[][2] = {{1, 200},         {1200, 200},      {24000, 200}, {36000, 300},
                                {60000, 500},     {119999, 999},    {120000, 1000},
                                {3600000, 1000},  {UINT64_MAX, 1000}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        c.room_active_ms = rows[i][0];
        cr_expect_eq(pr_config_housekeeping_ms(&c), rows[i][1], "room-active %llu ms",
                     (unsigned long long)rows[i][0]);
    }
}

/* The sidecar's --address and the router's PUT /v1/pods check are one function: every address
 * gets the same verdict from both (issue 12: "my_host:3000" used to pass the sidecar and get
 * 400 from the router). */
Test(config, register_address_agrees_with_router)
{
    static const struct {
        const char *address;
        bool ok;
    } rows[] = {
        {"10.0.0.7:3000", true},
        {"backend-0.backend.default.svc.cluster.local:3000", true},
        {"[fd00::7]:3000", true},
        {"localhost:65535", true},
        {"my_host:3000", false},      /* '_' is no host name character (RFC 1123) */
        {"10.0.0:3000", false},       /* digits and dots must be a dotted quad */
        {"999.1.1.1:3000", false},
        {"host-:3000", false},
        {"ho..st:3000", false},
        {"host:03000", false},        /* no leading zero in the port */
        {"host:65536", false},
        {"[fe80::1%eth0]:3000", false},
        {"h23456789012345678901234567890123456789012345678901234:1", false}, /* host > 53 */
        {"h2345678901234567890123456789012345678901234567890123:65535", true},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *a = rows[i].address;
        const char *args[] = {"--admin-url", "http://router:3002", "--name", "backend-0",
                              "--address", a, NULL};
        struct pr_register_config r;
        char err[512] = "";
        enum pr_config_result got = rparse_list(&r, err, sizeof(err), args);
        bool router = pr_pod_address_valid(a, strlen(a));
        cr_expect_eq(router, rows[i].ok, "router verdict on \"%s\"", a);
        cr_expect_eq(got == PR_CONFIG_OK, router, "sidecar and router disagree on \"%s\": %s", a,
                     err);
        if (!rows[i].ok)
            cr_expect(strstr(err, "--address") != NULL, "%s", err);
    }
}
