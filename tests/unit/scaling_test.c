/* Desired replicas over a registry and the rooms-interrupted counter (src/scaling.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "podrouter/config.h"
#include "podrouter/registry.h"
#include "podrouter/scaling.h"

static struct pr_registry *reg;

static void setup(void)
{
    reg = pr_registry_create(200); /* pods go down 200 ms after their last heartbeat */
    cr_assert_not_null(reg);
    for (int i = 0; i < 4; i++) {
        char name[16], addr[32];
        snprintf(name, sizeof(name), "backend-%d", i);
        snprintf(addr, sizeof(addr), "10.0.0.%d:3000", i + 1);
        cr_assert_eq(pr_registry_put(reg, name, addr, 20, 80, NULL, NULL), 0);
    }
}

static void teardown(void)
{
    pr_registry_destroy(reg);
}

TestSuite(scaling, .init = setup, .fini = teardown);

Test(scaling, desired_from_registry_and_config)
{
    struct pr_config cfg;
    pr_config_defaults(&cfg);
    /* idle: min replicas */
    cr_expect_eq(pr_scaling_desired(reg, &cfg), 3);
    /* an active room on backend-3 keeps 4 + 1 headroom */
    pr_registry_set_load(reg, "backend-3", 1, 2);
    cr_expect_eq(pr_scaling_desired(reg, &cfg), 5);
    cfg.headroom_pods = 0;
    cfg.max_replicas = 4;
    cr_expect_eq(pr_scaling_desired(reg, &cfg), 4);
    /* the configured parameters are what /metrics uses */
    pr_scaling_configure(&cfg);
    cr_expect_eq(pr_scaling_desired(reg, NULL), 4);
    struct pr_desired_params p;
    pr_scaling_current_params(&p);
    cr_expect_eq(p.max, 4);
    pr_scaling_configure(NULL);
}

Test(scaling, rooms_interrupted_counts_active_rooms_of_pods_that_go_away)
{
    uint64_t base = pr_scaling_rooms_interrupted();
    pr_registry_set_load(reg, "backend-1", 3, 9);
    pr_registry_set_load(reg, "backend-2", 2, 4);
    pr_scaling_tick(reg);
    cr_expect_eq(pr_scaling_rooms_interrupted(), base);
    /* deleted with 3 active rooms */
    cr_assert_eq(pr_registry_delete(reg, "backend-1"), 0);
    pr_scaling_tick(reg);
    cr_expect_eq(pr_scaling_rooms_interrupted(), base + 3);
    /* an idle pod going away interrupts nothing; the same loss is not counted twice */
    cr_assert_eq(pr_registry_delete(reg, "backend-0"), 0);
    pr_scaling_tick(reg);
    pr_scaling_tick(reg);
    cr_expect_eq(pr_scaling_rooms_interrupted(), base + 3);
    /* going down (no heartbeat for the pod TTL) with 2 active rooms */
    usleep(150 * 1000);
    cr_assert_eq(pr_registry_put(reg, "backend-3", "10.0.0.4:3000", 20, 80, NULL, NULL), 0);
    pr_registry_set_load(reg, "backend-2", 2, 4);
    pr_scaling_tick(reg);
    usleep(100 * 1000); /* backend-2 is down now, backend-3 still ready */
    pr_scaling_tick(reg);
    cr_expect_eq(pr_scaling_rooms_interrupted(), base + 5);
}
