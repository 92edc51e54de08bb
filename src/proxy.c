/* Forward one request to one pod: request/response head rewrite, body streaming, retries,
 * errors. The choice of pod is route.c's; this file does its I/O. */
#include "proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "exchange.h"
#include "hdr.h"
#include "podrouter/http_rewrite.h"
#include "podrouter/log.h"
#include "podrouter/policy.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"
#include "probe.h"
#include "respond.h"
#include "route.h"
#include "tq.h"
#include "tunnel.h"
#include "upstream.h"
#include "worker.h"

/* ---- response parser callbacks: slices are offsets into x->resp.p ---- */

/* Response heads are parsed in place in x->resp.p, so `at` always points into it. */
static int r_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = ((struct pr_client *)p->data)->x;
    return pr__hdr_on_field(&x->resp_hdrs, (uint32_t)(at - x->resp.p), at, len);
}

static int r_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = ((struct pr_client *)p->data)->x;
    return pr__hdr_on_value(&x->resp_hdrs, (uint32_t)(at - x->resp.p), at, len);
}

static int r_on_headers_complete(llhttp_t *p)
{
    struct pr_exchange *x = ((struct pr_client *)p->data)->x;
    x->resp_hdrs.done = true;
    /* A HEAD response has no body whatever its framing headers say. Bodyless responses
     * pause at their message end (below), others right after the head. */
    if (x->is_head && p->status_code >= 200)
        return 1;
    int s = p->status_code;
    if (s < 200 || s == 204 || s == 304 ||
        ((p->flags & F_CONTENT_LENGTH) && p->content_length == 0 && !(p->flags & F_CHUNKED)))
        return 0;
    return HPE_PAUSED;
}

static void pin_sid(struct pr_client *c, const char *sid, size_t sid_len);

static int r_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct pr_client *c = p->data;
    struct pr_exchange *x = c->x;
    if (x->dechunk && x->resp_head_done) {
        /* HTTP/1.0 client: the body without its chunk framing (we close after it). */
        PR_CNT_ADD(c->w->m->bytes_to_client, len);
        int rc = pr__client_send(c, at, len);
        if (rc < 0)
            return HPE_USER;
        if (rc == 1 && c->up)
            pr__upstream_stop_read(c->up);
    }
    if (x->sniffing) {
        char sid[PR_KEY_MAX + 1];
        size_t sl = 0;
        int r = pr_sid_sniffer_feed(&x->sniffer, at, len, sid, &sl);
        if (r != 0)
            x->sniffing = false;
        if (r == 1)
            pin_sid(c, sid, sl);
    }
    return 0;
}

static int r_on_message_complete(llhttp_t *p)
{
    struct pr_exchange *x = ((struct pr_client *)p->data)->x;
    x->resp_complete = true;
    return HPE_PAUSED;
}

static llhttp_settings_t resp_settings;
static uv_once_t resp_once = UV_ONCE_INIT;

static void resp_settings_init(void)
{
    llhttp_settings_init(&resp_settings);
    resp_settings.on_header_field = r_on_header_field;
    resp_settings.on_header_value = r_on_header_value;
    resp_settings.on_headers_complete = r_on_headers_complete;
    resp_settings.on_body = r_on_body;
    resp_settings.on_message_complete = r_on_message_complete;
}

/* ---- forwarding ---- */

static void resp_reset(struct pr_client *c)
{
    uv_once(&resp_once, resp_settings_init);
    struct pr_exchange *x = c->x;
    llhttp_init(&x->resp_parser, HTTP_RESPONSE, &resp_settings);
    x->resp_parser.data = c;
    x->resp.len = 0;
    x->resp_hdrs.n = 0;
    x->resp_hdrs.in_value = false;
    x->resp_hdrs.done = false;
    x->resp_complete = false;
}

/* The request head to the pod, body bytes after it in the same write; <0: the pod failed. */
static int send_head(struct pr_client *c, struct pr_upstream *u, const char *body, size_t len)
{
    struct pr_exchange *x = c->x;
    x->head_unsent = false;
    int rc = pr__upstream_send2(u, x->out.p, x->out.len, body, len);
    if (rc < 0)
        pr__proxy_on_upstream_eof(u, rc);
    return rc;
}

/* After the body bytes that came with the request were offered: the head alone if it still
 * waits (no body came), then the client is read again unless the pod is not taking more. */
static void head_sent_read_on(struct pr_client *c, struct pr_upstream *u)
{
    if (c->closing || c->up != u)
        return;
    if (c->x->head_unsent && send_head(c, u, NULL, 0) < 0)
        return;
    if (!u->writing)
        pr__client_start_read(c);
}

void pr__proxy_upstream_ready(struct pr_client *c, struct pr_upstream *u)
{
    struct pr_exchange *x = c->x;
    struct pr_worker *w = c->w;
    c->up = u;
    u->client = c;
    c->state = PR_C_PROXYING;
    resp_reset(c);
    x->resp_head_done = false;
    x->interim = 0;
    /* A body sent on a reused connection is kept (small ones only) until the pod answers,
     * so a stale connection can be retried with the whole request (SPEC 3.5). */
    x->replayable = u->reused && x->req_has_body && !x->req_chunked &&
                    x->req_content_length <= PR_REPLAY_MAX && !x->retried;
    pr_metrics_pod_routed(w->m, u->pool->slot, u->pool->gen);
    pr__tq_push(&w->q_wait, &u->tq, pr__now(w));
    PR_CNT_ADD(w->m->bytes_to_pod, x->out.len + (x->retried ? x->replay.len : 0));
    /* The head leaves with the body bytes that came with it (one write for a polling POST),
     * or with the replayed body, or alone after pr__client_drive. */
    x->head_unsent = true;
    if (x->retried && x->replay.len && send_head(c, u, x->replay.p, x->replay.len) < 0)
        return;
    llhttp_resume(&x->req_parser);
    if (x->defer_head)
        return; /* chosen inside consume_head: pr__proxy_head_with_body sends it */
    pr__client_drive(c); /* body bytes that arrived while the pod was chosen */
    head_sent_read_on(c, u);
}

/* The head of a request whose pod was chosen while its head was parsed, with the body bytes
 * read behind it (data: the rest of that read) in one write, or alone when none came. Returns
 * the body bytes consumed. */
size_t pr__proxy_head_with_body(struct pr_client *c, const char *data, size_t len)
{
    struct pr_upstream *u = c->up;
    if (!u || c->state != PR_C_PROXYING)
        return 0;
    size_t used = len ? pr__proxy_client_body(c, data, len) : 0;
    head_sent_read_on(c, u);
    return used;
}

static void client_body_error(struct pr_client *c, struct pr_upstream *u)
{
    struct pr_exchange *x = c->x;
    PR_CNT_INC(c->w->m->proxy_errors[PR_ERR_BAD_REQUEST]);
    c->up = NULL;
    u->client = NULL;
    pr__upstream_close(u); /* the pod saw part of a request: never reuse it */
    if (!x->resp_started)
        pr__client_error(c, 400, "bad_request", "malformed request body", NULL, true);
    else
        pr__client_close(c);
}

/* Request body bytes to the pod, framing untouched; returns the bytes consumed (0 when the
 * request is complete: what follows is the next request, and waits). */
size_t pr__proxy_client_body(struct pr_client *c, const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    struct pr_upstream *u = c->up;
    if (!x || !u || x->req_complete || u->writing)
        return 0; /* pipelined bytes, or the pod does not take more now: they wait */
    llhttp_errno_t err = llhttp_execute(&x->req_parser, data, len);
    size_t used = len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&x->req_parser) - data);
    } else if (err != HPE_OK) {
        client_body_error(c, u);
        return len;
    }
    if (used == 0)
        return 0;
    if (x->req_chunked) {
        /* llhttp is lax about chunk framing; what the pod gets must parse one way only. */
        int ck = pr_chunked_feed(&x->req_chunk, data, used);
        if (ck < 0 || (ck == 1) != x->req_complete) {
            client_body_error(c, u);
            return len;
        }
    }
    if (x->replayable) {
        if ((size_t)x->replay.len + used > PR_REPLAY_MAX ||
            pr_buf_append(&x->replay, data, used) != 0)
            x->replayable = false;
    }
    PR_CNT_ADD(c->w->m->bytes_to_pod, used);
    if (x->head_unsent) {
        send_head(c, u, data, used);
        return used;
    }
    int rc = pr__upstream_send(u, data, used);
    if (rc < 0)
        pr__proxy_on_upstream_eof(u, rc);
    return used;
}

/* The pod connection of x can serve another request once x's answer is complete. */
static bool pod_reusable(struct pr_exchange *x)
{
    return llhttp_should_keep_alive(&x->resp_parser) && x->req_complete && !x->req_upgrade &&
           !x->resp_garbage;
}

static void finish_exchange(struct pr_client *c, struct pr_upstream *u)
{
    struct pr_exchange *x = c->x;
    bool reusable = pod_reusable(x);
    c->up = NULL;
    pr__upstream_release(u, reusable);
    if (!x->req_complete)
        c->close_after_write = true;
    pr__client_request_done(c);
}

static void release_held(struct pr_client *c);

static void pinned_cb(void *arg, int status, const char *pod)
{
    struct pr_client *c = arg;
    (void)status; /* a store that failed is a degraded store: the client goes on anyway */
    (void)pod;
    if (!c || !pr__client_unhold(c))
        return;
    struct pr_exchange *x = c->x;
    x->pin_wait = false;
    if (x->pin_held)
        release_held(c);
}

static void pin_sid(struct pr_client *c, const char *sid, size_t sid_len)
{
    struct pr_exchange *x = c->x;
    /* Learned from the handshake body: later polls carrying this sid stay on this pod,
     * also through other router replicas. Unless the room or participant that routed the
     * handshake leads there as well until the pin lands, the client gets the sid only once
     * the pin is stored (relay holds the bytes), so its next request may reach any replica.
     * HTTP/1.0 clients get body bytes as they are parsed. */
    struct pr_route_ctx ctx;
    pr__proxy_route_ctx(c->w, &ctx);
    x->pin_wait = !x->dechunk && !pr_route_pin_covered(&ctx, &x->route);
    if (x->pin_wait)
        pr__client_hold(c);
    pr_route_pin_sid(&ctx, &x->route, sid, sid_len, pinned_cb, x->pin_wait ? c : NULL);
}

/* Keep response bytes (head and body) until the sid pin is stored (the replay buffer is free:
 * the pod has answered). A complete answer's pod stays read (no stop/restart per handshake):
 * a close only drops the connection, stray bytes make it unusable. */
static bool hold_response(struct pr_client *c, struct pr_upstream *u, const char *head,
                          size_t head_len, const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    if (!x->pin_held) {
        x->pin_held = true;
        x->replay.len = 0;
    }
    if (pr_buf_append(&x->replay, head, head_len) || pr_buf_append(&x->replay, data, len))
        return false;
    if (!x->resp_complete || x->resp_garbage)
        pr__upstream_stop_read(u);
    return true;
}

static void release_held(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    struct pr_upstream *u = c->up;
    x->pin_held = false;
    PR_CNT_ADD(c->w->m->bytes_to_client, x->replay.len);
    int rc = pr__client_send(c, x->replay.p, x->replay.len);
    x->replay.len = 0;
    if (rc < 0 || (!u && !x->resp_complete)) {
        pr__client_close(c);
        return;
    }
    if (!u) /* complete, and the pod closed its connection meanwhile */
        pr__client_request_done(c);
    else if (x->resp_complete)
        finish_exchange(c, u);
    else if (!c->writing)
        pr__upstream_start_read(u);
}

/* Rewrite the pod's response head into x->out. Returns its length or a negative errno. */
static int build_response_head(struct pr_client *c, uint32_t head_end)
{
    struct pr_exchange *x = c->x;
    int status = x->resp_parser.status_code;
    const char *eol = memchr(x->resp.p, '\n', head_end);
    if (!eol)
        return -EINVAL;
    struct pr_header hs[PR_MAX_HEADERS];
    pr__hdr_export(&x->resp_hdrs, x->resp.p, hs);
    char cookie[256];
    const char *cookie_value = NULL;
    if (x->set_cookie && status >= 200 && status < 300 &&
        pr_cookie_sign(c->w->srv->secret, sizeof(c->w->srv->secret), x->pod, cookie,
                       sizeof(cookie)) > 0)
        cookie_value = cookie;
    bool close = status != 101 &&
                 (!x->req_keepalive || atomic_load(&c->w->srv->draining) || x->dechunk ||
                  (status >= 200 && llhttp_message_needs_eof(&x->resp_parser)));
    if (close)
        c->close_after_write = true;
    struct pr_resp_fwd f = {
        .status_line = x->resp.p,
        .status_line_len = (size_t)(eol - x->resp.p + 1),
        .status = status,
        .headers = hs,
        .nheaders = x->resp_hdrs.n,
        .pod = x->pod,
        .cookie_name = cookie_value ? c->w->srv->aff.cookie_name : NULL,
        .cookie_value = cookie_value,
        .close = close,
        .dechunk = x->dechunk,
    };
    x->out.len = 0;
    int rc = pr_rewrite_response(&f, &x->out);
    return rc < 0 ? rc : (int)x->out.len;
}

static void upstream_bad(struct pr_client *c, struct pr_upstream *u, enum pr_proxy_error reason,
                         int status, const char *code, const char *msg)
{
    struct pr_exchange *x = c->x;
    PR_CNT_INC(c->w->m->proxy_errors[reason]);
    c->up = NULL;
    u->client = NULL;
    pr__upstream_close(u);
    if (x && !x->resp_started)
        pr__client_error(c, status, code, msg, NULL, true);
    else
        pr__client_close(c);
}

/* Relay response body bytes (framing untouched, or de-chunked for an HTTP/1.0 client),
 * preceded by the rewritten head when it is still unsent, and finish when the message
 * completes. Bytes after the message make the pod connection unusable. */
static void relay(struct pr_client *c, struct pr_upstream *u, const char *head, size_t head_len,
                  const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    size_t used = 0;
    if (x->dechunk && head_len) {
        PR_CNT_ADD(c->w->m->bytes_to_client, head_len);
        if (pr__client_send(c, head, head_len) < 0) {
            pr__client_close(c);
            return;
        }
        head_len = 0;
    }
    if (!x->resp_complete && len) {
        llhttp_errno_t err = llhttp_execute(&x->resp_parser, data, len);
        used = len;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
            used = (size_t)(llhttp_get_error_pos(&x->resp_parser) - data);
        else if (err != HPE_OK) {
            if (c->closing)
                return;
            upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                         "bad response framing");
            return;
        }
        if (c->closing)
            return;
        if (x->resp_parser.flags & F_CHUNKED) {
            int ck = pr_chunked_feed(&x->resp_chunk, data, used);
            if (ck < 0 || (ck == 1) != x->resp_complete) {
                upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                             "bad chunk framing from the pod");
                return;
            }
        }
    }
    if (used < len)
        x->resp_garbage = true;
    if (x->pin_wait || x->pin_held) {
        if (!hold_response(c, u, head, head_len, data, used))
            pr__client_close(c);
        return;
    }
    if (!x->dechunk) {
        PR_CNT_ADD(c->w->m->bytes_to_client, head_len + used);
        int rc = pr__client_send2(c, head, head_len, data, used);
        if (rc < 0) {
            pr__client_close(c);
            return;
        }
    }
    if (c->writing)
        pr__upstream_stop_read(u);
    if (x->resp_complete)
        finish_exchange(c, u);
}

/* Why the pod's response head in x->resp.p[0..head_end) is refused, or NULL. */
static const char *response_head_bad(const struct pr_exchange *x, uint32_t head_end)
{
    int status = x->resp_parser.status_code;
    const char *bad = pr_head_lines_check(x->resp.p, head_end);
    if (!bad && (status < 100 || status > 599))
        bad = "the pod sent an invalid status code";
    if (!bad && !(x->resp_parser.flags & F_CHUNKED))
        for (uint32_t i = 0; i < x->resp_hdrs.n; i++)
            if (x->resp_hdrs.name_len[i] == 17 &&
                strncasecmp(x->resp.p + x->resp_hdrs.name_off[i], "transfer-encoding", 17) == 0)
                bad = "the pod sent a Transfer-Encoding that does not end in chunked";
    return bad;
}

/* A complete response head is in x->resp.p[0..head_end): interim, upgrade or final. Returns
 * true when parsing goes on in place with the bytes after an interim head. */
static bool response_head(struct pr_client *c, struct pr_upstream *u, uint32_t head_end)
{
    struct pr_exchange *x = c->x;
    struct pr_worker *w = c->w;
    int status = x->resp_parser.status_code;
    const char *bad = response_head_bad(x, head_end);
    if (bad) {
        upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable", bad);
        return false;
    }
    if (status >= 100 && status < 200 && status != 101) {
        /* Interim response (100 Continue): pass it on (never to HTTP/1.0 clients), then
         * parse the real one. A pod that sends too many is broken. */
        if (++x->interim > PR_MAX_INTERIM) {
            upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                         "too many interim responses");
            return false;
        }
        if (!x->http10 && pr__client_send(c, x->resp.p, head_end) < 0) {
            pr__client_close(c);
            return false;
        }
        uint32_t rest = x->resp.len - head_end;
        memmove(x->resp.p, x->resp.p + head_end, rest);
        resp_reset(c);
        x->resp.len = rest;
        return rest > 0;
    }
    bool has_upgrade = false;
    for (uint32_t i = 0; i < x->resp_hdrs.n; i++)
        has_upgrade |= x->resp_hdrs.name_len[i] == 7 &&
                       strncasecmp(x->resp.p + x->resp_hdrs.name_off[i], "upgrade", 7) == 0;
    if (status == 101 && (!x->req_upgrade || !has_upgrade)) {
        upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                     "the pod switched protocols without an upgrade");
        return false;
    }
    x->resp_head_done = true;
    x->resp_started = true;
    x->status = status;
    int cls = status / 100;
    PR_CNT_INC(w->m->requests[PR_LISTENER_PUBLIC][cls >= 1 && cls <= 5 ? cls : 5]);
    pr_hist_observe(&w->m->request_duration, (double)(uv_hrtime() - x->start_ns) / 1e9);
    x->sniffing = x->aff.handshake && !x->aff.websocket && status == 200 &&
                  x->req_parser.method == HTTP_GET;
    if (x->sniffing)
        pr_sid_sniffer_init(&x->sniffer);
    x->dechunk = x->http10 && (x->resp_parser.flags & F_CHUNKED) && !x->is_head;
    pr_chunked_init(&x->resp_chunk);
    int hl = build_response_head(c, head_end);
    if (hl < 0) {
        pr__client_close(c);
        return false;
    }
    uint32_t rest = x->resp.len - head_end;
    if (status == 101) {
        /* The 101 head and whatever the pod sent after it go out before the exchange (and
         * its buffers) is released. */
        PR_CNT_ADD(w->m->bytes_to_client, (uint64_t)hl + rest);
        if (pr__client_send2(c, x->out.p, (size_t)hl, x->resp.p + head_end, rest) < 0) {
            pr__client_close(c);
            return false;
        }
        pr__tunnel_start(c);
        return false;
    }
    if (x->resp_complete) {
        x->resp_garbage = rest > 0;
        relay(c, u, x->out.p, (size_t)hl, NULL, 0);
        return false;
    }
    llhttp_resume(&x->resp_parser);
    relay(c, u, x->out.p, (size_t)hl, x->resp.p + head_end, rest);
    return false;
}

void pr__proxy_on_upstream_data(struct pr_upstream *u, const char *data, size_t len)
{
    struct pr_client *c = u->client;
    struct pr_exchange *x = c->x;
    struct pr_worker *w = c->w;
    pr__tq_push(&w->q_wait, &u->tq, pr__now(w));
    if (x->resp_head_done) {
        relay(c, u, NULL, 0, data, len);
        return;
    }
    if (x->replayable) { /* the pod answered: no retry from here on */
        x->replayable = false;
    }
    uint32_t start = x->resp.len;
    if (pr_buf_append(&x->resp, data, len) != 0) {
        pr__client_close(c);
        return;
    }
    for (;;) {
        llhttp_errno_t err =
            llhttp_execute(&x->resp_parser, x->resp.p + start, x->resp.len - start);
        if (err == HPE_OK) {
            if (x->resp.len > PR_RESP_HEAD_MAX)
                upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                             "pod response head too large");
            return;
        }
        if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
            upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                         "pod sent a malformed response");
            return;
        }
        uint32_t head_end = (uint32_t)(llhttp_get_error_pos(&x->resp_parser) - x->resp.p);
        if (!response_head(c, u, head_end))
            return;
        start = 0; /* re-parse what followed the interim head, in place */
    }
}

void pr__proxy_on_upstream_eof(struct pr_upstream *u, int err)
{
    struct pr_client *c = u->client;
    if (!c) {
        pr__upstream_close(u);
        return;
    }
    struct pr_exchange *x = c->x;
    if (x && x->pin_held && x->resp_complete) {
        c->up = NULL; /* the whole answer waits for its pin: only the pod connection goes */
        pr__upstream_close(u);
        return;
    }
    if (x && x->resp_head_done) {
        if (err == UV_EOF && llhttp_finish(&x->resp_parser) == HPE_OK && x->resp_complete) {
            if (c->closing)
                return;
            c->close_after_write = true;
            c->up = NULL;
            pr__upstream_close(u);
            pr__client_request_done(c);
            return;
        }
        if (c->closing)
            return;
        PR_CNT_INC(c->w->m->proxy_errors[PR_ERR_RESET]);
        pr__client_close(c);
        return;
    }
    /* No response yet. A reused keep-alive connection the pod closed just as we sent:
     * retry once on a fresh connection with the whole request, body included. */
    bool whole = x && (!x->req_has_body ||
                       (x->replayable && x->replay.len == x->req_content_length));
    if (u->reused && !u->got_bytes && x && !x->retried && x->req_complete && whole) {
        x->retried = true;
        struct pr_pool *p = u->pool;
        c->up = NULL;
        u->client = NULL;
        pr__upstream_close(u);
        int rc = pr__upstream_acquire(p, c);
        if (rc < 0)
            pr__proxy_upstream_failed(c, NULL, rc);
        return;
    }
    if (x && !u->reused && !u->got_bytes && err == UV_ECONNRESET)
        pr__pod_connect_failed(c->w, x->pod, err, true); /* reset once connected */
    upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                 "the pod closed the connection without a response");
}

void pr__proxy_upstream_timeout(struct pr_upstream *u)
{
    struct pr_client *c = u->client;
    if (!c) {
        pr__upstream_close(u);
        return;
    }
    upstream_bad(c, u, PR_ERR_TIMEOUT, 504, "upstream_timeout",
                 "the pod sent no response in time");
}

/* Connect failed (refused, unreachable, timed out). Handshakes without a sid get one more
 * try on another pod; pinned keys only once their pod is down (e.g. --pod-fall). */
void pr__proxy_upstream_failed(struct pr_client *c, struct pr_upstream *u, int err)
{
    struct pr_exchange *x = c->x;
    c->up = NULL;
    PR_CNT_INC(c->w->m->proxy_errors[err == UV_ETIMEDOUT ? PR_ERR_TIMEOUT : PR_ERR_CONNECT]);
    pr__pod_connect_failed(c->w, x->pod, err, u != NULL);
    pr_warn("pod connect failed", "pod", x->pod, "error", uv_err_name(err), "request_id",
            x->request_id);
    struct pr_route_ctx ctx;
    pr__proxy_route_ctx(c->w, &ctx);
    if (!x->retried && (pr_route_movable(&x->route) || pr_route_pod_lost(&ctx, &x->route))) {
        x->retried = true;
        if (pr_route_retry(&ctx, &x->route) == 0)
            return;
    }
    pr__client_error(c, 502, "upstream_unavailable", "the pod refused or could not be reached",
                     NULL, !x->req_complete);
}

void pr__proxy_client_gone(struct pr_client *c)
{
    struct pr_upstream *u = c->up;
    c->up = NULL;
    if (!u)
        return;
    u->client = NULL;
    if (u->state == PR_U_CONNECTING)
        return; /* connect_cb pools it when it completes */
    struct pr_exchange *x = c->x;
    if (x && x->resp_complete && u->state == PR_U_ACTIVE) {
        /* The pod's whole answer is in (a handshake held for its sid pin, or one still being
         * written to the client): its connection is clean, the next request can have it. */
        pr__upstream_release(u, pod_reusable(x));
        return;
    }
    pr__upstream_close(u);
}

void pr__proxy_upstream_drained(struct pr_upstream *u)
{
    struct pr_client *c = u->client;
    if (!c || c->closing)
        return;
    if (c->state == PR_C_PROXYING && c->x && !c->x->req_complete) {
        pr__client_drive(c);
        if (!c->closing && c->up == u && !u->writing)
            pr__client_start_read(c);
    }
}

void pr__proxy_client_drained(struct pr_client *c)
{
    if (c->state == PR_C_IDLE) {
        /* Pipelined requests waited for our last answer to be taken. */
        pr__client_drive(c);
        if (!c->closing && (c->state == PR_C_IDLE || c->state == PR_C_HEAD))
            pr__client_start_read(c);
        return;
    }
    struct pr_upstream *u = c->up;
    if (!u || (c->x && c->x->pin_held))
        return;
    if (c->state == PR_C_PROXYING)
        pr__upstream_start_read(u);
}
