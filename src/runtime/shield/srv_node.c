/* kiln runtime, file shield v2: the volume server's FIFOs and sockets.
 *
 * A FIFO or an AF_UNIX socket inside a volume is a pf special node (its name,
 * mode, owner and times live in the volume, encrypted like every name); the
 * kernel object that carries its data lives in a private directory of the
 * server (made with mkdtemp under /tmp when the first one is needed, its path
 * in the volume segment for the clients), named by the node's inode number,
 * never by its name. The server makes a FIFO there when it is created or
 * looked up, removes a FIFO or socket when the node's last name goes, and the
 * whole directory when it exits. A client binds a socket there itself (bind
 * creates the socket file). What goes through them is the kernel's plaintext,
 * as with any pipe or socket.
 *
 * Who may reach them: the directory is the server's, mode 01700, plus one
 * POSIX ACL entry (search and write) per other uid the workload's requests
 * came with -- a process that dropped to another uid (setuid, setpriv) -- and
 * no other: host users the workload never became stay out. Write lets such a
 * process bind a socket there; the sticky bit keeps one uid from removing
 * another's. A FIFO file takes its node's owner and mode at every lookup (a
 * server that is not root keeps its own uid on it), so the kernel's own check
 * at open is the volume's. */
#include "runtime/shield/srv_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* The uids given access to the directory (beyond the server's own). */
#define SN_UIDS_MAX 64
static uid_t g_uids[SN_UIDS_MAX];
static size_t g_nuids;

/* The directory, made on first use. 0 or -errno. */
static int nodes_dir(void)
{
	char tmpl[sizeof(g_srv.vseg->nodes_dir)];

	if (g_srv.vseg->nodes_dir[0])
		return 0;
	snprintf(tmpl, sizeof(tmpl), "/tmp/kiln-nodes-XXXXXX");
	if (!mkdtemp(tmpl))
		return -errno;
	if (chmod(tmpl, 01700) < 0) {
		int ret = -errno;

		rmdir(tmpl);
		return ret;
	}
	memcpy(g_srv.vseg->nodes_dir, tmpl, sizeof(tmpl));
	return 0;
}

static void put_acl(uint8_t *p, uint16_t tag, uint16_t perm, uint32_t id)
{
	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(tag >> 8);
	p[2] = (uint8_t)perm;
	p[3] = (uint8_t)(perm >> 8);
	for (int i = 0; i < 4; i++)
		p[4 + i] = (uint8_t)(id >> (8 * i));
}

static int cmp_uid(const void *a, const void *b)
{
	uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;

	return x < y ? -1 : x > y;
}

/* Let uid search the directory and make names in it: one more ACL entry
 * (the kernel's xattr layout, linux/posix_acl_xattr.h: version 2, then
 * entries sorted by tag and id). 0 or -errno (-EOPNOTSUPP: /tmp has no
 * ACLs; that uid then gets EACCES at the kernel object, as before). */
static int grant(uid_t uid)
{
	enum { USER_OBJ = 1, USER = 2, GROUP_OBJ = 4, MASK = 0x10, OTHER = 0x20 };
	uint8_t buf[4 + 8 * (SN_UIDS_MAX + 4)], *p = buf + 4;

	if (uid == geteuid())
		return 0;
	for (size_t i = 0; i < g_nuids; i++)
		if (g_uids[i] == uid)
			return 0;
	if (g_nuids == SN_UIDS_MAX)
		return -EUSERS;
	g_uids[g_nuids++] = uid;
	qsort(g_uids, g_nuids, sizeof(g_uids[0]), cmp_uid);
	buf[0] = 2;
	buf[1] = buf[2] = buf[3] = 0;
	put_acl(p, USER_OBJ, 7, (uint32_t)-1);
	p += 8;
	for (size_t i = 0; i < g_nuids; i++, p += 8)
		put_acl(p, USER, 3, g_uids[i]);
	put_acl(p, GROUP_OBJ, 0, (uint32_t)-1);
	put_acl(p + 8, MASK, 3, (uint32_t)-1);
	put_acl(p + 16, OTHER, 0, (uint32_t)-1);
	p += 24;
	if (setxattr(g_srv.vseg->nodes_dir, "system.posix_acl_access", buf, (size_t)(p - buf),
		     0) < 0) {
		g_nuids--; /* not granted: try again next time */
		for (size_t i = 0; i < g_nuids; i++)
			if (g_uids[i] == uid)
				memmove(&g_uids[i], &g_uids[i + 1], (g_nuids - i) * sizeof(uid_t));
		return -errno;
	}
	return 0;
}

static void node_path(pf_ino_t ino, char out[static RT_NODE_PATH_MAX])
{
	snprintf(out, RT_NODE_PATH_MAX, "%s/%llu", g_srv.vseg->nodes_dir, (unsigned long long)ino);
}

int sn_ready(const struct pf_stat *ps, const struct pf_cred *cred)
{
	char path[RT_NODE_PATH_MAX];
	int ret = nodes_dir();

	if (ret)
		return ret;
	if (cred)
		grant(cred->uid); /* without ACLs: as before, the server's uid only */
	if (ps->type != PF_TYPE_FIFO)
		return 0;
	node_path(ps->ino, path);
	if (mkfifo(path, 0600) < 0 && errno != EEXIST)
		return -errno;
	/* The node's owner (root only may give it away; the server's uid else)
	 * and mode, for the kernel's check at open. */
	if (lchown(path, ps->uid, ps->gid) < 0 && errno != EPERM)
		return -errno;
	if (chmod(path, ps->mode & 07777) < 0)
		return -errno;
	return 0;
}

void sn_gone(pf_ino_t ino)
{
	char path[RT_NODE_PATH_MAX];

	if (!g_srv.vseg->nodes_dir[0])
		return;
	node_path(ino, path);
	unlink(path);
}

void sn_cleanup(void)
{
	DIR *d;
	struct dirent *e;

	if (!g_srv.vseg->nodes_dir[0] || !(d = opendir(g_srv.vseg->nodes_dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(g_srv.vseg->nodes_dir);
}
