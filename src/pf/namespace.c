/* The volume namespace: the path -> entry hash table, regions, and the public
 * namespace calls (stat, chmod, mtime, unlink, mkdir, rmdir, rename, readdir).
 * Namespace changes are in memory until the next metadata commit (commit.c). */
#include "pf/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"

static uint64_t path_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

struct pf_entry *pf__ent_find(pf_volume_t *v, const char *path)
{
	struct pf_entry *e = v->buckets[path_hash(path) % v->nbuckets];

	while (e && strcmp(e->path, path) != 0)
		e = e->hnext;
	return e;
}

static void ent_link(pf_volume_t *v, struct pf_entry *e)
{
	size_t b = path_hash(e->path) % v->nbuckets;

	e->hnext = v->buckets[b];
	v->buckets[b] = e;
}

static void ent_unlink(pf_volume_t *v, struct pf_entry *e)
{
	struct pf_entry **pp = &v->buckets[path_hash(e->path) % v->nbuckets];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
}

int pf__ent_insert(pf_volume_t *v, struct pf_entry *e)
{
	if (v->nentries + 1 > v->nbuckets) {
		size_t nb = v->nbuckets * 2;
		struct pf_entry **nbk = calloc(nb, sizeof(*nbk));

		if (!nbk)
			return -ENOMEM;
		for (size_t i = 0; i < v->nbuckets; i++) {
			struct pf_entry *x = v->buckets[i], *nx;

			for (; x; x = nx) {
				size_t b = path_hash(x->path) % nb;

				nx = x->hnext;
				x->hnext = nbk[b];
				nbk[b] = x;
			}
		}
		free(v->buckets);
		v->buckets = nbk;
		v->nbuckets = nb;
	}
	ent_link(v, e);
	v->nentries++;
	return 0;
}

void pf__ent_free(struct pf_entry *e)
{
	if (!e)
		return;
	free(e->path);
	kiln_wipe(e, sizeof(*e));
	free(e);
}

static void ent_remove(pf_volume_t *v, struct pf_entry *e)
{
	ent_unlink(v, e);
	v->nentries--;
}

/* The directory part of path ("" for top level), in out. */
static void parent_of(const char *path, char *out)
{
	const char *s = strrchr(path, '/');
	size_t len = s ? (size_t)(s - path) : 0;

	memcpy(out, path, len);
	out[len] = '\0';
}

static bool dir_exists(pf_volume_t *v, const char *path)
{
	struct pf_entry *e;

	if (path[0] == '\0')
		return true;
	e = pf__ent_find(v, path);
	return e && e->is_dir;
}

/* 0, -ENOENT or -ENOTDIR for the parent of path. */
int pf__check_parent(pf_volume_t *v, const char *path)
{
	char parent[PF_MAX_PATH];
	struct pf_entry *e;

	parent_of(path, parent);
	if (parent[0] == '\0')
		return 0;
	e = pf__ent_find(v, parent);
	if (!e)
		return -ENOENT;
	return e->is_dir ? 0 : -ENOTDIR;
}

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

static void fill_stat(pf_volume_t *v, const struct pf_entry *e, struct pf_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->is_dir = e->is_dir;
	st->mode = e->mode;
	st->mtime_ns = e->mtime_ns;
	st->kind = e->is_dir ? pf__region_of(v, e->path) : (enum pf_region_kind)e->kind;
	if (!e->is_dir)
		st->size = e->node ? e->node->size : e->size;
}

/* The root directory has no metadata entry; like any directory its mtime follows
 * its entries, so report the newest of its direct children (now when empty).
 * O(entries) per stat of the root. Opening the root (sqlite fsyncs its directory
 * once per transaction) pays it: a pointer walk, small beside that transaction's
 * syncs. A stored root mtime would need a metadata format change. */
static int64_t root_mtime_ns(pf_volume_t *v)
{
	int64_t newest = 0;
	struct timespec now;

	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (!strchr(e->path, '/') && e->mtime_ns > newest)
				newest = e->mtime_ns;
	if (newest)
		return newest;
	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int pf_stat(pf_volume_t *v, const char *path, struct pf_stat *st, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = pf__path_normalize(path, norm);

	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	pthread_mutex_lock(&v->lock);
	if (!norm[0]) {
		memset(st, 0, sizeof(*st));
		st->is_dir = true;
		st->mode = 0755;
		st->mtime_ns = root_mtime_ns(v);
		st->kind = pf__region_of(v, "");
	} else if ((e = pf__ent_find(v, norm))) {
		fill_stat(v, e, st);
	} else {
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", norm);
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_fstat(pf_file_t *f, struct pf_stat *st)
{
	struct pf_node *n = f->node;
	pf_volume_t *v = n->vol;

	pthread_mutex_lock(&v->lock);
	if (n->entry) {
		fill_stat(v, n->entry, st);
	} else {
		memset(st, 0, sizeof(*st));
		st->size = n->size;
		st->kind = (enum pf_region_kind)n->kind;
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

/* Look up path for a namespace change; locks on success. */
static int ns_lookup(pf_volume_t *v, const char *path, char *norm, struct pf_entry **e,
		     struct kiln_err *err)
{
	int ret = pf__path_normalize(path, norm);

	*e = NULL;
	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	if (v->read_only)
		return kiln_err_set(err, -EROFS, "%s: volume is open read-only", norm);
	pthread_mutex_lock(&v->lock);
	*e = norm[0] ? pf__ent_find(v, norm) : NULL;
	return 0;
}

int pf_chmod(pf_volume_t *v, const char *path, mode_t mode, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (e) {
		e->mode = mode & 07777;
		v->ns_dirty = true;
	}
	else if (norm[0])
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", norm);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_set_mtime(pf_volume_t *v, const char *path, int64_t mtime_ns, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (e) {
		e->mtime_ns = mtime_ns;
		v->ns_dirty = true;
	}
	else if (norm[0])
		ret = kiln_err_set(err, -ENOENT, "%s: no such file or directory", norm);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_truncate(pf_volume_t *v, const char *path, uint64_t size, struct kiln_err *err)
{
	pf_file_t *f;
	int ret = pf_open(v, path, O_WRONLY, 0, &f, err);

	if (ret)
		return ret;
	ret = pf_ftruncate(f, size, err);
	pf_close(f);
	return ret;
}

/* Remove file entry e from the namespace (lock held). */
static void drop_file(pf_volume_t *v, struct pf_entry *e)
{
	struct pf_node *n = e->node;
	char name[PF_NAME_MAX];

	ent_remove(v, e);
	v->ns_dirty = true;
	if (n) {
		n->entry = NULL;
		e->node = NULL;
		if (n->refs == 0) {
			char old[PF_NAME_MAX];
			bool fresh = n->fresh;

			memcpy(name, n->name, sizeof(name));
			memcpy(old, n->old_name, sizeof(old));
			pf__node_free(n);
			pf__schedule_remove(v, name, e->in_meta);
			if (fresh)
				pf__schedule_remove(v, old, true);
		}
	} else {
		pf__backing_name(e->backing, name);
		pf__schedule_remove(v, name, e->in_meta);
	}
	pf__ent_free(e);
}

int pf_unlink(pf_volume_t *v, const char *path, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (!e)
		ret = kiln_err_set(err, norm[0] ? -ENOENT : -EISDIR, "%s: no such file",
				   norm[0] ? norm : "/");
	else if (e->is_dir)
		ret = kiln_err_set(err, -EISDIR, "%s: is a directory", norm);
	else
		drop_file(v, e);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

static bool dir_empty(pf_volume_t *v, const char *path)
{
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (strcmp(e->path, path) != 0 && under(e->path, path))
				return false;
	return true;
}

int pf_mkdir(pf_volume_t *v, const char *path, mode_t mode, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (!norm[0] || e) {
		ret = kiln_err_set(err, -EEXIST, "%s: exists", norm[0] ? norm : "/");
		goto out;
	}
	ret = pf__check_parent(v, norm);
	if (ret) {
		kiln_err_set(err, ret, "%s: parent directory: %s", norm, kiln_strerror(ret));
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->path = strdup(norm))) {
		free(e);
		ret = -ENOMEM;
		goto out;
	}
	e->is_dir = true;
	e->mode = mode & 07777;
	e->mtime_ns = pf__now_ns();
	ret = pf__ent_insert(v, e);
	if (ret)
		pf__ent_free(e);
	else
		v->ns_dirty = true;
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_rmdir(pf_volume_t *v, const char *path, struct kiln_err *err)
{
	char norm[PF_MAX_PATH];
	struct pf_entry *e;
	int ret = ns_lookup(v, path, norm, &e, err);

	if (ret)
		return ret;
	if (!norm[0])
		ret = kiln_err_set(err, -EBUSY, "cannot remove the root directory");
	else if (!e)
		ret = kiln_err_set(err, -ENOENT, "%s: no such directory", norm);
	else if (!e->is_dir)
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", norm);
	else if (!dir_empty(v, norm))
		ret = kiln_err_set(err, -ENOTEMPTY, "%s: directory not empty", norm);
	else {
		ent_remove(v, e);
		pf__ent_free(e);
		v->ns_dirty = true;
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

static int set_path(struct pf_entry *e, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), rest = strlen(e->path) - fl;
	char *p;

	if (tl + rest >= PF_MAX_PATH)
		return -ENAMETOOLONG;
	p = malloc(tl + rest + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, to, tl);
	memcpy(p + tl, e->path + fl, rest + 1);
	free(e->path);
	e->path = p;
	return 0;
}

int pf_rename(pf_volume_t *v, const char *from, const char *to, struct kiln_err *err)
{
	char nfrom[PF_MAX_PATH], nto[PF_MAX_PATH];
	struct pf_entry *e, *t, **moved = NULL;
	size_t nmoved = 0;
	int ret = pf__path_normalize(to, nto);

	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", to);
	ret = ns_lookup(v, from, nfrom, &e, err);
	if (ret)
		return ret;
	if (!e) {
		ret = kiln_err_set(err, nfrom[0] ? -ENOENT : -EBUSY, "%s: no such file or "
				   "directory", nfrom[0] ? nfrom : "/");
		goto out;
	}
	if (strcmp(nfrom, nto) == 0)
		goto out;
	if (!nto[0] || (e->is_dir && under(nto, nfrom))) {
		ret = kiln_err_set(err, -EINVAL, "cannot move %s into itself", nfrom);
		goto out;
	}
	ret = pf__check_parent(v, nto);
	if (ret) {
		kiln_err_set(err, ret, "%s: parent directory: %s", nto, kiln_strerror(ret));
		goto out;
	}
	t = pf__ent_find(v, nto);
	if (t && e->is_dir && !t->is_dir) {
		ret = kiln_err_set(err, -ENOTDIR, "%s: not a directory", nto);
		goto out;
	}
	if (t && !e->is_dir && t->is_dir) {
		ret = kiln_err_set(err, -EISDIR, "%s: is a directory", nto);
		goto out;
	}
	if (t && t->is_dir && !dir_empty(v, nto)) {
		ret = kiln_err_set(err, -ENOTEMPTY, "%s: directory not empty", nto);
		goto out;
	}
	/* Collect e and everything under it; check regions. */
	moved = calloc(v->nentries, sizeof(*moved));
	if (!moved) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *x = v->buckets[b]; x; x = x->hnext)
			if (x == e || (e->is_dir && under(x->path, nfrom)))
				moved[nmoved++] = x;
	for (size_t i = 0; i < nmoved; i++) {
		char np[PF_MAX_PATH];
		size_t rest = strlen(moved[i]->path) - strlen(nfrom);

		if (moved[i]->is_dir)
			continue;
		if (strlen(nto) + rest >= PF_MAX_PATH) {
			ret = kiln_err_set(err, -ENAMETOOLONG, "%s: name too long", nto);
			goto out;
		}
		snprintf(np, sizeof(np), "%s%s", nto, moved[i]->path + strlen(nfrom));
		if (pf__region_of(v, np) != moved[i]->kind) {
			ret = kiln_err_set(err, -EXDEV,
					   "%s: would move %s into another region kind",
					   nto, moved[i]->path);
			goto out;
		}
	}
	if (t) {
		if (t->is_dir) {
			ent_remove(v, t);
			pf__ent_free(t);
		} else {
			drop_file(v, t);
		}
	}
	for (size_t i = 0; i < nmoved; i++) {
		ent_unlink(v, moved[i]);
		ret = set_path(moved[i], nfrom, nto);
		ent_link(v, moved[i]);
		if (ret) /* unreachable after the length check above, but keep state sane */
			goto out;
	}
	e->mtime_ns = pf__now_ns();
	v->ns_dirty = true;
out:
	free(moved);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

int pf_fsync_dir(pf_volume_t *v, struct kiln_err *err)
{
	return pf_volume_flush(v, err);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pf_names_free(char **names, size_t count)
{
	if (!names)
		return;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int pf_readdir(pf_volume_t *v, const char *path, char ***names, size_t *count,
	       struct kiln_err *err)
{
	char norm[PF_MAX_PATH], parent[PF_MAX_PATH];
	char **list = NULL;
	size_t n = 0;
	int ret = pf__path_normalize(path, norm);

	*names = NULL;
	*count = 0;
	if (ret)
		return kiln_err_set(err, ret, "'%s': invalid volume path", path);
	pthread_mutex_lock(&v->lock);
	if (!dir_exists(v, norm)) {
		struct pf_entry *e = pf__ent_find(v, norm);

		ret = kiln_err_set(err, e ? -ENOTDIR : -ENOENT, "%s: %s", norm,
				   e ? "not a directory" : "no such directory");
		goto out;
	}
	list = calloc(v->nentries + 1, sizeof(*list));
	if (!list) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext) {
			const char *base;

			parent_of(e->path, parent);
			if (strcmp(parent, norm) != 0)
				continue;
			base = strrchr(e->path, '/');
			base = base ? base + 1 : e->path;
			list[n] = strdup(base);
			if (!list[n]) {
				ret = -ENOMEM;
				goto out;
			}
			n++;
		}
	qsort(list, n, sizeof(*list), cmp_names);
	*names = list;
	*count = n;
	list = NULL;
out:
	pthread_mutex_unlock(&v->lock);
	pf_names_free(list, n);
	return ret;
}
