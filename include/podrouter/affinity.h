/* Request head -> affinity keys (SPEC 3.1), signed cookie, Engine.IO sid sniffing. */
#ifndef PODROUTER_AFFINITY_H
#define PODROUTER_AFFINITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"
#include "podrouter/http_head.h"

struct pr_affinity_config {
    const char *room_param;        /* "roomId" */
    const char *participant_param; /* "participantId" */
    const char *cookie_name;       /* "pr_affinity"; NULL or "" disables cookies */
    const uint8_t *secret;         /* HMAC-SHA256 key */
    size_t secret_len;
};

/* Every key the request carries; the router consults them in precedence order. */
struct pr_affinity {
    char sid[PR_KEY_MAX + 1];
    char room[PR_KEY_MAX + 1];
    char participant[PR_KEY_MAX + 1];
    char cookie_pod[PR_POD_NAME_MAX + 1]; /* pod named by a cookie whose HMAC verified */
    uint8_t sid_len, room_len, participant_len, cookie_pod_len; /* 0 = absent */
    bool engineio;      /* query has EIO= */
    bool handshake;     /* engineio and no sid */
    bool websocket;     /* transport=websocket */
    bool browser_redirect; /* GET /experiment/room_x with Accept containing text/html */
};

/* Extract all keys. Query values are percent-decoded before validation. Returns 0, or
 * -EINVAL when a present key is not 1..128 bytes of [A-Za-z0-9_.:-]; then *bad names the
 * offending source ("sid", "roomId", "participantId", "X-Participant-Id", "room path"). */
int pr_affinity_extract(const struct pr_affinity_config *cfg, const struct pr_request_head *h,
                        struct pr_affinity *out, const char **bad);

/* true when s[0..len) is a valid key. */
bool pr_key_valid(const char *s, size_t len);

/* Cookie value "<pod>.<64 hex hmac>" into out (NUL-terminated); returns its length or
 * -ENOSPC. */
int pr_cookie_sign(const uint8_t *secret, size_t secret_len, const char *pod, char *out,
                   size_t outlen);
/* Verify a cookie value; on success copy the pod name to pod (size >= 64) and return 0,
 * else -EINVAL. Constant-time MAC compare. */
int pr_cookie_verify(const uint8_t *secret, size_t secret_len, const char *value, size_t len,
                     char *pod);

/* Incremental sniffer of an Engine.IO open packet at the start of a polling body:
 * `0{"sid":"...",...}` (the first of possibly \x1e-joined packets). Bounded to 512 bytes. */
struct pr_sid_sniffer {
    uint16_t len;
    int8_t state; /* 0 need more, 1 found, -1 not an open packet */
    char buf[512];
};
void pr_sid_sniffer_init(struct pr_sid_sniffer *s);
/* Feed body bytes; returns 1 once a sid is found (copied into sid, NUL-terminated, length
 * in *sid_len), -1 when the body cannot be an open packet, 0 to feed more. Once it returned
 * non-zero it keeps returning that value. */
int pr_sid_sniffer_feed(struct pr_sid_sniffer *s, const char *data, size_t len,
                        char sid[PR_KEY_MAX + 1], size_t *sid_len);

#endif
