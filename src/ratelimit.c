/* Token buckets per client address, in one bounded open-addressing table behind a mutex.
 * Consulted only when a request would create a new assignment, never per request, so one
 * lock shared by the loop threads costs nothing measurable. When the table fills, buckets
 * that refilled completely (idle addresses) are dropped; if every address is active, the
 * table starts over, which errs on the side of letting clients through. */
#include "podrouter/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "podrouter/common.h"

struct entry {
    uint8_t used, family;
    uint8_t addr[16];
    double tokens;
    uint64_t last_ms;
};

struct pr_ratelimit {
    pthread_mutex_t mu;
    double rate;
    double burst;
    size_t cap, mask, n;
    struct entry *tab;
};

struct pr_ratelimit *pr_ratelimit_create(double rate, uint32_t burst, size_t max_entries)
{
    struct pr_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    size_t cap = 64;
    while (cap < max_entries)
        cap *= 2;
    rl->tab = calloc(cap, sizeof(*rl->tab));
    if (!rl->tab) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    rl->rate = rate;
    rl->burst = burst;
    rl->cap = cap;
    rl->mask = cap - 1;
    return rl;
}

void pr_ratelimit_destroy(struct pr_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->tab);
    free(rl);
}

static size_t hash_addr(int family, const uint8_t *addr)
{
    return (size_t)pr_hash_keyed((uint8_t)family, addr, family == AF_INET6 ? 16 : 4);
}

static double refill(const struct pr_ratelimit *rl, const struct entry *e, uint64_t now)
{
    double t = e->tokens + (double)(now - e->last_ms) * rl->rate / 1000.0;
    return t > rl->burst ? rl->burst : t;
}

/* Rebuild the table without the buckets that are full again (their addresses were idle). */
static void purge(struct pr_ratelimit *rl, uint64_t now)
{
    struct entry *old = rl->tab;
    struct entry *tab = calloc(rl->cap, sizeof(*tab));
    if (!tab) {
        memset(rl->tab, 0, rl->cap * sizeof(*rl->tab));
        rl->n = 0;
        return;
    }
    rl->tab = tab;
    rl->n = 0;
    for (size_t i = 0; i < rl->cap; i++) {
        if (!old[i].used || refill(rl, &old[i], now) >= rl->burst)
            continue;
        size_t j = hash_addr(old[i].family, old[i].addr) & rl->mask;
        while (tab[j].used)
            j = (j + 1) & rl->mask;
        tab[j] = old[i];
        rl->n++;
    }
    free(old);
    if (rl->n * 4 > rl->cap * 3) { /* all active: start over */
        memset(rl->tab, 0, rl->cap * sizeof(*rl->tab));
        rl->n = 0;
    }
}

bool pr_ratelimit_take(struct pr_ratelimit *rl, int family, const uint8_t *addr,
                       uint64_t now_ms)
{
    size_t alen = family == AF_INET6 ? 16 : 4;
    pthread_mutex_lock(&rl->mu);
    size_t i = hash_addr(family, addr) & rl->mask;
    while (rl->tab[i].used &&
           !(rl->tab[i].family == family && memcmp(rl->tab[i].addr, addr, alen) == 0))
        i = (i + 1) & rl->mask;
    struct entry *e = &rl->tab[i];
    if (!e->used) {
        if (rl->n * 4 >= rl->cap * 3) {
            purge(rl, now_ms);
            i = hash_addr(family, addr) & rl->mask;
            while (rl->tab[i].used)
                i = (i + 1) & rl->mask;
            e = &rl->tab[i];
        }
        memset(e, 0, sizeof(*e));
        e->used = 1;
        e->family = (uint8_t)family;
        memcpy(e->addr, addr, alen);
        e->tokens = rl->burst;
        e->last_ms = now_ms;
        rl->n++;
    }
    e->tokens = refill(rl, e, now_ms);
    e->last_ms = now_ms;
    bool ok = e->tokens >= 1.0;
    if (ok)
        e->tokens -= 1.0;
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

size_t pr_ratelimit_size(struct pr_ratelimit *rl)
{
    pthread_mutex_lock(&rl->mu);
    size_t n = rl->n;
    pthread_mutex_unlock(&rl->mu);
    return n;
}
