#include "idset.h"

#include <stdlib.h>

#define IDSET_INITIAL 2u /* most rooms start with one participant; 8 cells cost 48 B more (issue 11) */

/* Copy of s with room for cap cells, or NULL when out of memory. */
static struct pr_idset *idset_resize(const struct pr_idset *s, uint32_t cap)
{
    struct pr_idset *ns = calloc(1, sizeof(*ns) + cap * sizeof(uint64_t));
    if (!ns)
        return NULL;
    ns->cap = cap;
    for (uint32_t i = 0; s && i < s->cap; i++) {
        if (!s->h[i])
            continue;
        uint32_t j = (uint32_t)s->h[i] & (cap - 1);
        while (ns->h[j])
            j = (j + 1) & (cap - 1);
        ns->h[j] = s->h[i];
        ns->n++;
    }
    return ns;
}

bool pr__idset_add(struct pr_idset **sp, uint64_t h)
{
    if (h == 0)
        h = 1;
    struct pr_idset *s = *sp;
    if (s) {
        uint32_t j = (uint32_t)h & (s->cap - 1);
        while (s->h[j]) {
            if (s->h[j] == h)
                return false;
            j = (j + 1) & (s->cap - 1);
        }
        if (s->n >= PR_IDSET_MAX)
            return false;
    }
    if (!s || (s->n + 1) * 10 > s->cap * 7) {
        struct pr_idset *ns = idset_resize(s, s ? s->cap * 2 : IDSET_INITIAL);
        if (!ns)
            return false;
        free(s);
        *sp = s = ns;
    }
    uint32_t j = (uint32_t)h & (s->cap - 1);
    while (s->h[j])
        j = (j + 1) & (s->cap - 1);
    s->h[j] = h;
    s->n++;
    return true;
}
