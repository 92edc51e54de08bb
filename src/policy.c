/* Key -> pod choice (SPEC 5). Pure functions over a caller-owned pod array: no allocation,
 * no globals, identical answers on every replica and architecture for identical inputs.
 *
 * HRW score: FNV-1a 64 over key bytes, one 0x00 separator byte, then pod bytes, finished
 * with the splitmix64 finalizer (Stafford "Mix13"). FNV-1a alone mixes its last bytes poorly
 * into the high bits; the finalizer makes every input bit affect every output bit, so the
 * argmax over pods is close to uniform. The separator keeps ("ab","c") and ("a","bc")
 * apart. Only integer arithmetic, so the value is the same everywhere. */
#include "podrouter/policy.h"

#include <math.h>
#include <string.h>

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

/* FNV-1a 64 step over len bytes. */
static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= FNV64_PRIME;
    }
    return h;
}

/* splitmix64 finalizer: a bijection with full avalanche. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Deterministic 64-bit rendezvous score of (pod, key). */
uint64_t pr_hrw_score(const char *pod, size_t pod_len, const char *key, size_t key_len)
{
    static const char sep = 0;
    uint64_t h = FNV64_OFFSET;
    h = fnv1a(h, key ? key : "", key ? key_len : 0);
    h = fnv1a(h, &sep, 1);
    h = fnv1a(h, pod ? pod : "", pod ? pod_len : 0);
    return mix64(h);
}

/* An exact load ratio num/den (both < 2^32, den >= 1). */
struct ratio {
    uint64_t num, den;
};

/* The larger of rooms/cap_rooms and participants/cap_participants, as an exact fraction. */
static struct ratio exact_ratio(const struct pr_policy_pod *p)
{
    uint64_t cr = p->cap_rooms ? p->cap_rooms : 1;
    uint64_t cp = p->cap_participants ? p->cap_participants : 1;
    uint64_t lr = p->load_rooms, lp = p->load_participants;
    /* lr/cr >= lp/cp  <=>  lr*cp >= lp*cr; products of 32-bit values fit in 64 bits. */
    if (lr * cp >= lp * cr)
        return (struct ratio){lr, cr};
    return (struct ratio){lp, cp};
}

/* -1, 0, 1 as a < b, a == b, a > b, compared exactly by cross-multiplication. */
static int ratio_cmp(struct ratio a, struct ratio b)
{
    uint64_t l = a.num * b.den, r = b.num * a.den;
    return l < r ? -1 : l > r;
}

/* Load ratio max(rooms/cap_rooms, participants/cap_participants) as a double. */
double pr_policy_ratio(const struct pr_policy_pod *p)
{
    struct ratio r = exact_ratio(p);
    return (double)r.num / (double)r.den;
}

/* Score of pod i for key (names may be NULL: treated as empty). */
static uint64_t score_of(const struct pr_policy_pod *p, const char *key, size_t key_len)
{
    const char *name = p->name ? p->name : "";
    return pr_hrw_score(name, strlen(name), key, key_len);
}

/* true when candidate (score sc, pod c) beats the incumbent (score sb, pod b) on HRW; equal
 * scores (only possible for equal names) fall back to name order, which is total. */
static bool hrw_beats(uint64_t sc, const struct pr_policy_pod *c, uint64_t sb,
                      const struct pr_policy_pod *b)
{
    if (sc != sb)
        return sc > sb;
    return strcmp(c->name ? c->name : "", b->name ? b->name : "") < 0;
}

/* Lowest exact ratio among eligible pods (so under-capacity pods always beat full ones, and
 * the least-over pod wins when all are full); ties by highest HRW score. -1 if none. */
int pr_policy_least_loaded(const struct pr_policy_pod *pods, size_t n, const char *key,
                           size_t key_len)
{
    int best = -1;
    struct ratio br = {0, 1};
    uint64_t bs = 0;
    bool bs_known = false;
    if (pods == NULL)
        return -1;
    for (size_t i = 0; i < n && i <= (size_t)INT32_MAX; i++) {
        const struct pr_policy_pod *p = &pods[i];
        if (!p->eligible)
            continue;
        struct ratio r = exact_ratio(p);
        if (best < 0) {
            best = (int)i;
            br = r;
            bs_known = false;
            continue;
        }
        int c = ratio_cmp(r, br);
        if (c > 0)
            continue;
        if (c == 0) {
            /* Tie: hash lazily, only when it decides something. */
            if (!bs_known) {
                bs = score_of(&pods[best], key, key_len);
                bs_known = true;
            }
            uint64_t s = score_of(p, key, key_len);
            if (!hrw_beats(s, p, bs, &pods[best]))
                continue;
            bs = s;
        } else {
            bs_known = false;
        }
        best = (int)i;
        br = r;
    }
    return best;
}

/* Bounded-load consistent hashing: the highest-HRW eligible pod whose rooms + participants
 * is below ceil(factor * (total + 1) / n_eligible). -1 if none is eligible. */
int pr_policy_bounded_hash(const struct pr_policy_pod *pods, size_t n, const char *key,
                           size_t key_len, double factor)
{
    if (pods == NULL)
        return -1;
    uint64_t total = 0, n_elig = 0;
    for (size_t i = 0; i < n; i++) {
        if (pods[i].eligible) {
            total += (uint64_t)pods[i].load_rooms + pods[i].load_participants;
            n_elig++;
        }
    }
    if (n_elig == 0)
        return -1;
    /* A factor below 1 (or NaN) could leave no pod under the bound; 1 is the safe floor. Some
     * pod is at or below the average total/n < bound, so a pod under the bound always
     * exists. IEEE-754 rounding of this one product and quotient is the same everywhere. */
    if (!(factor >= 1.0))
        factor = 1.0;
    if (factor > 1e6)
        factor = 1e6;
    uint64_t bound = (uint64_t)ceil(factor * (double)(total + 1) / (double)n_elig);

    int best = -1;
    uint64_t bs = 0;
    for (size_t i = 0; i < n && i <= (size_t)INT32_MAX; i++) {
        const struct pr_policy_pod *p = &pods[i];
        if (!p->eligible || (uint64_t)p->load_rooms + p->load_participants >= bound)
            continue;
        uint64_t s = score_of(p, key, key_len);
        if (best < 0 || hrw_beats(s, p, bs, &pods[best])) {
            best = (int)i;
            bs = s;
        }
    }
    return best;
}

/* StatefulSet ordinal: digits after the last '-'. */
long pr_policy_ordinal(const char *name)
{
    if (!name)
        return -1;
    const char *dash = strrchr(name, '-');
    if (!dash || dash[1] == '\0')
        return -1;
    long v = 0;
    size_t digits = 0;
    for (const char *s = dash + 1; *s; s++) {
        if (*s < '0' || *s > '9' || ++digits > 9)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* true when pod a comes before pod b in StatefulSet order (ordinal, then name). */
static bool pack_before(long oa, const char *na, long ob, const char *nb)
{
    if (oa >= 0 && ob >= 0 && oa != ob)
        return oa < ob;
    if ((oa >= 0) != (ob >= 0))
        return oa >= 0;
    return strcmp(na ? na : "", nb ? nb : "") < 0;
}

/* true when p's ratio with one more room (or participant) stays <= u. Exact: (l+1)/c <= u
 * is compared as (l+1) <= u*c with a small tolerance so that u*c landing a rounding error
 * below an integer (0.7*10 = 6.999...) still admits that integer. */
static bool fits_after(const struct pr_policy_pod *p, bool room, double u)
{
    uint64_t cr = p->cap_rooms ? p->cap_rooms : 1;
    uint64_t cp = p->cap_participants ? p->cap_participants : 1;
    uint64_t lr = (uint64_t)p->load_rooms + (room ? 1 : 0);
    uint64_t lp = (uint64_t)p->load_participants + (room ? 0 : 1);
    return (double)lr <= u * (double)cr + 1e-9 && (double)lp <= u * (double)cp + 1e-9;
}

/* Fill the lowest ordinals first so the highest ordinals empty (a StatefulSet scale-down
 * removes the highest ordinal): O(n), no sort, no allocation. */
int pr_policy_pack(const struct pr_policy_pod *pods, size_t n, const char *key, size_t key_len,
                   bool room, double utilization)
{
    if (pods == NULL)
        return -1;
    if (!(utilization > 0.0))
        utilization = 0.0;
    if (utilization > 1.0)
        utilization = 1.0;
    int best = -1;
    long bo = -1;
    for (size_t i = 0; i < n && i <= (size_t)INT32_MAX; i++) {
        const struct pr_policy_pod *p = &pods[i];
        if (!p->eligible || !fits_after(p, room, utilization))
            continue;
        long o = pr_policy_ordinal(p->name);
        if (best < 0 || pack_before(o, p->name, bo, pods[best].name)) {
            best = (int)i;
            bo = o;
        }
    }
    if (best >= 0)
        return best;
    return pr_policy_least_loaded(pods, n, key, key_len);
}

/* ceil(v / (cap * u)) for the desired-replicas formula, saturated at UINT32_MAX. */
static uint64_t pods_for(uint64_t v, uint32_t cap, double u)
{
    if (v == 0)
        return 0;
    double per = (double)(cap ? cap : 1) * u;
    double d = ceil((double)v / per - 1e-9);
    return d >= 4294967295.0 ? UINT32_MAX : (uint64_t)d;
}

/* SPEC 5.1: enough pods for the active load at the target utilization, never fewer than the
 * highest ordinal holding an active room (so a scale-down cannot remove it), plus headroom. */
uint32_t pr_policy_desired_replicas(const struct pr_desired_pod *pods, size_t n,
                                    const struct pr_desired_params *p)
{
    double u = p && p->utilization > 0.0 && p->utilization <= 1.0 ? p->utilization : 1.0;
    uint32_t min = p ? p->min : 0, max = p ? p->max : UINT32_MAX;
    uint64_t rooms = 0, parts = 0, need = 0;
    uint32_t cr_live = 0, cp_live = 0, cr_all = 0, cp_all = 0;
    for (size_t i = 0; pods && i < n; i++) {
        const struct pr_desired_pod *d = &pods[i];
        rooms += d->active_rooms;
        parts += d->active_participants;
        if (d->cap_rooms && (cr_all == 0 || d->cap_rooms < cr_all))
            cr_all = d->cap_rooms;
        if (d->cap_participants && (cp_all == 0 || d->cap_participants < cp_all))
            cp_all = d->cap_participants;
        if (!d->live)
            continue;
        if (d->cap_rooms && (cr_live == 0 || d->cap_rooms < cr_live))
            cr_live = d->cap_rooms;
        if (d->cap_participants && (cp_live == 0 || d->cap_participants < cp_live))
            cp_live = d->cap_participants;
        long o = pr_policy_ordinal(d->name);
        if (d->active_rooms > 0 && o >= 0 && (uint64_t)o + 1 > need)
            need = (uint64_t)o + 1;
    }
    uint32_t cr = cr_live ? cr_live : cr_all ? cr_all : 20;
    uint32_t cp = cp_live ? cp_live : cp_all ? cp_all : 80;
    uint64_t a = pods_for(rooms, cr, u), b = pods_for(parts, cp, u);
    if (a > need)
        need = a;
    if (b > need)
        need = b;
    need += p ? p->headroom : 0;
    if (need > max)
        need = max;
    if (need < min)
        need = min;
    return need > UINT32_MAX ? UINT32_MAX : (uint32_t)need;
}
