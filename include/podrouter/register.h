/* `pod-router register`: the registration sidecar (SPEC 8). */
#ifndef PODROUTER_REGISTER_H
#define PODROUTER_REGISTER_H

/* Run the sidecar with argv after "register"; returns the process exit status. */
int pr_register_main(int argc, char **argv);

#endif
