/* L0 of the event loop: timeout queues (all members share one timeout, so the list stays
 * sorted), the loop clock and the worker's shared read buffer. */
#include "tq.h"
#include "worker.h"

void pr__tq_init(struct pr_tq *q, uint64_t timeout_ms, void (*expire)(struct pr_tq_node *))
{
    q->head.prev = q->head.next = &q->head;
    q->timeout_ms = timeout_ms;
    q->expire = expire;
}

void pr__tq_remove(struct pr_tq_node *n)
{
    if (!n->next)
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

void pr__tq_push(struct pr_tq *q, struct pr_tq_node *n, uint64_t now)
{
    pr__tq_remove(n);
    n->deadline = now + q->timeout_ms;
    n->prev = q->head.prev;
    n->next = &q->head;
    q->head.prev->next = n;
    q->head.prev = n;
}

void pr__tq_sweep(struct pr_tq *q, uint64_t now)
{
    while (q->head.next != &q->head && q->head.next->deadline <= now) {
        struct pr_tq_node *n = q->head.next;
        pr__tq_remove(n);
        q->expire(n);
    }
}

uint64_t pr__now(struct pr_worker *w)
{
    return uv_now(&w->loop);
}

/* Every read on a worker lands in its one shared buffer: consumers copy what they keep,
 * so an idle connection owns no read memory. */
void pr__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pr_worker *w = h->loop->data;
    buf->base = w->readbuf;
    buf->len = sizeof(w->readbuf);
}

