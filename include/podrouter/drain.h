/* The `drain` subcommand (SPEC 2): drain a pod and optionally wait until it is empty. */
#ifndef PODROUTER_DRAIN_H
#define PODROUTER_DRAIN_H

/* Parse the drain flags (argv[0] is the first flag) and run; the process exit status:
 * 0 done, 1 router unreachable / drain refused, 2 bad usage, 3 timed out, 4 unknown pod. */
int pr_drain_main(int argc, char **argv);
/* The usage text. */
const char *pr_drain_usage(void);

#endif
