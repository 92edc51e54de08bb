/* libFuzzer target for the WHOLE proxy path: the real connection state machine of
 * src/client.c, exchange.c, respond.c, admin_conn.c, proxy.c, upstream.c, tunnel.c and
 * loop.c on a real libuv loop, with every socket a socketpair and no network.
 *
 *   clients  - harness end of socketpair(AF_UNIX); the router end enters through its own
 *              accept path (pr__on_connection -> uv_accept, wrapped to uv_tcp_open the fd).
 *              uv_tcp_getpeername is wrapped so client slot i is 203.0.113.(i+1)
 *              (slot 2 is an admin-listener client at 127.0.0.1).
 *   pods     - uv_tcp_connect is wrapped (-Wl,--wrap): the upstream handle gets one end of
 *              a socketpair and its connect callback is delivered from a uv_check handle in
 *              the same loop iteration (or refused, or left hanging until "time passes");
 *              the harness plays the pod on the other end.
 *   listener - loop.c is compiled into this file (static functions reachable) with bind()
 *              and uv_listen() replaced by no-ops, so worker_create() runs unchanged but
 *              nothing listens. The harness owns its process-wide state (pf_srv) and
 *              hands it to worker_create(), which sets w->srv.
 *
 * The input (proxy_fuzz) is a script: segments introduced by the byte 0xFF and an opcode
 * byte; the segment's payload runs to the next 0xFF. Bytes before the first 0xFF are sent
 * by client 0, so a raw request stream is a valid input. After every segment the loop runs
 * until quiescent (bounded). Opcodes:
 *   a b c   client 0 / 1 / admin client sends the payload
 *   A B C   same, payload = 2-byte little-endian count (max 4096) + unit, sent count times
 *   e f     client 0 / 1 shuts down its write side (EOF)
 *   k l     client 0 / 1 closes (a later send reconnects that slot)
 *   p q     newest / oldest open pod connection sends the payload
 *   P Q     same with a repeat count, as A
 *   r s     newest / oldest pod connection shuts down its write side
 *   R S     newest / oldest pod connection closes
 *           (e f k l r s R S first send their payload, then end without running the loop)
 *   K Z     client 0 / newest pod connection sends a repeated payload (as A), then closes
 *   w W     client 0 / newest pod connection stops (or resumes) reading
 *   n h     the next connect is refused / hangs (until time passes)
 *   t       time passes: the timeout queues selected by payload[0] expire (bit i: queue i
 *           of header, idle, tunnel, connect, wait, pool, send, linger; default all)
 *   d x u g registry: drain / delete / re-put / re-put with a new address the pod
 *           backend-(payload[0] & 1)
 *   z       SIGTERM drain of the worker
 * When the script has no pod-send op at all, an automatic pod answers every request
 * (200 "ok", 101 + a frame and then echo for upgrades, an Engine.IO handshake body for
 * EIO= requests without sid).
 *
 * tunnel_fuzz (-DPF_TUNNEL): client 0 upgrades and the pod answers 101 first; the script
 * (same format, no automatic pod) then drives both ends of the tunnel.
 *
 * pipeline_fuzz (-DPF_PIPELINE): the input is a raw client byte stream for client 0,
 * written in chunks whose size derives from the input, then EOF; automatic pod.
 *
 * Invariants (abort on violation), besides ASan/UBSan/LSan and libFuzzer's rss limit:
 *   - every byte stream a pod receives parses with the strict HTTP/1.1 request parser
 *     below (independent of llhttp): request line with HTTP/1.1, token names, no obs-fold,
 *     no CR/LF/NUL/CTL in values, exactly one Host, never both Content-Length and
 *     Transfer-Encoding, Transfer-Encoding exactly "chunked", one plain-digit
 *     Content-Length, strict chunk syntax and trailers; after an upgrade request the rest
 *     is tunnel bytes;
 *   - the requests a pod connection received never outnumber the request heads the router
 *     started on it (pr__proxy_upstream_ready is wrapped to count them): no smuggling;
 *   - the k-th request on a pod connection carries, as the last X-Forwarded-For entry, the
 *     address of the client whose exchange the router started k-th on it, and its target,
 *     header values and body bytes (tunnel bytes too) occur in that client's sent bytes:
 *     nothing from one client reaches a pod inside another client's request.
 * PF_STRICT=0 in the environment disables these protocol invariants (memory bugs only).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* loop.c, with its listening sockets neutralised. */
static int pf_bind(int fd, const struct sockaddr *a, socklen_t l)
{
    (void)fd;
    (void)a;
    (void)l;
    return 0;
}
static int pf_listen(uv_stream_t *s, int backlog, uv_connection_cb cb)
{
    (void)s;
    (void)backlog;
    (void)cb;
    return 0;
}
#define bind pf_bind
#define uv_listen pf_listen
#include "../../src/loop.c"
#undef bind
#undef uv_listen

#include "podrouter/log.h"
#include "podrouter/ratelimit.h"
#include "podrouter/scaling.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The harness's process-wide state, handed to loop.c's worker_create (w->srv). */
static struct pr_server pf_srv;

#define NSLOTS 3 /* client 0, client 1, admin client */
#define MAX_CONNS 64
#define MAX_EXCH 8192
#define STREAM_CAP (4u << 20)
#define PUMP_ROUNDS 4000

static void violation(const char *what, const char *detail, size_t dlen)
{
    fprintf(stderr, "\n*** proxy_fuzz invariant violated: %s\n", what);
    if (detail) {
        fprintf(stderr, "*** context (%zu bytes): ", dlen);
        for (size_t i = 0; i < dlen && i < 400; i++) {
            unsigned char ch = (unsigned char)detail[i];
            if (ch >= 0x20 && ch < 0x7f)
                fputc(ch, stderr);
            else
                fprintf(stderr, "\\x%02x", ch);
        }
        fputc('\n', stderr);
    }
    abort();
}

/* ---- growable byte buffers ---- */

struct bytes {
    char *p;
    size_t len, cap;
};

static void b_add(struct bytes *b, const void *d, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->len + n)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np)
            abort();
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void b_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- harness state (one run per input) ---- */

struct outq { /* bytes the harness still has to write to one of its fds */
    struct bytes b;
    size_t off;
};

struct cli {
    int fd;             /* harness end, -1 when none */
    uv_tcp_t *handle;   /* router end (inside its struct pr_client) */
    struct outq out;
    bool wr_shut, peer_eof, paused;
    uint64_t received;
};

struct podconn {
    int fd;
    uv_tcp_t *handle; /* router end (inside its struct pr_upstream) */
    int pod;
    bool closed, wr_shut, peer_eof, broken, tunnel, auto_echo, paused;
    struct outq out;
    struct bytes sent; /* everything the harness wrote as this pod */
    struct bytes in;  /* everything received */
    size_t parsed;    /* offset of the next request in in */
    size_t tunnel_off;
    int tunnel_slot;
    uint32_t nreq;    /* complete requests received */
    uint32_t nexch;   /* request heads the router started on it */
    int8_t owner[MAX_EXCH];
};

struct pending_connect {
    uv_connect_t *req;
    uv_tcp_t *handle;
    uv_connect_cb cb;
    int status; /* 0 ok, <0 refused; 1 hanging */
    uv_close_cb close_cb; /* the handle was closed: ECANCELED goes out just before this */
    bool closed;
};

static struct {
    struct pr_worker *w;
    struct pr_registry *reg;
    uv_check_t check;
    bool check_on;
    struct cli cl[NSLOTS];
    struct bytes sent[NSLOTS]; /* every byte each slot sent, all its connections */
    size_t cursor[NSLOTS];
    struct podconn *pc[MAX_CONNS];
    int npc;
    struct pending_connect pend[MAX_CONNS];
    int npend;
    int next_accept_fd;
    int accept_slot;
    int next_connect_mode; /* 0 normal, -1 refuse, 1 hang */
    bool auto_pod;
    bool strict;
    uint32_t gen_bump[2];
    bool debug; /* PF_DEBUG=1: trace the script on stderr */
    /* tunnel_fuzz: both directions of the first tunnel are compared byte for byte */
    bool tun_on, c0_first;
    struct podconn *tun_pc;
    size_t tun_c_base, tun_p_base, lim_c2p, lim_p2c;
    struct bytes c0_recv;
} H;

static struct pr_config base_cfg;
static const uint8_t zero_secret[32];

/* ---- wrapped libuv entry points ---- */

int __real_uv_tcp_getpeername(const uv_tcp_t *handle, struct sockaddr *name, int *namelen);
int __wrap_uv_accept(uv_stream_t *server, uv_stream_t *client);
int __wrap_uv_tcp_connect(uv_connect_t *req, uv_tcp_t *handle, const struct sockaddr *addr,
                          uv_connect_cb cb);
int __wrap_uv_tcp_getpeername(const uv_tcp_t *handle, struct sockaddr *name, int *namelen);
void __real_pr__proxy_upstream_ready(struct pr_client *c, struct pr_upstream *u);
void __wrap_pr__proxy_upstream_ready(struct pr_client *c, struct pr_upstream *u);
void __real_uv_close(uv_handle_t *handle, uv_close_cb close_cb);
void __wrap_uv_close(uv_handle_t *handle, uv_close_cb close_cb);

int __wrap_uv_accept(uv_stream_t *server, uv_stream_t *client)
{
    (void)server;
    if (H.next_accept_fd < 0)
        return UV_EAGAIN;
    int fd = H.next_accept_fd;
    H.next_accept_fd = -1;
    int rc = uv_tcp_open((uv_tcp_t *)client, fd);
    if (rc)
        close(fd);
    else
        H.cl[H.accept_slot].handle = (uv_tcp_t *)client;
    return rc;
}

static int slot_of_handle(const uv_tcp_t *h)
{
    for (int i = 0; i < NSLOTS; i++)
        if (H.cl[i].handle == h)
            return i;
    return -1;
}

int __wrap_uv_tcp_getpeername(const uv_tcp_t *handle, struct sockaddr *name, int *namelen)
{
    int s = slot_of_handle(handle);
    if (s < 0)
        return __real_uv_tcp_getpeername(handle, name, namelen);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)(40000 + s));
    sin.sin_addr.s_addr = s == 2 ? htonl(0x7f000001) : htonl(0xcb007101u + (uint32_t)s);
    if (*namelen < (int)sizeof(sin))
        return UV_EINVAL;
    memcpy(name, &sin, sizeof(sin));
    *namelen = sizeof(sin);
    return 0;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int __wrap_uv_tcp_connect(uv_connect_t *req, uv_tcp_t *handle, const struct sockaddr *addr,
                          uv_connect_cb cb)
{
    if (H.npc >= MAX_CONNS || H.npend >= MAX_CONNS)
        return UV_EMFILE;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return UV_EMFILE;
    int rc = uv_tcp_open(handle, sv[0]);
    if (rc) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    set_nonblock(sv[1]);
    struct podconn *pc = calloc(1, sizeof(*pc));
    if (!pc)
        abort();
    pc->fd = sv[1];
    pc->handle = handle;
    pc->tunnel_slot = -1;
    pc->pod = 0;
    if (addr->sa_family == AF_INET) {
        uint32_t ip = ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr);
        pc->pod = (int)(ip & 1u) ^ 1; /* 10.0.x.1 -> backend-0, 10.0.x.2 -> backend-1 */
    }
    H.pc[H.npc++] = pc;
    int mode = H.next_connect_mode;
    H.next_connect_mode = 0;
    H.pend[H.npend++] = (struct pending_connect){
        req, handle, cb, mode < 0 ? UV_ECONNREFUSED : mode > 0 ? 1 : 0, NULL, false};
    req->handle = (uv_stream_t *)handle;
    req->cb = cb;
    if (H.debug)
        fprintf(stderr, "pf: connect %p started (%s)\n", (void *)handle,
                mode < 0 ? "refused" : mode > 0 ? "hanging" : "ok");
    return 0;
}

static struct podconn *conn_of_handle(const uv_tcp_t *h)
{
    for (int i = H.npc - 1; i >= 0; i--)
        if (H.pc[i]->handle == h)
            return H.pc[i];
    return NULL;
}

void __wrap_pr__proxy_upstream_ready(struct pr_client *c, struct pr_upstream *u)
{
    struct podconn *pc = conn_of_handle(&u->tcp);
    if (pc) {
        if (pc->nexch < MAX_EXCH)
            pc->owner[pc->nexch] = (int8_t)slot_of_handle(&c->tcp);
        pc->nexch++;
    }
    __real_pr__proxy_upstream_ready(c, u);
}

/* Deliver connect callbacks (libuv would call them from the poll phase of a later
 * iteration). all: also the hanging ones, with status. Connects whose handle was closed are
 * left to close_trampoline (libuv calls the connect callback with UV_ECANCELED while it
 * finishes the close, just before the close callback). */
static void deliver_connects(bool all, int status)
{
    for (int i = 0; i < H.npend;) {
        struct pending_connect p = H.pend[i];
        if (p.closed || (p.status == 1 && !all)) {
            i++;
            continue;
        }
        memmove(&H.pend[i], &H.pend[i + 1], sizeof(H.pend[0]) * (size_t)(H.npend - i - 1));
        H.npend--;
        int st = p.status == 1 ? status : p.status;
        if (H.debug)
            fprintf(stderr, "pf: connect %p delivered: %s\n", (void *)p.handle, uv_err_name(st));
        p.cb(p.req, st);
        i = 0; /* the callback may have changed the list */
    }
}

static void close_trampoline(uv_handle_t *h)
{
    for (int i = 0; i < H.npend; i++) {
        if (H.pend[i].closed && (uv_handle_t *)H.pend[i].handle == h) {
            struct pending_connect p = H.pend[i];
            memmove(&H.pend[i], &H.pend[i + 1], sizeof(H.pend[0]) * (size_t)(H.npend - i - 1));
            H.npend--;
            if (H.debug)
                fprintf(stderr, "pf: connect %p delivered: ECANCELED (closed)\n", (void *)h);
            p.cb(p.req, UV_ECANCELED);
            if (p.close_cb)
                p.close_cb(h);
            return;
        }
    }
    abort(); /* a trampoline without its entry */
}

void __wrap_uv_close(uv_handle_t *handle, uv_close_cb close_cb)
{
    for (int i = 0; i < H.npend; i++) {
        if ((uv_handle_t *)H.pend[i].handle == handle && !H.pend[i].closed) {
            H.pend[i].closed = true;
            H.pend[i].close_cb = close_cb;
            if (H.debug)
                fprintf(stderr, "pf: connecting %p closed (close callback %s)\n", (void *)handle,
                        close_cb ? "set" : "NULL");
            __real_uv_close(handle, close_trampoline);
            return;
        }
    }
    __real_uv_close(handle, close_cb);
}

static void check_cb(uv_check_t *c)
{
    (void)c;
    deliver_connects(false, 0);
}

/* ---- the strict HTTP/1.1 request parser (independent of llhttp) ---- */

static bool tchar(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return true;
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool vchar_or_ws(unsigned char ch)
{
    return (ch >= 0x21 && ch != 0x7f) || ch == ' ' || ch == '\t';
}

struct sfield {
    size_t n, nl, v, vl; /* offsets/lengths in the buffer */
};

#define SMAX_FIELDS 512
#define SMAX_PIECES 256

struct sreq {
    size_t target, target_len;
    struct sfield f[SMAX_FIELDS];
    size_t nf;
    size_t piece[SMAX_PIECES], piece_len[SMAX_PIECES];
    size_t npieces;
    bool upgrade;
    size_t head_end;
};

enum { S_MORE = 0, S_BAD = -1 };

static bool name_eq(const char *b, const struct sfield *f, const char *lit)
{
    return strlen(lit) == f->nl && strncasecmp(b + f->n, lit, f->nl) == 0;
}

/* Field lines up to and including the blank line, from *i. 1 done, S_MORE, S_BAD. */
static int s_fields(const char *b, size_t n, size_t *i, struct sreq *r, bool record,
                    const char **why)
{
    size_t k = *i;
    for (;;) {
        if (k >= n)
            return S_MORE;
        if (b[k] == '\r') {
            if (k + 1 >= n)
                return S_MORE;
            if (b[k + 1] != '\n') {
                *why = "bare CR";
                return S_BAD;
            }
            *i = k + 2;
            return 1;
        }
        if (b[k] == ' ' || b[k] == '\t') {
            *why = "obs-fold or whitespace before a field name";
            return S_BAD;
        }
        size_t ns = k;
        while (k < n && tchar((unsigned char)b[k]))
            k++;
        if (k >= n)
            return S_MORE;
        if (k == ns || b[k] != ':') {
            *why = "bad field name";
            return S_BAD;
        }
        size_t nl = k - ns;
        k++;
        while (k < n && (b[k] == ' ' || b[k] == '\t'))
            k++;
        size_t vs = k;
        while (k < n && b[k] != '\r') {
            if (!vchar_or_ws((unsigned char)b[k])) {
                *why = "CTL, LF or NUL in a field value";
                return S_BAD;
            }
            k++;
        }
        if (k + 1 >= n)
            return S_MORE;
        if (b[k + 1] != '\n') {
            *why = "bare CR in a field value";
            return S_BAD;
        }
        size_t ve = k;
        while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t'))
            ve--;
        if (record) {
            if (r->nf >= SMAX_FIELDS) {
                *why = "too many fields";
                return S_BAD;
            }
            r->f[r->nf++] = (struct sfield){ns, nl, vs, ve - vs};
        }
        k += 2;
    }
}

static bool token_listed(const char *v, size_t len, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return true;
    }
    return false;
}

/* One request from b[0..n): its length, S_MORE or S_BAD (*why says what). */
static long strict_request(const char *b, size_t n, struct sreq *r, const char **why)
{
    r->target = r->target_len = r->nf = r->npieces = r->head_end = 0;
    r->upgrade = false;
    size_t i = 0;
    while (i < n && tchar((unsigned char)b[i]))
        i++;
    if (i >= n)
        return S_MORE;
    if (i == 0 || b[i] != ' ') {
        *why = "bad method";
        return S_BAD;
    }
    bool is_connect = i == 7 && memcmp(b, "CONNECT", 7) == 0;
    i++;
    r->target = i;
    /* Visible ASCII, and obs-text as llhttp and Node accept it (no framing risk). */
    while (i < n && (unsigned char)b[i] > 0x20 && (unsigned char)b[i] != 0x7f)
        i++;
    if (i >= n)
        return S_MORE;
    if (i == r->target || b[i] != ' ') {
        *why = "bad request target";
        return S_BAD;
    }
    r->target_len = i - r->target;
    i++;
    static const char ver[] = "HTTP/1.1\r\n";
    for (size_t k = 0; k < sizeof(ver) - 1; k++, i++) {
        if (i >= n)
            return S_MORE;
        if (b[i] != ver[k]) {
            *why = "not HTTP/1.1";
            return S_BAD;
        }
    }
    int rc = s_fields(b, n, &i, r, true, why);
    if (rc <= 0)
        return rc;
    r->head_end = i;
    size_t hosts = 0, cls = 0, tes = 0;
    const struct sfield *cl = NULL, *te = NULL;
    for (size_t k = 0; k < r->nf; k++) {
        const struct sfield *f = &r->f[k];
        if (name_eq(b, f, "host"))
            hosts++;
        else if (name_eq(b, f, "content-length")) {
            cls++;
            cl = f;
        } else if (name_eq(b, f, "transfer-encoding")) {
            tes++;
            te = f;
        } else if (name_eq(b, f, "connection") && token_listed(b + f->v, f->vl, "upgrade"))
            r->upgrade = true;
    }
    if (is_connect)
        r->upgrade = true;
    if (hosts != 1) {
        *why = "not exactly one Host";
        return S_BAD;
    }
    if (cls && tes) {
        *why = "both Content-Length and Transfer-Encoding";
        return S_BAD;
    }
    if (tes) {
        if (tes != 1 || te->vl != 7 || strncasecmp(b + te->v, "chunked", 7) != 0) {
            *why = "Transfer-Encoding other than one \"chunked\"";
            return S_BAD;
        }
        for (;;) {
            size_t s = i;
            uint64_t size = 0;
            while (i < n && b[i] == '0') /* leading zeros: any number (RFC 9112 7.1) */
                i++;
            size_t d = i;
            while (i < n && isxdigit((unsigned char)b[i])) {
                if (i - d >= 16) {
                    *why = "chunk size too long";
                    return S_BAD;
                }
                unsigned char ch = (unsigned char)b[i];
                size = size * 16 + (uint64_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
                i++;
            }
            if (i >= n)
                return S_MORE;
            if (i == s) {
                *why = "bad chunk size";
                return S_BAD;
            }
            while (i < n && (b[i] == ' ' || b[i] == '\t'))
                i++;
            if (i < n && b[i] == ';') {
                while (i < n && b[i] != '\r') {
                    if (!vchar_or_ws((unsigned char)b[i])) {
                        *why = "bad chunk extension";
                        return S_BAD;
                    }
                    i++;
                }
            }
            if (i + 1 >= n)
                return S_MORE;
            if (b[i] != '\r' || b[i + 1] != '\n') {
                *why = "bad chunk line";
                return S_BAD;
            }
            i += 2;
            if (size == 0) {
                rc = s_fields(b, n, &i, r, false, why);
                if (rc <= 0)
                    return rc;
                break;
            }
            if (n - i < size + 2)
                return S_MORE;
            if (r->npieces < SMAX_PIECES) {
                r->piece[r->npieces] = i;
                r->piece_len[r->npieces++] = (size_t)size;
            }
            i += (size_t)size;
            if (b[i] != '\r' || b[i + 1] != '\n') {
                *why = "chunk data not followed by CRLF";
                return S_BAD;
            }
            i += 2;
        }
    } else if (cls) {
        if (cls != 1 || cl->vl == 0 || cl->vl > 15) {
            *why = "bad Content-Length";
            return S_BAD;
        }
        uint64_t len = 0;
        for (size_t k = 0; k < cl->vl; k++) {
            unsigned char ch = (unsigned char)b[cl->v + k];
            if (ch < '0' || ch > '9') {
                *why = "bad Content-Length";
                return S_BAD;
            }
            len = len * 10 + (ch - '0');
        }
        if (n - i < len)
            return S_MORE;
        if (len) {
            r->piece[0] = i;
            r->piece_len[0] = (size_t)len;
            r->npieces = 1;
        }
        i += (size_t)len;
    }
    return (long)i;
}

/* ---- invariants on what pods receive ---- */

static bool in_sent(int slot, const char *p, size_t len)
{
    if (len == 0)
        return true;
    struct bytes *s = &H.sent[slot];
    if (H.cursor[slot] < s->len) {
        const char *f = memmem(s->p + H.cursor[slot], s->len - H.cursor[slot], p, len);
        if (f) {
            H.cursor[slot] = (size_t)(f - s->p);
            return true;
        }
    }
    return s->len && memmem(s->p, s->len, p, len) != NULL;
}

static bool router_header(const char *b, const struct sfield *f)
{
    return name_eq(b, f, "x-forwarded-for") || name_eq(b, f, "x-forwarded-proto") ||
           name_eq(b, f, "x-forwarded-host") || name_eq(b, f, "x-request-id") ||
           name_eq(b, f, "connection") || name_eq(b, f, "upgrade") ||
           name_eq(b, f, "content-length") || name_eq(b, f, "transfer-encoding") ||
           name_eq(b, f, "via") || name_eq(b, f, "forwarded");
}

/* The Host the router writes for a request without one (HTTP/1.0): the pod's address. */
static bool pod_host(const char *b, const struct sfield *f)
{
    return name_eq(b, f, "host") && f->vl > 5 && memcmp(b + f->v, "10.0.", 5) == 0;
}

/* Slot named by the last entry of the last X-Forwarded-For, or -1. */
static int xff_slot(const char *b, const struct sreq *r)
{
    const struct sfield *x = NULL;
    for (size_t k = 0; k < r->nf; k++)
        if (name_eq(b, &r->f[k], "x-forwarded-for"))
            x = &r->f[k];
    if (!x)
        return -1;
    const char *v = b + x->v;
    size_t e = x->vl, s = e;
    while (s > 0 && v[s - 1] != ',')
        s--;
    while (s < e && (v[s] == ' ' || v[s] == '\t'))
        s++;
    static const char *const ips[NSLOTS] = {"203.0.113.1", "203.0.113.2", "127.0.0.1"};
    for (int i = 0; i < NSLOTS; i++)
        if (e - s == strlen(ips[i]) && memcmp(v + s, ips[i], e - s) == 0)
            return i;
    return -1;
}

static void pod_write(struct podconn *pc, const void *d, size_t n);

static void auto_answer(struct podconn *pc, const char *b, const struct sreq *r)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    static const char ok_head[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    static const char up[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n\x81\x02hi";
    static const char hs[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 98\r\n\r\n"
                             "0{\"sid\":\"fuzzsid0123456789AB\",\"upgrades\":[\"websocket\"],"
                             "\"pingInterval\":25000,\"pingTimeout\":20000}";
    const char *t = b + r->target;
    if (r->upgrade) {
        pod_write(pc, up, sizeof(up) - 1);
        pc->auto_echo = true;
    } else if (r->target - 1 == 4 && memcmp(b, "HEAD", 4) == 0) {
        pod_write(pc, ok_head, sizeof(ok_head) - 1);
    } else if (memmem(t, r->target_len, "EIO=", 4) && !memmem(t, r->target_len, "sid=", 4)) {
        pod_write(pc, hs, sizeof(hs) - 1);
    } else {
        pod_write(pc, ok, sizeof(ok) - 1);
    }
}

static struct sreq sr; /* large: static */

/* Parse what pc received since last time; check and (auto pod) answer each request. */
static void pod_check(struct podconn *pc)
{
    while (!pc->broken && !pc->tunnel && pc->parsed < pc->in.len) {
        const char *b = pc->in.p + pc->parsed;
        size_t n = pc->in.len - pc->parsed;
        const char *why = "";
        long rc = strict_request(b, n, &sr, &why);
        if (rc == S_MORE)
            return;
        if (rc == S_BAD) {
            if (H.strict)
                violation(why, b, n);
            pc->broken = true;
            return;
        }
        uint32_t k = pc->nreq++;
        if (H.strict) {
            if (pc->nreq > pc->nexch)
                violation("a pod connection received more requests than the router started "
                          "(smuggled request)",
                          b, (size_t)rc);
            int slot = xff_slot(b, &sr);
            if (slot < 0)
                violation("request without the router's X-Forwarded-For client entry", b,
                          (size_t)rc);
            if (k < MAX_EXCH && pc->owner[k] >= 0 && pc->owner[k] != slot)
                violation("request attributed to another client than its exchange", b,
                          (size_t)rc);
            if (!in_sent(slot, b + sr.target, sr.target_len))
                violation("request target not sent by that client", b, (size_t)rc);
            for (size_t f = 0; f < sr.nf; f++)
                if (!router_header(b, &sr.f[f]) && !pod_host(b, &sr.f[f]) &&
                    !in_sent(slot, b + sr.f[f].v, sr.f[f].vl))
                    violation("header value not sent by that client", b + sr.f[f].n,
                              sr.f[f].vl + sr.f[f].v - sr.f[f].n);
            for (size_t p = 0; p < sr.npieces; p++)
                if (!in_sent(slot, b + sr.piece[p], sr.piece_len[p]))
                    violation("body bytes not sent by that client", b + sr.piece[p],
                              sr.piece_len[p]);
            if (sr.upgrade)
                pc->tunnel_slot = slot;
        }
        pc->parsed += (size_t)rc;
        if (sr.upgrade) {
            pc->tunnel = true;
            pc->tunnel_off = pc->parsed;
        }
        if (H.auto_pod)
            auto_answer(pc, b, &sr);
    }
    if (pc->tunnel && pc->parsed < pc->in.len) {
        const char *b = pc->in.p + pc->parsed;
        size_t n = pc->in.len - pc->parsed;
        if (H.auto_pod && pc->auto_echo)
            pod_write(pc, b, n);
        pc->parsed = pc->in.len;
        /* Tunnel bytes are the owner's bytes, contiguous. */
        if (H.strict && pc->tunnel_slot >= 0 &&
            !in_sent(pc->tunnel_slot, pc->in.p + pc->tunnel_off, pc->in.len - pc->tunnel_off))
            violation("tunnel bytes not a contiguous piece of the owner's stream", b, n);
    }
}

/* ---- harness I/O ---- */

static bool flush_out(int fd, struct outq *q)
{
    bool progress = false;
    while (fd >= 0 && q->off < q->b.len) {
        ssize_t w = send(fd, q->b.p + q->off, q->b.len - q->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) {
            if (w < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            q->off = q->b.len; /* peer gone: drop */
            break;
        }
        q->off += (size_t)w;
        progress = true;
    }
    if (q->off == q->b.len) {
        q->off = 0;
        q->b.len = 0;
    }
    return progress;
}

static void pod_write(struct podconn *pc, const void *d, size_t n)
{
    if (pc->closed || pc->wr_shut || pc->sent.len + n > STREAM_CAP)
        return; /* a pod sends at most 4 MiB per input (so a socket never gets more) */
    b_add(&pc->out.b, d, n);
    b_add(&pc->sent, d, n);
    flush_out(pc->fd, &pc->out);
}

/* Tunnel bytes each side has received so far (client: after the 101 head). */
static size_t tun_recv_client(void)
{
    const struct bytes *r = &H.c0_recv;
    const char *he = r->len ? memmem(r->p, r->len, "\r\n\r\n", 4) : NULL;
    return he ? r->len - (size_t)(he + 4 - r->p) : 0;
}

static size_t tun_recv_pod(void)
{
    const struct podconn *pc = H.tun_pc;
    return pc->tunnel ? pc->in.len - pc->tunnel_off : 0;
}

/* A side of the tunnel ends (or may have): from here on, what must still arrive is fixed.
 * who 1: the client ends (what it sent must reach the pod; it need not read the rest);
 * who 2: the pod ends (likewise the other way); who 0: anything else (time passes, drain,
 * registry change, the router closed a side): only what arrived so far counts. */
enum { TUN_OTHER = 0, TUN_CLIENT_ENDS, TUN_POD_ENDS };
static void tun_freeze(int who)
{
    if (!H.tun_on || H.lim_c2p != SIZE_MAX)
        return;
    /* Only what actually went into the sockets (not what the harness still holds). */
    const struct outq *cq = &H.cl[0].out, *pq = &H.tun_pc->out;
    size_t flushed_c = H.sent[0].len - (H.cl[0].fd >= 0 ? cq->b.len - cq->off : 0);
    size_t flushed_p = H.tun_pc->sent.len - (H.tun_pc->closed ? 0 : pq->b.len - pq->off);
    H.lim_c2p = who == TUN_CLIENT_ENDS ? flushed_c : H.tun_c_base + tun_recv_pod();
    H.lim_p2c = who == TUN_POD_ENDS ? flushed_p : H.tun_p_base + tun_recv_client();
    if (H.debug)
        fprintf(stderr, "pf: tunnel frozen (%d): client->pod %zu bytes, pod->client %zu bytes\n",
                who, H.lim_c2p - H.tun_c_base, H.lim_p2c - H.tun_p_base);
}

/* Nothing more can be required than what arrived so far: the receiving side closed
 * without reading (dir 1: pod->client, 2: client->pod, 3: both, e.g. time passed and
 * the send timeout may drop what a reader left unread). */
static void tun_cap(int dir)
{
    if (!H.tun_on)
        return;
    tun_freeze(TUN_OTHER);
    if ((dir & 1) && H.lim_p2c > H.tun_p_base + tun_recv_client())
        H.lim_p2c = H.tun_p_base + tun_recv_client();
    if ((dir & 2) && H.lim_c2p > H.tun_c_base + tun_recv_pod())
        H.lim_c2p = H.tun_c_base + tun_recv_pod();
}

/* Tunnel bytes arrive intact, in order, and nothing queued before a close is lost. */
static void tun_check(void)
{
    if (!H.tun_on || !H.strict)
        return;
    tun_freeze(TUN_OTHER);
    const struct bytes *r = &H.c0_recv;
    const char *he = r->len ? memmem(r->p, r->len, "\r\n\r\n", 4) : NULL;
    if (!he)
        violation("tunnel_fuzz: the client never got the 101 head", r->p, r->len);
    if (r->len < 12 || memcmp(r->p, "HTTP/1.1 101", 12) != 0)
        violation("tunnel_fuzz: the client's first response is not the 101", r->p, r->len);
    size_t hl = (size_t)(he + 4 - r->p);
    const char *got = r->p + hl, *want = H.tun_pc->sent.p + H.tun_p_base;
    size_t gl = r->len - hl, wl = H.tun_pc->sent.len - H.tun_p_base;
    if (gl > wl || memcmp(got, want, gl) != 0)
        violation("tunnel bytes the client received differ from what the pod sent", got, gl);
    if (gl < H.lim_p2c - H.tun_p_base)
        violation("pod bytes sent before a close never reached the client", want + gl,
                  H.lim_p2c - H.tun_p_base - gl);
    const struct podconn *pc = H.tun_pc;
    got = pc->in.p + pc->tunnel_off;
    gl = pc->in.len - pc->tunnel_off;
    want = H.sent[0].p + H.tun_c_base;
    wl = H.sent[0].len - H.tun_c_base;
    if (!pc->tunnel || gl > wl || memcmp(got, want, gl) != 0)
        violation("tunnel bytes the pod received differ from what the client sent", got, gl);
    if (gl < H.lim_c2p - H.tun_c_base)
        violation("client bytes sent before a close never reached the pod", want + gl,
                  H.lim_c2p - H.tun_c_base - gl);
}

static char rbuf[65536];

static bool read_fd(int fd, bool *eof, struct bytes *keep, uint64_t *count)
{
    bool progress = false;
    for (;;) {
        ssize_t r = recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
        if (r > 0) {
            progress = true;
            if (count)
                *count += (uint64_t)r;
            if (keep) {
                if (keep->len + (size_t)r > STREAM_CAP)
                    violation("more than 4 MiB received on one socket in one input", NULL, 0);
                b_add(keep, rbuf, (size_t)r);
            }
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            if (!*eof)
                progress = true;
            *eof = true;
        }
        return progress;
    }
}

static bool io_round(void)
{
    bool progress = false;
    for (int i = 0; i < NSLOTS; i++) {
        struct cli *c = &H.cl[i];
        if (c->fd < 0)
            continue;
        progress |= flush_out(c->fd, &c->out);
        if (!c->peer_eof && !c->paused) {
            bool keep = i == 0 && H.tun_on && H.c0_first;
            progress |= read_fd(c->fd, &c->peer_eof, keep ? &H.c0_recv : NULL, &c->received);
            if (c->peer_eof && i == 0)
                tun_freeze(TUN_OTHER);
        }
    }
    for (int i = 0; i < H.npc; i++) {
        struct podconn *pc = H.pc[i];
        if (pc->closed)
            continue;
        progress |= flush_out(pc->fd, &pc->out);
        if (!pc->peer_eof && !pc->paused) {
            size_t before = pc->in.len;
            progress |= read_fd(pc->fd, &pc->peer_eof, &pc->in, NULL);
            if (pc->in.len != before)
                pod_check(pc);
            if (pc->peer_eof && pc == H.tun_pc)
                tun_freeze(TUN_OTHER);
        }
    }
    return progress;
}

/* Run the loop and the harness I/O until nothing moves (bounded). */
static void pump(void)
{
    int idle = 0;
    for (int r = 0; r < PUMP_ROUNDS && idle < 3; r++) {
        uv_run(&H.w->loop, UV_RUN_NOWAIT);
        bool p = io_round();
        idle = p ? 0 : idle + 1;
    }
}

/* ---- script operations ---- */

static void client_open(int slot)
{
    struct cli *c = &H.cl[slot];
    if (c->fd >= 0)
        return;
    if (H.w->stopping || (slot < 2 && !H.w->has_listener))
        return;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    set_nonblock(sv[1]);
    c->fd = sv[1];
    c->peer_eof = c->wr_shut = false;
    c->handle = NULL;
    H.next_accept_fd = sv[0];
    H.accept_slot = slot;
    if (slot == 2)
        pr__on_admin_connection((uv_stream_t *)&H.w->admin_listener, 0);
    else
        pr__on_connection((uv_stream_t *)&H.w->listener, 0);
    if (H.next_accept_fd >= 0) { /* not accepted */
        close(H.next_accept_fd);
        H.next_accept_fd = -1;
    }
}

static void client_send(int slot, const char *d, size_t n)
{
    client_open(slot);
    struct cli *c = &H.cl[slot];
    if (c->fd < 0 || c->wr_shut)
        return;
    if (H.sent[slot].len + n > STREAM_CAP)
        return;
    b_add(&H.sent[slot], d, n);
    b_add(&c->out.b, d, n);
    flush_out(c->fd, &c->out);
}

static void client_shut(int slot)
{
    struct cli *c = &H.cl[slot];
    if (c->fd < 0 || c->wr_shut)
        return;
    flush_out(c->fd, &c->out);
    shutdown(c->fd, SHUT_WR);
    c->wr_shut = true;
}

static void client_kill(int slot)
{
    struct cli *c = &H.cl[slot];
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    c->handle = NULL;
    if (slot == 0)
        H.c0_first = false;
    b_free(&c->out.b);
    c->out.off = 0;
}

static struct podconn *pick_conn(bool newest)
{
    if (newest) {
        for (int i = H.npc - 1; i >= 0; i--)
            if (!H.pc[i]->closed && !H.pc[i]->peer_eof)
                return H.pc[i];
    } else {
        for (int i = 0; i < H.npc; i++)
            if (!H.pc[i]->closed && !H.pc[i]->peer_eof)
                return H.pc[i];
    }
    return NULL;
}

static void conn_shut(struct podconn *pc)
{
    if (!pc || pc->wr_shut)
        return;
    flush_out(pc->fd, &pc->out);
    shutdown(pc->fd, SHUT_WR);
    pc->wr_shut = true;
}

static void conn_kill(struct podconn *pc)
{
    if (!pc || pc->closed)
        return;
    close(pc->fd);
    pc->closed = true;
}

static void time_passes(uint8_t mask)
{
    struct pr_worker *w = H.w;
    uint64_t far = pr__now(w) + 365ull * 24 * 3600 * 1000;
    struct pr_tq *qs[8] = {&w->q_header,  &w->q_idle, &w->q_tunnel, &w->q_connect,
                           &w->q_wait,    &w->q_pool, &w->q_send,   &w->q_linger};
    for (int i = 0; i < 8; i++)
        if (mask & (1u << i))
            pr__tq_sweep(qs[i], far);
    if (w->draining && !w->stopping && !pr__client_any_public(w)) {
        worker_stop(w);
    }
}

static void pod_reg(char op, int pod)
{
    char name[16], addr[32];
    snprintf(name, sizeof(name), "backend-%d", pod);
    switch (op) {
    case 'd':
        pr_registry_drain(H.reg, name);
        break;
    case 'x':
        pr_registry_delete(H.reg, name);
        break;
    case 'g':
        H.gen_bump[pod]++;
        /* fall through */
    case 'u':
        snprintf(addr, sizeof(addr), "10.0.%u.%d:3000", H.gen_bump[pod] & 0xff, pod + 1);
        pr_registry_put(H.reg, name, addr, 20, 80, NULL, NULL);
        break;
    default:
        break;
    }
}

static size_t repeat_count(const char **p, size_t *n)
{
    if (*n < 2)
        return 1;
    size_t k = (size_t)(uint8_t)(*p)[0] | (size_t)(uint8_t)(*p)[1] << 8;
    *p += 2;
    *n -= 2;
    return k > 4096 ? 4096 : k;
}

static void op_send_repeat(int slot, struct podconn *pc, const char *p, size_t n)
{
    size_t k = repeat_count(&p, &n);
    if (n == 0 || k == 0)
        return;
    if (n * k > (1u << 20))
        k = (1u << 20) / n;
    char *buf = malloc(n * k);
    if (!buf)
        return;
    for (size_t i = 0; i < k; i++)
        memcpy(buf + i * n, p, n);
    if (pc)
        pod_write(pc, buf, n * k);
    else
        client_send(slot, buf, n * k);
    free(buf);
}

static void run_op(char op, const char *p, size_t n)
{
    if (H.debug)
        fprintf(stderr, "pf: op '%c' (0x%02x) payload %zu bytes\n", op >= 0x20 && op < 0x7f ? op : '?',
                (unsigned char)op, n);
    switch (op) {
    case 'a': client_send(0, p, n); break;
    case 'b': client_send(1, p, n); break;
    case 'c': client_send(2, p, n); break;
    case 'A': op_send_repeat(0, NULL, p, n); break;
    case 'B': op_send_repeat(1, NULL, p, n); break;
    case 'C': op_send_repeat(2, NULL, p, n); break;
    case 'e':
    case 'f':
    case 'k':
    case 'l': {
        /* The payload goes out first, then the end: bytes still in flight at the close. */
        int slot = op == 'e' || op == 'k' ? 0 : 1;
        client_send(slot, p, n);
        if (slot == 0)
            tun_freeze(TUN_CLIENT_ENDS);
        /* A client that closes (or half-closes: the router may take its FIN as the end
         * of the tunnel) is owed nothing it has not read yet. */
        if (slot == 0)
            tun_cap(1);
        if (op == 'e' || op == 'f')
            client_shut(slot);
        else
            client_kill(slot);
        break;
    }
    case 'p':
    case 'q': {
        struct podconn *pc = pick_conn(op == 'p');
        if (pc)
            pod_write(pc, p, n);
        break;
    }
    case 'P':
    case 'Q': {
        struct podconn *pc = pick_conn(op == 'P');
        if (pc)
            op_send_repeat(-1, pc, p, n);
        break;
    }
    case 'r':
    case 's':
    case 'R':
    case 'S': {
        struct podconn *pc = pick_conn(op == 'r' || op == 'R');
        if (pc)
            pod_write(pc, p, n);
        if (pc && pc == H.tun_pc)
            tun_freeze(TUN_POD_ENDS);
        if (pc && pc == H.tun_pc)
            tun_cap(2);
        if (op == 'r' || op == 's')
            conn_shut(pc);
        else
            conn_kill(pc);
        break;
    }
    case 'K': /* client 0 sends a repeated payload and closes at once */
        op_send_repeat(0, NULL, p, n);
        tun_freeze(TUN_CLIENT_ENDS);
        tun_cap(1);
        client_kill(0);
        break;
    case 'Z': { /* the newest pod connection sends a repeated payload and closes at once */
        struct podconn *pc = pick_conn(true);
        if (pc)
            op_send_repeat(-1, pc, p, n);
        if (pc && pc == H.tun_pc) {
            tun_freeze(TUN_POD_ENDS);
            tun_cap(2);
        }
        conn_kill(pc);
        break;
    }
    case 'w': H.cl[0].paused = !H.cl[0].paused; break;
    case 'W': {
        struct podconn *pc = pick_conn(true);
        if (pc)
            pc->paused = !pc->paused;
        break;
    }
    case 'n': H.next_connect_mode = -1; break;
    case 'h': H.next_connect_mode = 1; break;
    case 't':
        tun_cap(3);
        time_passes(n ? (uint8_t)p[0] : 0xff);
        break;
    case 'd':
    case 'x':
    case 'u':
    case 'g':
        tun_cap(3);
        pod_reg(op, n ? (p[0] & 1) : 0);
        break;
    case 'z':
        tun_cap(3);
        if (!H.w->draining) {
            atomic_store(&pf_srv.draining, true);
            worker_begin_drain(H.w);
        }
        break;
    default: break;
    }
    pump();
}

/* ---- per-input set-up and tear-down ---- */

static void setup(void)
{
    memset(&H, 0, sizeof(H));
    for (int i = 0; i < NSLOTS; i++)
        H.cl[i].fd = -1;
    H.next_accept_fd = -1;
    H.c0_first = true;
    H.lim_c2p = H.lim_p2c = SIZE_MAX;
    const char *s = getenv("PF_STRICT");
    H.strict = !(s && s[0] == '0');
    s = getenv("PF_DEBUG");
    H.debug = s && s[0] == '1';

    memset(&pf_srv, 0, sizeof(pf_srv));
    pf_srv.cfg = base_cfg;
    H.reg = pr_registry_create(base_cfg.pod_ttl_ms);
    if (!H.reg)
        abort();
    pf_srv.reg = H.reg;
    memcpy(pf_srv.secret, zero_secret, 32);
    pf_srv.aff.room_param = pf_srv.cfg.room_param;
    pf_srv.aff.participant_param = pf_srv.cfg.participant_param;
    pf_srv.aff.cookie_name = pf_srv.cfg.cookie_name[0] ? pf_srv.cfg.cookie_name : NULL;
    pf_srv.aff.secret = pf_srv.secret;
    pf_srv.aff.secret_len = sizeof(pf_srv.secret);
    pf_srv.start_ms = 1;
    atomic_init(&pf_srv.draining, false);
    atomic_init(&pf_srv.nclients, 0);
    atomic_init(&pf_srv.request_seq, 0);
    atomic_init(&pf_srv.stopped_workers, 0);
    if (base_cfg.key_rate > 0) {
        pf_srv.rl = pr_ratelimit_create(base_cfg.key_rate, base_cfg.key_burst, 65536);
        if (!pf_srv.rl)
            abort();
    }
    pr_registry_put(H.reg, "backend-0", "10.0.0.1:3000", 20, 80, NULL, NULL);
    pr_registry_put(H.reg, "backend-1", "10.0.0.2:3000", 20, 80, NULL, NULL);

    char err[256];
    H.w = worker_create(&pf_srv, 0, err, sizeof(err));
    if (!H.w) {
        fprintf(stderr, "proxy_fuzz: worker_create: %s\n", err);
        abort();
    }
    pf_srv.nworkers = 1;
    pf_srv.workers = &H.w;
    pr_metrics_self = H.w->m;
    pr_metrics_global_set(H.reg, H.w->store);
    pr_scaling_configure(&base_cfg);
    uv_timer_stop(&H.w->tick); /* time only passes when the script says so */
    uv_check_init(&H.w->loop, &H.check);
    uv_check_start(&H.check, check_cb);
    uv_unref((uv_handle_t *)&H.check);
}

static void teardown(void)
{
    /* Hanging connects fail now (a pending connect at worker_stop would leak its
     * upstream: close_walk_cb closes it without a callback). */
    for (int i = 0; i < NSLOTS; i++)
        H.cl[i].paused = false;
    for (int i = 0; i < H.npc; i++)
        H.pc[i]->paused = false;
    deliver_connects(true, UV_ECONNREFUSED);
    pump();
    deliver_connects(true, UV_ECONNREFUSED);
    tun_check();
    struct pr_worker *w = H.w;
    worker_stop(w);
    deliver_connects(true, UV_ECANCELED);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Final check of what the pods got (the router may have flushed on close). */
    io_round();
    worker_destroy(w);
    for (int i = 0; i < NSLOTS; i++) {
        if (H.cl[i].fd >= 0)
            close(H.cl[i].fd);
        b_free(&H.cl[i].out.b);
        b_free(&H.sent[i]);
    }
    for (int i = 0; i < H.npc; i++) {
        if (!H.pc[i]->closed)
            close(H.pc[i]->fd);
        b_free(&H.pc[i]->out.b);
        b_free(&H.pc[i]->in);
        b_free(&H.pc[i]->sent);
        free(H.pc[i]);
    }
    b_free(&H.c0_recv);
    pr_metrics_free_all();
    pr_metrics_self = NULL;
    pr_registry_destroy(H.reg);
    pr_ratelimit_destroy(pf_srv.rl);
    memset(&pf_srv, 0, sizeof(pf_srv));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    pr_config_defaults(&base_cfg);
    snprintf(base_cfg.store, sizeof(base_cfg.store), "memory");
    snprintf(base_cfg.listen.host, sizeof(base_cfg.listen.host), "127.0.0.1");
    base_cfg.listen.port = 1;
    snprintf(base_cfg.admin_listen.host, sizeof(base_cfg.admin_listen.host), "127.0.0.1");
    base_cfg.admin_listen.port = 2;
    base_cfg.threads = 1;
    base_cfg.access_log = true;
    /* Logs go to stdout: run with -close_fd_mask=1 to keep them out of the way. */
    pr_log_init(PR_LOG_INFO, PR_LOG_JSON);
    return 0;
}

#ifdef PF_PIPELINE
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    H.auto_pod = true;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    size_t chunk = 1 + h % 4096;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        run_op('a', (const char *)data + off, n);
    }
    run_op('e', NULL, 0);
    teardown();
    return 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    const char *p = (const char *)data, *end = p + size;
#ifdef PF_TUNNEL
    /* A WebSocket tunnel is up (upgrade, 101) before the script runs; the script then
     * plays both ends of it (frames, half-closes, closes, time). */
    static const char ws[] =
        "GET /socket.io/?EIO=4&transport=websocket&roomId=room_t HTTP/1.1\r\nHost: a\r\n"
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    static const char r101[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                               "Upgrade: websocket\r\n\r\n";
    H.auto_pod = false;
    run_op('a', ws, sizeof(ws) - 1);
    if (H.npc > 0) {
        H.tun_pc = H.pc[0];
        H.tun_c_base = H.sent[0].len;
        H.tun_on = true;
    }
    run_op('p', r101, sizeof(r101) - 1);
    if (H.tun_on)
        H.tun_p_base = H.tun_pc->sent.len; /* the tunnel starts after the 101 */
    if (H.tun_on && H.lim_c2p != SIZE_MAX)
        H.tun_on = false; /* closed during the handshake: nothing to compare */
#else
    /* Automatic pod unless the script sends pod bytes itself. */
    H.auto_pod = true;
    for (const char *q = p; q + 1 < end; q++)
        if ((uint8_t)q[0] == 0xff && q[1] && strchr("pqPQ", q[1]))
            H.auto_pod = false;
#endif
    const char *ff = memchr(p, 0xff, size);
    if (ff != p)
        run_op('a', p, (size_t)((ff ? ff : end) - p));
    p = ff;
    while (p && p < end) {
        char op = p + 1 < end ? p[1] : '.';
        const char *pl = p + 2 < end ? p + 2 : end;
        const char *next = pl < end ? memchr(pl, 0xff, (size_t)(end - pl)) : NULL;
        run_op(op, pl, (size_t)((next ? next : end) - pl));
        p = next;
    }
    teardown();
    return 0;
}
#endif
