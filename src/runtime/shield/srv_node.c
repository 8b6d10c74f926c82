/* kiln runtime, file shield v2: the volume server's FIFOs and sockets.
 *
 * A FIFO or an AF_UNIX socket inside a volume is a pf special node (its name,
 * mode, owner and times live in the volume, encrypted like every name); the
 * kernel object that carries its data lives in a private directory of the
 * server (mode 0700, made with mkdtemp under /tmp when the first one is
 * needed, its path in the volume segment for the clients), named by the
 * node's inode number, never by its name. The server makes a FIFO there when
 * it is created or first looked up, removes a FIFO or socket when the node's
 * last name goes, and the whole directory when it exits. A client binds a
 * socket there itself (bind creates the socket file). What goes through them
 * is the kernel's plaintext, as with any pipe or socket. */
#include "runtime/shield/srv_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory, made on first use. 0 or -errno. */
static int nodes_dir(void)
{
	char tmpl[sizeof(g_srv.vseg->nodes_dir)];

	if (g_srv.vseg->nodes_dir[0])
		return 0;
	snprintf(tmpl, sizeof(tmpl), "/tmp/kiln-nodes-XXXXXX");
	if (!mkdtemp(tmpl))
		return -errno;
	memcpy(g_srv.vseg->nodes_dir, tmpl, sizeof(tmpl));
	return 0;
}

static void node_path(pf_ino_t ino, char out[static RT_NODE_PATH_MAX])
{
	snprintf(out, RT_NODE_PATH_MAX, "%s/%llu", g_srv.vseg->nodes_dir, (unsigned long long)ino);
}

int sn_ready(pf_ino_t ino, enum pf_type type)
{
	char path[RT_NODE_PATH_MAX];
	int ret = nodes_dir();

	if (ret || type != PF_TYPE_FIFO)
		return ret;
	node_path(ino, path);
	if (mkfifo(path, 0600) < 0 && errno != EEXIST)
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
