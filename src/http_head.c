/* Lookups over a parsed request head (borrowed slices). */
#include "podrouter/http_head.h"

#include <string.h>
#include <strings.h>

/* First header whose name equals name case-insensitively, or NULL. */
const struct pr_header *pr_head_find(const struct pr_request_head *h, const char *name)
{
    if (h == NULL || name == NULL || h->headers == NULL)
        return NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct pr_header *hd = &h->headers[i];
        if (hd->name != NULL && hd->name_len == len && strncasecmp(hd->name, name, len) == 0)
            return hd;
    }
    return NULL;
}
