/* Test helper shared by the fuzz targets that run a fake server on their own libuv loop
 * (store_fuzz: a fake Redis; http_client_fuzz: a fake HTTP server): the loopback listener,
 * copied writes, and refusing a connection when the harness has no room for it. */
#ifndef PODROUTER_TESTS_FAKE_PEER_H
#define PODROUTER_TESTS_FAKE_PEER_H

#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void fake_write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Write a copy of p[0..n) to s (freed when written). */
static inline void fake_write(uv_stream_t *s, const void *p, size_t n)
{
    uv_write_t *w = malloc(sizeof(*w) + n);
    if (!w)
        abort();
    memcpy(w + 1, p, n);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
    if (uv_write(w, s, &b, 1, fake_write_done) != 0)
        free(w);
}

/* Accept the pending connection on l and close it (no room for it). */
static inline void fake_refuse(uv_loop_t *loop, uv_stream_t *l)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    if (!t)
        abort();
    uv_tcp_init(loop, t);
    (void)uv_accept(l, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

/* Listen on a free port of 127.0.0.1 with on_conn; the port (aborts on failure). */
static inline int fake_listen(uv_loop_t *loop, uv_tcp_t *l, uv_connection_cb on_conn)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, l);
    if (uv_tcp_bind(l, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)l, 16, on_conn) != 0)
        abort();
    int al = sizeof(a);
    uv_tcp_getsockname(l, (struct sockaddr *)&a, &al);
    return ntohs(a.sin_port);
}

#endif
