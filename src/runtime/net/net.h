/* kiln runtime: the network shield and the console shield, as the rest of the
 * runtime sees them (docs/runtime.md, "Network shield", "Console shield").
 *
 * Both keep state behind some of the program's fds: a TLS connection behind a
 * socket the policy's rules cover, the shadow of an epoll instance that holds
 * such sockets, the records behind stdin/stdout/stderr. Those fds have the fd
 * table kind RT_FD_NET; the object behind each starts with struct rt_nobj.
 * rt__dispatch gives the calls on them, and the calls that create or wait on
 * sockets, to rt__net_call first (sys/net.c, sys/poll.c), which answers
 * them or leaves them to the rest of the runtime. */
#ifndef KILN_RUNTIME_NET_H
#define KILN_RUNTIME_NET_H

#include "runtime/internal.h"

/* Set once a grant configured a network or console shield: rt__dispatch asks
 * rt__net_call only then. */
extern bool g_rt_net_on RT_HIDDEN;

/* Configure the shields from the attestation grant (its "network" and
 * "console" members; nothing when both are absent). Before main, before
 * dispatch starts. */
struct rt_json;
int rt__net_init(const struct rt_json *grant, struct kiln_err *err) RT_HIDDEN;

/* Called by rt__dispatch for every call while g_rt_net_on: true when the call
 * was answered (*ret set), false to go on with the usual dispatch. */
bool rt__net_call(long nr, const long a[6], long *ret) RT_HIDDEN;

/* This thread's held plaintext (net/hold.c) goes out now: before its exit
 * system call, and at rt__net_call's entry (any call but a send on the same
 * fd). */
void rt__net_hold_flush(void) RT_HIDDEN;
/* The same where sealing is not safe (a futex wait, a signal handler of the
 * program: libc's locks may be held): the engine seals at once
 * (async-signal-safe). */
void rt__net_hold_kick(void) RT_HIDDEN;

/* Fork (wrap.c, sud.c): before, and after in the parent and in the child. */
void rt__net_before_fork(void) RT_HIDDEN;
void rt__net_parent_after_fork(void) RT_HIDDEN;
void rt__net_child_after_fork(void) RT_HIDDEN;

/* Program exit (exit_group, the destructor): end records of the console,
 * close_notify for open connections where it costs no waiting. */
void rt__net_exit(int status) RT_HIDDEN;

#endif
