/* bench-loadgen: simulated HyperStudy rooms over Engine.IO v4 / Socket.IO v5, on libwebsockets
 * (client connections) and libuv (its event loop, passed to lws as a foreign loop).
 *
 * Each participant behaves like socket.io-client in a browser: a polling handshake
 * (GET /socket.io/?EIO=4&transport=polling&roomId=..&participantId=..) -> WebSocket upgrade with
 * the sid -> "2probe"/"3probe"/"5" -> "40/<ns>," -> joined when "40/<ns>,{"sid":..}" comes back
 * (or, with --ws-only, a WebSocket handshake whose first frame is the open packet). It answers the
 * server's "2" pings with "3". Participant 0 of each room is its host and emits a ~100-byte
 * "exp:time-update" event every --update-ms, stamped with the send time; the pod broadcasts it to
 * the room and every receiver records the fan-out latency. Other participants emit an "exp:event"
 * every --event-ms. A participant that loses its connection reconnects (socket.io-client's
 * back-off: --reconnect-ms × [0.5, 1.5], doubling up to 5 s); the time from the first loss until
 * every participant is back in its room is reported as a reconnect storm.
 *
 * Modes: rooms (default, above), sids (only polling handshakes; writes "sid roomId participantId"
 * lines to --sids-out for wrk's polling script). Progress on stderr once a second; results as a
 * table on stdout (and key/value lines to --tsv, the fan-out latency CDF to --cdf).
 *
 * Note: llhttp.h must not be included next to libwebsockets.h (HTTP_STATUS_* clash).
 */
#include <libwebsockets.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

/* ---- histogram: log-linear, 64 sub-buckets per power of two (about 1.6 % resolution) -------- */
#define H_SUB 64
#define H_BUCKETS (H_SUB * 40)
struct hist {
    uint64_t n[H_BUCKETS];
    uint64_t count;
    uint64_t max;
};
static unsigned h_index(uint64_t v) {
    if (v < H_SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v) - 5u; /* v >> e in [64, 128) */
    unsigned i = H_SUB * e + (unsigned)(v >> e);
    return i < H_BUCKETS ? i : H_BUCKETS - 1;
}
static uint64_t h_value(unsigned i) { /* upper bound of bucket i */
    if (i < 2 * H_SUB) return i;
    unsigned e = i / H_SUB - 1;
    uint64_t m = H_SUB + i % H_SUB;
    return ((m + 1) << e) - 1;
}
static void h_add(struct hist *h, uint64_t v) {
    h->n[h_index(v)]++;
    h->count++;
    if (v > h->max) h->max = v;
}
static uint64_t h_pct(const struct hist *h, double p) {
    if (!h->count) return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->count), seen = 0;
    if (want == 0) want = 1;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want) return h_value(i) < h->max ? h_value(i) : h->max;
    }
    return h->max;
}

/* ---- participants -------------------------------------------------------------------------- */
enum pstate { P_NEW, P_HANDSHAKE, P_WS_CONNECTING, P_PROBING, P_JOINING, P_JOINED, P_WAIT, P_DONE };
enum okind { O_TEXT, O_TIME_UPDATE, O_EVENT };
#define OUTQ 8

struct part {
    unsigned room, idx; /* idx 0 is the room's host */
    enum pstate st;
    struct lws *http, *ws;
    char sid[48];
    char pod[16]; /* pod name: the sid's prefix before '_' (bench pods) */
    uint64_t t_start;
    uint64_t due; /* P_WAIT: reconnect at (ns) */
    unsigned attempts;
    bool ever_joined;
    uint8_t oq_kind[OUTQ];
    const char *oq_text[OUTQ];
    unsigned oq_head, oq_len;
    char *rx; /* fragmented message being assembled */
    size_t rx_len;
    char body[512]; /* polling handshake response */
    size_t body_len;
    uint32_t seq;
};

static struct {
    uv_loop_t *loop;
    struct lws_context *ctx;
    uv_timer_t tick, progress;
    uv_signal_t sigint;
    /* options */
    const char *targets[8];
    unsigned ntargets;
    const char *mode;
    const char *ns;
    unsigned rooms, per_room, total;
    unsigned update_ms, event_ms, reconnect_ms, concurrency;
    double duration_s, ramp_timeout_s;
    bool ws_only, quiet;
    unsigned steps[16], nsteps, step_at;
    unsigned hold_ms;
    const char *tsv_path, *cdf_path, *sids_out, *room_prefix;
    const char *update_event; /* name of the host's timed event (exp:time-update) */
    int watch_pids[8];
    unsigned nwatch;
    FILE *sids_file;
    /* state */
    struct part *parts;
    unsigned next_new; /* first never-started participant */
    unsigned inflight, joined, done;
    uint64_t t0, t_all_joined, t_measure0, t_measure1, t_end;
    bool measuring, finished, stopping;
    uint64_t step_hold_until;
    unsigned tickn;
    /* counters */
    uint64_t connects, handshakes_ok, http_errors, connect_errors, ws_closed, protocol_errors,
        reconnects;
    uint64_t tx_frames, rx_frames, tx_bytes, rx_bytes, updates_rx, events_rx, pings;
    uint64_t m_tx_frames, m_rx_frames; /* at measure start */
    struct hist setup, fanout;
    uint64_t setup_first_ns, setup_last_ns; /* first start, last join of the initial ramp */
    unsigned initial_joined;
    /* reconnect storm */
    bool storm;
    uint64_t storm_t0, storm_last_ms;
    unsigned storm_lost, storms, storm_lost_last;
    uint64_t storm_max_ms;
    /* watched process CPU */
    uint64_t watch_ticks0;
    struct rusage ru0;
} g;

static uint64_t now_ns(void) { return uv_hrtime(); }

static void part_connect(struct part *p);
static void part_lost(struct part *p, const char *why, bool counted);

static uint64_t watched_ticks(void) {
    uint64_t sum = 0;
    for (unsigned i = 0; i < g.nwatch; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", g.watch_pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p) continue;
        unsigned long long ut = 0, st = 0;
        /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            sum += ut + st;
    }
    return sum;
}

/* ---- output queue ---------------------------------------------------------------------------- */
static void send_kind(struct part *p, enum okind k, const char *text) {
    if (!p->ws || p->oq_len == OUTQ) return;
    unsigned i = (p->oq_head + p->oq_len) % OUTQ;
    p->oq_kind[i] = (uint8_t)k;
    p->oq_text[i] = text;
    p->oq_len++;
    lws_callback_on_writable(p->ws);
}
static void send_text(struct part *p, const char *text) { send_kind(p, O_TEXT, text); }

static char ns_connect[128];

static int write_one(struct part *p, struct lws *wsi) {
    if (!p->oq_len) return 0;
    unsigned char buf[LWS_PRE + 512];
    char *m = (char *)buf + LWS_PRE;
    int n = 0;
    unsigned k = p->oq_kind[p->oq_head];
    const char *nsp = strcmp(g.ns, "/") == 0 ? "" : g.ns;
    const char *sep = *nsp ? "," : "";
    if (k == O_TEXT) {
        n = snprintf(m, 400, "%s", p->oq_text[p->oq_head]);
    } else if (k == O_TIME_UPDATE) {
        uint32_t seq = ++p->seq;
        /* ~100 bytes, like HyperStudy's video time sync */
        n = snprintf(m, 400,
                     "42%s%s[\"%s\",{\"t\":%llu,\"room\":%u,\"seq\":%u,"
                     "\"currentTime\":%.3f,\"playing\":true}]",
                     nsp, sep, g.update_event, (unsigned long long)now_ns(), p->room, seq, (double)seq * g.update_ms / 1000.0);
    } else {
        n = snprintf(m, 400, "42%s%s[\"exp:event\",{\"p\":%u,\"room\":%u,\"seq\":%u,\"key\":\"space\"}]",
                     nsp, sep, p->idx, p->room, ++p->seq);
    }
    p->oq_head = (p->oq_head + 1) % OUTQ;
    p->oq_len--;
    if (lws_write(wsi, (unsigned char *)m, (size_t)n, LWS_WRITE_TEXT) < n) return -1;
    g.tx_frames++;
    g.tx_bytes += (uint64_t)n;
    if (p->oq_len) lws_callback_on_writable(wsi);
    return 0;
}

/* ---- Engine.IO / Socket.IO messages -------------------------------------------------------- */
static bool parse_sid(const char *s, size_t n, char *out, size_t cap) {
    const char *k = memmem(s, n, "\"sid\":\"", 7);
    if (!k) return false;
    k += 7;
    const char *e = memchr(k, '"', (size_t)(s + n - k));
    if (!e || (size_t)(e - k) >= cap) return false;
    memcpy(out, k, (size_t)(e - k));
    out[e - k] = '\0';
    return true;
}

static void storm_check_end(void) {
    if (g.storm && g.joined == g.total) {
        uint64_t ms = (now_ns() - g.storm_t0) / 1000000;
        g.storm = false;
        g.storms++;
        g.storm_last_ms = ms;
        g.storm_lost_last = g.storm_lost;
        if (ms > g.storm_max_ms) g.storm_max_ms = ms;
        fprintf(stderr, "[loadgen] reconnect storm over: %u participants lost, all %u back in their rooms after %llu ms\n",
                g.storm_lost, g.total, (unsigned long long)ms);
    }
}

static void on_joined(struct part *p, const char *msg, size_t n) {
    char sid[48];
    if (parse_sid(msg, n, sid, sizeof(sid))) {
        const char *us = strchr(sid, '_');
        size_t pl = us ? (size_t)(us - sid) : 0;
        if (pl >= sizeof(p->pod)) pl = sizeof(p->pod) - 1;
        memcpy(p->pod, sid, pl);
        p->pod[pl] = '\0';
    }
    uint64_t now = now_ns();
    h_add(&g.setup, (now - p->t_start) / 1000);
    p->st = P_JOINED;
    p->attempts = 0;
    if (g.inflight) g.inflight--;
    g.joined++;
    if (!p->ever_joined) {
        p->ever_joined = true;
        g.initial_joined++;
        g.setup_last_ns = now;
    }
    storm_check_end();
}

static void on_message(struct part *p, const char *m, size_t n) {
    g.rx_frames++;
    g.rx_bytes += n;
    if (n == 0) return;
    switch (m[0]) {
    case '0': /* open packet, WebSocket-only */
        if (p->st == P_PROBING && parse_sid(m, n, p->sid, sizeof(p->sid))) {
            p->st = P_JOINING;
            send_text(p, ns_connect);
        } else {
            g.protocol_errors++;
        }
        return;
    case '2':
        g.pings++;
        send_text(p, "3");
        return;
    case '3':
        if (n == 6 && memcmp(m, "3probe", 6) == 0 && p->st == P_PROBING) {
            p->st = P_JOINING;
            send_text(p, "5");
            send_text(p, ns_connect);
        }
        return;
    case '6':
    case '1':
        return;
    case '4':
        if (n >= 2 && m[1] == '0') {
            if (p->st == P_JOINING) on_joined(p, m, n);
            return;
        }
        if (n >= 2 && m[1] == '2') {
            const char *t = memmem(m, n, "\"t\":", 4);
            size_t el = strlen(g.update_event);
            if (t && memmem(m, n < 40 + el ? n : 40 + el, g.update_event, el)) {
                uint64_t sent = strtoull(t + 4, NULL, 10), now = now_ns();
                g.updates_rx++;
                if (g.measuring && now > sent) h_add(&g.fanout, (now - sent) / 1000);
            } else {
                g.events_rx++;
            }
            return;
        }
        if (n >= 2 && m[1] == '4') g.protocol_errors++; /* CONNECT_ERROR */
        return;
    default:
        g.protocol_errors++;
    }
}

/* ---- connections ------------------------------------------------------------------------------ */
static const char *target_host(struct part *p, int *port) {
    const char *t = g.targets[((unsigned)(p - g.parts) + p->attempts) % g.ntargets];
    static char host[8][128];
    unsigned i = ((unsigned)(p - g.parts) + p->attempts) % g.ntargets;
    const char *c = strrchr(t, ':');
    size_t hl = c ? (size_t)(c - t) : strlen(t);
    if (hl >= sizeof(host[0])) hl = sizeof(host[0]) - 1;
    memcpy(host[i], t, hl);
    host[i][hl] = '\0';
    *port = c ? atoi(c + 1) : 80;
    return host[i];
}

static void start_ws(struct part *p) {
    char path[512];
    int port;
    const char *host = target_host(p, &port);
    if (g.ws_only)
        snprintf(path, sizeof(path), "/socket.io/?EIO=4&transport=websocket&roomId=%s%u&participantId=p%u_%u",
                 g.room_prefix, p->room, p->room, p->idx);
    else
        snprintf(path, sizeof(path),
                 "/socket.io/?EIO=4&transport=websocket&sid=%s&roomId=%s%u&participantId=p%u_%u", p->sid,
                 g.room_prefix, p->room, p->room, p->idx);
    char hosthdr[160];
    snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = g.ctx;
    ci.address = host;
    ci.port = port;
    ci.path = path;
    ci.host = hosthdr;
    ci.origin = hosthdr;
    ci.local_protocol_name = "eio";
    ci.userdata = p;
    p->st = P_WS_CONNECTING;
    p->ws = NULL;
    struct lws *w = lws_client_connect_via_info(&ci);
    if (!w && p->st == P_WS_CONNECTING) {
        g.connect_errors++;
        part_lost(p, "ws connect", false);
        return;
    }
    if (p->st == P_WS_CONNECTING) p->ws = w;
}

static void part_connect(struct part *p) {
    p->t_start = now_ns();
    p->sid[0] = '\0';
    p->body_len = 0;
    p->oq_len = 0;
    p->ws = p->http = NULL;
    g.connects++;
    g.inflight++;
    if (g.ws_only) {
        start_ws(p);
        return;
    }
    char path[512];
    int port;
    const char *host = target_host(p, &port);
    snprintf(path, sizeof(path), "/socket.io/?EIO=4&transport=polling&t=lg%llx&roomId=%s%u&participantId=p%u_%u",
             (unsigned long long)(g.connects), g.room_prefix, p->room, p->room, p->idx);
    char hosthdr[160];
    snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = g.ctx;
    ci.address = host;
    ci.port = port;
    ci.path = path;
    ci.host = hosthdr;
    ci.origin = hosthdr;
    ci.method = "GET";
    ci.local_protocol_name = "eio";
    ci.userdata = p;
    p->st = P_HANDSHAKE;
    struct lws *w = lws_client_connect_via_info(&ci);
    if (!w && p->st == P_HANDSHAKE) {
        g.connect_errors++;
        part_lost(p, "http connect", false);
        return;
    }
    if (p->st == P_HANDSHAKE) p->http = w;
}

/* The participant lost its connection (or never got one): back-off, then reconnect. */
static void part_lost(struct part *p, const char *why, bool counted) {
    if (p->st == P_WAIT || p->st == P_DONE) return;
    if (p->st == P_JOINED) {
        if (g.joined) g.joined--;
        if (!g.storm && !g.stopping) {
            g.storm = true;
            g.storm_t0 = now_ns();
            g.storm_lost = 0;
        }
        g.storm_lost++;
    } else if (g.inflight) {
        g.inflight--;
    }
    free(p->rx);
    p->rx = NULL;
    p->rx_len = 0;
    p->ws = p->http = NULL;
    p->oq_len = 0;
    if (g.stopping) {
        p->st = P_DONE;
        return;
    }
    p->st = P_WAIT;
    unsigned base = g.reconnect_ms << (p->attempts < 3 ? p->attempts : 3);
    if (base > 5000) base = 5000;
    double jitter = 0.5 + (double)rand() / RAND_MAX;
    p->due = now_ns() + (uint64_t)(base * jitter * 1e6);
    p->attempts++;
    g.reconnects++;
    (void)why;
}

static int callback_eio(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct part *p = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (!p) break;
        if ((p->st == P_HANDSHAKE && (p->http == wsi || !p->http)) ||
            ((p->st == P_WS_CONNECTING || p->st == P_PROBING) && (p->ws == wsi || !p->ws))) {
            g.connect_errors++;
            if (g.connect_errors <= 5)
                fprintf(stderr, "[loadgen] connection error: %s\n", in ? (const char *)in : "?");
            part_lost(p, "connect error", true);
        }
        break;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (p && p->st == P_HANDSHAKE && p->http == wsi && lws_http_client_http_response(wsi) != 200) {
            g.http_errors++;
            p->http = NULL;
            part_lost(p, "http status", true);
            return -1;
        }
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (p && p->http == wsi && p->body_len + len < sizeof(p->body)) {
            memcpy(p->body + p->body_len, in, len);
            p->body_len += len;
        }
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 1024];
        char *px = buf + LWS_PRE;
        int lenx = sizeof(buf) - LWS_PRE;
        if (lws_http_client_read(wsi, &px, &lenx) < 0) return -1;
        break;
    }
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (!p || p->http != wsi || p->st != P_HANDSHAKE) break;
        p->http = NULL;
        if (p->body_len < 2 || p->body[0] != '0' || !parse_sid(p->body, p->body_len, p->sid, sizeof(p->sid))) {
            g.protocol_errors++;
            part_lost(p, "bad open packet", true);
            return -1;
        }
        g.handshakes_ok++;
        if (g.sids_file) {
            fprintf(g.sids_file, "%s %s%u p%u_%u\n", p->sid, g.room_prefix, p->room, p->room, p->idx);
            p->st = P_DONE;
            if (g.inflight) g.inflight--;
            g.done++;
            h_add(&g.setup, (now_ns() - p->t_start) / 1000);
            return -1;
        }
        start_ws(p);
        return -1; /* close the polling connection */
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (p && p->http == wsi && p->st == P_HANDSHAKE) {
            g.http_errors++;
            part_lost(p, "http closed", true);
        }
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!p || p->st != P_WS_CONNECTING || (p->ws && p->ws != wsi)) break;
        p->ws = wsi;
        p->st = P_PROBING;
        if (!g.ws_only) send_text(p, "2probe");
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!p || p->ws != wsi) break;
        if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi)) {
            on_message(p, in, len);
        } else {
            char *r = realloc(p->rx, p->rx_len + len + 1);
            if (!r) abort();
            p->rx = r;
            memcpy(r + p->rx_len, in, len);
            p->rx_len += len;
            if (lws_is_final_fragment(wsi)) {
                on_message(p, p->rx, p->rx_len);
                free(p->rx);
                p->rx = NULL;
                p->rx_len = 0;
            }
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!p || p->ws != wsi) break;
        return write_one(p, wsi);
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (p && p->ws == wsi) {
            g.ws_closed++;
            part_lost(p, "ws closed", true);
        }
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        /* the one callback every connection gets: a connection that vanished without one of the
         * above (a timeout while connecting) still counts as lost */
        if (!p) break;
        if (p->http == wsi) {
            p->http = NULL;
            if (p->st == P_HANDSHAKE) {
                g.connect_errors++;
                part_lost(p, "http gone", true);
            }
        } else if (p->ws == wsi) {
            p->ws = NULL;
            if (p->st != P_WAIT && p->st != P_DONE) {
                g.ws_closed++;
                part_lost(p, "ws gone", true);
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"eio", callback_eio, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- scheduling ---------------------------------------------------------------------------------- */
static void report_and_stop(void);

static void begin_measure(void) {
    g.measuring = true;
    g.t_measure0 = now_ns();
    g.m_tx_frames = g.tx_frames;
    g.m_rx_frames = g.rx_frames;
    g.watch_ticks0 = watched_ticks();
    getrusage(RUSAGE_SELF, &g.ru0);
    fprintf(stderr, "[loadgen] all %u participants joined; measuring for %.1f s\n", g.total, g.duration_s);
}

static void on_tick(uv_timer_t *t) {
    uint64_t now = now_ns();
    g.tickn++;
    if (g.finished) return;
    /* ramp: start new participants up to the step limit and the concurrency */
    unsigned limit = g.nsteps ? g.steps[g.step_at] : g.total;
    if (now >= g.step_hold_until)
        while (g.next_new < limit && g.inflight < g.concurrency) {
            struct part *p = &g.parts[g.next_new++];
            if (!g.setup_first_ns) g.setup_first_ns = now;
            part_connect(p);
        }
    /* reconnects due */
    for (unsigned i = 0; i < g.next_new && (g.reconnects || g.connect_errors); i++) {
        struct part *p = &g.parts[i];
        if (p->st == P_WAIT && now >= p->due && g.inflight < g.concurrency) part_connect(p);
    }
    /* watchdog: a connection attempt older than 15 s is abandoned (and retried) */
    if (g.tickn % 100 == 0)
        for (unsigned i = 0; i < g.next_new; i++) {
            struct part *p = &g.parts[i];
            if (p->st >= P_HANDSHAKE && p->st <= P_JOINING && now - p->t_start > 15000000000ull) {
                struct lws *w = p->ws ? p->ws : p->http;
                g.connect_errors++;
                part_lost(p, "timeout", true);
                if (w) lws_set_timeout(w, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            }
        }
    if (g.sids_file) {
        if (g.done == g.total) report_and_stop();
        else if (g.ramp_timeout_s > 0 && now - g.t0 > (uint64_t)(g.ramp_timeout_s * 1e9)) report_and_stop();
        return;
    }
    /* host updates, staggered over the interval; participants' occasional events */
    unsigned ticks_per_update = g.update_ms / 10 ? g.update_ms / 10 : 1;
    if (g.update_ms)
        for (unsigned r = g.tickn % ticks_per_update; r < g.rooms; r += ticks_per_update) {
            struct part *h = &g.parts[r * g.per_room];
            if (h->st == P_JOINED) send_kind(h, O_TIME_UPDATE, NULL);
        }
    unsigned ticks_per_event = g.event_ms / 10 ? g.event_ms / 10 : 1;
    if (g.event_ms)
        for (unsigned i = g.tickn % ticks_per_event; i < g.total; i += ticks_per_event) {
            struct part *p = &g.parts[i];
            if (p->idx != 0 && p->st == P_JOINED) send_kind(p, O_EVENT, NULL);
        }
    /* steps (idle tunnels): report each step once all its participants are in */
    if (g.nsteps && g.step_at < g.nsteps && g.joined >= g.steps[g.step_at] && now >= g.step_hold_until) {
        printf("step %u joined %u\n", g.steps[g.step_at], g.joined);
        fflush(stdout);
        fprintf(stderr, "[loadgen] step %u: %u joined, holding %u ms\n", g.steps[g.step_at], g.joined, g.hold_ms);
        g.step_hold_until = now + (uint64_t)g.hold_ms * 1000000;
        if (g.step_at + 1 < g.nsteps) g.step_at++;
        else g.step_at = g.nsteps; /* last: hold, then finish */
    }
    if (!g.t_all_joined && g.initial_joined == g.total) {
        g.t_all_joined = now;
        if (!g.nsteps) begin_measure();
    }
    if (g.nsteps && g.step_at == g.nsteps && now >= g.step_hold_until) {
        if (!g.measuring) begin_measure();
        report_and_stop();
        return;
    }
    if (g.measuring && !g.nsteps && now_ns() - g.t_measure0 >= (uint64_t)(g.duration_s * 1e9)) {
        report_and_stop();
        return;
    }
    if (!g.t_all_joined && g.ramp_timeout_s > 0 && now - g.t0 > (uint64_t)(g.ramp_timeout_s * 1e9)) {
        fprintf(stderr, "[loadgen] ramp timeout: only %u of %u participants joined\n", g.initial_joined, g.total);
        if (!g.measuring) begin_measure();
        report_and_stop();
    }
}

static void on_progress(uv_timer_t *t) {
    if (g.quiet || g.finished) return;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    fprintf(stderr,
            "[loadgen %5.1fs] joined %u/%u, connecting %u, tx %llu rx %llu frames, fan-out p99 %.2f ms, "
            "errors conn %llu http %llu closed %llu proto %llu, cpu %.2f s%s\n",
            (double)(now_ns() - g.t0) / 1e9, g.joined, g.total, g.inflight, (unsigned long long)g.tx_frames,
            (unsigned long long)g.rx_frames, (double)h_pct(&g.fanout, 99) / 1000.0,
            (unsigned long long)g.connect_errors, (unsigned long long)g.http_errors,
            (unsigned long long)g.ws_closed, (unsigned long long)g.protocol_errors, cpu,
            g.storm ? " [reconnect storm]" : "");
}

/* Rooms whose joined participants reached different pods (affinity broken). */
static unsigned split_rooms(void) {
    unsigned split = 0;
    for (unsigned r = 0; r < g.rooms; r++) {
        const char *first = NULL;
        for (unsigned i = 0; i < g.per_room; i++) {
            struct part *p = &g.parts[r * g.per_room + i];
            if (p->st != P_JOINED || !p->pod[0]) continue;
            if (!first) first = p->pod;
            else if (strcmp(first, p->pod) != 0) {
                split++;
                break;
            }
        }
    }
    return split;
}

static FILE *tsv;
static void row(const char *key, const char *label, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void row(const char *key, const char *label, const char *fmt, ...) {
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    printf("  %-40s %s\n", label, v);
    if (tsv) fprintf(tsv, "%s\t%s\n", key, v);
}

static void report_and_stop(void) {
    if (g.finished) return;
    g.finished = true;
    g.t_measure1 = now_ns();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t wt1 = watched_ticks();
    double win = (double)(g.t_measure1 - g.t_measure0) / 1e9;
    double cpu_all = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                     ru.ru_stime.tv_usec / 1e6;
    double cpu_win = cpu_all - ((double)g.ru0.ru_utime.tv_sec + g.ru0.ru_utime.tv_usec / 1e6 +
                                (double)g.ru0.ru_stime.tv_sec + g.ru0.ru_stime.tv_usec / 1e6);
    uint64_t frames = (g.tx_frames - g.m_tx_frames) + (g.rx_frames - g.m_rx_frames);
    if (g.tsv_path) tsv = fopen(g.tsv_path, "w");
    printf("loadgen results (%s mode, %s)\n", g.mode, g.ws_only ? "websocket-only" : "polling then websocket");
    row("target", "target", "%s%s", g.targets[0], g.ntargets > 1 ? " (+more)" : "");
    row("participants", "participants (rooms x per room)", "%u (%u x %u)", g.total, g.rooms, g.per_room);
    row("joined", "joined at the end", "%u", g.sids_file ? g.done : g.joined);
    double ramp_s = g.setup_last_ns > g.setup_first_ns ? (double)(g.setup_last_ns - g.setup_first_ns) / 1e9 : 0;
    row("setup_rate", "connection setup rate (conn/s)", "%.0f", ramp_s > 0 ? g.initial_joined / ramp_s : 0);
    row("setup_p50_ms", "setup latency p50 (ms)", "%.2f", h_pct(&g.setup, 50) / 1000.0);
    row("setup_p99_ms", "setup latency p99 (ms)", "%.2f", h_pct(&g.setup, 99) / 1000.0);
    if (!g.sids_file) {
        row("fanout_count", "fan-out deliveries measured", "%llu", (unsigned long long)g.fanout.count);
        row("fanout_p50_ms", "fan-out latency p50 (ms)", "%.3f", h_pct(&g.fanout, 50) / 1000.0);
        row("fanout_p99_ms", "fan-out latency p99 (ms)", "%.3f", h_pct(&g.fanout, 99) / 1000.0);
        row("fanout_p999_ms", "fan-out latency p99.9 (ms)", "%.3f", h_pct(&g.fanout, 99.9) / 1000.0);
        row("fanout_max_ms", "fan-out latency max (ms)", "%.3f", g.fanout.max / 1000.0);
        row("window_s", "measurement window (s)", "%.2f", win);
        row("frames_window", "ws frames sent+received in window", "%llu", (unsigned long long)frames);
        row("frames_per_s", "ws frames per second", "%.0f", win > 0 ? frames / win : 0);
        row("events_rx", "other events received", "%llu", (unsigned long long)g.events_rx);
    }
    row("errors", "errors (connect/http/ws closed/protocol)", "%llu/%llu/%llu/%llu",
        (unsigned long long)g.connect_errors, (unsigned long long)g.http_errors, (unsigned long long)g.ws_closed,
        (unsigned long long)g.protocol_errors);
    row("errors_total", "errors total", "%llu",
        (unsigned long long)(g.connect_errors + g.http_errors + g.ws_closed + g.protocol_errors));
    row("split_rooms", "rooms split over pods", "%u", split_rooms());
    row("storms", "reconnect storms (all back)", "%u%s", g.storms, g.storm ? " (+1 unfinished)" : "");
    row("storm_ms", "last storm: time until all back (ms)", "%llu", (unsigned long long)g.storm_last_ms);
    row("storm_lost", "last storm: participants lost", "%u", g.storm_lost_last);
    row("loadgen_cpu_s", "loadgen cpu, whole run (s)", "%.2f", cpu_all);
    row("loadgen_cpu_pct", "loadgen cpu in window (% of a core)", "%.1f", win > 0 ? 100.0 * cpu_win / win : 0);
    if (g.nwatch) {
        double ticks = (double)(wt1 - g.watch_ticks0), hz = (double)sysconf(_SC_CLK_TCK);
        row("watched_cpu_s", "watched processes cpu in window (s)", "%.3f", ticks / hz);
        row("watched_cpu_pct", "watched processes cpu (% of a core)", "%.1f", win > 0 ? 100.0 * ticks / hz / win : 0);
        if (frames)
            row("watched_cpu_us_per_frame", "watched cpu per ws frame (us)", "%.2f", ticks / hz * 1e6 / (double)frames);
    }
    fflush(stdout);
    if (tsv) fclose(tsv);
    if (g.cdf_path && g.fanout.count) {
        FILE *f = fopen(g.cdf_path, "w");
        if (f) {
            uint64_t seen = 0;
            fprintf(f, "# fan-out latency (ms)\tcumulative fraction\n");
            for (unsigned i = 0; i < H_BUCKETS; i++)
                if (g.fanout.n[i]) {
                    seen += g.fanout.n[i];
                    fprintf(f, "%.4f\t%.6f\n", h_value(i) / 1000.0, (double)seen / (double)g.fanout.count);
                }
            fclose(f);
        }
    }
    g.stopping = true;
    uv_timer_stop(&g.tick);
    uv_timer_stop(&g.progress);
    uv_close((uv_handle_t *)&g.tick, NULL);
    uv_close((uv_handle_t *)&g.progress, NULL);
    uv_close((uv_handle_t *)&g.sigint, NULL);
    lws_context_destroy(g.ctx); /* first call: closes the connections on the running loop */
}

static void on_sigint(uv_signal_t *s, int sig) {
    fprintf(stderr, "[loadgen] signal %d: reporting now\n", sig);
    if (!g.measuring) begin_measure();
    report_and_stop();
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench-loadgen --target HOST:PORT[,HOST:PORT...] [options]\n"
            "  --mode rooms|sids        rooms: simulated rooms (default); sids: polling handshakes only\n"
            "  --rooms R --per-room P   participants = R x P (default 10 x 10); participant 0 hosts\n"
            "  --namespace /experiment  Socket.IO namespace\n"
            "  --ws-only                WebSocket-only clients (no polling handshake)\n"
            "  --update-ms 100          host's exp:time-update interval (0: none)\n"
            "  --event-ms 5000          each participant's exp:event interval (0: none)\n"
            "  --duration S             measurement seconds after everyone joined (default 10)\n"
            "  --concurrency N          connection attempts in flight (default 200)\n"
            "  --reconnect-ms 1000      reconnection delay (x [0.5,1.5], doubling, max 5 s)\n"
            "  --steps N,M --hold-ms T  join N, print \"step N\", hold T ms, then M...; then report\n"
            "  --ramp-timeout S         give up waiting for joins after S seconds (default 60)\n"
            "  --room-prefix room_lg    room ids are <prefix><r>\n"
            "  --update-event NAME      the host's timed event (default exp:time-update; room-msg for\n"
            "                           examples/backend, which re-emits it with the payload inside)\n"
            "  --watch-pid PID[,PID]    report these processes' CPU over the window (per ws frame)\n"
            "  --tsv FILE --cdf FILE    results as key/value lines; fan-out latency CDF\n"
            "  --sids-out FILE          sids mode: \"sid roomId participantId\" lines\n"
            "  --quiet                  no progress lines\n");
}

static unsigned parse_list(const char *s, unsigned *out, unsigned max) {
    unsigned n = 0;
    while (*s && n < max) {
        out[n++] = (unsigned)strtoul(s, (char **)&s, 10);
        if (*s == ',') s++;
        else break;
    }
    return n;
}

int main(int argc, char **argv) {
    static char targets_buf[1024];
    g.mode = "rooms";
    g.ns = "/experiment";
    g.rooms = 10;
    g.per_room = 10;
    g.update_ms = 100;
    g.event_ms = 5000;
    g.reconnect_ms = 1000;
    g.concurrency = 200;
    g.duration_s = 10;
    g.ramp_timeout_s = 60;
    g.hold_ms = 3000;
    g.room_prefix = "room_lg";
    g.update_event = "exp:time-update";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (strcmp(a, "--ws-only") == 0) g.ws_only = true;
        else if (strcmp(a, "--quiet") == 0) g.quiet = true;
        else if (strcmp(a, "--help") == 0) { usage(); return 0; }
        else if (OPT("--target")) {
            snprintf(targets_buf, sizeof(targets_buf), "%s", v);
            for (char *t = strtok(targets_buf, ","); t && g.ntargets < 8; t = strtok(NULL, ","))
                g.targets[g.ntargets++] = t;
        } else if (OPT("--mode")) g.mode = v;
        else if (OPT("--rooms")) g.rooms = (unsigned)atoi(v);
        else if (OPT("--per-room")) g.per_room = (unsigned)atoi(v);
        else if (OPT("--namespace")) g.ns = v;
        else if (OPT("--update-ms")) g.update_ms = (unsigned)atoi(v);
        else if (OPT("--event-ms")) g.event_ms = (unsigned)atoi(v);
        else if (OPT("--duration")) g.duration_s = atof(v);
        else if (OPT("--concurrency")) g.concurrency = (unsigned)atoi(v);
        else if (OPT("--reconnect-ms")) g.reconnect_ms = (unsigned)atoi(v);
        else if (OPT("--steps")) g.nsteps = parse_list(v, g.steps, 16);
        else if (OPT("--hold-ms")) g.hold_ms = (unsigned)atoi(v);
        else if (OPT("--ramp-timeout")) g.ramp_timeout_s = atof(v);
        else if (OPT("--room-prefix")) g.room_prefix = v;
        else if (OPT("--update-event")) g.update_event = v;
        else if (OPT("--tsv")) g.tsv_path = v;
        else if (OPT("--cdf")) g.cdf_path = v;
        else if (OPT("--sids-out")) g.sids_out = v;
        else if (OPT("--watch-pid")) {
            unsigned tmp[8];
            unsigned n = parse_list(v, tmp, 8);
            for (unsigned k = 0; k < n; k++) g.watch_pids[g.nwatch++] = (int)tmp[k];
        } else {
            fprintf(stderr, "bench-loadgen: unknown or incomplete option %s\n", a);
            usage();
            return 2;
        }
    }
    if (!g.ntargets || !g.rooms || !g.per_room) {
        usage();
        return 2;
    }
    g.total = g.rooms * g.per_room;
    if (g.nsteps && g.steps[g.nsteps - 1] > g.total) g.steps[g.nsteps - 1] = g.total;
    if (strcmp(g.mode, "sids") == 0) {
        if (!g.sids_out) {
            fprintf(stderr, "bench-loadgen: --mode sids needs --sids-out FILE\n");
            return 2;
        }
        g.sids_file = fopen(g.sids_out, "w");
        if (!g.sids_file) {
            perror(g.sids_out);
            return 1;
        }
        g.ws_only = false;
    } else if (strcmp(g.mode, "rooms") != 0) {
        usage();
        return 2;
    }
    if (strcmp(g.ns, "/") == 0) snprintf(ns_connect, sizeof(ns_connect), "40");
    else snprintf(ns_connect, sizeof(ns_connect), "40%s,", g.ns);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != RLIM_INFINITY && g.total + 64 > rl.rlim_cur)
            fprintf(stderr, "[loadgen] warning: %u participants need about %u fds; the limit is %llu\n", g.total,
                    g.total + 64, (unsigned long long)rl.rlim_cur);
    }
    srand((unsigned)uv_hrtime());
    g.parts = calloc(g.total, sizeof(*g.parts));
    if (!g.parts) abort();
    for (unsigned i = 0; i < g.total; i++) {
        g.parts[i].room = i / g.per_room;
        g.parts[i].idx = i % g.per_room;
    }
    lws_set_log_level(LLL_ERR, NULL);
    g.loop = malloc(sizeof(*g.loop));
    uv_loop_init(g.loop);
    void *foreign[1] = {g.loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = foreign;
    info.fd_limit_per_thread = (unsigned)(rl.rlim_cur > 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 20000);
    info.max_http_header_pool = (unsigned short)(g.concurrency + 16);
    info.timeout_secs = 20;
    info.connect_timeout_secs = 10;
    info.gid = -1;
    info.uid = -1;
    g.ctx = lws_create_context(&info);
    if (!g.ctx) {
        fprintf(stderr, "bench-loadgen: lws_create_context failed (is the libwebsockets libuv plugin installed?)\n");
        return 1;
    }
    g.t0 = now_ns();
    uv_timer_init(g.loop, &g.tick);
    uv_timer_start(&g.tick, on_tick, 10, 10);
    uv_timer_init(g.loop, &g.progress);
    uv_timer_start(&g.progress, on_progress, 1000, 1000);
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_start(&g.sigint, on_sigint, SIGINT);
    uv_run(g.loop, UV_RUN_DEFAULT);
    lws_context_destroy(g.ctx); /* second call: frees what the loop closed (with a foreign loop) */
    uv_loop_close(g.loop);
    free(g.loop);
    if (g.sids_file) fclose(g.sids_file);
    unsigned joined = g.sids_file ? g.done : g.initial_joined;
    free(g.parts);
    return joined == g.total ? 0 : 3;
}
