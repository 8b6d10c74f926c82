/* kiln run, supervised mode: the volumes (supervise_int.h). The supervisor
 * is a client of each volume's server, the same server as every libkiln
 * process on the volume (docs/runtime.md, "The file shield"): it starts it
 * when none runs (rt__srv_connect forks this process, and the fork opens the
 * volume as the launcher's configuration says) or joins the running one with
 * the same proof of the key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pf/pf.h"
#include "runtime/attest_proto.h"
#include "runtime/shield/server.h"
#include "runtime/supervise_int.h"

/* ---- volumes and their servers ------------------------------------------- */
/* The server's open of its volume (rt__srv_open_volume, the same as
 * libkiln's) with pf's own storage and local freshness: the server is a fork
 * of this process, plain libc. */
static const struct rt_srv_open_ops g_open_ops = {
	.storage = pf_storage_posix_fd,
	.fresh_local = pf_freshness_local,
	.fresh_cas = rt_fresh_cas,
};

static int open_in_server(void *arg, const uint8_t key[static RT_KEY_SIZE], pf_volume_t **out,
			  struct kiln_err *err)
{
	return rt__srv_open_volume(arg, &g_open_ops, key, out, err);
}

static pid_t plain_fork(void)
{
	return fork();
}

/* The plaintext bound of a server this supervisor starts: KILN_FILE_CACHE's
 * MIB, as libkiln reads it (its FILES is libkiln's own cache: none here). */
static uint64_t cache_limit(void)
{
	const char *s = getenv("KILN_FILE_CACHE");
	uint64_t files, mib;

	return s && rt_file_cache_parse(s, &files, &mib) == 0 && mib > 0 ? mib << 20 : 0;
}

static int vol_connect(struct sv_vol *v, struct kiln_err *err)
{
	struct rt_srv_config *c = calloc(1, sizeof(*c));
	int vfd = -1, s;

	if (!c)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	snprintf(c->dir, sizeof(c->dir), "%s", v->cfg.dir);
	memcpy(c->sock_name, v->sock_name, sizeof(c->sock_name));
	memcpy(c->key, v->cfg.key, RT_KEY_SIZE);
	c->open_volume = open_in_server;
	c->arg = &v->cfg;
	c->cache_limit = cache_limit(); /* 0: the server's default */
	s = rt__srv_connect(c, &v->keys, plain_fork, (uint32_t)getpid(), &vfd, err);
	kiln_free_secret(c, sizeof(*c));
	if (s < 0)
		return s;
	/* The volume segment: its namespace generation says when an open of a
	 * file held already needs no round trip (sv_open). */
	if (v->vseg)
		munmap(v->vseg, sizeof(*v->vseg));
	v->vseg = mmap(NULL, sizeof(*v->vseg), PROT_READ, MAP_SHARED, vfd, 0);
	close(vfd);
	if (v->vseg == MAP_FAILED || v->vseg->magic != RT_VSEG_MAGIC) {
		if (v->vseg != MAP_FAILED)
			munmap(v->vseg, sizeof(*v->vseg));
		v->vseg = NULL;
		close(s);
		return kiln_err_set(err, -EPROTO, "volume server: bad volume segment");
	}
	v->sock = s;
	v->gen++;
	/* The grant's tags were good for the first open only (a server started
	 * later, after this one died, asks the CAS). */
	v->cfg.committed = RT_TAG_ASK;
	return 0;
}

int sv_vols_open(struct sv *sv, const struct rt_config *cfg, struct kiln_err *err)
{
	sv->vols = calloc(RT_MAX_VOLUMES, sizeof(*sv->vols));
	if (!sv->vols)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < cfg->n_volumes && i < RT_MAX_VOLUMES; i++) {
		struct sv_vol *v = &sv->vols[i];
		char store[4200];
		struct stat st;
		int ret;

		v->cfg = cfg->volumes[i];
		v->sock = -1;
		sv->nvols = i + 1;
		snprintf(store, sizeof(store), "%s/.kiln", v->cfg.dir);
		if (v->cfg.cas_id[0] && v->cfg.committed == 0) {
			/* First use of a CAS volume: its directory and store. */
			ret = kiln_mkdir_p(store, 0700);
			if (ret)
				return kiln_err_set(err, ret, "volume %s: cannot create %s: %s",
						    v->cfg.cas_id, store, kiln_strerror(ret));
		}
		ret = rt__auth_derive(v->cfg.key, &v->keys);
		if (!ret)
			ret = rt__srv_sock_name(v->cfg.dir, &v->keys, v->sock_name);
		if (ret == -ENOENT)
			return kiln_err_set(err, ret, "volume %s: not a kiln volume (no %s); create "
					    "it with 'kiln fs init'", v->cfg.dir, store);
		if (ret)
			return kiln_err_set(err, ret, "volume %s: %s: %s", v->cfg.dir, store,
					    kiln_strerror(ret));
		ret = vol_connect(v, err);
		if (ret) {
			if (!strstr(kiln_err_msg(err, ret), v->cfg.dir))
				kiln_err_prefix(err, "volume %s: ", v->cfg.dir);
			return ret;
		}
		v->dev = lstat(store, &st) == 0 ? rt_vol_dev(st.st_dev, st.st_ino) : 0;
	}
	return 0;
}

struct sv_vol *sv_find_vol(struct sv *sv, const char *abs, const char **rel)
{
	struct sv_vol *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < sv->nvols; i++) {
		const char *r = rt_path_under(abs, sv->vols[i].cfg.mount);
		size_t len = strlen(sv->vols[i].cfg.mount);

		if (r && (!best || len > best_len)) {
			best = &sv->vols[i];
			best_len = len;
			*rel = r;
		}
	}
	return best;
}

/* One request to v's server; a server that went away is replaced for
 * requests about paths (a new one recovers the volume), not for file ids of
 * the old one (-EIO). errmsg (RT_ERRMSG_MAX, may be NULL): the server's
 * message of a failure. fds (may be NULL): passed fds, owned by the caller. */
int sv_call(struct sv_vol *v, struct rt_msg *m, const uint8_t **body, size_t *size,
		int fds[2], char *errmsg)
{
	struct kiln_err err = { 0 };
	const uint8_t *b;
	size_t sz;
	int ret = -EIO;

	if (errmsg)
		errmsg[0] = '\0';
	for (int attempt = 0; attempt < 2; attempt++) {
		if (v->sock < 0) {
			if (m->id)
				return -EIO;
			ret = vol_connect(v, &err);
			if (ret) {
				sv_report("volume", v->cfg.dir, kiln_err_msg(&err, ret));
				return -EIO;
			}
		}
		m->pid = (uint32_t)getpid();
		ret = rt__request(v->sock, m, v->reply, body ? body : &b, size ? size : &sz, fds,
				  errmsg);
		if (ret != -ECONNRESET && ret != -EPIPE && ret != -EPROTO)
			return ret;
		close(v->sock);
		v->sock = -1;
		if (!v->said_gone) {
			v->said_gone = true;
			sv_report("volume", v->cfg.dir, "the volume server has gone (killed?): files "
				  "open before are no longer saved; new opens start a new server");
		}
	}
	return ret;
}

/* A failed request: the server's message in the supervisor's stderr when it
 * says more than the errno (integrity, I/O), naming the program's path. */
long sv_failed(const char *what, struct sv_vol *v, const char *rel, int ret,
		   const char *errmsg)
{
	char abs[SV_PATH + 8];

	if (ret != -EIO || !errmsg[0])
		return ret;
	snprintf(abs, sizeof(abs), "%s%s%s", v->cfg.mount, rel[0] ? "/" : "", rel);
	sv_report(what, abs, errmsg);
	return ret;
}

uint64_t sv_ns_gen(const struct sv_vol *v)
{
	return v->vseg && v->sock >= 0 ? atomic_load(&v->vseg->ns_gen) : UINT64_MAX;
}

void sv_commit(struct sv_vol *v, unsigned flags)
{
	struct rt_msg m = { .op = RT_OP_SYNCALL, .flags = flags };
	char errmsg[RT_ERRMSG_MAX];
	int ret = sv_call(v, &m, NULL, NULL, NULL, errmsg);

	if (ret)
		sv_report("commit", v->cfg.dir, errmsg[0] ? errmsg : kiln_strerror(ret));
}

void sv_vol_leave(struct sv_vol *v)
{
	/* accepts before conns, as libkiln's rt__cl_leave: the server held
	 * only our connection, or a newcomer shows in accepts. */
	uint32_t accepts = v->vseg ? atomic_load(&v->vseg->accepts) : 0;
	bool last = v->vseg && atomic_load(&v->vseg->conns) == 1;

	close(v->sock);
	v->sock = -1;
	if (last && rt__srv_wait_closed(v->vseg, accepts, RT_CLOSE_WAIT_MS) == -ETIMEDOUT)
		sv_report("volume", v->cfg.dir, "its volume server has not closed the volume "
			  "in time (still committing?): not waiting longer");
}
