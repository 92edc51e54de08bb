/* exchange.c (L2): the request exchange (struct pr_exchange: one request/response), request
 * parsing and head checks, and the handler tables of an HTTP client connection and of its
 * pod connection. The exchange pool and the end of a request are in respond.h. */
#ifndef PODROUTER_EXCHANGE_H
#define PODROUTER_EXCHANGE_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hdr.h"
#include "podrouter/affinity.h"
#include "podrouter/chunked.h"
#include "podrouter/common.h"
#include "podrouter/http_head.h"
#include "route.h"

#define PR_RESP_HEAD_MAX 65536
#define PR_REPLAY_MAX (64 * 1024)    /* request bodies kept for a stale-connection retry */
#define PR_MAX_INTERIM 16            /* 1xx heads accepted before a final response */

struct pr_client;
struct pr_client_handlers;
struct pr_upstream_handlers;

/* Everything one request/response needs; pooled per worker, absent between requests. */
struct pr_exchange {
    struct pr_exchange *next_free;
    llhttp_t req_parser;
    llhttp_t resp_parser;
    struct pr_buf head; /* raw request head bytes (exactly the head: body bytes stay in c->in) */
    uint32_t head_end;  /* offset just past the blank line */
    const char *feed_ptr; /* request bytes being parsed: slices are feed_off + (at - feed_ptr) */
    uint32_t feed_off;
    uint32_t url_off, url_len;
    struct pr_hdr_tab req_hdrs;
    struct pr_hdr_tab resp_hdrs;
    struct pr_header headers[PR_MAX_HEADERS];
    struct pr_request_head rh;
    struct pr_affinity aff;
    struct pr_buf out;    /* rewritten request (then response) head */
    struct pr_buf resp;   /* raw response head bytes */
    struct pr_buf replay; /* a small request body kept until the pod answers (stale retry); after
                           * that, a handshake's response bytes held until its sid pin is stored */
    uint64_t req_content_length; /* from the parser at head completion */
    uint8_t interim;             /* 1xx heads seen */
    bool line_checked;           /* the request line passed request_line_check */
    struct pr_chunked req_chunk, resp_chunk; /* strict chunk framing of relayed bodies */
    /* request facts */
    bool req_keepalive, req_upgrade, req_complete, is_head, req_chunked, req_has_body;
    bool http10, dechunk, replayable;
    bool resp_started, resp_complete, resp_head_done, sniffing, retried, set_cookie;
    bool resp_garbage; /* the pod sent bytes after its response: never reuse the connection */
    bool pin_wait;     /* the sid pin was sent to the store, no answer yet */
    bool pin_held;     /* response bytes wait in replay until the pin is stored */
    bool head_unsent;  /* the rewritten head waits to leave with the first body bytes */
    bool defer_head;   /* head complete and being routed inside consume_head: a pod chosen at
                        * once leaves the head to it, to go out with the body bytes behind it */
    uint8_t key_kind, outcome;
    char pod[PR_POD_NAME_MAX + 1];
    struct pr_route_req route; /* routing state (route.c) */
    char request_id[129]; /* the client's X-Request-Id (1..128 printable) or ours */
    bool rid_from_client;
    int status;
    uint64_t start_ns;
    struct pr_sid_sniffer sniffer;
    /* admin body */
    char *body;
    uint32_t body_len;
};

void pr__on_connection(uv_stream_t *server, int status);
void pr__exchange_settings_init(void);
size_t pr__exchange_consume(struct pr_client *c, const char *data, size_t len);
void pr__exchange_parse_error(struct pr_client *c, llhttp_errno_t err);
void pr__exchange_on_drained(struct pr_client *c);
void pr__exchange_on_gone(struct pr_client *c);
void pr__exchange_on_timeout(struct pr_client *c);
void pr__exchange_on_room(struct pr_client *c);
extern const struct pr_client_handlers pr__http_client_handlers;
/* The exchange's pod-connection table: defined in exchange.c, with the client table, so
 * that its entries are link-time references (the fuzz harness wraps
 * pr__proxy_upstream_ready). */
extern const struct pr_upstream_handlers pr__proxy_upstream_handlers;

#endif
