/* Forward one request to one pod: affinity decision, request/response head rewrite, body
 * streaming, retries, errors. Choice of pod is delegated to policy.c. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "podrouter/log.h"
#include "podrouter/policy.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"

static void decide(struct pr_client *c);
static void go_to_pod(struct pr_client *c, const struct pr_pod_info *pod);

/* ---- response parser callbacks: slices are offsets into x->resp ---- */

static int r_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = ((struct pr_client *)p->data)->x;
    return pr__hdr_field(x, x->resp, at, len);
}

static int r_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct pr_exchange *x = ((struct pr_client *)p->data)->x;
    return pr__hdr_value(x, x->resp, at, len);
}

static int r_on_headers_complete(llhttp_t *p)
{
    struct pr_exchange *x = ((struct pr_client *)p->data)->x;
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

/* ---- small helpers ---- */

static bool name_is(const char *n, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(n, lit, len) == 0;
}

static bool token_in_list(const char *list, size_t len, const char *name, size_t nlen)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == ',' || list[i] == '\t'))
            i++;
        size_t s = i;
        while (i < len && list[i] != ',' && list[i] != ' ' && list[i] != '\t')
            i++;
        if (i - s == nlen && strncasecmp(list + s, name, nlen) == 0)
            return true;
    }
    return false;
}

/* Hop-by-hop per RFC 9110 7.6.1, plus whatever Connection lists. Transfer-Encoding stays:
 * bodies are relayed with their framing untouched. */
static bool hop_by_hop(const char *n, size_t len, const char *conn, size_t conn_len)
{
    if (name_is(n, len, "connection") || name_is(n, len, "keep-alive") ||
        name_is(n, len, "proxy-connection") || name_is(n, len, "te") ||
        name_is(n, len, "trailer") || name_is(n, len, "upgrade") ||
        name_is(n, len, "proxy-authorization"))
        return true;
    if (conn && !name_is(n, len, "transfer-encoding") && token_in_list(conn, conn_len, n, len))
        return true;
    return false;
}

struct obuf {
    char **buf;
    uint32_t *cap;
    uint32_t len;
    bool oom;
};

static void ob_add(struct obuf *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n > *o->cap) {
        size_t nc = *o->cap ? *o->cap : 2048;
        while (nc < o->len + n)
            nc *= 2;
        char *p = realloc(*o->buf, nc);
        if (!p) {
            o->oom = true;
            return;
        }
        *o->buf = p;
        *o->cap = (uint32_t)nc;
    }
    memcpy(*o->buf + o->len, s, n);
    o->len += (uint32_t)n;
}

static void ob_str(struct obuf *o, const char *s)
{
    ob_add(o, s, strlen(s));
}

/* Rewrite the request head for the pod into x->out. */
static int build_request_head(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    struct obuf o = {.buf = &x->out, .cap = &x->out_cap};
    const struct pr_header *conn = pr_head_find(&x->rh, "connection");
    const char *cv = conn ? conn->value : NULL;
    size_t cl = conn ? conn->value_len : 0;
    ob_add(&o, x->rh.method, x->rh.method_len);
    ob_str(&o, " ");
    ob_add(&o, x->rh.url, x->rh.url_len);
    ob_str(&o, " HTTP/1.1\r\n");
    const struct pr_header *xff = NULL, *upgrade = NULL, *host = NULL;
    bool has_proto = false, has_fhost = false, has_rid = false;
    for (size_t i = 0; i < x->rh.nheaders; i++) {
        const struct pr_header *h = &x->rh.headers[i];
        if (name_is(h->name, h->name_len, "upgrade"))
            upgrade = h;
        if (hop_by_hop(h->name, h->name_len, cv, cl))
            continue;
        if (name_is(h->name, h->name_len, "x-forwarded-for")) {
            xff = h;
            continue;
        }
        if (name_is(h->name, h->name_len, "host"))
            host = h;
        else if (name_is(h->name, h->name_len, "x-forwarded-proto"))
            has_proto = true;
        else if (name_is(h->name, h->name_len, "x-forwarded-host"))
            has_fhost = true;
        else if (name_is(h->name, h->name_len, "x-request-id")) {
            if (!x->rid_from_client)
                continue; /* replaced by ours below */
            has_rid = true;
        }
        ob_add(&o, h->name, h->name_len);
        ob_str(&o, ": ");
        ob_add(&o, h->value, h->value_len);
        ob_str(&o, "\r\n");
    }
    char ip[64];
    pr__peer_ip(c, ip, sizeof(ip));
    ob_str(&o, "X-Forwarded-For: ");
    if (xff && xff->value_len) {
        ob_add(&o, xff->value, xff->value_len);
        ob_str(&o, ", ");
    }
    ob_str(&o, ip);
    ob_str(&o, "\r\n");
    if (!has_proto)
        ob_str(&o, "X-Forwarded-Proto: http\r\n");
    if (!has_fhost && host) {
        ob_str(&o, "X-Forwarded-Host: ");
        ob_add(&o, host->value, host->value_len);
        ob_str(&o, "\r\n");
    }
    if (!has_rid) {
        ob_str(&o, "X-Request-Id: ");
        ob_str(&o, x->request_id);
        ob_str(&o, "\r\n");
    }
    if (x->req_upgrade && upgrade) {
        ob_str(&o, "Connection: Upgrade\r\nUpgrade: ");
        ob_add(&o, upgrade->value, upgrade->value_len);
        ob_str(&o, "\r\n");
    }
    ob_str(&o, "\r\n");
    x->out_len = o.len;
    return o.oom ? -ENOMEM : 0;
}

/* ---- decision ---- */

/* A store callback may come after the client left (async store): hold a reference. */
static void hold(struct pr_client *c)
{
    c->store_refs++;
}

/* Drop the reference; false when the client is gone and the answer must be ignored. */
static bool release(struct pr_client *c)
{
    c->store_refs--;
    if (!c->closing)
        return true;
    if (c->store_refs == 0 && c->handle_closed)
        free(c);
    return false;
}

static void count_assignment(struct pr_client *c, enum pr_key_kind kind, enum pr_outcome o)
{
    c->w->m->assignments[kind][o]++;
}

static void fail_no_pod(struct pr_client *c)
{
    c->w->m->proxy_errors[PR_ERR_NO_POD]++;
    pr__client_error(c, 503, "no_pod", "no live pod can take the request", "Retry-After: 1\r\n",
                     false);
}

static bool store_degraded(struct pr_client *c)
{
    return !c->w->store->ops->up(c->w->store);
}

/* Choose a pod for a new key: least loaded (or bounded hashing when the store is down).
 * Skips x->first_pod (a pod that just refused us). Returns 0 with *out filled or -ENOENT. */
static int choose(struct pr_client *c, const char *key, size_t key_len, bool degraded,
                  struct pr_pod_info *out)
{
    struct pr_worker *w = c->w;
    struct pr_exchange *x = c->x;
    size_t n = pr_registry_snapshot(pr__srv.reg, w->pod_infos, PR_MAX_PODS);
    if (n > PR_MAX_PODS)
        n = PR_MAX_PODS;
    size_t eligible = 0;
    for (size_t i = 0; i < n; i++) {
        const struct pr_pod_info *p = &w->pod_infos[i];
        struct pr_policy_pod *pp = &w->policy_pods[i];
        pp->name = p->name;
        pp->cap_rooms = p->cap_rooms;
        pp->cap_participants = p->cap_participants;
        pp->load_rooms = p->load_rooms;
        pp->load_participants = p->load_participants;
        pp->eligible = p->state == PR_POD_READY && strcmp(p->name, x->first_pod) != 0;
        eligible += pp->eligible;
    }
    /* A pod that just refused a connection is avoided unless nothing else is left. */
    size_t healthy = 0;
    for (size_t i = 0; i < n; i++)
        healthy += w->policy_pods[i].eligible && !w->pod_infos[i].recently_failed;
    if (healthy)
        for (size_t i = 0; i < n; i++)
            if (w->pod_infos[i].recently_failed)
                w->policy_pods[i].eligible = false;
    if (!eligible)
        return -ENOENT;
    int idx;
    if (degraded)
        idx = pr_policy_bounded_hash(w->policy_pods, n, key, key_len, pr__srv.cfg.balance_factor);
    else if (pr__srv.cfg.placement == PR_PLACEMENT_PACK)
        idx = pr_policy_pack(w->policy_pods, n, key, key_len, x->key_kind == PR_KEY_ROOM,
                             pr__srv.cfg.pack_utilization);
    else
        idx = pr_policy_least_loaded(w->policy_pods, n, key, key_len);
    if (idx < 0)
        return -ENOENT;
    *out = w->pod_infos[idx];
    return 0;
}

static void session_unknown(struct pr_client *c)
{
    static const char body[] = "{\"code\":1,\"message\":\"Session ID unknown\"}";
    pr__client_respond(c, 400, "application/json", NULL, body, sizeof(body) - 1, false);
}

/* One registry look-up per routed request: the pod's row, if it is live. */
static bool live_info(const char *pod, struct pr_pod_info *info)
{
    return pr_registry_get(pr__srv.reg, pod, info) == 0 && info->state != PR_POD_DOWN;
}

static void route_info(struct pr_client *c, const struct pr_pod_info *info,
                       enum pr_key_kind kind, enum pr_outcome outcome)
{
    struct pr_exchange *x = c->x;
    x->key_kind = (uint8_t)kind;
    x->outcome = (uint8_t)outcome;
    count_assignment(c, kind, outcome);
    go_to_pod(c, info);
}

static void route_to(struct pr_client *c, const char *pod, enum pr_key_kind kind,
                     enum pr_outcome outcome)
{
    struct pr_pod_info info;
    if (!live_info(pod, &info)) {
        fail_no_pod(c);
        return;
    }
    route_info(c, &info, kind, outcome);
}

static const char *key_of(struct pr_exchange *x, enum pr_key_kind kind, size_t *len)
{
    switch (kind) {
    case PR_KEY_SID:
        *len = x->aff.sid_len;
        return x->aff.sid;
    case PR_KEY_ROOM:
        *len = x->aff.room_len;
        return x->aff.room;
    case PR_KEY_PARTICIPANT:
        *len = x->aff.participant_len;
        return x->aff.participant;
    default:
        *len = strlen(x->request_id);
        return x->request_id;
    }
}

static void join_room(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    if (!x->aff.room_len)
        return;
    const char *who = x->aff.participant_len ? x->aff.participant : NULL;
    size_t wl = x->aff.participant_len;
    if (!who && x->aff.sid_len) {
        who = x->aff.sid;
        wl = x->aff.sid_len;
    }
    if (who)
        c->w->store->ops->room_join(c->w->store, x->aff.room, x->aff.room_len, who, wl);
}

/* The store answered a create/replace: route to the winner. */
static void assigned_cb(void *arg, int status, const char *pod)
{
    struct pr_client *c = arg;
    if (!release(c))
        return;
    struct pr_exchange *x = c->x;
    enum pr_key_kind kind = (enum pr_key_kind)x->key_kind;
    enum pr_outcome outcome = (enum pr_outcome)x->outcome;
    if (status == -ENOSPC) {
        /* --max-assignments reached: place as in degraded mode, store nothing (SPEC 3.6). */
        struct pr_pod_info chosen;
        size_t kl;
        const char *key = key_of(x, kind, &kl);
        if (choose(c, key, kl, true, &chosen) != 0) {
            fail_no_pod(c);
            return;
        }
        route_info(c, &chosen, kind, PR_OUTCOME_OVERFLOW);
        return;
    }
    if (status != 0) {
        /* Store unreachable: place without coordination; written back when it returns. */
        if (x->pod[0]) {
            route_to(c, x->pod, kind, PR_OUTCOME_DEGRADED);
            return;
        }
        fail_no_pod(c);
        return;
    }
    if (strcmp(pod, x->pod) != 0)
        outcome = PR_OUTCOME_HIT; /* another router won the race: use its pod */
    if (kind == PR_KEY_ROOM)
        join_room(c);
    route_to(c, pod, kind, outcome);
}

static void key_lookup_cb(void *arg, int status, const char *pod)
{
    struct pr_client *c = arg;
    if (!release(c))
        return;
    struct pr_exchange *x = c->x;
    struct pr_store *s = c->w->store;
    enum pr_key_kind kind = (enum pr_key_kind)x->key_kind;
    size_t kl;
    const char *key = key_of(x, kind, &kl);
    struct pr_pod_info info;
    if (status == 0 && live_info(pod, &info)) {
        if (kind == PR_KEY_ROOM)
            join_room(c);
        route_info(c, &info, kind, PR_OUTCOME_HIT);
        return;
    }
    bool degraded = status != 0 && status != -ENOENT;
    struct pr_pod_info chosen;
    if (choose(c, key, kl, degraded || store_degraded(c), &chosen) != 0) {
        fail_no_pod(c);
        return;
    }
    snprintf(x->pod, sizeof(x->pod), "%s", chosen.name);
    if (degraded) {
        x->outcome = PR_OUTCOME_DEGRADED;
        hold(c);
        s->ops->create(s, kind, key, kl, chosen.name, assigned_cb, c);
    } else if (status == 0) {
        /* Its pod is down or gone: move it (only if nobody moved it first). */
        char old[PR_POD_NAME_MAX + 1];
        snprintf(old, sizeof(old), "%s", pod);
        x->outcome = PR_OUTCOME_REASSIGNED;
        hold(c);
        s->ops->replace(s, kind, key, kl, old, chosen.name, assigned_cb, c);
    } else {
        x->outcome = PR_OUTCOME_CREATED;
        hold(c);
        s->ops->create(s, kind, key, kl, chosen.name, assigned_cb, c);
    }
}

static void decide_from(struct pr_client *c, enum pr_key_kind from);

static void sid_lookup_cb(void *arg, int status, const char *pod)
{
    struct pr_client *c = arg;
    if (!release(c))
        return;
    if (status == 0) {
        struct pr_pod_info info;
        if (live_info(pod, &info)) {
            route_info(c, &info, PR_KEY_SID, PR_OUTCOME_HIT);
        } else {
            /* Exactly Engine.IO's answer: the client starts a fresh handshake. */
            c->x->key_kind = PR_KEY_SID;
            session_unknown(c);
        }
        return;
    }
    decide_from(c, PR_KEY_ROOM);
}

static void decide_from(struct pr_client *c, enum pr_key_kind from)
{
    struct pr_exchange *x = c->x;
    struct pr_store *s = c->w->store;
    const struct pr_affinity *a = &x->aff;
    if (from <= PR_KEY_SID && a->sid_len) {
        x->key_kind = PR_KEY_SID;
        hold(c);
        s->ops->get(s, PR_KEY_SID, a->sid, a->sid_len, sid_lookup_cb, c);
        return;
    }
    if (from <= PR_KEY_ROOM && a->room_len) {
        x->key_kind = PR_KEY_ROOM;
        hold(c);
        s->ops->get(s, PR_KEY_ROOM, a->room, a->room_len, key_lookup_cb, c);
        return;
    }
    if (from <= PR_KEY_PARTICIPANT && a->participant_len) {
        x->key_kind = PR_KEY_PARTICIPANT;
        hold(c);
        s->ops->get(s, PR_KEY_PARTICIPANT, a->participant, a->participant_len, key_lookup_cb,
                    c);
        return;
    }
    if (from <= PR_KEY_COOKIE && a->cookie_pod_len) {
        struct pr_pod_info info;
        if (pr_registry_get(pr__srv.reg, a->cookie_pod, &info) == 0 &&
            info.state != PR_POD_DOWN && strcmp(info.name, x->first_pod) != 0) {
            x->key_kind = PR_KEY_COOKIE;
            x->outcome = PR_OUTCOME_HIT;
            count_assignment(c, PR_KEY_COOKIE, PR_OUTCOME_HIT);
            go_to_pod(c, &info);
            return;
        }
    }
    struct pr_pod_info chosen;
    size_t kl;
    const char *key = key_of(x, PR_KEY_NONE, &kl);
    if (choose(c, key, kl, store_degraded(c), &chosen) != 0) {
        fail_no_pod(c);
        return;
    }
    x->key_kind = PR_KEY_NONE;
    x->outcome = PR_OUTCOME_CREATED;
    count_assignment(c, PR_KEY_NONE, PR_OUTCOME_CREATED);
    go_to_pod(c, &chosen);
}

static void decide(struct pr_client *c)
{
    decide_from(c, PR_KEY_SID);
}

static void redirect(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    char loc[512];
    snprintf(loc, sizeof(loc), "Location: /experiment?roomId=%s&pod=%s\r\n", x->aff.room,
             x->pod);
    static const char body[] = "{\"redirect\":true}";
    pr__client_respond(c, 302, "application/json", loc, body, sizeof(body) - 1, false);
}

static void go_to_pod(struct pr_client *c, const struct pr_pod_info *pod)
{
    struct pr_exchange *x = c->x;
    struct pr_worker *w = c->w;
    snprintf(x->pod, sizeof(x->pod), "%s", pod->name);
    if (x->aff.room_len && !(x->key_kind == PR_KEY_ROOM && x->outcome == PR_OUTCOME_CREATED))
        w->store->ops->touch(w->store, PR_KEY_ROOM, x->aff.room, x->aff.room_len);
    if (x->aff.browser_redirect && x->key_kind == PR_KEY_ROOM) {
        redirect(c);
        return;
    }
    x->set_cookie = x->key_kind == PR_KEY_NONE && x->aff.handshake && pr__srv.aff.cookie_name;
    struct pr_pool *p = pr__pool_get(w, pod);
    if (!p) {
        pr__client_close(c);
        return;
    }
    int rc = pr__upstream_acquire(w, p, c);
    if (rc < 0)
        pr__proxy_upstream_failed(c, NULL, rc);
}

void pr__proxy_route(struct pr_client *c)
{
    uv_once(&resp_once, resp_settings_init);
    struct pr_exchange *x = c->x;
    const char *bad = NULL;
    if (pr_affinity_extract(&pr__srv.aff, &x->rh, &x->aff, &bad) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "%s must be 1-128 characters of [A-Za-z0-9_.:-]", bad ? bad : "affinity key");
        pr__client_error(c, 400, "bad_key", msg, NULL, !x->req_complete);
        return;
    }
    if (build_request_head(c) != 0) {
        pr__client_close(c);
        return;
    }
    decide(c);
}

/* ---- forwarding ---- */

void pr__proxy_upstream_ready(struct pr_client *c, struct pr_upstream *u)
{
    struct pr_exchange *x = c->x;
    struct pr_worker *w = c->w;
    c->up = u;
    u->client = c;
    c->state = PR_C_PROXYING;
    llhttp_init(&x->resp_parser, HTTP_RESPONSE, &resp_settings);
    x->resp_parser.data = c;
    x->resp_len = 0;
    x->nheaders = 0;
    x->in_value = false;
    x->resp_head_done = false;
    pr_metrics_pod_routed(w->m, u->pool->slot, u->pool->gen);
    pr__tq_push(&w->q_wait, &u->tq, pr__now(w));
    int rc = pr__upstream_send(u, x->out, x->out_len);
    if (rc < 0) {
        pr__proxy_on_upstream_eof(u, rc);
        return;
    }
    w->m->bytes_to_pod += x->out_len;
    llhttp_resume(&x->req_parser);
    if (x->head_len > x->head_end) {
        uint32_t n = x->head_len - x->head_end;
        x->head_len = x->head_end;
        pr__proxy_on_client_body(c, x->head + x->head_end, n);
        if (c->closing || c->up != u)
            return;
    }
    if (!u->writing)
        pr__client_start_read(c);
}

static void keep_pending(struct pr_client *c, const char *data, size_t len)
{
    if (len == 0)
        return;
    if (c->pending_len + len > 65536) {
        pr__client_stop_read(c);
        return;
    }
    char *p = realloc(c->pending, c->pending_len + len);
    if (!p)
        return;
    memcpy(p + c->pending_len, data, len);
    c->pending = p;
    c->pending_len += (uint32_t)len;
}

void pr__proxy_on_client_body(struct pr_client *c, const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    struct pr_upstream *u = c->up;
    if (c->state == PR_C_TUNNEL) {
        pr__tunnel_from_client(c, data, len);
        return;
    }
    if (!x || !u)
        return;
    if (x->req_complete) {
        keep_pending(c, data, len);
        return;
    }
    llhttp_errno_t err = llhttp_execute(&x->req_parser, data, len);
    size_t used = len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&x->req_parser) - data);
    } else if (err != HPE_OK) {
        c->w->m->proxy_errors[PR_ERR_BAD_REQUEST]++;
        if (!x->resp_head_done) {
            c->up = NULL;
            pr__upstream_release(u, false);
            pr__client_error(c, 400, "bad_request", "malformed request body", NULL, true);
        } else {
            pr__client_close(c);
        }
        return;
    }
    if (used) {
        c->w->m->bytes_to_pod += used;
        int rc = pr__upstream_send(u, data, used);
        if (rc < 0) {
            pr__proxy_on_upstream_eof(u, rc);
            return;
        }
        if (rc == 1)
            pr__client_stop_read(c);
    }
    if (used < len)
        keep_pending(c, data + used, len - used);
}

static void finish_exchange(struct pr_client *c, struct pr_upstream *u)
{
    struct pr_exchange *x = c->x;
    bool reusable = llhttp_should_keep_alive(&x->resp_parser) && x->req_complete &&
                    !x->req_upgrade;
    c->up = NULL;
    pr__upstream_release(u, reusable);
    if (!x->req_complete)
        c->close_after_write = true;
    pr__client_request_done(c);
}

static void pinned_cb(void *arg, int status, const char *pod)
{
}

static void pin_sid(struct pr_client *c, const char *sid, size_t sid_len)
{
    struct pr_exchange *x = c->x;
    struct pr_store *s = c->w->store;
    /* Learned from the handshake body: later polls carrying this sid stay on this pod,
     * also through other router replicas. */
    s->ops->create(s, PR_KEY_SID, sid, sid_len, x->pod, pinned_cb, NULL);
    count_assignment(c, PR_KEY_SID, PR_OUTCOME_CREATED);
    if (x->aff.room_len && !x->aff.participant_len)
        s->ops->room_join(s, x->aff.room, x->aff.room_len, sid, sid_len);
}

/* Rewrite the pod's response head into x->out (the request head is sent by now; a reused
 * connection is only retried before any response byte). Returns its length or -ENOMEM. */
static int build_response_head(struct pr_client *c, uint32_t head_end)
{
    struct pr_exchange *x = c->x;
    struct obuf o = {.buf = &x->out, .cap = &x->out_cap};
    int status = x->resp_parser.status_code;
    const char *eol = memchr(x->resp, '\n', head_end);
    if (!eol)
        return -EINVAL;
    ob_add(&o, x->resp, (size_t)(eol - x->resp + 1));
    const char *cv = NULL;
    size_t cl = 0;
    const char *upgrade = NULL;
    size_t ul = 0;
    for (uint32_t i = 0; i < x->nheaders; i++) {
        const char *n = x->resp + x->hdr_name_off[i];
        if (name_is(n, x->hdr_name_len[i], "connection")) {
            cv = x->resp + x->hdr_val_off[i];
            cl = x->hdr_val_len[i];
        } else if (name_is(n, x->hdr_name_len[i], "upgrade")) {
            upgrade = x->resp + x->hdr_val_off[i];
            ul = x->hdr_val_len[i];
        }
    }
    for (uint32_t i = 0; i < x->nheaders; i++) {
        const char *n = x->resp + x->hdr_name_off[i];
        uint32_t nl = x->hdr_name_len[i];
        if (hop_by_hop(n, nl, cv, cl) || name_is(n, nl, "x-pod-router-pod"))
            continue;
        ob_add(&o, n, nl);
        ob_str(&o, ": ");
        ob_add(&o, x->resp + x->hdr_val_off[i], x->hdr_val_len[i]);
        ob_str(&o, "\r\n");
    }
    if (status == 101 && upgrade) {
        ob_str(&o, "Connection: Upgrade\r\nUpgrade: ");
        ob_add(&o, upgrade, ul);
        ob_str(&o, "\r\n");
    }
    ob_str(&o, "X-Pod-Router-Pod: ");
    ob_str(&o, x->pod);
    ob_str(&o, "\r\n");
    if (x->set_cookie && status >= 200 && status < 300) {
        char cookie[256];
        if (pr_cookie_sign(pr__srv.secret, sizeof(pr__srv.secret), x->pod, cookie,
                           sizeof(cookie)) > 0) {
            ob_str(&o, "Set-Cookie: ");
            ob_str(&o, pr__srv.aff.cookie_name);
            ob_str(&o, "=");
            ob_str(&o, cookie);
            ob_str(&o, "; HttpOnly; Path=/; SameSite=Lax\r\n");
        }
    }
    bool close = status != 101 &&
                 (!x->req_keepalive || atomic_load(&pr__srv.draining) ||
                  (status >= 200 && llhttp_message_needs_eof(&x->resp_parser)));
    if (close) {
        c->close_after_write = true;
        ob_str(&o, "Connection: close\r\n");
    }
    ob_str(&o, "\r\n");
    return o.oom ? -ENOMEM : (int)o.len;
}

static void upstream_bad(struct pr_client *c, struct pr_upstream *u, enum pr_proxy_error reason,
                         int status, const char *code, const char *msg)
{
    struct pr_exchange *x = c->x;
    c->w->m->proxy_errors[reason]++;
    c->up = NULL;
    u->client = NULL;
    pr__upstream_close(u);
    if (x && !x->resp_started)
        pr__client_error(c, status, code, msg, NULL, !x->req_complete);
    else
        pr__client_close(c);
}

/* Relay response body bytes (framing untouched), preceded by the rewritten head when it
 * is still unsent (one writev for both), and finish when the message completes. */
static void relay(struct pr_client *c, struct pr_upstream *u, const char *head, size_t head_len,
                  const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    size_t used = 0;
    if (!x->resp_complete && len) {
        llhttp_errno_t err = llhttp_execute(&x->resp_parser, data, len);
        used = len;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
            used = (size_t)(llhttp_get_error_pos(&x->resp_parser) - data);
        else if (err != HPE_OK) {
            upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                         "bad response framing");
            return;
        }
    }
    c->w->m->bytes_to_client += head_len + used;
    int rc = pr__client_send2(c, head, head_len, data, used);
    if (rc < 0) {
        pr__client_close(c);
        return;
    }
    if (rc == 1)
        pr__upstream_stop_read(u);
    if (x->resp_complete)
        finish_exchange(c, u);
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
    for (;;) {
        size_t need = (size_t)x->resp_len + len;
        if (need > x->resp_cap) {
            size_t nc = x->resp_cap ? x->resp_cap : 4096;
            while (nc < need)
                nc *= 2;
            char *p = realloc(x->resp, nc);
            if (!p) {
                pr__client_close(c);
                return;
            }
            x->resp = p;
            x->resp_cap = (uint32_t)nc;
        }
        char *start = x->resp + x->resp_len;
        memmove(start, data, len);
        x->resp_len += (uint32_t)len;
        llhttp_errno_t err = llhttp_execute(&x->resp_parser, start, len);
        if (err == HPE_OK) {
            if (x->resp_len > PR_RESP_HEAD_MAX)
                upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                             "pod response head too large");
            return;
        }
        if (err != HPE_PAUSED) {
            upstream_bad(c, u, PR_ERR_RESET, 502, "upstream_unavailable",
                         "pod sent a malformed response");
            return;
        }
        uint32_t head_end = (uint32_t)(llhttp_get_error_pos(&x->resp_parser) - x->resp);
        int status = x->resp_parser.status_code;
        if (status >= 100 && status < 200 && status != 101) {
            /* Interim response (100 Continue): pass it on, then parse the real one. */
            if (pr__client_send(c, x->resp, head_end) < 0) {
                pr__client_close(c);
                return;
            }
            uint32_t rest = x->resp_len - head_end;
            memmove(x->resp, x->resp + head_end, rest);
            llhttp_init(&x->resp_parser, HTTP_RESPONSE, &resp_settings);
            x->resp_parser.data = c;
            x->resp_len = 0;
            x->nheaders = 0;
            x->in_value = false;
            x->resp_complete = false;
            if (rest == 0)
                return;
            data = x->resp; /* re-parse what followed the interim head, in place */
            len = rest;
            continue;
        }
        x->resp_head_done = true;
        x->resp_started = true;
        x->status = status;
        int cls = status / 100;
        w->m->requests[PR_LISTENER_PUBLIC][cls >= 1 && cls <= 5 ? cls : 5]++;
        pr_hist_observe(&w->m->request_duration, (double)(uv_hrtime() - x->start_ns) / 1e9);
        x->sniffing = x->aff.handshake && !x->aff.websocket && status == 200 &&
                      x->req_parser.method == HTTP_GET;
        if (x->sniffing)
            pr_sid_sniffer_init(&x->sniffer);
        int hl = build_response_head(c, head_end);
        if (hl < 0) {
            pr__client_close(c);
            return;
        }
        uint32_t rest = x->resp_len - head_end;
        if (status == 101 && x->req_upgrade) {
            c->w->m->bytes_to_client += (uint64_t)hl;
            if (pr__client_send(c, x->out, (size_t)hl) < 0) {
                pr__client_close(c);
                return;
            }
            pr__tunnel_start(c, x->resp + head_end, rest);
            return;
        }
        if (!x->resp_complete)
            llhttp_resume(&x->resp_parser);
        relay(c, u, x->out, (size_t)hl, x->resp + head_end, x->resp_complete ? 0 : rest);
        return;
    }
}

void pr__proxy_on_upstream_eof(struct pr_upstream *u, int err)
{
    struct pr_client *c = u->client;
    if (!c) {
        pr__upstream_close(u);
        return;
    }
    if (u->state == PR_U_TUNNEL || c->state == PR_C_TUNNEL) {
        pr__client_close(c);
        return;
    }
    struct pr_exchange *x = c->x;
    if (x && x->resp_head_done) {
        if (err == UV_EOF && llhttp_finish(&x->resp_parser) == HPE_OK && x->resp_complete) {
            c->close_after_write = true;
            c->up = NULL;
            pr__upstream_close(u);
            pr__client_request_done(c);
            return;
        }
        c->w->m->proxy_errors[PR_ERR_RESET]++;
        pr__client_close(c);
        return;
    }
    /* No response yet. A reused keep-alive connection the pod closed just as we sent:
     * retry once on a fresh connection when no body bytes were consumed. */
    if (u->reused && !u->got_bytes && x && !x->retried && x->req_complete &&
        x->req_parser.content_length == 0 && !(x->req_parser.flags & F_CHUNKED)) {
        x->retried = true;
        struct pr_pool *p = u->pool;
        c->up = NULL;
        u->client = NULL;
        pr__upstream_close(u);
        int rc = pr__upstream_acquire(c->w, p, c);
        if (rc < 0)
            pr__proxy_upstream_failed(c, NULL, rc);
        return;
    }
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
 * try on another pod; pinned keys never move because of one failed connect. */
void pr__proxy_upstream_failed(struct pr_client *c, struct pr_upstream *u, int err)
{
    struct pr_exchange *x = c->x;
    c->up = NULL;
    c->w->m->proxy_errors[err == UV_ETIMEDOUT ? PR_ERR_TIMEOUT : PR_ERR_CONNECT]++;
    pr_registry_record_failure(pr__srv.reg, x->pod);
    pr_warn("pod connect failed", "pod", x->pod, "error", uv_err_name(err), "request_id",
            x->request_id);
    bool movable = x->key_kind == PR_KEY_NONE || x->key_kind == PR_KEY_COOKIE ||
                   x->outcome == PR_OUTCOME_CREATED || x->outcome == PR_OUTCOME_REASSIGNED;
    if (!x->retried && !x->aff.sid_len && movable) {
        x->retried = true;
        snprintf(x->first_pod, sizeof(x->first_pod), "%s", x->pod);
        enum pr_key_kind kind = (enum pr_key_kind)x->key_kind;
        size_t kl;
        const char *key = key_of(x, kind, &kl);
        struct pr_pod_info chosen;
        if (choose(c, key, kl, store_degraded(c), &chosen) == 0) {
            snprintf(x->pod, sizeof(x->pod), "%s", chosen.name);
            if (kind == PR_KEY_ROOM || kind == PR_KEY_PARTICIPANT) {
                x->outcome = PR_OUTCOME_REASSIGNED;
                hold(c);
                c->w->store->ops->replace(c->w->store, kind, key, kl, x->first_pod,
                                          chosen.name, assigned_cb, c);
            } else {
                x->key_kind = PR_KEY_NONE;
                go_to_pod(c, &chosen);
            }
            return;
        }
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
    pr__upstream_close(u);
}

void pr__proxy_upstream_drained(struct pr_upstream *u)
{
    struct pr_client *c = u->client;
    if (!c || c->closing)
        return;
    if (c->state == PR_C_TUNNEL || (c->state == PR_C_PROXYING && c->x && !c->x->req_complete))
        pr__client_start_read(c);
}

void pr__proxy_client_drained(struct pr_client *c)
{
    struct pr_upstream *u = c->up;
    if (!u)
        return;
    if (c->state == PR_C_TUNNEL || c->state == PR_C_PROXYING)
        pr__upstream_start_read(u);
}
