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
