/* stream.c (L0): the send helper shared by both sides, and the per-loop I/O batch.
 *
 * A send on a socket with nothing queued normally goes out at once (uv_try_write); only the
 * bytes the socket does not take are copied into a heap write request. With an I/O batch
 * (one per loop, io_uring), small sends are copied into the batch instead and leave together
 * at the end of the loop iteration: one io_uring_enter for every socket written in that
 * iteration instead of one write system call each (issue 11: on this machine a system call
 * costs ~1 µs). Each send is issued with MSG_DONTWAIT, so every one completes inside that
 * io_uring_enter: nothing is in flight afterwards and no buffer outlives the flush.
 *
 * Sockets are read the same way (pr__stream_batch_reads, on every client and pod
 * connection): libuv's poll reports them readable, the batch remembers them instead of
 * reading each, and after the poll one io_uring_enter reads them all (MSG_DONTWAIT into the
 * batch's buffers, handed to the streams' read callbacks as libuv would); the sends those
 * reads cause leave in the next one. A handshake or a relayed WebSocket frame costs no system
 * call of its own. */
#ifndef PODROUTER_STREAM_H
#define PODROUTER_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* A pending write with its own copy of the bytes (only when the socket is full). */
struct pr_wreq {
    uv_write_t req;
    void *owner;
    size_t len;
    char data[];
};

/* Called when bytes a flush could not hand to the socket were queued behind a uv_write (the
 * owner now waits for its write callback, as after a send that returned 1). */
typedef void (*pr_stream_queued_cb)(void *owner);

#define PR_SB_ENTRIES 64u /* sockets per flush: bounds how long a send waits in a busy iteration */
#define PR_SB_ARENA (64u * 1024u) /* bytes per flush */
#define PR_SB_MAX_SEND 16384u     /* larger sends go out at once */

struct pr_sb_entry {
    uv_stream_t *s; /* NULL: forgotten (its bytes already went out) */
    void *owner;
    uv_write_cb cb;
    pr_stream_queued_cb queued;
    int fd;
    uint32_t off, len; /* its bytes in the arena */
};

#define PR_RB_ENTRIES 64u /* sockets read per ring call */
#define PR_RB_BUF 2048u    /* bytes per read (frames are small); a full one goes on the libuv way */

struct pr_rb_entry {
    uv_stream_t *s; /* NULL: forgotten (closed) */
    int fd;
};

/* Bytes read for a stream whose reading stopped before they were handed over. */
struct pr_rb_held {
    struct pr_rb_held *next;
    uv_stream_t *s;
    int err; /* an error read after the bytes (0: none) */
    uint32_t len;
    char data[];
};

struct pr_iobatch {
    bool on;     /* false (also when zeroed): every send goes out at once */
    int ring_fd; /* -1: no ring (no io_uring here, or --io-uring false) */
    uint32_t n, used, gen;
    uint64_t flushes, sends; /* for tests and benchmarks */
    /* the io_uring rings (mmap'ed) */
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len;
    struct io_uring_sqe *sqes;
    size_t sqes_len;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    char *arena;
    struct pr_sb_entry e[PR_SB_ENTRIES];
    /* tunnel reads of one iteration (pr__stream_batch_reads) */
    uv_loop_t *loop;
    uint32_t rn;
    uint64_t rflushes, recvs; /* for tests and benchmarks */
    char *rarena;             /* PR_RB_ENTRIES buffers of PR_RB_BUF */
    struct pr_rb_entry r[PR_RB_ENTRIES];
    struct pr_rb_held *held; /* rare: see hold() in stream.c */
    uv_prepare_t prepare; /* flush before the loop blocks */
    uv_check_t check;     /* flush after the I/O callbacks of an iteration */
    uv_idle_t idle;       /* active while sends wait: the loop does not block on them */
};

/* Set b up on loop (enable: --io-uring): 0 (b may end up off: sends then go out at once) or a
 * libuv error of the handles. Its three handles are unreferenced: they do not keep the loop
 * alive; the loop's close walk closes them. */
int pr__iobatch_init(struct pr_iobatch *b, uv_loop_t *loop, bool enable);
/* Release the rings and the arena (after the loop ran its close callbacks). Accepts a b that
 * was never set up if it was zeroed. */
void pr__iobatch_finish(struct pr_iobatch *b);
/* Hand every batched send to its socket now. */
void pr__iobatch_flush(struct pr_iobatch *b);
/* If s has bytes in b, hand the batch to the sockets now: what s's owner then finds queued
 * (its writing flag) is what the socket refused. Before deciding to close or linger. */
void pr__stream_settle(struct pr_iobatch *b, const uv_stream_t *s);
/* s is about to be closed: its batched bytes go out now (so a response sent just before a
 * close is not lost and a reused descriptor number never gets them). */
void pr__stream_forget(struct pr_iobatch *b, uv_stream_t *s);

/* From now on s is read in the batch: the sockets that become readable in one loop iteration
 * are read together in one io_uring_enter after the poll, instead of one read system call
 * each (read_flush in stream.c). Right after uv_tcp_init; no-op without a ring. */
void pr__stream_batch_reads(struct pr_iobatch *b, uv_stream_t *s);
/* s reads again (after uv_read_start): bytes the batch holds for it are handed over at the
 * end of this loop iteration, before anything newer. Call after every uv_read_start of a
 * stream whose reads are batched. */
void pr__stream_resumed(struct pr_iobatch *b, uv_stream_t *s);
/* Whether this libuv is one the read batch was checked against (else sends only). */
bool pr__stream_reads_batchable(void);

/* 0 sent now (or batched: b not NULL), 1 queued (the caller pauses its source), <0 error.
 * b may be NULL (no batching); queued may be NULL when b is. */
int pr__stream_send(struct pr_iobatch *b, uv_stream_t *s, void *owner, const char *data,
                    size_t len, uv_write_cb cb, pr_stream_queued_cb queued);
/* Same for two pieces sent as one writev (a response head and the first body bytes). */
int pr__stream_send2(struct pr_iobatch *b, uv_stream_t *s, void *owner, const char *a,
                     size_t alen, const char *bb, size_t blen, uv_write_cb cb,
                     pr_stream_queued_cb queued);

#endif
