/* Redis store, commands (see store_redis.c for the design): the script call, the create
 * script for an assignment, and the parsing of values and [flag, value] answers, used by the
 * store ops (store_redis.c) and the owner's write-back (store_redis_owner.c). Calls only down,
 * into store_redis_conn.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_redis_int.h"

/* ---- commands -------------------------------------------------------------------------- */

/* Run the script: keys then args (C strings; args[0] is the op). q->op set by caller via op.
 * Returns the queued request, or NULL (not queued: connection down or out of memory). */
struct req *pr__rs_script(struct redis_store *rs, enum op op, int nkeys, const char **keys,
                          int nargs, const char **args)
{
    if (!is_up(rs) && !pr__rs_can_wait(rs))
        return NULL; /* (pr__rs_req_submit lets only lookups and assignments wait) */
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    int argc = 0;
    if (nkeys < 0 || nkeys > 9 || 3 + nkeys + 1 + nargs > MAX_ARGS)
        return NULL;
    char nk[2] = {(char)('0' + nkeys), '\0'};
    argv[argc++] = "EVALSHA";
    argv[argc++] = pr__rs_g.sha;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    argv[argc++] = args[0];
    argv[argc++] = pr__rs_g.channel;
    for (int i = 1; i < nargs; i++)
        argv[argc++] = args[i];
    for (int i = 0; i < argc; i++)
        argl[i] = strlen(argv[i]);
    struct req *q = pr__rs_req_new(op, argc, argv, argl);
    if (!q)
        return NULL;
    if (pr__rs_req_submit(rs, q) != 0) {
        pr__rs_req_free(q);
        return NULL;
    }
    return q;
}

/* Fill q's key fields. */
void pr__rs_req_key(struct req *q, enum pr_key_kind kind, const char *key, size_t len,
                    const char *pod)
{
    q->kind = (uint8_t)kind;
    q->key_len = (uint8_t)len;
    memcpy(q->key, key, len);
    q->key[len] = '\0';
    if (pod)
        pr_str_copy(q->pod, sizeof(q->pod), pod);
}

/* Assignment key of kind:key into buf; false when it cannot be built. */
bool pr__rs_akey(char *buf, size_t cap, enum pr_key_kind kind, const char *key, size_t len)
{
    return pr_redis_assignment_key(buf, cap, pr__rs_g.prefix, kind, key, len) > 0;
}

/* Send the create script for kind:key -> pod (count/at for rooms). */
struct req *pr__rs_send_create(struct redis_store *rs, enum op op, enum pr_key_kind kind,
                               const char *key, size_t len, const char *pod, uint32_t count,
                               uint64_t at, bool tentative)
{
    char k[PR_REDIS_KEY_MAX], m[PR_REDIS_KEY_MAX], id[PR_KEY_MAX + 1], ttl[24], cnt[16],
        ats[24], shortttl[24];
    if (!pr__rs_akey(k, sizeof(k), kind, key, len))
        return NULL;
    int nkeys = 1; /* a room's members set: a second use renews it with the room */
    if (kind == PR_KEY_ROOM && pr_redis_members_key(m, sizeof(m), pr__rs_g.prefix, key, len) > 0)
        nkeys = 2;
    snprintf(id, sizeof(id), "%.*s", (int)len, key);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)pr__rs_g.ttl[kind]);
    snprintf(cnt, sizeof(cnt), "%u", (unsigned)count);
    snprintf(ats, sizeof(ats), "%llu", (unsigned long long)(at ? at : pr_now_ms()));
    snprintf(shortttl, sizeof(shortttl), "%llu",
             (unsigned long long)(tentative ? pr__rs_g.active_ms : 0));
    const char *keys[] = {k, m};
    const char *args[] = {"create", pr_redis_kind_name(kind), id, pod, ttl, cnt, ats, shortttl};
    struct req *q = pr__rs_script(rs, op, nkeys, keys, 8, args);
    if (q) {
        pr__rs_req_key(q, kind, key, len, pod);
        q->count = count;
        q->at = at;
    }
    return q;
}

/* A podId another writer gave as a DNS name (backend-1.backend.ns.svc…) names the
 * registered pod of its first label, unless a pod is registered under the full name. */
static void pod_alias(struct pr_registry *reg, char pod[PR_POD_NAME_MAX + 1])
{
    const char *dot = strchr(pod, '.');
    struct pr_pod_info info;
    if (!dot || pr_registry_get(reg, pod, &info) == 0)
        return;
    char first[PR_POD_NAME_MAX + 1];
    snprintf(first, sizeof(first), "%.*s", (int)(dot - pod), pod);
    if (pr_registry_get(reg, first, &info) == 0)
        memcpy(pod, first, sizeof(first));
}

/* Parse a plain or room value of q's key; 0 with pod/count/at, or -EINVAL. */
int pr__rs_value_of(const struct req *q, const redisReply *v, char pod[PR_POD_NAME_MAX + 1],
                    uint32_t *count, uint64_t *at)
{
    if (!v || v->type != REDIS_REPLY_STRING)
        return -EINVAL;
    int rc = pr_redis_value_pod((enum pr_key_kind)q->kind, v->str, v->len, pod, count, at);
    if (rc == 0)
        pod_alias(q->conn->rs->reg, pod);
    return rc;
}

/* The [flag, value] answer of create/replace; 0 with the value parsed, else -EINVAL. */
int pr__rs_script_value(const struct req *q, const redisReply *r, char pod[PR_POD_NAME_MAX + 1],
                        uint32_t *count, uint64_t *at, bool *written)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return -EINVAL;
    *written = r->element[0]->integer == 1;
    return pr__rs_value_of(q, r->element[1], pod, count, at);
}
