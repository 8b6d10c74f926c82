/* kiln runtime, file shield: FIFOs and AF_UNIX sockets inside volumes.
 *
 * The node (name, mode, owner, times) is in the volume; the kernel object that
 * carries the data is in the volume server's private directory, named by the
 * node's inode number (srv_node.c). The handlers (sys/namespace.c for mknod,
 * sys/socket.c for bind, connect, sendto, getsockname) turn the program's path
 * into that directory's path and back; nothing on the host bears the
 * program's name. The opens, binds and connects themselves run outside the
 * shield's lock (a FIFO's open waits for its other end). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/shield/internal.h"

_Static_assert(RT_SPECIAL_PATH_MAX == RT_NODE_PATH_MAX, "one size for node paths");

/* Sockets this process bound in a volume: the kernel's name and the
 * program's (for getsockname). Under g_shield_lock; a few per process. */
struct bound {
	char real[RT_SPECIAL_PATH_MAX];
	char *name;            /* the path the program bound (as given), malloc'd */
	struct bound *next;
};
static struct bound *g_bound;

static void real_path(struct rt_vol *vol, uint64_t ino, char out[static RT_SPECIAL_PATH_MAX])
{
	struct rt_vseg *seg = atomic_load(&vol->vseg);

	snprintf(out, RT_SPECIAL_PATH_MAX, "%s/%llu", seg->nodes_dir, (unsigned long long)ino);
}

/* MKNOD (under the lock): the new node's inode number, or -errno. */
static long mknod_locked(struct rt_target *t, mode_t mode, uint64_t *ino)
{
	struct rt_msg m = { .op = RT_OP_MKNOD, .mode = (uint32_t)mode, .path = t->rel };
	struct rt_call call;
	int ret;

	if (!t->rel[0])
		return -EEXIST;
	ret = rt__vol_call(t->vol, &m, &call);
	if (ret == 0 && call.size != sizeof(*ino))
		ret = -EPROTO;
	if (ret == 0)
		memcpy(ino, call.body, sizeof(*ino));
	rt__cl_done(t->vol, &call);
	return ret;
}

long rt__shield_mknod(struct rt_target *t, mode_t mode)
{
	struct rt_guard g;
	uint64_t ino;
	long r;

	rt__lock(&g);
	r = mknod_locked(t, (mode & S_IFMT) | (mode & 07777 & ~rt__umask()), &ino);
	rt__unlock(&g);
	return r;
}

long rt__shield_special(struct rt_target *t, mode_t type, char real[static RT_SPECIAL_PATH_MAX])
{
	struct rt_msg m = { .op = RT_OP_STAT, .path = t->rel };
	struct rt_stat_reply r;
	struct rt_call call;
	struct rt_guard g;
	int ret;

	rt__lock(&g);
	/* Not from the lookup cache: the server makes a FIFO's kernel object
	 * when asked (a new server has none yet). */
	ret = rt__vol_call(t->vol, &m, &call);
	if (ret == 0 && call.size != sizeof(r))
		ret = -EPROTO;
	if (ret == 0)
		memcpy(&r, call.body, sizeof(r));
	rt__cl_done(t->vol, &call);
	if (ret == 0 && (r.mode & S_IFMT) == type)
		real_path(t->vol, r.ino, real);
	rt__unlock(&g);
	if (ret)
		return ret;
	return (r.mode & S_IFMT) == type ? 0 : (long)(r.mode & S_IFMT);
}

long rt__shield_bind_node(struct rt_target *t, const char *given, mode_t mode,
			  char real[static RT_SPECIAL_PATH_MAX])
{
	struct bound *b = calloc(1, sizeof(*b));
	struct rt_guard g;
	uint64_t ino;
	long r;

	if (!b || !(b->name = strdup(given))) {
		free(b);
		return -ENOMEM;
	}
	rt__lock(&g);
	r = mknod_locked(t, S_IFSOCK | (mode & 07777 & ~rt__umask()), &ino);
	if (r == 0) {
		real_path(t->vol, ino, real);
		memcpy(b->real, real, RT_SPECIAL_PATH_MAX);
		b->next = g_bound;
		g_bound = b;
		b = NULL;
	}
	rt__unlock(&g);
	if (b)
		free(b->name);
	free(b);
	return r == -EEXIST ? -EADDRINUSE : r;
}

bool rt__shield_socket_name(const char *real, char *out, size_t size)
{
	struct rt_guard g;
	bool found = false;

	rt__lock(&g);
	for (struct bound *b = g_bound; b && !found; b = b->next) {
		if (strcmp(b->real, real) == 0 && strlen(b->name) < size) {
			memcpy(out, b->name, strlen(b->name) + 1);
			found = true;
		}
	}
	rt__unlock(&g);
	return found;
}
