/* Redis store, the waiting room (see store_redis_int.h, WAIT_MS): a lookup, creation or move
 * that finds its handle's command connection down, or whose connection went without its
 * answer, waits for the next connection when that is a reconnect (the handle was connected
 * under WAIT_MS ago, or another handle of the process is connected) instead of routing
 * degraded at once: a pod chosen locally could differ from what Redis holds or another
 * replica chooses. Below the script calls, above the connections (store_redis_conn.c); the
 * answers go up through the hooks, as a connection's do. */
#include <errno.h>

#include "store_redis_int.h"

/* Lookups and assignments: what a client waits for, and what a choice made here instead of by
 * Redis could get wrong (another replica may choose differently). */
static bool waitable(const struct req *q)
{
    return q->op == OP_GET || q->op == OP_CREATE || q->op == OP_REPLACE;
}

/* Another handle of this process has its command connection ready: Redis is reachable. */
static bool others_ready(const struct redis_store *rs)
{
    return __atomic_load_n(&pr__rs_g.cmd_ready, __ATOMIC_RELAXED) > (rs->cmd_counted ? 1u : 0u);
}

/* A request may wait for rs's command connection (WAIT_MS). */
bool pr__rs_can_wait(struct redis_store *rs)
{
    if (rs->closing || rs->nwaiting >= WAIT_MAX)
        return false;
    return (rs->cmd_lost_at && now_ms() - rs->cmd_lost_at < WAIT_MS) || others_ready(rs);
}

/* The handle's command connection serves this process's other workers already: connect it
 * now instead of at the end of its backoff (at most every TIMER_MS * 2). */
static void kick(struct redis_store *rs)
{
    uint64_t now = now_ms();
    if (rs->live[ROLE_CMD] || rs->retry_at[ROLE_CMD] <= now || now - rs->kicked_at < 2 * TIMER_MS ||
        !others_ready(rs))
        return;
    rs->kicked_at = now;
    rs->retry_at[ROLE_CMD] = now;
    pr__rs_schedule_soon(rs);
}

static void wait_add(struct redis_store *rs, struct req *q)
{
    q->waited = true;
    q->conn = NULL;
    q->deadline = now_ms() + WAIT_MS;
    q->next = NULL;
    q->prev = rs->wait_tail;
    if (rs->wait_tail)
        rs->wait_tail->next = q;
    else
        rs->wait_head = q;
    rs->wait_tail = q;
    rs->nwaiting++;
    kick(rs);
}

static struct req *wait_pop(struct redis_store *rs)
{
    struct req *q = rs->wait_head;
    if (!q)
        return NULL;
    rs->wait_head = q->next;
    if (rs->wait_head)
        rs->wait_head->prev = NULL;
    else
        rs->wait_tail = NULL;
    q->prev = q->next = NULL;
    rs->nwaiting--;
    return q;
}

/* No connection for q after all: it gets what a failed command gets (routing degraded). */
static void wait_fail(struct redis_store *rs, struct req *q, int status)
{
    rs->hooks->reply(q, NULL, status);
    pr__rs_req_free(q);
}

/* Send q on the command connection, or let it wait for one (a lookup or assignment while the
 * connection reconnects); 0, or -ENOTCONN (q not taken). */
int pr__rs_req_submit(struct redis_store *rs, struct req *q)
{
    if (is_up(rs))
        return pr__rs_req_send(rs->live[ROLE_CMD], q);
    if (!waitable(q) || q->waited || !pr__rs_can_wait(rs))
        return -ENOTCONN;
    wait_add(rs, q);
    return 0;
}

/* The live command connection was lost (hooks->cmd_state): requests may wait WAIT_MS from now. */
void pr__rs_wait_conn_lost(struct redis_store *rs)
{
    if (!rs->cmd_counted)
        return; /* a connect or setup that failed */
    rs->cmd_counted = false;
    rs->cmd_lost_at = now_ms();
    __atomic_sub_fetch(&pr__rs_g.cmd_ready, 1u, __ATOMIC_RELAXED);
}

/* The command connection is ready (hooks->cmd_state): counted in pr__rs_g.cmd_ready, and what
 * waits goes out on it, in arrival order. */
void pr__rs_wait_ready(struct redis_store *rs)
{
    if (!rs->cmd_counted) {
        rs->cmd_counted = true;
        rs->cmd_lost_at = 0;
        __atomic_add_fetch(&pr__rs_g.cmd_ready, 1u, __ATOMIC_RELAXED);
    }
    for (uint32_t n = rs->nwaiting; n > 0; n--) {
        struct req *q = wait_pop(rs);
        if (pr__rs_req_send(rs->live[ROLE_CMD], q) != 0)
            wait_fail(rs, q, -ENOTCONN);
    }
}

/* q's connection went without its answer (hooks->lost): a lookup or assignment waits, once,
 * for the next one, where Redis still decides; true when kept. */
bool pr__rs_wait_lost(struct req *q)
{
    if (!waitable(q) || q->waited || !q->conn)
        return false;
    struct redis_store *rs = q->conn->rs;
    if (rs->closing || rs->nwaiting >= WAIT_MAX)
        return false;
    wait_add(rs, q);
    return true;
}

/* What waited past WAIT_MS gets -ENOTCONN; all gets -ECANCELED when the handle closes. */
void pr__rs_wait_expire(struct redis_store *rs, uint64_t now, bool closing)
{
    while (rs->wait_head && (closing || now >= rs->wait_head->deadline))
        wait_fail(rs, wait_pop(rs), closing ? -ECANCELED : -ENOTCONN);
}

/* true when every handle's command connection is ready (what /readyz and podrouter_store_up
 * call the store being up: a worker reconnecting still routes some requests without it). */
bool pr__rs_all_up(void)
{
    pthread_mutex_lock(&pr__rs_mu);
    unsigned handles = pr__rs_g.refs;
    pthread_mutex_unlock(&pr__rs_mu);
    return handles > 0 && __atomic_load_n(&pr__rs_g.cmd_ready, __ATOMIC_RELAXED) >= handles;
}
