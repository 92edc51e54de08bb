/* Internal to config.c and config_values.c: parsers and checks of one flag value. */
#ifndef PODROUTER_CONFIG_VALUES_H
#define PODROUTER_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "podrouter/config.h"

/* Copy v into out for an error message: quote-safe, printable, truncated with "...". */
const char *pr__cfg_shown(const char *v, char *out, size_t outlen);
/* Writes url with its userinfo (password) replaced by "***" into out; leaves out alone when
 * url has none. */
void pr__cfg_redact_userinfo(const char *url, char *out, size_t outlen);
/* Decimal unsigned integer without sign, spaces or junk. */
bool pr__cfg_parse_u64(const char *s, uint64_t *out);
/* true/false, 1/0, yes/no, on/off (any case). */
bool pr__cfg_parse_bool(const char *s, bool *out);
/* A duration in the largest exact unit ("2m", "1500ms"). */
void pr__cfg_fmt_duration(uint64_t ms, char *out, size_t outlen);

/* Extra checks of string flags: 0, or -EINVAL with the reason written to why. */
int pr__cfg_check_store(const char *v, char *why, size_t whylen);
int pr__cfg_check_key_prefix(const char *v, char *why, size_t whylen);
int pr__cfg_check_param_name(const char *v, char *why, size_t whylen);
int pr__cfg_check_cookie_name(const char *v, char *why, size_t whylen);
int pr__cfg_check_readable_file(const char *v, char *why, size_t whylen);
int pr__cfg_check_admin_url(const char *v, char *why, size_t whylen);
int pr__cfg_check_pod_name(const char *v, char *why, size_t whylen);
int pr__cfg_check_address(const char *v, char *why, size_t whylen);
int pr__cfg_check_zone(const char *v, char *why, size_t whylen);
int pr__cfg_check_health_url(const char *v, char *why, size_t whylen);

#endif
