/* Event-loop threads: run the router until drained. */
#ifndef PODROUTER_LOOP_H
#define PODROUTER_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pr_config;
struct pr_registry;

/* Start cfg->threads loops and serve until SIGTERM/SIGINT drained. 0, or negative with err
 * filled (listen failure, store failure). */
int pr_loop_run(const struct pr_config *cfg, struct pr_registry *reg, const uint8_t secret[32],
                const char *token, size_t token_len, char *err, size_t errlen);

/* true once a drain started */
bool pr_loop_draining(void);

#endif
