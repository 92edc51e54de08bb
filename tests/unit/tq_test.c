/* Timeout queues (pr__tq_*, src/loop.c): one timeout per queue, so pushing appends and a
 * sweep expires from the head until the first node whose deadline is still ahead. */
#include <criterion/criterion.h>

#include "server.h"

struct item {
    struct pr_tq_node n;
    int id;
};

static int expired[16];
static int nexpired;
static struct pr_tq *requeue_into; /* when set, an expired node is pushed there again */
static uint64_t requeue_now;

static void record(struct pr_tq_node *n)
{
    struct item *it = pr__container_of(n, struct item, n);
    if (nexpired < 16)
        expired[nexpired++] = it->id;
    if (requeue_into)
        pr__tq_push(requeue_into, n, requeue_now);
}

static void reset(void)
{
    nexpired = 0;
    requeue_into = NULL;
    requeue_now = 0;
}

Test(tq, sweep_expires_in_deadline_order_and_stops_at_the_first_live_node)
{
    reset();
    struct pr_tq q;
    pr__tq_init(&q, 100, record);
    struct item a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    pr__tq_push(&q, &a.n, 0);  /* deadline 100 */
    pr__tq_push(&q, &b.n, 10); /* 110 */
    pr__tq_push(&q, &c.n, 50); /* 150 */
    cr_assert_eq(a.n.deadline, 100);
    pr__tq_sweep(&q, 99);
    cr_assert_eq(nexpired, 0);
    pr__tq_sweep(&q, 110);
    cr_assert_eq(nexpired, 2);
    cr_assert_eq(expired[0], 1);
    cr_assert_eq(expired[1], 2);
    cr_assert_null(a.n.next, "an expired node is unlinked before its callback");
    cr_assert_null(b.n.prev);
    pr__tq_sweep(&q, 149);
    cr_assert_eq(nexpired, 2);
    pr__tq_sweep(&q, 150);
    cr_assert_eq(nexpired, 3);
    cr_assert_eq(expired[2], 3);
    cr_assert_eq(q.head.next, &q.head, "the queue is empty");
}

Test(tq, push_again_restarts_the_timeout_and_moves_the_node_to_the_tail)
{
    reset();
    struct pr_tq q;
    pr__tq_init(&q, 100, record);
    struct item a = {.id = 1}, b = {.id = 2};
    pr__tq_push(&q, &a.n, 0);
    pr__tq_push(&q, &b.n, 10);
    pr__tq_push(&q, &a.n, 20); /* activity on a: deadline 120, now after b */
    cr_assert_eq(q.head.next, &b.n);
    cr_assert_eq(q.head.prev, &a.n);
    pr__tq_sweep(&q, 115);
    cr_assert_eq(nexpired, 1);
    cr_assert_eq(expired[0], 2);
    pr__tq_sweep(&q, 120);
    cr_assert_eq(nexpired, 2);
    cr_assert_eq(expired[1], 1);
}

Test(tq, remove_unlinks_and_is_idempotent)
{
    reset();
    struct pr_tq q;
    pr__tq_init(&q, 5, record);
    struct item a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    pr__tq_push(&q, &a.n, 0);
    pr__tq_push(&q, &b.n, 0);
    pr__tq_push(&q, &c.n, 0);
    pr__tq_remove(&b.n);
    pr__tq_remove(&b.n); /* not queued: nothing happens */
    cr_assert_null(b.n.next);
    cr_assert_eq(a.n.next, &c.n);
    cr_assert_eq(c.n.prev, &a.n);
    struct item never = {.id = 9};
    pr__tq_remove(&never.n); /* zeroed, never queued */
    pr__tq_sweep(&q, 1000);
    cr_assert_eq(nexpired, 2);
    cr_assert_eq(expired[0], 1);
    cr_assert_eq(expired[1], 3);
}

Test(tq, a_node_moves_between_queues)
{
    reset();
    struct pr_tq q1, q2;
    pr__tq_init(&q1, 10, record);
    pr__tq_init(&q2, 1000, record);
    struct item a = {.id = 1};
    pr__tq_push(&q1, &a.n, 0);
    pr__tq_push(&q2, &a.n, 0); /* e.g. a client going from the header to the idle timer */
    cr_assert_eq(q1.head.next, &q1.head, "pushing into q2 took it out of q1");
    pr__tq_sweep(&q1, 500);
    cr_assert_eq(nexpired, 0);
    pr__tq_sweep(&q2, 1000);
    cr_assert_eq(nexpired, 1);
}

Test(tq, an_expiry_that_requeues_its_node_does_not_loop)
{
    reset();
    struct pr_tq q;
    pr__tq_init(&q, 100, record);
    struct item a = {.id = 1}, b = {.id = 2};
    pr__tq_push(&q, &a.n, 0);
    pr__tq_push(&q, &b.n, 0);
    requeue_into = &q;
    requeue_now = 100; /* pushed again with deadline 200 */
    pr__tq_sweep(&q, 100);
    cr_assert_eq(nexpired, 2);
    cr_assert_eq(a.n.deadline, 200);
    cr_assert_eq(q.head.next, &a.n);
    cr_assert_eq(q.head.prev, &b.n);
    requeue_into = NULL;
    pr__tq_sweep(&q, 200);
    cr_assert_eq(nexpired, 4);
}
