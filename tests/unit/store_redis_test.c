/* Unit tests of the Redis store's wire formats (redis_proto.h): --store URLs, key names,
 * room values (HyperStudy's, ours, garbage), pod rows and P events messages; the store's
 * script, cache and batching against a real redis-server; and a hostile Redis (a fake
 * server whose replies try to make the store allocate or buffer without bound). The store's
 * behaviour end to end is covered by tests/e2e/redis*.test.js. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/redis_proto.h"

/* ---- URLs ---- */

Test(redis_url, password_host_port_db)
{
    struct pr_redis_url u;
    char err[200] = "";
    cr_assert_eq(pr_redis_url_parse("redis://:s3cret@redis.example:6380/2", &u, err, sizeof(err)),
                 0, "%s", err);
    cr_expect_not(u.sentinel);
    cr_expect_str_eq(u.user, "");
    cr_expect_str_eq(u.password, "s3cret");
    cr_expect_eq(u.nhosts, 1);
    cr_expect_str_eq(u.hosts[0].host, "redis.example");
    cr_expect_eq(u.hosts[0].port, 6380);
    cr_expect_eq(u.db, 2);
}

Test(redis_url, defaults_user_ipv6_escapes)
{
    struct pr_redis_url u;
    char err[200] = "";
    cr_assert_eq(pr_redis_url_parse("redis://127.0.0.1", &u, err, sizeof(err)), 0);
    cr_expect_eq(u.hosts[0].port, PR_REDIS_DEFAULT_PORT);
    cr_expect_eq(u.db, 0);
    cr_expect_str_eq(u.password, "");
    cr_assert_eq(pr_redis_url_parse("redis://app:p%40ss@[::1]:7000/15", &u, err, sizeof(err)), 0,
                 "%s", err);
    cr_expect_str_eq(u.user, "app");
    cr_expect_str_eq(u.password, "p@ss");
    cr_expect_str_eq(u.hosts[0].host, "::1");
    cr_expect_eq(u.hosts[0].port, 7000);
    cr_expect_eq(u.db, 15);
    cr_assert_eq(pr_redis_url_parse("redis://h/", &u, err, sizeof(err)), 0);
    cr_expect_eq(u.db, 0);
}

Test(redis_url, sentinel_lists)
{
    struct pr_redis_url u;
    char err[200] = "";
    cr_assert_eq(pr_redis_url_parse("redis-sentinel://s1:26379,10.0.0.2:26380,s3/mymaster", &u, err,
                                    sizeof(err)),
                 0, "%s", err);
    cr_expect(u.sentinel);
    cr_expect_eq(u.nhosts, 3);
    cr_expect_str_eq(u.hosts[0].host, "s1");
    cr_expect_eq(u.hosts[1].port, 26380);
    cr_expect_str_eq(u.hosts[2].host, "s3");
    cr_expect_eq(u.hosts[2].port, PR_REDIS_SENTINEL_PORT);
    cr_expect_str_eq(u.master, "mymaster");
    cr_assert_eq(pr_redis_url_parse("redis-sentinel://:pw@h:1/m", &u, err, sizeof(err)), 0);
    cr_expect_str_eq(u.password, "pw");
    cr_expect_eq(u.nhosts, 1);
}

Test(redis_url, bad_urls)
{
    static const char *const bad[] = {
        "http://h",
        "redis://",
        "redis://:@h",
        "redis://h:0",
        "redis://h:70000",
        "redis://h:12x",
        "redis://h/db",
        "redis://h/-1",
        "redis://a,b",
        "redis://h h",
        "redis://[::1",
        "redis-sentinel://a:1",
        "redis-sentinel://a:1/",
        "redis-sentinel://a:1,/m",
        "redis-sentinel://a:1/m/x",
        "redis-sentinel://1,2,3,4,5,6,7,8,9/m",
        "redis://:%zz@h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pr_redis_url u;
        char err[200] = "";
        cr_expect_eq(pr_redis_url_parse(bad[i], &u, err, sizeof(err)), -EINVAL, "%s", bad[i]);
        cr_expect_neq(err[0], '\0', "%s", bad[i]);
    }
}

Test(redis_url, error_never_shows_the_password)
{
    struct pr_redis_url u;
    char err[200] = "";
    cr_expect_eq(pr_redis_url_parse("redis://:topsecret@h:99999", &u, err, sizeof(err)), -EINVAL);
    cr_expect_null(strstr(err, "topsecret"), "%s", err);
    char longpw[400];
    memset(longpw, 'x', sizeof(longpw));
    snprintf(longpw, sizeof(longpw), "redis://:%0300d@h", 0);
    cr_expect_eq(pr_redis_url_parse(longpw, &u, err, sizeof(err)), -EINVAL);
}

/* ---- keys ---- */

Test(redis_keys, schema)
{
    char k[PR_REDIS_KEY_MAX];
    cr_expect_eq(pr_redis_assignment_key(k, sizeof(k), "podrouter:", PR_KEY_ROOM, "room_x", 6),
                 (int)strlen("room:room_x:pod"));
    cr_expect_str_eq(k, "room:room_x:pod"); /* HyperStudy's key: never prefixed */
    cr_expect_gt(pr_redis_assignment_key(k, sizeof(k), "podrouter:", PR_KEY_PARTICIPANT, "p-1", 3),
                 0);
    cr_expect_str_eq(k, "podrouter:participant:p-1");
    cr_expect_gt(pr_redis_assignment_key(k, sizeof(k), "pr:", PR_KEY_SID, "lv_VI97H-AAAC", 13), 0);
    cr_expect_str_eq(k, "pr:sid:lv_VI97H-AAAC");
    cr_expect_gt(pr_redis_members_key(k, sizeof(k), "podrouter:", "room_x", 6), 0);
    cr_expect_str_eq(k, "podrouter:room-members:room_x");
    cr_expect_gt(pr_redis_pod_key(k, sizeof(k), "podrouter:", "backend-1"), 0);
    cr_expect_str_eq(k, "podrouter:pod:backend-1");
    cr_expect_gt(pr_redis_prefixed(k, sizeof(k), "podrouter:", "events"), 0);
    cr_expect_str_eq(k, "podrouter:events");
    /* Ids keep ':' and '.', which are legal key bytes; the id length is what counts. */
    cr_expect_gt(pr_redis_assignment_key(k, sizeof(k), "", PR_KEY_ROOM, "a:b.c", 5), 0);
    cr_expect_str_eq(k, "room:a:b.c:pod");
}

Test(redis_keys, rejects_bad_ids_kinds_and_overflow)
{
    char k[PR_REDIS_KEY_MAX];
    cr_expect_eq(pr_redis_assignment_key(k, sizeof(k), "p:", PR_KEY_ROOM, "a b", 3), -EINVAL);
    cr_expect_eq(pr_redis_assignment_key(k, sizeof(k), "p:", PR_KEY_ROOM, "a\nb", 3), -EINVAL);
    cr_expect_eq(pr_redis_assignment_key(k, sizeof(k), "p:", PR_KEY_ROOM, "", 0), -EINVAL);
    cr_expect_eq(pr_redis_assignment_key(k, sizeof(k), "p:", PR_KEY_COOKIE, "x", 1), -EINVAL);
    cr_expect_eq(pr_redis_pod_key(k, sizeof(k), "p:", "Bad_Name"), -EINVAL);
    char id[PR_KEY_MAX + 2];
    memset(id, 'a', sizeof(id));
    cr_expect_gt(pr_redis_assignment_key(k, sizeof(k), "p:", PR_KEY_SID, id, PR_KEY_MAX), 0);
    cr_expect_eq(pr_redis_assignment_key(k, sizeof(k), "p:", PR_KEY_SID, id, PR_KEY_MAX + 1),
                 -EINVAL);
    char small[16];
    cr_expect_eq(
        pr_redis_assignment_key(small, sizeof(small), "podrouter:", PR_KEY_SID, "abcdefgh", 8),
        -ENAMETOOLONG);
}

/* Our RESP formatter writes exactly what hiredis's would (the bytes Redis gets). */
Test(redis_resp, same_bytes_as_hiredis)
{
    static char big[1500];
    memset(big, 'x', sizeof(big));
    const char *argv[] = {"EVALSHA", "0123456789abcdef0123456789abcdef01234567", "2", "", "a\r\nb",
                          big, "12345678901234567890"};
    size_t argl[] = {7, 40, 1, 0, 4, sizeof(big), 20};
    char small[64];
    for (int argc = 1; argc <= 7; argc++) {
        char *want = NULL;
        long long wl = redisFormatCommandArgv(&want, argc, argv, argl);
        cr_assert_gt(wl, 0);
        size_t n = 0;
        char *got = pr_redis_command(small, sizeof(small), argc, argv, argl, NULL, 0, 0, &n);
        cr_assert_not_null(got);
        cr_expect_eq(n, (size_t)wl, "length with %d arguments", argc);
        cr_expect_eq(memcmp(got, want, n), 0, "bytes with %d arguments", argc);
        cr_expect(got != small || n <= sizeof(small), "more than the small buffer holds");
        if (got != small)
            free(got);
        /* the same command as 2 arguments plus the rest already formatted (a batch's tail) */
        if (argc > 2) {
            char tail[4096];
            size_t tl = 0;
            for (int i = 2; i < argc; i++)
                tl += pr_redis_bulk(tail + tl, argv[i], argl[i]);
            got = pr_redis_command(small, sizeof(small), 2, argv, argl, tail, tl, argc - 2, &n);
            cr_assert_not_null(got);
            cr_expect_eq(n, (size_t)wl);
            cr_expect_eq(memcmp(got, want, n), 0, "tail form with %d arguments", argc);
            if (got != small)
                free(got);
        }
        redisFreeCommand(want);
    }
    char d[21];
    cr_expect_eq(pr_redis_u64(d, 0), 1);
    cr_expect_str_eq(d, "0");
    cr_expect_eq(pr_redis_u64(d, 18446744073709551615ull), 20);
    cr_expect_str_eq(d, "18446744073709551615");
    static const struct {
        uint64_t v;
        const char *s;
    } nums[] = {{7, "7"}, {9, "9"}, {10, "10"}, {42, "42"}, {99, "99"}, {100, "100"}};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        cr_expect_eq(pr_redis_u64(d, nums[i].v), strlen(nums[i].s));
        cr_expect_str_eq(d, nums[i].s);
    }
    cr_expect_eq(pr_redis_u64(d, 86400000), 8);
    cr_expect_str_eq(d, "86400000");
    /* every length of number, both sides of every power of ten, and a spread of others */
    char want[32];
    uint64_t p10 = 1, x = 0x9e3779b97f4a7c15ull;
    for (int e = 0; e < 20; e++, p10 *= 10) {
        const uint64_t vs[] = {p10 - 1, p10, p10 + 1, p10 * 3 + 7, x % (p10 * 10 - 1)};
        for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
            snprintf(want, sizeof(want), "%llu", (unsigned long long)vs[i]);
            cr_expect_eq(pr_redis_u64(d, vs[i]), strlen(want), "length of %s", want);
            cr_expect_str_eq(d, want);
        }
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    }
    for (uint64_t v = 0; v <= 1000; v++) { /* the one- and two-digit shortcuts and past them */
        snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
        cr_assert_eq(pr_redis_u64(d, v), strlen(want), "length of %s", want);
        cr_assert_str_eq(d, want);
    }
}

Test(redis_keys, kind_names)
{
    cr_expect_str_eq(pr_redis_kind_name(PR_KEY_ROOM), "room");
    cr_expect_null(pr_redis_kind_name(PR_KEY_NONE));
    cr_expect_eq(pr_redis_kind_parse("participant", 11), PR_KEY_PARTICIPANT);
    cr_expect_eq(pr_redis_kind_parse("sid", 3), PR_KEY_SID);
    cr_expect_eq(pr_redis_kind_parse("cookie", 6), -1);
    cr_expect_eq(pr_redis_kind_parse("roo", 3), -1);
}

/* ---- room values ---- */

Test(redis_room, hyperstudy_value)
{
    struct pr_redis_room r;
    const char *v = "{\"podId\":\"backend-2\",\"participantCount\":3,\"assignedAt\":1700000000123}";
    cr_assert_eq(pr_redis_room_parse(v, strlen(v), &r), 0);
    cr_expect_str_eq(r.pod, "backend-2");
    cr_expect_eq(r.participant_count, 3);
    cr_expect_eq(r.assigned_at_ms, 1700000000123ull);
    /* Written by other code: extra fields, string numbers, missing count. */
    v = "{\"podId\":\"backend-0\",\"assignedAt\":\"1700000000000\",\"experimentId\":\"e1\"}";
    cr_assert_eq(pr_redis_room_parse(v, strlen(v), &r), 0);
    cr_expect_eq(r.participant_count, 0);
    cr_expect_eq(r.assigned_at_ms, 1700000000000ull);
    /* A DNS-style podId names the pod by its first label. */
    v = "{\"podId\":\"Backend-1.backend.hyperstudy.svc.cluster.local\"}";
    cr_assert_eq(pr_redis_room_parse(v, strlen(v), &r), 0);
    cr_expect_str_eq(r.pod, "backend-1");
}

Test(redis_room, ours_roundtrip)
{
    struct pr_redis_room in = {"backend-7", 12, 1712345678901ull}, out;
    char buf[256];
    int n = pr_redis_room_format(buf, sizeof(buf), &in);
    cr_assert_gt(n, 0);
    cr_expect_str_eq(
        buf, "{\"podId\":\"backend-7\",\"participantCount\":12,\"assignedAt\":1712345678901}");
    cr_assert_eq(pr_redis_room_parse(buf, (size_t)n, &out), 0);
    cr_expect_str_eq(out.pod, "backend-7");
    cr_expect_eq(out.participant_count, 12);
    cr_expect_eq(out.assigned_at_ms, in.assigned_at_ms);
    cr_expect_eq(pr_redis_room_format(buf, 10, &in), -ENOSPC);
}

Test(redis_room, garbage)
{
    static const char *const bad[] = {
        "backend-1",
        "not json",
        "[\"backend-1\"]",
        "{\"pod\":\"backend-1\"}",
        "{\"podId\":5}",
        "{\"podId\":\"\"}",
        "{\"podId\":\"BAD POD\"}",
        "{\"podId\":null}",
        "{\"podId\":\"-x\"}",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pr_redis_room r;
        cr_expect_eq(pr_redis_room_parse(bad[i], strlen(bad[i]), &r), -EINVAL, "%s", bad[i]);
    }
    /* Nonsense numbers are ignored, the pod still counts. */
    struct pr_redis_room r;
    const char *v = "{\"podId\":\"b\",\"participantCount\":-4,\"assignedAt\":\"soon\"}";
    cr_assert_eq(pr_redis_room_parse(v, strlen(v), &r), 0);
    cr_expect_eq(r.participant_count, 0);
    cr_expect_eq(r.assigned_at_ms, 0);
}

Test(redis_room, value_pod_by_kind)
{
    char pod[PR_POD_NAME_MAX + 1];
    uint32_t count = 9;
    uint64_t at = 9;
    cr_expect_eq(pr_redis_value_pod(PR_KEY_SID, "backend-3", 9, pod, &count, &at), 0);
    cr_expect_str_eq(pod, "backend-3");
    cr_expect_eq(count, 0);
    cr_expect_eq(pr_redis_value_pod(PR_KEY_PARTICIPANT, "no good", 7, pod, NULL, NULL), -EINVAL);
    const char *v = "{\"podId\":\"backend-4\",\"participantCount\":2,\"assignedAt\":5}";
    cr_expect_eq(pr_redis_value_pod(PR_KEY_ROOM, v, strlen(v), pod, &count, &at), 0);
    cr_expect_str_eq(pod, "backend-4");
    cr_expect_eq(count, 2);
    cr_expect_eq(at, 5);
    cr_expect_eq(pr_redis_value_pod(PR_KEY_ROOM, "backend-4", 9, pod, NULL, NULL), -EINVAL);
}

/* ---- pod rows ---- */

Test(redis_pod, roundtrip_and_validation)
{
    struct pr_redis_pod in = {"backend-1", "10.0.0.7:3000", "nyc1-a", 20, 80,
                              true,        1700000000000ull};
    char *json = pr_redis_pod_format(&in);
    cr_assert_not_null(json);
    struct pr_redis_pod out;
    cr_assert_eq(pr_redis_pod_parse(json, strlen(json), &out), 0, "%s", json);
    cr_expect_str_eq(out.name, "backend-1");
    cr_expect_str_eq(out.address, "10.0.0.7:3000");
    cr_expect_str_eq(out.zone, "nyc1-a");
    cr_expect_eq(out.cap_rooms, 20);
    cr_expect_eq(out.cap_participants, 80);
    cr_expect(out.draining);
    cr_expect_eq(out.last_seen_ms, 1700000000000ull);
    free(json);
    static const char *const bad[] = {
        "{\"name\":\"x\"}",
        "{\"name\":\"Bad\",\"address\":\"h:1\"}",
        "{\"name\":\"x\",\"address\":\"nope\"}",
        "{\"name\":\"x\",\"address\":\"h:1\",\"zone\":5}",
        "garbage",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(pr_redis_pod_parse(bad[i], strlen(bad[i]), &out), -EINVAL, "%s", bad[i]);
    /* Capacities default like the admin API; a zone may be null. */
    const char *v = "{\"name\":\"x\",\"address\":\"[::1]:80\",\"zone\":null}";
    cr_assert_eq(pr_redis_pod_parse(v, strlen(v), &out), 0);
    cr_expect_eq(out.cap_rooms, 20);
    cr_expect_eq(out.cap_participants, 80);
    cr_expect_str_eq(out.zone, "");
    cr_expect_not(out.draining);
}

/* ---- events ---- */

Test(redis_events, decode_what_the_script_publishes)
{
    struct pr_redis_event ev;
    const char *m = "set room room_x backend-1 3 1700000000000";
    cr_assert_eq(pr_redis_event_parse(m, strlen(m), &ev), 0);
    cr_expect_eq(ev.type, PR_REDIS_EV_SET);
    cr_expect_eq(ev.kind, PR_KEY_ROOM);
    cr_expect_str_eq(ev.key, "room_x");
    cr_expect_eq(ev.key_len, 6);
    cr_expect_str_eq(ev.pod, "backend-1");
    cr_expect_eq(ev.count, 3);
    cr_expect_eq(ev.assigned_at_ms, 1700000000000ull);
    m = "del participant p:1";
    cr_assert_eq(pr_redis_event_parse(m, strlen(m), &ev), 0);
    cr_expect_eq(ev.type, PR_REDIS_EV_DEL);
    cr_expect_eq(ev.kind, PR_KEY_PARTICIPANT);
    cr_expect_str_eq(ev.key, "p:1");
    m = "count room_x 7";
    cr_assert_eq(pr_redis_event_parse(m, strlen(m), &ev), 0);
    cr_expect_eq(ev.type, PR_REDIS_EV_COUNT);
    cr_expect_eq(ev.count, 7);
    m = "pod {\"name\":\"b\",\"zone\":\"a b\"}";
    cr_assert_eq(pr_redis_event_parse(m, strlen(m), &ev), 0);
    cr_expect_eq(ev.type, PR_REDIS_EV_POD);
    cr_expect_eq(ev.json_len, strlen(m) - 4);
    cr_expect_eq(memcmp(ev.json, m + 4, ev.json_len), 0);
    m = "delpod backend-9";
    cr_assert_eq(pr_redis_event_parse(m, strlen(m), &ev), 0);
    cr_expect_eq(ev.type, PR_REDIS_EV_DELPOD);
    cr_expect_str_eq(ev.pod, "backend-9");
}

Test(redis_events, encode_decode_roundtrip)
{
    struct pr_redis_event in, out;
    char buf[PR_REDIS_EVENT_MAX];
    memset(&in, 0, sizeof(in));
    in.type = PR_REDIS_EV_SET;
    in.kind = PR_KEY_SID;
    snprintf(in.key, sizeof(in.key), "abc-DEF_1");
    in.key_len = 9;
    snprintf(in.pod, sizeof(in.pod), "backend-0");
    in.count = 0;
    in.assigned_at_ms = 42;
    int n = pr_redis_event_format(buf, sizeof(buf), &in);
    cr_assert_gt(n, 0);
    cr_expect_str_eq(buf, "set sid abc-DEF_1 backend-0 0 42");
    cr_assert_eq(pr_redis_event_parse(buf, (size_t)n, &out), 0);
    cr_expect_eq(out.kind, PR_KEY_SID);
    cr_expect_str_eq(out.key, "abc-DEF_1");
    cr_expect_eq(out.assigned_at_ms, 42);
    in.type = PR_REDIS_EV_DEL;
    n = pr_redis_event_format(buf, sizeof(buf), &in);
    cr_expect_str_eq(buf, "del sid abc-DEF_1");
    in.type = PR_REDIS_EV_DELPOD;
    n = pr_redis_event_format(buf, sizeof(buf), &in);
    cr_expect_str_eq(buf, "delpod backend-0");
    cr_assert_eq(pr_redis_event_parse(buf, (size_t)n, &out), 0);
    in.type = PR_REDIS_EV_COUNT;
    in.count = 5;
    n = pr_redis_event_format(buf, sizeof(buf), &in);
    cr_expect_str_eq(buf, "count abc-DEF_1 5");
    /* Keys that could split a message are refused. */
    snprintf(in.key, sizeof(in.key), "a b");
    in.key_len = 3;
    cr_expect_eq(pr_redis_event_format(buf, sizeof(buf), &in), -EINVAL);
    in.type = PR_REDIS_EV_SET;
    cr_expect_eq(pr_redis_event_format(buf, sizeof(buf), &in), -EINVAL);
    cr_expect_eq(
        pr_redis_event_format(
            buf, 8, &(struct pr_redis_event){.type = PR_REDIS_EV_DELPOD, .pod = "backend-10"}),
        -ENOSPC);
}

Test(redis_events, malformed_are_ignored)
{
    static const char *const bad[] = {
        "",
        "set",
        "set room",
        "set room room_x",
        "set room room_x backend-1",
        "set room room_x backend-1 1",
        "set room room_x backend-1 1 2 3",
        "set cookie c backend-1 0 0",
        "set room bad/key backend-1 0 0",
        "set room room_x BAD 0 0",
        "set room room_x backend-1 -1 0",
        "set room room_x backend-1 99999999999 0",
        "set room  room_x backend-1 0 0",
        "del room",
        "del room a b",
        "count room_x",
        "count room_x x",
        "pod",
        "pod ",
        "delpod",
        "delpod Bad",
        "hello world",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pr_redis_event ev;
        cr_expect_eq(pr_redis_event_parse(bad[i], strlen(bad[i]), &ev), -EINVAL, "\"%s\"", bad[i]);
    }
    char big[PR_REDIS_EVENT_MAX + 2];
    memset(big, 'a', sizeof(big));
    memcpy(big, "pod ", 4);
    struct pr_redis_event ev;
    cr_expect_eq(pr_redis_event_parse(big, sizeof(big), &ev), -EINVAL);
}

Test(redis_script, has_every_operation)
{
    static const char *const ops[] = {"'create'",   "'replace'", "'set'",    "'del'",
                                      "'join'",     "'renew'",   "'podput'", "'pods'",
                                      "'poddrain'", "'poddel'",  "'active'"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        cr_expect_not_null(strstr(pr_redis_script, ops[i]), "%s", ops[i]);
}

/* ---- registry merge of remote pod rows ---- */

#include "podrouter/registry.h"

Test(redis_registry, merge_remote_rows)
{
    struct pr_registry *reg = pr_registry_create(3000);
    cr_assert_not_null(reg);
    uint64_t now = pr_now_ms();
    struct pr_pod_remote r = {"backend-1", "10.0.0.1:3000", "z1", 5, 10, false, now - 500};
    bool created = false;
    cr_assert_eq(pr_registry_merge(reg, &r, &created), 0);
    cr_expect(created);
    struct pr_pod_info info;
    cr_assert_eq(pr_registry_get(reg, "backend-1", &info), 0);
    cr_expect_eq(info.state, PR_POD_READY);
    cr_expect_eq(info.cap_rooms, 5);
    cr_expect_str_eq(info.zone, "z1");
    cr_expect_geq(info.last_seen_ago_ms, 400);
    uint32_t gen = info.gen;

    /* Older news never moves last_seen back; draining is sticky; a new address bumps gen. */
    r.last_seen_ms = now - 2500;
    r.draining = true;
    r.address = "10.0.0.2:3000";
    cr_assert_eq(pr_registry_merge(reg, &r, &created), 0);
    cr_expect_not(created);
    cr_assert_eq(pr_registry_get(reg, "backend-1", &info), 0);
    cr_expect_lt(info.last_seen_ago_ms, 1500);
    cr_expect_eq(info.state, PR_POD_DRAINING);
    cr_expect_str_eq(info.address, "10.0.0.2:3000");
    cr_expect_neq(info.gen, gen);
    r.draining = false;
    r.last_seen_ms = pr_now_ms();
    cr_assert_eq(pr_registry_merge(reg, &r, NULL), 0);
    cr_assert_eq(pr_registry_get(reg, "backend-1", &info), 0);
    cr_expect(info.draining);

    /* A row so old it would be forgotten is not created; bad rows are refused. */
    struct pr_pod_remote old = {"backend-9", "10.0.0.9:3000", NULL, 1, 1, false, now - 60000};
    cr_expect_eq(pr_registry_merge(reg, &old, &created), -ESTALE);
    cr_expect_neq(pr_registry_get(reg, "backend-9", &info), 0);
    struct pr_pod_remote bad = {"Bad", "10.0.0.9:3000", NULL, 1, 1, false, now};
    cr_expect_eq(pr_registry_merge(reg, &bad, NULL), -EINVAL);
    bad.name = "ok";
    bad.cap_rooms = 0;
    cr_expect_eq(pr_registry_merge(reg, &bad, NULL), -EINVAL);
    pr_registry_destroy(reg);
}

/* ---- the process-wide cache: tentative entries, activity, --max-assignments ------------ */

#include <time.h>

#include "../../src/atable.h"
#include "../../src/redis_cache.h"

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct pr_registry *cache_reg;

static void cache_setup(uint64_t active_ms, uint64_t max)
{
    cache_reg = pr_registry_create(15000);
    cr_assert_not_null(cache_reg);
    cr_assert_eq(pr_registry_put(cache_reg, "backend-0", "10.0.0.1:3000", 20, 80, NULL, NULL), 0);
    const uint64_t ttl[3] = {120000, 24 * 3600 * 1000ull, 24 * 3600 * 1000ull};
    cr_assert_eq(pr__rc_open(cache_reg, ttl, active_ms, max), 0);
}

static void cache_teardown(void)
{
    pr__rc_close();
    pr_registry_destroy(cache_reg);
    cache_reg = NULL;
}

static void expect_cached_load(uint32_t rooms, uint32_t parts)
{
    struct pr_pod_info p;
    cr_assert_eq(pr_registry_get(cache_reg, "backend-0", &p), 0);
    cr_expect_eq(p.load_rooms, rooms, "rooms %u != %u", p.load_rooms, rooms);
    cr_expect_eq(p.load_participants, parts, "participants %u != %u", p.load_participants, parts);
}

Test(redis_cache, tentative_until_second_use)
{
    cache_setup(150, 0);
    char pod[PR_POD_NAME_MAX + 1];
    bool renew = false;
    cr_assert_eq(
        pr__rc_put(PR_KEY_ROOM, "once", 4, "backend-0", 0, 0, PR_RC_IF_ABSENT, false, NULL), 0);
    cr_assert_eq(
        pr__rc_put(PR_KEY_ROOM, "twice", 5, "backend-0", 3, 0, PR_RC_IF_ABSENT, false, NULL), 0);
    expect_cached_load(0, 0);
    /* the second use promotes (the store then renews the full TTL) and activates */
    cr_assert_eq(pr__rc_get(PR_KEY_ROOM, "twice", 5, pod, &renew), 0);
    cr_expect(renew, "a promotion asks for a TTL renewal in Redis");
    expect_cached_load(1, 3);
    renew = true;
    cr_assert_eq(pr__rc_get(PR_KEY_ROOM, "twice", 5, pod, &renew), 0);
    cr_expect_not(renew, "then throttled as before");
    nap_ms(200);
    cr_expect_eq(pr__rc_get(PR_KEY_ROOM, "once", 4, pod, NULL), -ENOENT);
    cr_expect_eq(pr__rc_get(PR_KEY_ROOM, "twice", 5, pod, NULL), 0);
    cache_teardown();
}

Test(redis_cache, use_by_hash_and_activity_reports)
{
    cache_setup(400, 0);
    cr_assert_eq(pr__rc_put(PR_KEY_ROOM, "r1", 2, "backend-0", 2, 0, PR_RC_IF_ABSENT, false, NULL),
                 0);
    char key[PR_KEY_MAX + 1], pod[PR_POD_NAME_MAX + 1];
    size_t kl = 0;
    int r =
        pr__rc_use(PR_KEY_ROOM, NULL, 0, pr__atab_hash(PR_KEY_ROOM, "r1", 2), true, key, &kl, pod);
    cr_assert_eq(r, PR_ATAB_PROMOTED | PR_ATAB_ACTIVATED);
    cr_expect_eq(kl, 2);
    cr_expect_str_eq(key, "r1");
    cr_expect_str_eq(pod, "backend-0");
    cr_expect_eq(pr__rc_use(PR_KEY_ROOM, NULL, 0, 42, true, key, &kl, pod), -ENOENT);

    struct pr__rc_item items[4];
    cr_assert_eq(pr__rc_collect_active(items, 4), 1, "a newly active room is shared at once");
    cr_expect_str_eq(items[0].key, "r1");
    cr_expect_eq(items[0].count, 2);
    cr_expect_eq(pr__rc_collect_active(items, 4), 0, "then not again before half a window");
    pr__rc_use(PR_KEY_ROOM, "r1", 2, 0, true, NULL, NULL, NULL);
    cr_expect_eq(pr__rc_collect_active(items, 4), 0);
    nap_ms(220);
    pr__rc_use(PR_KEY_ROOM, "r1", 2, 0, true, NULL, NULL, NULL);
    cr_expect_eq(pr__rc_collect_active(items, 4), 1, "used again after half a window");
    /* a count change is shared at the next report */
    pr__rc_set_count("r1", 2, 5);
    cr_expect_eq(pr__rc_collect_active(items, 4), 1);
    cr_expect_eq(items[0].count, 5);
    /* idle for the window: no load, nothing to report */
    nap_ms(450);
    pr__rc_tick(true);
    expect_cached_load(0, 0);
    cr_expect_eq(pr__rc_collect_active(items, 4), 0);
    cache_teardown();
}

Test(redis_cache, max_assignments)
{
    cache_setup(60000, 2);
    cr_expect_not(pr__rc_full(PR_KEY_ROOM));
    pr__rc_put(PR_KEY_ROOM, "a", 1, "backend-0", 0, 0, PR_RC_IF_ABSENT, false, NULL);
    pr__rc_put(PR_KEY_ROOM, "b", 1, "backend-0", 0, 0, PR_RC_IF_ABSENT, false, NULL);
    cr_expect(pr__rc_full(PR_KEY_ROOM));
    cr_expect_not(pr__rc_full(PR_KEY_PARTICIPANT));
    cache_teardown();
}

/* ---- the Lua script against a real redis-server ---------------------------------------- */

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static pid_t redis_pid;

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *redis_start(int port)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    redis_pid = fork();
    cr_assert_geq(redis_pid, 0);
    if (redis_pid == 0) {
        /* bounded life even if this test process dies without cleaning up */
        execlp("timeout", "timeout", "60", "redis-server", "--port", p, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        redisContext *c = redisConnect("127.0.0.1", port);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (ok)
                return c;
        }
        if (c)
            redisFree(c);
        nap_ms(50);
    }
    cr_assert_fail("redis-server did not start on port %d", port);
    return NULL;
}

static void redis_stop(redisContext *c)
{
    redisFree(c);
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

/* Also after a failed assertion: never leave a redis-server behind. */
static void redis_fini(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM); /* timeout(1) passes it on to redis-server */
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

/* EVAL the store's script with nkeys keys then args. */
static redisReply *script_call(redisContext *c, int nkeys, const char **keys, int nargs,
                               const char **args)
{
    const char *argv[32];
    char nk[8];
    int argc = 0;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = pr_redis_script;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    return redisCommandArgv(c, argc, argv, NULL);
}

static long long pttl(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "PTTL %s", key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    freeReplyObject(r);
    return v;
}

Test(redis_script_live, tentative_create_then_second_use, .timeout = 30, .fini = redis_fini)
{
    int port = free_port();
    redisContext *c = redis_start(port);
    const char *k[] = {"room:r1:pod", "podrouter:room-members:r1"};
    /* create with the short TTL (tentative) */
    const char *create[] = {"create", "podrouter:events", "room", "r1", "backend-0", "86400000",
                            "0",      "1700000000000",    "2000"};
    redisReply *r = script_call(c, 1, k, 9, create);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->element[0]->integer == 1);
    freeReplyObject(r);
    long long t = pttl(c, "room:r1:pod");
    cr_expect(t > 0 && t <= 2000, "tentative TTL %lld", t);
    /* the members set of a tentative room goes with it */
    const char *join[] = {"join", "podrouter:events", "r1", "p1", "86400000", "4096"};
    r = script_call(c, 2, k, 6, join);
    cr_expect(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    t = pttl(c, "podrouter:room-members:r1");
    cr_expect(t > 0 && t <= 2000, "members TTL %lld", t);
    /* a second create (another replica's request) finds it and makes it live */
    const char *again[] = {"create", "podrouter:events", "room", "r1", "backend-1", "86400000",
                           "0",      "1700000000000",    "2000"};
    r = script_call(c, 2, k, 9, again);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->element[0]->integer == 0);
    freeReplyObject(r);
    cr_expect_gt(pttl(c, "room:r1:pod"), 86000000);
    cr_expect_gt(pttl(c, "podrouter:room-members:r1"), 86000000,
                 "the second use renews the members set with its room");
    /* renew (a promotion elsewhere) extends the members too */
    const char *renew[] = {"renew", "podrouter:events", "86400000"};
    r = script_call(c, 2, k, 3, renew);
    freeReplyObject(r);
    cr_expect_gt(pttl(c, "podrouter:room-members:r1"), 86000000);
    /* a create without the short TTL (operator tools, old callers) is live at once */
    const char *k2[] = {"room:r2:pod"};
    const char *live[] = {"create",    "podrouter:events", "room", "r2",
                          "backend-0", "86400000",         "0",    "1700000000000"};
    r = script_call(c, 1, k2, 8, live);
    freeReplyObject(r);
    cr_expect_gt(pttl(c, "room:r2:pod"), 86000000);
    redis_stop(c);
}

static long long info_field(redisContext *c, const char *section, const char *field);

static redisReply *join_call(redisContext *c, const char *room, const char *who, const char *max)
{
    char k[64], m[80];
    snprintf(k, sizeof(k), "room:%s:pod", room);
    snprintf(m, sizeof(m), "podrouter:room-members:%s", room);
    const char *keys[] = {k, m};
    const char *args[] = {"join", "podrouter:events", room, who, "86400000", max};
    return script_call(c, 2, keys, 6, args);
}

static long long join_count(redisContext *c, const char *room, const char *who, const char *max)
{
    redisReply *r = join_call(c, room, who, max);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    freeReplyObject(r);
    return v;
}

static char *get_str(redisContext *c, const char *key, char *out, size_t cap)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    snprintf(out, cap, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "(none)");
    freeReplyObject(r);
    return out;
}

/* join rewrites only the count: a value in the canonical layout in place, any other through
 * cjson with its other fields; the room keeps its TTL (or none), a new members set takes the
 * room's; at most max members; only an added participant writes and publishes. */
Test(redis_script_live, join_rewrites_only_the_count, .timeout = 30, .fini = redis_fini)
{
    int port = free_port();
    redisContext *c = redis_start(port);
    char v[256];
    /* canonical, no TTL (written by someone else without one): stays without one */
    freeReplyObject(redisCommand(
        c, "SET room:c1:pod {\"podId\":\"backend-0\",\"participantCount\":0,\"assignedAt\":7}"));
    cr_expect_eq(join_count(c, "c1", "p1", "4096"), 1);
    cr_expect_str_eq(get_str(c, "room:c1:pod", v, sizeof(v)),
                     "{\"podId\":\"backend-0\",\"participantCount\":1,\"assignedAt\":7}");
    cr_expect_eq(pttl(c, "room:c1:pod"), -1, "a room without a TTL keeps none");
    long long mt = pttl(c, "podrouter:room-members:c1");
    cr_expect(mt > 86000000 && mt <= 86400000, "members of a room without TTL: %lld", mt);
    cr_expect_eq(join_count(c, "c1", "p2", "4096"), 2);
    cr_expect_eq(join_count(c, "c1", "p1", "4096"), 2, "a participant counts once");
    /* HyperStudy's own layout, extra field, string count, TTL: cjson, the field stays */
    freeReplyObject(redisCommand(c,
                                 "SET room:h1:pod {\"assignedAt\":5,\"podId\":\"backend-1\","
                                 "\"experiment\":\"e1\",\"participantCount\":\"2\"} PX 100000"));
    cr_expect_eq(join_count(c, "h1", "p1", "4096"), 2, "the count never goes below the value's");
    cr_expect_eq(join_count(c, "h1", "p2", "4096"), 2);
    cr_expect_eq(join_count(c, "h1", "p3", "4096"), 3);
    get_str(c, "room:h1:pod", v, sizeof(v));
    cr_expect_not_null(strstr(v, "\"experiment\":\"e1\""), "%s", v);
    cr_expect_not_null(strstr(v, "\"podId\":\"backend-1\""), "%s", v);
    cr_expect_not_null(strstr(v, "\"participantCount\":3"), "%s", v);
    long long rt = pttl(c, "room:h1:pod");
    cr_expect(rt > 90000 && rt <= 100000, "the room keeps its TTL: %lld", rt);
    mt = pttl(c, "podrouter:room-members:h1");
    cr_expect(mt > 0 && mt <= 100000, "members live as long as the room: %lld", mt);
    /* near the canonical layout but not it: through cjson (valid) or no room (invalid) */
    freeReplyObject(redisCommand(c, "SET room:q1:pod %s",
                                 "{\"podId\":\"a\\\"b\",\"participantCount\":1,\"assignedAt\":2}"));
    cr_expect_eq(join_count(c, "q1", "p1", "4096"), 1);
    get_str(c, "room:q1:pod", v, sizeof(v));
    cr_expect_not_null(strstr(v, "\"participantCount\":1"), "%s", v);
    cr_expect_not_null(strstr(v, "a\\\"b"), "an escaped podId survives: %s", v);
    static const char *const bad[] = {
        "{\"podId\":\"backend-0\",\"participantCount\":1,\"assignedAt\":2}x",
        "{\"podId\":\"\",\"participantCount\":1,\"assignedAt\":2}",
        "{\"podId\":\"backend-0\",\"participantCount\":,\"assignedAt\":2}",
        "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        freeReplyObject(redisCommand(c, "SET room:bad:pod %s", bad[i]));
        cr_expect_eq(join_count(c, "bad", "p1", "4096"), -1, "%s", bad[i]);
        cr_expect_str_eq(get_str(c, "room:bad:pod", v, sizeof(v)), bad[i], "untouched");
    }
    cr_expect_eq(join_count(c, "absent", "p1", "4096"), -1);
    /* extra field after the canonical ones: cjson keeps it */
    freeReplyObject(redisCommand(
        c, "SET room:x1:pod %s",
        "{\"podId\":\"backend-0\",\"participantCount\":1,\"assignedAt\":2,\"x\":1}"));
    cr_expect_eq(join_count(c, "x1", "p1", "4096"), 1);
    cr_expect_eq(join_count(c, "x1", "p2", "4096"), 2);
    cr_expect_not_null(strstr(get_str(c, "room:x1:pod", v, sizeof(v)), "\"x\":1"), "%s", v);
    /* at most max members */
    freeReplyObject(redisCommand(
        c, "SET room:m1:pod {\"podId\":\"backend-0\",\"participantCount\":0,\"assignedAt\":7}"));
    freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
    cr_expect_eq(join_count(c, "m1", "p1", "2"), 1);
    cr_expect_eq(join_count(c, "m1", "p2", "2"), 2);
    cr_expect_eq(join_count(c, "m1", "p3", "2"), 2, "a third member is refused");
    cr_expect_eq(join_count(c, "m1", "p1", "2"), 2);
    redisReply *r = redisCommand(c, "SISMEMBER podrouter:room-members:m1 p3");
    cr_expect(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    cr_expect_eq(info_field(c, "commandstats", "cmdstat_publish:calls="), 2,
                 "a count event per added participant only");
    redis_stop(c);
}

Test(redis_script_live, active_sums_per_pod, .timeout = 30, .fini = redis_fini)
{
    int port = free_port();
    redisContext *c = redis_start(port);
    long long now = 1700000100000LL;
    redisReply *r = redisCommand(
        c,
        "HSET podrouter:active room:a %s room:b %s room:c %s participant:p %s room:old %s junk %s",
        "backend-0 1 4 1700000099000", "backend-0 1 2 1700000050000", "backend-2 1 8 1700000099500",
        "backend-2 0 1 1700000099900", "backend-1 1 9 1700000000000", "not a value");
    freeReplyObject(r);
    char nows[24];
    snprintf(nows, sizeof(nows), "%lld", now);
    const char *k[] = {"podrouter:active"};
    const char *args[] = {"active", "podrouter:events", nows, "60000"};
    r = script_call(c, 1, k, 4, args);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "%s", r && r->str ? r->str : "no reply");
    uint32_t rooms[3] = {0, 0, 0}, parts[3] = {0, 0, 0};
    cr_assert_eq(r->elements % 3, 0);
    for (size_t i = 0; i < r->elements; i += 3) {
        int pod = r->element[i]->str[8] - '0';
        cr_assert(pod >= 0 && pod < 3);
        rooms[pod] = (uint32_t)r->element[i + 1]->integer;
        parts[pod] = (uint32_t)r->element[i + 2]->integer;
    }
    freeReplyObject(r);
    cr_expect_eq(rooms[0], 2);
    cr_expect_eq(parts[0], 6);
    cr_expect_eq(rooms[1], 0, "older than the window: not counted");
    cr_expect_eq(rooms[2], 1);
    cr_expect_eq(parts[2], 9);
    r = redisCommand(c, "HLEN podrouter:active");
    cr_expect_eq(r->integer, 4, "stale and malformed fields are deleted");
    freeReplyObject(r);
    redis_stop(c);
}

/* ---- the per-loop touch throttle ------------------------------------------------------- */

/* A fixed hash for this test: the table hash is keyed per process (SipHash-1-3), and how many
 * of these 3,000 rooms share an 8-way set depends on the key: with about one key in six a few
 * more than the bound below took the lock, so the test passed or failed by the draw. This is
 * the unkeyed hash the table used before (FNV-1a with an avalanche, kind ROOM), with which the
 * bound was set. */
static uint64_t touch_hash(const char *data, size_t len)
{
    uint64_t h = (0xcbf29ce484222325u ^ PR_KEY_ROOM) * 0x100000001b3u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)data[i]) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 33);
}

Test(touch_cache, repeats_within_the_period_cost_no_lock)
{
    static struct pr_touch_cache c;
    memset(&c, 0, sizeof(c));
    const int n = 3000; /* active rooms on one loop */
    for (int i = 0; i < n; i++)
        cr_assert(
            pr__touch_due(&c, touch_hash((const char *)&i, sizeof(i)), 1000, 500),
            "first touch of %d", i);
    int due = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < n; i++)
            due += pr__touch_due(&c, touch_hash((const char *)&i, sizeof(i)),
                                 1100 + round, 500);
    cr_expect_lt(due, n * 3 / 150, "%d of %d repeats took the lock (>= 2 %%)", due, n * 3);
    /* after the period every room is due again */
    cr_expect(
        pr__touch_due(&c, touch_hash((const char *)&n, sizeof(n)), 1000, 500));
    int zero = 0;
    cr_expect(pr__touch_due(&c, touch_hash((const char *)&zero, sizeof(zero)), 1600,
                            500));
}

/* ---- the store on a libuv loop against a real redis-server -------------------------------- */

#include <uv.h>

#include "podrouter/config.h"
#include "podrouter/store.h"

struct pins {
    int answered, failed;
    char winner[PR_POD_NAME_MAX + 1];
};

static void pin_cb(void *arg, int status, const char *pod)
{
    struct pins *p = arg;
    p->answered++;
    if (status != 0)
        p->failed++;
    else if (pod)
        snprintf(p->winner, sizeof(p->winner), "%s", pod);
}

/* Run loop until *flag reaches want (or ~5 s pass). */
static void run_until(uv_loop_t *loop, const int *flag, int want)
{
    for (int i = 0; i < 5000 && *flag < want; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
}

/* A field of INFO's text (e.g. "cmdstat_set:calls=", "total_reads_processed:"); -1 if absent. */
static long long info_field(redisContext *c, const char *section, const char *field)
{
    redisReply *r = redisCommand(c, "INFO %s", section);
    long long v = -1;
    const char *at = r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
    if (at && (at = strstr(at, field)) != NULL)
        v = atoll(at + strlen(field));
    freeReplyObject(r);
    return v;
}

static int store_up(uv_loop_t *loop, struct pr_store *s)
{
    for (int i = 0; i < 5000 && !s->ops->up(s); i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    return s->ops->up(s) ? 0 : -1;
}

Test(redis_store_live, sid_pins_are_one_batched_set_nx, .timeout = 60, .fini = redis_fini)
{
    int port = free_port();
    redisContext *c = redis_start(port);
    struct pr_config cfg;
    pr_config_defaults(&cfg);
    snprintf(cfg.store, sizeof(cfg.store), "redis://127.0.0.1:%d", port);
    cfg.sid_ttl_ms = 120000;
    cfg.room_active_ms = 5000;
    struct pr_registry *reg = pr_registry_create(cfg.pod_ttl_ms);
    cr_assert(reg);
    cr_assert_eq(pr_registry_put(reg, "backend-0", "127.0.0.1:3000", 20, 80, NULL, NULL), 0);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    char err[256] = "";
    struct pr_store *s = pr_store_redis_open(&cfg, reg, &loop, err, sizeof(err));
    cr_assert(s, "%s", err);
    cr_assert_eq(store_up(&loop, s), 0, "the store never connected");
    for (int i = 0; i < 200; i++) { /* let the owner's start-up (pod share, reload) finish */
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }

    /* a sid that exists already (a retry elsewhere): its value wins and gets the full TTL */
    char taken[PR_REDIS_KEY_MAX];
    cr_assert_gt(
        pr_redis_assignment_key(taken, sizeof(taken), cfg.key_prefix, PR_KEY_SID, "taken", 5), 0);
    freeReplyObject(redisCommand(c, "SET %s backend-7 PX 3000", taken));
    char taken2[PR_REDIS_KEY_MAX]; /* a second one: each gets its own value, in order */
    cr_assert_gt(
        pr_redis_assignment_key(taken2, sizeof(taken2), cfg.key_prefix, PR_KEY_SID, "taken2", 6), 0);
    freeReplyObject(redisCommand(c, "SET %s backend-5 PX 3000", taken2));
    freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
    long long reads0 = info_field(c, "stats", "total_reads_processed:");

    /* 50 new sids pinned during one loop iteration, plus the taken one */
    enum { N = 50 };
    struct pins fresh = {0}, old = {0}, old2 = {0};
    for (int i = 0; i < N; i++) {
        char sid[32];
        int n = snprintf(sid, sizeof(sid), "sid-%02d-abcdefghij", i);
        s->ops->create(s, PR_KEY_SID, sid, (size_t)n, "backend-0", pin_cb, &fresh);
        if (i == N / 2)
            s->ops->create(s, PR_KEY_SID, "taken2", 6, "backend-0", pin_cb, &old2);
    }
    s->ops->create(s, PR_KEY_SID, "taken", 5, "backend-0", pin_cb, &old);
    cr_expect_eq(fresh.answered, 0, "a new sid is answered by Redis, not at once");
    run_until(&loop, &fresh.answered, N);
    run_until(&loop, &old.answered, 1);
    cr_assert_eq(fresh.answered, N);
    cr_expect_eq(fresh.failed, 0);
    cr_expect_str_eq(fresh.winner, "backend-0");
    cr_assert_eq(old.answered, 1);
    cr_expect_eq(old.failed, 0);
    cr_expect_str_eq(old.winner, "backend-7", "the pin already in Redis wins");
    run_until(&loop, &old2.answered, 1);
    cr_assert_eq(old2.answered, 1);
    cr_expect_eq(old2.failed, 0);
    cr_expect_str_eq(old2.winner, "backend-5", "each taken pin gets its own value");

    long long reads = info_field(c, "stats", "total_reads_processed:") - reads0 - 1;
    for (int i = 0; i < N; i++) {
        char sid[32], k[PR_REDIS_KEY_MAX];
        int n = snprintf(sid, sizeof(sid), "sid-%02d-abcdefghij", i);
        cr_assert_gt(
            pr_redis_assignment_key(k, sizeof(k), cfg.key_prefix, PR_KEY_SID, sid, (size_t)n), 0);
        redisReply *r = redisCommand(c, "GET %s", k);
        cr_expect(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "backend-0") == 0,
                  "value of %s", k);
        freeReplyObject(r);
        long long t = pttl(c, k);
        cr_expect(t > 0 && t <= 5000, "a new sid is tentative (--room-active TTL): %lld", t);
    }
    redisReply *r = redisCommand(c, "GET %s", taken);
    cr_expect(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "backend-7") == 0);
    freeReplyObject(r);
    cr_expect_gt(pttl(c, taken), 100000, "the existing sid got its full TTL");
    cr_expect_gt(pttl(c, taken2), 100000, "the existing sid got its full TTL");

    /* one SET NX per new sid, the script only for the sid that existed */
    long long sets = info_field(c, "commandstats", "cmdstat_set:calls=");
    long long evals = info_field(c, "commandstats", "cmdstat_evalsha:calls=");
    long long pubs = info_field(c, "commandstats", "cmdstat_publish:calls=");
    cr_expect_eq(sets, N + 2, "SET calls: %lld (one SET NX per pin)", sets);
    cr_expect_eq(evals, 1, "EVALSHA calls: %lld", evals);
    cr_expect_eq(pubs, -1, "PUBLISH calls: %lld", pubs);
    /* the 51 commands of one iteration reach Redis in one write (one read there; two more
     * at most for the fallback script and a split by the kernel) */
    cr_expect(reads >= 1 && reads <= 3, "%lld reads for the pins of one loop iteration", reads);

    s->ops->close(s);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_expect_eq(uv_loop_close(&loop), 0, "handles left open on the loop");
    pr_registry_destroy(reg);
    redis_stop(c);
}

/* The pins and participant joins of one loop iteration: one script call, and Redis ends up
 * exactly as with one command each (room JSON count, members set and its TTL, count events,
 * the cached count), a join into a room Redis does not hold writes nothing. */
Test(redis_store_live, pins_and_joins_of_one_iteration_are_one_script_call, .timeout = 60,
     .fini = redis_fini)
{
    int port = free_port();
    redisContext *c = redis_start(port);
    struct pr_config cfg;
    pr_config_defaults(&cfg);
    snprintf(cfg.store, sizeof(cfg.store), "redis://127.0.0.1:%d", port);
    struct pr_registry *reg = pr_registry_create(cfg.pod_ttl_ms);
    cr_assert(reg);
    cr_assert_eq(pr_registry_put(reg, "backend-0", "127.0.0.1:3000", 20, 80, NULL, NULL), 0);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    char err[256] = "";
    struct pr_store *s = pr_store_redis_open(&cfg, reg, &loop, err, sizeof(err));
    cr_assert(s, "%s", err);
    cr_assert_eq(store_up(&loop, s), 0, "the store never connected");
    for (int i = 0; i < 200; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    struct pins room = {0}, sids = {0};
    s->ops->create(s, PR_KEY_ROOM, "r1", 2, "backend-0", pin_cb, &room);
    run_until(&loop, &room.answered, 1);
    cr_assert_eq(room.failed, 0);
    freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));

    /* one iteration: 3 sessions of 3 new participants (one of them twice) and a join into a
     * room nobody assigned */
    static const char *const who[] = {"p-a", "p-b", "p-c", "p-a"};
    for (int i = 0; i < 4; i++) {
        char sid[32];
        int n = snprintf(sid, sizeof(sid), "sid-join-%d", i);
        s->ops->create(s, PR_KEY_SID, sid, (size_t)n, "backend-0", pin_cb, &sids);
        s->ops->room_join(s, "r1", 2, who[i], 3);
    }
    s->ops->room_join(s, "nope", 4, "p-z", 3);
    run_until(&loop, &sids.answered, 4);
    cr_assert_eq(sids.failed, 0);
    for (int i = 0; i < 50; i++) { /* the count events come back on the subscription */
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    cr_expect_eq(info_field(c, "commandstats", "cmdstat_evalsha:calls="), 1,
                 "the pins and joins of one iteration are one script call");
    cr_expect_eq(info_field(c, "commandstats", "cmdstat_publish:calls="), 1,
                 "one counts event for the joins of the batch");
    cr_expect_eq(info_field(c, "commandstats", "cmdstat_set:calls="), 4 + 3,
                 "one SET NX per pin, one room write per counted participant");
    redisReply *r = redisCommand(c, "GET room:r1:pod");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    cr_expect_not_null(strstr(r->str, "\"participantCount\":3"), "%s", r->str);
    cr_expect_not_null(strstr(r->str, "\"podId\":\"backend-0\""), "%s", r->str);
    freeReplyObject(r);
    char m[PR_REDIS_KEY_MAX];
    cr_assert_gt(pr_redis_members_key(m, sizeof(m), cfg.key_prefix, "r1", 2), 0);
    r = redisCommand(c, "SCARD %s", m);
    cr_expect(r && r->type == REDIS_REPLY_INTEGER && r->integer == 3);
    freeReplyObject(r);
    long long room_left = pttl(c, "room:r1:pod"), members_left = pttl(c, m);
    cr_expect(members_left > 0 && members_left <= room_left + 50,
              "the members set lives as long as its room: %lld vs %lld", members_left, room_left);
    r = redisCommand(c, "EXISTS room:nope:pod");
    cr_expect(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    struct pr_assignment a;
    cr_assert_eq(s->ops->info(s, PR_KEY_ROOM, "r1", 2, &a), 0);
    cr_expect_eq(a.participant_count, 3);

    /* count events of another replica: a higher count is applied, malformed ones are not */
    static const char *const counts[] = {"count r1 9x", "count r1", "count  r1 12", "count r1 11 1",
                                         "count r1 99999999999", "count nope 50", "count r1 8"};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        freeReplyObject(redisCommand(c, "PUBLISH podrouter:events %s", counts[i]));
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    cr_assert_eq(s->ops->info(s, PR_KEY_ROOM, "r1", 2, &a), 0);
    cr_expect_eq(a.participant_count, 8, "only the well-formed count applies");
    freeReplyObject(redisCommand(c, "PUBLISH podrouter:events %s", "count r1 5"));
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    cr_assert_eq(s->ops->info(s, PR_KEY_ROOM, "r1", 2, &a), 0);
    cr_expect_eq(a.participant_count, 8, "a count event never lowers the count");
    /* a message longer than any we accept (and than the subscriber's buffer) is skipped as it
     * streams by, and what follows it, in the same read or not, still applies */
    static char huge[40000];
    memset(huge, '7', sizeof(huge) - 1);
    memcpy(huge, "count r1 ", 9);
    redisAppendCommand(c, "PUBLISH podrouter:events %s", huge);
    redisAppendCommand(c, "PUBLISH podrouter:events %s", "count r1 9");
    redisAppendCommand(c, "PUBLISH podrouter:events %s", huge);
    redisAppendCommand(c, "PUBLISH podrouter:events %s", "count r1 10");
    for (int i = 0; i < 4; i++) {
        redisReply *pr = NULL;
        cr_assert_eq(redisGetReply(c, (void **)&pr), REDIS_OK);
        freeReplyObject(pr);
    }
    for (int i = 0; i < 100; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    cr_assert_eq(s->ops->info(s, PR_KEY_ROOM, "r1", 2, &a), 0);
    cr_expect_eq(a.participant_count, 10, "the counts around two long messages apply");
    /* counts messages (the joins of one batch): pairs apply up to a malformed one */
    static const char *const multi[] = {"counts r1 11",     "counts nope 1 r1 12 r1 1y r1 99",
                                        "counts r1 13x",    "counts",
                                        "counts ",          "counts r1",
                                        "countsr1 50",      "counts  r1 60",
                                        "counts r1 70x r1 80"};
    for (size_t i = 0; i < sizeof(multi) / sizeof(multi[0]); i++)
        freeReplyObject(redisCommand(c, "PUBLISH podrouter:events %s", multi[i]));
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    cr_assert_eq(s->ops->info(s, PR_KEY_ROOM, "r1", 2, &a), 0);
    cr_expect_eq(a.participant_count, 12, "only the well-formed pairs before a bad one apply");
    freeReplyObject(redisCommand(c, "PUBLISH podrouter:events %s", "counts x 3 r1 14 "));
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    cr_assert_eq(s->ops->info(s, PR_KEY_ROOM, "r1", 2, &a), 0);
    cr_expect_eq(a.participant_count, 14, "a pair after an unknown room applies");

    /* the script cache flushed (failover, SCRIPT FLUSH): the batch runs once as EVAL */
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    struct pins after = {0};
    s->ops->create(s, PR_KEY_SID, "sid-after-flush", 15, "backend-0", pin_cb, &after);
    s->ops->room_join(s, "r1", 2, "p-d", 3);
    run_until(&loop, &after.answered, 1);
    cr_expect_eq(after.failed, 0, "the batch failed after SCRIPT FLUSH");
    cr_expect_str_eq(after.winner, "backend-0");
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nap_ms(1);
    }
    r = redisCommand(c, "GET room:r1:pod");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    cr_expect_not_null(strstr(r->str, "\"participantCount\":4"), "%s", r->str);
    freeReplyObject(r);

    /* more entries than one batch holds: full batches go at once, the rest with the flush */
    freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
    enum { MANY = 300 };
    struct pins many = {0};
    for (int i = 0; i < MANY; i++) {
        char sid[32];
        int n = snprintf(sid, sizeof(sid), "sid-many-%03d", i);
        s->ops->create(s, PR_KEY_SID, sid, (size_t)n, "backend-0", pin_cb, &many);
    }
    run_until(&loop, &many.answered, MANY);
    cr_expect_eq(many.answered, MANY);
    cr_expect_eq(many.failed, 0);
    cr_expect_eq(info_field(c, "commandstats", "cmdstat_evalsha:calls="), 3, "128 + 128 + 44");
    cr_expect_eq(info_field(c, "commandstats", "cmdstat_set:calls="), MANY);

    s->ops->close(s);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_expect_eq(uv_loop_close(&loop), 0, "handles left open on the loop");
    pr_registry_destroy(reg);
    redis_stop(c);
}

/* ---- a hostile Redis: what its replies can make the store hold ---------------------------- */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../fuzz/resp_command.h"

/* A fake Redis on loopback (a thread): every connection's first command is answered with
 * `head`, then (stream) with 'x' bytes as fast as the store takes them; it notes the most
 * bytes one connection took and how many connections the store closed (it reconnects). */
static struct hostile {
    int lfd;
    const char *head;
    bool stream;
    atomic_bool stop;
    atomic_int accepted, closed;
    atomic_llong sent; /* the most one connection took */
    bool was_up;       /* the store was up at the end of hostile_run_store */
} H;

static void *hostile_run(void *arg)
{
    (void)arg;
    enum { MAXC = 8 };
    int fds[MAXC], n = 0;
    bool answered[MAXC] = {false};
    long long took[MAXC] = {0};
    static char junk[65536];
    memset(junk, 'x', sizeof(junk));
    while (!atomic_load(&H.stop)) {
        struct pollfd p[MAXC + 1];
        p[0] = (struct pollfd){H.lfd, POLLIN, 0};
        for (int i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){fds[i], (short)(POLLIN | (answered[i] && H.stream ? POLLOUT : 0)), 0};
        int polled = n;
        if (poll(p, (nfds_t)polled + 1, 20) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < MAXC) {
            int fd = accept(H.lfd, NULL, NULL);
            if (fd >= 0) {
                fcntl(fd, F_SETFL, O_NONBLOCK);
                answered[n] = false;
                took[n] = 0;
                fds[n++] = fd;
                atomic_fetch_add(&H.accepted, 1);
            }
        }
        for (int i = 0; i < polled; i++) {
            if (fds[i] < 0)
                continue;
            short ev = p[i + 1].revents;
            if (ev & (POLLIN | POLLHUP | POLLERR)) {
                char buf[4096];
                ssize_t k = read(fds[i], buf, sizeof(buf));
                if (k == 0 || (k < 0 && errno != EAGAIN)) {
                    close(fds[i]);
                    fds[i] = -1;
                    atomic_fetch_add(&H.closed, 1);
                    continue;
                }
                if (k > 0 && !answered[i]) {
                    answered[i] = true;
                    ssize_t w = send(fds[i], H.head, strlen(H.head), MSG_NOSIGNAL);
                    if (w > 0)
                        took[i] += w;
                }
            }
            if ((ev & POLLOUT) && fds[i] >= 0) {
                ssize_t w = send(fds[i], junk, sizeof(junk), MSG_NOSIGNAL);
                if (w > 0)
                    took[i] += w;
            }
            if (took[i] > atomic_load(&H.sent))
                atomic_store(&H.sent, took[i]);
        }
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return NULL;
}

/* A listening socket on a free loopback port (*port). */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A store on its own loop talking to a fake Redis (a thread running `run` on a listener). */
struct fake_redis {
    int lfd;
    pthread_t th;
    uv_loop_t loop;
    struct pr_registry *reg;
    struct pr_store *s;
};

static const char *fake_userinfo = ""; /* e.g. ":secret@": the store sends AUTH first */

static void fake_redis_open(struct fake_redis *f, void *(*run)(void *), int *lfd,
                            const char *const *pods)
{
    int port;
    *lfd = f->lfd = listen_loopback(&port);
    cr_assert_eq(pthread_create(&f->th, NULL, run, NULL), 0);
    struct pr_config cfg;
    pr_config_defaults(&cfg);
    snprintf(cfg.store, sizeof(cfg.store), "redis://%s127.0.0.1:%d", fake_userinfo, port);
    f->reg = pr_registry_create(cfg.pod_ttl_ms);
    cr_assert(f->reg);
    for (int i = 0; pods && pods[i]; i++)
        cr_assert_eq(pr_registry_put(f->reg, pods[i], "127.0.0.1:3000", 20, 80, NULL, NULL), 0);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    char err[256] = "";
    f->s = pr_store_redis_open(&cfg, f->reg, &f->loop, err, sizeof(err));
    cr_assert(f->s, "%s", err);
}

/* Close the store on the live loop, then stop the server thread (*stop) and free the rest. */
static void fake_redis_close(struct fake_redis *f, atomic_bool *stop)
{
    f->s->ops->close(f->s);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    atomic_store(stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
    cr_expect_eq(uv_loop_close(&f->loop), 0, "handles left open on the loop");
    pr_registry_destroy(f->reg);
}

/* Open the store against the hostile server, run its loop for ms; the RSS growth in KiB.
 * Then close the store on the live loop while it is between reconnects (no connection
 * open): its timer and flusher must be closed before it is freed (the loop is run after). */
static long hostile_run_store(const char *head, bool stream, long ms)
{
    memset(&H, 0, sizeof(H));
    H.head = head;
    H.stream = stream;
    struct fake_redis f;
    long rss0 = rss_kib(), peak = 0;
    fake_redis_open(&f, hostile_run, &H.lfd, NULL);
    /* The loop spins as a busy router's does (a read of the reply per iteration). */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0;; i++) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        if (i % 64 == 0) {
            long grown = rss_kib() - rss0;
            if (grown > peak)
                peak = grown;
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
                break;
        }
    }
    H.was_up = f.s->ops->up(f.s);
    fake_redis_close(&f, &H.stop);
    return peak;
}

Test(redis_hostile, a_reply_array_of_two_billion_elements_is_refused, .timeout = 30)
{
    long grown = hostile_run_store("*2000000000\r\n", false, 1500);
    cr_expect_not(H.was_up, "a store answered like this is not up");
    cr_expect_geq(atomic_load(&H.accepted), 1, "the store connected");
    cr_expect_geq(atomic_load(&H.closed), 1, "and closed the connection that sent it");
#if !defined(__SANITIZE_ADDRESS__) /* ASan keeps freed buffers (its quarantine) */
    cr_expect_lt(grown, 32 * 1024, "RSS grew by %ld KiB (an element vector was allocated)", grown);
#else
    (void)grown;
#endif
}

Test(redis_hostile, an_endless_bulk_string_is_cut_at_the_reply_limit, .timeout = 30)
{
    long grown = hostile_run_store("$2000000000\r\n", true, 1500);
    cr_expect_not(H.was_up, "a store answered like this is not up");
    long long sent = atomic_load(&H.sent);
    cr_expect_geq(atomic_load(&H.closed), 1, "the store closed the connection");
#if !defined(__SANITIZE_ADDRESS__) /* ASan keeps freed buffers (its quarantine) */
    cr_expect_lt(grown, 96 * 1024, "RSS grew by %ld KiB while the bulk streamed (%lld B sent)",
                 grown, sent);
#else
    (void)grown;
#endif
    /* the limit, plus what the two socket buffers of a loopback connection hold */
    cr_expect_lt(sent, 32ll << 20, "%lld bytes taken by one connection before its close", sent);
}

/* hiredis 0.14's dispatch asserts (aborts the process) on a subscription push that is not
 * [kind, channel, ...]: one that arrives in the same read as the subscription's confirmation
 * still reaches it. Each is refused instead: the connection closes and the store reconnects. */
Test(redis_hostile, a_malformed_push_after_the_subscription_closes_the_connection, .timeout = 30)
{
    static const char *const pushes[] = {
        "*1\r\n:1\r\n",
        "*3\r\n:1\r\n$16\r\npodrouter:events\r\n$1\r\nx\r\n",
        "*3\r\n$7\r\nmessage\r\n*0\r\n$1\r\nx\r\n",
        "*2\r\n$11\r\nunsubscribe\r\n$16\r\npodrouter:events\r\n",
        ":5\r\n",
        "*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$1\r\nx\r\n",
        "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$16\r\npodrouter:events\r\n$1\r\nx\r\n",
    };
    for (size_t i = 0; i < sizeof(pushes) / sizeof(*pushes); i++) {
        char head[256];
        snprintf(head, sizeof(head), "*3\r\n$9\r\nsubscribe\r\n$16\r\npodrouter:events\r\n:1\r\n%s",
                 pushes[i]);
        (void)hostile_run_store(head, false, 400);
        /* the process is still here (hiredis aborted it on pushes 0-3), the subscriber was
         * closed and reconnected (the command connection took the head as its script's
         * answer) */
        cr_expect_geq(atomic_load(&H.accepted), 3, "push %zu: the store reconnected (%d connections)",
                      i, atomic_load(&H.accepted));
        cr_expect_geq(atomic_load(&H.closed), 1, "push %zu: after it closed the connection", i);
    }
}

/* With a password the subscriber sends AUTH before SUBSCRIBE: a push for a channel it did not
 * subscribe to, right after AUTH's answer, made hiredis 0.14 run AUTH's callback again with
 * its request freed (a use-after-free; ASan reports it). Refused now: the connection closes. */
Test(redis_hostile, a_push_for_another_channel_after_auth_closes_the_connection, .timeout = 30)
{
    fake_userinfo = ":secret@";
    (void)hostile_run_store("+OK\r\n*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$1\r\nx\r\n",
                            false, 400);
    fake_userinfo = "";
    cr_expect_geq(atomic_load(&H.accepted), 3, "the store reconnected (%d connections)",
                  atomic_load(&H.accepted));
    cr_expect_geq(atomic_load(&H.closed), 1, "after it closed the connection");
}

/* ---- a Redis that answers every command with a reply of the wrong shape ---------------------- */

/* The replies it cycles through, for every command but the set-up ones (SCRIPT LOAD gets a
 * sha, SUBSCRIBE its confirmation): each shape a handler could trip on. */
static const char *const wrong_shapes[] = {
    ":1\r\n", ":0\r\n", ":-5\r\n", ":9223372036854775807\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
    "+OK\r\n", "-ERR nope\r\n", "-NOSCRIPT No matching script\r\n", "$9\r\nbackend-0\r\n",
    "$9\r\nbackend-9\r\n", "$5\r\nzz zz\r\n", "$0\r\n\r\n", "*1\r\n:1\r\n",
    "*2\r\n:1\r\n$9\r\nbackend-0\r\n", "*2\r\n:0\r\n$9\r\nbackend-1\r\n", "*2\r\n$1\r\nx\r\n:1\r\n",
    "*2\r\n:1\r\n*1\r\n:2\r\n", "*2\r\n:1\r\n$-1\r\n", "*3\r\n$9\r\nbackend-0\r\n:1\r\n:2\r\n",
    "*3\r\n$9\r\nbackend-0\r\n:-1\r\n:-1\r\n", "*3\r\n:1\r\n:1\r\n:1\r\n", "*2\r\n*0\r\n*0\r\n",
    "$43\r\n{\"podId\":\"backend-0\",\"participantCount\":-1}\r\n",
    "*2\r\n:1\r\n$34\r\n{\"podId\":\"a b\",\"assignedAt\":\"zzz\"}\r\n",
    "*4\r\n$9\r\nbackend-0\r\n:1\r\n$1\r\n2\r\n*1\r\n*1\r\n*1\r\n:7\r\n",
    "*1\r\n$20\r\n{\"name\":\"backend-0\"}\r\n",
};

struct wconn {
    int fd;
    char *buf;
    size_t len, cap;
};

static struct {
    int lfd;
    atomic_bool stop;
    atomic_int commands, accepted;
} W;

/* Answer one command: the set-up ones rightly, every other with the next wrong shape. */
static bool wrong_answer(void *arg, const char *name, size_t nl)
{
    static unsigned next;
    struct wconn *c = arg;
    char out[512];
    int m;
    if (nl == 6 && strncasecmp(name, "SCRIPT", 6) == 0)
        m = snprintf(out, sizeof(out), "$40\r\n%040d\r\n", 0);
    else if (nl == 9 && strncasecmp(name, "SUBSCRIBE", 9) == 0)
        m = snprintf(out, sizeof(out), "*3\r\n$9\r\nsubscribe\r\n$16\r\npodrouter:events\r\n:1\r\n");
    else
        m = snprintf(out, sizeof(out), "%s",
                     wrong_shapes[next++ % (sizeof(wrong_shapes) / sizeof(*wrong_shapes))]);
    atomic_fetch_add(&W.commands, 1);
    return send(c->fd, out, (size_t)m, MSG_NOSIGNAL) == m;
}

static void *wrong_run(void *arg)
{
    (void)arg;
    enum { MAXC = 16 };
    struct wconn cs[MAXC];
    int n = 0;
    while (!atomic_load(&W.stop)) {
        struct pollfd p[MAXC + 1];
        p[0] = (struct pollfd){W.lfd, POLLIN, 0};
        for (int i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){cs[i].fd, POLLIN, 0};
        int polled = n;
        if (poll(p, (nfds_t)polled + 1, 20) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < MAXC) {
            int fd = accept(W.lfd, NULL, NULL);
            if (fd >= 0) {
                cs[n++] = (struct wconn){fd, NULL, 0, 0};
                atomic_fetch_add(&W.accepted, 1);
            }
        }
        for (int i = 0; i < polled; i++) {
            struct wconn *c = &cs[i];
            if (c->fd < 0 || !(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (c->cap - c->len < 65536) {
                c->cap = c->cap ? c->cap * 2 : 131072;
                c->buf = realloc(c->buf, c->cap);
                cr_assert_not_null(c->buf);
            }
            ssize_t k = read(c->fd, c->buf + c->len, c->cap - c->len);
            if (k <= 0) {
                close(c->fd);
                c->fd = -1;
                continue;
            }
            c->len += (size_t)k;
            if (resp_consume(c->buf, &c->len, wrong_answer, c) < 0) {
                close(c->fd);
                c->fd = -1;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (cs[i].fd >= 0)
            close(cs[i].fd);
        free(cs[i].buf);
    }
    return NULL;
}

struct answers {
    int calls, ok;
    bool bad_pod;
};

static void count_cb(void *arg, int status, const char *pod)
{
    struct answers *a = arg;
    a->calls++;
    if (status == 0) {
        a->ok++;
        if (!pod || !pr_pod_name_valid(pod, strlen(pod)))
            a->bad_pod = true;
    }
}

Test(redis_hostile, replies_of_the_wrong_shape_to_every_operation_fail_cleanly, .timeout = 60)
{
    memset(&W, 0, sizeof(W));
    static const char *const pods[] = {"backend-0", "backend-1", NULL};
    struct fake_redis f;
    fake_redis_open(&f, wrong_run, &W.lfd, pods);
    struct pr_store *s = f.s;
    cr_assert_eq(store_up(&f.loop, s), 0, "the set-up replies are right: the store comes up");

    enum { ROUNDS = 200 };
    struct answers got = {0};
    int issued = 0;
    for (int i = 0; i < ROUNDS; i++) {
        char k[32];
        int n = snprintf(k, sizeof(k), "key-%03d", i);
        enum pr_key_kind kind = (enum pr_key_kind)(i % 3);
        s->ops->get(s, kind, k, (size_t)n, count_cb, &got);
        s->ops->create(s, kind, k, (size_t)n, "backend-0", count_cb, &got);
        s->ops->replace(s, kind, k, (size_t)n, "backend-0", "backend-1", count_cb, &got);
        issued += 3;
        s->ops->room_join(s, k, (size_t)n, "who", 3);
        (void)s->ops->set(s, kind, k, (size_t)n, "backend-1");
        (void)s->ops->del(s, kind, k, (size_t)n);
        s->ops->touch(s, kind, k, (size_t)n);
        s->ops->pod_put(s, "backend-0");
        if (i % 20 == 0) {
            s->ops->tick(s);
            for (int j = 0; j < 5; j++)
                uv_run(&f.loop, UV_RUN_NOWAIT);
        }
    }
    for (int i = 0; i < 8000 && got.calls < issued; i++) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        if (i % 50 == 0)
            s->ops->tick(s);
        nap_ms(1);
    }
    cr_expect_eq(got.calls, issued, "every call answered exactly once (%d of %d)", got.calls,
                 issued);
    cr_expect_not(got.bad_pod, "an answer named something that is not a pod name");
    cr_expect_gt(atomic_load(&W.commands), 100, "the commands reached the fake Redis");
    uint64_t rooms = 0, participants = 0;
    s->ops->counts(s, &rooms, &participants);
    for (int i = 0; i < 50; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    cr_expect_eq(got.calls, issued, "and never twice");

    fake_redis_close(&f, &W.stop);
}
