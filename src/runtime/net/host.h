/* kiln runtime: the seam between libkiln.so and libkiln-net.so, the network
 * and console shields loaded only when a grant configures one of them
 * (docs/runtime.md, "Where the network shield's code lives").
 *
 * libkiln-net.so is loaded with dlopen into a process whose libkiln.so keeps
 * every symbol hidden (design §1: nothing of the runtime may bind to the
 * program or the program to it), so the two objects cannot name each other's
 * functions. They meet through two tables instead:
 *   struct rt_net_host  what libkiln lends the shields: the functions of
 *                       lent.h (raw system calls, copy routines, log line),
 *                       its fd table, guards, dispatcher and the grant's
 *                       JSON. net/host.c and lent.c turn each into the
 *                       function of the same name the shields' sources call.
 *   struct rt_net_ops   what the shields answer with: the calls of net.h.
 * kiln_net_entry is the one symbol libkiln-net.so exports. libkiln-musl.so
 * links the shields in and uses rt__net_ops directly (no host table). */
#ifndef KILN_RUNTIME_NET_HOST_H
#define KILN_RUNTIME_NET_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <ucontext.h>

#include "runtime/lent.h"
#include "runtime/runtime.h"

struct kiln_err;
struct rt_guard;
struct rt_json;
struct rt_thread;
struct addrinfo;

/* Bumped whenever either table changes: libkiln refuses another version
 * (both come from one build, pinned by digest, so this catches only a
 * mistake in the build itself). */
#define RT_NET_ABI 1

struct rt_net_host {
	unsigned abi; /* RT_NET_ABI */
	const struct rt_lent *lent;         /* lent.h: raw calls, copies, own fds, say */
	long (*dispatch)(long nr, const long a[6], ucontext_t *uc);
	void (*enter)(struct rt_guard *g);  /* rt__enter (sud.c) */
	void (*leave)(struct rt_guard *g);
	struct rt_thread *(*thread)(void);  /* made on first use */
	struct rt_thread *(*thread_peek)(void); /* this thread's, or NULL */
	void (*runtime_thread)(void);       /* a thread of the runtime's own */
	bool (*sig_can_defer)(void);
	bool (*shield_on)(void);            /* a volume is mounted */
	enum rt_fd_kind (*fd_kind)(int fd);
	void *(*fd_get)(int fd);
	void *(*fd_set)(int fd, enum rt_fd_kind kind, void *obj);
	void *(*fd_clear)(int fd, enum rt_fd_kind *kind);
	bool (*fd_in_range)(int fd);
	const struct rt_json *(*json_get)(const struct rt_json *obj, const char *key);
	const char *(*json_str)(const struct rt_json *j);
};

struct rt_net_ops {
	unsigned abi; /* RT_NET_ABI */
	int (*init)(const struct rt_json *grant, struct kiln_err *err);
	bool (*call)(long nr, const long a[6], long *ret);
	void (*hold_flush)(void);
	void (*hold_kick)(void);
	void (*before_fork)(void);
	void (*parent_after_fork)(void);
	void (*child_after_fork)(void);
	void (*saw_addrs)(const char *node, const struct addrinfo *res);
};

/* The shields' table (net/ops.c). */
extern const struct rt_net_ops rt__net_ops __attribute__((visibility("hidden")));

/* libkiln-net.so's entry: keeps host for the life of the process and
 * answers its table, or NULL when host->abi is not RT_NET_ABI. */
typedef const struct rt_net_ops *(*rt_net_entry_fn)(const struct rt_net_host *host);
#define RT_NET_ENTRY "kiln_net_entry"

#endif
