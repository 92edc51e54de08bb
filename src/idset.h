/* A small set of 64-bit identity hashes (a room's distinct participants). Internal. */
#ifndef PODROUTER_IDSET_H
#define PODROUTER_IDSET_H

#include <stdbool.h>
#include <stdint.h>

#define PR_IDSET_MAX 4096u /* distinct identities remembered per room: bounded memory */

/* Open addressing; 0 marks a free cell. Freed with free(). */
struct pr_idset {
    uint32_t cap, n;
    uint64_t h[];
};

/* Add h to *s (allocating or growing it); true when h was not there yet. A set holding
 * PR_IDSET_MAX identities stops growing. */
bool pr__idset_add(struct pr_idset **s, uint64_t h);

#endif
