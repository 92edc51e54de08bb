/* Unit tests of the in-process store (store.h, memory backend). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "podrouter/config.h"
#include "podrouter/registry.h"
#include "podrouter/store.h"
#include "../../src/atable.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

struct result {
    int calls;
    int status;
    char pod[64];
};

static void on_result(void *arg, int status, const char *pod)
{
    struct result *r = arg;
    r->calls++;
    r->status = status;
    snprintf(r->pod, sizeof(r->pod), "%s", pod ? pod : "");
}

static struct pr_config cfg;
static struct pr_registry *reg;
static struct pr_store *st;

static void teardown(void)
{
    if (st)
        st->ops->close(st);
    st = NULL;
    pr_registry_destroy(reg);
    reg = NULL;
}

/* Fresh registry with pods a, b, c and a store handle with these TTLs. */
static void setup_ttls(uint64_t room, uint64_t participant, uint64_t sid)
{
    teardown();
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.store, sizeof(cfg.store), "memory");
    cfg.room_ttl_ms = room;
    cfg.participant_ttl_ms = participant;
    cfg.sid_ttl_ms = sid;
    cfg.pod_ttl_ms = 15000;
    reg = pr_registry_create(15000);
    cr_assert_not_null(reg);
    cr_assert_eq(pr_registry_put(reg, "a", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_put(reg, "b", "10.0.0.2:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_put(reg, "c", "10.0.0.3:3000", 20, 80, NULL, NULL), 0);
    st = pr_store_memory_open(&cfg, reg);
    cr_assert_not_null(st);
}

static void setup_default(void)
{
    setup_ttls(24 * 3600 * 1000ull, 24 * 3600 * 1000ull, 120000);
}

static struct result get(enum pr_key_kind kind, const char *key)
{
    struct result r = {0};
    st->ops->get(st, kind, key, strlen(key), on_result, &r);
    cr_assert_eq(r.calls, 1, "callback must run before get returns");
    return r;
}

static struct result create(enum pr_key_kind kind, const char *key, const char *pod)
{
    struct result r = {0};
    st->ops->create(st, kind, key, strlen(key), pod, on_result, &r);
    cr_assert_eq(r.calls, 1, "callback must run before create returns");
    return r;
}

static struct result replace(enum pr_key_kind kind, const char *key, const char *expect,
                             const char *pod)
{
    struct result r = {0};
    st->ops->replace(st, kind, key, strlen(key), expect, pod, on_result, &r);
    cr_assert_eq(r.calls, 1, "callback must run before replace returns");
    return r;
}

static void expect_load(const char *pod, uint32_t rooms, uint32_t participants)
{
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(reg, pod, &p), 0);
    cr_expect_eq(p.load_rooms, rooms, "%s rooms %u != %u", pod, p.load_rooms, rooms);
    cr_expect_eq(p.load_participants, participants, "%s participants %u != %u", pod,
                 p.load_participants, participants);
}

TestSuite(store_memory, .init = setup_default, .fini = teardown);

Test(store_memory, open_by_name)
{
    char err[128] = "";
    struct pr_store *s = pr_store_open(&cfg, reg, NULL, err, sizeof(err));
    cr_assert_not_null(s);
    cr_expect_str_eq(s->ops->name, "memory");
    cr_expect(s->ops->up(s));
    s->ops->close(s);

    struct pr_config c = cfg;
    snprintf(c.store, sizeof(c.store), "redis://localhost:6379/0");
    /* The Redis store needs an event loop (tests/unit/store_redis_test.c opens it on one). */
    cr_expect_null(pr_store_open(&c, reg, NULL, err, sizeof(err)));
    cr_expect_not_null(strstr(err, "event loop"));
    snprintf(c.store, sizeof(c.store), "redis-sentinel://h:26379/mymaster");
    err[0] = '\0';
    cr_expect_null(pr_store_open(&c, reg, NULL, err, sizeof(err)));
    cr_expect_not_null(strstr(err, "event loop"));
    snprintf(c.store, sizeof(c.store), "etcd://x");
    err[0] = '\0';
    cr_expect_null(pr_store_open(&c, reg, NULL, err, sizeof(err)));
    cr_expect_neq(err[0], '\0');
}

Test(store_memory, get_absent)
{
    struct result r = get(PR_KEY_ROOM, "room_x");
    cr_expect_eq(r.status, -ENOENT);
    struct pr_assignment a;
    cr_expect_eq(st->ops->info(st, PR_KEY_ROOM, "room_x", 6, &a), -ENOENT);
    cr_expect_eq(st->ops->del(st, PR_KEY_ROOM, "room_x", 6), -ENOENT);
}

Test(store_memory, create_is_nx)
{
    struct result r = create(PR_KEY_ROOM, "room_1", "a");
    cr_expect_eq(r.status, 0);
    cr_expect_str_eq(r.pod, "a");
    r = create(PR_KEY_ROOM, "room_1", "b");
    cr_expect_eq(r.status, 0);
    cr_expect_str_eq(r.pod, "a", "the loser gets the winner's pod");
    r = get(PR_KEY_ROOM, "room_1");
    cr_expect_str_eq(r.pod, "a");
    /* Kinds are separate namespaces. */
    r = create(PR_KEY_PARTICIPANT, "room_1", "b");
    cr_expect_str_eq(r.pod, "b");
    r = create(PR_KEY_SID, "room_1", "c");
    cr_expect_str_eq(r.pod, "c");
    expect_load("a", 1, 0);
    expect_load("b", 0, 1);
    expect_load("c", 0, 0);
}

Test(store_memory, bad_arguments)
{
    char key[PR_KEY_MAX + 2];
    memset(key, 'k', sizeof(key));
    struct result r = {0};
    st->ops->create(st, PR_KEY_ROOM, key, PR_KEY_MAX + 1, "a", on_result, &r);
    cr_expect_eq(r.status, -EINVAL);
    st->ops->create(st, PR_KEY_ROOM, key, 0, "a", on_result, &r);
    cr_expect_eq(r.status, -EINVAL);
    st->ops->create(st, PR_KEY_COOKIE, key, 4, "a", on_result, &r);
    cr_expect_eq(r.status, -EINVAL);
    st->ops->create(st, PR_KEY_ROOM, key, 4, NULL, on_result, &r);
    cr_expect_eq(r.status, -EINVAL);
    st->ops->get(st, PR_KEY_ROOM, key, PR_KEY_MAX + 1, on_result, &r);
    cr_expect_eq(r.status, -EINVAL);
    cr_expect_eq(st->ops->set(st, PR_KEY_ROOM, key, 4, ""), -EINVAL);
    /* 128 bytes is the limit and works. */
    st->ops->create(st, PR_KEY_ROOM, key, PR_KEY_MAX, "a", on_result, &r);
    cr_expect_eq(r.status, 0);
    cr_expect_eq(r.calls, 6);
}

Test(store_memory, replace_is_cas)
{
    create(PR_KEY_ROOM, "r", "a");
    struct result r = replace(PR_KEY_ROOM, "r", "b", "c");
    cr_expect_eq(r.status, 0);
    cr_expect_str_eq(r.pod, "a", "expect mismatch leaves the value");
    r = replace(PR_KEY_ROOM, "r", NULL, "c");
    cr_expect_str_eq(r.pod, "a");
    r = replace(PR_KEY_ROOM, "r", "a", "c");
    cr_expect_str_eq(r.pod, "c");
    cr_expect_str_eq(get(PR_KEY_ROOM, "r").pod, "c");
    /* Absent keys are created. */
    r = replace(PR_KEY_PARTICIPANT, "p", "gone", "b");
    cr_expect_str_eq(r.pod, "b");
    expect_load("a", 0, 0);
    expect_load("b", 0, 1);
    expect_load("c", 1, 0);
}

Test(store_memory, set_del_info)
{
    uint64_t before = pr_now_ms();
    cr_expect_eq(st->ops->set(st, PR_KEY_ROOM, "room_9", 6, "a"), 0);
    struct pr_assignment a;
    cr_assert_eq(st->ops->info(st, PR_KEY_ROOM, "room_9", 6, &a), 0);
    cr_expect_str_eq(a.pod, "a");
    cr_expect_eq(a.participant_count, 0);
    cr_expect_geq(a.assigned_at_ms, before);
    cr_expect_leq(a.assigned_at_ms, pr_now_ms());
    cr_expect_eq(st->ops->set(st, PR_KEY_ROOM, "room_9", 6, "b"), 0);
    cr_assert_eq(st->ops->info(st, PR_KEY_ROOM, "room_9", 6, &a), 0);
    cr_expect_str_eq(a.pod, "b");
    expect_load("a", 0, 0);
    expect_load("b", 1, 0);
    cr_expect_eq(st->ops->set(st, PR_KEY_PARTICIPANT, "u1", 2, "c"), 0);
    cr_assert_eq(st->ops->info(st, PR_KEY_PARTICIPANT, "u1", 2, &a), 0);
    cr_expect_str_eq(a.pod, "c");
    expect_load("c", 0, 1);
    cr_expect_eq(st->ops->del(st, PR_KEY_ROOM, "room_9", 6), 0);
    cr_expect_eq(st->ops->del(st, PR_KEY_ROOM, "room_9", 6), -ENOENT);
    cr_expect_eq(st->ops->del(st, PR_KEY_PARTICIPANT, "u1", 2), 0);
    expect_load("b", 0, 0);
    expect_load("c", 0, 0);
}

Test(store_memory, participant_count_distinct)
{
    create(PR_KEY_ROOM, "room_a", "a");
    const char *who[] = {"alice", "bob", "alice", "sid-123", "bob", "carol"};
    for (size_t i = 0; i < 6; i++)
        st->ops->room_join(st, "room_a", 6, who[i], strlen(who[i]));
    st->ops->room_join(st, "room_none", 9, "alice", 5); /* unknown room: ignored */
    st->ops->room_join(st, "room_a", 6, "", 0);         /* empty identity: ignored */
    struct pr_assignment a;
    cr_assert_eq(st->ops->info(st, PR_KEY_ROOM, "room_a", 6, &a), 0);
    cr_expect_eq(a.participant_count, 4);
    expect_load("a", 1, 4);
    cr_expect_eq(get(PR_KEY_ROOM, "room_none").status, -ENOENT);

    /* Many identities: the set grows and still counts exactly. */
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "user-%d", i % 500);
        st->ops->room_join(st, "room_a", 6, id, strlen(id));
    }
    cr_assert_eq(st->ops->info(st, PR_KEY_ROOM, "room_a", 6, &a), 0);
    cr_expect_eq(a.participant_count, 504);
    expect_load("a", 1, 504);
}

Test(store_memory, load_bookkeeping)
{
    create(PR_KEY_ROOM, "r1", "a");
    create(PR_KEY_ROOM, "r2", "a");
    st->ops->room_join(st, "r1", 2, "u1", 2);
    st->ops->room_join(st, "r1", 2, "u2", 2);
    create(PR_KEY_PARTICIPANT, "u1", "b");
    create(PR_KEY_SID, "s1", "b"); /* sids carry no load */
    expect_load("a", 2, 2);
    expect_load("b", 0, 1);

    /* Moving a room moves its participants along. */
    replace(PR_KEY_ROOM, "r1", "a", "b");
    expect_load("a", 1, 0);
    expect_load("b", 1, 3);
    struct pr_assignment as;
    cr_assert_eq(st->ops->info(st, PR_KEY_ROOM, "r1", 2, &as), 0);
    cr_expect_eq(as.participant_count, 2);

    cr_expect_eq(st->ops->del(st, PR_KEY_ROOM, "r1", 2), 0);
    expect_load("b", 0, 1);
    cr_expect_eq(st->ops->del(st, PR_KEY_SID, "s1", 2), 0);
    cr_expect_eq(st->ops->del(st, PR_KEY_PARTICIPANT, "u1", 2), 0);
    cr_expect_eq(st->ops->del(st, PR_KEY_ROOM, "r2", 2), 0);
    expect_load("a", 0, 0);
    expect_load("b", 0, 0);

    /* Unknown pods are accepted by the store, ignored by the registry. */
    cr_expect_str_eq(create(PR_KEY_ROOM, "r3", "ghost").pod, "ghost");
}

Test(store_memory, release_pod_and_counts)
{
    create(PR_KEY_ROOM, "r1", "a");
    create(PR_KEY_ROOM, "r2", "b");
    create(PR_KEY_ROOM, "r3", "a");
    create(PR_KEY_PARTICIPANT, "p1", "a");
    create(PR_KEY_PARTICIPANT, "p2", "b");
    create(PR_KEY_SID, "s1", "a");
    uint64_t rooms = 0, parts = 0;
    st->ops->counts(st, &rooms, &parts);
    cr_expect_eq(rooms, 3);
    cr_expect_eq(parts, 2);
    expect_load("a", 2, 1);

    st->ops->release_pod(st, "a");
    st->ops->counts(st, &rooms, &parts);
    cr_expect_eq(rooms, 1);
    cr_expect_eq(parts, 1);
    expect_load("a", 0, 0);
    expect_load("b", 1, 1);
    cr_expect_eq(get(PR_KEY_ROOM, "r1").status, -ENOENT);
    cr_expect_eq(get(PR_KEY_SID, "s1").status, -ENOENT);
    cr_expect_str_eq(get(PR_KEY_ROOM, "r2").pod, "b");
    /* Reassigned on next use. */
    cr_expect_str_eq(create(PR_KEY_ROOM, "r1", "c").pod, "c");
    st->ops->release_pod(st, "nobody");
    st->ops->counts(st, &rooms, NULL);
    cr_expect_eq(rooms, 2);
}

/* Entries share one counted copy of each pod name: names that are prefixes of each other
 * stay apart, the longest name round-trips whole, and moving, deleting and releasing keys
 * drop the copies they used (the sanitizer build checks that none is used after its free). */
Test(store_memory, pod_names_are_shared_exactly)
{
    char longest[PR_POD_NAME_MAX + 1];
    memset(longest, 'x', PR_POD_NAME_MAX);
    longest[PR_POD_NAME_MAX] = '\0';
    create(PR_KEY_ROOM, "r1", "backend-1");
    create(PR_KEY_ROOM, "r2", "backend-10");
    create(PR_KEY_SID, "s1", "backend-1");
    create(PR_KEY_PARTICIPANT, "p1", longest);
    cr_expect_str_eq(get(PR_KEY_ROOM, "r1").pod, "backend-1");
    cr_expect_str_eq(get(PR_KEY_ROOM, "r2").pod, "backend-10");
    cr_expect_str_eq(get(PR_KEY_PARTICIPANT, "p1").pod, longest);

    for (int i = 0; i < 50; i++) { /* r2 back and forth: each move swaps its reference */
        cr_assert_str_eq(replace(PR_KEY_ROOM, "r2", "backend-10", "backend-1").pod, "backend-1");
        cr_assert_str_eq(replace(PR_KEY_ROOM, "r2", "backend-1", "backend-10").pod, "backend-10");
    }
    cr_expect_eq(st->ops->del(st, PR_KEY_ROOM, "r1", 2), 0);
    cr_expect_str_eq(get(PR_KEY_SID, "s1").pod, "backend-1"); /* the copy is still used */
    st->ops->release_pod(st, "backend-1");
    cr_expect_eq(get(PR_KEY_SID, "s1").status, -ENOENT);
    cr_expect_str_eq(get(PR_KEY_ROOM, "r2").pod, "backend-10");
    cr_expect_eq(st->ops->set(st, PR_KEY_ROOM, "r3", 2, "backend-1"), 0); /* a new copy */
    cr_expect_str_eq(get(PR_KEY_ROOM, "r3").pod, "backend-1");
    st->ops->release_pod(st, "backend-10");
    cr_expect_eq(get(PR_KEY_ROOM, "r2").status, -ENOENT);
    cr_expect_str_eq(get(PR_KEY_ROOM, "r3").pod, "backend-1");
    cr_expect_str_eq(get(PR_KEY_PARTICIPANT, "p1").pod, longest);
}

Test(store_memory, handles_share_one_table)
{
    struct pr_store *s2 = pr_store_memory_open(&cfg, reg);
    cr_assert_not_null(s2);
    create(PR_KEY_ROOM, "shared", "b");
    struct result r = {0};
    s2->ops->get(s2, PR_KEY_ROOM, "shared", 6, on_result, &r);
    cr_expect_eq(r.status, 0);
    cr_expect_str_eq(r.pod, "b");
    s2->ops->create(s2, PR_KEY_ROOM, "shared", 6, "c", on_result, &r);
    cr_expect_str_eq(r.pod, "b");
    /* Closing one handle keeps the data for the others. */
    st->ops->close(st);
    st = NULL;
    s2->ops->get(s2, PR_KEY_ROOM, "shared", 6, on_result, &r);
    cr_expect_str_eq(r.pod, "b");
    s2->ops->close(s2);
    /* Last handle gone: a new one starts empty. */
    st = pr_store_memory_open(&cfg, reg);
    cr_expect_eq(get(PR_KEY_ROOM, "shared").status, -ENOENT);
}

Test(store_memory, expiry)
{
    setup_ttls(60, 60, 60);
    create(PR_KEY_ROOM, "r", "a");
    st->ops->room_join(st, "r", 1, "u", 1);
    create(PR_KEY_PARTICIPANT, "p", "b");
    create(PR_KEY_SID, "s", "c");
    expect_load("a", 1, 1);
    expect_load("b", 0, 1);
    sleep_ms(100);
    cr_expect_eq(get(PR_KEY_ROOM, "r").status, -ENOENT);
    cr_expect_eq(get(PR_KEY_PARTICIPANT, "p").status, -ENOENT);
    cr_expect_eq(get(PR_KEY_SID, "s").status, -ENOENT);
    expect_load("a", 0, 0);
    expect_load("b", 0, 0);
    uint64_t rooms = 9, parts = 9;
    st->ops->counts(st, &rooms, &parts);
    cr_expect_eq(rooms, 0);
    cr_expect_eq(parts, 0);
    /* An expired key can be created again. */
    cr_expect_str_eq(create(PR_KEY_ROOM, "r", "b").pod, "b");
    struct pr_assignment as;
    cr_assert_eq(st->ops->info(st, PR_KEY_ROOM, "r", 1, &as), 0);
    cr_expect_eq(as.participant_count, 0);
}

Test(store_memory, ttl_per_kind)
{
    setup_ttls(60, 10000, 10000);
    create(PR_KEY_ROOM, "k", "a");
    create(PR_KEY_PARTICIPANT, "k", "a");
    create(PR_KEY_SID, "k", "a");
    sleep_ms(100);
    cr_expect_eq(get(PR_KEY_ROOM, "k").status, -ENOENT);
    cr_expect_eq(get(PR_KEY_PARTICIPANT, "k").status, 0);
    cr_expect_eq(get(PR_KEY_SID, "k").status, 0);
}

Test(store_memory, tick_evicts_in_bounded_steps)
{
    setup_ttls(50, 50, 50);
    char key[32];
    for (int i = 0; i < 30000; i++) {
        snprintf(key, sizeof(key), "room-%d", i);
        create(PR_KEY_ROOM, key, i % 2 ? "a" : "b");
    }
    expect_load("a", 15000, 0);
    sleep_ms(80);
    uint64_t rooms = 0;
    st->ops->tick(st);
    st->ops->counts(st, &rooms, NULL);
    cr_expect_gt(rooms, 0, "one tick does bounded work");
    cr_expect_lt(rooms, 30000);
    for (int i = 0; i < 64 && rooms > 0; i++) {
        st->ops->tick(st);
        st->ops->counts(st, &rooms, NULL);
    }
    cr_expect_eq(rooms, 0);
    expect_load("a", 0, 0);
    expect_load("b", 0, 0);
}

Test(store_memory, get_renews_ttl)
{
    /* ttl 200 ms < 2 min: renewal at most every 100 ms. */
    setup_ttls(200, 200, 200);
    create(PR_KEY_ROOM, "r", "a");
    for (int i = 0; i < 6; i++) {
        sleep_ms(120);
        cr_assert_eq(get(PR_KEY_ROOM, "r").status, 0, "renewed by get (round %d)", i);
    }
    sleep_ms(260);
    cr_expect_eq(get(PR_KEY_ROOM, "r").status, -ENOENT);
}

Test(store_memory, renewal_is_throttled)
{
    setup_ttls(200, 200, 200);
    create(PR_KEY_ROOM, "r", "a");
    sleep_ms(40);
    cr_assert_eq(get(PR_KEY_ROOM, "r").status, 0); /* too soon to renew */
    sleep_ms(190);                                 /* 230 ms after creation */
    cr_expect_eq(get(PR_KEY_ROOM, "r").status, -ENOENT);
}

Test(store_memory, hundred_thousand_keys)
{
    char key[32];
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "participant-%d", i);
        cr_assert_eq(st->ops->set(st, PR_KEY_PARTICIPANT, key, (size_t)len, i % 3 ? "a" : "b"), 0);
    }
    uint64_t parts = 0;
    st->ops->counts(st, NULL, &parts);
    cr_expect_eq(parts, (uint64_t)n);
    struct pr_assignment a;
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "participant-%d", i);
        cr_assert_eq(st->ops->info(st, PR_KEY_PARTICIPANT, key, (size_t)len, &a), 0);
        cr_assert_str_eq(a.pod, i % 3 ? "a" : "b");
    }
    cr_expect_eq(get(PR_KEY_PARTICIPANT, "participant-100000").status, -ENOENT);
    for (int i = 0; i < n; i += 2) {
        int len = snprintf(key, sizeof(key), "participant-%d", i);
        cr_assert_eq(st->ops->del(st, PR_KEY_PARTICIPANT, key, (size_t)len), 0);
    }
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "participant-%d", i);
        int rc = st->ops->info(st, PR_KEY_PARTICIPANT, key, (size_t)len, &a);
        cr_assert_eq(rc, i % 2 ? 0 : -ENOENT, "key %d", i);
    }
    st->ops->counts(st, NULL, &parts);
    cr_expect_eq(parts, (uint64_t)n / 2);
    struct pr_pod_info pa, pb;
    cr_assert_eq(pr_registry_get(reg, "a", &pa), 0);
    cr_assert_eq(pr_registry_get(reg, "b", &pb), 0);
    cr_expect_eq(pa.load_participants + pb.load_participants, (uint32_t)n / 2);
}

struct racer {
    const char *pod;
    char winners[500][64];
};

static void *race_thread(void *arg)
{
    struct racer *r = arg;
    char key[32];
    for (int i = 0; i < 500; i++) {
        struct result res = {0};
        int len = snprintf(key, sizeof(key), "room_%d", i);
        st->ops->create(st, PR_KEY_ROOM, key, (size_t)len, r->pod, on_result, &res);
        snprintf(r->winners[i], sizeof(r->winners[i]), "%s", res.pod);
    }
    return NULL;
}

Test(store_memory, concurrent_create_single_winner)
{
    static struct racer racers[3] = {{.pod = "a"}, {.pod = "b"}, {.pod = "c"}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, race_thread, &racers[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < 500; k++) {
        cr_expect_str_eq(racers[0].winners[k], racers[1].winners[k]);
        cr_expect_str_eq(racers[1].winners[k], racers[2].winners[k]);
    }
    uint64_t rooms = 0;
    st->ops->counts(st, &rooms, NULL);
    cr_expect_eq(rooms, 500);
    struct pr_pod_info p[3];
    uint32_t total = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pr_registry_get(reg, racers[i].pod, &p[i]), 0);
        total += p[i].load_rooms;
    }
    cr_expect_eq(total, 500);
}

/* ---- SPEC 1.1: active rooms, tentative assignments, --max-assignments ------------------ */

/* Like setup_ttls with an activity window and a per-kind cap. */
static void setup_active(uint64_t active_ms, uint64_t max)
{
    teardown();
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.store, sizeof(cfg.store), "memory");
    cfg.room_ttl_ms = cfg.participant_ttl_ms = 24 * 3600 * 1000ull;
    cfg.sid_ttl_ms = 120000;
    cfg.pod_ttl_ms = 15000;
    cfg.room_active_ms = active_ms;
    cfg.max_assignments = max;
    reg = pr_registry_create(15000);
    cr_assert_not_null(reg);
    cr_assert_eq(pr_registry_put(reg, "a", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(pr_registry_put(reg, "b", "10.0.0.2:3000", 20, 80, NULL, NULL), 0);
    st = pr_store_memory_open(&cfg, reg);
    cr_assert_not_null(st);
}

Test(store_memory, tentative_assignment_expires_after_room_active)
{
    setup_active(150, 0);
    cr_assert_eq(create(PR_KEY_ROOM, "one-shot", "a").status, 0);
    cr_assert_eq(create(PR_KEY_PARTICIPANT, "p-one-shot", "a").status, 0);
    cr_assert_eq(create(PR_KEY_SID, "sid-one-shot", "a").status, 0);
    expect_load("a", 0, 0); /* a one-shot key is no load */
    sleep_ms(200);
    cr_expect_eq(get(PR_KEY_ROOM, "one-shot").status, -ENOENT);
    cr_expect_eq(get(PR_KEY_PARTICIPANT, "p-one-shot").status, -ENOENT);
    cr_expect_eq(get(PR_KEY_SID, "sid-one-shot").status, -ENOENT);
    st->ops->tick(st);
    uint64_t rooms = 9, parts = 9;
    st->ops->counts(st, &rooms, &parts);
    cr_expect_eq(rooms, 0);
    cr_expect_eq(parts, 0);
}

Test(store_memory, second_use_makes_it_live)
{
    setup_active(150, 0);
    create(PR_KEY_ROOM, "r-get", "a");
    create(PR_KEY_ROOM, "r-touch", "b");
    cr_assert_eq(get(PR_KEY_ROOM, "r-get").status, 0); /* second use: by its key */
    st->ops->touch(st, PR_KEY_ROOM, "r-touch", 7);     /* second use: a sid-routed request */
    sleep_ms(250);
    cr_expect_eq(get(PR_KEY_ROOM, "r-get").status, 0, "a used room lives for --room-ttl");
    cr_expect_eq(get(PR_KEY_ROOM, "r-touch").status, 0);
}

Test(store_memory, touch_by_hash)
{
    setup_active(150, 0);
    create(PR_KEY_ROOM, "r-tunnel", "a");
    st->ops->touch_hash(st, PR_KEY_ROOM, pr_store_key_hash(PR_KEY_ROOM, "r-tunnel", 8));
    st->ops->tick(st);
    expect_load("a", 1, 0);
    sleep_ms(250);
    cr_expect_eq(get(PR_KEY_ROOM, "r-tunnel").status, 0);
    /* unknown keys and hashes are ignored */
    st->ops->touch(st, PR_KEY_ROOM, "nope", 4);
    st->ops->touch_hash(st, PR_KEY_ROOM, 12345);
}

Test(store_memory, load_counts_only_active_rooms)
{
    setup_active(300, 0);
    create(PR_KEY_ROOM, "busy", "a");
    create(PR_KEY_ROOM, "idle", "a");
    create(PR_KEY_ROOM, "other", "b");
    st->ops->room_join(st, "busy", 4, "p1", 2);
    st->ops->room_join(st, "busy", 4, "p2", 2);
    expect_load("a", 0, 0);
    get(PR_KEY_ROOM, "busy");
    get(PR_KEY_ROOM, "idle");
    get(PR_KEY_ROOM, "other");
    expect_load("a", 2, 2);
    expect_load("b", 1, 0);
    st->ops->room_join(st, "busy", 4, "p3", 2); /* a join of an active room counts at once */
    expect_load("a", 2, 3);
    /* keep "busy" active with touches (throttled, so space them out) */
    for (int i = 0; i < 5; i++) {
        sleep_ms(80);
        st->ops->touch(st, PR_KEY_ROOM, "busy", 4);
        st->ops->tick(st);
    }
    /* 400 ms later: "idle" and "other" lapsed, "busy" is still active */
    expect_load("a", 1, 3);
    expect_load("b", 0, 0);
    /* idle assignments keep their pod */
    struct result r = get(PR_KEY_ROOM, "other");
    cr_expect_eq(r.status, 0);
    cr_expect_str_eq(r.pod, "b");
    expect_load("b", 1, 0); /* and count again once used */
    sleep_ms(350);
    st->ops->tick(st);
    expect_load("a", 0, 0);
    expect_load("b", 0, 0);
}

Test(store_memory, recount_gives_load_to_pods_registered_later)
{
    setup_active(5000, 0);
    create(PR_KEY_ROOM, "early", "late-pod");
    get(PR_KEY_ROOM, "early");
    cr_assert_eq(pr_registry_put(reg, "late-pod", "10.0.0.9:3000", 20, 80, NULL, NULL), 0);
    expect_load("late-pod", 0, 0);
    st->ops->tick(st);
    expect_load("late-pod", 1, 0);
}

Test(store_memory, max_assignments_per_kind)
{
    setup_active(60000, 3);
    for (int i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof(k), "room-%d", i);
        cr_assert_eq(create(PR_KEY_ROOM, k, "a").status, 0);
    }
    struct result r = create(PR_KEY_ROOM, "room-3", "a");
    cr_expect_eq(r.status, -ENOSPC, "over --max-assignments: not stored");
    cr_expect_eq(get(PR_KEY_ROOM, "room-3").status, -ENOENT);
    /* known keys still work, other kinds have their own cap */
    cr_expect_eq(create(PR_KEY_ROOM, "room-1", "b").status, 0);
    cr_expect_eq(create(PR_KEY_PARTICIPANT, "p-0", "a").status, 0);
    uint64_t rooms = 0;
    st->ops->counts(st, &rooms, NULL);
    cr_expect_eq(rooms, 3);
}

Test(store_memory, operator_pin_is_live)
{
    setup_active(100, 0);
    cr_assert_eq(st->ops->set(st, PR_KEY_ROOM, "pinned", 6, "b"), 0);
    sleep_ms(180);
    cr_expect_eq(get(PR_KEY_ROOM, "pinned").status, 0);
}

/* The table hash is SipHash-1-3 under a secret per-process key: the reference function
 * against OpenSSL's SIPHASH MAC (`openssl mac -macopt hexkey:000102…0f -macopt size:8
 * -macopt c-rounds:1 -macopt d-rounds:3 SIPHASH` of the bytes 00, 01, … len-1), and the
 * table's own key is not the zero key. */
Test(atable_hash, siphash13_matches_openssl_and_is_keyed)
{
    static const char *const want[] = {
        "DCC40F055801ACAB", "93CA577DF39BF4C9", "4DD4C74D029BCB82", "FBF7DDE7B80AF88B",
        "2883D388605775CF", "673B53492FD5F9DE", "A7229FC5502B0DC5", "4011B19B987D92D3",
        "8E9A298D11959036", "E43D066CB38EA425", "7F09FF92EE85DE79", "52C34DF9C118C170",
        "A2D9B457B184A378", "A7FF29120C766F30", "345DF9C011A15A60", "5699512A6DD820D3",
        "668B907D1ADD4FCC", "0CD8DB639068F29C", "3EE673B49C38FC8F", "1C7D298DE59D1FF2",
        "40E0CCA6462FDCC0", "44F8452BFEAB92B9", "2E8720A39B7BFE7F", "23C1E6DA7F0E5A52"};
    unsigned char msg[24];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)i;
    const uint64_t k0 = 0x0706050403020100u, k1 = 0x0f0e0d0c0b0a0908u;
    for (size_t n = 0; n < sizeof(want) / sizeof(want[0]); n++) {
        uint64_t h = pr_siphash13(k0, k1, msg, n);
        char got[17];
        for (int b = 0; b < 8; b++) /* OpenSSL prints the MAC's bytes: little-endian */
            snprintf(got + 2 * b, 3, "%02X", (unsigned)((h >> (8 * b)) & 0xff));
        cr_expect_str_eq(got, want[n], "length %zu", n);
    }
    const char *key = "room_hash_flood";
    uint64_t h = pr__atab_hash(1, key, strlen(key));
    cr_expect_neq(h, pr_siphash13(0, 1, key, strlen(key)), "the table's key is not zero");
    cr_expect_neq(h, pr__atab_hash(2, key, strlen(key)), "the kind varies the hash");
    cr_expect_eq(h, pr__atab_hash(1, key, strlen(key)));
}
