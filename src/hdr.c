/* The llhttp header collector (L0) of request and response heads alike: field slices
 * recorded as offsets into the buffer that holds the head; trailers only syntax-checked. */
#include "hdr.h"

#include <llhttp.h>

#include "podrouter/http_rewrite.h"

/* Record a (possibly split) header-name slice. Fields after the head (trailers) are not
 * recorded: they travel inside the relayed chunked body and mean nothing to the router. */
int pr__hdr_field(struct pr_hdr_tab *t, uint32_t off, size_t len)
{
    if (t->done)
        return 0;
    if (t->in_value || t->n == 0) {
        if (t->n >= PR_MAX_HEADERS)
            return -1;
        t->name_off[t->n] = off;
        t->name_len[t->n] = 0;
        t->val_off[t->n] = 0;
        t->val_len[t->n] = 0;
        t->n++;
        t->in_value = false;
    }
    t->name_len[t->n - 1] += (uint32_t)len;
    return 0;
}

/* Record a (possibly split) header-value slice. */
int pr__hdr_value(struct pr_hdr_tab *t, uint32_t off, size_t len)
{
    if (t->done || t->n == 0)
        return 0;
    if (!t->in_value) {
        t->val_off[t->n - 1] = off;
        t->in_value = true;
    }
    t->val_len[t->n - 1] += (uint32_t)len;
    return 0;
}

/* Trailer fields are relayed inside the chunked body, so they get the head's field syntax
 * check here: a trailer the pod would parse differently aborts the request. */
int pr__trailer_bytes_ok(const char *at, size_t len, bool name)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if (name ? !pr_tchar(ch) : ((ch < 0x20 && ch != '\t') || ch == 0x7f))
            return 0;
    }
    return 1;
}

int pr__hdr_on_field(struct pr_hdr_tab *t, uint32_t off, const char *at, size_t len)
{
    if (t->done)
        return pr__trailer_bytes_ok(at, len, true) ? 0 : HPE_USER;
    return pr__hdr_field(t, off, len);
}

int pr__hdr_on_value(struct pr_hdr_tab *t, uint32_t off, const char *at, size_t len)
{
    if (t->done)
        return pr__trailer_bytes_ok(at, len, false) ? 0 : HPE_USER;
    return pr__hdr_value(t, off, len);
}

void pr__hdr_export(const struct pr_hdr_tab *t, const char *base, struct pr_header *out)
{
    for (uint32_t i = 0; i < t->n; i++) {
        out[i].name = base + t->name_off[i];
        out[i].name_len = t->name_len[i];
        out[i].value = base + t->val_off[i];
        out[i].value_len = t->val_len[i];
    }
}
