/* Redis store, batches (see store_redis.c for the design): the sid pins of new handshakes and
 * the participant joins issued during one loop iteration go out as ONE script call (the
 * script's "batch" operation, redis_script.lua.h) when the connection's flusher runs, instead
 * of one SET NX and one EVALSHA each: one request, one RESP command built here directly, one
 * reply. Inside Redis every entry does what its single command did (a pin is a SET NX with
 * the tentative TTL, a sid there already keeps its value and gets its full TTL; a join is the
 * join operation, with its count event), so keys, values, TTLs and events are unchanged.
 * The answers are dispatched per entry by store_redis.c (OP_BATCH). Calls only down, into
 * store_redis_conn.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_redis_int.h"

/* Append one RESP bulk string to a growable buffer; 0 or -ENOMEM. */
static int bulk(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    size_t need = *len + n + 32;
    if (need > *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        while (nc < need)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = nc;
    }
    *len += pr_redis_bulk(*buf + *len, s, n);
    return 0;
}

static void batch_free(struct pr__rs_batch *b)
{
    if (!b)
        return;
    free(b->keys);
    free(b->args);
    free(b);
}

/* Entries that will get no answer: a pin keeps our choice locally, to be written back
 * (SPEC 6.3), as a pin without an answer does. */
static void fail_entries(struct pr__rs_batch *b, int status)
{
    for (uint32_t i = 0; i < b->n; i++) {
        struct pr__rs_bentry *e = &b->e[i];
        if (e->join)
            continue;
        pr__rc_put(PR_KEY_SID, e->key, e->key_len, e->pod, 0, 0, PR_RC_IF_ABSENT, true, NULL);
        e->cb(e->arg, status, NULL);
    }
}

/* The batch of this iteration, with room for one more entry (a full one is sent first; the
 * entries grow by doubling, so a batch of one costs no big allocation). */
static struct pr__rs_batch *batch_of(struct redis_store *rs)
{
    struct pr__rs_batch *b = rs->batch;
    if (b && b->n == BATCH_MAX) {
        pr__rs_batch_send(rs);
        b = NULL;
    }
    if (b && b->n < b->cap)
        return b;
    uint32_t cap = b ? b->cap * 2 : 8;
    struct pr__rs_batch *nb = realloc(b, sizeof(*b) + cap * sizeof(b->e[0]));
    if (!nb)
        return NULL; /* the old batch (if any) stays as it was */
    if (!b) {
        memset(nb, 0, sizeof(*nb));
        pr__rs_flush_soon(rs);
    }
    nb->cap = cap;
    rs->batch = nb;
    return nb;
}

/* Queue a new sid's pin; 0, or -1 when it cannot be (Redis down, bad key, no memory). */
int pr__rs_batch_pin(struct redis_store *rs, const char *sid, size_t len, const char *pod,
                     pr_store_cb cb, void *arg)
{
    char k[PR_REDIS_KEY_MAX];
    int kl = pr_redis_assignment_key(k, sizeof(k), pr__rs_g.prefix, PR_KEY_SID, sid, len);
    size_t pl = strlen(pod);
    if (!is_up(rs) || kl <= 0 || pl > PR_POD_NAME_MAX)
        return -1;
    struct pr__rs_batch *b = batch_of(rs);
    size_t keys_len = b ? b->keys_len : 0, args_len = b ? b->args_len : 0;
    if (!b || bulk(&b->keys, &b->keys_len, &b->keys_cap, k, (size_t)kl) ||
        bulk(&b->args, &b->args_len, &b->args_cap, "p", 1) ||
        bulk(&b->args, &b->args_len, &b->args_cap, pod, pl)) {
        if (b) { /* undo a half-added entry */
            b->keys_len = keys_len;
            b->args_len = args_len;
        }
        return -1;
    }
    struct pr__rs_bentry *e = &b->e[b->n++];
    e->join = false;
    e->key_len = (uint8_t)len;
    memcpy(e->key, sid, len);
    e->key[len] = '\0';
    memcpy(e->pod, pod, pl + 1);
    e->cb = cb;
    e->arg = arg;
    b->nkeys++;
    b->nargs += 2;
    return 0;
}

/* Queue a join of who into room (fire-and-forget: its answer updates the cached count). */
void pr__rs_batch_join(struct redis_store *rs, const char *room, size_t len, const char *who,
                       size_t who_len, const char *pod)
{
    char k[PR_REDIS_KEY_MAX], m[PR_REDIS_KEY_MAX];
    int kl = pr_redis_assignment_key(k, sizeof(k), pr__rs_g.prefix, PR_KEY_ROOM, room, len);
    int ml = pr_redis_members_key(m, sizeof(m), pr__rs_g.prefix, room, len);
    if (!is_up(rs) || kl <= 0 || ml <= 0 || who_len > PR_KEY_MAX)
        return;
    struct pr__rs_batch *b = batch_of(rs);
    size_t keys_len = b ? b->keys_len : 0, args_len = b ? b->args_len : 0;
    if (!b || bulk(&b->keys, &b->keys_len, &b->keys_cap, k, (size_t)kl) ||
        bulk(&b->keys, &b->keys_len, &b->keys_cap, m, (size_t)ml) ||
        bulk(&b->args, &b->args_len, &b->args_cap, "j", 1) ||
        bulk(&b->args, &b->args_len, &b->args_cap, room, len) ||
        bulk(&b->args, &b->args_len, &b->args_cap, who, who_len)) {
        if (b) {
            b->keys_len = keys_len;
            b->args_len = args_len;
        }
        return;
    }
    struct pr__rs_bentry *e = &b->e[b->n++];
    e->join = true;
    e->key_len = (uint8_t)len;
    memcpy(e->key, room, len);
    e->key[len] = '\0';
    e->pod[0] = '\0';
    e->cb = NULL;
    e->arg = NULL;
    b->nkeys += 2;
    b->nargs += 3;
}

/* The arguments after the script's sha: numkeys, keys, the fixed ARGV, the entries' ARGV. */
static char *batch_tail(const struct pr__rs_batch *b, size_t *len, int *argc)
{
    char nk[24], sttl[24], fttl[24], rttl[24], max[24];
    uint64_t full = pr__rs_g.ttl[PR_KEY_SID], t = full;
    if (pr__rs_g.active_ms > 0 && pr__rs_g.active_ms < t)
        t = pr__rs_g.active_ms; /* a new sid is tentative until its second use (SPEC 3.6) */
    const char *fixed[] = {"batch", pr__rs_g.channel, sttl, fttl, rttl, max};
    size_t fl[] = {5, strlen(pr__rs_g.channel), pr_redis_u64(sttl, t), pr_redis_u64(fttl, full),
                   pr_redis_u64(rttl, pr__rs_g.ttl[PR_KEY_ROOM]), pr_redis_u64(max, MEMBERS_MAX)};
    size_t nkl = pr_redis_u64(nk, b->nkeys);
    size_t cap = 32 + nkl + b->keys_len + b->args_len;
    for (int i = 0; i < 6; i++)
        cap += fl[i] + 32;
    char *tail = malloc(cap);
    if (!tail)
        return NULL;
    size_t n = pr_redis_bulk(tail, nk, nkl);
    memcpy(tail + n, b->keys, b->keys_len);
    n += b->keys_len;
    for (int i = 0; i < 6; i++)
        n += pr_redis_bulk(tail + n, fixed[i], fl[i]);
    memcpy(tail + n, b->args, b->args_len);
    *len = n + b->args_len;
    *argc = 1 + (int)b->nkeys + 6 + (int)b->nargs;
    return tail;
}

/* Send this iteration's batch (the flusher is about to write): one EVALSHA. */
void pr__rs_batch_send(struct redis_store *rs)
{
    struct pr__rs_batch *b = rs->batch;
    if (!b)
        return;
    rs->batch = NULL;
    if (b->n == 0) {
        batch_free(b);
        return;
    }
    size_t tl = 0;
    int targc = 0;
    char *tail = batch_tail(b, &tl, &targc);
    const char *argv[] = {"EVALSHA", pr__rs_g.sha};
    size_t argl[] = {7, strlen(pr__rs_g.sha)};
    struct req *q = tail ? pr__rs_req_new(OP_BATCH, 2, argv, argl) : NULL;
    free(b->keys);
    free(b->args);
    b->keys = b->args = NULL;
    if (q) {
        q->tail = tail;
        q->tail_len = tl;
        q->tail_argc = targc;
        q->batch = b; /* freed with q */
        if (pr__rs_req_send(rs->live[ROLE_CMD], q) == 0)
            return;
        q->batch = NULL;
        pr__rs_req_free(q);
    } else {
        free(tail);
    }
    fail_entries(b, -ENOTCONN);
    batch_free(b);
}

/* The handle closes: what waits in the batch gets no answer. */
void pr__rs_batch_cancel(struct redis_store *rs, int status)
{
    struct pr__rs_batch *b = rs->batch;
    rs->batch = NULL;
    if (!b)
        return;
    fail_entries(b, status);
    batch_free(b);
}
