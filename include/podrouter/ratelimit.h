/* Per-client-address token buckets for new assignments (SPEC 3.6). */
#ifndef PODROUTER_RATELIMIT_H
#define PODROUTER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pr_ratelimit;

/* rate tokens per second, burst bucket size, at most max_entries addresses remembered
 * (rounded up to a power of two). NULL on allocation failure. */
struct pr_ratelimit *pr_ratelimit_create(double rate, uint32_t burst, size_t max_entries);
void pr_ratelimit_destroy(struct pr_ratelimit *rl);

/* Take one token for the address (family AF_INET/AF_INET6, 4 or 16 bytes) at now_ms: true
 * when allowed. Thread-safe; called only when a new assignment is about to be created. */
bool pr_ratelimit_take(struct pr_ratelimit *rl, int family, const uint8_t *addr,
                       uint64_t now_ms);

/* Addresses currently remembered (tests, metrics). */
size_t pr_ratelimit_size(struct pr_ratelimit *rl);

#endif
