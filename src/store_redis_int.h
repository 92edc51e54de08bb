/* Internal header of the Redis store (SPEC 6), shared by its eight files (calls only go down
 * this list; the connections reach up only through the hooks table the top layer sets):
 *   store_redis.c        the pr_store ops (get/create/replace/set/del/join/touch), the sid pin,
 *                        renewals, reply dispatch, open/close;
 *   store_redis_owner.c  the owner's duties (worker 0): P events, the shared pod table,
 *                        activity sharing, write-back after an outage, the tick;
 *   store_redis_batch.c  the sid pins and joins of one loop iteration as one script call;
 *   store_redis_cmd.c    the script call, the create script, value and answer parsing;
 *   store_redis_wait.c   the waiting room: lookups and assignments waiting for a command
 *                        connection that reconnects;
 *   store_redis_conn.c   connections: the hiredis libuv adapter and flusher,
 *                        connect/setup/reconnect, deadlines, Sentinel, the per-handle timer,
 *                        the request FIFO;
 *   store_redis_master.c the master's address, Sentinel's +switch-master;
 *   store_redis_reply.c  the hiredis reader's reply objects (from a per-connection arena),
 *                        the direct read of a subscribed connection.
 * The design and failure rules are in the header comment of store_redis.c. */
#ifndef PODROUTER_STORE_REDIS_INT_H
#define PODROUTER_STORE_REDIS_INT_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "atable.h"
#include "podrouter/config.h"
#include "podrouter/log.h"
#include "podrouter/redis_proto.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"
#include "redis_cache.h"

#define CMD_TIMEOUT_MS 500u
#define CONNECT_TIMEOUT_MS 1000u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define TIMER_MS 100u
/* A lookup or assignment that finds its handle's command connection down waits this long for
 * it (the waiting room, store_redis_conn.c) when the connection was ready until less than this
 * ago or another handle of the process is connected: a reconnect, not an outage, so Redis still
 * decides (a choice made locally could differ from another replica's). At most WAIT_MAX wait
 * per handle; past either limit the request routes degraded (SPEC 6.3). */
#define WAIT_MS 1000u
#define WAIT_MAX 8192u
#define WRITEBACK_BATCH 256u
#define WRITEBACK_INFLIGHT 1024u
#define MEMBERS_MAX 4096u
#define MAX_ARGS 16
#define ACTIVE_CHUNK 512u /* activity reports per HSET */
#define ACTIVE_MAX 65536u /* activity reports per tick */
#define ACTIVE_FRESH_MS 3000u

enum role { ROLE_CMD = 0, ROLE_SUB, ROLE_SENT_Q, ROLE_SENT_SUB, ROLE__COUNT };

enum conn_state { CS_CONNECTING = 0, CS_READY, CS_DEAD };

enum op {
    OP_SETUP = 0, /* AUTH, SELECT, SCRIPT LOAD */
    OP_ROLE,      /* ROLE must say master */
    OP_SENTINEL,  /* SENTINEL get-master-addr-by-name */
    OP_GET,
    OP_CREATE,
    OP_REPLACE,
    OP_FIRE, /* set, del, renew, pod changes: nothing to do with the answer */
    OP_RENEW,
    OP_PODS,
    OP_WRITEBACK,
    OP_ACTIVE, /* per-pod active load over all replicas */
    OP_BATCH,  /* the sid pins and joins of one loop iteration: one script call */
};

struct redis_store;
struct pr__rs_batch;

/* Where one connection's reply objects live (store_redis_reply.c): hiredis builds one reply
 * at a time per connection and frees it before it starts the next, so the objects of a reply
 * are carved from this block and the block is reset when the reply is freed; what does not
 * fit is malloc'd. */
#define REPLY_ARENA 16384u
/* Limits on what a Redis server (or anything on its link) can make us hold: the store's
 * largest replies are the pod rows (at most PR_MAX_PODS) and a batch's answers (BATCH_MAX).
 * A reply array longer than this fails the reply (hiredis: out of memory, the connection is
 * closed); unparsed bytes beyond REPLY_BUF_MAX (one reply still arriving) close it too. */
#define REPLY_ELEMENTS_MAX 65536
#define REPLY_BUF_MAX ((size_t)8388608)
#define REPLY_BUF_MAX_STR "8388608" /* for the log */
struct pr__rs_arena {
    size_t used;
    size_t skip; /* P events read by us (pr__rs_read_events): bytes of a long message left */
    const redisAsyncContext *ac; /* whose reader builds here (NULL: a bare reader) */
    const char *refused;         /* why a reply was refused (the connection then closes) */
    const char *channel;         /* the one channel its context subscribes to, if any */
    _Alignas(16) unsigned char mem[REPLY_ARENA];
};

/* When a pod last heartbeated through this replica's own admin API. */
struct beat {
    char name[PR_POD_NAME_MAX + 1];
    uint64_t mono;
};

struct conn {
    struct conn *next_all;
    struct redis_store *rs;
    enum role role;
    enum conn_state state;
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;     /* what hiredis wants polled */
    int armed;      /* what the poll handle is started with */
    bool flush;     /* queued commands wait for the flusher (this loop iteration) */
    bool flushing;  /* inside the flusher's write */
    bool poll_open; /* initialised and its close_cb not run yet */
    bool resolving; /* uv_getaddrinfo in flight */
    bool kill;      /* free the context from the timer (asked inside a callback) */
    bool was_ready;
    int fail_status; /* status given to calls still pending when the context goes */
    unsigned setup_left;
    uint32_t gen; /* master generation it connected to */
    uint64_t deadline;
    struct req *head, *tail;
    uv_getaddrinfo_t gai;
    char host[PR_REDIS_HOST_MAX + 1];
    uint16_t port;
    struct pr__rs_arena arena; /* its reply objects */
};

struct req {
    struct req *prev, *next;
    struct conn *conn;
    uint64_t deadline;
    uint64_t start_ns;
    uint8_t op;
    uint8_t kind;
    uint8_t key_len;
    bool retried;
    bool waited; /* has been in the waiting room (once at most) */
    pr_store_cb cb;
    void *arg;
    uint32_t count;
    uint64_t at;
    char key[PR_KEY_MAX + 1];
    char pod[PR_POD_NAME_MAX + 1];
    int argc;
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    char *buf;
    char *tail;      /* OP_BATCH: tail_argc more arguments after argv, already RESP, at */
    size_t tail_off; /* tail + tail_off (tail_len bytes); the head_len bytes before them */
    size_t tail_len; /* are argv as RESP with the command's head: sent as they are unless */
    size_t head_len; /* argv changed (a NOSCRIPT retry) */
    int tail_argc;
    struct pr__rs_batch *batch; /* OP_BATCH: its entries */
};

/* One sid pin or room join waiting in a batch (store_redis_batch.c). */
struct pr__rs_bentry {
    bool join;
    uint8_t key_len;
    uint32_t count; /* joins: the room's cached participantCount after this join */
    char key[PR_KEY_MAX + 1]; /* the sid or the room */
    char pod[PR_POD_NAME_MAX + 1];
    pr_store_cb cb; /* pins */
    void *arg;
};

#define BATCH_MAX 128u /* entries per script call (keeps each call short inside Redis) */
#ifndef BATCH_INFLIGHT
#define BATCH_INFLIGHT 1u /* batches sent and not answered; the next one gathers meanwhile */
#endif

struct pr__rs_batch {
    uint32_t n, cap, nkeys, nargs;
    char *keys, *args; /* RESP bulk strings */
    size_t keys_len, keys_cap, args_len, args_cap;
    struct pr__rs_bentry e[]; /* cap of them (grows up to BATCH_MAX) */
};

/* Process-wide settings and the master address (guarded by pr__rs_mu). */
struct shared {
    unsigned refs;
    struct pr_redis_url url;
    char prefix[128];
    char channel[PR_REDIS_KEY_MAX];
    char pods_key[PR_REDIS_KEY_MAX];
    char pod_key_prefix[PR_REDIS_KEY_MAX];
    char active_key[PR_REDIS_KEY_MAX]; /* P active: hash of activity reports */
    uint64_t active_ms;
    uint64_t housekeeping_ms; /* pr_config_housekeeping_ms: activity sharing and pod reload */
    uint64_t max_per_kind;
    char sha[41];
    size_t prefix_len;
    char origin[24]; /* "@" and 16 hex digits: this process in its batches' count messages */
    size_t origin_len;
    char batch_fixed[PR_REDIS_KEY_MAX + 128]; /* the fixed arguments of a batch, RESP */
    size_t batch_fixed_len;
    char msg_prefix[PR_REDIS_KEY_MAX + 40]; /* how a message on the channel starts, RESP */
    size_t msg_prefix_len;
    uint64_t ttl[3];
    uint64_t pod_key_ttl;
    uint64_t pod_ttl;
    char master_host[PR_REDIS_HOST_MAX + 1];
    uint16_t master_port;
    uint32_t master_gen; /* 0: unknown yet */
    bool owner_taken;
    uint32_t cmd_ready; /* handles whose command connection is ready (atomic, no lock) */
};

/* Calls from the connections (store_redis_conn.c) up into the store: set by the top layer
 * (store_redis.c), so that calls between the files only go down. */
struct pr__rs_hooks {
    void (*reply)(struct req *q, redisReply *r, int status); /* a command's answer, or none */
    void (*event)(struct redis_store *rs, const char *msg, size_t len); /* a P events message */
    void (*cmd_state)(struct redis_store *rs, bool ready); /* the live command connection
                                                            * is ready, or was lost */
    bool (*lost)(struct req *q); /* q's connection went unanswered: true when kept (waits) */
    void (*timer)(struct redis_store *rs);     /* every run of the handle's timer */
    void (*flush)(struct redis_store *rs); /* the flusher is about to write: batch what waits */
};

struct redis_store {
    struct pr_store base;
    const struct pr__rs_hooks *hooks;
    uv_loop_t *loop;
    struct pr_registry *reg;
    bool owner;
    bool closing;
    uint8_t handles_closing; /* timer and flusher closed by r_close, callbacks not run yet */
    uv_timer_t timer;
    uv_prepare_t flusher; /* writes the commands of one loop iteration at once */
    struct conn *live[ROLE__COUNT];
    struct conn *all;
    uint64_t retry_at[ROLE__COUNT];
    uint32_t backoff[ROLE__COUNT];
    bool down_logged[ROLE__COUNT];
    size_t sentinel_next[ROLE__COUNT];
    bool need_master; /* owner under Sentinel: ask before (re)connecting */
    uint64_t last_reload;
    bool wb_active, wb_full;
    size_t wb_cursor;
    uint32_t wb_inflight;
    uint64_t wb_written, wb_adopted;
    uint32_t rand_state;
    uint32_t seen_gen;  /* master generation the reconnect schedule is for */
    struct beat *beats; /* owner: pods heartbeating through this replica's admin API */
    size_t nbeats;
    uint64_t active_at; /* owner: monotonic ms the shared active loads were last applied */
    struct pr_touch_cache touched; /* this loop's touch throttle */
    struct pr__rs_batch *batch;    /* sid pins and joins of this loop iteration, not sent yet */
    uint32_t batch_inflight;       /* batches sent, not answered yet */
    struct req *wait_head, *wait_tail; /* the waiting room (requests for the next connection) */
    uint32_t nwaiting;
    uint64_t cmd_lost_at; /* monotonic ms the command connection was lost; 0 while ready */
    uint64_t kicked_at;   /* last reconnect brought forward for a waiting request */
    bool cmd_counted;     /* counted in pr__rs_g.cmd_ready */
};

/* Process-wide settings (pr__rs_g) and its lock. */
extern pthread_mutex_t pr__rs_mu;
extern struct shared pr__rs_g;

/* Monotonic milliseconds. */
static inline uint64_t now_ms(void)
{
    return pr_mono_ms();
}

/* true when the handle's command connection is ready. */
static inline bool is_up(const struct redis_store *rs)
{
    return rs->live[ROLE_CMD] && rs->live[ROLE_CMD]->state == CS_READY;
}

/* Layers, calls only downwards: store_redis.c -> store_redis_owner.c -> store_redis_cmd.c ->
 * store_redis_conn.c (which reaches up only through rs->hooks). */

/* store_redis_master.c (also defines pr__rs_g and pr__rs_mu; below the connections) */
bool pr__rs_master_addr(char *host, size_t cap, uint16_t *port, uint32_t *gen);
void pr__rs_master_set(const char *host, uint16_t port);
uint32_t pr__rs_master_gen(void);
void pr__rs_switch_master(struct redis_store *rs, const char *msg, size_t len);

/* store_redis_wait.c */
bool pr__rs_can_wait(struct redis_store *rs);
int pr__rs_req_submit(struct redis_store *rs, struct req *q);
void pr__rs_wait_ready(struct redis_store *rs);
void pr__rs_wait_conn_lost(struct redis_store *rs);
bool pr__rs_wait_lost(struct req *q);
void pr__rs_wait_expire(struct redis_store *rs, uint64_t now, bool closing);
bool pr__rs_all_up(void);

/* store_redis_conn.c */
struct req *pr__rs_req_new(enum op op, int argc, const char **argv, const size_t *argl);

void pr__rs_req_free(struct req *q);
int pr__rs_req_send(struct conn *c, struct req *q);
void pr__rs_timer_cb(uv_timer_t *t);
void pr__rs_schedule_soon(struct redis_store *rs);
void pr__rs_conns_close(struct redis_store *rs);
void pr__rs_flush_soon(struct redis_store *rs);

/* store_redis_reply.c (below the connections) */
void pr__rs_reply_fns(redisReader *reader, struct pr__rs_arena *arena,
                      const redisAsyncContext *ac);
void pr__rs_read_direct(redisAsyncContext *ac, void (*fn)(void *arg, redisReply *r), void *arg);
void pr__rs_message_prefix(void);
int pr__rs_read_events(redisAsyncContext *ac, struct pr__rs_arena *in,
                       void (*fn)(void *arg, const char *msg, size_t len), void *arg);

/* store_redis_cmd.c */
struct req *pr__rs_script(struct redis_store *rs, enum op op, int nkeys, const char **keys,
                          int nargs, const char **args);
void pr__rs_req_key(struct req *q, enum pr_key_kind kind, const char *key, size_t len,
                    const char *pod);
bool pr__rs_akey(char *buf, size_t cap, enum pr_key_kind kind, const char *key, size_t len);
struct req *pr__rs_send_create(struct redis_store *rs, enum op op, enum pr_key_kind kind,
                               const char *key, size_t len, const char *pod, uint32_t count,
                               uint64_t at, bool tentative);
int pr__rs_value_of(const struct req *q, const redisReply *v, char pod[PR_POD_NAME_MAX + 1],
                    uint32_t *count, uint64_t *at);
int pr__rs_script_value(const struct req *q, const redisReply *r, char pod[PR_POD_NAME_MAX + 1],
                        uint32_t *count, uint64_t *at, bool *written);

/* store_redis_batch.c */
void pr__rs_batch_init(void);
int pr__rs_batch_pin(struct redis_store *rs, const char *sid, size_t len, const char *pod,
                     size_t pl, pr_store_cb cb, void *arg);
void pr__rs_batch_join(struct redis_store *rs, const char *room, size_t len, const char *who,
                       size_t who_len, uint32_t count);
void pr__rs_batch_send(struct redis_store *rs);
void pr__rs_batch_answered(struct redis_store *rs);
void pr__rs_batch_cancel(struct redis_store *rs, int status);

/* store_redis_owner.c */
void pr__rs_apply_event(struct redis_store *rs, const char *msg, size_t len);
void pr__rs_apply_active(struct redis_store *rs, const redisReply *r);
void pr__rs_reply_pods(struct redis_store *rs, const redisReply *r);
void pr__rs_reply_writeback(struct req *q, redisReply *r, int status);
void pr__rs_reload_pods(struct redis_store *rs);
void pr__rs_writeback_start(struct redis_store *rs, bool full);
void pr__rs_writeback_step(struct redis_store *rs);
void pr__rs_owner_cmd_ready(struct redis_store *rs);
void pr__rs_tick(struct pr_store *s);
void pr__rs_pod_put(struct pr_store *s, const char *name);
void pr__rs_pod_drain(struct pr_store *s, const char *name);
void pr__rs_pod_delete(struct pr_store *s, const char *name);

#endif
