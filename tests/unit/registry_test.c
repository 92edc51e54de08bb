/* Unit tests of the pod table (registry.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "podrouter/registry.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

struct valid_case {
    const char *s;
    bool ok;
};

Test(registry, pod_name_validation)
{
    static const struct valid_case cases[] = {
        {"backend-0", true},
        {"a", true},
        {"0", true},
        {"backend-12.ns", true},
        {"a.b-c.d", true},
        {"a-", false},
        {"-a", false},
        {".a", false},
        {"a.", false},
        {"Backend-0", false},
        {"backend_0", false},
        {"back end", false},
        {"", false},
        {"backend/0", false},
        {"b\xc3\xa9", false},
        /* 63 bytes: the limit */
        {"a23456789012345678901234567890123456789012345678901234567890123", true},
        /* 64 bytes */
        {"a234567890123456789012345678901234567890123456789012345678901234", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(pr_pod_name_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok,
                     "name \"%s\" expected %d", cases[i].s, cases[i].ok);
    cr_expect_not(pr_pod_name_valid(NULL, 0));
    cr_expect_not(pr_pod_name_valid("ab\0c", 4));
}

Test(registry, pod_address_validation)
{
    static const struct valid_case cases[] = {
        {"10.0.0.7:3000", true},
        {"backend-0.backend.default.svc.cluster.local:3000", true},
        {"localhost:1", true},
        {"localhost:65535", true},
        {"LOCALHOST:80", true},
        {"[::1]:3000", true},
        {"[fe80::1:2:3:4]:8080", true},
        {"[2001:db8::ffff:10.0.0.1]:443", true},
        {"localhost:0", false},
        {"localhost:65536", false},
        {"localhost:99999", false},
        {"localhost:030", false},
        {"localhost:", false},
        {"localhost", false},
        {":3000", false},
        {"host:+80", false},
        {"host:80a", false},
        {"a:b:80", false},
        {"::1:3000", false},
        {"[::1]", false},
        {"[::1]:", false},
        {"[]:80", false},
        {"[::1]3000", false},
        {"[not-v6]:80", false},
        {"[10.0.0.1]:80", false},
        {"[fe80::1%eth0]:80", false},
        {"999.0.0.1:80", false},
        {"10.0.0:80", false},
        {"-host:80", false},
        {"host-:80", false},
        {"ho..st:80", false},
        {".host:80", false},
        {"ho_st:80", false},
        {"my_host:3000", false}, /* register --address refuses it too (config_test) */
        {"ho st:80", false},
        {"host\n:80", false},
        {"", false},
        /* host of 53 bytes is the limit */
        {"h2345678901234567890123456789012345678901234567890123:65535", true},
        {"h23456789012345678901234567890123456789012345678901234:1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(pr_pod_address_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok,
                     "address \"%s\" expected %d", cases[i].s, cases[i].ok);
    cr_expect_not(pr_pod_address_valid(NULL, 0));
    cr_expect_not(pr_pod_address_valid("a:80\0", 5));
}

Test(registry, state_names)
{
    cr_expect_str_eq(pr_pod_state_name(PR_POD_READY), "ready");
    cr_expect_str_eq(pr_pod_state_name(PR_POD_DRAINING), "draining");
    cr_expect_str_eq(pr_pod_state_name(PR_POD_DOWN), "down");
}

Test(registry, create_rejects_zero_ttl)
{
    cr_expect_null(pr_registry_create(0));
    pr_registry_destroy(NULL);
}

Test(registry, register_then_heartbeat)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_not_null(reg);
    bool created = false;
    cr_assert_eq(pr_registry_put(reg, "backend-0", "10.0.0.7:3000", 20, 80, "nyc1-a", &created), 0);
    cr_expect(created);
    cr_assert_eq(pr_registry_put(reg, "backend-0", "10.0.0.7:3000", 30, 90, NULL, &created), 0);
    cr_expect_not(created);

    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, "backend-0", &p), 0);
    cr_expect_str_eq(p.name, "backend-0");
    cr_expect_str_eq(p.address, "10.0.0.7:3000");
    cr_expect_str_eq(p.zone, "");
    cr_expect_eq(p.state, PR_POD_READY);
    cr_expect_eq(p.cap_rooms, 30);
    cr_expect_eq(p.cap_participants, 90);
    cr_expect_leq(p.last_seen_ago_ms, 1000);
    cr_expect_gt(p.expires_in_ms, 14000);
    cr_expect_leq(p.expires_in_ms, 15000);
    cr_expect_gt(p.last_seen_ms, 1600000000000ull);
    cr_expect_not(p.recently_failed);
    cr_expect_eq(pr_registry_get(reg, "backend-9", &p), -ENOENT);
    cr_expect(pr_registry_is_live(reg, "backend-0"));
    cr_expect_not(pr_registry_is_live(reg, "backend-9"));
    pr_registry_destroy(reg);
}

struct put_case {
    const char *name, *address;
    uint32_t rooms, participants;
    const char *zone;
    int rc;
};

Test(registry, put_validation)
{
    static const struct put_case cases[] = {
        {"backend-0", "10.0.0.1:3000", 20, 80, NULL, 0},
        {"backend-0", "10.0.0.1:3000", 1, 1, "z", 0},
        {"Backend-0", "10.0.0.1:3000", 20, 80, NULL, -EINVAL},
        {"backend-0", "10.0.0.1", 20, 80, NULL, -EINVAL},
        {"backend-0", "10.0.0.1:3000", 0, 80, NULL, -EINVAL},
        {"backend-0", "10.0.0.1:3000", 20, 0, NULL, -EINVAL},
        {"backend-0", "10.0.0.1:3000", 20, 80, "z\n", -EINVAL},
        {"backend-0", "10.0.0.1:3000", 20, 80,
         "z23456789012345678901234567890123456789012345678901234567890123", 0},
        {"backend-0", "10.0.0.1:3000", 20, 80,
         "z234567890123456789012345678901234567890123456789012345678901234", -EINVAL},
        {NULL, "10.0.0.1:3000", 20, 80, NULL, -EINVAL},
        {"backend-0", NULL, 20, 80, NULL, -EINVAL},
    };
    struct pr_registry *reg = pr_registry_create(15000);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct put_case *c = &cases[i];
        cr_expect_eq(
            pr_registry_put(reg, c->name, c->address, c->rooms, c->participants, c->zone, NULL),
            c->rc, "case %zu", i);
    }
    pr_registry_destroy(reg);
}

Test(registry, drain_survives_heartbeats)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_eq(pr_registry_put(reg, "backend-1", "10.0.0.8:3000", 20, 80, NULL, NULL), 0);
    cr_expect_eq(pr_registry_drain(reg, "backend-1"), 0);
    cr_expect_eq(pr_registry_drain(reg, "nope"), -ENOENT);
    struct pr_pod_info p;
    for (int i = 0; i < 3; i++) {
        bool created = true;
        cr_assert_eq(pr_registry_put(reg, "backend-1", "10.0.0.8:3000", 20, 80, NULL, &created), 0);
        cr_expect_not(created);
        cr_assert_eq(pr_registry_get(reg, "backend-1", &p), 0);
        cr_expect_eq(p.state, PR_POD_DRAINING);
        cr_expect(p.draining);
    }
    cr_expect(pr_registry_is_live(reg, "backend-1"));
    pr_registry_destroy(reg);
}

Test(registry, ttl_down_and_back)
{
    struct pr_registry *reg = pr_registry_create(50);
    cr_assert_eq(pr_registry_put(reg, "a", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_put(reg, "b", "10.0.0.2:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_drain(reg, "b"), 0);
    sleep_ms(80);
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, "a", &p), 0);
    cr_expect_eq(p.state, PR_POD_DOWN);
    cr_expect_eq(p.expires_in_ms, 0);
    cr_expect_geq(p.last_seen_ago_ms, 50);
    cr_assert_eq(pr_registry_get(reg, "b", &p), 0);
    cr_expect_eq(p.state, PR_POD_DOWN);
    cr_expect(p.draining);
    cr_expect_not(pr_registry_is_live(reg, "a"));
    uint32_t r, d, dn;
    pr_registry_counts(reg, &r, &d, &dn);
    cr_expect_eq(r, 0);
    cr_expect_eq(d, 0);
    cr_expect_eq(dn, 2);

    bool created = true;
    cr_assert_eq(pr_registry_put(reg, "a", "10.0.0.1:3000", 20, 80, NULL, &created), 0);
    cr_expect_not(created);
    cr_assert_eq(pr_registry_put(reg, "b", "10.0.0.2:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_get(reg, "a", &p), 0);
    cr_expect_eq(p.state, PR_POD_READY);
    cr_assert_eq(pr_registry_get(reg, "b", &p), 0);
    cr_expect_eq(p.state, PR_POD_DRAINING);
    pr_registry_counts(reg, &r, &d, &dn);
    cr_expect_eq(r, 1);
    cr_expect_eq(d, 1);
    cr_expect_eq(dn, 0);
    pr_registry_destroy(reg);
}

struct forgot {
    int n;
    char names[4][64];
};

static void on_forgotten(void *arg, const char *pod)
{
    struct forgot *f = arg;
    if (f->n < 4)
        snprintf(f->names[f->n], sizeof(f->names[0]), "%s", pod);
    f->n++;
}

Test(registry, forget_after_four_ttl)
{
    struct pr_registry *reg = pr_registry_create(50);
    cr_assert_eq(pr_registry_put(reg, "old", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    pr_registry_add_load(reg, "old", 3, 7);
    sleep_ms(120); /* down, not yet forgotten */
    struct forgot f = {0};
    cr_expect_eq(pr_registry_expire(reg, on_forgotten, &f), 0);
    struct pr_pod_info p;
    cr_expect_eq(pr_registry_get(reg, "old", &p), 0);
    cr_expect_eq(p.state, PR_POD_DOWN);
    cr_expect_eq(pr_registry_snapshot(reg, NULL, 0), 1);

    cr_assert_eq(pr_registry_put(reg, "fresh", "10.0.0.2:3000", 20, 80, NULL, NULL), 0);
    sleep_ms(100); /* old: 220 ms > 4 x 50 */
    cr_expect_eq(pr_registry_expire(reg, on_forgotten, &f), 1);
    cr_expect_eq(f.n, 1);
    cr_expect_str_eq(f.names[0], "old");
    cr_expect_eq(pr_registry_get(reg, "old", &p), -ENOENT);
    cr_expect_eq(pr_registry_get(reg, "fresh", &p), 0);

    /* A forgotten pod that comes back is new, with fresh loads. */
    bool created = false;
    cr_assert_eq(pr_registry_put(reg, "old", "10.0.0.1:3000", 20, 80, NULL, &created), 0);
    cr_expect(created);
    cr_assert_eq(pr_registry_get(reg, "old", &p), 0);
    cr_expect_eq(p.load_rooms, 0);
    cr_expect_eq(p.load_participants, 0);
    cr_expect_eq(pr_registry_expire(reg, NULL, NULL), 0);
    pr_registry_destroy(reg);
}

Test(registry, loads)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    pr_registry_add_load(reg, "p", 2, 5);
    pr_registry_add_load(reg, "p", -1, 1);
    pr_registry_add_load(reg, "unknown", 5, 5);
    pr_registry_add_load(reg, NULL, 5, 5);
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.load_rooms, 1);
    cr_expect_eq(p.load_participants, 6);
    pr_registry_add_load(reg, "p", -10, -10); /* never below zero */
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.load_rooms, 0);
    cr_expect_eq(p.load_participants, 0);
    pr_registry_set_load(reg, "p", 7, 9);
    pr_registry_set_load(reg, "unknown", 7, 9);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.load_rooms, 7);
    cr_expect_eq(p.load_participants, 9);

    /* Deleting clears loads; a new registration starts at zero. */
    cr_expect_eq(pr_registry_delete(reg, "p"), 0);
    cr_expect_eq(pr_registry_delete(reg, "p"), -ENOENT);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.load_rooms, 0);
    cr_expect_eq(p.load_participants, 0);
    cr_expect_eq(p.load_connections, 0);
    pr_registry_destroy(reg);
}

Test(registry, connections_and_gen)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    uint32_t slot = p.slot, gen = p.gen;
    pr_registry_add_connections(reg, slot, gen, 1);
    pr_registry_add_connections(reg, slot, gen, 1);
    pr_registry_add_connections(reg, slot, gen + 7, 5); /* stale */
    pr_registry_add_connections(reg, PR_MAX_PODS + 3, gen, 5);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.load_connections, 2);

    /* Same address: same gen. */
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.gen, gen);
    cr_expect_eq(p.slot, slot);

    /* New address: new gen, connections of the old one are forgotten and ignored. */
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.2:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_neq(p.gen, gen);
    cr_expect_eq(p.slot, slot);
    cr_expect_str_eq(p.address, "10.0.0.2:3000");
    cr_expect_eq(p.load_connections, 0);
    pr_registry_add_connections(reg, slot, gen, -1);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.load_connections, 0);

    /* Slot reuse after delete bumps gen too. */
    uint32_t gen2 = p.gen;
    cr_assert_eq(pr_registry_delete(reg, "p"), 0);
    cr_assert_eq(pr_registry_put(reg, "q", "10.0.0.3:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_get(reg, "q", &p), 0);
    cr_expect_eq(p.slot, slot);
    cr_expect_neq(p.gen, gen2);
    pr_registry_add_connections(reg, slot, gen2, 1);
    cr_assert_eq(pr_registry_get(reg, "q", &p), 0);
    cr_expect_eq(p.load_connections, 0);
    pr_registry_destroy(reg);
}

struct conn_worker {
    struct pr_registry *reg;
    uint32_t slot, gen;
};

static void *conn_thread(void *arg)
{
    struct conn_worker *w = arg;
    for (int i = 0; i < 20000; i++) {
        pr_registry_add_connections(w->reg, w->slot, w->gen, 1);
        if (i % 2)
            pr_registry_add_connections(w->reg, w->slot, w->gen, -1);
    }
    return NULL;
}

Test(registry, connections_concurrent)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    struct conn_worker w = {reg, p.slot, p.gen};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, conn_thread, &w);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_eq(p.load_connections, 4 * 10000);
    pr_registry_destroy(reg);
}

Test(registry, recently_failed_window)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    pr_registry_record_failure(reg, "p");
    pr_registry_record_failure(reg, "unknown");
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect(p.recently_failed);
    sleep_ms(2100);
    cr_assert_eq(pr_registry_get(reg, "p", &p), 0);
    cr_expect_not(p.recently_failed);
    pr_registry_destroy(reg);
}

Test(registry, snapshot_sorted_and_counted)
{
    struct pr_registry *reg = pr_registry_create(15000);
    const char *names[] = {"backend-2", "backend-10", "a", "backend-0", "z.y"};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(pr_registry_put(reg, names[i], "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    pr_registry_drain(reg, "a");
    struct pr_pod_info out[8];
    cr_assert_eq(pr_registry_snapshot(reg, out, 8), 5);
    const char *sorted[] = {"a", "backend-0", "backend-10", "backend-2", "z.y"};
    for (size_t i = 0; i < 5; i++)
        cr_expect_str_eq(out[i].name, sorted[i]);
    cr_expect_eq(out[0].state, PR_POD_DRAINING);
    struct pr_pod_info two[2];
    cr_expect_eq(pr_registry_snapshot(reg, two, 2), 5);
    cr_expect_str_eq(two[1].name, "backend-0");
    uint32_t r, d, dn;
    pr_registry_counts(reg, &r, &d, &dn);
    cr_expect_eq(r, 4);
    cr_expect_eq(d, 1);
    cr_expect_eq(dn, 0);
    pr_registry_counts(reg, NULL, NULL, NULL);
    pr_registry_destroy(reg);
}

Test(registry, table_full)
{
    struct pr_registry *reg = pr_registry_create(15000);
    char name[32];
    for (int i = 0; i < PR_MAX_PODS; i++) {
        snprintf(name, sizeof(name), "pod-%d", i);
        cr_assert_eq(pr_registry_put(reg, name, "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    }
    cr_expect_eq(pr_registry_put(reg, "one-more", "10.0.0.1:3000", 20, 80, NULL, NULL), -ENOSPC);
    /* Heartbeats of known pods still work when the table is full. */
    cr_expect_eq(pr_registry_put(reg, "pod-5", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_expect_eq(pr_registry_delete(reg, "pod-7"), 0);
    cr_expect_eq(pr_registry_put(reg, "one-more", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    struct pr_pod_info p;
    cr_expect_eq(pr_registry_get(reg, "pod-1000", &p), 0);
    cr_expect_eq(pr_registry_get(reg, "pod-7", &p), -ENOENT);
    pr_registry_destroy(reg);
}

/* ---- passive failure detection (--pod-fall) ---- */

static struct pr_pod_info info_of(struct pr_registry *reg, const char *name)
{
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, name, &p), 0);
    return p;
}

/* Registers name at 10.0.0.1:3000, then fails 2 fresh connects (the default --pod-fall):
 * the second one marks it down. */
static void put_unreachable(struct pr_registry *reg, const char *name)
{
    cr_assert_eq(pr_registry_put(reg, name, "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    pr_registry_connect_failed(reg, name, NULL);
    cr_assert(pr_registry_connect_failed(reg, name, NULL));
}

Test(registry, fall_marks_down_after_n_consecutive_failures)
{
    struct pr_registry *reg = pr_registry_create(15000);
    pr_registry_set_fall(reg, 3);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    uint32_t n = 0;
    cr_expect_not(pr_registry_connect_failed(reg, "p", &n));
    cr_expect_eq(n, 1);
    cr_expect_not(pr_registry_connect_failed(reg, "p", &n));
    cr_expect_eq(n, 2);
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_READY);
    cr_expect_eq(p.down_reason, PR_DOWN_NONE);
    cr_expect(pr_registry_is_live(reg, "p"));
    cr_expect(pr_registry_connect_failed(reg, "p", &n), "the third failure marks it down");
    cr_expect_eq(n, 3);
    p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_DOWN);
    cr_expect_eq(p.down_reason, PR_DOWN_UNREACHABLE);
    cr_expect_str_eq(pr_down_reason_name(p.down_reason), "unreachable");
    cr_expect(p.unreachable);
    cr_expect_eq(p.marked_down, 1);
    cr_expect_not(pr_registry_is_live(reg, "p"));
    cr_expect_not(pr_registry_connect_failed(reg, "p", &n), "marked once, not per failure");
    cr_expect_eq(info_of(reg, "p").marked_down, 1);
    uint32_t ready, draining, down;
    pr_registry_counts(reg, &ready, &draining, &down);
    cr_expect_eq(ready, 0);
    cr_expect_eq(down, 1);
    cr_expect_not(pr_registry_connect_failed(reg, "unknown", NULL));
    pr_registry_destroy(reg);
}

Test(registry, fall_default_is_two_and_zero_disables)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_expect_not(pr_registry_connect_failed(reg, "p", NULL));
    cr_expect(pr_registry_connect_failed(reg, "p", NULL));
    cr_expect_eq(info_of(reg, "p").state, PR_POD_DOWN);

    pr_registry_set_fall(reg, 0);
    cr_assert_eq(pr_registry_put(reg, "q", "10.0.0.2:3000", 20, 80, NULL, NULL), 0);
    for (int i = 0; i < 100; i++)
        cr_expect_not(pr_registry_connect_failed(reg, "q", NULL));
    struct pr_pod_info q = info_of(reg, "q");
    cr_expect_eq(q.state, PR_POD_READY);
    cr_expect_eq(q.connect_failures, 100);
    cr_expect(q.recently_failed, "still passed over for new keys for 2 s");
    pr_registry_destroy(reg);
}

Test(registry, fall_count_resets_on_successful_connect)
{
    struct pr_registry *reg = pr_registry_create(15000);
    pr_registry_set_fall(reg, 2);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_not(pr_registry_connect_ok(reg, p.slot, p.gen), "nothing to revive");
    for (int i = 0; i < 5; i++) {
        cr_expect_not(pr_registry_connect_failed(reg, "p", NULL));
        cr_expect_not(pr_registry_connect_ok(reg, p.slot, p.gen), "it was not down");
        cr_expect_eq(info_of(reg, "p").connect_failures, 0);
    }
    cr_expect_eq(info_of(reg, "p").state, PR_POD_READY, "failures were never consecutive");
    pr_registry_destroy(reg);
}

Test(registry, pooled_failures_are_not_counted)
{
    struct pr_registry *reg = pr_registry_create(15000);
    pr_registry_set_fall(reg, 2);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    for (int i = 0; i < 10; i++)
        pr_registry_record_failure(reg, "p"); /* stale keep-alive connection, unresolved name */
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_READY);
    cr_expect_eq(p.connect_failures, 0);
    cr_expect(p.recently_failed);
    cr_expect_not(pr_registry_connect_failed(reg, "p", NULL), "one fresh failure: 1 of 2");
    pr_registry_destroy(reg);
}

Test(registry, unreachable_pod_revived_by_probe)
{
    struct pr_registry *reg = pr_registry_create(15000);
    put_unreachable(reg, "p");
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_not(pr_registry_connect_ok(reg, p.slot, p.gen + 1), "a stale generation");
    cr_expect_eq(info_of(reg, "p").state, PR_POD_DOWN);
    cr_expect(pr_registry_connect_ok(reg, p.slot, p.gen));
    p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_READY);
    cr_expect_eq(p.down_reason, PR_DOWN_NONE);
    cr_expect_not(p.unreachable);
    cr_expect_not(p.recently_failed);
    cr_expect_eq(p.connect_failures, 0);
    cr_expect_eq(p.marked_down, 1, "the counter stays");
    cr_expect_not(pr_registry_connect_ok(reg, p.slot, p.gen), "revived once");
    pr_registry_destroy(reg);
}

Test(registry, unreachable_draining_pod_comes_back_draining)
{
    struct pr_registry *reg = pr_registry_create(15000);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_drain(reg, "p"), 0);
    pr_registry_connect_failed(reg, "p", NULL);
    cr_assert(pr_registry_connect_failed(reg, "p", NULL));
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_DOWN);
    cr_expect(pr_registry_connect_ok(reg, p.slot, p.gen));
    cr_expect_eq(info_of(reg, "p").state, PR_POD_DRAINING);
    pr_registry_destroy(reg);
}

Test(registry, same_address_heartbeat_keeps_unreachable_new_address_clears)
{
    struct pr_registry *reg = pr_registry_create(15000);
    put_unreachable(reg, "p");
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_expect_eq(info_of(reg, "p").state, PR_POD_DOWN, "the probe decides, not the heartbeat");
    struct pr_pod_remote r = {.name = "p", .address = "10.0.0.1:3000", .cap_rooms = 20,
                              .cap_participants = 80, .last_seen_ms = pr_now_ms()};
    cr_assert_eq(pr_registry_merge(reg, &r, NULL), 0);
    cr_expect_eq(info_of(reg, "p").state, PR_POD_DOWN, "nor another replica's row");

    uint32_t old_gen = info_of(reg, "p").gen;
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.9:3000", 20, 80, NULL, NULL), 0);
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_READY, "restarted with a new address");
    cr_expect_neq(p.gen, old_gen);
    cr_expect_eq(p.connect_failures, 0);
    cr_expect_not(pr_registry_connect_failed(reg, "p", NULL), "the count restarted");

    pr_registry_connect_failed(reg, "p", NULL);
    cr_assert_eq(info_of(reg, "p").state, PR_POD_DOWN);
    r.address = "10.0.0.10:3000";
    cr_assert_eq(pr_registry_merge(reg, &r, NULL), 0);
    cr_expect_eq(info_of(reg, "p").state, PR_POD_READY, "a new address from another replica");
    pr_registry_destroy(reg);
}

Test(registry, expired_wins_over_unreachable_and_probe_does_not_revive_it)
{
    struct pr_registry *reg = pr_registry_create(100);
    put_unreachable(reg, "p");
    sleep_ms(150);
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_DOWN);
    cr_expect_eq(p.down_reason, PR_DOWN_EXPIRED);
    cr_expect_str_eq(pr_down_reason_name(p.down_reason), "expired");
    cr_expect(pr_registry_connect_ok(reg, p.slot, p.gen));
    cr_expect_eq(info_of(reg, "p").state, PR_POD_DOWN, "no heartbeat: still down");
    cr_expect_eq(info_of(reg, "p").down_reason, PR_DOWN_EXPIRED);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_expect_eq(info_of(reg, "p").state, PR_POD_READY);
    pr_registry_destroy(reg);
}

Test(registry, deleted_and_reregistered_pod_starts_clean)
{
    struct pr_registry *reg = pr_registry_create(15000);
    put_unreachable(reg, "p");
    cr_assert_eq(pr_registry_delete(reg, "p"), 0);
    cr_assert_eq(pr_registry_put(reg, "p", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    struct pr_pod_info p = info_of(reg, "p");
    cr_expect_eq(p.state, PR_POD_READY);
    cr_expect_eq(p.marked_down, 0);
    cr_expect_eq(p.connect_failures, 0);
    pr_registry_destroy(reg);
}
