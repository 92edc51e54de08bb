/* The process-wide assignment table and its one lock (atable.h, struct pr_shared_atab): the
 * memory store and the Redis store's cache share this code instead of each wrapping the table
 * with its own mutex. Every function here is one short critical section. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "atable.h"

/* Take a reference on s's table, creating it on first use. */
int pr__satab_open(struct pr_shared_atab *s, struct pr_registry *reg,
                   const uint64_t ttl[PR_ATAB_KINDS], uint64_t active_ms, uint64_t max_per_kind)
{
    pthread_mutex_lock(&s->mu);
    if (!s->t) {
        s->t = pr__atab_create(reg, ttl);
        if (s->t) {
            s->t->active_ms = active_ms;
            s->t->max_per_kind = max_per_kind;
        }
    }
    if (s->t)
        s->t->refs++;
    int rc = s->t ? 0 : -ENOMEM;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Drop a reference; the last one frees the table. */
void pr__satab_close(struct pr_shared_atab *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->t && --s->t->refs == 0) {
        pr__atab_destroy(s->t);
        s->t = NULL;
    }
    pthread_mutex_unlock(&s->mu);
}

struct pr_atab *pr__satab_lock(struct pr_shared_atab *s)
{
    pthread_mutex_lock(&s->mu);
    return s->t;
}

void pr__satab_unlock(struct pr_shared_atab *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* Lock and look kind:key up. */
void pr__satab_begin(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                     struct pr_atab_op *op)
{
    op->hash = pr__atab_hash(kind, key, len);
    op->now = pr_mono_ms();
    op->t = pr__satab_lock(s);
    op->pp = pr__atab_lookup(op->t, kind, key, len, op->hash, op->now);
}

/* A read by a request: use, renew, copy the pod. */
int pr__satab_get(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                  uint64_t hash, uint64_t now, char pod[PR_POD_NAME_MAX + 1], bool *renew)
{
    bool due = false;
    struct pr_atab *t = pr__satab_lock(s);
    struct pr_atab_entry **pp = pr__atab_lookup(t, kind, key, len, hash, now);
    if (pp) {
        struct pr_atab_entry *e = *pp;
        memcpy(pod, e->pod->name, PR_POD_NAME_MAX + 1);
        bool promoted = pr__atab_use(t, e, now, true) & PR_ATAB_PROMOTED;
        due = pr__atab_renew(t, e, now) || promoted;
    }
    pr__satab_unlock(s);
    if (renew)
        *renew = due;
    return pp ? 0 : -ENOENT;
}

/* A use of kind:key or of its hash. */
int pr__satab_use(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                  uint64_t hash, bool activate, char key_out[PR_KEY_MAX + 1], size_t *key_len,
                  char pod[PR_POD_NAME_MAX + 1])
{
    uint64_t now = pr_mono_ms();
    struct pr_atab *t = pr__satab_lock(s);
    struct pr_atab_entry *e;
    if (key) {
        struct pr_atab_entry **pp = pr__atab_lookup(t, kind, key, len, hash, now);
        e = pp ? *pp : NULL;
    } else {
        e = pr__atab_find_hash(t, kind, hash, now);
    }
    int r = -ENOENT;
    if (e) {
        r = pr__atab_use(t, e, now, activate);
        if ((r & PR_ATAB_PROMOTED) && key_out && key_len && pod) {
            memcpy(key_out, e->key, e->keylen);
            key_out[e->keylen] = '\0';
            *key_len = e->keylen;
            memcpy(pod, e->pod->name, PR_POD_NAME_MAX + 1);
        }
    }
    pr__satab_unlock(s);
    return r;
}

int pr__satab_del(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len)
{
    struct pr_atab_op op;
    pr__satab_begin(s, kind, key, len, &op);
    bool found = op.pp != NULL;
    if (found)
        pr__atab_remove(op.t, op.pp);
    pr__satab_unlock(s);
    return found ? 0 : -ENOENT;
}

int pr__satab_info(struct pr_shared_atab *s, uint8_t kind, const char *key, size_t len,
                   struct pr_assignment *out)
{
    struct pr_atab *t = pr__satab_lock(s);
    int rc = pr__atab_info(t, kind, key, len, out);
    pr__satab_unlock(s);
    return rc;
}

void pr__satab_release_pod(struct pr_shared_atab *s, const char *pod)
{
    struct pr_atab *t = pr__satab_lock(s);
    pr__atab_release_pod(t, pod);
    pr__satab_unlock(s);
}

void pr__satab_counts(struct pr_shared_atab *s, uint64_t *rooms, uint64_t *participants)
{
    struct pr_atab *t = pr__satab_lock(s);
    if (rooms)
        *rooms = t->kind_count[PR_KEY_ROOM];
    if (participants)
        *participants = t->kind_count[PR_KEY_PARTICIPANT];
    pr__satab_unlock(s);
}

bool pr__satab_full(struct pr_shared_atab *s, uint8_t kind)
{
    struct pr_atab *t = pr__satab_lock(s);
    bool full = pr__atab_full(t, kind);
    pr__satab_unlock(s);
    return full;
}

void pr__satab_tick(struct pr_shared_atab *s, bool recount)
{
    uint64_t now = pr_mono_ms();
    struct pr_atab *t = pr__satab_lock(s);
    pr__atab_expire_some(t, now);
    pr__atab_deactivate_idle(t, now);
    if (recount)
        pr__atab_recount(t);
    pr__satab_unlock(s);
}

uint64_t pr__satab_touch_every(const struct pr_shared_atab *s)
{
    return pr__touch_every(s->t);
}
