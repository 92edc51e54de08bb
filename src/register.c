/* The registration sidecar: heartbeat PUT /v1/pods/{name}, drain and delete on SIGTERM. */
#include "podrouter/register.h"

#include <stdio.h>

#include "podrouter/config.h"

int pr_register_main(int argc, char **argv)
{
    struct pr_register_config cfg;
    char err[512] = "";
    pr_register_config_defaults(&cfg);
    enum pr_config_result r = pr_register_config_parse(&cfg, argc, argv, err, sizeof(err));
    if (r == PR_CONFIG_HELP) {
        fputs(pr_register_usage(), stdout);
        return 0;
    }
    if (r != PR_CONFIG_OK) {
        fprintf(stderr, "pod-router register: %s\n", err);
        return 2;
    }
    fprintf(stderr, "pod-router register: not available in this build yet\n");
    return 1;
}
