/* The assignment table shared by the memory store and the Redis cache. */
#include "atable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podrouter/registry.h"

#define INITIAL_BUCKETS 1024u
#define TICK_BUCKETS 8192u      /* buckets examined per expiry pass */
#define RENEW_MIN_MS 60000u     /* renew a key's TTL at most once a minute... */
#define RENEW_SHORT_TTL 120000u /* ...or every ttl/2 when the ttl is under 2 minutes */

struct pr_atab *pr__atab_create(struct pr_registry *reg, const uint64_t ttl[PR_ATAB_KINDS])
{
    struct pr_atab *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->buckets = calloc(INITIAL_BUCKETS, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    t->nbuckets = INITIAL_BUCKETS;
    t->reg = reg;
    memcpy(t->ttl, ttl, sizeof(t->ttl));
    return t;
}

/* The chain of t's pod names that name belongs to. */
static struct pr_atab_pod **pod_bucket(struct pr_atab *t, const char *name, size_t len)
{
    return &t->pods[pr__atab_hash(0xfe, name, len) % PR_ATAB_POD_BUCKETS];
}

/* The table's shared copy of name with one more reference, or NULL on ENOMEM. */
static struct pr_atab_pod *pod_ref(struct pr_atab *t, const char *name)
{
    size_t len = strnlen(name, PR_POD_NAME_MAX);
    struct pr_atab_pod **b = pod_bucket(t, name, len);
    for (struct pr_atab_pod *p = *b; p; p = p->next) {
        if (strncmp(p->name, name, PR_POD_NAME_MAX) == 0) {
            p->refs++;
            return p;
        }
    }
    struct pr_atab_pod *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(p->name, name, len);
    p->refs = 1;
    p->next = *b;
    *b = p;
    return p;
}

/* Drop one reference to p; the last one frees it. */
static void pod_unref(struct pr_atab *t, struct pr_atab_pod *p)
{
    if (--p->refs > 0)
        return;
    struct pr_atab_pod **pp = pod_bucket(t, p->name, strlen(p->name));
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    free(p);
}

void pr__atab_destroy(struct pr_atab *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < PR_ATAB_POD_BUCKETS; i++) {
        while (t->pods[i]) {
            struct pr_atab_pod *next = t->pods[i]->next;
            free(t->pods[i]);
            t->pods[i] = next;
        }
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct pr_atab_entry *e = t->buckets[i];
        while (e) {
            struct pr_atab_entry *next = e->next;
            free(e->ids);
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    free(t);
}

uint64_t pr__atab_hash(uint8_t seed, const char *data, size_t len)
{
    return pr_hash_keyed(seed, data, len);
}

bool pr__atab_key_ok(enum pr_key_kind kind, const char *key, size_t len)
{
    return (unsigned)kind < PR_ATAB_KINDS && key && len > 0 && len <= PR_KEY_MAX;
}

void pr__atab_load(const struct pr_atab *t, const struct pr_atab_entry *e, int sign)
{
    if (!e->counted)
        return; /* idle and tentative assignments keep their pod but add no load */
    if (e->kind == PR_KEY_ROOM)
        pr_registry_add_load(t->reg, e->pod->name, sign,
                             sign * (int)(e->participant_count > 1000000 ? 1000000
                                                                         : e->participant_count));
    else if (e->kind == PR_KEY_PARTICIPANT)
        pr_registry_add_load(t->reg, e->pod->name, 0, sign);
}

void pr__atab_set_dirty(struct pr_atab *t, struct pr_atab_entry *e, bool dirty)
{
    if (e->dirty == dirty)
        return;
    e->dirty = dirty;
    if (dirty)
        t->dirty++;
    else
        t->dirty--;
}

/* Take e off the active list (it stays wherever it is in its bucket). */
static void active_unlink(struct pr_atab *t, struct pr_atab_entry *e)
{
    if (e->aprev)
        e->aprev->anext = e->anext;
    else
        t->ahead = e->anext;
    if (e->anext)
        e->anext->aprev = e->aprev;
    else
        t->atail = e->aprev;
    e->aprev = e->anext = NULL;
}

/* Append e at the most recently used end of the active list. */
static void active_append(struct pr_atab *t, struct pr_atab_entry *e)
{
    e->anext = NULL;
    e->aprev = t->atail;
    if (t->atail)
        t->atail->anext = e;
    else
        t->ahead = e;
    t->atail = e;
}

void pr__atab_remove(struct pr_atab *t, struct pr_atab_entry **pp)
{
    struct pr_atab_entry *e = *pp;
    *pp = e->next;
    pr__atab_load(t, e, -1);
    if (e->counted) {
        active_unlink(t, e);
        t->nactive--;
    }
    t->count--;
    t->kind_count[e->kind]--;
    if (e->dirty)
        t->dirty--;
    pod_unref(t, e->pod);
    free(e->ids);
    free(e);
}

/* Double the bucket array; on allocation failure the table just stays denser. */
static void grow(struct pr_atab *t)
{
    size_t n = t->nbuckets * 2;
    struct pr_atab_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct pr_atab_entry *e = t->buckets[i];
        while (e) {
            struct pr_atab_entry *next = e->next;
            size_t j = (size_t)e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    t->cursor = 0;
}

struct pr_atab_entry **pr__atab_lookup(struct pr_atab *t, uint8_t kind, const char *key, size_t len,
                                       uint64_t hash, uint64_t now)
{
    struct pr_atab_entry **pp = &t->buckets[hash & (t->nbuckets - 1)];
    while (*pp) {
        struct pr_atab_entry *e = *pp;
        if (e->hash == hash && e->kind == kind && e->keylen == len &&
            memcmp(e->key, key, len) == 0) {
            if (now >= e->expires) {
                pr__atab_remove(t, pp);
                return NULL;
            }
            return pp;
        }
        pp = &e->next;
    }
    return NULL;
}

uint64_t pr__atab_deadline(const struct pr_atab *t, uint8_t kind, uint64_t now)
{
    uint64_t ttl = t->ttl[kind];
    return ttl == 0 ? UINT64_MAX : now + ttl;
}

/* Expiry of e refreshed at now: its TTL, or active_ms while it is tentative. */
static uint64_t entry_deadline(const struct pr_atab *t, const struct pr_atab_entry *e, uint64_t now)
{
    uint64_t full = pr__atab_deadline(t, e->kind, now);
    if (e->tentative && t->active_ms && now + t->active_ms < full)
        return now + t->active_ms;
    return full;
}

bool pr__atab_renew(struct pr_atab *t, struct pr_atab_entry *e, uint64_t now)
{
    uint64_t ttl = t->ttl[e->kind];
    uint64_t every = ttl < RENEW_SHORT_TTL ? ttl / 2 : RENEW_MIN_MS;
    if (e->tentative)
        return false; /* only a second use (pr__atab_use) makes it live */
    if (now > e->renewed && now - e->renewed > every) {
        e->renewed = now;
        e->expires = pr__atab_deadline(t, e->kind, now);
        return true;
    }
    return false;
}

struct pr_atab_entry *pr__atab_insert(struct pr_atab *t, uint8_t kind, const char *key, size_t len,
                                      uint64_t hash, const char *pod, uint32_t count,
                                      uint64_t assigned_at, uint64_t now)
{
    struct pr_atab_entry *e = calloc(1, sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    e->hash = hash;
    e->kind = kind;
    e->keylen = (uint8_t)len;
    memcpy(e->key, key, len);
    e->pod = pod_ref(t, pod);
    if (!e->pod) {
        free(e);
        return NULL;
    }
    e->renewed = now;
    e->tentative = t->active_ms > 0;
    e->expires = entry_deadline(t, e, now);
    e->assigned_at_ms = assigned_at ? assigned_at : pr_now_ms();
    e->participant_count = kind == PR_KEY_ROOM ? count : 0;
    if (t->active_ms == 0 && kind != PR_KEY_SID) {
        /* No activity window: every assignment counts (the behaviour before SPEC 1.1). */
        e->counted = true;
        e->active = now ? now : 1;
        active_append(t, e);
        t->nactive++;
    }
    size_t b = (size_t)hash & (t->nbuckets - 1);
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->count++;
    t->kind_count[kind]++;
    pr__atab_load(t, e, +1);
    if (t->count > t->nbuckets)
        grow(t);
    return e;
}

void pr__atab_move(struct pr_atab *t, struct pr_atab_entry *e, const char *pod, uint32_t count,
                   uint64_t assigned_at, uint64_t now)
{
    bool same = strcmp(e->pod->name, pod) == 0;
    if (same && (e->kind != PR_KEY_ROOM || e->participant_count == count))
        return;
    struct pr_atab_pod *to = same ? e->pod : pod_ref(t, pod);
    if (!to)
        return; /* ENOMEM: the entry keeps its pod, which its callers then report */
    pr__atab_load(t, e, -1);
    if (!same) {
        pod_unref(t, e->pod);
        e->pod = to;
        e->assigned_at_ms = assigned_at ? assigned_at : pr_now_ms();
        e->renewed = now;
        e->expires = entry_deadline(t, e, now);
    }
    if (e->kind == PR_KEY_ROOM)
        e->participant_count = count;
    e->report_due = true;
    pr__atab_load(t, e, +1);
}

int pr__atab_info(struct pr_atab *t, uint8_t kind, const char *key, size_t len,
                  struct pr_assignment *out)
{
    uint64_t hash = pr__atab_hash(kind, key, len);
    struct pr_atab_entry **pp = pr__atab_lookup(t, kind, key, len, hash, pr_mono_ms());
    if (!pp)
        return -ENOENT;
    memcpy(out->pod, (*pp)->pod->name, sizeof(out->pod));
    out->participant_count = (*pp)->participant_count;
    out->assigned_at_ms = (*pp)->assigned_at_ms;
    return 0;
}

void pr__atab_release_pod(struct pr_atab *t, const char *pod)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct pr_atab_entry **pp = &t->buckets[i];
        while (*pp) {
            if (strcmp((*pp)->pod->name, pod) == 0)
                pr__atab_remove(t, pp);
            else
                pp = &(*pp)->next;
        }
    }
}

void pr__atab_expire_some(struct pr_atab *t, uint64_t now)
{
    size_t todo = t->nbuckets < TICK_BUCKETS ? t->nbuckets : TICK_BUCKETS;
    for (size_t k = 0; k < todo; k++) {
        struct pr_atab_entry **pp = &t->buckets[t->cursor];
        while (*pp) {
            if (now >= (*pp)->expires)
                pr__atab_remove(t, pp);
            else
                pp = &(*pp)->next;
        }
        t->cursor = (t->cursor + 1) & (t->nbuckets - 1);
    }
}

bool pr__atab_full(const struct pr_atab *t, uint8_t kind)
{
    return t->max_per_kind && kind < PR_ATAB_KINDS && t->kind_count[kind] >= t->max_per_kind;
}

int pr__atab_use(struct pr_atab *t, struct pr_atab_entry *e, uint64_t now, bool activate)
{
    int r = 0;
    if (e->tentative) {
        e->tentative = false;
        e->renewed = now;
        e->expires = pr__atab_deadline(t, e->kind, now);
        r |= PR_ATAB_PROMOTED;
    }
    e->active = now ? now : 1;
    if (!activate || e->kind == PR_KEY_SID || t->active_ms == 0)
        return r;
    if (e->counted) {
        if (t->atail != e) {
            active_unlink(t, e);
            active_append(t, e);
        }
        return r;
    }
    e->counted = true;
    e->report_due = true;
    active_append(t, e);
    t->nactive++;
    pr__atab_load(t, e, +1);
    return r | PR_ATAB_ACTIVATED;
}

struct pr_atab_entry *pr__atab_find_hash(struct pr_atab *t, uint8_t kind, uint64_t hash,
                                         uint64_t now)
{
    for (struct pr_atab_entry *e = t->buckets[hash & (t->nbuckets - 1)]; e; e = e->next)
        if (e->hash == hash && e->kind == kind)
            return now < e->expires ? e : NULL;
    return NULL;
}

void pr__atab_deactivate_idle(struct pr_atab *t, uint64_t now)
{
    if (t->active_ms == 0)
        return;
    while (t->ahead && t->ahead->active <= now && now - t->ahead->active >= t->active_ms) {
        struct pr_atab_entry *e = t->ahead;
        pr__atab_load(t, e, -1);
        e->counted = false;
        active_unlink(t, e);
        t->nactive--;
    }
}

/* Per-pod totals while recounting loads. */
struct load_row {
    const char *name;
    uint32_t rooms, participants;
};

/* Order load rows by pod name. */
static int load_cmp(const void *a, const void *b)
{
    return strcmp(((const struct load_row *)a)->name, ((const struct load_row *)b)->name);
}

void pr__atab_recount(struct pr_atab *t)
{
    struct pr_pod_info *pods = malloc(PR_MAX_PODS * sizeof(*pods));
    struct load_row *rows = malloc(PR_MAX_PODS * sizeof(*rows));
    if (!pods || !rows) {
        free(pods);
        free(rows);
        return;
    }
    size_t n = pr_registry_snapshot(t->reg, pods, PR_MAX_PODS);
    if (n > PR_MAX_PODS)
        n = PR_MAX_PODS;
    for (size_t i = 0; i < n; i++)
        rows[i] = (struct load_row){pods[i].name, 0, 0};
    qsort(rows, n, sizeof(*rows), load_cmp);
    for (const struct pr_atab_entry *e = t->ahead; e && n > 0; e = e->anext) {
        struct load_row key = {e->pod->name, 0, 0};
        struct load_row *r = bsearch(&key, rows, n, sizeof(*rows), load_cmp);
        if (!r)
            continue;
        if (e->kind == PR_KEY_ROOM) {
            r->rooms++;
            r->participants += e->participant_count;
        } else {
            r->participants++;
        }
    }
    for (size_t i = 0; i < n; i++)
        pr_registry_set_load(t->reg, rows[i].name, rows[i].rooms, rows[i].participants);
    free(pods);
    free(rows);
}

bool pr__touch_due(struct pr_touch_cache *c, uint64_t hash, uint64_t now, uint64_t every_ms)
{
    size_t set = (size_t)(hash >> 20) & (PR_TOUCH_SETS - 1);
    uint32_t *h = c->tag[set], *at = c->at[set], tag = (uint32_t)hash, now32 = (uint32_t)now;
    size_t victim = 0;
    uint32_t oldest = 0;
    for (size_t k = 0; k < PR_TOUCH_WAYS; k++) {
        uint32_t age = at[k] ? now32 - at[k] : UINT32_MAX; /* modulo 2^32 */
        if (h[k] == tag && at[k] != 0) {
            if (age < every_ms)
                return false;
            victim = k;
            break;
        }
        if (age >= oldest) {
            oldest = age; /* else replace the stalest (or an empty) way */
            victim = k;
        }
    }
    h[victim] = tag;
    at[victim] = now32 ? now32 : 1;
    return true;
}

uint64_t pr__touch_every(const struct pr_atab *t)
{
    uint64_t every = t->active_ms / 8;
    if (every > 1000)
        every = 1000;
    return every ? every : 1;
}
