/* Token buckets per client address (SPEC 3.6). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "podrouter/ratelimit.h"

Test(ratelimit, burst_then_rate)
{
    struct pr_ratelimit *rl = pr_ratelimit_create(10, 5, 64);
    uint8_t a[16] = {203, 0, 113, 7};
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += pr_ratelimit_take(rl, AF_INET, a, 1000);
    cr_expect_eq(ok, 5, "burst of 5 at one instant, got %d", ok);
    /* 10 per second: 100 ms gives one more token, 50 ms none. */
    cr_expect_not(pr_ratelimit_take(rl, AF_INET, a, 1050));
    cr_expect(pr_ratelimit_take(rl, AF_INET, a, 1150));
    cr_expect_not(pr_ratelimit_take(rl, AF_INET, a, 1150));
    /* Another address has its own bucket; v4 and v6 never share one. */
    uint8_t b[16] = {203, 0, 113, 8};
    cr_expect(pr_ratelimit_take(rl, AF_INET, b, 1150));
    cr_expect(pr_ratelimit_take(rl, AF_INET6, a, 1150));
    /* After a long pause the bucket is full again, not more. */
    ok = 0;
    for (int i = 0; i < 20; i++)
        ok += pr_ratelimit_take(rl, AF_INET, a, 100000);
    cr_expect_eq(ok, 5);
    pr_ratelimit_destroy(rl);
}

Test(ratelimit, bounded_table)
{
    struct pr_ratelimit *rl = pr_ratelimit_create(1, 2, 64);
    /* 10,000 distinct addresses: the table never grows past its capacity. */
    for (uint32_t i = 0; i < 10000; i++) {
        uint8_t a[16] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        cr_assert(pr_ratelimit_take(rl, AF_INET, a, 1000 + i));
        cr_assert_leq(pr_ratelimit_size(rl), 64);
    }
    /* A client that keeps flooding is still limited while others come and go. */
    uint8_t f[16] = {198, 51, 100, 1};
    int ok = 0;
    for (int i = 0; i < 50; i++)
        ok += pr_ratelimit_take(rl, AF_INET, f, 20000);
    cr_expect_eq(ok, 2);
    pr_ratelimit_destroy(rl);
}
