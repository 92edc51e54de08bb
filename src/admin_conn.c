/* Admin connection: the admin listener's exchanges (bounded body, store prefetch, the
 * pure pr_admin_handle) over the same client transport and request parser. */
#include "admin_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "exchange.h"
#include "podrouter/admin.h"
#include "podrouter/store.h"
#include "respond.h"
#include "worker.h"

static const struct pr_server *admin_srv; /* for admin_draining (a callback without context) */

static bool admin_draining(void)
{
    return atomic_load(&admin_srv->draining);
}

static void admin_handle(struct pr_client *c);

/* The shared store answered the look-up below; its cache now holds the key, if any. */
static void admin_prefetched(void *arg, int status, const char *pod)
{
    struct pr_client *c = arg;
    if (!pr__client_unhold(c))
        return; /* gone (freed with its input buffer by client.c) */
    admin_handle(c);
}

/* With a shared store (Redis) this replica's cache may not know an assignment another
 * replica made: GET /v1/rooms/{id} and /v1/participants/{id} look it up in the store first
 * (asynchronously), then answer from the cache like every other admin route. */
static void admin_dispatch(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    struct pr_store *st = c->w->store;
    if (st->ops->pod_put && x->req_parser.method == HTTP_GET) {
        static const struct {
            const char *prefix;
            enum pr_key_kind kind;
        } routes[] = {{"/v1/rooms/", PR_KEY_ROOM}, {"/v1/participants/", PR_KEY_PARTICIPANT}};
        const char *url = x->head.p + x->url_off;
        size_t ul = x->url_len;
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            size_t pl = strlen(routes[i].prefix);
            if (ul <= pl || memcmp(url, routes[i].prefix, pl) != 0)
                continue;
            size_t kl = 0;
            while (pl + kl < ul && url[pl + kl] != '?' && url[pl + kl] != '/')
                kl++;
            if (!pr_key_valid(url + pl, kl))
                break;
            c->store_refs++;
            st->ops->get(st, routes[i].kind, url + pl, kl, admin_prefetched, c);
            return;
        }
    }
    admin_handle(c);
}

static void admin_handle(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    const struct pr_server *srv = c->w->srv;
    char method[16], path[1024];
    const char *m = llhttp_method_name((llhttp_method_t)x->req_parser.method);
    snprintf(method, sizeof(method), "%s", m);
    size_t pl = 0;
    const char *url = x->head.p + x->url_off;
    while (pl < x->url_len && url[pl] != '?' && pl < sizeof(path) - 1) {
        path[pl] = url[pl];
        pl++;
    }
    path[pl] = 0;
    /* Header values as C strings, whatever their length (bounded by the head limit). */
    static const char *const names[] = {"authorization", "content-type", "origin", "host",
                                        "sec-fetch-site"};
    char *vals[5] = {NULL, NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < 5; i++) {
        const struct pr_header *h = pr_head_find(&x->rh, names[i]);
        if (h)
            vals[i] = strndup(h->value, h->value_len);
    }
    struct pr_admin_ctx ctx = {
        .cfg = &srv->cfg,
        .reg = srv->reg,
        .store = c->w->store,
        .token = srv->token,
        .token_len = srv->token_len,
        .draining = admin_draining,
        .render_metrics = pr_metrics_render,
    };
    struct pr_admin_request req = {
        .method = method,
        .path = path,
        .authorization = vals[0],
        .content_type = vals[1],
        .origin = vals[2],
        .host = vals[3],
        .fetch_site = vals[4],
        .body = x->body,
        .body_len = x->body_len,
        .peer_loopback = c->peer_loopback,
    };
    struct pr_admin_response resp;
    memset(&resp, 0, sizeof(resp));
    pr_admin_handle(&ctx, &req, &resp);
    for (size_t i = 0; i < 5; i++)
        free(vals[i]);
    bool close = !llhttp_should_keep_alive(&x->req_parser);
    pr__client_respond(c, resp.status, resp.content_type,
                       resp.extra_headers[0] ? resp.extra_headers : NULL, resp.body,
                       resp.body_len, close);
    free(resp.body);
}

/* An admin head is complete: its (small, bounded) body is read through the parser by the
 * input loop, then the request is dispatched. */
static void admin_head(struct pr_client *c)
{
    struct pr_exchange *x = c->x;
    if (x->req_content_length > PR_ADMIN_BODY_MAX) {
        pr__client_error(c, 413, "body_too_large", "request body over 64 KiB", NULL, true);
        return;
    }
    if (x->req_complete)
        admin_dispatch(c);
    else
        llhttp_resume(&x->req_parser);
}

/* Admin request body bytes through the parser; dispatch once the message is complete. */
static size_t admin_body(struct pr_client *c, const char *data, size_t len)
{
    struct pr_exchange *x = c->x;
    llhttp_errno_t err = llhttp_execute(&x->req_parser, data, len);
    size_t used = len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
        used = (size_t)(llhttp_get_error_pos(&x->req_parser) - data);
    else if (err != HPE_OK) {
        pr__exchange_parse_error(c, err);
        return len;
    }
    if (x->req_complete)
        admin_dispatch(c);
    return used;
}

/* While the head is routed, the rest of a bounded admin body goes through the parser. */
static size_t admin_data(struct pr_client *c, const char *data, size_t len)
{
    if (c->state == PR_C_ROUTING && c->x && !c->x->req_complete)
        return admin_body(c, data, len);
    return pr__exchange_consume(c, data, len);
}

static void admin_drain(struct pr_client *c)
{
    (void)c; /* the admin listener answers until the worker stops */
}

const struct pr_client_handlers pr__admin_client_handlers = {
    .on_head = admin_head,
    .on_data = admin_data,
    .on_drained = pr__exchange_on_drained,
    .on_gone = pr__exchange_on_gone,
    .on_timeout = pr__exchange_on_timeout,
    .on_room = pr__exchange_on_room,
    .on_drain = admin_drain,
};

void pr__on_admin_connection(uv_stream_t *server, int status)
{
    pr__exchange_settings_init();
    if (status < 0)
        return;
    admin_srv = ((struct pr_worker *)server->data)->srv;
    struct pr_client *c = pr__client_accept(server, &pr__admin_client_handlers, true);
    if (c)
        c->peer_loopback = pr__peer_is_loopback(c);
}
