/* Permission rules of the Linux VFS for a given uid, gid and groups
 * (fs/namei.c generic_permission and may_delete, fs/attr.c setattr_prepare),
 * without capabilities beyond what uid 0 has by default. */
#include "pf/internal.h"

#include <errno.h>
#include <sys/stat.h>

bool pf_cred_in_group(const struct pf_cred *cred, gid_t gid)
{
	if (cred->gid == gid)
		return true;
	for (size_t i = 0; i < cred->ngroups; i++)
		if (cred->groups[i] == gid)
			return true;
	return false;
}

/* The shared rule: owner bits for the owner, else group bits for a member,
 * else other bits; root may do anything but execute a file with no x bit. */
static int check(const struct pf_cred *cred, bool is_dir, uint32_t mode, uint32_t uid,
		 uint32_t gid, int mask)
{
	unsigned bits;

	mask &= PF_MAY_READ | PF_MAY_WRITE | PF_MAY_EXEC;
	if (!cred)
		return 0;
	if (cred->uid == 0) {
		if (!(mask & PF_MAY_EXEC) || is_dir || (mode & 0111))
			return 0;
		return -EACCES;
	}
	if (cred->uid == uid)
		bits = (mode >> 6) & 7;
	else if (pf_cred_in_group(cred, gid))
		bits = (mode >> 3) & 7;
	else
		bits = mode & 7;
	return ((unsigned)mask & ~bits) ? -EACCES : 0;
}

int pf_permission(const struct pf_cred *cred, const struct pf_stat *st, int mask)
{
	return check(cred, st->type == PF_TYPE_DIR, st->mode, st->uid, st->gid, mask);
}

int pf__may(const struct pf_cred *cred, const struct pf_inode *in, int mask)
{
	return check(cred, in->type == PF_TYPE_DIR, in->mode, in->uid, in->gid, mask);
}

static int sticky(const struct pf_cred *cred, uint32_t dmode, uint32_t duid, uint32_t vuid)
{
	if (!(dmode & S_ISVTX) || cred->uid == 0 || cred->uid == vuid || cred->uid == duid)
		return 0;
	return -EPERM;
}

int pf_may_delete(const struct pf_cred *cred, const struct pf_stat *dir,
		  const struct pf_stat *victim)
{
	int ret;

	if (!cred)
		return 0;
	ret = pf_permission(cred, dir, PF_MAY_WRITE | PF_MAY_EXEC);
	return ret ? ret : sticky(cred, dir->mode, dir->uid, victim->uid);
}

int pf__may_delete(const struct pf_cred *cred, const struct pf_inode *dir,
		   const struct pf_inode *victim)
{
	int ret;

	if (!cred)
		return 0;
	ret = pf__may(cred, dir, PF_MAY_WRITE | PF_MAY_EXEC);
	return ret ? ret : sticky(cred, dir->mode, dir->uid, victim->uid);
}

int pf__may_setattr(const struct pf_cred *cred, const struct pf_inode *in,
		    struct pf_setattr *sa)
{
	bool owner = !cred || cred->uid == 0 || cred->uid == in->uid;
	int ret;

	if (!cred)
		return 0;
	/* ctime is the file system's own clock: nobody sets it through a cred. */
	if (sa->valid & PF_SET_CTIME)
		return -EPERM;
	if ((sa->valid & PF_SET_UID) && sa->uid != in->uid && cred->uid != 0)
		return -EPERM;
	if ((sa->valid & PF_SET_UID) && !owner)
		return -EPERM;
	if ((sa->valid & PF_SET_GID) && sa->gid != in->gid &&
	    !(cred->uid == 0 || (cred->uid == in->uid && pf_cred_in_group(cred, sa->gid))))
		return -EPERM;
	if ((sa->valid & PF_SET_GID) && !owner)
		return -EPERM;
	if ((sa->valid & PF_SET_MODE) && !owner)
		return -EPERM;
	/* Explicit times only for the owner; "now" also for a writer. */
	if ((sa->valid & (PF_SET_ATIME | PF_SET_MTIME)) && !owner)
		return -EPERM;
	if ((sa->valid & (PF_SET_ATIME_NOW | PF_SET_MTIME_NOW)) && !owner &&
	    (ret = pf__may(cred, in, PF_MAY_WRITE)))
		return ret;
	if ((sa->valid & PF_SET_SIZE) && (ret = pf__may(cred, in, PF_MAY_WRITE)))
		return ret;
	/* A chmod by a non-root owner outside the file's group cannot set the
	 * set-group-ID bit (Linux drops it silently). */
	if ((sa->valid & PF_SET_MODE) && cred->uid != 0 &&
	    !pf_cred_in_group(cred, (sa->valid & PF_SET_GID) ? sa->gid : in->gid))
		sa->mode &= ~(mode_t)S_ISGID;
	return 0;
}
