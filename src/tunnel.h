/* tunnel.c (L2): at the 101, swaps the client's and the upstream's handler tables for its
 * own (tunnel, closing and linger tables). */
#ifndef PODROUTER_TUNNEL_H
#define PODROUTER_TUNNEL_H

struct pr_client;

void pr__tunnel_start(struct pr_client *c);

#endif
