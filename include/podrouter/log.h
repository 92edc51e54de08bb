/* Structured logging: one JSON object per line on stdout, or human text. Thread-safe. */
#ifndef PODROUTER_LOG_H
#define PODROUTER_LOG_H

#include "podrouter/config.h"

void pr_log_init(enum pr_log_level level, enum pr_log_format format);
bool pr_log_enabled(enum pr_log_level level);

/* Context pairs follow msg as (key, value) C strings, terminated by NULL:
 *   pr_log(PR_LOG_INFO, "pod registered", "pod", name, "address", addr, NULL);
 * A key starting with '#' marks a raw JSON number value ("#status", "503"). */
void pr_log(enum pr_log_level level, const char *msg, ...) __attribute__((sentinel));

#define pr_debug(...) pr_log(PR_LOG_DEBUG, __VA_ARGS__, (char *)NULL)
#define pr_info(...) pr_log(PR_LOG_INFO, __VA_ARGS__, (char *)NULL)
#define pr_warn(...) pr_log(PR_LOG_WARN, __VA_ARGS__, (char *)NULL)
#define pr_error(...) pr_log(PR_LOG_ERROR, __VA_ARGS__, (char *)NULL)

#endif
