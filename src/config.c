/* Command line + POD_ROUTER_* environment -> struct pr_config / pr_register_config.
 *
 * Both subcommands share one table-driven engine: each flag names its type, its field and
 * its limits; defaults are applied by feeding each flag's default text through the same
 * parser, so the usage text and the real defaults cannot drift apart. */
#include "podrouter/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_values.h"
#include "podrouter/common.h"

#define ENV_PREFIX "POD_ROUTER_"
#define MAX_FLAGS 48
/* Durations above a year are certainly typos (and would overflow some store TTL APIs). */
#define DURATION_MAX_MS (8760ull * 3600 * 1000)
#define THREADS_MAX 64

enum flag_type {
    F_LISTEN,   /* struct pr_listen_addr */
    F_STRING,   /* char[size], optionally checked */
    F_DURATION, /* uint64_t ms, min..max */
    F_FACTOR,   /* double, (1.0, 10] */
    F_U32,      /* uint32_t, min..max */
    F_LEVEL,    /* enum pr_log_level */
    F_FORMAT,   /* enum pr_log_format */
    F_BOOL,     /* bool */
    F_CIDRS,    /* struct pr_cidr[] at offset, count in the uint32_t that follows it */
    F_RATE,     /* double, 0..1e6 */
    F_RATIO,    /* double, (0, 1] */
    F_U64,      /* uint64_t, min..max */
    F_PLACEMENT, /* enum pr_placement */
};

/* Extra validation of a string value: 0, or -EINVAL with the reason written to why. */
typedef int (*check_fn)(const char *v, char *why, size_t whylen);

struct flag {
    const char *name; /* without the leading dashes */
    enum flag_type type;
    size_t offset;
    size_t size;       /* F_STRING: buffer size including NUL */
    uint64_t min, max; /* F_U32, F_DURATION */
    check_fn check;    /* F_STRING, optional */
    bool required;     /* must be set by flag or env (register) */
    const char *def;   /* default as text (NULL: computed or empty) */
    const char *metavar;
    const char *help;
};

#define FIELD(st, f) offsetof(struct st, f), sizeof(((struct st *)0)->f)

static const struct flag serve_flags[] = {
    {"listen", F_LISTEN, FIELD(pr_config, listen), 0, 0, NULL, false, "0.0.0.0:3001", "HOST:PORT",
     "public listener (behind Traefik); [::]:3001 for IPv6"},
    {"admin-listen", F_LISTEN, FIELD(pr_config, admin_listen), 0, 0, NULL, false, "0.0.0.0:3002",
     "HOST:PORT", "admin listener: registry API, /metrics, health, status page"},
    {"store", F_STRING, FIELD(pr_config, store), 0, 0, pr__cfg_check_store, false, "memory", "URL",
     "memory, redis://[:pw@]host[:port][/db], redis-sentinel://h:p[,h:p...]/master"},
    {"key-prefix", F_STRING, FIELD(pr_config, key_prefix), 0, 0, pr__cfg_check_key_prefix, false,
     "podrouter:", "PREFIX", "prefix of every Redis key except room:{id}:pod (<= 100 bytes)"},
    {"pod-ttl", F_DURATION, FIELD(pr_config, pod_ttl_ms), 1, DURATION_MAX_MS, NULL, false, "15s",
     "DURATION", "a pod silent for this long is down"},
    {"pod-fall", F_U32, FIELD(pr_config, pod_fall), 0, 1000, NULL, false, "2", "N",
     "consecutive failed connects that mark a pod down on this replica (0 disables)"},
    {"pod-check-interval", F_DURATION, FIELD(pr_config, pod_check_interval_ms), 1,
     DURATION_MAX_MS, NULL, false, "1s", "DURATION",
     "how often a pod marked down by --pod-fall is probed with a TCP connect"},
    {"room-ttl", F_DURATION, FIELD(pr_config, room_ttl_ms), 1, DURATION_MAX_MS, NULL, false, "24h",
     "DURATION", "lifetime of a room assignment, renewed while used"},
    {"participant-ttl", F_DURATION, FIELD(pr_config, participant_ttl_ms), 1, DURATION_MAX_MS, NULL,
     false, "24h", "DURATION", "lifetime of a participant assignment, renewed while used"},
    {"sid-ttl", F_DURATION, FIELD(pr_config, sid_ttl_ms), 1, DURATION_MAX_MS, NULL, false, "2m",
     "DURATION", "lifetime of an Engine.IO session pin, renewed while used"},
    {"balance-factor", F_FACTOR, FIELD(pr_config, balance_factor), 0, 0, NULL, false, "1.25",
     "FACTOR", "load bound of the degraded-mode consistent hashing (> 1.0, <= 10)"},
    {"room-param", F_STRING, FIELD(pr_config, room_param), 0, 0, pr__cfg_check_param_name, false, "roomId",
     "NAME", "query parameter carrying the room id"},
    {"participant-param", F_STRING, FIELD(pr_config, participant_param), 0, 0, pr__cfg_check_param_name,
     false, "participantId", "NAME", "query parameter carrying the participant id"},
    {"cookie-name", F_STRING, FIELD(pr_config, cookie_name), 0, 0, pr__cfg_check_cookie_name, false,
     "pr_affinity", "NAME", "signed affinity cookie; empty disables it"},
    {"cookie-secret-file", F_STRING, FIELD(pr_config, cookie_secret_file), 0, 0,
     pr__cfg_check_readable_file, false, NULL, "FILE",
     "HMAC-SHA256 key file; none = random per-process key (warned)"},
    {"token-file", F_STRING, FIELD(pr_config, token_file), 0, 0, pr__cfg_check_readable_file, false, NULL,
     "FILE", "bearer token for admin writes; none = loopback-only writes"},
    {"connect-timeout", F_DURATION, FIELD(pr_config, connect_timeout_ms), 1, DURATION_MAX_MS, NULL,
     false, "3s", "DURATION", "upstream connect timeout"},
    {"header-timeout", F_DURATION, FIELD(pr_config, header_timeout_ms), 1, DURATION_MAX_MS, NULL,
     false, "10s", "DURATION", "time for a client to send complete request headers"},
    {"idle-timeout", F_DURATION, FIELD(pr_config, idle_timeout_ms), 1, DURATION_MAX_MS, NULL, false,
     "75s", "DURATION",
     "idle keep-alive and WebSocket tunnel timeout (keep above Socket.IO's 45s)"},
    {"drain-timeout", F_DURATION, FIELD(pr_config, drain_timeout_ms), 1, DURATION_MAX_MS, NULL,
     false, "30s", "DURATION", "on SIGTERM, how long open connections may finish"},
    {"max-connections", F_U32, FIELD(pr_config, max_connections), 1, 10000000, NULL, false,
     "100000", "N", "accepted client connections (1..10000000)"},
    {"max-header-bytes", F_U32, FIELD(pr_config, max_header_bytes), 1024, 1048576, NULL, false,
     "16384", "BYTES", "larger request heads get 431 (1024..1048576)"},
    {"threads", F_U32, FIELD(pr_config, threads), 1, THREADS_MAX, NULL, false, NULL, "N",
     "event-loop threads (1..64)"},
    {"log-level", F_LEVEL, FIELD(pr_config, log_level), 0, 0, NULL, false, "info", "LEVEL",
     "debug, info, warn or error"},
    {"log-format", F_FORMAT, FIELD(pr_config, log_format), 0, 0, NULL, false, "json", "FORMAT",
     "json (one object per line on stdout) or text"},
    {"access-log", F_BOOL, FIELD(pr_config, access_log), 0, 0, NULL, false, "true", "BOOL",
     "log one line per proxied request (true or false)"},
    {"io-uring", F_BOOL, FIELD(pr_config, io_uring), 0, 0, NULL, false, "true", "BOOL",
     "send the small writes of each loop iteration in one io_uring call, and read the "
     "readable connections in one more (false: one write or read each; where the kernel "
     "refuses io_uring it is off anyway)"},
    {"send-timeout", F_DURATION, FIELD(pr_config, send_timeout_ms), 1, DURATION_MAX_MS, NULL,
     false, "30s", "DURATION", "close a client or pod that accepts none of its queued bytes"},
    {"trusted-proxies", F_CIDRS, FIELD(pr_config, trusted), 0, 0, NULL, false,
     "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7", "CIDRS",
     "peers whose X-Forwarded-For is believed (\"\" trusts none)"},
    {"key-rate", F_RATE, FIELD(pr_config, key_rate), 0, 0, NULL, false, "50", "PER_SECOND",
     "new assignments one client address may create per second (0 disables)"},
    {"key-burst", F_U32, FIELD(pr_config, key_burst), 1, 10000000, NULL, false, "500", "N",
     "burst of new assignments per client address"},
    {"max-assignments", F_U64, FIELD(pr_config, max_assignments), 1, 1000000000, NULL, false,
     "1000000", "N", "stored assignments per kind; beyond it new keys are not stored"},
    {"room-active", F_DURATION, FIELD(pr_config, room_active_ms), 1, DURATION_MAX_MS, NULL,
     false, "2m", "DURATION", "a room is active while it saw traffic within this window"},
    {"placement", F_PLACEMENT, FIELD(pr_config, placement), 0, 0, NULL, false, "least-loaded",
     "POLICY", "least-loaded or pack (fill the lowest ordinals first)"},
    {"pack-utilization", F_RATIO, FIELD(pr_config, pack_utilization), 0, 0, NULL, false, "0.75",
     "RATIO", "load ratio up to which pack fills a pod (0 < r <= 1)"},
    {"min-replicas", F_U32, FIELD(pr_config, min_replicas), 0, 10000, NULL, false, "3", "N",
     "lower bound of the desired backend replicas"},
    {"max-replicas", F_U32, FIELD(pr_config, max_replicas), 1, 10000, NULL, false, "12", "N",
     "upper bound of the desired backend replicas"},
    {"headroom-pods", F_U32, FIELD(pr_config, headroom_pods), 0, 10000, NULL, false, "1", "N",
     "spare backend pods added to the desired replicas"},
};

static const struct flag register_flags[] = {
    {"admin-url", F_STRING, FIELD(pr_register_config, admin_url), 0, 0, pr__cfg_check_admin_url, true, NULL,
     "URL", "router admin listener, http://host:port"},
    {"name", F_STRING, FIELD(pr_register_config, name), 0, 0, pr__cfg_check_pod_name, true, NULL, "NAME",
     "pod name, e.g. backend-0"},
    {"address", F_STRING, FIELD(pr_register_config, address), 0, 0, pr__cfg_check_address, true, NULL,
     "HOST:PORT", "address the router connects to, e.g. 10.0.0.7:3000"},
    {"capacity-rooms", F_U32, FIELD(pr_register_config, capacity_rooms), 1, 1000000, NULL, false,
     "20", "N", "rooms this pod can hold (>= 1)"},
    {"capacity-participants", F_U32, FIELD(pr_register_config, capacity_participants), 1, 1000000,
     NULL, false, "80", "N", "participants this pod can hold (>= 1)"},
    {"zone", F_STRING, FIELD(pr_register_config, zone), 0, 0, pr__cfg_check_zone, false, NULL, "ZONE",
     "failure zone label, e.g. nyc1-a"},
    {"interval", F_DURATION, FIELD(pr_register_config, interval_ms), 1, DURATION_MAX_MS, NULL,
     false, "5s", "DURATION", "heartbeat interval"},
    {"token-file", F_STRING, FIELD(pr_register_config, token_file), 0, 0, pr__cfg_check_readable_file,
     false, NULL, "FILE", "bearer token for the admin API"},
    {"drain-grace", F_DURATION, FIELD(pr_register_config, drain_grace_ms), 0, DURATION_MAX_MS, NULL,
     false, "30s", "DURATION", "on SIGTERM, wait this long after drain before leaving"},
    {"health-url", F_STRING, FIELD(pr_register_config, health_url), 0, 0, pr__cfg_check_health_url, false,
     NULL, "URL",
     "backend health URL: heartbeat only while it answers 2xx (1s timeout)"},
    {"log-level", F_LEVEL, FIELD(pr_register_config, log_level), 0, 0, NULL, false, "info", "LEVEL",
     "debug, info, warn or error"},
    {"log-format", F_FORMAT, FIELD(pr_register_config, log_format), 0, 0, NULL, false, "json",
     "FORMAT", "json or text"},
};

#define NFLAGS(t) (sizeof(t) / sizeof((t)[0]))
_Static_assert(NFLAGS(serve_flags) <= MAX_FLAGS, "raise MAX_FLAGS");
_Static_assert(NFLAGS(register_flags) <= MAX_FLAGS, "raise MAX_FLAGS");

/* ---- engine -------------------------------------------------------------------------- */

/* Writes "POD_ROUTER_<NAME>" for a flag name into out. */
static void env_name(const char *flag, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "%s", ENV_PREFIX);
    for (const char *p = flag; *p && n + 1 < outlen; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n < outlen ? n : outlen - 1] = '\0';
}

/* Writes "--flag: " or "--flag (from POD_ROUTER_FLAG): " as the start of an error line. */
static void err_prefix(const struct flag *f, bool from_env, char *out, size_t outlen)
{
    if (from_env) {
        char env[96];
        env_name(f->name, env, sizeof(env));
        snprintf(out, outlen, "--%s (from %s)", f->name, env);
    } else {
        snprintf(out, outlen, "--%s", f->name);
    }
}

/* Parses a decimal unsigned integer without sign, spaces or junk. */
/* One flag type's parser: stores value into field, or returns -EINVAL with why written (sv is
 * the value as it may be shown in the message). */
typedef int (*set_fn)(const struct flag *f, char *field, const char *value, const char *sv,
                      char *why, size_t whylen);

static int set_listen(const struct flag *f, char *field, const char *value, const char *sv,
                      char *why, size_t whylen)
{
    (void)f;
    struct pr_listen_addr a;
    if (pr_parse_listen(value, &a) != 0) {
        snprintf(why, whylen,
                 "invalid address \"%s\" (use host:port, [v6]:port or :port with port "
                 "1-65535; host an IP or localhost)",
                 sv);
        return -EINVAL;
    }
    memcpy(field, &a, sizeof(a));
    return 0;
}

static int set_string(const struct flag *f, char *field, const char *value, const char *sv,
                      char *why, size_t whylen)
{
    size_t n = strlen(value);
    if (n >= f->size) {
        snprintf(why, whylen, "value too long (%zu bytes, at most %zu)", n, f->size - 1);
        return -EINVAL;
    }
    char reason[200];
    if (f->check != NULL && f->check(value, reason, sizeof(reason)) != 0) {
        snprintf(why, whylen, "invalid value \"%s\": %s", sv, reason);
        return -EINVAL;
    }
    memcpy(field, value, n + 1);
    return 0;
}

static int set_duration(const struct flag *f, char *field, const char *value, const char *sv,
                        char *why, size_t whylen)
{
    uint64_t ms;
    char lim[32];
    if (pr_parse_duration(value, &ms) != 0) {
        snprintf(why, whylen, "invalid duration \"%s\" (use e.g. 250ms, 15s, 2m, 24h)", sv);
    } else if (ms < f->min) {
        snprintf(why, whylen, "duration \"%s\" must be greater than 0", sv);
    } else if (ms > f->max) {
        pr__cfg_fmt_duration(f->max, lim, sizeof(lim));
        snprintf(why, whylen, "duration \"%s\" is too long (at most %s)", sv, lim);
    } else {
        memcpy(field, &ms, sizeof(ms));
        return 0;
    }
    return -EINVAL;
}

/* F_FACTOR (1.0, 10], F_RATE [0, 1e6], F_RATIO (0, 1]: a finite decimal number. */
static int set_double(const struct flag *f, char *field, const char *value, const char *sv,
                      char *why, size_t whylen)
{
    char *end = NULL;
    errno = 0;
    double d = value[0] ? strtod(value, &end) : NAN;
    bool ok = end != NULL && *end == '\0' && errno == 0 && isfinite(d);
    if (f->type == F_FACTOR)
        ok = ok && d > 1.0 && d <= 10.0;
    else if (f->type == F_RATE)
        ok = ok && d >= 0.0 && d <= 1e6;
    else
        ok = ok && d > 0.0 && d <= 1.0;
    if (!ok) {
        snprintf(why, whylen, "invalid %s \"%s\" (must be a number %s)",
                 f->type == F_FACTOR ? "factor" : "value", sv,
                 f->type == F_FACTOR ? "greater than 1.0 and at most 10"
                 : f->type == F_RATE ? "from 0 to 1000000"
                                     : "greater than 0 and at most 1");
        return -EINVAL;
    }
    memcpy(field, &d, sizeof(d));
    return 0;
}

/* F_U32 and F_U64 within min..max. */
static int set_integer(const struct flag *f, char *field, const char *value, const char *sv,
                       char *why, size_t whylen)
{
    uint64_t v;
    if (!pr__cfg_parse_u64(value, &v) || v < f->min || v > f->max) {
        snprintf(why, whylen, "invalid value \"%s\" (must be an integer from %llu to %llu)", sv,
                 (unsigned long long)f->min, (unsigned long long)f->max);
        return -EINVAL;
    }
    if (f->type == F_U32) {
        uint32_t u = (uint32_t)v;
        memcpy(field, &u, sizeof(u));
    } else {
        memcpy(field, &v, sizeof(v));
    }
    return 0;
}

/* Names of the enum flags in enum order, what they are called in messages, and the hint. */
struct enum_names {
    const char *const *names;
    const char *what, *hint;
};

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const formats[] = {"json", "text", NULL};
static const char *const placements[] = {"least-loaded", "pack", NULL};
static const struct enum_names enum_level = {levels, "log level", "debug, info, warn or error"};
static const struct enum_names enum_format = {formats, "log format", "json or text"};
static const struct enum_names enum_placement = {placements, "placement",
                                                 "least-loaded or pack"};

/* F_LEVEL, F_FORMAT, F_PLACEMENT: one of the names, stored as its index. */
static int set_enum(const struct flag *f, char *field, const char *value, const char *sv,
                    char *why, size_t whylen)
{
    const struct enum_names *e = f->type == F_LEVEL    ? &enum_level
                                 : f->type == F_FORMAT ? &enum_format
                                                       : &enum_placement;
    int v = -1;
    for (int i = 0; e->names[i]; i++)
        if (strcmp(value, e->names[i]) == 0)
            v = i;
    if (v < 0) {
        snprintf(why, whylen, "invalid %s \"%s\" (use %s)", e->what, sv, e->hint);
        return -EINVAL;
    }
    _Static_assert(sizeof(enum pr_log_level) == sizeof(int) &&
                       sizeof(enum pr_log_format) == sizeof(int) &&
                       sizeof(enum pr_placement) == sizeof(int),
                   "enum flags are stored as int");
    memcpy(field, &v, sizeof(v)); /* the enums are int-sized, in table order */
    return 0;
}

static int set_bool(const struct flag *f, char *field, const char *value, const char *sv,
                    char *why, size_t whylen)
{
    (void)f;
    bool b;
    if (!pr__cfg_parse_bool(value, &b)) {
        snprintf(why, whylen, "invalid boolean \"%s\" (use true or false)", sv);
        return -EINVAL;
    }
    memcpy(field, &b, sizeof(b));
    return 0;
}

/* The list goes to field, its length to the uint32_t right after it (f->size bytes on). */
static int set_cidrs(const struct flag *f, char *field, const char *value, const char *sv,
                     char *why, size_t whylen)
{
    uint32_t n = 0;
    struct pr_cidr tmp[PR_TRUSTED_MAX];
    memset(tmp, 0, sizeof(tmp));
    if (pr_parse_cidrs(value, tmp, PR_TRUSTED_MAX, &n) != 0) {
        snprintf(why, whylen,
                 "invalid list \"%s\" (use comma-separated IPs or CIDRs like 10.0.0.0/8,"
                 "::1/128; at most %d)",
                 sv, PR_TRUSTED_MAX);
        return -EINVAL;
    }
    memcpy(field, tmp, sizeof(tmp));
    memcpy(field + f->size, &n, sizeof(n));
    return 0;
}

static const set_fn setters[] = {
    [F_LISTEN] = set_listen,     [F_STRING] = set_string,  [F_DURATION] = set_duration,
    [F_FACTOR] = set_double,     [F_U32] = set_integer,    [F_LEVEL] = set_enum,
    [F_FORMAT] = set_enum,       [F_BOOL] = set_bool,      [F_CIDRS] = set_cidrs,
    [F_RATE] = set_double,       [F_RATIO] = set_double,   [F_U64] = set_integer,
    [F_PLACEMENT] = set_enum,
};

/* Validates value for flag f and stores it into base; on error writes one line to err. */
static int set_flag(const struct flag *f, void *base, const char *value, bool from_env, char *err,
                    size_t errlen)
{
    char who[128], sv[96], why[400];
    pr__cfg_shown(value, sv, sizeof(sv));
    if (f->check == pr__cfg_check_store)
        pr__cfg_redact_userinfo(value, sv, sizeof(sv));
    why[0] = '\0';
    if (setters[f->type](f, (char *)base + f->offset, value, sv, why, sizeof(why)) == 0)
        return 0;
    err_prefix(f, from_env, who, sizeof(who));
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", who, why);
    return -EINVAL;
}

/* Finds the flag named name[0..len) in the table. */
static const struct flag *find_flag(const struct flag *flags, size_t n, const char *name,
                                    size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
            return &flags[i];
    }
    return NULL;
}

/* Applies every flag's textual default (the same parser as user input). */
static void apply_defaults(const struct flag *flags, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        if (flags[i].def != NULL)
            set_flag(&flags[i], base, flags[i].def, false, NULL, 0);
        else if (flags[i].type == F_STRING)
            ((char *)base + flags[i].offset)[0] = '\0';
    }
}

/* Flags from argv, then POD_ROUTER_* for every flag argv did not set. */
static enum pr_config_result parse_generic(const struct flag *flags, size_t nflags, void *base,
                                           int argc, char **argv, char *err, size_t errlen)
{
    bool set[MAX_FLAGS] = {false};
    char sv[96];

    if (err == NULL)
        errlen = 0;
    else if (errlen > 0)
        err[0] = '\0';
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg == NULL)
            break;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return PR_CONFIG_HELP;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=') {
            snprintf(err, errlen,
                     "unexpected argument \"%s\" (flags look like --name value; see "
                     "--help)",
                     pr__cfg_shown(arg, sv, sizeof(sv)));
            return PR_CONFIG_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag *f = find_flag(flags, nflags, name, nlen);
        if (f == NULL) {
            char nm[96];
            snprintf(nm, sizeof(nm), "%.*s", (int)(nlen < 80 ? nlen : 80), name);
            snprintf(err, errlen, "--%s: unknown flag (see --help)", pr__cfg_shown(nm, sv, sizeof(sv)));
            return PR_CONFIG_ERROR;
        }
        const char *value;
        bool dummy;
        if (eq != NULL) {
            value = eq + 1;
        } else if (f->type == F_BOOL) {
            /* "--access-log" alone means true; "--access-log false" is also accepted. */
            if (i + 1 < argc && argv[i + 1] != NULL && pr__cfg_parse_bool(argv[i + 1], &dummy))
                value = argv[++i];
            else
                value = "true";
        } else if (i + 1 < argc && argv[i + 1] != NULL && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "--%s: missing value (use --%s %s or --%s=%s)", f->name, f->name,
                     f->metavar, f->name, f->metavar);
            return PR_CONFIG_ERROR;
        }
        if (set_flag(f, base, value, false, err, errlen) != 0)
            return PR_CONFIG_ERROR;
        set[f - flags] = true;
    }
    for (size_t i = 0; i < nflags; i++) {
        char env[96];
        env_name(flags[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (set[i] || v == NULL)
            continue;
        if (set_flag(&flags[i], base, v, true, err, errlen) != 0)
            return PR_CONFIG_ERROR;
        set[i] = true;
    }
    for (size_t i = 0; i < nflags; i++) {
        if (flags[i].required && ((char *)base + flags[i].offset)[0] == '\0') {
            char env[96];
            env_name(flags[i].name, env, sizeof(env));
            snprintf(err, errlen, "--%s: required (set --%s %s or %s)", flags[i].name,
                     flags[i].name, flags[i].metavar, env);
            return PR_CONFIG_ERROR;
        }
    }
    return PR_CONFIG_OK;
}

/* Number of online CPUs, clamped to 1..64. */
static uint32_t default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > THREADS_MAX ? THREADS_MAX : (uint32_t)n;
}

uint64_t pr_config_housekeeping_ms(const struct pr_config *cfg)
{
    uint64_t ms = cfg->room_active_ms / 120;
    if (ms < PR_HOUSEKEEPING_MIN_MS)
        return PR_HOUSEKEEPING_MIN_MS;
    return ms > PR_HOUSEKEEPING_MAX_MS ? PR_HOUSEKEEPING_MAX_MS : ms;
}

/* Fills cfg with the documented serve defaults. */
void pr_config_defaults(struct pr_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    apply_defaults(serve_flags, NFLAGS(serve_flags), cfg);
    cfg->threads = default_threads();
}

/* Resets cfg to defaults, then applies POD_ROUTER_* variables and argv (flags win). */
enum pr_config_result pr_config_parse(struct pr_config *cfg, int argc, char **argv, char *err,
                                      size_t errlen)
{
    pr_config_defaults(cfg);
    enum pr_config_result r =
        parse_generic(serve_flags, NFLAGS(serve_flags), cfg, argc, argv, err, errlen);
    if (r == PR_CONFIG_OK && cfg->min_replicas > cfg->max_replicas) {
        if (err && errlen)
            snprintf(err, errlen, "--min-replicas: %u is above --max-replicas %u",
                     cfg->min_replicas, cfg->max_replicas);
        return PR_CONFIG_ERROR;
    }
    return r;
}

/* Fills cfg with the documented register defaults (required fields empty). */
void pr_register_config_defaults(struct pr_register_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    apply_defaults(register_flags, NFLAGS(register_flags), cfg);
}

/* Like pr_config_parse for the register subcommand; --admin-url, --name, --address required. */
enum pr_config_result pr_register_config_parse(struct pr_register_config *cfg, int argc,
                                               char **argv, char *err, size_t errlen)
{
    pr_register_config_defaults(cfg);
    return parse_generic(register_flags, NFLAGS(register_flags), cfg, argc, argv, err, errlen);
}

/* ---- usage --------------------------------------------------------------------------- */

static char serve_usage_buf[16384];
static char register_usage_buf[4096];
static pthread_once_t usage_once = PTHREAD_ONCE_INIT;

/* Appends one flag's two usage lines (flag, help, default / env var). */
static size_t usage_flag(char *buf, size_t cap, size_t n, const struct flag *f)
{
    char left[64], env[96], def[96];
    snprintf(left, sizeof(left), "--%s %s", f->name, f->metavar);
    env_name(f->name, env, sizeof(env));
    if (f->required)
        snprintf(def, sizeof(def), "required");
    else if (f->def != NULL)
        snprintf(def, sizeof(def), "default %s", f->def[0] ? f->def : "\"\"");
    else if (f->type == F_U32)
        snprintf(def, sizeof(def), "default number of online CPUs (at most 64)");
    else
        snprintf(def, sizeof(def), "default none");
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "  %-32s %s\n  %-32s %s; env %s\n", left, f->help,
                              "", def, env);
    return n < cap ? n : cap;
}

/* Builds both usage texts from the flag tables, once. */
static void build_usage(void)
{
    size_t n = (size_t)snprintf(
        serve_usage_buf, sizeof(serve_usage_buf),
        "Usage: pod-router [serve] [flags]\n"
        "       pod-router register --admin-url URL --name NAME --address HOST:PORT [flags]\n"
        "       pod-router --version | --help\n\n"
        "Session-affinity router for Socket.IO pods.\n"
        "Flags take \"--flag value\" or \"--flag=value\". Every flag can also be set with the\n"
        "environment variable pr__cfg_shown; a flag beats its variable. Durations take ms, s, m or h.\n\n"
        "serve flags:\n");
    for (size_t i = 0; i < NFLAGS(serve_flags); i++)
        n = usage_flag(serve_usage_buf, sizeof(serve_usage_buf), n, &serve_flags[i]);
    if (n < sizeof(serve_usage_buf))
        snprintf(serve_usage_buf + n, sizeof(serve_usage_buf) - n, "  %-32s show this help\n",
                 "--help");

    n = (size_t)snprintf(register_usage_buf, sizeof(register_usage_buf),
                         "Usage: pod-router register --admin-url URL --name NAME --address "
                         "HOST:PORT [flags]\n\n"
                         "Registration sidecar: heartbeats PUT /v1/pods/{name} every interval; on "
                         "SIGTERM\nposts drain, waits --drain-grace, deletes the pod and exits 0.\n"
                         "Every flag can also be set with the environment variable pr__cfg_shown; a flag "
                         "beats\nits variable. Durations take ms, s, m or h.\n\n"
                         "register flags:\n");
    for (size_t i = 0; i < NFLAGS(register_flags); i++)
        n = usage_flag(register_usage_buf, sizeof(register_usage_buf), n, &register_flags[i]);
    if (n < sizeof(register_usage_buf))
        snprintf(register_usage_buf + n, sizeof(register_usage_buf) - n, "  %-32s show this help\n",
                 "--help");
}

/* Usage of `pod-router serve`: every flag with its default and environment variable. */
const char *pr_config_usage(void)
{
    pthread_once(&usage_once, build_usage);
    return serve_usage_buf;
}

/* Usage of `pod-router register`: every flag with its default and environment variable. */
const char *pr_register_usage(void)
{
    pthread_once(&usage_once, build_usage);
    return register_usage_buf;
}
