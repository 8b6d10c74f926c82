/* kiln runtime, file shield: the entry point the system-call handlers go
 * through (the lock-free calls, then the lock around the handler), start-up,
 * exit, fork and exec. See internal.h for the design. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

pthread_mutex_t g_shield_lock = PTHREAD_MUTEX_INITIALIZER;
int g_procfd = -1;
uid_t g_uid;
gid_t g_gid;

/* A forked child holds its parent's nodes: the server learns that this
 * process holds them too (a hold of its own) before it uses them. */
static void attach_inherited(void)
{
	struct rt_node *next;

	for (struct rt_node *n = g_nodes; n; n = next) {
		struct rt_msg m = { .op = RT_OP_ATTACH, .flags = RT_ATTACH_HAVE };
		struct rt_call call;
		int ret;

		next = n->next;
		if (!n->vol)
			continue;
		if (n->cached && atomic_load(&n->refs) == 0) {
			/* The parent's cache: the parent's hold. */
			atomic_store(&n->dead, true);
			rt__node_free(n);
			continue;
		}
		/* Cached, yet held by an fd (a lock-free open): the child's. */
		rt__cache_take(n);
		m.id = n->id;
		ret = atomic_load(&n->dead) || n->gen != n->vol->gen ? -EIO :
		      rt__cl_call(n->vol, &m, &call);
		if (ret == 0)
			rt__cl_done(n->vol, &call);
		if (ret)
			atomic_store(&n->dead, true);
	}
}

/* In a forked child, until its first call into the shield: the nodes it
 * inherited are not attached yet (the server does not know it holds them). */
static atomic_bool g_child;

void rt__child_check(void)
{
	struct rt_guard g;

	if (!atomic_load_explicit(&g_child, memory_order_relaxed))
		return;
	rt__enter(&g);
	pthread_mutex_lock(&g_shield_lock);
	if (atomic_load(&g_child)) {
		attach_inherited();
		atomic_store(&g_child, false);
	}
	pthread_mutex_unlock(&g_shield_lock);
	rt__leave(&g);
}

bool rt__shield_in_child(void)
{
	return atomic_load_explicit(&g_child, memory_order_relaxed);
}

void rt__lock(struct rt_guard *g)
{
	rt__child_check();
	rt__enter(g);
	pthread_mutex_lock(&g_shield_lock);
	rt__released_drain();
	rt__cache_settle();
	rt__node_reap();
	rt__fast_pool_fill();
}

void rt__unlock(struct rt_guard *g)
{
	pthread_mutex_unlock(&g_shield_lock);
	rt__leave(g);
}

/* ---- fork -------------------------------------------------------------------
 * The shield lock is taken first so that the child never inherits it held by
 * a thread that does not exist there. */
void rt__shield_before_fork(void)
{
	pthread_mutex_lock(&g_shield_lock);
	rt__closes_quiesce();
	atomic_fetch_add(&g_spare_epoch, 1);
}

void rt__shield_parent_after_fork(void)
{
	rt__closes_resume();
	pthread_mutex_unlock(&g_shield_lock);
}

void rt__shield_after_fork(void)
{
	rt__closes_resume();
	pthread_mutex_init(&g_shield_lock, NULL);
	if (g_procfd >= 0) {
		/* The inherited one lists the parent's fds. */
		long fd = rt__raw(SYS_openat, AT_FDCWD, "/proc/self/fd",
				  O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			rt__raw(SYS_dup3, fd, g_procfd, O_CLOEXEC);
			rt__raw(SYS_close, fd);
		} else {
			rt__own_close(g_procfd);
			g_procfd = -1;
		}
	}
	for (size_t i = 0; i < g_nvols; i++)
		rt__cl_after_fork(&g_vols[i]);
	/* Mappings are re-registered at once: the child may use them without
	 * ever calling into the shield. Nodes are attached at first use. */
	if (rt__maps_any()) {
		attach_inherited();
		rt__maps_after_fork();
	} else {
		atomic_store(&g_child, g_nodes != NULL);
	}
}

/* ---- exec: the protected fds the new program inherits ----------------------- */
size_t rt__shield_exec_lines(char *buf, size_t size)
{
	size_t used = 0;

	for (int fd = 0; fd < RT_FD_MAX && fd < g_rt.owned_base; fd++) {
		struct rt_ofd *o;
		struct stat st;
		long fl;
		int n;

		if (rt_fd_kind(fd) != RT_FD_FILE)
			continue;
		o = rt_fd_get(fd);
		if (!o->node->vol || atomic_load(&o->node->dead))
			continue;
		fl = rt__raw(SYS_fcntl, fd, F_GETFD, 0);
		if (fl < 0 || (fl & FD_CLOEXEC) || rt__mstat(fd, &st) < 0)
			continue;
		n = snprintf(buf + used, size - used, "fd %d %d %llu %llu\n", fd,
			     (int)(o->node->vol - g_vols), (unsigned long long)o->node->id,
			     (unsigned long long)st.st_ino);
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
	return used;
}

/* In the new program: its inherited protected fds, attached again. An fd whose
 * file cannot be attached fails every data call with EIO rather than letting
 * writes bypass the shield. */
static void attach_exec_fds(void)
{
	for (size_t i = 0; i < g_rt.cfg.n_fds; i++) {
		int fd = g_rt.cfg.fds[i].fd, vi = g_rt.cfg.fds[i].vol;
		struct rt_msg m = { .op = RT_OP_ATTACH, .id = g_rt.cfg.fds[i].id };
		struct rt_node *n = NULL;
		struct rt_ofd *o;
		struct rt_call call;
		struct stat st;
		long fl;
		int ret;

		if (vi < 0 || (size_t)vi >= g_nvols || !rt_fd_in_range(fd) ||
		    (fl = rt__raw(SYS_fcntl, fd, F_GETFL, 0)) < 0 ||
		    rt__mstat(fd, &st) < 0)
			continue;
		/* The fd as the exec'ing process left it: the same memfd, else ask
		 * the server which file that memfd is (a spawn's file actions may
		 * have moved fds), else it is not a protected file. */
		if ((uint64_t)st.st_ino != g_rt.cfg.fds[i].ino) {
			m.id = 0;
			m.a = (uint64_t)st.st_ino;
		}
		ret = rt__cl_call(&g_vols[vi], &m, &call);
		if (ret == 0)
			ret = rt__node_from_reply(&g_vols[vi], "(inherited)", &call, &n);
		rt__cl_done(&g_vols[vi], &call);
		o = calloc(1, sizeof(*o));
		if (!o)
			continue;
		if (ret == -ENOENT && !m.id) {
			free(o);
			continue; /* not one of the server's memfds */
		}
		if (ret) {
			rt__say("fd %d: its protected file is gone (%s): reads and writes fail "
				"with EIO", fd, kiln_strerror(ret));
			n = calloc(1, sizeof(*n));
			if (!n || !(n->rel = strdup("(gone)"))) {
				free(n);
				free(o);
				continue;
			}
			n->vol = &g_vols[vi];
			n->memfd = -1;
			atomic_store(&n->dead, true);
			n->next = g_nodes;
			g_nodes = n;
		}
		o->kind = RT_FD_FILE;
		o->node = n;
		o->append = fl & O_APPEND;
		o->dsync = fl & O_DSYNC; /* O_SYNC includes it */
		n->refs++;
		rt__fd_attach(fd, o);
	}
}

/* ---- lifecycle ------------------------------------------------------------- */
int rt__shield_init(struct kiln_err *err)
{
	long fd_limit;
	int ret = 0;

	g_rt.owned_base = rt__own_base(&fd_limit);
	ret = rt__cache_init(fd_limit, err);
	if (ret)
		return ret;
	if (g_rt.cfg.n_volumes) {
		long fd = rt__raw(SYS_openat, AT_FDCWD, "/proc/self/fd",
				  O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0)
			g_procfd = rt__own_fd((int)fd);
	}
	g_uid = (uid_t)rt__raw0(SYS_getuid);
	g_gid = (gid_t)rt__raw0(SYS_getgid);
	ret = rt__vols_init(err);
	if (ret)
		return ret;
	g_rt.shield_on = g_nvols > 0;
	attach_exec_fds();
	return 0;
}

void rt__shield_exit(void)
{
	static atomic_bool done;
	struct rt_guard g;

	/* A forked child that never used the volumes wrote nothing to commit.
	 * Once per process: exit() runs it (rt_stop), then its exit_group. */
	if (!g_rt.shield_on || atomic_load(&g_child) || atomic_exchange(&done, true))
		return;
	rt__lock(&g);
	rt__vols_exit();
	rt__unlock(&g);
}
