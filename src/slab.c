/* Fixed-size object slabs (see slab.h). A page is 64 KiB mapped at a 64 KiB boundary; its
 * header is at the start, so an object finds its page by masking its address. Objects never
 * handed out are carved from the page's unused tail; freed ones form the page's free list.
 * A page whose last object is freed is unmapped, except one kept empty per cache. Under
 * AddressSanitizer objects come from calloc/free, so that ASan still checks them. */
#include "slab.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "podrouter/common.h"

#define SLAB_PAGE ((size_t)64 * 1024)

struct pr_slab_page {
    struct pr_slab *owner;
    struct pr_slab_page *prev, *next; /* in owner->partial */
    void *free;                       /* freed objects (first word: the next) */
    uint32_t size, used, tail;        /* object size, objects in use, unused tail offset */
    bool listed;                      /* in owner->partial */
};

#define SLAB_FIRST ((sizeof(struct pr_slab_page) + 15) & ~(size_t)15)

#if defined(PR_ASAN)

void *pr__slab_alloc(struct pr_slab *s, size_t size)
{
    (void)s;
    return calloc(1, size);
}

void pr__slab_free(void *obj)
{
    free(obj);
}

void pr__slab_destroy(struct pr_slab *s)
{
    (void)s;
}

#else

static struct pr_slab_page *page_map(struct pr_slab *s, size_t size)
{
    /* Map twice the size and keep the aligned half. */
    char *raw = mmap(NULL, 2 * SLAB_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *al = (char *)(((uintptr_t)raw + SLAB_PAGE - 1) & ~(uintptr_t)(SLAB_PAGE - 1));
    if (al > raw)
        munmap(raw, (size_t)(al - raw));
    if (al + SLAB_PAGE < raw + 2 * SLAB_PAGE)
        munmap(al + SLAB_PAGE, (size_t)(raw + 2 * SLAB_PAGE - (al + SLAB_PAGE)));
    struct pr_slab_page *pg = (struct pr_slab_page *)al;
    pg->owner = s;
    pg->size = (uint32_t)((size + 7) & ~(size_t)7); /* 8-B aligned: no malloc rounding */
    pg->tail = (uint32_t)SLAB_FIRST;
    return pg;
}

static void page_list(struct pr_slab_page *pg)
{
    struct pr_slab *s = pg->owner;
    pg->prev = NULL;
    pg->next = s->partial;
    if (s->partial)
        s->partial->prev = pg;
    s->partial = pg;
    pg->listed = true;
}

static void page_unlist(struct pr_slab_page *pg)
{
    if (pg->prev)
        pg->prev->next = pg->next;
    else
        pg->owner->partial = pg->next;
    if (pg->next)
        pg->next->prev = pg->prev;
    pg->prev = pg->next = NULL;
    pg->listed = false;
}

static bool page_has_room(const struct pr_slab_page *pg)
{
    return pg->free || pg->tail + pg->size <= SLAB_PAGE;
}

void *pr__slab_alloc(struct pr_slab *s, size_t size)
{
    struct pr_slab_page *pg = s->partial;
    if (!pg) {
        pg = s->empty ? s->empty : page_map(s, size);
        if (!pg)
            return NULL;
        s->empty = NULL;
        page_list(pg);
    }
    void *obj;
    if (pg->free) {
        obj = pg->free;
        memcpy(&pg->free, obj, sizeof(void *));
        memset(obj, 0, pg->size);
    } else {
        obj = (char *)pg + pg->tail; /* never used: still zero from the mapping */
        pg->tail += pg->size;
    }
    pg->used++;
    if (!page_has_room(pg))
        page_unlist(pg);
    return obj;
}

void pr__slab_free(void *obj)
{
    if (!obj)
        return;
    struct pr_slab_page *pg = (struct pr_slab_page *)((uintptr_t)obj & ~(uintptr_t)(SLAB_PAGE - 1));
    struct pr_slab *s = pg->owner;
    memcpy(obj, &pg->free, sizeof(void *));
    pg->free = obj;
    pg->used--;
    if (pg->used > 0) {
        if (!pg->listed)
            page_list(pg);
        return;
    }
    if (pg->listed)
        page_unlist(pg);
    if (!s->empty) {
        s->empty = pg; /* kept, with its free list */
        return;
    }
    munmap(pg, SLAB_PAGE);
}

void pr__slab_destroy(struct pr_slab *s)
{
    while (s->partial) {
        struct pr_slab_page *pg = s->partial;
        page_unlist(pg);
        munmap(pg, SLAB_PAGE);
    }
    if (s->empty)
        munmap(s->empty, SLAB_PAGE);
    s->empty = NULL;
}

#endif
