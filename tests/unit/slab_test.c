/* Connection slabs (src/slab.c): zeroed objects of one size, reused after free, pages given
 * back when empty (one kept), a sizeof budget for the structs an idle tunnel keeps. Without
 * ASan the pages are mapped, and the test checks which still are. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "client.h"
#include "slab.h"
#include "upstream.h"

#define OBJ 344

Test(slab, objects_are_zeroed_distinct_and_reused)
{
    struct pr_slab s = {0};
    char *o[400];
    for (int i = 0; i < 400; i++) {
        o[i] = pr__slab_alloc(&s, OBJ);
        cr_assert_not_null(o[i]);
        for (int k = 0; k < OBJ; k++)
            cr_assert_eq(o[i][k], 0, "object %d byte %d is zero", i, k);
        memset(o[i], 0xAB, OBJ);
        cr_assert_eq((uintptr_t)o[i] % 8, 0, "8-byte aligned");
    }
    for (int i = 0; i < 400; i++)
        for (int j = i + 1; j < 400; j++)
            cr_assert(o[i] + OBJ <= o[j] || o[j] + OBJ <= o[i], "objects %d and %d overlap", i, j);
    pr__slab_free(o[7]);
    char *again = pr__slab_alloc(&s, OBJ);
    for (int k = 0; k < OBJ; k++)
        cr_assert_eq(again[k], 0, "a reused object is zeroed again");
    o[7] = again;
    for (int i = 0; i < 400; i++)
        pr__slab_free(o[i]);
    pr__slab_free(NULL);
    pr__slab_destroy(&s);
}

#if !defined(PR_ASAN)
/* Whether the page at p is mapped (msync fails with ENOMEM on an unmapped range). */
static bool mapped(const void *p)
{
    return msync((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, MS_ASYNC) == 0;
}

Test(slab, pages_are_unmapped_when_empty_one_is_kept)
{
    struct pr_slab s = {0};
    char *o[1000];
    uintptr_t pages[64];
    int npages = 0;
    for (int i = 0; i < 1000; i++) {
        o[i] = pr__slab_alloc(&s, OBJ);
        uintptr_t pg = (uintptr_t)o[i] & ~(uintptr_t)65535; /* a page is 64 KiB-aligned */
        if (npages == 0 || pages[npages - 1] != pg) {
            cr_assert_lt(npages, 64);
            pages[npages++] = pg;
        }
    }
    int per_page = (int)((65536 - 64) / OBJ);
    cr_assert_eq(npages, (1000 + per_page - 1) / per_page, "objects fill a page before the next");
    for (int i = 0; i < npages; i++)
        cr_assert(mapped((void *)pages[i]));
    for (int i = 0; i < 1000; i++)
        pr__slab_free(o[i]);
    int still = 0;
    for (int i = 0; i < npages; i++)
        still += mapped((void *)pages[i]);
    cr_assert_eq(still, 1, "every empty page but one is unmapped");
    pr__slab_destroy(&s);
    for (int i = 0; i < npages; i++)
        cr_assert_not(mapped((void *)pages[i]), "destroy unmaps the kept page");
}
#endif

/* The budget of the two structs an idle tunnel keeps (see PR_CLIENT_SIZE_MAX in client.h; the
 * build fails first, through the _Static_asserts in client.c and upstream.c). */
Test(slab, idle_tunnel_structs_stay_within_budget)
{
    cr_assert_leq(sizeof(struct pr_client), PR_CLIENT_SIZE_MAX);
    cr_assert_leq(sizeof(struct pr_upstream), PR_UPSTREAM_SIZE_MAX);
    cr_assert_leq(sizeof(struct pr_client) + sizeof(struct pr_upstream), 672);
}
