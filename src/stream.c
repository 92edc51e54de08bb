/* L0: the try-write-then-queue send helper of both transports, and the per-loop send batch
 * (io_uring, raw system calls: no liburing). See stream.h. */
#include "stream.h"

#include <errno.h>
#include <poll.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- queueing behind libuv ------------------------------------------------------------- */

/* Copy the bytes of (a, b) from off on into a write request queued on s: 1, or <0. */
static int queue_rest(uv_stream_t *s, void *owner, const char *a, size_t alen, const char *b,
                      size_t blen, size_t off, uv_write_cb cb)
{
    size_t len = alen + blen;
    struct pr_wreq *wr = malloc(sizeof(*wr) + (len - off));
    if (!wr)
        return UV_ENOMEM;
    wr->owner = owner;
    wr->len = len - off;
    if (off < alen) {
        memcpy(wr->data, a + off, alen - off);
        if (blen)
            memcpy(wr->data + (alen - off), b, blen);
    } else {
        memcpy(wr->data, b + (off - alen), blen - (off - alen));
    }
    uv_buf_t buf = uv_buf_init(wr->data, (unsigned)wr->len);
    int rc = uv_write(&wr->req, s, &buf, 1, cb);
    if (rc) {
        free(wr);
        return rc;
    }
    return 1;
}

/* The old path: uv_try_write, the rest queued. */
static int send_now(uv_stream_t *s, void *owner, const char *a, size_t alen, const char *b,
                    size_t blen, uv_write_cb cb)
{
    size_t len = alen + blen, off = 0;
    if (len == 0)
        return 0;
    if (s->write_queue_size == 0) {
        uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen),
                            uv_buf_init((char *)b, (unsigned)blen)};
        int n = uv_try_write(s, alen ? bufs : bufs + 1, alen && blen ? 2 : 1);
        if (n >= 0 && (size_t)n == len)
            return 0;
        if (n > 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN)
            return n;
    }
    return queue_rest(s, owner, a, alen, b, blen, off, cb); /* the socket is full */
}

/* ---- the ring ---------------------------------------------------------------------------- */

static int uring_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int uring_enter(int fd, unsigned submit, unsigned complete, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, complete, flags, NULL, 0);
}

static void read_flush(struct pr_iobatch *b);
static void idle_settle(struct pr_iobatch *b);

/* The batch of the loop this thread runs (set before every poll: the read hook, called only
 * from libuv's poll, finds it here). */
static _Thread_local struct pr_iobatch *tl_batch;

static void prepare_cb(uv_prepare_t *h)
{
    struct pr_iobatch *b = h->data;
    pr__iobatch_flush(b);
    tl_batch = b;
}
static void check_cb(uv_check_t *h)
{
    struct pr_iobatch *b = h->data;
    read_flush(b); /* what it reads may be sent on at once: it goes into the send flush below */
    pr__iobatch_flush(b);
    idle_settle(b);
}
static void idle_cb(uv_idle_t *h)
{
    (void)h; /* only there so that the loop polls without blocking while sends wait */
}

/* Map the rings of fd; false (nothing left mapped) on failure. */
static bool ring_map(struct pr_iobatch *b, int fd, const struct io_uring_params *p)
{
    b->sq_map_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    b->cq_map_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    bool single = p->features & IORING_FEAT_SINGLE_MMAP;
    if (single) {
        if (b->cq_map_len > b->sq_map_len)
            b->sq_map_len = b->cq_map_len;
        b->cq_map_len = b->sq_map_len;
    }
    b->sq_map = mmap(NULL, b->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                     IORING_OFF_SQ_RING);
    if (b->sq_map == MAP_FAILED)
        return false;
    b->cq_map = single ? b->sq_map
                       : mmap(NULL, b->cq_map_len, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    b->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
    b->sqes = b->cq_map == MAP_FAILED
                  ? MAP_FAILED
                  : mmap(NULL, b->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                         fd, IORING_OFF_SQES);
    if (b->sqes == MAP_FAILED) {
        if (b->cq_map != MAP_FAILED && !single)
            munmap(b->cq_map, b->cq_map_len);
        munmap(b->sq_map, b->sq_map_len);
        b->sq_map = b->cq_map = NULL;
        b->sqes = NULL;
        return false;
    }
    char *sq = b->sq_map, *cq = b->cq_map;
    b->sq_head = (unsigned *)(sq + p->sq_off.head);
    b->sq_tail = (unsigned *)(sq + p->sq_off.tail);
    b->sq_mask = (unsigned *)(sq + p->sq_off.ring_mask);
    b->sq_array = (unsigned *)(sq + p->sq_off.array);
    b->cq_head = (unsigned *)(cq + p->cq_off.head);
    b->cq_tail = (unsigned *)(cq + p->cq_off.tail);
    b->cq_mask = (unsigned *)(cq + p->cq_off.ring_mask);
    b->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
    return true;
}

/* A ring for b, or b->ring_fd -1 when this kernel (or its seccomp profile: container runtimes
 * commonly refuse io_uring) has none. IORING_SETUP_SUBMIT_ALL (5.18) is required: a flush
 * relies on every entry being consumed. */
static void ring_open(struct pr_iobatch *b)
{
    b->ring_fd = -1;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SUBMIT_ALL;
    int fd = uring_setup(PR_SB_ENTRIES, &p);
    if (fd < 0)
        return;
    if (p.sq_entries < PR_SB_ENTRIES || !ring_map(b, fd, &p)) {
        close(fd);
        return;
    }
    b->arena = malloc(PR_SB_ARENA);
    if (pr__stream_reads_batchable())
        b->rarena = malloc((size_t)PR_RB_ENTRIES * PR_RB_BUF);
    if (!b->arena || (pr__stream_reads_batchable() && !b->rarena)) {
        pr__iobatch_finish(b);
        close(fd);
        return;
    }
    b->ring_fd = fd;
    b->on = true;
}

int pr__iobatch_init(struct pr_iobatch *b, uv_loop_t *loop, bool enable)
{
    memset(b, 0, sizeof(*b));
    b->ring_fd = -1;
    b->loop = loop;
    if (enable)
        ring_open(b);
    if (!b->on)
        return 0;
    int rc = uv_prepare_init(loop, &b->prepare);
    if (rc == 0)
        rc = uv_check_init(loop, &b->check);
    if (rc == 0)
        rc = uv_idle_init(loop, &b->idle);
    if (rc) {
        pr__iobatch_finish(b);
        return rc;
    }
    b->prepare.data = b->check.data = b->idle.data = b;
    uv_prepare_start(&b->prepare, prepare_cb);
    uv_check_start(&b->check, check_cb);
    uv_unref((uv_handle_t *)&b->prepare);
    uv_unref((uv_handle_t *)&b->check);
    uv_unref((uv_handle_t *)&b->idle);
    return 0;
}

void pr__iobatch_finish(struct pr_iobatch *b)
{
    if (b->sqes)
        munmap(b->sqes, b->sqes_len);
    if (b->cq_map && b->cq_map != b->sq_map)
        munmap(b->cq_map, b->cq_map_len);
    if (b->sq_map)
        munmap(b->sq_map, b->sq_map_len);
    if (b->on)
        close(b->ring_fd);
    free(b->arena);
    free(b->rarena);
    while (b->held) { /* streams closed without pr__stream_forget (the loop's last walk) */
        struct pr_rb_held *h = b->held;
        b->held = h->next;
        free(h);
    }
    if (tl_batch == b)
        tl_batch = NULL;
    b->rarena = NULL;
    b->rn = 0;
    b->sqes = NULL;
    b->sq_map = b->cq_map = NULL;
    b->arena = NULL;
    b->ring_fd = -1;
    b->on = false;
    b->n = b->used = 0;
}

/* ---- flushing -------------------------------------------------------------------------- */

/* What a flush owes an owner once the batch is free again. */
struct sb_note {
    void *owner;
    uv_write_cb cb;
    pr_stream_queued_cb queued;
    struct pr_wreq *err_req; /* the failed send, reported through cb */
    int status;
};

/* One operation of a ring call; fd < 0: none (its result stays -EIO). */
struct ring_op {
    int fd;
    uint8_t opcode; /* IORING_OP_SEND or IORING_OP_RECV */
    char *addr;
    uint32_t len;
    int flags;
};

/* Submit ops[0..n) in one io_uring_enter and wait for all of them (MSG_DONTWAIT: none waits
 * for the network); res[i] gets bytes moved or -errno. false when the ring took nothing (then
 * the caller does it the old way). A completion of an earlier call that arrives late (cannot
 * happen with MSG_DONTWAIT, but the ring does not promise it) is recognised by its generation
 * and dropped; an operation whose completion never comes counts as failed (-EIO). */
static bool ring_run(struct pr_iobatch *b, struct ring_op *ops, uint32_t n, int *res)
{
    unsigned tail = *b->sq_tail, mask = *b->sq_mask, k = 0;
    uint64_t gen = (uint64_t)(++b->gen) << 32;
    for (uint32_t i = 0; i < n; i++) {
        res[i] = -EIO;
        if (ops[i].fd < 0)
            continue;
        unsigned idx = (tail + k) & mask;
        struct io_uring_sqe *q = &b->sqes[idx];
        memset(q, 0, sizeof(*q));
        q->opcode = ops[i].opcode;
        q->fd = ops[i].fd;
        q->addr = (uint64_t)(uintptr_t)ops[i].addr;
        q->len = ops[i].len;
        q->msg_flags = (uint32_t)ops[i].flags;
        q->user_data = gen | i;
        b->sq_array[idx] = idx;
        k++;
    }
    if (k == 0)
        return true;
    atomic_store_explicit((_Atomic unsigned *)b->sq_tail, tail + k, memory_order_release);
    int rc;
    do
        rc = uring_enter(b->ring_fd, k, k, IORING_ENTER_GETEVENTS);
    while (rc < 0 && errno == EINTR &&
           atomic_load_explicit((_Atomic unsigned *)b->sq_head, memory_order_acquire) != tail + k);
    if (rc < 0 &&
        atomic_load_explicit((_Atomic unsigned *)b->sq_head, memory_order_acquire) == tail) {
        atomic_store_explicit((_Atomic unsigned *)b->sq_tail, tail, memory_order_release);
        return false; /* nothing consumed: take the entries back */
    }
    unsigned got = 0;
    for (int tries = 0; got < k && tries < 4; tries++) {
        unsigned head = *b->cq_head;
        unsigned ctail = atomic_load_explicit((_Atomic unsigned *)b->cq_tail, memory_order_acquire);
        for (; head != ctail; head++) {
            const struct io_uring_cqe *c = &b->cqes[head & *b->cq_mask];
            if ((c->user_data & ~(uint64_t)UINT32_MAX) == gen && (uint32_t)c->user_data < n) {
                res[(uint32_t)c->user_data] = c->res;
                got++;
            }
        }
        atomic_store_explicit((_Atomic unsigned *)b->cq_head, head, memory_order_release);
        if (got < k) {
            unsigned left = tail + k - atomic_load_explicit((_Atomic unsigned *)b->sq_head,
                                                            memory_order_acquire);
            uring_enter(b->ring_fd, left, k - got, IORING_ENTER_GETEVENTS);
        }
    }
    return true;
}

/* Every live send entry in one ring call. */
static bool submit_all(struct pr_iobatch *b, int *res)
{
    struct ring_op ops[PR_SB_ENTRIES];
    uint32_t k = 0, n = b->n < PR_SB_ENTRIES ? b->n : PR_SB_ENTRIES;
    for (uint32_t i = 0; i < n; i++) {
        const struct pr_sb_entry *e = &b->e[i];
        ops[i] = (struct ring_op){e->s ? e->fd : -1, IORING_OP_SEND, b->arena + e->off, e->len,
                                  MSG_DONTWAIT | MSG_NOSIGNAL};
        k += e->s != NULL;
    }
    if (!ring_run(b, ops, n, res))
        return false;
    if (k) {
        b->flushes++;
        b->sends += k;
    }
    return true;
}

void pr__iobatch_flush(struct pr_iobatch *b)
{
    if (b->n == 0)
        return;
    int res[PR_SB_ENTRIES];
    struct sb_note notes[PR_SB_ENTRIES];
    uint32_t nn = 0;
    bool ringed = submit_all(b, res);
    /* Pass 1: nothing calls out; every byte a socket did not take is copied behind libuv. */
    for (uint32_t i = 0; i < b->n; i++) {
        struct pr_sb_entry *e = &b->e[i];
        if (!e->s)
            continue;
        const char *data = b->arena + e->off;
        int rc;
        if (!ringed)
            rc = send_now(e->s, e->owner, data, e->len, NULL, 0, e->cb);
        else if (res[i] == (int)e->len)
            rc = 0;
        else if (res[i] >= 0 || res[i] == -EAGAIN)
            rc = queue_rest(e->s, e->owner, data, e->len, NULL, 0,
                            res[i] > 0 ? (size_t)res[i] : 0, e->cb);
        else
            rc = res[i];
        if (rc == 1) {
            notes[nn++] = (struct sb_note){e->owner, e->cb, e->queued, NULL, 0};
        } else if (rc < 0) {
            struct pr_wreq *wr = malloc(sizeof(*wr));
            if (!wr)
                continue; /* the owner learns of the broken socket from its next read */
            wr->owner = e->owner;
            wr->len = 0;
            notes[nn++] = (struct sb_note){e->owner, e->cb, NULL, wr, rc};
        }
    }
    b->n = b->used = 0;
    /* Pass 2: the owners hear about queued bytes and failed sends; they may send again. */
    for (uint32_t i = 0; i < nn; i++) {
        if (notes[i].err_req)
            notes[i].cb(&notes[i].err_req->req, notes[i].status);
        else if (notes[i].queued)
            notes[i].queued(notes[i].owner);
    }
    idle_settle(b);
}

/* ---- reading in one ring call ---------------------------------------------------------- */

/* Batched reads rely on three things libuv does not promise: a stream's poll callback is
 * io_watcher.cb (uv__stream_io), epoll is level-triggered, and uv_read_stop clears read_cb.
 * They hold for the libuv this was tested with (Debian 12's 1.44); elsewhere sockets are read
 * the libuv way until someone checks. */
bool pr__stream_reads_batchable(void)
{
    unsigned v = uv_version();
    return (v >> 16) == 1 && ((v >> 8) & 0xffu) == 44;
}

/* libuv's own I/O callback of stream handles (the same function for all of them). */
static uv__io_cb stream_io;

/* ---- bytes read for a stream that stopped reading before they were handed over ---- */

/* The node of s in b's held list (NULL none). */
static struct pr_rb_held **held_slot(struct pr_iobatch *b, const uv_stream_t *s)
{
    struct pr_rb_held **p = &b->held;
    while (*p && (*p)->s != s)
        p = &(*p)->next;
    return *p ? p : NULL;
}

/* Keep r for s (bytes in data, or an error) until s reads again: libuv hands a stream nothing
 * while it is stopped, and these were already taken from the socket. */
static void hold(struct pr_iobatch *b, uv_stream_t *s, const char *data, int r)
{
    struct pr_rb_held **p = held_slot(b, s);
    struct pr_rb_held *h = p ? *p : NULL;
    uint32_t old = h ? h->len : 0, add = r > 0 ? (uint32_t)r : 0;
    struct pr_rb_held *nh = realloc(h, sizeof(*nh) + old + add);
    if (!nh) {
        /* Out of memory: the bytes are lost, so the stream must not go on as if they were
         * not. Its owner sees the end at its next read or write and closes it. */
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)s, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
        return;
    }
    if (!h) {
        nh->next = b->held;
        nh->s = s;
        nh->err = 0;
        nh->len = 0;
        b->held = nh;
    } else {
        *p = nh;
    }
    if (add)
        memcpy(nh->data + old, data, add);
    nh->len = old + add;
    if (r < 0)
        nh->err = r;
}

/* Whether s reads (libuv would hand it bytes now). */
static bool reads(const uv_stream_t *s)
{
    return s->read_cb && !uv_is_closing((const uv_handle_t *)s);
}

/* Report a read error to s as libuv does (then its reading stops). */
static void give_error(uv_stream_t *s, int err)
{
    uv_buf_t buf = uv_buf_init(NULL, 0);
    s->read_cb(s, err, &buf); /* libuv errors are negated errno values */
    if (!uv_is_closing((uv_handle_t *)s))
        uv_read_stop(s);
}

/* If s has held bytes and reads again, hand them over (then a held error). */
static void give_held(struct pr_iobatch *b, uv_stream_t *s)
{
    struct pr_rb_held **p = b->held ? held_slot(b, s) : NULL;
    if (!p || !reads(s))
        return;
    struct pr_rb_held *h = *p;
    *p = h->next;
    if (h->len) {
        uv_buf_t buf = uv_buf_init(h->data, h->len);
        s->read_cb(s, (ssize_t)h->len, &buf);
    }
    if (h->err && reads(s))
        give_error(s, h->err);
    free(h);
}

/* While sends wait or a held stream reads again, the loop must not block. */
static void idle_settle(struct pr_iobatch *b)
{
    if (b->n)
        return;
    for (const struct pr_rb_held *h = b->held; h; h = h->next)
        if (reads(h->s))
            return;
    uv_idle_stop(&b->idle);
}

void pr__stream_resumed(struct pr_iobatch *b, uv_stream_t *s)
{
    if (b && b->held && held_slot(b, s))
        uv_idle_start(&b->idle, idle_cb); /* the check hands them over */
}

/* In place of stream_io on a stream whose reads are batched: when the socket is readable and
 * nothing else happened to it (no error, no hang-up, not connecting), remember it instead of
 * reading now; the check phase reads every remembered socket in one io_uring_enter. Anything
 * else (the write side, errors, a full batch, another loop) goes to libuv as before, after
 * any bytes held for the stream. */
static void read_hook(uv_loop_t *loop, uv__io_t *w, unsigned int events)
{
    uv_stream_t *s = (uv_stream_t *)((char *)w - offsetof(uv_stream_t, io_watcher));
    struct pr_iobatch *b = tl_batch;
    if (!b || b->loop != loop || !b->on) {
        stream_io(loop, w, events);
        return;
    }
    if (b->held && s->read_cb) {
        give_held(b, s);
        if (uv_is_closing((uv_handle_t *)s))
            return;
    }
    if ((events & POLLIN) && !(events & (POLLERR | POLLHUP)) && s->read_cb && !s->connect_req) {
        uint32_t i = 0;
        while (i < b->rn && b->r[i].s != s)
            i++;
        if (i == PR_RB_ENTRIES) {
            /* Full: these are read now (callbacks during the poll, as libuv's own reads). */
            read_flush(b);
            if (uv_is_closing((uv_handle_t *)s))
                return;
            i = 0;
        }
        if (i == b->rn && s->read_cb)
            b->r[b->rn++] = (struct pr_rb_entry){s, w->fd};
        events &= ~(unsigned)POLLIN;
        if (!events)
            return;
    }
    stream_io(loop, w, events);
}

void pr__stream_batch_reads(struct pr_iobatch *b, uv_stream_t *s)
{
    if (!b || !b->on || !b->rarena)
        return;
    if (!stream_io)
        stream_io = s->io_watcher.cb;
    if (s->io_watcher.cb == stream_io)
        s->io_watcher.cb = read_hook;
}

/* Hand r (bytes at data, 0 end of stream, -EIO: not read, <0 an error) to s as libuv's read
 * would. */
static void give(struct pr_iobatch *b, uv_stream_t *s, char *data, int r)
{
    if (r > 0) {
        uv_buf_t buf = uv_buf_init(data, (unsigned)r);
        s->read_cb(s, r, &buf);
        if ((uint32_t)r < PR_RB_BUF || !reads(s))
            return;
        /* a full buffer: libuv reads on */
    } else if (r != 0 && r != -EIO) {
        give_error(s, r);
        return;
    }
    /* end of stream (or nothing read): libuv's own read, so the handle's state is libuv's */
    stream_io(b->loop, &s->io_watcher, POLLIN);
}

/* Hand over what held streams that read again are owed, then read every remembered socket in
 * one ring call (MSG_DONTWAIT) and hand each its bytes as libuv's read would. A socket that
 * began closing while earlier ones were handled gets nothing (the connection is going); one
 * whose reading stopped keeps its bytes until it reads again (hold). End of stream is left to
 * libuv (one more read) so that the handle's state is exactly libuv's; an error is reported
 * as libuv reports it. */
static void read_flush(struct pr_iobatch *b)
{
    /* Each round hands one due node over and frees it (callbacks may close streams, which
     * frees theirs, but never add one): this ends. */
    for (struct pr_rb_held *h = b->held; h;) {
        if (reads(h->s)) {
            give_held(b, h->s);
            h = b->held;
        } else {
            h = h->next;
        }
    }
    uint32_t n = b->rn;
    if (n == 0)
        return;
    struct ring_op ops[PR_RB_ENTRIES];
    int res[PR_RB_ENTRIES];
    for (uint32_t i = 0; i < n; i++)
        ops[i] = (struct ring_op){b->r[i].s ? b->r[i].fd : -1, IORING_OP_RECV,
                                  b->rarena + (size_t)i * PR_RB_BUF, PR_RB_BUF, MSG_DONTWAIT};
    bool ringed = ring_run(b, ops, n, res);
    if (ringed) {
        b->rflushes++;
        b->recvs += n;
    }
    for (uint32_t i = 0; i < n; i++) {
        uv_stream_t *s = b->r[i].s;
        if (!s || uv_is_closing((uv_handle_t *)s))
            continue;
        int r = ringed ? res[i] : -EIO;
        if (r == -EAGAIN || r == -EINTR)
            continue; /* level-triggered: the next poll reports it again */
        if (!s->read_cb) {
            if (r > 0 || (r < 0 && r != -EIO))
                hold(b, s, ops[i].addr, r); /* end of stream stays in the socket */
            continue;
        }
        give(b, s, ops[i].addr, r);
    }
    b->rn = 0;
}

/* The index of s's entry in b, or -1. */
static int entry_index(const struct pr_iobatch *b, const uv_stream_t *s)
{
    for (uint32_t i = b->n; i-- > 0;)
        if (b->e[i].s == s)
            return (int)i;
    return -1;
}

/* The entry of s in b, or NULL. */
static struct pr_sb_entry *entry_of(struct pr_iobatch *b, const uv_stream_t *s)
{
    int i = entry_index(b, s);
    return i < 0 ? NULL : &b->e[i];
}

void pr__stream_settle(struct pr_iobatch *b, const uv_stream_t *s)
{
    if (entry_index(b, s) >= 0)
        pr__iobatch_flush(b);
}

void pr__stream_forget(struct pr_iobatch *b, uv_stream_t *s)
{
    if (!b)
        return;
    for (uint32_t i = 0; i < b->rn; i++)
        if (b->r[i].s == s)
            b->r[i].s = NULL; /* its bytes stay unread: the connection closes */
    struct pr_rb_held **p = b->held ? held_slot(b, s) : NULL;
    if (p) {
        struct pr_rb_held *h = *p;
        *p = h->next;
        free(h);
    }
    if (b->n == 0)
        return;
    struct pr_sb_entry *e = entry_of(b, s);
    if (!e)
        return;
    e->s = NULL;
    /* Best effort, as a close right after a send always was: what the socket does not take now
     * is lost with the connection. */
    int fd = e->fd;
    if (fd >= 0) {
        ssize_t r;
        do
            r = send(fd, b->arena + e->off, e->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
    }
}

int pr__stream_send2(struct pr_iobatch *b, uv_stream_t *s, void *owner, const char *a,
                     size_t alen, const char *bb, size_t blen, uv_write_cb cb,
                     pr_stream_queued_cb queued)
{
    size_t len = alen + blen;
    if (len == 0)
        return 0;
    uv_os_fd_t fd;
    if (!b || !b->on || s->write_queue_size > 0 || uv_fileno((uv_handle_t *)s, &fd))
        return send_now(s, owner, a, alen, bb, blen, cb);
    struct pr_sb_entry *e = entry_of(b, s);
    bool room = e ? e->off + e->len == b->used : b->n < PR_SB_ENTRIES;
    if (len > PR_SB_MAX_SEND || !room || b->used + len > PR_SB_ARENA) {
        if (e || len <= PR_SB_MAX_SEND)
            pr__iobatch_flush(b); /* s's batched bytes go first, or room is made */
        if (len > PR_SB_MAX_SEND || s->write_queue_size > 0 || uv_is_closing((uv_handle_t *)s))
            return send_now(s, owner, a, alen, bb, blen, cb);
        e = NULL;
    }
    if (!e) {
        /* Prepare callbacks started after ours may send after our flush: while anything
         * waits, an active idle handle keeps the loop from blocking before the check flush. */
        if (b->n == 0)
            uv_idle_start(&b->idle, idle_cb);
        e = &b->e[b->n++];
        *e = (struct pr_sb_entry){s, owner, cb, queued, fd, b->used, 0};
    }
    if (alen)
        memcpy(b->arena + b->used, a, alen);
    if (blen)
        memcpy(b->arena + b->used + alen, bb, blen);
    b->used += (uint32_t)len;
    e->len += (uint32_t)len;
    return 0;
}

int pr__stream_send(struct pr_iobatch *b, uv_stream_t *s, void *owner, const char *data,
                    size_t len, uv_write_cb cb, pr_stream_queued_cb queued)
{
    return pr__stream_send2(b, s, owner, data, len, NULL, 0, cb, queued);
}
