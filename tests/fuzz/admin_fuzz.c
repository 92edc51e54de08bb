/* libFuzzer target: arbitrary bytes as the JSON body of admin writes (SPEC 4.2). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/admin.h"
#include "podrouter/config.h"
#include "podrouter/log.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"

static struct pr_config cfg;
static struct pr_admin_ctx ctx;

/* One registry and memory store for the whole run, with a pod to pin rooms to. */
static void init_once(void)
{
    if (ctx.reg)
        return;
    pr_log_init(PR_LOG_ERROR, PR_LOG_JSON);
    snprintf(cfg.store, sizeof(cfg.store), "memory");
    cfg.pod_ttl_ms = 3600 * 1000u;
    cfg.room_ttl_ms = cfg.participant_ttl_ms = cfg.sid_ttl_ms = 3600 * 1000u;
    ctx.cfg = &cfg;
    ctx.reg = pr_registry_create(cfg.pod_ttl_ms);
    ctx.store = pr_store_memory_open(&cfg, ctx.reg);
    if (!ctx.reg || !ctx.store)
        abort();
    if (pr_registry_put(ctx.reg, "backend-0", "10.0.0.1:3000", 20, 80, NULL, NULL) != 0)
        abort();
}

/* Send data as the body of method path and check the response is well formed. */
static void send(const char *method, const char *path, const uint8_t *data, size_t size)
{
    struct pr_admin_request req = {
        .method = method,
        .path = path,
        .authorization = NULL,
        .content_type = "application/json",
        .body = (const char *)data,
        .body_len = size,
        .peer_loopback = true,
    };
    struct pr_admin_response resp;
    pr_admin_handle(&ctx, &req, &resp);
    if (resp.status < 200 || resp.status > 599 || (resp.body_len && !resp.body))
        abort();
    free(resp.body);
}

/* Feed one input to both write routes; must never crash or leak. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    /* Copy so reads past size are caught by ASan (the body is not NUL-terminated). */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    send("PUT", "/v1/pods/x", copy, size);
    send("PUT", "/v1/rooms/r", copy, size);
    free(copy);
    return 0;
}
