/* kiln runtime: libkiln's side of the network and console shields, whose code
 * is libkiln-net.so, loaded only when a grant configures one of them
 * (net_load.c; the seam is net/host.h). */
#ifndef KILN_RUNTIME_NET_LOAD_H
#define KILN_RUNTIME_NET_LOAD_H

#include "runtime/internal.h"
#include "runtime/net/host.h"

/* Set once a grant configured a network or console shield and its code was
 * loaded: until then g_rt_net is NULL and nothing calls it (sockets are the
 * kernel's, as without a shield). */
extern bool g_rt_net_on RT_HIDDEN;
extern const struct rt_net_ops *g_rt_net RT_HIDDEN;

/* With a grant whose "network" or "console" member asks for a shield: load
 * the shields' code (pinned by the digest this libkiln was built with),
 * configure them, and set g_rt_net_on. Nothing is opened without one.
 * Before main, before dispatch starts (rt__attest_apply_late). */
int rt__net_load(const struct rt_json *grant, struct kiln_err *err) RT_HIDDEN;

#endif
