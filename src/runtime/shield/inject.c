/* kiln runtime, file shield: injected files (from the attestation answer):
 * plaintext in memory only, at exact absolute paths. They are nodes without
 * a volume, kept for the life of the process: open, stat and access work,
 * nothing changes their names. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/shield/internal.h"

struct rt_node *g_vfiles;

struct rt_node *rt__shield_vfile_find(const char *abs)
{
	for (struct rt_node *n = g_vfiles; n; n = n->next)
		if (strcmp(n->rel, abs) == 0)
			return n;
	return NULL;
}

/* Calls on an injected file: open, stat and access; nothing changes its name. */
long rt__vfile_open(struct rt_node *n, int flags)
{
	if ((flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	if (flags & O_DIRECTORY)
		return -ENOTDIR;
	return rt__ofd_open_node(n, flags & (O_ACCMODE | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_TRUNC));
}

long rt__vfile_stat(struct rt_node *n, struct stat *out)
{
	struct rt_stat_reply r = { .ino = n->ino, .mode = S_IFREG | n->mode, .nlink = 1,
				   .uid = g_uid, .gid = g_gid };
	struct stat mem;

	if (rt__raw(SYS_fstat, n->memfd, &mem) < 0)
		return -EIO;
	r.atime_ns = r.mtime_ns = r.ctime_ns =
		(int64_t)mem.st_mtim.tv_sec * 1000000000 + mem.st_mtim.tv_nsec;
	r.blocks = (uint64_t)mem.st_blocks;
	rt__fill_stat(out, NULL, &r, &mem);
	return 0;
}

int rt__shield_add_file(const char *path, const void *data, size_t size, mode_t mode)
{
	struct rt_node *n = calloc(1, sizeof(*n));
	char abs[RT_PATH_SIZE];
	long fd;
	int ret;

	if (!n)
		return -ENOMEM;
	ret = rt_path_normalize(NULL, path, abs, sizeof(abs));
	if (ret)
		goto fail;
	if (rt__shield_vfile_find(abs)) {
		ret = -EEXIST;
		goto fail;
	}
	n->memfd = -1;
	n->rel = strdup(abs);
	fd = rt__raw(SYS_memfd_create, "kiln-injected", MFD_CLOEXEC);
	if (!n->rel || fd < 0) {
		ret = fd < 0 ? (int)fd : -ENOMEM;
		goto fail;
	}
	n->memfd = rt__own_fd((int)fd);
	if (n->memfd < 0) {
		ret = n->memfd;
		goto fail;
	}
	for (size_t off = 0; off < size;) {
		long w = rt__raw(SYS_pwrite64, n->memfd, (const char *)data + off, size - off, off);

		if (w <= 0) {
			ret = w < 0 ? (int)w : -EIO;
			goto fail;
		}
		off += (size_t)w;
	}
	n->mode = mode;
	n->ino = 1;
	for (const char *p = abs; *p; p++) /* FNV-1a of the path */
		n->ino = (n->ino ^ (uint8_t)*p) * 1099511628211ull;
	n->refs = 1; /* never released */
	pthread_mutex_lock(&g_shield_lock);
	n->next = g_vfiles;
	g_vfiles = n;
	pthread_mutex_unlock(&g_shield_lock);
	g_rt.shield_on = true;
	return 0;
fail:
	rt__own_close(n->memfd);
	free(n->rel);
	free(n);
	return ret;
}
