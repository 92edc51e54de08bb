/* hdr.c (L0): the llhttp header collector of request and response heads. */
#ifndef PODROUTER_HDR_H
#define PODROUTER_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/common.h"
#include "podrouter/http_head.h"

/* Header slices of one message head, as offsets into the buffer that holds the head. A
 * request and its response each have their own table; trailers are never recorded. */
struct pr_hdr_tab {
    uint32_t n;
    bool in_value, done; /* done: the head is complete, later fields are trailers */
    uint32_t name_off[PR_MAX_HEADERS], name_len[PR_MAX_HEADERS];
    uint32_t val_off[PR_MAX_HEADERS], val_len[PR_MAX_HEADERS];
};

int pr__hdr_field(struct pr_hdr_tab *t, uint32_t off, size_t len);
int pr__hdr_value(struct pr_hdr_tab *t, uint32_t off, size_t len);
int pr__trailer_bytes_ok(const char *at, size_t len, bool name);
/* llhttp on_header_field / on_header_value: the slice at..at+len, found at offset off of
 * the head's buffer, is recorded until the head is complete, syntax-checked after. */
int pr__hdr_on_field(struct pr_hdr_tab *t, uint32_t off, const char *at, size_t len);
int pr__hdr_on_value(struct pr_hdr_tab *t, uint32_t off, const char *at, size_t len);
/* The recorded fields as pr_header slices of base. */
void pr__hdr_export(const struct pr_hdr_tab *t, const char *base, struct pr_header *out);

#endif
