/* Redis store wire formats (SPEC 6.1): --store URLs, key names, the room JSON shared with
 * HyperStudy, the pod JSON, and the messages on the P events channel. Pure functions. */
#ifndef PODROUTER_REDIS_PROTO_H
#define PODROUTER_REDIS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"

#define PR_REDIS_MAX_HOSTS 8
#define PR_REDIS_HOST_MAX 255
#define PR_REDIS_SECRET_MAX 255
#define PR_REDIS_MASTER_MAX 127
#define PR_REDIS_KEY_MAX 320 /* prefix (127) + "participant:" + id (128) + slack */
#define PR_REDIS_DEFAULT_PORT 6379
#define PR_REDIS_SENTINEL_PORT 26379
#define PR_REDIS_EVENT_MAX 1024 /* longest message we publish or accept */

struct pr_redis_host {
    char host[PR_REDIS_HOST_MAX + 1]; /* without the [] of an IPv6 literal */
    uint16_t port;
};

/* A parsed redis:// or redis-sentinel:// URL. */
struct pr_redis_url {
    bool sentinel;
    char user[PR_REDIS_SECRET_MAX + 1];     /* ACL user (redis://user:pw@), usually empty */
    char password[PR_REDIS_SECRET_MAX + 1]; /* empty: no AUTH */
    struct pr_redis_host hosts[PR_REDIS_MAX_HOSTS];
    size_t nhosts;                        /* 1 for redis://, 1..8 sentinels */
    uint32_t db;                          /* SELECT db (redis:// only) */
    char master[PR_REDIS_MASTER_MAX + 1]; /* sentinel master name */
};

/* Parse url into out; 0, or -EINVAL with a one-line reason in err (never the password). */
int pr_redis_url_parse(const char *url, struct pr_redis_url *out, char *err, size_t errlen);

/* Name of kind in keys and events: "sid", "room", "participant"; NULL for other kinds. */
const char *pr_redis_kind_name(enum pr_key_kind kind);
/* The kind named by s[0..len), or -1. */
int pr_redis_kind_parse(const char *s, size_t len);

/* s[0..len) as a decimal number of at most max (digits only, 1..20 of them); false when not. */
bool pr_redis_uint(const char *s, size_t len, uint64_t max, uint64_t *out);

/* The Redis key of an assignment: room:{id}:pod (no prefix, HyperStudy's) or P participant:{id}
 * or P sid:{id}. Returns the key length, or -EINVAL (bad kind/id) / -ENAMETOOLONG. */
int pr_redis_assignment_key(char *out, size_t cap, const char *prefix, enum pr_key_kind kind,
                            const char *id, size_t len);
/* P room-members:{id}: the set of distinct identities counted into a room. */
int pr_redis_members_key(char *out, size_t cap, const char *prefix, const char *id, size_t len);
/* Decimal digits of v into out (21 bytes at least), NUL-terminated; returns their count. */
size_t pr_redis_u64(char *out, uint64_t v);
/* One RESP bulk string of s[0..n) into out (n + 25 bytes at most); returns its length. */
size_t pr_redis_bulk(char *out, const char *s, size_t n);
/* A command as RESP (an array of bulk strings, as hiredis formats it): argv, then tail_argc
 * more arguments already formatted (tail). Written into small when it fits in cap bytes, else
 * into a malloc'd buffer (the caller frees what is not small); *len set; NULL: no memory. */
char *pr_redis_command(char *small, size_t cap, int argc, const char *const *argv,
                       const size_t *argl, const char *tail, size_t tail_len, int tail_argc,
                       size_t *len);
/* P pod:{name}, P pods, P events. Same return convention. */
int pr_redis_pod_key(char *out, size_t cap, const char *prefix, const char *name);
int pr_redis_prefixed(char *out, size_t cap, const char *prefix, const char *suffix);

/* A pod name taken from someone else's value: the string itself when it is a valid pod
 * name, else its first DNS label lower-cased (backend-1.backend.ns.svc -> backend-1). false
 * when neither is a valid pod name. */
bool pr_redis_pod_name_from(const char *s, size_t len, char out[PR_POD_NAME_MAX + 1]);

/* One room:{roomId}:pod value. */
struct pr_redis_room {
    char pod[PR_POD_NAME_MAX + 1];
    uint32_t participant_count;
    uint64_t assigned_at_ms;
};

/* Parse a room value: a JSON object whose podId names a pod (participantCount and
 * assignedAt optional: numbers, or digit strings). 0 or -EINVAL (garbage). */
int pr_redis_room_parse(const char *json, size_t len, struct pr_redis_room *out);
/* {"podId":…,"participantCount":…,"assignedAt":…}; length or -ENOSPC. */
int pr_redis_room_format(char *out, size_t cap, const struct pr_redis_room *r);
/* Parse the value of kind's key (room JSON, or a plain pod name) into pod. 0 or -EINVAL. */
int pr_redis_value_pod(enum pr_key_kind kind, const char *v, size_t len,
                       char pod[PR_POD_NAME_MAX + 1], uint32_t *count, uint64_t *assigned_at);

/* The pod row as replicas share it in P pod:{name}. */
struct pr_redis_pod {
    char name[PR_POD_NAME_MAX + 1];
    char address[PR_ADDRESS_MAX + 1];
    char zone[PR_ZONE_MAX + 1];
    uint32_t cap_rooms, cap_participants;
    bool draining;
    uint64_t last_seen_ms; /* epoch ms */
};

/* {"name","address","capacity":{"rooms","participants"},"zone","draining","last_seen_at"}
 * into a malloc'd string; NULL when out of memory. */
char *pr_redis_pod_format(const struct pr_redis_pod *p);
/* Parse and validate a pod JSON; 0 or -EINVAL. */
int pr_redis_pod_parse(const char *json, size_t len, struct pr_redis_pod *out);

/* Messages on P events (space-separated; ids and pod names never contain spaces):
 *   set <kind> <id> <pod> <participantCount> <assignedAt>   assignment created or moved
 *   del <kind> <id>                                         assignment removed
 *   count <roomId> <participantCount>                       a room gained a participant
 *   counts @<origin> 0 <roomId> <participantCount> [<roomId> <participantCount> ...]
 *                                                           the same for the joins of one batch
 *                                                           of the process with that origin
 *   pod <pod JSON>                                          pod registered/changed/draining
 *   delpod <name>                                           pod deleted */
enum pr_redis_event_type {
    PR_REDIS_EV_SET = 0,
    PR_REDIS_EV_DEL,
    PR_REDIS_EV_COUNT,
    PR_REDIS_EV_POD,
    PR_REDIS_EV_DELPOD,
};

struct pr_redis_event {
    enum pr_redis_event_type type;
    enum pr_key_kind kind;    /* set, del; ROOM for count */
    char key[PR_KEY_MAX + 1]; /* set, del, count */
    size_t key_len;
    char pod[PR_POD_NAME_MAX + 1]; /* set; delpod: the name */
    uint32_t count;                /* set, count */
    uint64_t assigned_at_ms;       /* set */
    const char *json;              /* pod: borrowed from the message */
    size_t json_len;
};

/* Decode one message; 0 or -EINVAL (unknown or malformed: ignore it). */
int pr_redis_event_parse(const char *msg, size_t len, struct pr_redis_event *ev);
/* Encode ev (json borrowed for pod); length or -EINVAL/-ENOSPC. */
int pr_redis_event_format(char *out, size_t cap, const struct pr_redis_event *ev);

/* The Lua script behind every multi-step store operation (SPEC 6.1: one script, loaded
 * once with SCRIPT LOAD, run with EVALSHA). See the header of redis_proto.c for its ops. */
extern const char pr_redis_script[];

#endif
