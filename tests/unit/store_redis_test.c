/* Unit tests of the Redis store's wire formats (redis_proto.h): --store URLs, key names,
 * room values (HyperStudy's, ours, garbage), pod rows and P events messages. The store's
 * behaviour against a real redis-server is covered by tests/e2e/redis*.test.js. */
#include <criterion/criterion.h>
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
    static const char *const ops[] = {"'create'", "'replace'", "'set'",  "'del'",      "'join'",
                                      "'renew'",  "'podput'",  "'pods'", "'poddrain'", "'poddel'"};
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
