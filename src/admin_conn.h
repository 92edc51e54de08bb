/* admin_conn.c (L2): the admin connection (its client handler table). */
#ifndef PODROUTER_ADMIN_CONN_H
#define PODROUTER_ADMIN_CONN_H

#include <uv.h>

struct pr_client_handlers;

void pr__on_admin_connection(uv_stream_t *server, int status);
extern const struct pr_client_handlers pr__admin_client_handlers;

#endif
