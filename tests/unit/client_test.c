/* The client transport (src/client.c) driven through its handler table: a test table stands
 * in for the exchange / tunnel, the connection is one end of a socketpair (no network) on a
 * real libuv loop. Covers pipelined input order, partial consumption, the input cap and read
 * pausing, backpressure of queued writes, EOF, the state and send timers, and a table swap
 * in the middle of a read (what the tunnel does at the 101), the send and read batches, and
 * the lingering close (answer, FIN, input dropped until the client's end, the timer, drain). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

static struct pr_worker *w;
static struct pr_server srv; /* the process-wide state the worker passes to its modules */
static struct pr_metrics metrics;
static int peer = -1;
static struct pr_client *cl;

static struct rec {
    int data_calls, drained, gone, timeouts, rooms, drains;
    bool pause;
    size_t take_max;
    char *got;
    size_t got_len, got_cap;
    int b_calls; /* calls of the second table */
} R;

static void keep(const char *data, size_t n)
{
    if (R.got_len + n > R.got_cap) {
        R.got_cap = (R.got_len + n) * 2;
        R.got = realloc(R.got, R.got_cap);
        cr_assert_not_null(R.got);
    }
    memcpy(R.got + R.got_len, data, n);
    R.got_len += n;
}

static size_t t_data(struct pr_client *c, const char *data, size_t len)
{
    R.data_calls++;
    if (R.pause)
        return 0;
    size_t n = len < R.take_max ? len : R.take_max;
    keep(data, n);
    return n;
}

static void t_drained(struct pr_client *c)
{
    R.drained++;
}

static void t_gone(struct pr_client *c)
{
    R.gone++;
    if (c == cl)
        cl = NULL;
}

static void t_timeout(struct pr_client *c)
{
    R.timeouts++;
    pr__client_close(c);
}

static void t_room(struct pr_client *c)
{
    R.rooms++;
    pr__client_start_read(c);
}

static void t_drain(struct pr_client *c)
{
    R.drains++;
}

static void t_head(struct pr_client *c)
{
}

static const struct pr_client_handlers table_a = {
    .on_head = t_head,
    .on_data = t_data,
    .on_drained = t_drained,
    .on_gone = t_gone,
    .on_timeout = t_timeout,
    .on_room = t_room,
    .on_drain = t_drain,
};

/* Second table: takes everything, counts separately. */
static size_t b_data(struct pr_client *c, const char *data, size_t len)
{
    R.b_calls++;
    keep(data, len);
    return len;
}

static const struct pr_client_handlers table_b = {
    .on_head = t_head,
    .on_data = b_data,
    .on_drained = t_drained,
    .on_gone = t_gone,
    .on_timeout = t_timeout,
    .on_room = t_room,
    .on_drain = t_drain,
};

/* Table A, swapping to B after the first line (as the tunnel swaps at the 101). */
static size_t swap_data(struct pr_client *c, const char *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    cr_assert_not_null(nl);
    size_t n = (size_t)(nl - data) + 1;
    keep(data, n);
    R.data_calls++;
    c->h = &table_b;
    return n;
}

static const struct pr_client_handlers table_swap = {
    .on_head = t_head,
    .on_data = swap_data,
    .on_drained = t_drained,
    .on_gone = t_gone,
    .on_timeout = t_timeout,
    .on_room = t_room,
    .on_drain = t_drain,
};

/* ring: 0 no batch, 1 the batch on (skips without io_uring), 2 --io-uring false; set up
 * before the client opens, as a worker's is. */
static void setup_ring(const struct pr_client_handlers *h, int ring)
{
    memset(&R, 0, sizeof(R));
    R.take_max = (size_t)-1;
    memset(&metrics, 0, sizeof(metrics));
    w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    cr_assert_eq(uv_loop_init(&w->loop), 0);
    w->loop.data = w;
    w->m = &metrics;
    memset(&srv, 0, sizeof(srv));
    w->srv = &srv;
    struct pr_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.header_timeout_ms = 1000;
    cfg.idle_timeout_ms = 2000;
    cfg.send_timeout_ms = 3000;
    pr__client_queues_init(w, &cfg);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int sz = 16384; /* small socket buffers: a few hundred KiB fill them */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    peer = sv[1];
    fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
    if (ring) {
        cr_assert_eq(pr__iobatch_init(&w->sb, &w->loop, ring == 1), 0);
        if (ring == 1 && !w->sb.on) {
            close(sv[0]);
            cr_skip_test("no io_uring on this machine: the batch is off");
        }
    }
    cl = pr__client_open(w, sv[0], h);
    cr_assert_not_null(cl);
}

static void setup_with(const struct pr_client_handlers *h)
{
    setup_ring(h, 0);
}

static void setup(void)
{
    setup_with(&table_a);
}

/* The same with the loop's I/O batch on (as the router runs where io_uring is allowed). */
static void setup_batch(void)
{
    setup_ring(&table_a, 1);
}

static void teardown(void)
{
    if (cl)
        pr__client_close(cl);
    if (w->sb.on) {
        uv_close((uv_handle_t *)&w->sb.prepare, NULL);
        uv_close((uv_handle_t *)&w->sb.check, NULL);
        uv_close((uv_handle_t *)&w->sb.idle, NULL);
    }
    for (int i = 0; i < 100 && uv_run(&w->loop, UV_RUN_NOWAIT); i++)
        ;
    cr_assert_eq(uv_loop_close(&w->loop), 0, "every handle closed and freed");
    pr__iobatch_finish(&w->sb);
    free(w);
    w = NULL;
    if (peer >= 0)
        close(peer);
    peer = -1;
    free(R.got);
    R.got = NULL;
}

/* Run the loop until cond holds (bounded: 2 s). */
#define RUN_UNTIL(cond)                                                                   \
    do {                                                                                  \
        for (int i_ = 0; i_ < 2000 && !(cond); i_++) {                                    \
            uv_run(&w->loop, UV_RUN_NOWAIT);                                              \
            if (!(cond))                                                                  \
                usleep(1000);                                                             \
        }                                                                                 \
        cr_assert(cond, "timed out waiting for " #cond);                                  \
    } while (0)

static void peer_write(const char *s, size_t n)
{
    size_t off = 0;
    for (int i = 0; off < n && i < 5000; i++) {
        ssize_t k = write(peer, s + off, n - off);
        if (k > 0)
            off += (size_t)k;
        else
            uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(off, n);
}

static size_t peer_drain(void)
{
    char buf[65536];
    size_t total = 0;
    ssize_t k;
    while ((k = read(peer, buf, sizeof(buf))) > 0)
        total += (size_t)k;
    return total;
}

static uint32_t waiting(void)
{
    return pr__client_waiting(cl);
}

Test(client, pipelined_bytes_reach_on_data_in_order_and_the_rest_waits, .init = setup,
     .fini = teardown)
{
    R.take_max = 3; /* one "request" of 3 bytes per call, all in one input loop */
    peer_write("abcdefgh", 8);
    RUN_UNTIL(R.got_len == 8);
    cr_assert_eq(memcmp(R.got, "abcdefgh", 8), 0);
    cr_assert_eq(R.data_calls, 3);
    cr_assert_eq(waiting(), 0);

    R.pause = true; /* e.g. a pod is being chosen: later bytes wait in c->in.p */
    peer_write("XYZ", 3);
    RUN_UNTIL(R.data_calls > 3);
    cr_assert_eq(R.got_len, 8);
    cr_assert_eq(waiting(), 3);
    peer_write("12", 2);
    RUN_UNTIL(waiting() == 5);
    R.pause = false;
    R.take_max = (size_t)-1;
    pr__client_drive(cl);
    cr_assert_eq(R.got_len, 13);
    cr_assert_eq(memcmp(R.got + 8, "XYZ12", 5), 0, "order kept across the wait");
    cr_assert_eq(waiting(), 0);
}

Test(client, a_full_input_buffer_pauses_reading_until_on_room, .init = setup, .fini = teardown)
{
    R.pause = true;
    size_t n = 3 * PR_CLIENT_IN_MAX;
    char *big = malloc(n);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    size_t off = 0;
    for (int i = 0; i < 5000 && !cl->in_full; i++) {
        ssize_t k = write(peer, big + off, n - off);
        if (k > 0)
            off += (size_t)k;
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    cr_assert(cl->in_full, "reading paused at the cap");
    cr_assert_not(cl->reading);
    cr_assert_geq(waiting(), PR_CLIENT_IN_MAX);
    cr_assert_lt(waiting(), PR_CLIENT_IN_MAX + PR_READ_BUF + 1, "bounded by cap + one read");
    uint32_t held = waiting();
    for (int i = 0; i < 20; i++)
        uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(waiting(), held, "nothing more is read while paused");
    cr_assert_eq(R.rooms, 0);

    R.pause = false;
    pr__client_drive(cl);
    cr_assert_eq(R.rooms, 1, "on_room once the buffer has room again");
    cr_assert(cl->reading);
    while (off < n) {
        ssize_t k = write(peer, big + off, n - off);
        if (k > 0)
            off += (size_t)k;
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    RUN_UNTIL(R.got_len == n);
    cr_assert_eq(memcmp(R.got, big, n), 0);
    free(big);
}

Test(client, a_queued_write_reports_on_drained_when_the_peer_takes_it, .init = setup,
     .fini = teardown)
{
    size_t n = 4u << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, 'x', n);
    int rc = pr__client_send(cl, big, n);
    free(big); /* the transport keeps its own copy of what it queued */
    cr_assert_eq(rc, 1, "the socket is full: queued");
    cr_assert(cl->writing);
    cr_assert(cl->tq_send, "the send timeout watches the client");
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(R.drained, 0);
    size_t got = 0;
    for (int i = 0; i < 20000 && got < n; i++) {
        got += peer_drain();
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(got, n);
    RUN_UNTIL(R.drained == 1);
    cr_assert_not(cl->writing);
    cr_assert_not(cl->tq_send);
    cr_assert_eq(pr__client_send(cl, "ok", 2), 0, "an empty socket takes small writes now");
    cr_assert_eq(peer_drain(), 2);
}

Test(client, eof_closes_the_connection_and_calls_on_gone_once, .init = setup,
     .fini = teardown)
{
    cr_assert_eq(atomic_load(&srv.nclients), 1);
    cr_assert_eq(metrics.conns[PR_CONN_CLIENT], 1);
    cr_assert(pr__client_any_public(w), "the open client is found by the worker's walk");
    shutdown(peer, SHUT_WR);
    RUN_UNTIL(R.gone == 1);
    cr_assert_null(cl);
    cr_assert_not(pr__client_any_public(w), "the worker has no open client left");
    cr_assert_eq(atomic_load(&srv.nclients), 0);
    cr_assert_eq(metrics.conns[PR_CONN_CLIENT], 0);
    for (int i = 0; i < 10; i++)
        uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(R.gone, 1);
}

Test(client, the_state_timer_calls_on_timeout, .init = setup, .fini = teardown)
{
    /* From accept the connection is in the header queue (1 s here). */
    pr__tq_sweep(&w->q_header, pr__now(w) + 999);
    cr_assert_eq(R.timeouts, 0);
    pr__tq_sweep(&w->q_header, pr__now(w) + 1000);
    cr_assert_eq(R.timeouts, 1);
    cr_assert_eq(R.gone, 1, "the handler closed it");
}

/* Send n bytes of c to the client: more than its socket takes, so the rest is queued. */
static void send_more_than_the_socket_takes(size_t n, char c)
{
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, c, n);
    cr_assert_eq(pr__client_send(cl, big, n), 1, "the socket is full: the rest is queued");
    free(big);
}

Test(client, the_send_timeout_owns_the_timer_while_bytes_wait, .init = setup, .fini = teardown)
{
    pr__client_queue(cl, &w->q_idle);
    size_t n = 4u << 20;
    send_more_than_the_socket_takes(n, 'y');
    pr__client_queue(cl, &w->q_header); /* remembered for later, the send timer stays */
    pr__tq_sweep(&w->q_idle, pr__now(w) + 100000);
    pr__tq_sweep(&w->q_header, pr__now(w) + 100000);
    cr_assert_eq(R.timeouts, 0, "not in the state queues while the send timer runs");
    pr__tq_sweep(&w->q_send, pr__now(w) + 2999);
    cr_assert_eq(R.gone, 0);
    pr__tq_sweep(&w->q_send, pr__now(w) + 3000);
    cr_assert_eq(R.gone, 1, "a client that takes nothing for --send-timeout is closed");
    cr_assert_eq(R.timeouts, 0);
}

Test(client, the_timer_of_the_state_comes_back_after_the_send, .init = setup, .fini = teardown)
{
    size_t n = 1u << 20;
    send_more_than_the_socket_takes(n, 'z');
    pr__client_queue(cl, &w->q_idle);
    size_t got = 0;
    for (int i = 0; i < 20000 && got < n; i++) {
        got += peer_drain();
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    RUN_UNTIL(R.drained == 1);
    cr_assert_eq(w->q_idle.head.next, &cl->tq, "back in the queue of its state");
    pr__tq_sweep(&w->q_idle, pr__now(w) + 2000);
    cr_assert_eq(R.timeouts, 1);
}

static void setup_swap(void)
{
    setup_with(&table_swap);
}

Test(client, a_table_swapped_inside_on_data_gets_the_rest_of_the_same_read,
     .init = setup_swap, .fini = teardown)
{
    peer_write("UPGRADE\nframe-1frame-2", 22);
    RUN_UNTIL(R.got_len == 22);
    cr_assert_eq(R.data_calls, 1);
    cr_assert_eq(R.b_calls, 1, "the bytes after the switch went to the new table");
    cr_assert_eq(cl->h, &table_b);
    cr_assert_eq(memcmp(R.got, "UPGRADE\nframe-1frame-2", 22), 0);
}

Test(client, drain_and_close_go_through_the_table, .init = setup, .fini = teardown)
{
    pr__client_drain(w);
    cr_assert_eq(R.drains, 1);
    struct pr_client *c = cl;
    pr__client_close(c);
    cr_assert_eq(R.gone, 1);
    pr__client_close(c); /* freed only in the close callback: a second close is a no-op */
    cr_assert_eq(R.gone, 1);
}

/* The hand-written IPv4 formatter of X-Forwarded-For agrees with inet_ntop. */
Test(client, peer_ip_matches_inet_ntop)
{
    struct pr_client c;
    memset(&c, 0, sizeof(c));
    char got[64], want[64];
    uint32_t x = 0x9e3779b9u;
    for (int n = 0; n < 20000; n++) {
        c.peer_family = AF_INET;
        for (int i = 0; i < 4; i++) {
            x = x * 1103515245u + 12345u;
            /* every edge value of a byte, then random bytes */
            c.peer_addr[i] = n < 256 ? (uint8_t)(n + i * 85) : (uint8_t)(x >> 16);
        }
        pr__peer_ip(&c, got, sizeof(got));
        inet_ntop(AF_INET, c.peer_addr, want, sizeof(want));
        cr_assert_str_eq(got, want);
    }
    c.peer_family = AF_INET6;
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    memcpy(c.peer_addr, v6, sizeof(v6));
    pr__peer_ip(&c, got, sizeof(got));
    cr_assert_str_eq(got, "2001:db8::1");
    c.peer_family = 0;
    pr__peer_ip(&c, got, sizeof(got));
    cr_assert_str_empty(got);
}

/* ---- the loop's send batch (stream.c) ---------------------------------------------------- */

Test(client, batched_sends_leave_together_at_the_end_of_the_iteration, .init = setup_batch,
     .fini = teardown)
{
    cr_assert_eq(pr__client_send(cl, "ab", 2), 0);
    cr_assert_eq(pr__client_send2(cl, "cd", 2, "ef", 2), 0);
    cr_assert_eq(peer_drain(), 0, "nothing leaves before the loop iteration ends");
    cr_assert_eq(w->sb.n, 1, "one socket, one entry");
    cr_assert(uv_is_active((uv_handle_t *)&w->sb.idle), "the loop will not block on them");
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_not(uv_is_active((uv_handle_t *)&w->sb.idle));
    char buf[16];
    ssize_t k = read(peer, buf, sizeof(buf));
    cr_assert_eq(k, 6);
    cr_assert_eq(memcmp(buf, "abcdef", 6), 0);
    cr_assert_eq(w->sb.flushes, 1);
    cr_assert_eq(w->sb.sends, 1, "one send for the three pieces");
    cr_assert_not(cl->writing);
}

/* Byte i of the stream is (i * 7 + i / 251) & 0xff: order and completeness are checked. */
static char pattern(size_t i)
{
    return (char)((i * 7 + i / 251) & 0xff);
}

/* A prepare callback that runs after the batch's own (started earlier: libuv runs the most
 * recently started first) and sends: the loop must not block before the check flush. */
static bool far_fired;
static void late_sender(uv_prepare_t *h)
{
    cr_assert_eq(pr__client_send(cl, "late", 4), 0);
    uv_prepare_stop(h); /* not closed here: a closing handle alone keeps the poll from blocking */
}
static void far_cb(uv_timer_t *t)
{
    far_fired = true;
}

Test(client, a_send_after_the_batch_prepare_does_not_wait_for_the_next_event, .init = setup,
     .fini = teardown)
{
    static uv_prepare_t late;
    static uv_timer_t far;
    uv_prepare_init(&w->loop, &late);
    uv_prepare_start(&late, late_sender);
    cr_assert_eq(pr__iobatch_init(&w->sb, &w->loop, true), 0);
    if (!w->sb.on)
        cr_skip_test("no io_uring on this machine: the send batch is off");
    uv_timer_init(&w->loop, &far);
    uv_timer_start(&far, far_cb, 2000, 0);
    /* One iteration that may block: it must not (the peer sends nothing, so only the pending
     * send can end the poll without the 2-s timer). */
    uv_run(&w->loop, UV_RUN_ONCE);
    cr_assert_not(far_fired, "the loop blocked in poll with a send waiting");
    char buf[8];
    cr_assert_eq(read(peer, buf, sizeof(buf)), 4, "flushed in the same iteration");
    uv_close((uv_handle_t *)&far, NULL);
    uv_close((uv_handle_t *)&late, NULL);
}

Test(client, a_full_socket_queues_the_rest_behind_libuv_in_order, .init = setup_batch,
     .fini = teardown)
{
    /* 8000-byte sends, a flush after every third: the 16-KiB socket fills during a flush,
     * the rest goes behind libuv (the owner hears it: writing), later sends queue behind. */
    enum { CHUNK = 8000, CHUNKS = 120 };
    static char chunk[CHUNK];
    size_t total = 0;
    int queued_at = -1;
    for (int i = 0; i < CHUNKS; i++) {
        for (size_t j = 0; j < CHUNK; j++)
            chunk[j] = pattern(total + j);
        int rc = pr__client_send(cl, chunk, CHUNK);
        cr_assert(rc == 0 || rc == 1, "send %d: %d", i, rc);
        if (rc == 1 && queued_at < 0)
            queued_at = i;
        total += CHUNK;
        if (i % 3 == 2) {
            pr__iobatch_flush(&w->sb);
            cr_assert_eq(cl->writing, cl->tcp.write_queue_size > 0,
                         "after flush %d: the client knows whether bytes wait", i / 3);
        }
    }
    cr_assert(queued_at > 0, "the socket filled up (first queued send: %d)", queued_at);
    cr_assert(cl->writing, "the flush told the client its bytes wait");
    cr_assert(cl->tq_send, "the send timeout watches it");
    size_t got = 0;
    char buf[65536];
    for (int i = 0; i < 20000 && got < total; i++) {
        ssize_t k;
        while ((k = read(peer, buf, sizeof(buf))) > 0) {
            for (ssize_t j = 0; j < k; j++)
                cr_assert_eq(buf[j], pattern(got + (size_t)j), "byte %zu", got + (size_t)j);
            got += (size_t)k;
        }
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(got, total);
    RUN_UNTIL(R.drained >= 1);
    cr_assert_not(cl->writing);
}

Test(client, a_large_send_after_batched_bytes_keeps_their_order, .init = setup_batch,
     .fini = teardown)
{
    size_t n = PR_SB_MAX_SEND + 100;
    char *big = malloc(n);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = pattern(i + 4);
    cr_assert_eq(pr__client_send(cl, "head", 4), 0);
    int rc = pr__client_send(cl, big, n);
    cr_assert(rc == 0 || rc == 1);
    free(big);
    char *got = malloc(n + 4);
    size_t off = 0;
    for (int i = 0; i < 2000 && off < n + 4; i++) {
        ssize_t k = read(peer, got + off, n + 4 - off);
        if (k > 0)
            off += (size_t)k;
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(off, n + 4);
    cr_assert_eq(memcmp(got, "head", 4), 0, "the batched bytes went first");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[4 + i], pattern(i + 4), "byte %zu", i);
    free(got);
}

/* A decision to close asks pr__client_writing: batched bytes the socket cannot take yet make
 * it true (they were handed over and the rest queued), so the close waits for them. */
Test(client, writing_counts_batched_bytes_the_socket_cannot_take, .init = setup_batch,
     .fini = teardown)
{
    uv_os_fd_t fd;
    cr_assert_eq(uv_fileno((uv_handle_t *)&cl->tcp, &fd), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static char fill[4096];
    size_t filled = 0;
    ssize_t k;
    while ((k = write(fd, fill, sizeof(fill))) > 0)
        filled += (size_t)k; /* the peer reads nothing: the socket is full */
    static char last[8000];
    memset(last, 'z', sizeof(last));
    cr_assert_eq(pr__client_send(cl, last, sizeof(last)), 0, "batched");
    cr_assert_not(cl->writing, "nothing handed to the socket yet");
    cr_assert(pr__client_writing(cl), "the bytes the socket refused are not reported");
    cr_assert_eq(w->sb.n, 0, "the batch was flushed");
    size_t got = 0;
    char buf[65536];
    for (int i = 0; i < 20000 && got < filled + sizeof(last); i++) {
        while ((k = read(peer, buf, sizeof(buf))) > 0) {
            if (got + (size_t)k > filled) {
                size_t from = got > filled ? 0 : filled - got;
                for (size_t j = from; j < (size_t)k; j++)
                    cr_assert_eq(buf[j], 'z');
            }
            got += (size_t)k;
        }
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(got, filled + sizeof(last));
    RUN_UNTIL(!cl->writing);
    cr_assert_not(pr__client_writing(cl));
}

Test(client, a_close_right_after_a_send_still_delivers_it, .init = setup_batch, .fini = teardown)
{
    cr_assert_eq(pr__client_send(cl, "bye", 3), 0);
    cr_assert_eq(w->sb.n, 1);
    pr__client_close(cl);
    cr_assert_null(cl);
    char buf[8];
    cr_assert_eq(read(peer, buf, sizeof(buf)), 3, "sent before the descriptor closed");
    cr_assert_eq(memcmp(buf, "bye", 3), 0);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(w->sb.n, 0);
    cr_assert_eq(w->sb.sends, 0, "the forgotten entry is not sent twice");
    cr_assert_eq(read(peer, buf, sizeof(buf)), 0, "then EOF");
}

Test(client, a_send_to_a_closed_peer_reports_the_error_and_closes, .init = setup_batch,
     .fini = teardown)
{
    close(peer);
    peer = -1;
    cr_assert_eq(pr__client_send(cl, "lost", 4), 0, "batched: the error comes with the flush");
    pr__iobatch_flush(&w->sb);
    cr_assert_eq(R.gone, 1, "the write error closed the client");
    cr_assert_null(cl);
}

Test(client, io_uring_off_sends_at_once, .init = setup, .fini = teardown)
{
    cr_assert_eq(pr__iobatch_init(&w->sb, &w->loop, false), 0, "--io-uring false");
    cr_assert_not(w->sb.on);
    cr_assert_not(uv_is_active((uv_handle_t *)&w->sb.check), "no flush handle runs");
    cr_assert_eq(pr__client_send(cl, "now", 3), 0);
    char buf[8];
    cr_assert_eq(read(peer, buf, sizeof(buf)), 3, "no loop iteration needed");
}

/* ---- tunnel reads in the batch (pr__client_batch_reads) ---- */

static int peer2 = -1;
static struct pr_client *cl2;
static int gone_cl2, data_cl2;

/* Second table for the second client: counts its own calls; closes or stops the first client
 * when asked (what one side of a tunnel does to the other). */
static enum { DO_NOTHING, DO_CLOSE_OTHER, DO_STOP_OTHER } on_data_do;

static struct pr_client *other_of(struct pr_client *c)
{
    return c == cl ? cl2 : cl;
}

static size_t pair_data(struct pr_client *c, const char *data, size_t len)
{
    if (c == cl2)
        data_cl2++;
    else
        R.data_calls++;
    keep(data, len);
    struct pr_client *o = other_of(c);
    if (o && on_data_do == DO_CLOSE_OTHER)
        pr__client_close(o);
    else if (o && on_data_do == DO_STOP_OTHER)
        pr__client_stop_read(o);
    return len;
}

static void pair_gone(struct pr_client *c)
{
    if (c == cl2) {
        gone_cl2++;
        cl2 = NULL;
    } else {
        R.gone++;
        cl = NULL;
    }
}

static const struct pr_client_handlers table_pair = {
    .on_head = t_head,
    .on_data = pair_data,
    .on_drained = t_drained,
    .on_gone = pair_gone,
    .on_timeout = t_timeout,
    .on_room = t_room,
    .on_drain = t_drain,
};

/* Two clients on table_pair, both read in the batch. */
static void setup_pair(void)
{
    setup_ring(&table_pair, 1);
    if (!pr__stream_reads_batchable())
        cr_skip_test("libuv %s: tunnel reads are not batched", uv_version_string());
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer2 = sv[1];
    fcntl(peer2, F_SETFL, fcntl(peer2, F_GETFL) | O_NONBLOCK);
    gone_cl2 = data_cl2 = 0;
    on_data_do = DO_NOTHING;
    cl2 = pr__client_open(w, sv[0], &table_pair);
    cr_assert_not_null(cl2);
}

static void teardown_pair(void)
{
    if (cl2)
        pr__client_close(cl2);
    if (peer2 >= 0)
        close(peer2);
    peer2 = -1;
    teardown();
}

Test(client, tunnel_reads_of_one_iteration_take_one_ring_call, .init = setup_pair,
     .fini = teardown_pair)
{
    peer_write("one", 3);
    cr_assert_eq(write(peer2, "two", 3), 3);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(R.data_calls, 1);
    cr_assert_eq(data_cl2, 1);
    cr_assert_eq(R.got_len, 6);
    cr_assert_eq(w->sb.rflushes, 1, "both sockets read in one io_uring_enter");
    cr_assert_eq(w->sb.recvs, 2);
    cr_assert_eq(w->sb.rn, 0, "nothing left for the next iteration");
}

Test(client, a_read_that_fills_its_buffer_goes_on_in_the_same_iteration, .init = setup_pair,
     .fini = teardown_pair)
{
    /* More than one batch buffer: the ring read fills one, libuv reads the rest at once. */
    size_t n = 3 * PR_RB_BUF + 123;
    char *big = malloc(n);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = pattern(i);
    peer_write(big, n);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(w->sb.recvs, 1, "the first bytes came through the ring");
    cr_assert_eq(R.got_len, n, "all of it in one iteration");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(R.got[i], big[i], "byte %zu", i);
    free(big);
}

Test(client, end_of_stream_in_the_batch_closes_the_client_once, .init = setup_pair,
     .fini = teardown_pair)
{
    peer_write("last", 4);
    shutdown(peer, SHUT_WR);
    RUN_UNTIL(R.gone == 1);
    cr_assert_eq(R.got_len, 4, "the bytes before the end arrived");
    cr_assert_eq(memcmp(R.got, "last", 4), 0);
    cr_assert_null(cl);
    for (int i = 0; i < 5; i++)
        uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(R.gone, 1, "once");
    cr_assert_not_null(cl2, "the other client is untouched");
}

/* Runs in the check phase before the batch's check (started later: libuv runs the most
 * recently started first): takes the client's bytes away and closes the peer with bytes it
 * never read, so the ring's read finds the reset and no data. */
static void reset_before_the_batch(uv_check_t *h)
{
    uv_os_fd_t fd;
    cr_assert_eq(uv_fileno((uv_handle_t *)&cl->tcp, &fd), 0);
    char c;
    cr_assert_eq(recv(fd, &c, 1, MSG_DONTWAIT), 1);
    close(peer);
    peer = -1;
    uv_check_stop(h);
}

Test(client, a_reset_in_the_batch_reports_the_error, .init = setup_pair, .fini = teardown_pair)
{
    static uv_check_t early;
    uv_check_init(&w->loop, &early);
    uv_check_start(&early, reset_before_the_batch);
    uv_os_fd_t fd;
    cr_assert_eq(uv_fileno((uv_handle_t *)&cl->tcp, &fd), 0);
    cr_assert_eq(write(fd, "y", 1), 1); /* never read by the peer: its close resets */
    cr_assert_eq(write(peer, "x", 1), 1);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(w->sb.recvs, 1, "read through the ring");
    cr_assert_eq(R.got_len, 0);
    cr_assert_eq(R.gone, 1, "the error closed the client");
    cr_assert_null(cl);
    uv_close((uv_handle_t *)&early, NULL);
}

/* The first socket handled closes or stops the other: the other's bytes, already read, are
 * not handed to it (what a tunnel does: one side gone, the other's bytes are dropped). Which
 * of the two comes first is the poll's order: either way exactly one got its bytes. */
static void one_side_stops_the_other(int how)
{
    on_data_do = how;
    peer_write("aa", 2);
    cr_assert_eq(write(peer2, "bb", 2), 2);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(w->sb.recvs, 2, "both were read in one call");
    cr_assert_eq(R.data_calls + data_cl2, 1, "only the first handled got its bytes");
    cr_assert_eq(R.got_len, 2);
}

Test(client, a_socket_closed_by_an_earlier_one_in_the_batch_gets_nothing, .init = setup_pair,
     .fini = teardown_pair)
{
    one_side_stops_the_other(DO_CLOSE_OTHER);
    cr_assert_eq(R.gone + gone_cl2, 1, "the other one closed");
}

/* newer: bytes sent to the stopped one before it reads again (then the poll reports it and
 * the held bytes go first there), else after (the check hands the held ones over alone);
 * hangup: the peer also closes (a hang-up goes to libuv's own read: after the held). */
static void stopped_keeps_its_bytes(bool newer, bool hangup)
{
    one_side_stops_the_other(DO_STOP_OTHER);
    struct pr_client *stopped = R.data_calls ? cl2 : cl;
    const char *its = stopped == cl ? "aa" : "bb";
    int its_peer = stopped == cl ? peer : peer2;
    cr_assert_not(stopped->reading);
    on_data_do = DO_NOTHING;
    if (newer)
        cr_assert_eq(write(its_peer, "ee", 2), 2);
    if (hangup) { /* a whole close: POLLHUP */
        close(its_peer);
        *(stopped == cl ? &peer : &peer2) = -1;
    }
    for (int i = 0; i < 5; i++)
        uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_eq(R.got_len, 2, "nothing while it is stopped");
    pr__client_start_read(stopped);
    cr_assert(uv_is_active((uv_handle_t *)&w->sb.idle), "the loop will not block on them");
    uv_run(&w->loop, UV_RUN_NOWAIT);
    cr_assert_geq(R.got_len, 4);
    cr_assert_eq(memcmp(R.got + 2, its, 2), 0, "the held bytes first");
    cr_assert_null(w->sb.held);
    if (!newer)
        cr_assert_eq(write(its_peer, "ee", 2), 2);
    RUN_UNTIL(R.got_len == 6);
    cr_assert_eq(memcmp(R.got + 4, "ee", 2), 0, "then the newer ones");
    if (hangup)
        RUN_UNTIL(R.gone + gone_cl2 == 1);
    cr_assert_not(uv_is_active((uv_handle_t *)&w->sb.idle));
}

Test(client, a_socket_stopped_by_an_earlier_one_keeps_its_bytes_until_it_reads_again,
     .init = setup_pair, .fini = teardown_pair)
{
    stopped_keeps_its_bytes(false, false);
}

Test(client, held_bytes_go_before_newer_ones_that_the_poll_reports, .init = setup_pair,
     .fini = teardown_pair)
{
    stopped_keeps_its_bytes(true, false);
}

Test(client, held_bytes_go_before_a_hang_up, .init = setup_pair, .fini = teardown_pair)
{
    stopped_keeps_its_bytes(true, true);
}

Test(client, held_bytes_of_a_stream_that_closes_are_freed, .init = setup_pair,
     .fini = teardown_pair)
{
    one_side_stops_the_other(DO_STOP_OTHER);
    cr_assert_not_null(w->sb.held);
    on_data_do = DO_NOTHING;
    pr__client_close(R.data_calls ? cl2 : cl);
    cr_assert_null(w->sb.held, "freed with the connection (the leak check sees the rest)");
}

static void setup_no_ring(void)
{
    setup_ring(&table_a, 2);
}

Test(client, without_a_ring_reads_are_not_batched, .init = setup_no_ring, .fini = teardown)
{
    peer_write("plain", 5);
    RUN_UNTIL(R.got_len == 5);
    cr_assert_eq(w->sb.recvs, 0);
}

/* ---- lingering close (pr__client_linger, RFC 9112 9.6) ------------------------------------ */

static int open_clients(void)
{
    cr_assert_eq(metrics.conns[PR_CONN_CLIENT], (int64_t)atomic_load(&srv.nclients));
    return (int)atomic_load(&srv.nclients);
}

/* Read from the peer until end of stream (bounded, the loop runs meanwhile): the bytes. */
static size_t peer_read_to_eof(char *buf, size_t cap)
{
    size_t got = 0;
    for (int i = 0; i < 4000; i++) {
        ssize_t k = read(peer, buf + got, cap - got);
        if (k == 0)
            return got;
        if (k > 0)
            got += (size_t)k;
        uv_run(&w->loop, UV_RUN_NOWAIT);
        if (k < 0)
            usleep(500);
    }
    cr_assert_fail("no end of stream from the router");
    return got;
}

/* The answer, then the router's FIN; what the client still sends is read and dropped (no
 * reset destroys the answer); the client's own end of stream closes the connection. */
static void linger_then_client_eof(void)
{
    struct pr_client *c = cl;
    cr_assert_eq(pr__client_send(c, "answer", 6), 0);
    peer_write("late request bytes", 18); /* unread by the router when it answers */
    pr__client_linger(c);
    cr_assert_eq(R.gone, 1, "the layer above lets go at once");
    cr_assert_eq(c->state, PR_C_CLOSING);
    cr_assert_eq(open_clients(), 1, "still open (and counted) while it lingers");
    char buf[64];
    cr_assert_eq(peer_read_to_eof(buf, sizeof(buf)), 6, "the whole answer, then the FIN");
    cr_assert_eq(memcmp(buf, "answer", 6), 0);
    /* A client that has not read our FIN yet keeps sending: 1 MiB, all taken and dropped. */
    size_t n = 1u << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, 'q', n);
    peer_write(big, n);
    free(big);
    cr_assert_eq(R.data_calls, 0, "nothing reaches the old table");
    cr_assert_eq(open_clients(), 1);
    shutdown(peer, SHUT_WR);
    RUN_UNTIL(open_clients() == 0);
    cr_assert_eq(R.gone, 1, "on_gone once");
    cr_assert_eq(w->q_clinger.head.next, &w->q_clinger.head, "out of the linger queue");
}

Test(client, linger_sends_the_answer_and_a_fin_drops_the_rest_and_closes_at_the_clients_eof,
     .init = setup, .fini = teardown)
{
    linger_then_client_eof();
}

Test(client, linger_with_the_answer_still_in_the_send_batch_sends_it_before_the_fin,
     .init = setup_batch, .fini = teardown)
{
    linger_then_client_eof();
}

Test(client, a_lingering_client_is_closed_after_PR_CLIENT_LINGER_MS, .init = setup,
     .fini = teardown)
{
    pr__client_linger(cl);
    uint64_t t0 = pr__now(w);
    pr__tq_sweep(&w->q_clinger, t0 + PR_CLIENT_LINGER_MS - 1);
    cr_assert_eq(open_clients(), 1);
    pr__tq_sweep(&w->q_clinger, t0 + PR_CLIENT_LINGER_MS);
    cr_assert_eq(open_clients(), 0, "closed when the linger time is up");
    cr_assert_eq(R.gone, 1);
}

Test(client, a_lingering_client_is_closed_by_the_drain, .init = setup, .fini = teardown)
{
    pr__client_linger(cl);
    pr__client_drain(w);
    cr_assert_eq(R.drains, 0, "the old table is not called");
    cr_assert_eq(open_clients(), 0);
}

Test(client, the_clients_close_while_lingering_closes_once, .init = setup, .fini = teardown)
{
    pr__client_linger(cl);
    close(peer);
    peer = -1;
    RUN_UNTIL(open_clients() == 0);
    cr_assert_eq(R.gone, 1);
}

Test(client, a_client_still_writing_is_closed_not_lingered, .init = setup, .fini = teardown)
{
    size_t n = 4u << 20;
    send_more_than_the_socket_takes(n, 'w');
    pr__client_linger(cl);
    cr_assert_eq(R.gone, 1);
    cr_assert_eq(open_clients(), 0, "a FIN after unsent bytes would cut the answer: closed");
}

Test(client, a_draining_worker_closes_instead_of_lingering, .init = setup, .fini = teardown)
{
    w->draining = true;
    pr__client_linger(cl);
    cr_assert_eq(open_clients(), 0);
    w->draining = false;
}
