/* Store selection: cfg->store names the backend (SPEC 2, 6). */
#include "podrouter/store.h"

#include <stdio.h>
#include <string.h>

#include "atable.h"
#include "podrouter/config.h"

/* true when s starts with prefix. */
static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Open the backend named by cfg->store; NULL with err filled when it cannot be used. */
struct pr_store *pr_store_open(const struct pr_config *cfg, struct pr_registry *reg,
                               uv_loop_t *loop, char *err, size_t errlen)
{
    if (!cfg) {
        snprintf(err, errlen, "store: no configuration");
        return NULL;
    }
    if (strcmp(cfg->store, "memory") == 0) {
        struct pr_store *s = pr_store_memory_open(cfg, reg);
        if (!s)
            snprintf(err, errlen, "store: out of memory");
        return s;
    }
    if (starts_with(cfg->store, "redis://") || starts_with(cfg->store, "redis-sentinel://"))
        return pr_store_redis_open(cfg, reg, loop, err, errlen);
    snprintf(err, errlen, "--store: unknown store \"%.64s\" (memory, redis://, redis-sentinel://)",
             cfg->store);
    return NULL;
}

/* Same hash as the assignment table's, so touch_hash finds the entry without its key. */
uint64_t pr_store_key_hash(enum pr_key_kind kind, const char *key, size_t len)
{
    return pr__atab_hash((uint8_t)kind, key ? key : "", key ? len : 0);
}
