/* The request exchange state machine (exchange.c, proxy.c, respond.c, route.c, tunnel.c)
 * driven through its handler tables over the in-memory transports of fake_transport.c:
 * "the client sends" runs the client transport's input loop into c->h, "the pod answers"
 * calls u->h with bytes chosen here. Routing uses the memory store and a registry of two
 * pods. No sockets, no threads (issue 12, point 2). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fake_transport.h"

static const char *const pods[] = {"backend-0", "backend-1"};

static void setup(void)
{
    fake_world_init(pods, 2);
}

static void teardown(void)
{
    fake_world_fini();
}

TestSuite(exchange, .init = setup, .fini = teardown);

/* The number of times needle occurs in s. */
static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static bool has(const char *s, const char *needle)
{
    return strstr(s, needle) != NULL;
}

/* The client's request reached a new pod connection, which connects now. */
static struct fake_upstream *connect_pod(size_t expect_count)
{
    cr_assert_eq(fake_upstream_count(), expect_count, "pod connections: %zu",
                 fake_upstream_count());
    struct fake_upstream *fu = fake_upstream_last();
    cr_assert_eq(fu->u.state, PR_U_CONNECTING);
    cr_assert_str_empty(fake_pod_out(fu), "nothing is sent before the connection is up");
    fake_upstream_connected(fu);
    return fu;
}

#define OK_RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"

Test(exchange, get_forwarded_and_relayed_keep_alive)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /a?roomId=r1 HTTP/1.1\r\nHost: example.org\r\n"
                          "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
                          "Keep-Alive: timeout=5\r\nTE: trailers\r\n"
                          "X-Forwarded-For: 198.51.100.1\r\nAccept: */*\r\n\r\n");
    cr_assert_eq(fc->c.state, PR_C_ROUTING);
    struct fake_upstream *fu = connect_pod(1);
    cr_assert_eq(fc->c.state, PR_C_PROXYING);
    const char *req = fake_pod_out(fu);
    cr_assert(has(req, "GET /a?roomId=r1 HTTP/1.1\r\n"), "%s", req);
    cr_assert(has(req, "Host: example.org\r\n"), "%s", req);
    cr_assert(has(req, "Accept: */*\r\n"), "%s", req);
    cr_assert(has(req, "X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n"), "%s", req);
    cr_assert_eq(count(req, "X-Request-Id: "), 1, "%s", req);
    cr_assert(!has(req, "X-Secret"), "Connection-listed header forwarded: %s", req);
    cr_assert(!has(req, "Keep-Alive"), "hop-by-hop header forwarded: %s", req);
    cr_assert(!has(req, "TE:"), "hop-by-hop header forwarded: %s", req);
    cr_assert(!has(req, "Connection: keep-alive"), "%s", req);
    cr_assert_str_eq(fake_client_out(fc), "", "the client got bytes before the pod answered");

    fake_pod_sends(fu, OK_RESPONSE);
    const char *resp = fake_client_out(fc);
    cr_assert(has(resp, "HTTP/1.1 200 OK\r\n"), "%s", resp);
    char pod_hdr[64];
    snprintf(pod_hdr, sizeof(pod_hdr), "X-Pod-Router-Pod: %s\r\n", fake_pool_name(fu));
    cr_assert(has(resp, pod_hdr), "%s", resp);
    cr_assert(has(resp, "\r\n\r\nhello"), "%s", resp);
    cr_assert(!has(resp, "Connection: close"), "%s", resp);
    /* keep-alive both ways: the pod connection is pooled, the client waits for more */
    cr_assert_eq(fu->reusable_releases, 1);
    cr_assert_eq(fu->closes, 0);
    cr_assert_eq(fu->u.state, PR_U_IDLE);
    cr_assert_eq(fc->c.state, PR_C_IDLE);
    cr_assert_null(fc->c.x, "an idle connection owns no exchange");
    cr_assert(!fc->c.closing && fc->c.reading);

    /* the next request of the room reuses the pooled connection */
    fake_client_sends(fc, "GET /b?roomId=r1 HTTP/1.1\r\nHost: example.org\r\n\r\n");
    cr_assert_eq(fake_upstream_count(), 1);
    cr_assert_eq(fu->u.state, PR_U_ACTIVE);
    cr_assert(fu->u.reused);
}

/* Where needle first occurs in s (-1: nowhere). */
static long at(const char *s, const char *needle)
{
    const char *p = strstr(s, needle);
    return p ? (long)(p - s) : -1;
}

Test(exchange, pipelined_requests_one_at_a_time_in_order)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /first?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n"
                          "GET /second?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    cr_assert(has(fake_pod_out(fu), "GET /first?"), "%s", fake_pod_out(fu));
    cr_assert(!has(fake_pod_out(fu), "/second"), "the second request reached the pod before "
              "the first response: %s", fake_pod_out(fu));
    cr_assert_gt(pr__client_waiting(&fc->c), 0, "the second request waits in the input buffer");

    /* the first response in two reads: still nothing of the second request */
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfir");
    cr_assert(!has(fake_pod_out(fu), "/second"), "%s", fake_pod_out(fu));
    fake_pod_sends(fu, "st1");
    /* complete: the pod connection went back to the pool and the second request took it */
    cr_assert_eq(fu->reusable_releases, 1);
    cr_assert_eq(fake_upstream_count(), 1, "the second request opened a new connection");
    cr_assert(has(fake_pod_out(fu), "GET /second?"), "%s", fake_pod_out(fu));
    cr_assert_eq(count(fake_pod_out(fu), "GET "), 2);
    cr_assert_eq(fc->c.state, PR_C_PROXYING);
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsecond2");

    const char *out = fake_client_out(fc);
    cr_assert_eq(count(out, "HTTP/1.1 200 OK\r\n"), 2, "%s", out);
    long first = at(out, "\r\n\r\nfirst1"), second = at(out, "\r\n\r\nsecond2");
    cr_assert(first > 0 && second > 0, "%s", out);
    cr_assert_lt(first, second, "answers out of order: %s", out);
    /* the second head starts right after the first body */
    cr_assert_eq(at(out + first + 10, "HTTP/1.1 200 OK\r\n"), 0, "%s", out);
    cr_assert_eq(fu->reusable_releases, 2);
    cr_assert_eq(fc->c.state, PR_C_IDLE);
    cr_assert_eq(pr__client_waiting(&fc->c), 0);
}

Test(exchange, interim_100_continue_to_http11_client)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "POST /up?roomId=r1 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                          "Content-Length: 4\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, "HTTP/1.1 100 Continue\r\n\r\n");
    cr_assert_str_eq(fake_client_out(fc), "HTTP/1.1 100 Continue\r\n\r\n");
    fake_client_sends(fc, "data");
    cr_assert(has(fake_pod_out(fu), "\r\n\r\ndata"), "%s", fake_pod_out(fu));
    /* a second interim head and the final one in one read */
    fake_pod_sends(fu, "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                       "\r\nok");
    const char *out = fake_client_out(fc);
    cr_assert_eq(count(out, "HTTP/1.1 100 Continue\r\n"), 1, "%s", out);
    cr_assert_eq(count(out, "HTTP/1.1 102 Processing\r\n"), 1, "%s", out);
    cr_assert_lt(at(out, "102 Processing"), at(out, "200 OK"), "%s", out);
    cr_assert(has(out, "X-Pod-Router-Pod: "), "%s", out);
    cr_assert(has(out, "\r\n\r\nok"), "%s", out);
    cr_assert_eq(count(out, "X-Pod-Router-Pod: "), 1, "interim heads are relayed as they are");
    cr_assert_eq(fu->reusable_releases, 1);
    cr_assert_eq(fc->c.state, PR_C_IDLE);
}

Test(exchange, interim_never_to_http10_client)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /old?roomId=r1 HTTP/1.0\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    cr_assert(has(fake_pod_out(fu), "GET /old?roomId=r1 HTTP/1.1\r\n"), "%s", fake_pod_out(fu));
    fake_pod_sends(fu, "HTTP/1.1 100 Continue\r\n\r\n");
    cr_assert_str_empty(fake_client_out(fc), "an interim head reached an HTTP/1.0 client");
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nold");
    const char *out = fake_client_out(fc);
    cr_assert(!has(out, "100 Continue"), "%s", out);
    cr_assert_eq(at(out, "HTTP/1.1 200 OK\r\n"), 0, "%s", out);
    cr_assert(has(out, "Connection: close\r\n"), "%s", out);
    cr_assert(has(out, "\r\n\r\nold"), "%s", out);
    cr_assert(fc->c.closing, "an HTTP/1.0 connection closes after its response");
}

#define UPGRADE_REQ                                                                            \
    "GET /socket.io/?EIO=4&transport=websocket&roomId=r1 HTTP/1.1\r\nHost: h\r\n"              \
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"               \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
#define UPGRADE_RESP                                                                           \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"       \
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

Test(exchange, upgrade_101_swaps_tables_and_relays_both_ways)
{
    struct fake_client *fc = fake_client_new();
    /* a frame right behind the upgrade request, in the same read */
    fake_client_sends(fc, UPGRADE_REQ "early");
    struct fake_upstream *fu = connect_pod(1);
    const char *req = fake_pod_out(fu);
    cr_assert(has(req, "Upgrade: websocket\r\n"), "%s", req);
    cr_assert(has(req, "Connection: Upgrade\r\n") || has(req, "Connection: upgrade\r\n"), "%s",
              req);
    cr_assert(!has(req, "early"), "tunnel bytes reached the pod before its 101: %s", req);
    cr_assert(fc->c.h == &pr__http_client_handlers);

    fake_pod_sends(fu, UPGRADE_RESP "\x81\x02hi");
    const char *out = fake_client_out(fc);
    cr_assert_eq(at(out, "HTTP/1.1 101 Switching Protocols\r\n"), 0, "%s", out);
    cr_assert(has(out, "X-Pod-Router-Pod: "), "%s", out);
    size_t ol = strlen(out);
    cr_assert(ol > 4 && memcmp(out + ol - 4, "\x81\x02hi", 4) == 0, "the pod's first frame: %s",
              out);
    /* the tunnel owns both connections now; the exchange is gone */
    cr_assert(fc->c.h != &pr__http_client_handlers, "client table not swapped");
    cr_assert(fu->u.h != &pr__proxy_upstream_handlers, "pod table not swapped");
    cr_assert_null(fc->c.x);
    cr_assert(has(fake_pod_out(fu), "\r\n\r\nearly"), "early bytes lost: %s", fake_pod_out(fu));

    fake_pod_out_clear(fu);
    fake_client_out_clear(fc);
    fake_client_sends(fc, "GET / HTTP/1.1\r\n\r\n"); /* tunnel bytes, not a request */
    cr_assert_str_eq(fake_pod_out(fu), "GET / HTTP/1.1\r\n\r\n");
    cr_assert_str_empty(fake_client_out(fc));
    fake_pod_sends(fu, "\x81\x03yes");
    cr_assert_str_eq(fake_client_out(fc), "\x81\x03yes");
    cr_assert_eq(fu->releases, 0);

    /* the pod closes: the client closes too (nothing queued for it) */
    fake_pod_eof(fu);
    cr_assert_eq(fu->closes, 1);
    cr_assert(fc->c.closing);
}

Test(exchange, pod_closes_before_its_head_502)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /x?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Le");
    fake_pod_eof(fu);
    const char *out = fake_client_out(fc);
    cr_assert_eq(at(out, "HTTP/1.1 502 Bad Gateway\r\n"), 0, "%s", out);
    cr_assert(has(out, "\"error\":\"upstream_unavailable\""), "%s", out);
    cr_assert(!has(out, "200 OK"), "%s", out);
    cr_assert_eq(fu->closes, 1);
    cr_assert_eq(fu->reusable_releases, 0);
    cr_assert_eq(fake_upstream_count(), 1, "a fresh connection is not retried");
}

Test(exchange, stale_pooled_connection_retried_once_with_whole_request)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /a?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, OK_RESPONSE);
    fake_client_out_clear(fc);
    fake_client_sends(fc, "POST /b?roomId=r1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody");
    cr_assert(fu->u.reused);
    cr_assert(has(fake_pod_out(fu), "POST /b"));
    fake_pod_eof(fu); /* the pod had closed the pooled connection: no byte of an answer */
    cr_assert_eq(fu->closes, 1);
    cr_assert_str_empty(fake_client_out(fc), "a stale connection is retried, not reported");
    struct fake_upstream *fresh = connect_pod(2);
    cr_assert(has(fake_pod_out(fresh), "POST /b?roomId=r1 HTTP/1.1\r\n"));
    cr_assert(has(fake_pod_out(fresh), "\r\n\r\nbody"), "the body was not replayed: %s",
              fake_pod_out(fresh));
    cr_assert_eq(fresh->sends, 1, "the retried head and its body in %d writes", fresh->sends);
    fake_pod_sends(fresh, OK_RESPONSE);
    cr_assert_eq(at(fake_client_out(fc), "HTTP/1.1 200 OK"), 0);
}

/* A POST whose body came with its head (a polling POST) reaches the pod in one write; a
 * body that comes later follows the head in its own. */
Test(exchange, body_with_the_head_leaves_in_the_same_write)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "POST /socket.io/?roomId=r1 HTTP/1.1\r\nHost: h\r\n"
                          "Content-Length: 4\r\n\r\nbody");
    struct fake_upstream *fu = connect_pod(1);
    cr_assert_eq(fu->sends, 1, "head and body in %d writes", fu->sends);
    cr_assert(has(fake_pod_out(fu), "POST /socket.io/?roomId=r1 HTTP/1.1\r\n"));
    cr_assert(has(fake_pod_out(fu), "\r\n\r\nbody"), "%s", fake_pod_out(fu));
    fake_pod_sends(fu, OK_RESPONSE);
    cr_assert_eq(at(fake_client_out(fc), "HTTP/1.1 200 OK"), 0);
    /* Next request on the same connections: the head first, its body when it comes. */
    fake_client_out_clear(fc);
    fake_client_sends(fc, "POST /b?roomId=r1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
    cr_assert(fu->u.reused);
    cr_assert_eq(fu->sends, 2);
    cr_assert(has(fake_pod_out(fu), "POST /b?roomId=r1"), "the head waits for no body");
    fake_client_sends(fc, "xyz");
    cr_assert_eq(fu->sends, 3);
    cr_assert(has(fake_pod_out(fu), "\r\n\r\nxyz"), "%s", fake_pod_out(fu));
    fake_pod_sends(fu, OK_RESPONSE);
    cr_assert_eq(fu->reusable_releases, 2);
    /* A polling POST on the pooled connection: the pod is chosen while its head is parsed
     * (no connect, no store round trip), and the body bytes of the same read still go with
     * the head, not in a write of their own. */
    fake_client_out_clear(fc);
    fake_client_sends(fc, "POST /c?roomId=r1 HTTP/1.1\r\nHost: h\r\n"
                          "Content-Length: 5\r\n\r\nhello");
    cr_assert_eq(fake_upstream_count(), 1, "the pooled connection was used");
    cr_assert_eq(fu->sends, 4, "head and body of a pooled request in %d writes", fu->sends - 3);
    cr_assert(has(fake_pod_out(fu), "POST /c?roomId=r1"), "%s", fake_pod_out(fu));
    cr_assert(has(fake_pod_out(fu), "\r\n\r\nhello"), "%s", fake_pod_out(fu));
    fake_pod_sends(fu, OK_RESPONSE);
    cr_assert_eq(at(fake_client_out(fc), "HTTP/1.1 200 OK"), 0);
    cr_assert_eq(fu->reusable_releases, 3);
}

Test(exchange, pod_closes_mid_body_client_closed)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /x?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    cr_assert(has(fake_client_out(fc), "\r\n\r\nhello"));
    cr_assert(!fc->c.closing);
    fake_pod_eof(fu);
    cr_assert(fc->c.closing, "a truncated response must not leave the client connection open");
    cr_assert_eq(fc->closes, 1);
    cr_assert_eq(fu->closes, 1);
    cr_assert_eq(fu->reusable_releases, 0);
    cr_assert(!has(fake_client_out(fc), "502"), "the head was sent: no error response after it");
}

Test(exchange, pod_closes_after_eof_delimited_body_ends_exchange)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /x?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\n\r\nuntil-eof");
    cr_assert(has(fake_client_out(fc), "Connection: close\r\n"), "%s", fake_client_out(fc));
    fake_pod_eof(fu);
    cr_assert(has(fake_client_out(fc), "\r\n\r\nuntil-eof"));
    cr_assert_eq(fu->reusable_releases, 0);
    cr_assert(fc->c.closing, "an EOF-delimited response closes the client connection");
}

Test(exchange, client_leaves_mid_request_pod_not_reused)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "POST /x?roomId=r1 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
                          "12345");
    struct fake_upstream *fu = connect_pod(1);
    cr_assert(has(fake_pod_out(fu), "\r\n\r\n12345"), "%s", fake_pod_out(fu));
    fake_client_eof(fc);
    cr_assert_eq(fu->closes, 1, "a pod connection with half a request must be closed");
    cr_assert_eq(fu->reusable_releases, 0);
    cr_assert_eq(fu->u.state, PR_U_CLOSING);
    cr_assert_null(fc->c.up);
}

Test(exchange, client_leaves_mid_response_pod_not_reused)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /x?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel");
    fake_client_eof(fc);
    cr_assert_eq(fu->closes, 1);
    cr_assert_eq(fu->reusable_releases, 0);
}

Test(exchange, client_leaves_while_connecting_connection_pooled_later)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /x?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = fake_upstream_last();
    cr_assert_not_null(fu);
    fake_client_eof(fc);
    cr_assert_null(fu->u.client, "the connecting pod connection still points at the client");
    fake_upstream_connected(fu);
    cr_assert_str_empty(fake_pod_out(fu), "a request of a client that left was sent");
    cr_assert_eq(fu->u.state, PR_U_IDLE);
}

#define HANDSHAKE_REQ "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: h\r\n\r\n"
#define OPEN_BODY                                                                              \
    "0{\"sid\":\"abcDEF123\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"            \
    "\"pingTimeout\":20000,\"maxPayload\":1000000}"

static void send_open(struct fake_upstream *fu)
{
    char resp[512];
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(OPEN_BODY), OPEN_BODY);
    fake_pod_sends(fu, resp);
}

Test(exchange, handshake_refused_retried_on_other_pod)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, HANDSHAKE_REQ);
    struct fake_upstream *first = fake_upstream_last();
    cr_assert_not_null(first);
    fake_upstream_connect_failed(first, UV_ECONNREFUSED);
    cr_assert_str_empty(fake_client_out(fc), "a refused handshake is retried, not reported");
    struct fake_upstream *second = connect_pod(2);
    cr_assert_str_neq(fake_pool_name(first), fake_pool_name(second),
                      "the retry went to the pod that refused");
    cr_assert(has(fake_pod_out(second), "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"));
    send_open(second);
    const char *out = fake_client_out(fc);
    char pod_hdr[64];
    snprintf(pod_hdr, sizeof(pod_hdr), "X-Pod-Router-Pod: %s\r\n", fake_pool_name(second));
    cr_assert(has(out, pod_hdr), "%s", out);
    cr_assert(has(out, OPEN_BODY), "%s", out);
}

Test(exchange, pinned_sid_refused_is_not_moved_502)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, HANDSHAKE_REQ);
    struct fake_upstream *fu = connect_pod(1);
    send_open(fu);
    fake_client_out_clear(fc);
    /* the session's next poll; its pod refuses: a session cannot move (SPEC 3.3) */
    fake_client_sends(fc, "GET /socket.io/?EIO=4&transport=polling&sid=abcDEF123 HTTP/1.1\r\n"
                          "Host: h\r\n\r\n");
    cr_assert_eq(fu->u.state, PR_U_ACTIVE, "the sid went to another pod's connection");
    cr_assert(has(fake_pod_out(fu), "sid=abcDEF123"));
    /* a refused connect for the sid: a fresh connection is needed, make the pool empty */
    fake_pod_eof(fu); /* reused, no bytes: retried once on a fresh connection */
    struct fake_upstream *fresh = fake_upstream_last();
    cr_assert_neq(fresh, fu);
    cr_assert_str_eq(fake_pool_name(fresh), fake_pool_name(fu));
    fake_upstream_connect_failed(fresh, UV_ECONNREFUSED);
    const char *out = fake_client_out(fc);
    cr_assert_eq(at(out, "HTTP/1.1 502 Bad Gateway\r\n"), 0, "%s", out);
    cr_assert(has(out, "upstream_unavailable"), "%s", out);
    cr_assert_eq(fake_upstream_count(), 2);
}

Test(exchange, backpressure_client_full_pauses_pod)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /big?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fc->full = true; /* the client's socket takes nothing more */
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npart");
    cr_assert(fc->c.writing);
    cr_assert(!fu->u.reading, "the pod is still read while the client takes nothing");
    cr_assert(has(fake_client_out(fc), "\r\n\r\npart"));
    fake_client_drain(fc);
    cr_assert(fu->u.reading, "the pod is not read again after on_drained");
    fake_pod_sends(fu, "rest");
    cr_assert(has(fake_client_out(fc), "\r\n\r\npartrest"));
    cr_assert_eq(fu->reusable_releases, 1);
    cr_assert_eq(fc->c.state, PR_C_IDLE);
}

Test(exchange, backpressure_pod_full_holds_request_body)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "POST /up?roomId=r1 HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n");
    struct fake_upstream *fu = fake_upstream_last();
    fu->full = true; /* the pod's socket takes nothing: the head is queued */
    fake_upstream_connected(fu);
    cr_assert(fu->u.writing);
    fake_client_sends(fc, "abcd");
    cr_assert(!has(fake_pod_out(fu), "abcd"), "body sent while the pod takes nothing: %s",
              fake_pod_out(fu));
    fake_pod_drain(fu);
    cr_assert(has(fake_pod_out(fu), "\r\n\r\nabcd"), "%s", fake_pod_out(fu));
    fake_client_sends(fc, "efgh");
    cr_assert(has(fake_pod_out(fu), "\r\n\r\nabcdefgh"), "%s", fake_pod_out(fu));
    fake_pod_sends(fu, OK_RESPONSE);
    cr_assert_eq(fu->reusable_releases, 1);
}

Test(exchange, backpressure_in_tunnel_both_ways)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, UPGRADE_REQ);
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, UPGRADE_RESP);
    fc->full = true;
    fake_pod_sends(fu, "frame1");
    cr_assert(!fu->u.reading, "tunnel: pod read while the client takes nothing");
    fake_client_drain(fc);
    cr_assert(fu->u.reading);
    fu->full = true;
    fake_client_sends(fc, "up1");
    cr_assert(!fc->c.reading, "tunnel: client read while the pod takes nothing");
    fake_pod_drain(fu);
    cr_assert(fc->c.reading);
    fake_client_sends(fc, "up2");
    cr_assert_str_eq(fake_pod_out(fu) + at(fake_pod_out(fu), "\r\n\r\n") + 4, "up1up2");
}

Test(exchange, sid_pin_holds_handshake_until_stored)
{
    fake_store_defer_sid_pins(true);
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, HANDSHAKE_REQ);
    struct fake_upstream *fu = connect_pod(1);
    send_open(fu);
    cr_assert_eq(fake_store_pending(), 1, "the sid was not pinned");
    cr_assert_str_empty(fake_client_out(fc), "the client got the sid before it was stored: %s",
                        fake_client_out(fc));
    cr_assert_eq(fu->releases, 0);
    fake_store_flush();
    const char *out = fake_client_out(fc);
    cr_assert_eq(at(out, "HTTP/1.1 200 OK\r\n"), 0, "%s", out);
    cr_assert(has(out, "\r\n\r\n" OPEN_BODY), "%s", out);
    cr_assert_eq(count(out, "HTTP/1.1"), 1, "%s", out);
    cr_assert_eq(fu->reusable_releases, 1);
    cr_assert_eq(fc->c.state, PR_C_IDLE);
    /* the pin is there: the session's next poll goes to the same pod */
    fake_store_defer_sid_pins(false);
    fake_client_sends(fc, "GET /socket.io/?EIO=4&transport=polling&sid=abcDEF123 HTTP/1.1\r\n"
                          "Host: h\r\n\r\n");
    cr_assert_eq(fu->u.state, PR_U_ACTIVE);
    cr_assert(has(fake_pod_out(fu), "sid=abcDEF123"));
}

Test(exchange, sid_pin_client_leaves_before_store_answers)
{
    fake_store_defer_sid_pins(true);
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, HANDSHAKE_REQ);
    struct fake_upstream *fu = connect_pod(1);
    send_open(fu);
    cr_assert_eq(fake_store_pending(), 1);
    cr_assert_eq(fc->c.store_refs, 1, "the client is not held for the store's answer");
    fake_client_eof(fc); /* the client hangs up while it waits */
    cr_assert_eq(fu->closes, 0, "the pod's complete answer cost its connection");
    cr_assert_eq(fu->reusable_releases, 1, "the clean pod connection was not pooled");
    fake_store_flush();
    cr_assert_eq(fc->c.store_refs, 0);
    cr_assert_str_empty(fake_client_out(fc));
}

/* A handshake answer held for its sid pin: the pod's response is complete already. */
static struct fake_upstream *held_complete_handshake(struct fake_client *fc)
{
    fake_store_defer_sid_pins(true);
    fake_client_sends(fc, HANDSHAKE_REQ);
    struct fake_upstream *fu = connect_pod(1);
    send_open(fu);
    cr_assert_eq(fake_store_pending(), 1, "the sid was not pinned");
    cr_assert_str_empty(fake_client_out(fc), "%s", fake_client_out(fc));
    return fu;
}

static uint64_t resets(void)
{
    return PR_CNT_GET(fake_worker()->m->proxy_errors[PR_ERR_RESET]);
}

/* The pod connection of a complete held answer stays read (no stop/start per handshake), so
 * its close is seen at once: the client still gets the whole answer, keep-alive, once the pin
 * is stored; the closed pod connection is not reused. */
static void held_complete_pod_gone(int err)
{
    struct fake_client *fc = fake_client_new();
    struct fake_upstream *fu = held_complete_handshake(fc);
    cr_assert(fu->u.reading, "a complete held answer stopped reading its pod connection");
    uint64_t r0 = resets();
    if (err == UV_EOF)
        fake_pod_eof(fu);
    else
        fu->u.h->eof(&fu->u, err); /* what upstream.c's read callback reports */
    cr_assert_eq(fu->closes, 1, "the pod connection that went away is not closed");
    cr_assert_eq(fu->releases, 0);
    cr_assert_eq(fc->closes, 0, "the client of a complete held answer was closed");
    cr_assert_str_empty(fake_client_out(fc), "the sid left before it was stored");
    cr_assert_eq(resets(), r0, "a complete answer counted as a reset");
    fake_store_flush();
    const char *out = fake_client_out(fc);
    cr_assert_eq(at(out, "HTTP/1.1 200 OK\r\n"), 0, "%s", out);
    cr_assert(has(out, "\r\n\r\n" OPEN_BODY), "%s", out);
    cr_assert_eq(count(out, "HTTP/1.1"), 1, "%s", out);
    cr_assert_eq(fc->closes, 0);
    cr_assert_eq(fc->c.state, PR_C_IDLE);
    cr_assert_eq(fc->c.store_refs, 0);
    cr_assert_eq(fu->reusable_releases, 0);
    /* the session's next poll gets a new pod connection */
    fake_store_defer_sid_pins(false);
    fake_client_sends(fc, "GET /socket.io/?EIO=4&transport=polling&sid=abcDEF123 HTTP/1.1\r\n"
                          "Host: h\r\n\r\n");
    struct fake_upstream *next = connect_pod(2);
    cr_assert(has(fake_pod_out(next), "sid=abcDEF123"));
}

Test(exchange, sid_pin_held_complete_pod_closes)
{
    held_complete_pod_gone(UV_EOF);
}

Test(exchange, sid_pin_held_complete_pod_resets)
{
    held_complete_pod_gone(UV_ECONNRESET);
}

Test(exchange, sid_pin_held_complete_pod_sends_more_not_reused)
{
    struct fake_client *fc = fake_client_new();
    struct fake_upstream *fu = held_complete_handshake(fc);
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\n"); /* bytes after the answer: nothing asked */
    cr_assert(!fu->u.reading, "a pod that spoke out of turn is still read");
    fake_store_flush();
    const char *out = fake_client_out(fc);
    cr_assert_eq(count(out, "HTTP/1.1"), 1, "%s", out);
    cr_assert(has(out, "\r\n\r\n" OPEN_BODY), "%s", out);
    cr_assert_eq(fu->reusable_releases, 0, "a pod connection with stray bytes was pooled");
    cr_assert_eq(fu->closes, 1);
    cr_assert_eq(fc->c.state, PR_C_IDLE);
}

/* The client hangs up while its complete answer waits for the pin: the pod connection is
 * clean and goes back to the pool (it used to be closed: with the Redis store every client
 * that left during a handshake cost a pod connection); a pod that then closes it is noticed
 * there. An answer that is not complete still costs the connection (next test). */
Test(exchange, sid_pin_held_complete_client_leaves_pod_connection_pooled)
{
    struct fake_client *fc = fake_client_new();
    struct fake_upstream *fu = held_complete_handshake(fc);
    fake_client_eof(fc);
    cr_assert_eq(fu->closes, 0);
    cr_assert_eq(fu->reusable_releases, 1);
    cr_assert_eq(fu->u.state, PR_U_IDLE);
    cr_assert_null(fu->u.client);
    fake_store_flush();
    cr_assert_eq(fc->c.store_refs, 0);
    cr_assert_str_empty(fake_client_out(fc));
    fake_pod_eof(fu);
    cr_assert_eq(fu->closes, 1, "the pooled connection the pod closed is dropped");
}

/* A handshake whose sid is in hand before the rest of its body: held for the pin, the pod's
 * answer not complete. */
static struct fake_upstream *held_incomplete_handshake(struct fake_client *fc)
{
    fake_store_defer_sid_pins(true);
    fake_client_sends(fc, HANDSHAKE_REQ);
    struct fake_upstream *fu = connect_pod(1);
    char resp[512];
    snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(OPEN_BODY) + 10, OPEN_BODY);
    fake_pod_sends(fu, resp);
    cr_assert_eq(fake_store_pending(), 1);
    return fu;
}

Test(exchange, sid_pin_held_incomplete_client_leaves_pod_not_reused)
{
    struct fake_client *fc = fake_client_new();
    struct fake_upstream *fu = held_incomplete_handshake(fc);
    fake_client_eof(fc);
    cr_assert_eq(fu->closes, 1, "a pod connection in the middle of an answer was kept");
    cr_assert_eq(fu->reusable_releases, 0);
    fake_store_flush();
    cr_assert_eq(fc->c.store_refs, 0);
}

/* Only part of the body is in hand when the sid is: the pod is not read until the pin is
 * stored; a pod that then closes before the rest cuts the client off (counted as a reset),
 * and its connection is not reused. */
Test(exchange, sid_pin_held_incomplete_pod_closes_after_release)
{
    struct fake_client *fc = fake_client_new();
    struct fake_upstream *fu = held_incomplete_handshake(fc);
    cr_assert(!fu->u.reading, "the pod is read while its incomplete answer is held");
    uint64_t r0 = resets();
    fake_store_flush();
    cr_assert(has(fake_client_out(fc), "\r\n\r\n" OPEN_BODY), "%s", fake_client_out(fc));
    cr_assert(fu->u.reading, "the rest of the answer is not read after the pin");
    fake_pod_eof(fu);
    cr_assert_eq(fc->closes, 1, "a cut answer left the client open");
    cr_assert_eq(fu->closes, 1);
    cr_assert_eq(fu->reusable_releases, 0);
    cr_assert_eq(resets(), r0 + 1);
}

Test(exchange, pipelined_local_answer_waits_for_the_client_then_next_request)
{
    struct fake_client *fc = fake_client_new();
    fc->full = true; /* our answers queue */
    /* an invalid room key gets the router's own 400 (keep-alive: the request is complete),
     * the request behind it waits until the client took that answer */
    fake_client_sends(fc, "GET /?roomId=bad%20key HTTP/1.1\r\nHost: h\r\n\r\n"
                          "GET /next?roomId=r1 HTTP/1.1\r\nHost: h\r\n"
                          "X-Request-Id: mine-1\r\n\r\n");
    const char *out = fake_client_out(fc);
    cr_assert_eq(at(out, "HTTP/1.1 400 Bad Request\r\n"), 0, "%s", out);
    cr_assert(has(out, "bad_key"), "%s", out);
    cr_assert(!has(out, "Connection: close"), "%s", out);
    cr_assert_eq(fake_upstream_count(), 0, "the next request went on before our answer was taken");
    cr_assert(fc->c.writing && !fc->c.closing);
    fake_client_drain(fc);
    struct fake_upstream *fu = connect_pod(1);
    cr_assert(has(fake_pod_out(fu), "GET /next?roomId=r1 HTTP/1.1\r\n"));
    cr_assert(has(fake_pod_out(fu), "X-Request-Id: mine-1\r\n"), "the client's id is kept: %s",
              fake_pod_out(fu));
    cr_assert_eq(count(fake_pod_out(fu), "X-Request-Id:"), 1);
    fake_pod_sends(fu, OK_RESPONSE);
    cr_assert_eq(count(fake_client_out(fc), "HTTP/1.1 "), 2);
    cr_assert_eq(fu->reusable_releases, 1);
}

Test(exchange, pod_bytes_after_the_response_connection_not_reused)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /x?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, OK_RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra");
    const char *out = fake_client_out(fc);
    cr_assert_eq(count(out, "HTTP/1.1 200 OK"), 1, "a second response reached the client: %s",
                 out);
    cr_assert(!has(out, "extra"), "%s", out);
    cr_assert_eq(fu->reusable_releases, 0);
    cr_assert_eq(fu->closes, 1);
    cr_assert_eq(fc->c.state, PR_C_IDLE, "the client connection itself is fine");
}

Test(exchange, malformed_pod_response_502_and_not_reused)
{
    struct fake_client *fc = fake_client_new();
    fake_client_sends(fc, "GET /x?roomId=r1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n");
    const char *out = fake_client_out(fc);
    cr_assert_eq(at(out, "HTTP/1.1 502 Bad Gateway\r\n"), 0, "%s", out);
    cr_assert(has(out, "upstream_unavailable"), "%s", out);
    cr_assert_eq(fu->closes, 1);
    cr_assert_eq(fu->reusable_releases, 0);
}

/* A tunnel up between fc and the returned pod connection. */
static struct fake_upstream *tunnel(struct fake_client *fc)
{
    fake_client_sends(fc, UPGRADE_REQ);
    struct fake_upstream *fu = connect_pod(1);
    fake_pod_sends(fu, UPGRADE_RESP);
    cr_assert(fc->c.h != &pr__http_client_handlers);
    fake_pod_out_clear(fu);
    fake_client_out_clear(fc);
    return fu;
}

Test(exchange, tunnel_client_leaves_pod_gets_queued_bytes_then_closes)
{
    struct fake_client *fc = fake_client_new();
    struct fake_upstream *fu = tunnel(fc);
    fu->full = true;
    fake_client_sends(fc, "last-words");
    cr_assert(fu->u.writing);
    cr_assert(!fc->c.reading);
    fc->full = true;
    fake_pod_sends(fu, "frame");
    fake_client_write_error(fc); /* the client's connection resets */
    cr_assert_eq(fu->closes, 0, "the pod connection closed with bytes still queued for it");
    cr_assert(!fu->u.reading);
    cr_assert_null(fu->u.client);
    fake_pod_drain(fu); /* the pod took them: now it closes */
    cr_assert_eq(fu->closes, 1);
    cr_assert_str_eq(fake_pod_out(fu), "last-words");
}

Test(exchange, tunnel_pod_leaves_client_gets_queued_bytes_then_closes)
{
    struct fake_client *fc = fake_client_new();
    struct fake_upstream *fu = tunnel(fc);
    fc->full = true;
    fake_pod_sends(fu, "bye");
    cr_assert(fc->c.writing);
    fu->full = true;
    fake_client_drain(fc);
    fc->full = true;
    fake_pod_sends(fu, "bye");
    fake_client_sends(fc, "queued"); /* to the pod, which takes nothing */
    cr_assert(fc->c.writing && fu->u.writing);
    fake_pod_write_error(fu, UV_ECONNRESET); /* the pod's connection resets */
    cr_assert_eq(fu->closes, 1);
    cr_assert(!fc->c.closing, "the client connection closed with bytes still queued for it");
    cr_assert(!fc->c.reading, "a client whose pod left is still read");
    fake_client_drain(fc);
    cr_assert(fc->c.closing);
    cr_assert_str_eq(fake_client_out(fc), "byebye");
}

/* SPEC 3.5, first rule: each of these gets 400 bad_request, the connection is closed, and
 * nothing reaches a pod (no pod connection is even opened). Bytes after the bad head are a
 * request the pod must never see. */
static const struct {
    const char *what;
    const char *req;
} rejected[] = {
    {"HTTP/0.9 (no version)", "GET /x?roomId=r1\r\n\r\n"},
    {"unknown version", "GET /x?roomId=r1 HTTP/1.2\r\nHost: a\r\n\r\n"},
    {"double space in the request line", "GET  /x?roomId=r1 HTTP/1.1\r\nHost: a\r\n\r\n"},
    {"HTTP/1.1 without Host", "GET /x?roomId=r1 HTTP/1.1\r\nAccept: */*\r\n\r\n"},
    {"two Host headers", "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
    {"obs-fold with a space", "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n b\r\n\r\n"},
    {"obs-fold with a tab", "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tb\r\n\r\n"},
    {"obs-fold of X-Forwarded-Host",
     "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nX-Forwarded-Host: a\r\n b\r\n\r\n"},
    {"bare LF line end", "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n"},
    {"CR inside a value", "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n"},
    {"space before the colon", "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n"},
    {"Connection names Content-Length",
     "POST /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\n"
     "Content-Length: 38\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
    {"Connection names Transfer-Encoding",
     "POST /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nConnection: close, transfer-encoding\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
    {"Connection names Host", "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n"},
    {"Content-Length and Transfer-Encoding",
     "POST /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
    {"Transfer-Encoding other than chunked",
     "POST /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
    {"two Content-Length values",
     "POST /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
    {"CONNECT", "CONNECT pod:3000 HTTP/1.1\r\nHost: pod:3000\r\n\r\n"},
};

Test(exchange, spec_3_5_rejections_400_close_nothing_forwarded)
{
    for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
        struct fake_client *fc = fake_client_new();
        size_t before = fake_upstream_count();
        char buf[512]; /* the bad request and, in the same read, one the pod must not see */
        snprintf(buf, sizeof(buf), "%sGET /after HTTP/1.1\r\nHost: a\r\n\r\n", rejected[i].req);
        fake_client_sends(fc, buf);
        const char *resp = fake_client_out(fc);
        cr_expect(strncmp(resp, "HTTP/1.1 400 ", 13) == 0, "%s: %s", rejected[i].what, resp);
        cr_expect(has(resp, "\"error\":\"bad_request\""), "%s: %s", rejected[i].what, resp);
        cr_expect_eq(count(resp, "\r\n\r\n"), 1, "%s: one answer only: %s", rejected[i].what,
                     resp);
        cr_expect(fc->c.closing || fc->c.close_after_write, "%s: connection kept open",
                  rejected[i].what);
        cr_expect_eq(fake_upstream_count(), before, "%s: a pod connection was opened",
                     rejected[i].what);
    }
}

/* The same heads made valid reach the pod: the table above does not refuse everything. */
Test(exchange, spec_3_5_controls_are_forwarded)
{
    static const char *const ok[] = {
        "GET /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nX-A: 1 b\r\n\r\n",
        "GET /x?roomId=r1 HTTP/1.0\r\n\r\n",
        "POST /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n"
        "Content-Length: 2\r\n\r\nab",
        "POST /x?roomId=r1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct fake_client *fc = fake_client_new();
        size_t before = fake_upstream_count();
        fake_client_sends(fc, ok[i]);
        cr_expect_str_eq(fake_client_out(fc), "", "control %zu answered by the router", i);
        cr_expect_eq(fake_upstream_count(), before + 1, "control %zu: no pod connection", i);
    }
}
