/* Path resolution as the kernel does it (fs/namei.c link_path_walk): component
 * by component from a directory inode, "." and ".." physically, symlinks
 * followed (at most PF_SYMLOOP_MAX), search permission checked on every
 * directory for a cred; a path leaving the volume stops with the rest to
 * resolve outside. Also the regions (longest path prefix wins). */
#include "pf/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n == 0)
		return true;
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

enum pf_region_kind pf__region_of(pf_volume_t *v, const char *path)
{
	enum pf_region_kind kind = PF_REGION_ENCRYPTED;
	size_t best = 0;
	bool found = false;

	for (size_t i = 0; i < v->regions_len; i++) {
		size_t n = strlen(v->regions[i].prefix);

		if (under(path, v->regions[i].prefix) && (!found || n >= best)) {
			best = n;
			found = true;
			kind = (enum pf_region_kind)v->regions[i].kind;
		}
	}
	return kind;
}

/* The path of a symlink expansion: target, then "/" and the rest when there is
 * a rest (or the component had a trailing slash, which the target keeps). */
static int pf__splice(char *buf, const char *target, const char *rest, bool slash)
{
	size_t tl = strlen(target), rl = strlen(rest);
	char tmp[PF_MAX_PATH];

	if (tl + 1 + rl >= PF_MAX_PATH)
		return -ENAMETOOLONG;
	memcpy(tmp, target, tl);
	if (rl || slash)
		tmp[tl++] = '/';
	memcpy(tmp + tl, rest, rl + 1);
	memcpy(buf, tmp, tl + rl + 1);
	return 0;
}

static int escaped(struct pf_walk *w, const char *rest, const char *link, size_t link_len)
{
	w->rest = strdup(rest);
	if (!w->rest)
		return -ENOMEM;
	if (link_len > PF_NAME_MAX)
		link_len = PF_NAME_MAX;
	memcpy(w->link, link, link_len);
	w->link[link_len] = '\0';
	return PF_RESOLVE_ESCAPED;
}

int pf__walk(pf_volume_t *v, struct pf_inode *at, const char *path, unsigned flags,
	     const struct pf_cred *cred, struct pf_walk *w, struct kiln_err *err)
{
	char buf[PF_MAX_PATH];
	struct pf_inode *cur = at;
	const char *p = buf;
	int links = 0, ret;

	memset(w, 0, sizeof(*w));
	if (strlen(path) >= PF_MAX_PATH)
		return kiln_err_set(err, -ENAMETOOLONG, "path too long (%zu bytes)", strlen(path));
	strcpy(buf, path);
	if (buf[0] == '/')
		cur = v->root;
	for (;;) {
		struct pf_inode *next = NULL;
		struct pf_dent *d = NULL;
		const char *c, *after;
		bool last, tslash, dot = false;
		size_t len;

		while (*p == '/')
			p++;
		if (cur->type != PF_TYPE_DIR)
			return kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
		if (!*p) {
			/* "" or "dir/": the directory itself. */
			w->dir = cur->parent;
			w->inode = cur;
			w->dot = true;
			strcpy(w->name, ".");
			return 0;
		}
		c = p;
		len = strcspn(p, "/");
		p += len;
		after = p;
		while (*after == '/')
			after++;
		last = *after == '\0';
		tslash = last && after != p;
		if (len > PF_NAME_MAX)
			return kiln_err_set(err, -ENAMETOOLONG, "%s: a name is longer than %d "
					    "bytes", path, PF_NAME_MAX);
		if (cred && (ret = pf__may(cred, cur, PF_MAY_EXEC)))
			return kiln_err_set(err, ret, "%s: search permission denied", path);
		if (len == 1 && c[0] == '.') {
			next = cur;
			dot = true;
		} else if (len == 2 && c[0] == '.' && c[1] == '.') {
			if (cur == v->root)
				return escaped(w, c, c, 2);
			next = cur->parent;
			dot = true;
		} else {
			d = pf__dent_find(v, cur, c, len);
			next = d ? d->inode : NULL;
		}
		if (next && next->type == PF_TYPE_LNK &&
		    (!last || (!(flags & PF__WALK_PARENT) &&
			       (!(flags & PF_AT_NOFOLLOW) || tslash)))) {
			if (++links > PF_SYMLOOP_MAX)
				return kiln_err_set(err, -ELOOP, "%s: too many levels of symbolic "
						    "links", path);
			if (next->target[0] == '/') {
				char tmp[PF_MAX_PATH];

				if (pf__splice(tmp, next->target, after, tslash) != 0)
					return kiln_err_set(err, -ENAMETOOLONG, "%s: symlink "
							    "expansion too long", path);
				return escaped(w, tmp, c, len);
			}
			if (pf__splice(buf, next->target, after, tslash) != 0)
				return kiln_err_set(err, -ENAMETOOLONG, "%s: symlink expansion too "
						    "long", path);
			p = buf;
			continue; /* from the symlink's directory */
		}
		if (last) {
			w->dir = cur;
			w->inode = next;
			w->dent = d;
			w->dot = dot;
			w->trailing_slash = tslash;
			memcpy(w->name, c, len);
			w->name[len] = '\0';
			/* "file/": ENOTDIR for a lookup, EEXIST for a create, ...:
			 * the caller decides (pf__walk_lookup). */
			return 0;
		}
		if (!next)
			return kiln_err_set(err, -ENOENT, "%s: no such file or directory", path);
		if (next->type != PF_TYPE_DIR)
			return kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
		cur = next;
	}
}

void pf__walk_done(struct pf_walk *w)
{
	free(w->rest);
	w->rest = NULL;
}

int pf__walk_in(pf_volume_t *v, struct pf_inode *at, const char *path, unsigned flags,
		const struct pf_cred *cred, struct pf_walk *w, struct kiln_err *err)
{
	int ret = pf__walk(v, at, path, flags, cred, w, err);

	if (ret == PF_RESOLVE_ESCAPED) {
		ret = kiln_err_set(err, -EXDEV, "%s: leaves the volume through '%s'", path,
				   w->link);
		pf__walk_done(w);
	}
	return ret;
}

int pf__walk_lookup(pf_volume_t *v, struct pf_inode *at, const char *path, unsigned flags,
		    const struct pf_cred *cred, struct pf_walk *w, struct kiln_err *err)
{
	int ret = pf__walk_in(v, at, path, flags, cred, w, err);

	if (!ret && !w->inode)
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", path);
	else if (!ret && w->trailing_slash && w->inode->type != PF_TYPE_DIR)
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
	return ret;
}

struct pf_inode *pf__at(pf_volume_t *v, pf_ino_t at, int *ret)
{
	struct pf_inode *in = at == PF_ROOT_INO ? v->root : pf__ino_find(v, at);

	*ret = 0;
	if (!in || (!in->names && in != v->root))
		*ret = -ENOENT;
	else if (in->type != PF_TYPE_DIR)
		*ret = -ENOTDIR;
	return *ret ? NULL : in;
}

int pf_resolve(pf_volume_t *v, pf_ino_t at, const char *path, unsigned flags,
	       const struct pf_cred *cred, struct pf_resolved *out, struct kiln_err *err)
{
	struct pf_walk w;
	struct pf_inode *start;
	int ret;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&v->lock);
	start = pf__at(v, at, &ret);
	if (!start) {
		kiln_err_set(err, ret, "directory inode %llu: %s", (unsigned long long)at,
			     kiln_strerror(ret));
		goto out;
	}
	ret = pf__walk(v, start, path, flags, cred, &w, err);
	if (ret == PF_RESOLVE_ESCAPED) {
		out->rest = w.rest;
		w.rest = NULL;
		goto out;
	}
	if (ret)
		goto out;
	if (w.trailing_slash && w.inode && w.inode->type != PF_TYPE_DIR) {
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", path);
		goto out;
	}
	out->ino = w.inode ? w.inode->ino : 0;
	out->type = w.inode ? w.inode->type : 0;
	out->parent = w.dir->ino;
	memcpy(out->name, w.name, sizeof(out->name));
	if (!w.inode && !(flags & PF_AT_PARENT))
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", path);
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}
