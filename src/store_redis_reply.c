/* Redis store, reply objects: the hiredis reader's object functions for our connections.
 * They build the same redisReply trees as hiredis's own, but without an allocation per
 * object: hiredis builds one reply at a time per connection and frees it (its root: hiredis
 * never frees a child on its own) before it starts the next, so every object of a reply is
 * carved from the connection's arena (struct pr__rs_arena, in struct conn) and freeing the
 * root resets the arena. An object that does not fit (a reply larger than the arena) is
 * malloc'd, a string's bytes and an array's element vector always in the block of their
 * redisReply. Each object carries a small header naming its arena and whether it was
 * malloc'd. freeObject is ours too: hiredis frees what its reader made through
 * reader->fn->freeObject, and nothing in the store frees or keeps a reply.
 *
 * They also refuse the replies that hiredis 0.14's async dispatch cannot take: it asserts,
 * aborting the router, on a reply that no command waits for on a connection that is not
 * subscribed, and on a subscribed one on a push that is not an array of at least three with
 * two strings first, or on an unsubscribe; and it runs the previous reply's callback again
 * (its request freed) for a push whose channel or pattern it has no callback for. So on a
 * subscribed context a push must be [kind, our channel, ...] with a kind that is neither a
 * pattern's ("p...") nor an unsubscribe. Anything on the Redis link can send such bytes; a
 * refused reply fails the reader (hiredis: out of memory), so the connection closes and the
 * store reconnects (arena->refused says why in the log).
 *
 * Also here: the direct read of a subscribed connection (pr__rs_read_direct), and our own
 * reading of the P events subscription (pr__rs_read_events). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "store_redis_int.h"

/* Under ASan the arena's free part is poisoned, so a reply used after it was freed is still
 * reported, as it was when every object was malloc'd. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* In front of every object. */
struct hdr {
    struct pr__rs_arena *arena;
    size_t heap; /* 1: malloc'd */
};
_Static_assert(sizeof(struct hdr) % 16 == 0, "objects stay 16-byte aligned");

/* Whether hiredis's dispatch of a's context takes what the reader is building: a reply with
 * a command waiting for it, or a push on a subscribed context (checked as its parts come). */
static bool unwaited(const struct pr__rs_arena *a)
{
    return a && a->ac && !a->ac->replies.head;
}

static bool subscribed(const struct pr__rs_arena *a)
{
    return (a->ac->c.flags & REDIS_SUBSCRIBED) != 0;
}

static void *refuse(struct pr__rs_arena *a, const char *why)
{
    if (a)
        a->refused = why;
    return NULL;
}

/* A reply object of type with extra bytes after it, linked into its parent array. */
static redisReply *make(const redisReadTask *task, int type, size_t extra)
{
    struct pr__rs_arena *a = task->privdata;
    if (!task->parent && unwaited(a)) {
        if (!subscribed(a))
            return refuse(a, "a reply no command waits for");
        if (type != REDIS_REPLY_ARRAY)
            return refuse(a, "a subscription push that is not an array");
    } else if (task->parent && !task->parent->parent && task->idx < 2 && unwaited(a) &&
               type != REDIS_REPLY_STRING) {
        return refuse(a, "a subscription push whose kind or channel is not a string");
    }
    size_t need = (sizeof(struct hdr) + sizeof(redisReply) + extra + 15) & ~(size_t)15;
    struct hdr *h;
    if (a && need <= REPLY_ARENA - a->used) {
        h = (struct hdr *)(void *)(a->mem + a->used);
        ARENA_UNPOISON(h, need);
        a->used += need;
        h->heap = 0;
    } else {
        h = malloc(need);
        if (!h)
            return NULL;
        h->heap = 1;
    }
    h->arena = a;
    redisReply *r = (redisReply *)(h + 1);
    r->type = type;
    r->integer = 0;
    r->len = 0;
    r->str = NULL;
    r->elements = 0;
    r->element = NULL;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    struct pr__rs_arena *a = task->privdata;
    if (task->parent && !task->parent->parent && task->idx < 2 && unwaited(a)) {
        if (task->idx == 0 && len > 0 && (str[0] == 'p' || str[0] == 'P'))
            return refuse(a, "a pattern subscription push");
        if (task->idx == 0 && len == 11 && strncasecmp(str, "unsubscribe", 11) == 0)
            return refuse(a, "an unsubscribe push");
        if (task->idx == 1 &&
            (!a->channel || len != strlen(a->channel) || memcmp(str, a->channel, len) != 0))
            return refuse(a, "a push for a channel not subscribed");
    }
    redisReply *r = make(task, task->type, len + 1);
    if (!r)
        return NULL;
    r->str = (char *)(r + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    struct pr__rs_arena *a = task->privdata;
    if (elements > REPLY_ELEMENTS_MAX)
        return refuse(a, "a reply array over the size limit");
    if (!task->parent && unwaited(a) && subscribed(a) && elements < 3)
        return refuse(a, "a subscription push of fewer than three parts");
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *r = make(task, REDIS_REPLY_ARRAY, n * sizeof(redisReply *));
    if (!r)
        return NULL;
    if (n) {
        r->element = (redisReply **)(void *)(r + 1);
        memset(r->element, 0, n * sizeof(redisReply *)); /* a reply cut short frees these */
    }
    r->elements = n;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = make(task, REDIS_REPLY_INTEGER, 0);
    if (r)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return make(task, REDIS_REPLY_NIL, 0);
}

static struct hdr *hdr_of(redisReply *r)
{
    return (struct hdr *)(void *)r - 1;
}

/* Free the malloc'd objects of the tree at r (the arena's go with the reset). */
static void free_heap(redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i])
                free_heap(r->element[i]);
    struct hdr *h = hdr_of(r);
    if (h->heap)
        free(h);
}

/* Free a reply (hiredis calls it on roots only): the heap objects, then reset the arena. */
static void free_object(void *p)
{
    redisReply *r = p;
    if (!r)
        return;
    struct pr__rs_arena *a = hdr_of(r)->arena;
    free_heap(r);
    if (a) {
        ARENA_POISON(a->mem, a->used);
        a->used = 0;
    }
}

static redisReplyObjectFunctions fns = {create_string, create_array, create_integer, create_nil,
                                        free_object};

/* Make reader build its replies with these functions in arena (before it read anything). */
void pr__rs_reply_fns(redisReader *reader, struct pr__rs_arena *arena,
                      const redisAsyncContext *ac)
{
    if (!reader)
        return;
    arena->ac = ac;
    arena->refused = NULL;
    arena->channel = NULL;
    arena->used = 0;
    arena->skip = 0;
    ARENA_POISON(arena->mem, sizeof(arena->mem));
    reader->fn = &fns;
    reader->privdata = arena;
}

/* Read what a connected, subscribed context's socket holds and give every complete reply to
 * fn (then free it), without hiredis's callback dispatch: once the subscription is confirmed
 * only pushed messages arrive, and hiredis keeps no state for a message (its dispatch would
 * copy the channel name and look it up per message). A read or protocol error goes to
 * hiredis's own read handler, which disconnects as usual. */
void pr__rs_read_direct(redisAsyncContext *ac, void (*fn)(void *arg, redisReply *r), void *arg)
{
    redisContext *c = &ac->c;
    if (redisBufferRead(c) != REDIS_OK) {
        redisAsyncHandleRead(ac); /* sees c->err: disconnects */
        return;
    }
    void *r = NULL;
    while (redisGetReply(c, &r) == REDIS_OK && r) {
        fn(arg, r);
        c->reader->fn->freeObject(r);
        r = NULL;
    }
    if (c->err)
        redisAsyncHandleRead(ac);
}

/* "*3\r\n$7\r\nmessage\r\n$<n>\r\n<channel>\r\n$": what every message on the P events
 * subscription starts with (pr__rs_g filled, lock held). */
void pr__rs_message_prefix(void)
{
    char *p = pr__rs_g.msg_prefix;
    size_t cl = strlen(pr__rs_g.channel);
    memcpy(p, "*3\r\n$7\r\nmessage\r\n", 17);
    p += 17;
    p += pr_redis_bulk(p, pr__rs_g.channel, cl);
    *p++ = '$';
    pr__rs_g.msg_prefix_len = (size_t)(p - pr__rs_g.msg_prefix);
}

/* The message at p[0..n): its length in all (> n when only part of it is here), with *off
 * and *len its payload's; 0 when its head is not complete yet, -1 when it is not a message
 * on our channel. */
static long message_at(const char *p, size_t n, size_t *off, size_t *len)
{
    const char *pre = pr__rs_g.msg_prefix;
    size_t pl = pr__rs_g.msg_prefix_len, i = pl;
    if (memcmp(p, pre, n < pl ? n : pl) != 0)
        return -1;
    size_t m = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        m = m * 10 + (size_t)(p[i] - '0');
        if (i - pl >= 9)
            return -1;
    }
    if (i + 2 > n)
        return 0;
    if (i == pl || p[i] != '\r' || p[i + 1] != '\n')
        return -1;
    *off = i + 2;
    *len = m;
    return (long)(i + 2 + m + 2);
}

/* Our own reading of the P events subscription, once hiredis's reader holds nothing of it
 * (the subscription is confirmed: only messages on our channel arrive): one read into the
 * connection's arena (which builds no reply objects from then on), every complete message's
 * payload to fn, NUL-terminated in place; a partial one waits for the next read. A payload
 * longer than any message we accept (PR_REDIS_EVENT_MAX) is skipped as it streams by, as the
 * parser would ignore it. 0; -1 when the socket is closed or failed (hiredis's read handler
 * then disconnects as usual); -EPROTO for anything but a message on our channel. */
int pr__rs_read_events(redisAsyncContext *ac, struct pr__rs_arena *in,
                       void (*fn)(void *arg, const char *msg, size_t len), void *arg)
{
    char *buf = (char *)in->mem;
    ARENA_UNPOISON(buf, REPLY_ARENA);
    ssize_t r = read(ac->c.fd, buf + in->used, REPLY_ARENA - in->used);
    if (r <= 0)
        return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    size_t len = in->used + (size_t)r, pos = 0;
    while (pos < len) {
        if (in->skip) {
            size_t k = in->skip < len - pos ? in->skip : len - pos;
            pos += k;
            in->skip -= k;
            continue;
        }
        size_t off = 0, m = 0;
        long t = message_at(buf + pos, len - pos, &off, &m);
        if (t < 0)
            return -EPROTO;
        if (t == 0)
            break;
        if (m > PR_REDIS_EVENT_MAX) {
            in->skip = (size_t)t;
            continue;
        }
        if ((size_t)t > len - pos)
            break;
        if (buf[pos + off + m] != '\r' || buf[pos + off + m + 1] != '\n')
            return -EPROTO;
        buf[pos + off + m] = '\0';
        fn(arg, buf + pos + off, m);
        pos += (size_t)t;
    }
    memmove(buf, buf + pos, len - pos);
    in->used = len - pos;
    return 0;
}
