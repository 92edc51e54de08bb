/* bench-pod: a small Socket.IO-compatible pod for benchmarks (libuv + llhttp, one thread).
 *
 * Enough Engine.IO v4 / Socket.IO v5 that a browser-like client can handshake, upgrade, join
 * its room and exchange events, and cheap enough that the figures measure the proxy in front:
 *
 *   GET  /socket.io/?EIO=4&transport=polling[&roomId=..]      open packet, new sid, joins roomId
 *   GET  /socket.io/?...&transport=polling&sid=S              queued packets (held until some)
 *   POST /socket.io/?...&transport=polling&sid=S              client packets (0x1e-separated), "ok"
 *   GET  /socket.io/?...&transport=websocket[&sid=S]          101; without sid the open packet is
 *                                                             the first frame (WebSocket-only)
 *   GET  /api/room/<id>/...                                   {"roomId":..,"pod":..}
 *   GET  /__bench/stats                                       counters as JSON ("closed" counts
 *                                                             connections that served anything else)
 *   anything else                                             200 "ok"
 *
 * Packets: "2probe" -> "3probe", "5" upgrade done (a held GET gets "6"), "2" -> "3",
 * "40[/ns,]" -> "40[/ns,]{"sid":"<sid>"}", "42..." (an event) is broadcast to the other members
 * of the session's room as is. Sids start with the pod name ("p0_..."), so a client can see which
 * pod it reached. Unknown sid -> 400 {"code":1,"message":"Session ID unknown"}. The server sends
 * a "2" ping to every session each --ping-interval ms; polling sessions idle for
 * --session-timeout ms are dropped.
 *
 *   bench-pod --listen 127.0.0.1:PORT [--name p0] [--ping-interval 25000] [--session-timeout 30000]
 */
#include <errno.h>
#include <llhttp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SID_BUCKETS (1u << 18)
#define ROOM_BUCKETS (1u << 14)
#define MAX_URL 2048
#define MAX_BODY (1u << 20)
#define MAX_QUEUE (64u * 1024u)

struct session;

struct conn {
    uv_tcp_t tcp;
    llhttp_t parser;
    char url[MAX_URL];
    size_t url_len;
    char wskey[64];
    size_t wskey_len;
    int hdr; /* header being read: 1 = sec-websocket-key, 2 = connection */
    char hname[32];
    size_t hname_len;
    bool conn_close;
    char *body;
    size_t body_len, body_cap;
    bool is_ws;
    bool closing;
    bool served; /* answered a request other than /__bench/stats: its close is counted */
    struct session *sess; /* websocket: its session; polling GET held: the session */
    char *wbuf;           /* websocket bytes received, not yet a whole frame */
    size_t wlen, wcap;
    uint32_t held_pipelined; /* bytes of the read buffer left unparsed during a held GET */
};

struct room {
    char *id;
    struct room *next; /* hash chain */
    struct session *members;
    unsigned count;
};

struct session {
    char sid[32];
    struct session *hnext;                  /* sid hash chain */
    struct session *rnext, *rprev;          /* room members */
    struct session *anext, *aprev;          /* activity list (polling sessions), oldest first */
    struct room *room;
    struct conn *ws;                        /* upgraded transport */
    struct conn *held;                      /* a held polling GET */
    char *queue;                            /* polling: packets waiting for a GET, 0x1e-joined */
    size_t qlen;
    uint64_t last_ms;
    bool in_alist;
};

static struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t ping_timer, sweep_timer;
    uv_signal_t sigterm, sigint;
    const char *name;
    uint64_t ping_ms, sess_timeout_ms;
    struct session *sids[SID_BUCKETS];
    struct room *rooms[ROOM_BUCKETS];
    struct session *ahead, *atail;
    uint64_t sid_counter;
    llhttp_settings_t settings;
    /* counters */
    uint64_t accepted, closed, requests, handshakes, upgrades, unknown_sid, events_in, frames_out,
        sessions, rooms_n;
} g;

static uint64_t now_ms(void) { return uv_now(g.loop); }

static uint32_t hash_str(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* ---- writes ------------------------------------------------------------------------------ */
struct wreq {
    uv_write_t req;
    char data[];
};

static void on_write(uv_write_t *req, int status) { free(req); }
static void conn_close(struct conn *c);

/* Writes the buffers, directly when the socket takes them, else through a copied request. */
static void conn_writev(struct conn *c, uv_buf_t *bufs, unsigned n) {
    if (c->closing) return;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += bufs[i].len;
    int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (r == (int)total) return;
    size_t done = r > 0 ? (size_t)r : 0;
    if (r < 0 && r != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    struct wreq *w = malloc(sizeof(*w) + total - done);
    if (!w) abort();
    size_t off = 0, skip = done;
    for (unsigned i = 0; i < n; i++) {
        if (skip >= bufs[i].len) {
            skip -= bufs[i].len;
            continue;
        }
        memcpy(w->data + off, bufs[i].base + skip, bufs[i].len - skip);
        off += bufs[i].len - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned)off);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(w);
        conn_close(c);
    }
}

static void http_reply(struct conn *c, int status, const char *ctype, const char *body, size_t blen) {
    char head[256];
    const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : "Not Found";
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                      reason, ctype, blen, c->conn_close ? "Connection: close\r\n" : "");
    uv_buf_t b[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init((char *)body, (unsigned)blen)};
    conn_writev(c, b, blen ? 2 : 1);
    g.requests++;
    if (c->conn_close) conn_close(c);
}

static void ws_send(struct conn *c, const char *data, size_t len) {
    uint8_t h[10];
    unsigned hl;
    h[0] = 0x81;
    if (len < 126) {
        h[1] = (uint8_t)len;
        hl = 2;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    uv_buf_t b[2] = {uv_buf_init((char *)h, hl), uv_buf_init((char *)data, (unsigned)len)};
    conn_writev(c, b, 2);
    g.frames_out++;
}

/* ---- sessions and rooms ------------------------------------------------------------------- */
static struct session *sid_find(const char *sid, size_t n) {
    if (n == 0 || n >= sizeof(((struct session *)0)->sid)) return NULL;
    for (struct session *s = g.sids[hash_str(sid, n) & (SID_BUCKETS - 1)]; s; s = s->hnext)
        if (strlen(s->sid) == n && memcmp(s->sid, sid, n) == 0) return s;
    return NULL;
}

static void alist_unlink(struct session *s) {
    if (!s->in_alist) return;
    if (s->aprev) s->aprev->anext = s->anext; else g.ahead = s->anext;
    if (s->anext) s->anext->aprev = s->aprev; else g.atail = s->aprev;
    s->anext = s->aprev = NULL;
    s->in_alist = false;
}

static void touch(struct session *s) {
    s->last_ms = now_ms();
    if (s->ws) return;
    alist_unlink(s);
    s->aprev = g.atail;
    if (g.atail) g.atail->anext = s; else g.ahead = s;
    g.atail = s;
    s->in_alist = true;
}

static void room_join(struct session *s, const char *id, size_t n) {
    if (n == 0) return;
    uint32_t b = hash_str(id, n) & (ROOM_BUCKETS - 1);
    struct room *r = g.rooms[b];
    while (r && !(strlen(r->id) == n && memcmp(r->id, id, n) == 0)) r = r->next;
    if (!r) {
        r = calloc(1, sizeof(*r));
        r->id = strndup(id, n);
        r->next = g.rooms[b];
        g.rooms[b] = r;
        g.rooms_n++;
    }
    s->room = r;
    s->rprev = NULL;
    s->rnext = r->members;
    if (r->members) r->members->rprev = s;
    r->members = s;
    r->count++;
}

static void room_leave(struct session *s) {
    struct room *r = s->room;
    if (!r) return;
    if (s->rprev) s->rprev->rnext = s->rnext; else r->members = s->rnext;
    if (s->rnext) s->rnext->rprev = s->rprev;
    r->count--;
    s->room = NULL;
    if (r->count == 0) {
        uint32_t b = hash_str(r->id, strlen(r->id)) & (ROOM_BUCKETS - 1);
        struct room **pp = &g.rooms[b];
        while (*pp != r) pp = &(*pp)->next;
        *pp = r->next;
        free(r->id);
        free(r);
        g.rooms_n--;
    }
}

static struct session *session_new(const char *room, size_t room_len) {
    struct session *s = calloc(1, sizeof(*s));
    if (!s) abort();
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    uint64_t x = ++g.sid_counter * 0x9E3779B97F4A7C15ull ^ uv_hrtime();
    int n = snprintf(s->sid, sizeof(s->sid), "%.8s_", g.name);
    for (int i = 0; i < 12; i++, x >>= 5) s->sid[n + i] = al[(x ^ (g.sid_counter >> (i & 7))) & 63];
    n += 12;
    n += snprintf(s->sid + n, sizeof(s->sid) - (size_t)n, "%llx", (unsigned long long)(g.sid_counter & 0xfff));
    uint32_t b = hash_str(s->sid, (size_t)n) & (SID_BUCKETS - 1);
    s->hnext = g.sids[b];
    g.sids[b] = s;
    room_join(s, room, room_len);
    g.sessions++;
    g.handshakes++;
    touch(s);
    return s;
}

static void session_free(struct session *s) {
    uint32_t b = hash_str(s->sid, strlen(s->sid)) & (SID_BUCKETS - 1);
    struct session **pp = &g.sids[b];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) *pp = s->hnext;
    room_leave(s);
    alist_unlink(s);
    if (s->held) s->held->sess = NULL;
    if (s->ws) s->ws->sess = NULL;
    free(s->queue);
    free(s);
    g.sessions--;
}

static int open_packet(struct session *s, char *out, size_t cap) {
    return snprintf(out, cap,
                    "0{\"sid\":\"%s\",\"upgrades\":[\"websocket\"],\"pingInterval\":%llu,"
                    "\"pingTimeout\":20000,\"maxPayload\":1000000}",
                    s->sid, (unsigned long long)g.ping_ms);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* Answers the session's held polling GET and reads the connection's next request. */
static void held_reply(struct session *s, const char *p, size_t n) {
    struct conn *c = s->held;
    s->held = NULL;
    c->sess = NULL;
    http_reply(c, 200, "text/plain; charset=UTF-8", p, n);
    if (!c->closing) uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Sends one packet to the session: over its WebSocket, to a held GET, or into its queue. */
static void session_send(struct session *s, const char *p, size_t n) {
    if (s->ws) {
        ws_send(s->ws, p, n);
        return;
    }
    if (s->held) {
        held_reply(s, p, n);
        return;
    }
    if (s->qlen + n + 1 > MAX_QUEUE) return;
    char *q = realloc(s->queue, s->qlen + n + 1);
    if (!q) abort();
    s->queue = q;
    if (s->qlen) q[s->qlen++] = 0x1e;
    memcpy(q + s->qlen, p, n);
    s->qlen += n;
}

/* One Engine.IO packet from the client. */
static void on_packet(struct session *s, const char *p, size_t n) {
    if (n == 0) return;
    switch (p[0]) {
    case '2':
        if (n == 6 && memcmp(p, "2probe", 6) == 0) session_send(s, "3probe", 6);
        else session_send(s, "3", 1);
        break;
    case '5':
        if (s->held) session_send(s, "6", 1);
        break;
    case '1':
        break;
    case '4':
        if (n >= 2 && p[1] == '0') { /* Socket.IO CONNECT, "40" or "40/ns,..." */
            char out[256];
            size_t nsl = 0;
            if (n > 2 && p[2] == '/') {
                const char *comma = memchr(p + 2, ',', n - 2);
                nsl = comma ? (size_t)(comma - (p + 2)) + 1 : n - 2;
                if (nsl > 128) nsl = 128;
            }
            int ol = snprintf(out, sizeof(out), "40%.*s%s{\"sid\":\"%s\"}", (int)nsl, p + 2,
                              (nsl && p[2 + nsl - 1] != ',') ? "," : "", s->sid);
            session_send(s, out, (size_t)ol);
        } else if (n >= 2 && p[1] == '2') { /* EVENT: to the others in the room */
            g.events_in++;
            if (s->room)
                for (struct session *m = s->room->members; m; m = m->rnext)
                    if (m != s) session_send(m, p, n);
        }
        break;
    default:
        break;
    }
}

/* ---- query parsing ------------------------------------------------------------------------ */
static bool qparam(const char *url, size_t len, const char *name, const char **v, size_t *vl) {
    const char *q = memchr(url, '?', len);
    if (!q) return false;
    size_t nl = strlen(name);
    const char *end = url + len, *p = q + 1;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            *v = p + nl + 1;
            *vl = (size_t)(e - *v);
            return true;
        }
        p = e + 1;
    }
    return false;
}

/* ---- websocket ----------------------------------------------------------------------------- */
static void ws_accept_key(const char *key, size_t kl, char out[32]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char buf[128], md[SHA_DIGEST_LENGTH];
    memcpy(buf, key, kl);
    memcpy(buf + kl, guid, sizeof(guid) - 1);
    SHA1(buf, kl + sizeof(guid) - 1, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

static void ws_input(struct conn *c, const char *data, size_t len) {
    if (c->wlen + len > c->wcap) {
        size_t cap = c->wcap ? c->wcap : 4096;
        while (cap < c->wlen + len) cap *= 2;
        if (cap > MAX_BODY * 2) {
            conn_close(c);
            return;
        }
        c->wbuf = realloc(c->wbuf, cap);
        if (!c->wbuf) abort();
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
    size_t off = 0;
    while (c->wlen - off >= 2 && !c->closing) {
        uint8_t *f = (uint8_t *)c->wbuf + off;
        size_t avail = c->wlen - off, hl = 2;
        uint64_t pl = f[1] & 0x7f;
        if (pl == 126) {
            if (avail < 4) break;
            pl = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (pl == 127) {
            if (avail < 10) break;
            pl = 0;
            for (int i = 0; i < 8; i++) pl = pl << 8 | f[2 + i];
            hl = 10;
        }
        bool masked = f[1] & 0x80;
        if (masked) hl += 4;
        if (pl > MAX_BODY) {
            conn_close(c);
            return;
        }
        if (avail < hl + pl) break;
        uint8_t *payload = f + hl;
        if (masked) {
            uint8_t *m = f + hl - 4;
            for (uint64_t i = 0; i < pl; i++) payload[i] ^= m[i & 3];
        }
        unsigned op = f[0] & 0x0f;
        if (op == 0x8) {
            uint8_t cl[2] = {0x88, 0};
            uv_buf_t b = uv_buf_init((char *)cl, 2);
            conn_writev(c, &b, 1);
            conn_close(c);
            return;
        } else if (op == 0x9) {
            uint8_t h[2] = {0x8a, (uint8_t)(pl < 126 ? pl : 0)};
            uv_buf_t b[2] = {uv_buf_init((char *)h, 2), uv_buf_init((char *)payload, pl < 126 ? (unsigned)pl : 0)};
            conn_writev(c, b, 2);
        } else if ((op == 0x1 || op == 0x2 || op == 0x0) && c->sess) {
            struct session *s = c->sess;
            s->last_ms = now_ms();
            on_packet(s, (const char *)payload, (size_t)pl);
        }
        off += hl + pl;
    }
    if (off) {
        memmove(c->wbuf, c->wbuf + off, c->wlen - off);
        c->wlen -= off;
    }
}

static void do_upgrade(struct conn *c, const char *sid, size_t sidl, const char *room, size_t rl) {
    struct session *s = NULL;
    if (sidl) {
        s = sid_find(sid, sidl);
        if (!s || s->ws) {
            g.unknown_sid++;
            static const char b[] = "{\"code\":1,\"message\":\"Session ID unknown\"}";
            c->conn_close = true;
            http_reply(c, 400, "application/json", b, sizeof(b) - 1);
            return;
        }
    }
    char acc[32] = {0};
    ws_accept_key(c->wskey, c->wskey_len, acc);
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    uv_buf_t b = uv_buf_init(head, (unsigned)hl);
    conn_writev(c, &b, 1);
    g.upgrades++;
    c->is_ws = true;
    if (!s) {
        s = session_new(room, rl);
        alist_unlink(s);
        s->ws = c;
        c->sess = s;
        char op[256];
        int ol = open_packet(s, op, sizeof(op));
        ws_send(c, op, (size_t)ol);
    } else {
        alist_unlink(s);
        s->ws = c;
        c->sess = s;
        if (s->qlen) { /* anything still queued goes over the new transport */
            size_t st = 0;
            for (size_t i = 0; i <= s->qlen; i++)
                if (i == s->qlen || s->queue[i] == 0x1e) {
                    ws_send(c, s->queue + st, i - st);
                    st = i + 1;
                }
            s->qlen = 0;
        }
    }
}

/* ---- HTTP ----------------------------------------------------------------------------------- */
static void handle_request(struct conn *c) {
    const char *u = c->url;
    size_t ul = c->url_len;
    c->served = c->served || !(ul >= 14 && memcmp(u, "/__bench/stats", 14) == 0);
    int method = llhttp_get_method(&c->parser);
    if (ul >= 11 && memcmp(u, "/socket.io/", 11) == 0) {
        const char *tr = NULL, *sid = NULL, *room = NULL;
        size_t trl = 0, sidl = 0, rl = 0;
        qparam(u, ul, "transport", &tr, &trl);
        qparam(u, ul, "sid", &sid, &sidl);
        qparam(u, ul, "roomId", &room, &rl);
        if (trl == 9 && memcmp(tr, "websocket", 9) == 0 && c->parser.upgrade) {
            do_upgrade(c, sid, sidl, room, rl);
            return;
        }
        if (!(trl == 7 && memcmp(tr, "polling", 7) == 0)) {
            static const char b[] = "{\"code\":0,\"message\":\"Transport unknown\"}";
            http_reply(c, 400, "application/json", b, sizeof(b) - 1);
            return;
        }
        if (!sidl) {
            struct session *s = session_new(room, rl);
            char op[256];
            int ol = open_packet(s, op, sizeof(op));
            http_reply(c, 200, "text/plain; charset=UTF-8", op, (size_t)ol);
            return;
        }
        struct session *s = sid_find(sid, sidl);
        if (!s || s->ws) {
            g.unknown_sid++;
            static const char b[] = "{\"code\":1,\"message\":\"Session ID unknown\"}";
            http_reply(c, 400, "application/json", b, sizeof(b) - 1);
            return;
        }
        touch(s);
        if (method == HTTP_POST) {
            size_t st = 0;
            for (size_t i = 0; i <= c->body_len; i++)
                if (i == c->body_len || c->body[i] == 0x1e) {
                    on_packet(s, c->body + st, i - st);
                    st = i + 1;
                }
            http_reply(c, 200, "text/html", "ok", 2);
            return;
        }
        if (s->qlen) {
            http_reply(c, 200, "text/plain; charset=UTF-8", s->queue, s->qlen);
            s->qlen = 0;
            return;
        }
        if (s->held) held_reply(s, "6", 1); /* a second GET: the first gets a noop */
        s->held = c;
        c->sess = s;
        uv_read_stop((uv_stream_t *)&c->tcp); /* one request at a time */
        return;
    }
    if (ul >= 10 && memcmp(u, "/api/room/", 10) == 0) {
        const char *id = u + 10, *e = id;
        while (e < u + ul && *e != '/' && *e != '?') e++;
        char b[256];
        int bl = snprintf(b, sizeof(b), "{\"roomId\":\"%.*s\",\"pod\":\"%s\"}", (int)(e - id < 100 ? e - id : 100), id, g.name);
        http_reply(c, 200, "application/json", b, (size_t)bl);
        return;
    }
    if (ul >= 14 && memcmp(u, "/__bench/stats", 14) == 0) {
        char b[512];
        int bl = snprintf(b, sizeof(b),
                          "{\"pod\":\"%s\",\"accepted\":%llu,\"closed\":%llu,\"requests\":%llu,"
                          "\"handshakes\":%llu,\"upgrades\":%llu,\"unknown_sid\":%llu,\"events_in\":%llu,"
                          "\"frames_out\":%llu,\"sessions\":%llu,\"rooms\":%llu}\n",
                          g.name, (unsigned long long)g.accepted, (unsigned long long)g.closed,
                          (unsigned long long)g.requests, (unsigned long long)g.handshakes,
                          (unsigned long long)g.upgrades, (unsigned long long)g.unknown_sid,
                          (unsigned long long)g.events_in, (unsigned long long)g.frames_out,
                          (unsigned long long)g.sessions, (unsigned long long)g.rooms_n);
        http_reply(c, 200, "application/json", b, (size_t)bl);
        return;
    }
    http_reply(c, 200, "text/plain", "ok\n", 3);
}

static int on_message_begin(llhttp_t *p) {
    struct conn *c = p->data;
    c->url_len = 0;
    c->body_len = 0;
    c->wskey_len = 0;
    c->conn_close = false;
    c->hdr = 0;
    c->hname_len = 0;
    return 0;
}
static int on_url(llhttp_t *p, const char *at, size_t n) {
    struct conn *c = p->data;
    if (c->url_len + n > MAX_URL) return -1;
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    return 0;
}
static int on_header_field(llhttp_t *p, const char *at, size_t n) {
    struct conn *c = p->data;
    if (c->hname_len + n < sizeof(c->hname)) memcpy(c->hname + c->hname_len, at, n);
    c->hname_len += n;
    return 0;
}
static int on_header_field_complete(llhttp_t *p) {
    struct conn *c = p->data;
    c->hdr = 0;
    if (c->hname_len == 17 && strncasecmp(c->hname, "sec-websocket-key", 17) == 0) c->hdr = 1;
    else if (c->hname_len == 10 && strncasecmp(c->hname, "connection", 10) == 0) c->hdr = 2;
    c->hname_len = 0;
    return 0;
}
static int on_header_value(llhttp_t *p, const char *at, size_t n) {
    struct conn *c = p->data;
    if (c->hdr == 1 && c->wskey_len + n < sizeof(c->wskey)) {
        memcpy(c->wskey + c->wskey_len, at, n);
        c->wskey_len += n;
    } else if (c->hdr == 2 && n >= 5 && strncasecmp(at, "close", 5) == 0) {
        c->conn_close = true;
    }
    return 0;
}
static int on_body(llhttp_t *p, const char *at, size_t n) {
    struct conn *c = p->data;
    if (c->body_len + n > MAX_BODY) return -1;
    if (c->body_len + n > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + n) cap *= 2;
        c->body = realloc(c->body, cap);
        if (!c->body) abort();
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    return 0;
}
static int on_message_complete(llhttp_t *p) {
    struct conn *c = p->data;
    handle_request(c);
    if (c->is_ws || c->sess || c->closing) return HPE_PAUSED;
    return 0;
}

/* ---- connections ---------------------------------------------------------------------------- */
static void on_closed(uv_handle_t *h) {
    struct conn *c = (struct conn *)h;
    free(c->body);
    free(c->wbuf);
    if (c->served) g.closed++;
    free(c);
}

static void conn_close(struct conn *c) {
    if (c->closing) return;
    c->closing = true;
    if (c->sess) {
        struct session *s = c->sess;
        if (s->ws == c) {
            s->ws = NULL;
            session_free(s);
        } else if (s->held == c) {
            s->held = NULL;
        }
        c->sess = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    static char buf[65536];
    b->base = buf;
    b->len = sizeof(buf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    struct conn *c = (struct conn *)st;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0) return;
    if (c->is_ws) {
        ws_input(c, b->base, (size_t)n);
        return;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, b->base, (size_t)n);
    if (e == HPE_OK) return;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t rest = pos ? (size_t)(b->base + n - pos) : 0;
        if (c->is_ws) {
            if (rest) ws_input(c, pos, rest);
            return;
        }
        if (c->closing) return;
        llhttp_resume(&c->parser);
        /* held GET: a pipelined request behind it is not supported by Engine.IO clients */
        return;
    }
    conn_close(c);
}

static void on_connection(uv_stream_t *srv, int status) {
    if (status < 0) return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) abort();
    uv_tcp_init(g.loop, &c->tcp);
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    g.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &g.settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- timers, signals -------------------------------------------------------------------------- */
static void on_ping(uv_timer_t *t) {
    for (uint32_t b = 0; b < SID_BUCKETS; b++)
        for (struct session *s = g.sids[b]; s; s = s->hnext)
            if (s->ws || s->held) session_send(s, "2", 1);
}

static void on_sweep(uv_timer_t *t) {
    uint64_t now = now_ms();
    while (g.ahead && now - g.ahead->last_ms > g.sess_timeout_ms) {
        struct session *s = g.ahead;
        if (s->held) { /* a held GET is a live client: keep it */
            touch(s);
            if (g.ahead == s) break;
            continue;
        }
        session_free(s);
    }
}

static void on_signal(uv_signal_t *s, int sig) {
    fprintf(stderr, "bench-pod %s: signal %d, exiting (accepted %llu, requests %llu)\n", g.name,
            sig, (unsigned long long)g.accepted, (unsigned long long)g.requests);
    exit(0);
}

int main(int argc, char **argv) {
    const char *listen = "127.0.0.1:3000";
    g.name = "p0";
    g.ping_ms = 25000;
    g.sess_timeout_ms = 30000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0) listen = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0) g.name = argv[i + 1];
        else if (strcmp(argv[i], "--ping-interval") == 0) g.ping_ms = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--session-timeout") == 0) g.sess_timeout_ms = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: bench-pod --listen HOST:PORT [--name p0] [--ping-interval MS] "
                            "[--session-timeout MS]\n");
            return 2;
        }
    }
    if (argc % 2 == 0) {
        fprintf(stderr, "bench-pod: missing value for %s\n", argv[argc - 1]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
        fprintf(stderr, "bench-pod: --listen HOST:PORT\n");
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    g.loop = uv_default_loop();
    llhttp_settings_init(&g.settings);
    g.settings.on_message_begin = on_message_begin;
    g.settings.on_url = on_url;
    g.settings.on_header_field = on_header_field;
    g.settings.on_header_field_complete = on_header_field_complete;
    g.settings.on_header_value = on_header_value;
    g.settings.on_body = on_body;
    g.settings.on_message_complete = on_message_complete;
    struct sockaddr_in addr;
    if (uv_ip4_addr(host, atoi(colon + 1), &addr) != 0) {
        fprintf(stderr, "bench-pod: bad address %s\n", listen);
        return 2;
    }
    uv_tcp_init(g.loop, &g.listener);
    int r = uv_tcp_bind(&g.listener, (const struct sockaddr *)&addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&g.listener, 4096, on_connection);
    if (r != 0) {
        fprintf(stderr, "bench-pod: listen %s: %s\n", listen, uv_strerror(r));
        return 1;
    }
    uv_timer_init(g.loop, &g.ping_timer);
    uv_timer_start(&g.ping_timer, on_ping, g.ping_ms, g.ping_ms);
    uv_timer_init(g.loop, &g.sweep_timer);
    uv_timer_start(&g.sweep_timer, on_sweep, 1000, 1000);
    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    fprintf(stderr, "bench-pod %s listening on %s\n", g.name, listen);
    return uv_run(g.loop, UV_RUN_DEFAULT);
}
