/* kiln runtime, file shield: the mounted volumes. Each is served by its volume
 * server (server.c), which this process reaches through client.c: at start
 * the process connects, starting the server when none runs, so a wrong key
 * or a corrupt or rolled-back volume stops the program before main, as
 * before. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "runtime/shield/internal.h"

struct rt_vol g_vols[RT_MAX_VOLUMES];
size_t g_nvols;

struct rt_vol *rt__shield_find_vol(const char *abs, const char **rel)
{
	struct rt_vol *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < g_nvols; i++) {
		const char *r = rt_path_under(abs, g_vols[i].cfg->mount);
		size_t len = strlen(g_vols[i].cfg->mount);

		if (r && (!best || len > best_len)) {
			best = &g_vols[i];
			best_len = len;
			*rel = r;
		}
	}
	return best;
}

uint64_t rt__vol_gen(struct rt_vol *v)
{
	struct rt_vseg *seg = atomic_load(&v->vseg);

	return seg ? atomic_load(&seg->ns_gen) + (v->gen << 48) : 0;
}

int rt__vol_call(struct rt_vol *v, struct rt_msg *m, struct rt_call *call)
{
	int ret = rt__cl_call(v, m, call);

	if (ret == -EIO && call->errmsg[0])
		rt__say_vol(v, m->path ? m->path : "", call->errmsg);
	return ret;
}

int rt__vol_simple(struct rt_vol *v, struct rt_msg *m)
{
	struct rt_call call;
	int ret = rt__vol_call(v, m, &call);

	rt__cl_done(v, &call);
	return ret;
}

int rt__vols_init(struct kiln_err *err)
{
	int ret;

	for (size_t i = 0; i < g_rt.cfg.n_volumes; i++) {
		struct rt_volume_cfg *c = &g_rt.cfg.volumes[i];
		struct rt_vol *v = &g_vols[i];
		char path[4200];
		struct stat st;
		long fd;

		v->cfg = c;
		v->rootfd = -1;
		if (c->cas_id[0] && c->committed == 0) {
			/* First use of a CAS volume: make its directory and store. */
			snprintf(path, sizeof(path), "%s/.kiln", c->dir);
			ret = kiln_mkdir_p(path, 0700);
			if (ret)
				return kiln_err_set(err, ret, "volume %s: cannot create %s: %s",
						    c->cas_id, path, kiln_strerror(ret));
		}
		fd = rt__raw(SYS_openat, AT_FDCWD, c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return kiln_err_set(err, (int)fd, "volume %s: %s", c->dir,
					    kiln_strerror((int)fd));
		v->rootfd = rt__own_fd((int)fd);
		if (v->rootfd < 0)
			return kiln_err_set(err, v->rootfd, "volume %s: no fd", c->dir);
		if (rt__raw(SYS_fstat, v->rootfd, &st) == 0) {
			v->dev = st.st_dev;
			v->dir_ino = st.st_ino;
		}
		snprintf(path, sizeof(path), "%s/.kiln", c->dir);
		if (rt__raw(SYS_newfstatat, v->rootfd, ".kiln", &st, AT_SYMLINK_NOFOLLOW) < 0)
			return kiln_err_set(err, -ENOENT, "volume %s: not a kiln volume (no %s); "
					    "create it with 'kiln fs init'", c->dir, path);
		/* The store is ".kiln" under the root, never through a symlink (a
		 * planted one would move the volume). */
		if (!S_ISDIR(st.st_mode))
			return kiln_err_set(err, -KILN_EUNSAFE, "volume %s: %s: %s", c->dir, path,
					    kiln_strerror(-KILN_EUNSAFE));
		v->st_dev = rt_vol_dev(st.st_dev, st.st_ino);
		memcpy(v->key, c->key, sizeof(v->key));
		kiln_wipe(c->key, sizeof(c->key));
		ret = rt__cl_connect(v, err);
		if (ret) {
			/* The server's own messages name the volume already. */
			if (!strstr(kiln_err_msg(err, ret), c->dir))
				kiln_err_prefix(err, "volume %s: ", c->dir);
			return ret;
		}
		/* The grant's tags were good for the first open only. */
		c->committed = RT_TAG_ASK;
		g_nvols = i + 1;
	}
	return 0;
}

void rt__vols_exit(void)
{
	/* What this process wrote is committed before it goes (every mode:
	 * --freshness on-exit is exactly this). Files written by other
	 * processes are theirs to commit, and the server commits everything
	 * when its last client has gone. */
	for (size_t i = 0; i < g_nvols; i++) {
		struct rt_vol *v = &g_vols[i];

		if (atomic_load(&v->wrote) && !rt__cl_dead(v)) {
			struct rt_msg m = { .op = RT_OP_SYNCALL };

			rt__vol_simple(v, &m);
		}
		/* The last client waits for the server's close: when `kiln run`
		 * returns, the volume is closed and its directory the user's. */
		rt__cl_leave(v);
		kiln_wipe(v->key, sizeof(v->key));
		rt__auth_wipe(&v->keys);
	}
}

bool rt__shield_store_mount(dev_t dev, ino_t ino, char *out, size_t out_size)
{
	for (size_t i = 0; i < g_nvols; i++) {
		struct rt_vol *v = &g_vols[i];

		if (v->dev == dev && v->dir_ino == ino && strcmp(v->cfg->mount, v->cfg->dir) == 0)
			return (size_t)snprintf(out, out_size, "%s", v->cfg->mount) < out_size;
	}
	return false;
}
