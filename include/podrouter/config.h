/* Command line + POD_ROUTER_* environment -> struct pr_config (SPEC 2). */
#ifndef PODROUTER_CONFIG_H
#define PODROUTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pr_log_level { PR_LOG_DEBUG = 0, PR_LOG_INFO, PR_LOG_WARN, PR_LOG_ERROR };
enum pr_log_format { PR_LOG_JSON = 0, PR_LOG_TEXT };

/* A listen address: host is an IPv4/IPv6 literal (brackets stripped) or "localhost". */
struct pr_listen_addr {
    char host[64];
    uint16_t port;
};

/* One --trusted-proxies entry: family AF_INET or AF_INET6, prefix length in bits. */
struct pr_cidr {
    uint8_t family;
    uint8_t prefix;
    uint8_t addr[16];
};
#define PR_TRUSTED_MAX 32

enum pr_placement { PR_PLACEMENT_LEAST_LOADED = 0, PR_PLACEMENT_PACK };

/* Read-only after boot. Durations are milliseconds. */
struct pr_config {
    struct pr_listen_addr listen;       /* --listen 0.0.0.0:3001 */
    struct pr_listen_addr admin_listen; /* --admin-listen 0.0.0.0:3002 */
    char store[1024];                   /* --store memory */
    char key_prefix[128];               /* --key-prefix podrouter: */
    uint64_t pod_ttl_ms;                /* --pod-ttl 15s */
    uint32_t pod_fall;                  /* --pod-fall 2 (0 disables passive detection) */
    uint64_t pod_check_interval_ms;     /* --pod-check-interval 1s */
    uint64_t room_ttl_ms;               /* --room-ttl 24h */
    uint64_t participant_ttl_ms;        /* --participant-ttl 24h */
    uint64_t sid_ttl_ms;                /* --sid-ttl 2m */
    double balance_factor;              /* --balance-factor 1.25 (> 1.0) */
    char room_param[64];                /* --room-param roomId */
    char participant_param[64];         /* --participant-param participantId */
    char cookie_name[64];               /* --cookie-name pr_affinity ("" disables) */
    char cookie_secret_file[1024];      /* --cookie-secret-file ("" = none) */
    char token_file[1024];              /* --token-file ("" = none) */
    uint64_t connect_timeout_ms;        /* --connect-timeout 3s */
    uint64_t header_timeout_ms;         /* --header-timeout 10s */
    uint64_t idle_timeout_ms;           /* --idle-timeout 75s */
    uint64_t drain_timeout_ms;          /* --drain-timeout 30s */
    uint32_t max_connections;           /* --max-connections 100000 */
    uint32_t max_header_bytes;          /* --max-header-bytes 16384 (1024..1048576) */
    uint32_t threads;                   /* --threads ncpu (1..64) */
    enum pr_log_level log_level;        /* --log-level info */
    enum pr_log_format log_format;      /* --log-format json */
    bool access_log;                    /* --access-log true|false (default true) */
    bool io_uring;                      /* --io-uring true|false (default true) */
    uint64_t send_timeout_ms;           /* --send-timeout 30s */
    struct pr_cidr trusted[PR_TRUSTED_MAX]; /* --trusted-proxies (SPEC 3.6) */
    uint32_t ntrusted;
    double key_rate;                    /* --key-rate 50 per second (0 disables) */
    uint32_t key_burst;                 /* --key-burst 500 */
    uint64_t max_assignments;           /* --max-assignments 1000000 per kind */
    uint64_t room_active_ms;            /* --room-active 2m */
    enum pr_placement placement;        /* --placement least-loaded */
    double pack_utilization;            /* --pack-utilization 0.75, (0, 1] */
    uint32_t min_replicas;              /* --min-replicas 3 */
    uint32_t max_replicas;              /* --max-replicas 12 */
    uint32_t headroom_pods;             /* --headroom-pods 1 */
};

/* Parses "a/n,b/m,..." (IPv4 or IPv6 literals, prefix optional) into out; 0 or -EINVAL. */
int pr_parse_cidrs(const char *s, struct pr_cidr *out, size_t max, uint32_t *n);
/* true when addr (4 or 16 bytes of family) lies inside one of the n entries. */
bool pr_cidr_match(const struct pr_cidr *list, uint32_t n, int family, const uint8_t *addr);

/* Registration sidecar settings (SPEC 8). */
struct pr_register_config {
    char admin_url[512];            /* --admin-url (required), http://host:port */
    char name[64];                  /* --name (required) */
    char address[64];               /* --address (required) host:port */
    uint32_t capacity_rooms;        /* --capacity-rooms 20 */
    uint32_t capacity_participants; /* --capacity-participants 80 */
    char zone[64];                  /* --zone "" */
    uint64_t interval_ms;           /* --interval 5s */
    char token_file[1024];          /* --token-file "" */
    uint64_t drain_grace_ms;        /* --drain-grace 30s */
    char health_url[512];           /* --health-url "" (off): register only while it answers 2xx */
    enum pr_log_level log_level;
    enum pr_log_format log_format;
};

enum pr_config_result {
    PR_CONFIG_OK = 0,
    PR_CONFIG_HELP = 1,   /* --help was given: usage printed to stdout by the caller */
    PR_CONFIG_ERROR = 2,  /* err holds one line naming the flag and the problem */
};

/* Fill cfg with defaults. */
void pr_config_defaults(struct pr_config *cfg);

/* Parse serve flags (argv[0] is the first flag, not the program) over defaults and
 * POD_ROUTER_* variables from getenv(); a flag beats its variable. Accepts
 * "--flag value" and "--flag=value". */
enum pr_config_result pr_config_parse(struct pr_config *cfg, int argc, char **argv, char *err,
                                      size_t errlen);

void pr_register_config_defaults(struct pr_register_config *cfg);
enum pr_config_result pr_register_config_parse(struct pr_register_config *cfg, int argc,
                                               char **argv, char *err, size_t errlen);

/* The period of worker 0's housekeeping (activity expiry and sharing, loads, desired
 * replicas, registry expiry, the Redis store's pod reload): --room-active / 120, between
 * 200 ms and 1 s. So the default 2m window keeps the 1-s tick, and a short window (a test,
 * a simulation compressed in time) sees a room end within the same share of its window. */
#define PR_HOUSEKEEPING_MIN_MS 200u
#define PR_HOUSEKEEPING_MAX_MS 1000u
uint64_t pr_config_housekeeping_ms(const struct pr_config *cfg);

/* Usage texts. */
const char *pr_config_usage(void);
const char *pr_register_usage(void);

/* "250ms", "15s", "2m", "24h" (a bare number is seconds) -> ms. 0 or -EINVAL. */
int pr_parse_duration(const char *s, uint64_t *out_ms);
/* "host:port", "[v6]:port", ":port" (host 0.0.0.0). 0 or -EINVAL. */
int pr_parse_listen(const char *s, struct pr_listen_addr *out);

#endif
