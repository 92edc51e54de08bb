/* slab.c (L0): fixed-size objects of one event-loop thread (client and pod connections) in
 * 64 KiB mapped slabs apart from the malloc heap, without a malloc header each. An idle
 * tunnel is two such objects; on the heap they were interleaved with the buffers and
 * exchanges of the requests of their time, whose holes glibc cannot give back (issue 11). */
#ifndef PODROUTER_SLAB_H
#define PODROUTER_SLAB_H

#include <stddef.h>
#include <stdint.h>

struct pr_slab_page;

/* One size of object; all zero is an empty cache. Used by one thread only. */
struct pr_slab {
    struct pr_slab_page *partial; /* pages with a free object (the newest first) */
    struct pr_slab_page *empty;   /* one page kept with no object in use (no map/unmap churn) */
};

/* A zeroed object of size bytes (the same size for every call on s), or NULL. */
void *pr__slab_alloc(struct pr_slab *s, size_t size);
/* Give back an object of pr__slab_alloc (NULL is ignored). */
void pr__slab_free(void *obj);
/* Unmap what s holds; every object must have been freed. */
void pr__slab_destroy(struct pr_slab *s);

#endif
