/* libFuzzer target: what a Redis server (or anything on its link, or any writer of its keys
 * and channel) sends the store. Three modes, chosen by the first byte:
 *
 *   0  reply bytes, fed in input-chosen chunks to two hiredis readers: one building replies
 *      with the store's arena reply functions (store_redis_reply.c), one with hiredis's own
 *      (the independent implementation, with the same element bound). Every reply must be
 *      the same tree, and an error on one side must be an error on the other.
 *   1  a P events subscription stream built from the input (channel, messages of 0-2047
 *      bytes, optionally one corrupted byte), written to a socketpair in input-chosen chunks
 *      and read by pr__rs_read_events: every message of at most PR_REDIS_EVENT_MAX bytes must
 *      arrive exactly, in order, NUL-terminated; longer ones are skipped; without the
 *      corruption nothing is refused and nothing is left over; with it, every message before
 *      the corrupted byte still arrives.
 *   2  the rest as a value: an events message, a room value, a pod row (parsed, formatted
 *      and parsed again: the same fields), the value of each key kind and a --store URL. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store_redis_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- mode 0: reply trees ------------------------------------------------------------------ */

static redisReplyObjectFunctions oracle_fns;
static void *(*hiredis_array)(const redisReadTask *, int);

static void *bounded_array(const redisReadTask *task, int elements)
{
    return elements > REPLY_ELEMENTS_MAX ? NULL : hiredis_array(task, elements);
}

static void same_tree(const redisReply *a, const redisReply *b)
{
    if (a->type != b->type)
        abort();
    switch (a->type) {
    case REDIS_REPLY_INTEGER:
        if (a->integer != b->integer)
            abort();
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (a->len != b->len || memcmp(a->str, b->str, a->len) != 0 || a->str[a->len] != '\0')
            abort();
        break;
    case REDIS_REPLY_ARRAY:
        if (a->elements != b->elements)
            abort();
        for (size_t i = 0; i < a->elements; i++)
            same_tree(a->element[i], b->element[i]);
        break;
    default:
        break;
    }
}

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static struct pr__rs_arena arena;

static void replies(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    uint32_t seed = data[0];
    data++;
    size--;
    redisReader *ours = redisReaderCreate(), *theirs = redisReaderCreate();
    if (!ours || !theirs)
        abort();
    if (!hiredis_array) {
        oracle_fns = *theirs->fn;
        hiredis_array = oracle_fns.createArray;
        oracle_fns.createArray = bounded_array;
    }
    theirs->fn = &oracle_fns;
    pr__rs_reply_fns(ours, &arena, NULL);
    size_t off = 0;
    bool failed = false;
    while (off < size && !failed) {
        size_t n = 1 + lcg(&seed) % 97;
        if (n > size - off)
            n = size - off;
        if (redisReaderFeed(ours, (const char *)data + off, n) != REDIS_OK ||
            redisReaderFeed(theirs, (const char *)data + off, n) != REDIS_OK)
            abort();
        off += n;
        for (;;) {
            void *a = NULL, *b = NULL;
            int ra = redisReaderGetReply(ours, &a), rb = redisReaderGetReply(theirs, &b);
            if (ra != rb || (ra == REDIS_OK && (a == NULL) != (b == NULL)))
                abort();
            if (ra != REDIS_OK) {
                if (ours->err != theirs->err)
                    abort();
                failed = true;
                break;
            }
            if (!a)
                break;
            same_tree(a, b);
            ours->fn->freeObject(a);
            theirs->fn->freeObject(b);
        }
    }
    redisReaderFree(ours);
    redisReaderFree(theirs);
}

/* ---- mode 1: the P events stream ----------------------------------------------------------- */

#define EV_MAX_MSGS 48

struct seen {
    size_t n;
    size_t len[EV_MAX_MSGS * 4];
    char *msg[EV_MAX_MSGS * 4];
};

static void got_event(void *arg, const char *msg, size_t len)
{
    struct seen *s = arg;
    if (len > PR_REDIS_EVENT_MAX || msg[len] != '\0')
        abort();
    if (s->n == EV_MAX_MSGS * 4)
        return;
    s->msg[s->n] = malloc(len + 1);
    if (!s->msg[s->n])
        abort();
    memcpy(s->msg[s->n], msg, len + 1);
    s->len[s->n++] = len;
}

/* Append the RESP message of payload p (n bytes) on channel ch to out. */
static size_t message(char *out, const char *ch, const uint8_t *p, size_t n)
{
    char *o = out;
    memcpy(o, "*3\r\n$7\r\nmessage\r\n", 17);
    o += 17;
    o += pr_redis_bulk(o, ch, strlen(ch));
    o += pr_redis_bulk(o, (const char *)p, n);
    return (size_t)(o - out);
}

static void events(const uint8_t *data, size_t size)
{
    if (size < 6)
        return;
    uint32_t seed = data[0];
    unsigned corrupt = data[1];
    size_t corrupt_at = (size_t)data[2] << 8 | data[3];
    size_t cl = 1 + data[4] % 40;
    data += 5;
    size -= 5;
    char ch[48];
    for (size_t i = 0; i < cl; i++)
        ch[i] = (char)(size ? (data[i % size] ? data[i % size] : 'e') : 'e');
    ch[cl] = '\0';
    memset(&pr__rs_g, 0, sizeof(pr__rs_g));
    memcpy(pr__rs_g.channel, ch, cl + 1);
    pr__rs_message_prefix();

    /* The stream: messages with their lengths from the input, payload bytes from it too. */
    static char stream[EV_MAX_MSGS * (2048 + 128)];
    size_t slen = 0, nmsg = 0, ends[EV_MAX_MSGS];
    const uint8_t *want[EV_MAX_MSGS];
    size_t wlen[EV_MAX_MSGS];
    size_t pos = 0;
    static uint8_t payload[EV_MAX_MSGS][2048];
    while (pos + 2 <= size && nmsg < EV_MAX_MSGS) {
        size_t n = ((size_t)data[pos] << 8 | data[pos + 1]) % 2048;
        pos += 2;
        for (size_t i = 0; i < n; i++)
            payload[nmsg][i] = size ? data[(pos + i) % size] : 'x';
        pos += n < 16 ? n : 16;
        want[nmsg] = payload[nmsg];
        wlen[nmsg] = n;
        slen += message(stream + slen, ch, payload[nmsg], n);
        ends[nmsg++] = slen;
    }
    if (slen == 0)
        return;
    bool corrupted = corrupt != 0;
    if (corrupted)
        stream[corrupt_at % slen] ^= (char)corrupt;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    redisAsyncContext ac;
    memset(&ac, 0, sizeof(ac));
    ac.c.fd = sv[0];
    memset(&arena, 0, sizeof(arena));
    struct seen s = {0};
    size_t off = 0;
    int rc = 0;
    while (off < slen && rc == 0) {
        size_t n = 1 + lcg(&seed) % 4096;
        if (n > slen - off)
            n = slen - off;
        ssize_t w = write(sv[1], stream + off, n);
        if (w <= 0)
            abort(); /* drained below after every write: the socket has room */
        off += (size_t)w;
        int pending = 1;
        while (rc == 0 && ioctl(sv[0], FIONREAD, &pending) == 0 && pending > 0)
            rc = pr__rs_read_events(&ac, &arena, got_event, &s);
    }
    close(sv[1]);
    close(sv[0]);

    size_t k = 0;
    for (size_t i = 0; i < nmsg; i++) {
        if (corrupted && ends[i] > corrupt_at % slen)
            break; /* from the corrupted byte on, anything but a crash goes */
        if (wlen[i] > PR_REDIS_EVENT_MAX)
            continue;
        if (k >= s.n || s.len[k] != wlen[i] || memcmp(s.msg[k], want[i], wlen[i]) != 0)
            abort();
        k++;
    }
    if (!corrupted && (rc != 0 || k != s.n || arena.used != 0 || arena.skip != 0))
        abort();
    if (rc != 0 && rc != -EPROTO)
        abort();
    for (size_t i = 0; i < s.n; i++)
        free(s.msg[i]);
}

/* ---- mode 2: values ------------------------------------------------------------------------ */

static void values(const uint8_t *data, size_t size)
{
    char *v = malloc(size + 1);
    if (!v)
        abort();
    memcpy(v, data, size);
    v[size] = '\0';

    struct pr_redis_event ev, ev2;
    if (pr_redis_event_parse(v, size, &ev) == 0) {
        char out[PR_REDIS_EVENT_MAX + 512];
        int n = pr_redis_event_format(out, sizeof(out), &ev);
        if (n < 0 || pr_redis_event_parse(out, (size_t)n, &ev2) != 0)
            abort();
        if (ev.type != ev2.type || ev.kind != ev2.kind || ev.key_len != ev2.key_len ||
            memcmp(ev.key, ev2.key, ev.key_len) != 0 || strcmp(ev.pod, ev2.pod) != 0 ||
            ev.count != ev2.count || ev.assigned_at_ms != ev2.assigned_at_ms ||
            ev.json_len != ev2.json_len ||
            (ev.json_len && memcmp(ev.json, ev2.json, ev.json_len) != 0))
            abort();
    }

    struct pr_redis_room r, r2;
    if (pr_redis_room_parse(v, size, &r) == 0) {
        char out[512];
        int n = pr_redis_room_format(out, sizeof(out), &r);
        if (n < 0 || pr_redis_room_parse(out, (size_t)n, &r2) != 0 || strcmp(r.pod, r2.pod) != 0 ||
            r.participant_count != r2.participant_count || r.assigned_at_ms != r2.assigned_at_ms)
            abort();
    }

    struct pr_redis_pod p, p2;
    if (pr_redis_pod_parse(v, size, &p) == 0) {
        char *out = pr_redis_pod_format(&p);
        if (!out || pr_redis_pod_parse(out, strlen(out), &p2) != 0 ||
            strcmp(p.name, p2.name) != 0 || strcmp(p.address, p2.address) != 0 ||
            strcmp(p.zone, p2.zone) != 0 || p.cap_rooms != p2.cap_rooms ||
            p.cap_participants != p2.cap_participants || p.draining != p2.draining ||
            p.last_seen_ms != p2.last_seen_ms)
            abort();
        free(out);
    }

    for (int kind = PR_KEY_SID; kind <= PR_KEY_PARTICIPANT; kind++) {
        char pod[PR_POD_NAME_MAX + 1], again[PR_POD_NAME_MAX + 1];
        uint32_t count = 0;
        uint64_t at = 0;
        if (pr_redis_value_pod((enum pr_key_kind)kind, v, size, pod, &count, &at) == 0 &&
            (!pr_redis_pod_name_from(pod, strlen(pod), again) || strcmp(pod, again) != 0))
            abort(); /* what a value names is a valid pod name */
    }

    struct pr_redis_url url;
    char err[256];
    (void)pr_redis_url_parse(v, &url, err, sizeof(err));
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        replies(data + 1, size - 1);
        break;
    case 1:
        events(data + 1, size - 1);
        break;
    default:
        values(data + 1, size - 1);
        break;
    }
    return 0;
}
