/* kiln runtime, file shield: nodes. A node is this process's handle on one
 * file of a volume server: the server's plaintext memfd (every program fd on
 * the file is an open of it), the state memfd mapped for the data path, the
 * server's file id. One node per file per process, however many opens. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime/shield/internal.h"

struct rt_node *g_nodes;
/* Mapping more state words happens in the data path, which may run with or
 * without g_shield_lock held: its own lock. */
static pthread_mutex_t g_remap_lock = PTHREAD_MUTEX_INITIALIZER;

/* The process umask (applied to modes of created files and directories, as
 * the kernel would). Called in a guard under the shield lock. */
mode_t rt__umask(void)
{
	long old = rt__raw(SYS_umask, 022);

	rt__raw(SYS_umask, old);
	return (mode_t)old;
}

struct rt_node *rt__node_by_id(struct rt_vol *vol, uint64_t id)
{
	for (struct rt_node *n = g_nodes; n; n = n->next)
		if (n->vol == vol && n->id == id && n->gen == vol->gen && !atomic_load(&n->dead))
			return n;
	return NULL;
}

static int map_words(int statefd, uint64_t words, struct rt_fseg **out)
{
	long p = rt__raw(SYS_mmap, NULL, rt_fseg_bytes(words), PROT_READ | PROT_WRITE, MAP_SHARED,
			 statefd, 0);

	if (p < 0 && p > -4096)
		return (int)p;
	*out = (struct rt_fseg *)p;
	return 0;
}

/* Map the state memfd (passed by the server; closed here). */
static int map_state_fd(int fd, uint64_t min_words, struct rt_fseg **out, uint64_t *words)
{
	struct stat st;
	int ret = (int)rt__raw(SYS_fstat, fd, &st);

	if (ret == 0 && (uint64_t)st.st_size < rt_fseg_bytes(min_words > 0 ? min_words : 1))
		ret = -EPROTO;
	if (ret == 0) {
		*words = ((uint64_t)st.st_size - RT_FSEG_HDR) / sizeof(uint32_t);
		ret = map_words(fd, *words, out);
	}
	rt__raw(SYS_close, fd);
	return ret;
}

int rt__node_remap(struct rt_node *n, uint64_t words)
{
	struct rt_msg m = { .op = RT_OP_GROW, .id = n->id, .a = words };
	struct rt_fseg *seg;
	struct rt_oldmap *old = NULL;
	struct rt_call call;
	struct rt_guard g;
	uint64_t got;
	int ret = 0;

	if (n->gen != n->vol->gen || atomic_load(&n->dead))
		return -EIO;
	rt__enter(&g);
	pthread_mutex_lock(&g_remap_lock);
	if (words <= atomic_load(&n->seg_words))
		goto out;
	old = malloc(sizeof(*old));
	if (!old) {
		ret = -ENOMEM;
		goto out;
	}
	ret = rt__cl_call(n->vol, &m, &call);
	if (ret == 0 && call.fds[0] < 0)
		ret = -EPROTO;
	if (ret == 0) {
		ret = map_state_fd(call.fds[0], words, &seg, &got);
		call.fds[0] = -1;
	}
	rt__cl_done(n->vol, &call);
	if (ret) {
		free(old);
		goto out;
	}
	/* The old mapping stays until the node goes: another thread may be
	 * reading words through it right now. Both map the same memfd. */
	old->addr = atomic_load(&n->seg);
	old->size = rt_fseg_bytes(atomic_load(&n->seg_words));
	old->next = n->old;
	n->old = old;
	atomic_store(&n->seg, seg);
	atomic_store(&n->seg_words, got);
out:
	pthread_mutex_unlock(&g_remap_lock);
	rt__leave(&g);
	return ret;
}

int rt__node_from_reply(struct rt_vol *vol, const char *rel, struct rt_call *call,
			struct rt_node **out)
{
	struct rt_stat_reply r;
	struct rt_node *n;
	int ret;

	*out = NULL;
	if (call->size != sizeof(r))
		return -EPROTO;
	memcpy(&r, call->body, sizeof(r));
	n = rt__node_by_id(vol, r.id);
	if (n) {
		/* Known here already (the server sent no fds: closing one would
		 * drop this process's POSIX locks on the file). */
		n->mode = r.mode & 07777;
		*out = n;
		return 0;
	}
	if (call->fds[0] < 0 || call->fds[1] < 0) {
		/* The server thinks this process has them, and it has not: ask
		 * for them (one more hold, given back). */
		struct rt_msg m = { .op = RT_OP_ATTACH, .flags = RT_ATTACH_FDS, .id = r.id };
		struct rt_msg drop = { .op = RT_OP_RELEASE, .id = r.id };
		struct rt_call again;

		ret = rt__cl_call(vol, &m, &again);
		if (ret == 0 && (again.fds[0] < 0 || again.fds[1] < 0))
			ret = -EPROTO;
		if (ret == 0) {
			call->fds[0] = again.fds[0];
			call->fds[1] = again.fds[1];
			again.fds[0] = again.fds[1] = -1;
		}
		rt__cl_done(vol, &again);
		if (ret)
			return ret;
		rt__cl_simple(vol, &drop, NULL);
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->memfd = -1;
	n->rel = strdup(rel);
	if (!n->rel) {
		ret = -ENOMEM;
		goto fail;
	}
	{
		uint64_t words;
		struct rt_fseg *seg;

		ret = map_state_fd(call->fds[1], 1, &seg, &words);
		call->fds[1] = -1;
		if (ret)
			goto fail;
		if (seg->magic != RT_FSEG_MAGIC || seg->chunk_size != vol->chunk) {
			rt__raw(SYS_munmap, seg, rt_fseg_bytes(words));
			ret = -EPROTO;
			goto fail;
		}
		atomic_store(&n->seg, seg);
		atomic_store(&n->seg_words, words);
	}
	n->memfd = rt__own_fd(call->fds[0]);
	call->fds[0] = -1;
	if (n->memfd < 0) {
		ret = n->memfd;
		goto fail;
	}
	n->vol = vol;
	n->id = r.id;
	n->gen = vol->gen;
	n->ino = r.ino;
	n->mode = r.mode & 07777;
	n->unlinked = r.nlink == 0;
	n->next = g_nodes;
	g_nodes = n;
	*out = n;
	return 0;
fail:
	if (atomic_load(&n->seg))
		rt__raw(SYS_munmap, atomic_load(&n->seg), rt_fseg_bytes(atomic_load(&n->seg_words)));
	rt__own_close(n->memfd);
	free(n->rel);
	free(n);
	return ret;
}

/* Freed nodes whose memory a lock-free open may still read (fast.c): freed
 * by the first locked call that finds no lock-free operation in progress. */
static struct rt_node *g_grave;

void rt__node_reap(void)
{
	struct rt_node *n, *next;

	if (!g_grave || !rt__lockfree_idle())
		return;
	n = g_grave;
	g_grave = NULL;
	for (; n; n = next) {
		next = n->next;
		free(n);
	}
}

void rt__node_free(struct rt_node *n)
{
	struct rt_node **pp;
	struct rt_oldmap *next;

	rt__cache_take(n);
	atomic_store(&n->refs, -1);
	for (pp = &g_nodes; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	rt__fast_forget(n);
	rt__stream_drop(n, true);
	if (n->vol && !atomic_load(&n->dead) && n->gen == n->vol->gen &&
	    n->vol->pid == (pid_t)rt__raw0(SYS_getpid)) {
		struct rt_msg m = { .op = RT_OP_RELEASE, .id = n->id };

		rt__cl_simple(n->vol, &m, NULL);
	}
	if (atomic_load(&n->seg))
		rt__raw(SYS_munmap, atomic_load(&n->seg), rt_fseg_bytes(atomic_load(&n->seg_words)));
	for (struct rt_oldmap *o = n->old; o; o = next) {
		next = o->next;
		rt__raw(SYS_munmap, o->addr, o->size);
		free(o);
	}
	rt__own_close(n->memfd);
	rt__spare_drop(atomic_exchange(&n->spare, 0));
	free(n->rel);
	n->rel = NULL;
	if (rt__lockfree_idle()) {
		free(n);
	} else {
		n->next = g_grave;
		g_grave = n;
	}
}

int rt__node_commit(struct rt_node *n)
{
	struct rt_msg m = { .op = RT_OP_FSYNC, .flags = RT_FSYNC_COMMIT };

	if (!n->vol)
		return 0;
	if (rt__node_dead(n))
		return -EIO;
	return rt__node_call(n, &m);
}
