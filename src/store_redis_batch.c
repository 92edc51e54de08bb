/* Redis store, batches (see store_redis.c for the design): the sid pins of new handshakes and
 * the participant joins issued during one loop iteration go out as ONE script call (the
 * script's "batch" operation, redis_script.lua.h) when the connection's flusher runs, instead
 * of one SET NX and one EVALSHA each: one request, one RESP command built here directly, one
 * reply. Inside Redis every entry does what its single command did (a pin is a SET NX with
 * the tentative TTL, a sid there already keeps its value and gets its full TTL; a join is the
 * join operation, with its count event), so keys, values, TTLs and events are unchanged.
 * The command is written once, in place: the keys go into one buffer after room for the
 * command's head, the per-entry arguments into another; at send the head is written in front
 * of the keys and the fixed arguments (made once per process) and the entries' arguments are
 * appended, and that buffer is what hiredis gets. The answers are dispatched per entry by
 * store_redis.c (OP_BATCH). Calls only down, into store_redis_conn.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "store_redis_int.h"

/* Room for the command's head:
 * "*<argc>\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>\r\n$<n>\r\n<numkeys>\r\n". */
#define HEAD_ROOM 96
/* The fixed arguments: "batch", channel, the three TTLs, the members' limit, the origin. */
#define BATCH_FIXED 7

/* Room for more bytes after *len in a growable buffer; 0 or -ENOMEM. */
static int reserve(char **buf, size_t len, size_t *cap, size_t more)
{
    size_t need = len + more;
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 1024;
    while (nc < need)
        nc *= 2;
    char *nb = realloc(*buf, nc);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = nc;
    return 0;
}

/* One RESP bulk string made of up to three parts (a key with its prefix and suffix) at out;
 * its length. */
static size_t bulk3(char *out, const char *a, size_t al, const char *b, size_t bl, const char *c,
                    size_t cl)
{
    char *p = out;
    *p++ = '$';
    p += pr_redis_u64(p, al + bl + cl);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, a, al);
    memcpy(p + al, b, bl);
    memcpy(p + al + bl, c, cl);
    p += al + bl + cl;
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - out);
}

/* The fixed arguments of every batch call ("batch", channel, the TTLs, the members' limit, this
 * process's origin token: a random "@" and 16 hex digits) as RESP, once per process (pr__rs_g
 * filled, lock held). */
void pr__rs_batch_init(void)
{
    char sttl[24], fttl[24], rttl[24], max[24];
    uint64_t token = 0;
    if (getrandom(&token, sizeof(token), 0) != (ssize_t)sizeof(token))
        token = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&token;
    pr__rs_g.origin_len = (size_t)snprintf(pr__rs_g.origin, sizeof(pr__rs_g.origin), "@%016llx",
                                           (unsigned long long)token);
    uint64_t full = pr__rs_g.ttl[PR_KEY_SID], t = full;
    if (pr__rs_g.active_ms > 0 && pr__rs_g.active_ms < t)
        t = pr__rs_g.active_ms; /* a new sid is tentative until its second use (SPEC 3.6) */
    const char *fixed[] = {"batch", pr__rs_g.channel, sttl, fttl, rttl, max, pr__rs_g.origin};
    size_t fl[] = {5,
                   strlen(pr__rs_g.channel),
                   pr_redis_u64(sttl, t),
                   pr_redis_u64(fttl, full),
                   pr_redis_u64(rttl, pr__rs_g.ttl[PR_KEY_ROOM]),
                   pr_redis_u64(max, MEMBERS_MAX),
                   pr__rs_g.origin_len};
    size_t n = 0;
    for (int i = 0; i < BATCH_FIXED; i++)
        n += pr_redis_bulk(pr__rs_g.batch_fixed + n, fixed[i], fl[i]);
    pr__rs_g.batch_fixed_len = n;
    pr__rs_g.prefix_len = strlen(pr__rs_g.prefix);
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

static void batch_send(struct redis_store *rs);

/* The batch of this iteration, with room for one more entry (a full one is sent first; the
 * entries grow by doubling, so a batch of one costs no big allocation). */
static struct pr__rs_batch *batch_of(struct redis_store *rs)
{
    struct pr__rs_batch *b = rs->batch;
    if (b && b->n == BATCH_MAX) {
        batch_send(rs);
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
        nb->keys_len = HEAD_ROOM;
        pr__rs_flush_soon(rs);
    }
    nb->cap = cap;
    rs->batch = nb;
    return nb;
}

/* Queue a new sid's pin (sid and pod checked by the caller); 0, or -1 when it cannot be
 * (Redis down, no memory). */
int pr__rs_batch_pin(struct redis_store *rs, const char *sid, size_t len, const char *pod,
                     size_t pl, pr_store_cb cb, void *arg)
{
    size_t pxl = pr__rs_g.prefix_len;
    if (!is_up(rs) || len > PR_KEY_MAX || pl > PR_POD_NAME_MAX)
        return -1;
    struct pr__rs_batch *b = batch_of(rs);
    if (!b || reserve(&b->keys, b->keys_len, &b->keys_cap, pxl + len + 40) ||
        reserve(&b->args, b->args_len, &b->args_cap, pl + 40))
        return -1;
    b->keys_len += bulk3(b->keys + b->keys_len, pr__rs_g.prefix, pxl, "sid:", 4, sid, len);
    memcpy(b->args + b->args_len, "$1\r\np\r\n", 7);
    b->args_len += 7;
    b->args_len += pr_redis_bulk(b->args + b->args_len, pod, pl);
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

/* Queue a join of who into room, after which the cache counted count (fire-and-forget: an
 * answer above that raises the cached count). The room is one the cache holds, so its id was
 * checked when it was stored: its keys are written here without checking it again. */
void pr__rs_batch_join(struct redis_store *rs, const char *room, size_t len, const char *who,
                       size_t who_len, uint32_t count)
{
    size_t pxl = pr__rs_g.prefix_len;
    if (!is_up(rs) || len == 0 || len > PR_KEY_MAX || who_len == 0 || who_len > PR_KEY_MAX)
        return;
    struct pr__rs_batch *b = batch_of(rs);
    if (!b || reserve(&b->keys, b->keys_len, &b->keys_cap, pxl + 2 * len + 80) ||
        reserve(&b->args, b->args_len, &b->args_cap, len + who_len + 64))
        return;
    char *k = b->keys + b->keys_len;
    k += bulk3(k, "room:", 5, room, len, ":pod", 4); /* SPEC 6.1: no prefix */
    k += bulk3(k, pr__rs_g.prefix, pxl, "room-members:", 13, room, len);
    b->keys_len = (size_t)(k - b->keys);
    char *a = b->args + b->args_len;
    memcpy(a, "$1\r\nj\r\n", 7);
    a += 7;
    a += pr_redis_bulk(a, room, len);
    a += pr_redis_bulk(a, who, who_len);
    b->args_len = (size_t)(a - b->args);
    struct pr__rs_bentry *e = &b->e[b->n++];
    e->join = true;
    e->count = count;
    e->key_len = (uint8_t)len;
    memcpy(e->key, room, len);
    e->key[len] = '\0';
    e->pod[0] = '\0';
    e->cb = NULL;
    e->arg = NULL;
    b->nkeys += 2;
    b->nargs += 3;
}

/* The whole command in b->keys: its head written in front of the keys, the fixed and the
 * entries' arguments appended. Sets q's tail (the buffer, freed with q), tail_off/tail_len
 * (the arguments after the sha: what a NOSCRIPT retry sends after EVAL and the script) and
 * head_len (the bytes before them: the command as is). 0 or -ENOMEM. */
static int batch_command(struct pr__rs_batch *b, struct req *q)
{
    size_t fl = pr__rs_g.batch_fixed_len;
    if (reserve(&b->keys, b->keys_len, &b->keys_cap, fl + b->args_len))
        return -ENOMEM;
    memcpy(b->keys + b->keys_len, pr__rs_g.batch_fixed, fl);
    memcpy(b->keys + b->keys_len + fl, b->args, b->args_len);
    size_t end = b->keys_len + fl + b->args_len;
    int tail_argc = 1 + (int)b->nkeys + BATCH_FIXED + (int)b->nargs;
    char nk[24], head[HEAD_ROOM];
    size_t nkl = pr_redis_u64(nk, b->nkeys);
    char *p = head;
    *p++ = '*';
    p += pr_redis_u64(p, 2 + (uint64_t)tail_argc);
    memcpy(p, "\r\n$7\r\nEVALSHA\r\n", 15);
    p += 15;
    p += pr_redis_bulk(p, pr__rs_g.sha, strlen(pr__rs_g.sha));
    size_t hl = (size_t)(p - head);
    p += pr_redis_bulk(p, nk, nkl);
    size_t start = HEAD_ROOM - (size_t)(p - head);
    memcpy(b->keys + start, head, (size_t)(p - head));
    q->tail = b->keys;
    q->tail_off = start + hl;
    q->tail_len = end - q->tail_off;
    q->tail_argc = tail_argc;
    q->head_len = hl;
    b->keys = NULL;
    return 0;
}

/* Send the batch: one EVALSHA. */
static void batch_send(struct redis_store *rs)
{
    struct pr__rs_batch *b = rs->batch;
    if (!b)
        return;
    rs->batch = NULL;
    if (b->n == 0) {
        batch_free(b);
        return;
    }
    const char *argv[] = {"EVALSHA", pr__rs_g.sha};
    size_t argl[] = {7, strlen(pr__rs_g.sha)};
    struct req *q = pr__rs_req_new(OP_BATCH, 2, argv, argl);
    if (q && batch_command(b, q) == 0) {
        free(b->args);
        b->args = NULL;
        q->batch = b; /* freed with q */
        if (pr__rs_req_send(rs->live[ROLE_CMD], q) == 0) {
            rs->batch_inflight++;
            return;
        }
        q->batch = NULL;
    }
    pr__rs_req_free(q);
    fail_entries(b, -ENOTCONN);
    batch_free(b);
}

/* The flusher is about to write: send the batch, unless BATCH_INFLIGHT batches wait for their
 * answers: then it goes on gathering entries and is sent when one is answered (a group
 * commit: under load fewer, larger script calls; alone, an entry is sent at once). */
void pr__rs_batch_send(struct redis_store *rs)
{
    if (rs->batch_inflight < BATCH_INFLIGHT)
        batch_send(rs);
}

/* A batch was answered (or failed): the one gathering may go. */
void pr__rs_batch_answered(struct redis_store *rs)
{
    if (rs->batch_inflight > 0)
        rs->batch_inflight--;
    if (rs->batch && rs->batch->n > 0)
        pr__rs_flush_soon(rs);
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
