/* libFuzzer target: the whole Redis store (src/store_redis*.c, redis_cache.c, hiredis) on a
 * real libuv loop, talking over loopback TCP to a fake Redis on the same loop whose answers,
 * P events messages and hang-ups come from the input. redis_fuzz checks the parsers alone;
 * this one drives what they feed: the reply dispatch of every operation (get, create,
 * replace, the per-iteration batch of pins and joins, renewals, the pod table reload,
 * activity sharing, the write-back), the NOSCRIPT retry, events applied to the cache and the
 * registry, and connections lost with calls pending.
 *
 * Two store handles share the loop, as two workers' do: the owner and a second one (its own
 * command connection, the same process-wide cache).
 *
 * Input: a script of records, each a tag byte and its arguments (a missing byte reads 0); a
 * store operation's tag with bit 0x80 goes to the second handle:
 *   0 GET a             get(kind a%3, key KEYS[a/3%8])
 *   1 CREATE a p        create(..., POD[p%4])
 *   2 REPLACE a p       replace(..., expect POD[p%4], POD[(p/4)%4])
 *   3 JOIN a w          room_join(KEYS[a%8], "w<w>")
 *   4 SET a p / 5 DEL a / 6 TOUCH a
 *   7 POD a             pod_put/pod_drain/pod_delete (a%3) of POD[a/3%4]
 *   8 TICK
 *   9 REPLY n bytes     the answer to the next data command (n is one byte, two with tag
 *                       bit 0x10): raw bytes, any shape or garbage
 *  10 EVENT n bytes     a P events message with these bytes (tag bit 0x10: the bytes raw on
 *                       the subscriber connection)
 *  11 RUN a             a%16+1 loop iterations
 *  12 HANGUP a          the fake closes the command (a even) or subscriber connection
 *  13 RELEASE p         release_pod(POD[p%4])
 *  14 INFO a / 15 COUNTS
 * An input that starts with 0xfe n: the n bytes after it follow the subscription's
 * confirmation in the same write (they reach hiredis's subscribed dispatch, not our own
 * reader of P events), and the script starts after them.
 * Set-up commands (SCRIPT LOAD, SUBSCRIBE) are answered correctly so the store comes up, and
 * the commands the owner sends once up get nils before the script starts; a data command
 * waits for the script's next REPLY, and gets a nil once the script has ended. At the end every waiting command gets a nil,
 * the loop runs until quiet and the store is closed.
 *
 * Invariants (each aborts): every call with a callback is answered exactly once (close
 * cancels what is pending), an answer with status 0 names a valid pod, no sanitizer report
 * or leak. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "podrouter/config.h"
#include "podrouter/log.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"
#include "fake_peer.h"
#include "resp_command.h"
#include "store_redis_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const KEYS[8] = {"k0", "k1", "room_a", "room-b", "p.9", "sid_AAAAAAAAAAAA",
                                    "x", "K7_z"};
static const char *const POD[4] = {"backend-0", "backend-1", "backend-2", "gone-3"};

#define MAX_CALLS 4096
#define MAX_REPLIES 1024
#define MAX_FAKE 8
#define SETTLE_MAX 4000
#define QUIET_RUNS 40

static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static struct pr_config cfg;

/* One connection the fake accepted. */
struct fconn {
    uv_tcp_t h;
    bool used, closing, sub;
    unsigned waiting; /* data commands not answered yet */
    char *buf;
    size_t len, cap;
};

static struct {
    struct fconn c[MAX_FAKE];
    const uint8_t *reply[MAX_REPLIES];
    size_t reply_len[MAX_REPLIES];
    unsigned rhead, rtail;
    const uint8_t *prologue; /* sent after the SUBSCRIBE confirmation */
    size_t prologue_len;
    bool sub_gone;  /* a subscriber connection was closed */
    bool ended;     /* script done: every data command gets a nil */
    unsigned moved; /* bytes read or callbacks: progress, for the settle loop */
    unsigned calls; /* calls made with a callback */
    unsigned commands, ok; /* data commands the fake read; answers with status 0 */
    uint8_t answered[MAX_CALLS];
} F;

static void on_answer(void *arg, int status, const char *pod)
{
    uint8_t *a = arg;
    if (a && ++*a != 1) {
        fprintf(stderr, "store_fuzz: a call answered twice\n");
        abort();
    }
    if (status == 0 && (!pod || !pr_pod_name_valid(pod, strlen(pod)))) {
        fprintf(stderr, "store_fuzz: an answer names no valid pod\n");
        abort();
    }
    if (getenv("STORE_FUZZ_VERBOSE"))
        fprintf(stderr, "store_fuzz: answer %d %s\n", status, pod ? pod : "-");
    F.ok += status == 0;
    F.moved++;
}

static void *next_slot(void)
{
    if (F.calls >= MAX_CALLS)
        return NULL;
    return &F.answered[F.calls++];
}

static void send_bytes(struct fconn *c, const void *p, size_t n)
{
    if (c->closing || n == 0)
        return;
    fake_write((uv_stream_t *)&c->h, p, n);
}

static void fconn_closed(uv_handle_t *h)
{
    struct fconn *c = h->data;
    free(c->buf);
    memset(c, 0, sizeof(*c));
}

static void fconn_close(struct fconn *c)
{
    if (!c->used || c->closing)
        return;
    c->closing = true;
    F.sub_gone |= c->sub;
    uv_close((uv_handle_t *)&c->h, fconn_closed);
}

/* Answer c's oldest waiting data command with the next scripted reply, or a nil once the
 * script has ended; false when there is nothing to answer with yet. */
static bool answer_one(struct fconn *c)
{
    if (F.rhead != F.rtail) {
        unsigned i = F.rhead++ % MAX_REPLIES;
        send_bytes(c, F.reply[i], F.reply_len[i]);
        return true;
    }
    if (F.ended) {
        send_bytes(c, "$-1\r\n", 5);
        return true;
    }
    return false;
}

static bool answer_command(void *arg, const char *name, size_t nl)
{
    struct fconn *c = arg;
    char out[512];
    if (nl == 6 && strncasecmp(name, "SCRIPT", 6) == 0) {
        int m = snprintf(out, sizeof(out), "$40\r\n%s\r\n", pr__rs_g.sha);
        send_bytes(c, out, (size_t)m);
    } else if (nl == 9 && strncasecmp(name, "SUBSCRIBE", 9) == 0) {
        size_t cl = strlen(pr__rs_g.channel);
        int m = snprintf(out, sizeof(out), "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:1\r\n", cl,
                         pr__rs_g.channel);
        size_t pl = F.prologue_len < sizeof(out) - (size_t)m ? F.prologue_len : 0;
        if (pl)
            memcpy(out + m, F.prologue, pl);
        F.prologue_len = 0;
        send_bytes(c, out, (size_t)m + pl);
        c->sub = true;
    } else if (F.commands++, c->waiting > 0 || !answer_one(c)) {
        c->waiting++;
    }
    return true;
}

static void fake_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    struct fconn *c = h->data;
    (void)want;
    if (c->cap - c->len < 65536) {
        size_t nc = c->cap ? c->cap * 2 : 131072;
        char *nb = realloc(c->buf, nc);
        if (!nb)
            abort();
        c->buf = nb;
        c->cap = nc;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void fake_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct fconn *c = s->data;
    (void)b;
    if (n < 0) {
        fconn_close(c);
        return;
    }
    F.moved += (unsigned)n;
    c->len += (size_t)n;
    if (resp_consume(c->buf, &c->len, answer_command, c) < 0) {
        fprintf(stderr, "store_fuzz: the store sent something that is not a command\n");
        abort();
    }
}

static void fake_accept(uv_stream_t *l, int status)
{
    if (status != 0)
        return;
    for (int i = 0; i < MAX_FAKE; i++) {
        struct fconn *c = &F.c[i];
        if (c->used)
            continue;
        memset(c, 0, sizeof(*c));
        uv_tcp_init(&loop, &c->h);
        c->h.data = c;
        c->used = true;
        /* No Nagle, as Redis: a reply must not wait for the ACK of the one before. */
        if (uv_accept(l, (uv_stream_t *)&c->h) != 0 || uv_tcp_nodelay(&c->h, 1) != 0 ||
            uv_read_start((uv_stream_t *)&c->h, fake_alloc, fake_read) != 0)
            fconn_close(c);
        return;
    }
    fake_refuse(&loop, l);
}

static struct fconn *fake_find(bool sub)
{
    for (int i = 0; i < MAX_FAKE; i++)
        if (F.c[i].used && !F.c[i].closing && F.c[i].sub == sub)
            return &F.c[i];
    return NULL;
}

/* Hand the waiting commands the replies queued meanwhile (or nils once the script ended). */
static void answer_waiting(void)
{
    for (int i = 0; i < MAX_FAKE; i++) {
        struct fconn *c = &F.c[i];
        while (c->used && !c->closing && c->waiting > 0 && answer_one(c))
            c->waiting--;
    }
}

static void event_send(const uint8_t *p, size_t n, bool raw)
{
    struct fconn *c = fake_find(true);
    if (!c)
        return;
    if (raw) {
        send_bytes(c, p, n);
        return;
    }
    char head[256];
    size_t cl = strlen(pr__rs_g.channel);
    int m = snprintf(head, sizeof(head), "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%zu\r\n", cl,
                     pr__rs_g.channel, n);
    send_bytes(c, head, (size_t)m);
    send_bytes(c, p, n);
    send_bytes(c, "\r\n", 2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    pr_log_init(PR_LOG_ERROR, PR_LOG_JSON);
    signal(SIGPIPE, SIG_IGN); /* as main.c: hiredis writes to a connection the fake closed */
    if (uv_loop_init(&loop) != 0)
        abort();
    port = fake_listen(&loop, &listener, fake_accept);
    pr_config_defaults(&cfg);
    snprintf(cfg.store, sizeof(cfg.store), "redis://127.0.0.1:%d", port);
    return 0;
}

struct cursor {
    const uint8_t *p;
    size_t n;
};

static uint8_t byte(struct cursor *c)
{
    if (c->n == 0)
        return 0;
    c->n--;
    return *c->p++;
}

static bool sub_ready(struct pr_store *s)
{
    const struct conn *c = ((struct redis_store *)s)->live[ROLE_SUB];
    return c && c->state == CS_READY;
}

/* Run the loop until the fake saw nothing and no call was answered for QUIET_RUNS turns. */
static void settle(void)
{
    unsigned quiet = 0;
    for (int i = 0; i < SETTLE_MAX && quiet < QUIET_RUNS; i++) {
        unsigned before = F.moved;
        answer_waiting();
        uv_run(&loop, UV_RUN_NOWAIT);
        quiet = F.moved == before ? quiet + 1 : 0;
    }
}

static void run_record(struct pr_store *const st[2], struct cursor *in)
{
    uint8_t tag = byte(in);
    struct pr_store *s = st[tag >> 7]; /* tag bit 0x80: the second handle's operation */
    uint8_t a;
    const char *k;
    switch (tag & 0x0f) {
    case 0:
        a = byte(in);
        k = KEYS[(a / 3) % 8];
        s->ops->get(s, (enum pr_key_kind)(a % 3), k, strlen(k), on_answer, next_slot());
        break;
    case 1: {
        a = byte(in);
        uint8_t p = byte(in);
        k = KEYS[(a / 3) % 8];
        s->ops->create(s, (enum pr_key_kind)(a % 3), k, strlen(k), POD[p % 4], on_answer,
                       next_slot());
        break;
    }
    case 2: {
        a = byte(in);
        uint8_t p = byte(in);
        k = KEYS[(a / 3) % 8];
        s->ops->replace(s, (enum pr_key_kind)(a % 3), k, strlen(k), POD[p % 4],
                        POD[(p / 4) % 4], on_answer, next_slot());
        break;
    }
    case 3: {
        a = byte(in);
        char who[8];
        int wl = snprintf(who, sizeof(who), "w%u", byte(in));
        s->ops->room_join(s, KEYS[a % 8], strlen(KEYS[a % 8]), who, (size_t)wl);
        break;
    }
    case 4: {
        a = byte(in);
        uint8_t p = byte(in);
        k = KEYS[(a / 3) % 8];
        (void)s->ops->set(s, (enum pr_key_kind)(a % 3), k, strlen(k), POD[p % 4]);
        break;
    }
    case 5:
        a = byte(in);
        k = KEYS[(a / 3) % 8];
        (void)s->ops->del(s, (enum pr_key_kind)(a % 3), k, strlen(k));
        break;
    case 6:
        a = byte(in);
        k = KEYS[(a / 3) % 8];
        s->ops->touch(s, (enum pr_key_kind)(a % 3), k, strlen(k));
        break;
    case 7:
        a = byte(in);
        if (a % 3 == 0)
            s->ops->pod_put(s, POD[(a / 3) % 4]);
        else if (a % 3 == 1)
            s->ops->pod_drain(s, POD[(a / 3) % 4]);
        else
            s->ops->pod_delete(s, POD[(a / 3) % 4]);
        break;
    case 8:
        s->ops->tick(s);
        break;
    case 9:
    case 10: {
        size_t n = byte(in);
        if (tag & 0x10)
            n = n << 8 | byte(in);
        if (n > in->n)
            n = in->n;
        const uint8_t *p = in->p;
        in->p += n;
        in->n -= n;
        if ((tag & 0x0f) == 10) {
            event_send(p, n, tag & 0x10);
        } else if (F.rtail - F.rhead < MAX_REPLIES) {
            F.reply[F.rtail % MAX_REPLIES] = p;
            F.reply_len[F.rtail % MAX_REPLIES] = n;
            F.rtail++;
            answer_waiting();
        }
        break;
    }
    case 11:
        a = byte(in);
        for (int i = 0; i <= a % 16; i++) {
            answer_waiting();
            uv_run(&loop, UV_RUN_NOWAIT);
        }
        break;
    case 12: {
        struct fconn *c = fake_find(byte(in) % 2 == 1);
        if (c)
            fconn_close(c);
        break;
    }
    case 13:
        s->ops->release_pod(s, POD[byte(in) % 4]);
        break;
    case 14: {
        struct pr_assignment out;
        a = byte(in);
        k = KEYS[(a / 3) % 8];
        (void)s->ops->info(s, a % 2 ? PR_KEY_ROOM : PR_KEY_PARTICIPANT, k, strlen(k), &out);
        break;
    }
    default: {
        uint64_t rooms, parts;
        s->ops->counts(s, &rooms, &parts);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&F, 0, sizeof(F));
    struct cursor in = {data, size};
    if (size >= 2 && data[0] == 0xfe) {
        F.prologue = data + 2;
        F.prologue_len = data[1] < size - 2 ? data[1] : size - 2;
        in.p += 2 + F.prologue_len;
        in.n -= 2 + F.prologue_len;
    }
    bool pushes = F.prologue_len > 0;
    struct pr_registry *reg = pr_registry_create(cfg.pod_ttl_ms);
    if (!reg)
        abort();
    for (int i = 0; i < 3; i++)
        (void)pr_registry_put(reg, POD[i], "127.0.0.1:3000", 20, 80, NULL, NULL);
    /* Two handles, as two workers have: the owner (subscriber, pod table, write-back) and one
     * with its own command connection; both share the process-wide cache. */
    struct pr_store *st[2];
    for (int i = 0; i < 2; i++) {
        char err[256] = "";
        st[i] = pr_store_redis_open(&cfg, reg, &loop, err, sizeof(err));
        if (!st[i]) {
            fprintf(stderr, "store_fuzz: %s\n", err);
            abort();
        }
    }
    struct pr_store *s = st[0];
    /* Up: the command connections' scripts loaded, the subscriber subscribed (or closed by
     * the store for what followed its confirmation). */
    for (int i = 0; i < 200000 && !(s->ops->up(s) && st[1]->ops->up(st[1]) &&
                                    (sub_ready(s) || F.sub_gone));
         i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    if (!s->ops->up(s) || !st[1]->ops->up(st[1]) || !(sub_ready(s) || (pushes && F.sub_gone))) {
        fprintf(stderr, "store_fuzz: the store did not come up against the fake\n");
        abort();
    }

    /* The owner's first commands (pod table, activity) get nils, so that the script's
     * replies answer the script's own commands. */
    F.ended = true;
    settle();
    F.ended = false;
    F.commands = 0;

    while (in.n > 0)
        run_record(st, &in);
    F.ended = true;
    settle();
    st[1]->ops->close(st[1]);
    s->ops->close(s);
    for (unsigned i = 0; i < F.calls; i++) {
        if (F.answered[i] != 1) {
            fprintf(stderr, "store_fuzz: call %u answered %u times\n", i, F.answered[i]);
            abort();
        }
    }
    for (int i = 0; i < MAX_FAKE; i++)
        fconn_close(&F.c[i]);
    for (int i = 0; i < 100; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    pr_registry_destroy(reg);
    if (getenv("STORE_FUZZ_VERBOSE"))
        fprintf(stderr, "store_fuzz: %u calls (%u ok), %u data commands, %u of %u replies used\n",
                F.calls, F.ok, F.commands, F.rhead, F.rtail);
    return 0;
}
