/* Umbrella for tests/ and tests/fuzz/: every data-path module header. Nothing is defined
 * here and no file in src/ includes it; each module includes only the headers it uses.
 * Ownership rules are in docs/internals.md. */
#ifndef PODROUTER_SERVER_INTERNAL_H
#define PODROUTER_SERVER_INTERNAL_H

#include "admin_conn.h"
#include "client.h"
#include "exchange.h"
#include "hdr.h"
#include "probe.h"
#include "proxy.h"
#include "respond.h"
#include "route.h"
#include "stream.h"
#include "tq.h"
#include "tunnel.h"
#include "upstream.h"
#include "worker.h"

#endif
