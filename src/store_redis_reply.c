/* Redis store, reply objects: the hiredis reader's object functions for our connections.
 * They build the same redisReply trees as hiredis's own, but each object is ONE allocation:
 * a string's bytes and an array's element vector live in the block of their redisReply
 * (hiredis's allocate both separately, and zero them), which halves the allocations of the
 * batch answers and the P events messages. freeObject is ours too: hiredis frees what its
 * reader made through reader->fn->freeObject, and nothing in the store frees a reply. */
#include <stdlib.h>
#include <string.h>

#include "store_redis_int.h"

/* A reply object of type with extra bytes after it, linked into its parent array. */
static redisReply *make(const redisReadTask *task, int type, size_t extra)
{
    redisReply *r = malloc(sizeof(*r) + extra);
    if (!r)
        return NULL;
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

static void free_object(void *p)
{
    redisReply *r = p;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            free_object(r->element[i]);
    free(r);
}

static redisReplyObjectFunctions fns = {create_string, create_array, create_integer, create_nil,
                                        free_object};

/* Make reader build its replies with these functions (before it read anything). */
void pr__rs_reply_fns(redisReader *reader)
{
    if (reader)
        reader->fn = &fns;
}
