/* kiln runtime, file shield v2: the credentials of the volume server's
 * requests and the permission checks made with them.
 *
 * The server acts for every process of the workload; each request about a
 * path carries the calling thread's fsuid, fsgid and groups (proto.h), and
 * the server applies the kernel's rules with them against the modes and
 * owners pf keeps (pf's v2 calls take the cred; the checks below cover what
 * the server does without one: opening with the client's access mode,
 * listing, chmod and utimes of files it holds). A client may only claim what
 * the workload could be: a server running as root (the workload started as
 * root and may become anyone) takes the claim; any other server takes only
 * its own uid and its own groups (a process without privileges cannot
 * change them) and refuses the rest with EPERM. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "runtime/shield/srv_int.h"

static struct {
	bool root;
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[RT_CRED_GROUPS];
} g_self;

/* The current request's credentials (single-threaded: one at a time). */
static struct rt_cred g_req;
static struct pf_cred g_pcred;

void srv_cred_init(void)
{
	int n = getgroups(RT_CRED_GROUPS, g_self.groups);

	g_self.uid = geteuid();
	g_self.gid = getegid();
	g_self.root = g_self.uid == 0;
	g_self.ngroups = n < 0 ? 0 : n;
}

static bool self_in_group(gid_t gid)
{
	if (gid == g_self.gid)
		return true;
	for (int i = 0; i < g_self.ngroups; i++)
		if (g_self.groups[i] == gid)
			return true;
	return false;
}

int srv_cred(const struct rt_msg *m, const struct pf_cred **out)
{
	rt__msg_cred(m, &g_req);
	if (!g_self.root) {
		if (g_req.uid != g_self.uid || !self_in_group(g_req.gid))
			return -EPERM;
		for (uint32_t i = 0; i < g_req.ngroups; i++)
			if (!self_in_group(g_req.groups[i]))
				return -EPERM;
	}
	g_pcred = (struct pf_cred){ .uid = g_req.uid, .gid = g_req.gid,
				    .groups = g_req.groups, .ngroups = g_req.ngroups };
	*out = &g_pcred;
	return 0;
}

static int plain(int ret, struct kiln_err *err)
{
	return ret > -KILN_EBASE ? ret : srv_fail(ret, err);
}


int srv_may_list(const struct pf_cred *cred, const char *path)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	int ret = pf_statat(g_srv.vol, PF_ROOT_INO, path, 0, cred, &ps, &err);

	if (ret)
		return plain(ret, &err);
	if (ps.type != PF_TYPE_DIR)
		return -ENOTDIR;
	return pf_permission(cred, &ps, PF_MAY_READ);
}

/* chmod (want_times false) and utimes of path: the owner or root (EPERM);
 * times set to now also anyone who may write the file (EACCES). */
int srv_may_setattr(const struct pf_cred *cred, const char *path, bool now)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	int ret = pf_statat(g_srv.vol, PF_ROOT_INO, path, 0, cred, &ps, &err);

	if (ret)
		return plain(ret, &err);
	return srv_may_setattr_of(cred, &ps, now);
}

int srv_may_setattr_of(const struct pf_cred *cred, const struct pf_stat *ps, bool now)
{
	if (cred->uid == 0 || cred->uid == ps->uid)
		return 0;
	if (now)
		return pf_permission(cred, ps, PF_MAY_WRITE);
	return -EPERM;
}

int srv_may_write(const struct pf_cred *cred, const char *path)
{
	struct kiln_err err = { 0 };
	struct pf_stat ps;
	int ret = pf_statat(g_srv.vol, PF_ROOT_INO, path, 0, cred, &ps, &err);

	if (ret)
		return plain(ret, &err);
	if (ps.type == PF_TYPE_DIR)
		return -EISDIR;
	return pf_permission(cred, &ps, PF_MAY_WRITE);
}
