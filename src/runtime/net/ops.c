/* kiln runtime: the network and console shields' table (net/host.h), the
 * calls libkiln makes into them wherever their code lives: libkiln-net.so
 * answers it from kiln_net_entry (net/host.c), libkiln-musl.so links it. */
#include "runtime/net/host.h"
#include "runtime/net/internal.h"

const struct rt_net_ops rt__net_ops = {
	.abi = RT_NET_ABI,
	.init = rt__net_init,
	.call = rt__net_call,
	.hold_flush = rt__net_hold_flush,
	.hold_kick = rt__net_hold_kick,
	.before_fork = rt__net_before_fork,
	.parent_after_fork = rt__net_parent_after_fork,
	.child_after_fork = rt__net_child_after_fork,
	.saw_addrs = rt__net_saw_addrs,
};
