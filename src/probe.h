/* probe.c (L2): the way back for a pod that --pod-fall marked down ("unreachable"). Worker 0
 * connects to each such pod every --pod-check-interval with a plain TCP connect (one probe in
 * flight per pod, abandoned after one interval); one that connects makes the
 * pod ready again (pr_registry_connect_ok). The counting side: pr__pod_connect_failed below
 * (called by proxy.c) and pr_registry_connect_ok on every fresh connect (upstream.c). */
#ifndef PODROUTER_PROBE_H
#define PODROUTER_PROBE_H

#include <stdbool.h>
#include <uv.h>

struct pr_worker;

/* A request's connect to pod failed with err (a libuv error). fresh: a new connection was
 * being set up (not a reused keep-alive one). Refused, timed out, unreachable and reset
 * count towards --pod-fall (logged at warn when they mark the pod down); anything else only
 * makes the pod "recently failed" (passed over for new keys for 2 s). Any worker. */
void pr__pod_connect_failed(struct pr_worker *w, const char *pod, int err, bool fresh);

extern const char pr__probe_tag; /* uv_handle_t.data of every prober handle */

/* Start probing on w's loop (worker 0); 0 or a libuv error. The prober frees itself once
 * its handles are closed (pr__probe_close_handle from the worker's stop walk). */
int pr__probe_start(struct pr_worker *w);

/* Close a handle whose data is &pr__probe_tag (found by the worker's stop walk). */
void pr__probe_close_handle(uv_handle_t *h);

#endif
