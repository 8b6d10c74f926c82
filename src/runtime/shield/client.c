/* kiln runtime, file shield v2: the client side of the volume server
 * (server.h): finding or starting the volume's server, the connections of
 * this process, requests and replies, and noticing that the server is gone.
 *
 * Each process has its own connections (a forked child never uses its
 * parent's: a reply could go to the wrong process), kept in a small pool so
 * that the threads of one process can wait for a commit together (group
 * commit across threads). A request runs inside a guard (rt__enter: no
 * handler of the program runs meanwhile), without the shield lock. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/shield/internal.h"

struct rt_conn {
	int fd;               /* owned */
	struct rt_conn *next; /* idle pool */
	size_t used;          /* bytes of reply ever written: wiped at the end */
	uint8_t reply[RT_MSG_MAX];
};

/* ---- the server process's side of libkiln --------------------------------
 * The server runs in a double-forked copy of the process that started it
 * (never an exec of another binary: the key stays in attested code). There,
 * libkiln must be inert: no dispatch, no shield, every wrapper passes. */
static void server_enter(void)
{
	rt__raw(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0);
	g_rt.sud_on = false;
	g_rt.shield_on = false;
	g_rt.owned_base = 16; /* the server's fds are all the runtime's */
	t_rt_depth = 1;
}

/* The server's open of its volume (rt__srv_open_volume) with libkiln's
 * storage and local freshness: their system calls come from the runtime's
 * region and their fds are the runtime's own. */
static const struct rt_srv_open_ops g_open_ops = {
	.storage = rt__storage_open,
	.fresh_local_ride = rt__fresh_local,
	.fresh_cas = rt_fresh_cas,
	.no_overlap = rt__storage_no_overlap,
};

static int server_open_volume(void *arg, const uint8_t key[static RT_KEY_SIZE],
			      pf_volume_t **out, struct kiln_err *err)
{
	return rt__srv_open_volume(arg, &g_open_ops, key, out, err);
}

static pid_t libc_fork(void)
{
	pid_t pid;

	/* libc's fork: it takes malloc's locks around the fork, so the new
	 * process can allocate even if other threads of the program were
	 * allocating. The runtime's own (its depth): the runtime's fork handlers
	 * (sud.c) leave it alone. */
	t_rt_depth++;
	pid = fork();
	t_rt_depth--;
	return pid;
}

/* ---- connections ------------------------------------------------------------ */
static void conn_free(struct rt_conn *c)
{
	if (!c)
		return;
	rt__own_close(c->fd);
	kiln_free_secret(c, offsetof(struct rt_conn, reply) + c->used);
}

/* A connection of this process that is done (its server went away). */
static void conn_drop(struct rt_vol *v, struct rt_conn *c)
{
	conn_free(c);
	pthread_mutex_lock(&v->pool_lock);
	v->nconns--;
	pthread_mutex_unlock(&v->pool_lock);
}

/* A new authenticated connection (starting the server if none answers);
 * with a new volume segment when this is the volume's first or the server
 * was replaced. */
static int conn_new(struct rt_vol *v, struct rt_conn **out, struct kiln_err *err)
{
	struct rt_srv_config *cfg = calloc(1, sizeof(*cfg));
	struct rt_conn *c = NULL;
	struct rt_vseg *seg;
	int s = -1, vfd = -1, ret;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!cfg || !c) {
		ret = -ENOMEM;
		goto out;
	}
	if (!v->sock_name[0] && (ret = rt__srv_sock_name(v->cfg->dir, &v->keys, v->sock_name))) {
		kiln_err_set(err, ret, "volume %s: %s", v->cfg->dir, kiln_strerror(ret));
		goto out;
	}
	snprintf(cfg->dir, sizeof(cfg->dir), "%s", v->cfg->dir);
	memcpy(cfg->sock_name, v->sock_name, sizeof(cfg->sock_name));
	memcpy(cfg->key, v->key, RT_KEY_SIZE);
	cfg->open_volume = server_open_volume;
	cfg->arg = v->cfg;
	cfg->enter = server_enter;
	cfg->cache_limit = g_cache_limit;
	/* A signal kept by the guard interrupts a connect that waits for the
	 * server's backlog. */
	do
		s = rt__srv_connect(cfg, &v->keys, libc_fork, (uint32_t)rt__raw0(SYS_getpid),
				    &vfd, err);
	while (s == -EINTR);
	if (s < 0) {
		ret = s;
		goto out;
	}
	c->fd = rt__own_fd(s);
	s = -1;
	if (c->fd < 0) {
		ret = c->fd;
		goto out;
	}
	seg = v->vseg;
	if (!seg || (atomic_load(&seg->server) & (RT_FUTEX_OWNER_DIED | RT_VSEG_CLOSED))) {
		/* A server of our own (first connection, or the last one is gone).
		 * The old segment stays mapped: lock-free readers may look at it. */
		seg = mmap(NULL, sizeof(*seg), PROT_READ | PROT_WRITE, MAP_SHARED, vfd, 0);
		if (seg == MAP_FAILED) {
			ret = -errno;
			goto out;
		}
		if (seg->magic != RT_VSEG_MAGIC || seg->chunk_size == 0) {
			munmap(seg, sizeof(*seg));
			ret = kiln_err_set(err, -EPROTO, "volume server: bad volume segment");
			goto out;
		}
		v->chunk = seg->chunk_size;
		atomic_store(&v->vseg, seg);
		v->gen++;
	}
	pthread_mutex_lock(&v->pool_lock);
	v->nconns++;
	pthread_mutex_unlock(&v->pool_lock);
	*out = c;
	c = NULL;
	ret = 0;
out:
	if (vfd >= 0)
		close(vfd);
	if (s >= 0)
		close(s);
	conn_free(c);
	if (cfg)
		kiln_free_secret(cfg, sizeof(*cfg));
	return ret;
}

int rt__cl_connect(struct rt_vol *v, struct kiln_err *err)
{
	struct rt_conn *c;
	int ret = rt__auth_derive(v->key, &v->keys);

	if (ret)
		return kiln_err_set(err, ret, "%s", kiln_strerror(ret));
	pthread_mutex_init(&v->pool_lock, NULL);
	v->pid = (pid_t)rt__raw0(SYS_getpid);
	ret = conn_new(v, &c, err);
	if (ret)
		return ret;
	c->next = v->pool;
	v->pool = c;
	return 0;
}

bool rt__cl_dead(const struct rt_vol *v)
{
	struct rt_vseg *seg = atomic_load(&v->vseg);

	return !seg || (atomic_load(&seg->server) & (RT_FUTEX_OWNER_DIED | RT_VSEG_CLOSED));
}

static void say_gone(struct rt_vol *v)
{
	if (v->said_gone)
		return;
	v->said_gone = true;
	rt__say("volume %s: the volume server has gone (killed?): files open before fail "
		"with EIO; new opens start a new server", v->cfg->mount);
}

/* A forked child: the pool is the parent's (the sockets too): forget it. */
void rt__cl_after_fork(struct rt_vol *v)
{
	struct rt_conn *next;

	pthread_mutex_init(&v->pool_lock, NULL);
	for (struct rt_conn *c = v->pool; c; c = next) {
		next = c->next;
		conn_free(c);
	}
	v->pool = NULL;
	v->nconns = 0;
	/* What the parent wrote is the parent's to commit at its exit. */
	atomic_store(&v->wrote, false);
	v->pid = (pid_t)rt__raw0(SYS_getpid);
}

void rt__cl_leave(struct rt_vol *v)
{
	struct rt_vseg *seg = atomic_load(&v->vseg);
	struct rt_conn *c, *next;
	uint32_t accepts;
	unsigned idle = 0;
	int ret;

	if (rt__cl_dead(v) || v->pid != (pid_t)rt__raw0(SYS_getpid))
		return;
	pthread_mutex_lock(&v->pool_lock);
	for (c = v->pool; c; c = c->next)
		idle++;
	/* accepts before conns (the server counts a newcomer in conns first):
	 * every connection the server holds is ours, or a later one shows in
	 * accepts. A thread of ours still in a request keeps it running. */
	accepts = atomic_load(&seg->accepts);
	if (idle != v->nconns || atomic_load(&seg->conns) != idle) {
		pthread_mutex_unlock(&v->pool_lock);
		return;
	}
	c = v->pool;
	v->pool = NULL;
	v->nconns = 0;
	pthread_mutex_unlock(&v->pool_lock);
	for (; c; c = next) {
		next = c->next;
		conn_free(c);
	}
	ret = rt__srv_wait_closed(seg, accepts, RT_CLOSE_WAIT_MS);
	if (ret == -ETIMEDOUT)
		rt__say("volume %s: its volume server has not closed the volume after %u s "
			"(still committing?): not waiting longer", v->cfg->mount,
			RT_CLOSE_WAIT_MS / 1000);
}

static struct rt_conn *pool_take(struct rt_vol *v)
{
	struct rt_conn *c;

	pthread_mutex_lock(&v->pool_lock);
	c = v->pool;
	if (c)
		v->pool = c->next;
	pthread_mutex_unlock(&v->pool_lock);
	return c;
}

static void pool_put(struct rt_vol *v, struct rt_conn *c)
{
	pthread_mutex_lock(&v->pool_lock);
	c->next = v->pool;
	v->pool = c;
	pthread_mutex_unlock(&v->pool_lock);
}

static int cl_call(struct rt_vol *v, const struct rt_msg *m, struct rt_call *call);

/* In a guard: no handler of the program runs while a request is on a
 * connection (it could use the same connection, or the pool's lock). */
int rt__cl_call(struct rt_vol *v, const struct rt_msg *m, struct rt_call *call)
{
	struct rt_guard g;
	int ret;

	rt__enter(&g);
	ret = cl_call(v, m, call);
	rt__leave(&g);
	return ret;
}

static int cl_call(struct rt_vol *v, const struct rt_msg *m, struct rt_call *call)
{
	struct kiln_err err = { 0 };
	struct rt_msg mm = *m;
	uint64_t gen = v->gen;
	int ret;

	call->c = NULL;
	call->fds[0] = call->fds[1] = -1;
	call->errmsg[0] = '\0';
	mm.pid = (uint32_t)v->pid;
	/* The server checks what a request may do with the calling thread's
	 * credentials (a thread of the same process may have others). */
	if (!mm.cred && rt__msg_has_cred(mm.op))
		mm.cred = &rt__cred()->fs;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct rt_conn *c = pool_take(v);

		if (!c) {
			ret = conn_new(v, &c, &err);
			if (ret) {
				rt__say("volume %s: %s", v->cfg->mount, kiln_err_msg(&err, ret));
				return -EIO;
			}
			/* A new server: the request named files of the old one. */
			if (v->gen != gen && m->id) {
				pool_put(v, c);
				return -EIO;
			}
		}
		call->body = NULL;
		ret = rt__request(c->fd, &mm, c->reply, &call->body, &call->size, call->fds,
				  call->errmsg);
		if (!call->body) /* not parsed: any part may have been written */
			c->used = RT_MSG_MAX;
		else if ((size_t)(call->body + call->size - c->reply) > c->used)
			c->used = (size_t)(call->body + call->size - c->reply);
		if (ret != -ECONNRESET && ret != -EPIPE && ret != -EPROTO) {
			call->c = c;
			return ret;
		}
		/* The server went away (or broke the protocol): this connection
		 * is done. Unless it merely exited between requests (a clean
		 * exit happens only without clients, so not while we are one),
		 * it crashed: the files of that server fail. */
		conn_drop(v, c);
		if (rt__cl_dead(v)) {
			say_gone(v);
			if (m->id)
				return -EIO;
		}
	}
	return -EIO;
}

void rt__cl_done(struct rt_vol *v, struct rt_call *call)
{
	struct rt_guard g;

	rt__enter(&g);
	for (int i = 0; i < 2; i++)
		if (call->fds[i] >= 0)
			rt__raw(SYS_close, call->fds[i]);
	call->fds[0] = call->fds[1] = -1;
	if (call->c)
		pool_put(v, call->c);
	call->c = NULL;
	rt__leave(&g);
}

int rt__cl_simple(struct rt_vol *v, const struct rt_msg *m, char *errmsg)
{
	struct rt_call call;
	int ret = rt__cl_call(v, m, &call);

	if (errmsg)
		snprintf(errmsg, RT_ERRMSG_MAX, "%s", call.errmsg);
	rt__cl_done(v, &call);
	return ret;
}
