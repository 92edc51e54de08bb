/* tq.c (L0): timeout queues, the loop clock, the worker's read buffer. A queue's members
 * share one timeout, so the list stays sorted: push is O(1), a sweep pops expired heads. */
#ifndef PODROUTER_TQ_H
#define PODROUTER_TQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define pr__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct pr_worker;

struct pr_tq_node {
    struct pr_tq_node *prev, *next;
    uint64_t deadline;
};
struct pr_tq {
    struct pr_tq_node head;
    uint64_t timeout_ms;
    void (*expire)(struct pr_tq_node *n);
};
void pr__tq_init(struct pr_tq *q, uint64_t timeout_ms, void (*expire)(struct pr_tq_node *));
void pr__tq_push(struct pr_tq *q, struct pr_tq_node *n, uint64_t now);
void pr__tq_remove(struct pr_tq_node *n);
void pr__tq_sweep(struct pr_tq *q, uint64_t now);

/* The loop clock of worker w (ms). */
uint64_t pr__now(struct pr_worker *w);
/* uv_alloc_cb of every read: the worker's single read buffer (handle->loop->data). */
void pr__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

#endif
