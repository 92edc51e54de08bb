/* stream.c (L0): the try-write-then-queue send helper shared by both sides. */
#ifndef PODROUTER_STREAM_H
#define PODROUTER_STREAM_H

#include <stddef.h>
#include <uv.h>

/* A pending write with its own copy of the bytes (only when the socket is full). */
struct pr_wreq {
    uv_write_t req;
    void *owner;
    size_t len;
    char data[];
};

/* 0 sent now, 1 queued (the caller pauses its source), <0 error. */
int pr__stream_send(uv_stream_t *s, void *owner, const char *data, size_t len, uv_write_cb cb);
/* Same for two pieces sent as one writev (a response head and the first body bytes). */
int pr__stream_send2(uv_stream_t *s, void *owner, const char *a, size_t alen, const char *b,
                     size_t blen, uv_write_cb cb);

#endif
