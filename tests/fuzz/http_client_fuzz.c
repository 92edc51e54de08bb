/* libFuzzer target: the HTTP/1.1 client of `pod-router register` and `pod-router drain`
 * (src/http_client.c, llhttp) against a fake server on the same libuv loop (loopback TCP)
 * whose bytes come from the input: what a pod's health endpoint, or anything answering on
 * the admin URL, can send them.
 *
 * Input: byte 0 = flags (bit 0 keep-alive, bit 1 HEAD requests, bits 2-3 requests - 1, bit 4
 * the server closes each connection once its bytes are written), byte 1 = seed of the write
 * split points; the rest = what the server sends, one segment per accepted connection,
 * segments separated by the two bytes 0x00 0xff. The server writes a segment in pieces of
 * 1-64 bytes, one piece per loop turn, once the request has started to arrive; at the two
 * bytes 0x00 0xfe it waits until more request bytes arrive (the next request of a kept-alive
 * connection).
 *
 * Invariants (each aborts): every request's callback runs exactly once (an exchange where
 * nothing moved for 5 ms is cancelled); a success has a status of 100-999, a NUL-terminated body within the limit,
 * at most PR_HTTP_CLIENT_MAX_HEADERS headers, each with a name and a value; no sanitizer
 * report or leak. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fake_peer.h"
#include "podrouter/http_client.h"
#include "podrouter/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CONNS 8
#define TURNS_MS 300
#define QUIET_MS 5

static uv_loop_t loop;
static uv_tcp_t listener;
static char base_url[64];

struct sconn {
    uv_tcp_t h;
    bool used, closing, started;
    bool paused; /* at a 0x00 0xfe marker: waits for more request bytes */
    const uint8_t *p; /* what is left of its segment */
    size_t n;
};

static struct {
    struct sconn c[MAX_CONNS];
    const uint8_t *seg; /* the segments not handed out yet */
    size_t seg_n;
    bool close_after;
    uint32_t rng;
    unsigned moved;
    int answers; /* callbacks of the request in flight */
} S;

static void sconn_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;
    memset(c, 0, sizeof(*c));
}

static void sconn_close(struct sconn *c)
{
    if (!c->used || c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->h, sconn_closed);
}

/* The next segment: up to the marker 0x00 0xff, or the rest. */
static void next_segment(const uint8_t **p, size_t *n)
{
    *p = S.seg;
    *n = S.seg_n;
    for (size_t i = 0; i + 1 < S.seg_n; i++) {
        if (S.seg[i] == 0x00 && S.seg[i + 1] == 0xff) {
            *n = i;
            S.seg += i + 2;
            S.seg_n -= i + 2;
            return;
        }
    }
    S.seg += S.seg_n;
    S.seg_n = 0;
}

static void s_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    static char buf[65536];
    (void)h;
    (void)want;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void s_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct sconn *c = s->data;
    (void)b;
    if (n < 0) {
        sconn_close(c);
        return;
    }
    if (n > 0) {
        c->started = true;
        c->paused = false;
        S.moved++;
    }
}

static void s_accept(uv_stream_t *l, int status)
{
    if (status != 0)
        return;
    for (int i = 0; i < MAX_CONNS; i++) {
        struct sconn *c = &S.c[i];
        if (c->used)
            continue;
        memset(c, 0, sizeof(*c));
        uv_tcp_init(&loop, &c->h);
        c->h.data = c;
        c->used = true;
        next_segment(&c->p, &c->n);
        if (uv_accept(l, (uv_stream_t *)&c->h) != 0 || uv_tcp_nodelay(&c->h, 1) != 0 ||
            uv_read_start((uv_stream_t *)&c->h, s_alloc, s_read) != 0)
            sconn_close(c);
        return;
    }
    fake_refuse(&loop, l);
}

/* One piece of every started connection's segment (and its close once written, if asked). */
static void pump(void)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        struct sconn *c = &S.c[i];
        if (!c->used || c->closing || !c->started || c->paused)
            continue;
        if (c->n >= 2 && c->p[0] == 0x00 && c->p[1] == 0xfe) {
            c->p += 2;
            c->n -= 2;
            c->paused = true;
            continue;
        }
        if (c->n == 0) {
            if (S.close_after)
                sconn_close(c);
            continue;
        }
        S.rng = S.rng * 1103515245u + 12345u;
        size_t k = 1 + (S.rng >> 16) % 64;
        if (k > c->n)
            k = c->n;
        const uint8_t *m = memchr(c->p, 0x00, k); /* stop at a pause marker */
        if (m && m > c->p)
            k = (size_t)(m - c->p);
        fake_write((uv_stream_t *)&c->h, c->p, k);
        c->p += k;
        c->n -= k;
        S.moved++;
    }
}

static void on_response(struct pr_http_client *client, int err, const struct pr_http_response *res,
                        void *data)
{
    (void)client;
    (void)data;
    if (++S.answers != 1) {
        fprintf(stderr, "http_client_fuzz: a request answered twice\n");
        abort();
    }
    S.moved++;
    if (getenv("HTTP_CLIENT_FUZZ_VERBOSE"))
        fprintf(stderr, "http_client_fuzz: err %d status %d body %zu\n", err, res ? res->status : 0,
                res ? res->body_len : 0);
    if (err != 0) {
        if (res)
            abort();
        return;
    }
    if (!res || res->status < 100 || res->status > 999 || !res->body ||
        res->body_len > PR_HTTP_CLIENT_MAX_BODY || res->body[res->body_len] != '\0' ||
        res->nheaders > PR_HTTP_CLIENT_MAX_HEADERS) {
        fprintf(stderr, "http_client_fuzz: a success out of its bounds\n");
        abort();
    }
    for (size_t i = 0; i < res->nheaders; i++)
        if (!res->headers[i].name || !res->headers[i].value)
            abort();
    (void)pr_http_response_header(res, "content-type");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    pr_log_init(PR_LOG_ERROR, PR_LOG_JSON);
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&loop) != 0)
        abort();
    int port = fake_listen(&loop, &listener, s_accept);
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d/base", port);
    return 0;
}

/* Turn the loop until the request is answered, or nothing moved for QUIET_MS (a name
 * resolution on the thread pool and a connect take a few turns), at most TURNS_MS in all. */
static void run_until_answered(void)
{
    uint64_t start = uv_hrtime(), last = start, now = start;
    while (S.answers == 0 && now - last < QUIET_MS * 1000000ull &&
           now - start < TURNS_MS * 1000000ull) {
        unsigned before = S.moved;
        pump();
        uv_run(&loop, UV_RUN_NOWAIT);
        now = uv_hrtime();
        if (S.moved != before)
            last = now;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    memset(&S, 0, sizeof(S));
    uint8_t flags = data[0];
    S.rng = data[1];
    S.seg = data + 2;
    S.seg_n = size - 2;
    S.close_after = flags & 0x10;
    struct pr_http_client *cl = pr_http_client_create(&loop, base_url, flags & 1);
    if (!cl)
        abort();
    static const struct pr_http_header hdr[] = {{"Authorization", "Bearer t"}};
    int requests = 1 + ((flags >> 2) & 3);
    for (int r = 0; r < requests; r++) {
        struct pr_http_request req = {
            .method = flags & 2 ? "HEAD" : (r % 2 ? "PUT" : "GET"),
            .path = "/v1/pods/backend-0",
            .headers = hdr,
            .nheaders = 1,
            .body = r % 2 ? "{\"address\":\"127.0.0.1:3000\"}" : NULL,
            .body_len = r % 2 ? 28 : 0,
            .connect_timeout_ms = 2000,
            .timeout_ms = 5000,
        };
        S.answers = 0;
        if (pr_http_client_request(cl, &req, on_response, NULL) != 0)
            abort();
        run_until_answered();
        if (S.answers == 0)
            pr_http_client_cancel(cl); /* stalled: its callback runs now */
        if (S.answers != 1) {
            fprintf(stderr, "http_client_fuzz: request %d answered %d times\n", r, S.answers);
            abort();
        }
    }
    pr_http_client_destroy(cl);
    for (int i = 0; i < MAX_CONNS; i++)
        sconn_close(&S.c[i]);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
