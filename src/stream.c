/* L0: the try-write-then-queue send helper of both transports: uv_try_write first, and only
 * the bytes the socket does not take are copied into a heap write request. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

int pr__stream_send2(uv_stream_t *s, void *owner, const char *a, size_t alen, const char *b,
                     size_t blen, uv_write_cb cb)
{
    size_t len = alen + blen, off = 0;
    if (len == 0)
        return 0;
    if (s->write_queue_size == 0) {
        uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen),
                            uv_buf_init((char *)b, (unsigned)blen)};
        int n = uv_try_write(s, alen ? bufs : bufs + 1, alen && blen ? 2 : 1);
        if (n >= 0 && (size_t)n == len)
            return 0;
        if (n > 0)
            off = (size_t)n;
        else if (n != UV_EAGAIN)
            return n;
    }
    /* The socket is full: keep a copy of the rest until it drains. */
    struct pr_wreq *wr = malloc(sizeof(*wr) + (len - off));
    if (!wr)
        return UV_ENOMEM;
    wr->owner = owner;
    wr->len = len - off;
    size_t w = 0;
    if (off < alen) {
        memcpy(wr->data, a + off, alen - off);
        w = alen - off;
        if (blen)
            memcpy(wr->data + w, b, blen);
    } else {
        memcpy(wr->data, b + (off - alen), blen - (off - alen));
    }
    uv_buf_t buf = uv_buf_init(wr->data, (unsigned)wr->len);
    int rc = uv_write(&wr->req, s, &buf, 1, cb);
    if (rc) {
        free(wr);
        return rc;
    }
    return 1;
}

int pr__stream_send(uv_stream_t *s, void *owner, const char *data, size_t len, uv_write_cb cb)
{
    return pr__stream_send2(s, owner, data, len, NULL, 0, cb);
}
