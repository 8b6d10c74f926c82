/* Inodes and directory entries: the inode table (by number), the entry table
 * (by directory and name), adding and removing names with their link counts,
 * freeing an inode with its last name and handle, the path of an inode (for
 * messages and regions), and struct pf_stat. */
#include "pf/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t dent_hash(pf_ino_t dir, const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ mix64(dir);

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
	return h;
}

/* ---- inode table ---- */

struct pf_inode *pf__ino_find(pf_volume_t *v, pf_ino_t ino)
{
	struct pf_inode *in = v->ibuckets[mix64(ino) % v->nibuckets];

	while (in && in->ino != ino)
		in = in->hnext;
	return in;
}

int pf__ino_insert(pf_volume_t *v, struct pf_inode *in)
{
	struct pf_inode **b;

	if (v->ninodes + 1 > v->nibuckets) {
		size_t nb = v->nibuckets * 2;
		struct pf_inode **nbk = calloc(nb, sizeof(*nbk));

		if (!nbk)
			return -ENOMEM;
		for (size_t i = 0; i < v->nibuckets; i++) {
			struct pf_inode *x = v->ibuckets[i], *nx;

			for (; x; x = nx) {
				size_t k = mix64(x->ino) % nb;

				nx = x->hnext;
				x->hnext = nbk[k];
				nbk[k] = x;
			}
		}
		free(v->ibuckets);
		v->ibuckets = nbk;
		v->nibuckets = nb;
	}
	b = &v->ibuckets[mix64(in->ino) % v->nibuckets];
	in->hnext = *b;
	*b = in;
	v->ninodes++;
	v->nsymlinks += in->type == PF_TYPE_LNK;
	return 0;
}

static void ino_remove(pf_volume_t *v, struct pf_inode *in)
{
	struct pf_inode **pp = &v->ibuckets[mix64(in->ino) % v->nibuckets];

	while (*pp && *pp != in)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = in->hnext;
		v->ninodes--;
		v->nsymlinks -= in->type == PF_TYPE_LNK;
	}
	in->hnext = NULL;
}

struct pf_inode *pf__inode_alloc(pf_volume_t *v, pf_ino_t ino, enum pf_type type)
{
	struct pf_inode *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->ino = ino;
	in->type = type;
	in->root_fmt = PF_ROOT_FLAT;
	/* A directory's "." counts from the start; its name comes with its entry. */
	in->nlink = type == PF_TYPE_DIR ? 1 : 0;
	in->parent = type == PF_TYPE_DIR ? in : NULL;
	return in;
}

void pf__inode_free(struct pf_inode *in)
{
	if (!in)
		return;
	free(in->target);
	free(in->ents);
	free(in->eseq);
	kiln_wipe(in, sizeof(*in));
	free(in);
}

void pf__inode_release(pf_volume_t *v, struct pf_inode *in)
{
	char name[PF_BNAME_MAX];

	if (in->names || in->node || in == v->root)
		return;
	ino_remove(v, in);
	if (in->type == PF_TYPE_REG) {
		pf__backing_name(in->backing, name);
		/* After a failed record (log_broken) a file it created may be
		 * durable in it anyway: its backing file waits for the checkpoint. */
		pf__schedule_remove(v, name, in->in_meta || v->log_broken, !in->bare);
	}
	pf__inode_free(in);
}

/* ---- entry table ---- */

struct pf_dent *pf__dent_find(pf_volume_t *v, const struct pf_inode *dir, const char *name,
				size_t len)
{
	struct pf_dent *d;

	if (!v->ndbuckets)
		return NULL;
	d = v->dbuckets[dent_hash(dir->ino, name, len) % v->ndbuckets];
	while (d && !(d->dir == dir && d->len == len && memcmp(d->name, name, len) == 0))
		d = d->hnext;
	return d;
}

static int dent_table_grow(pf_volume_t *v)
{
	size_t nb = v->ndbuckets ? v->ndbuckets * 2 : 64;
	struct pf_dent **nbk = calloc(nb, sizeof(*nbk));

	if (!nbk)
		return -ENOMEM;
	for (size_t i = 0; i < v->ndbuckets; i++) {
		struct pf_dent *x = v->dbuckets[i], *nx;

		for (; x; x = nx) {
			size_t k = dent_hash(x->dir->ino, x->name, x->len) % nb;

			nx = x->hnext;
			x->hnext = nbk[k];
			nbk[k] = x;
		}
	}
	free(v->dbuckets);
	v->dbuckets = nbk;
	v->ndbuckets = nb;
	return 0;
}

/* Drop the NULL slots of dir's listing (seq numbers stay). */
static void ents_compact(struct pf_inode *dir)
{
	size_t j = 0;

	for (size_t i = 0; i < dir->nents; i++) {
		if (!dir->ents[i])
			continue;
		dir->ents[j] = dir->ents[i];
		dir->eseq[j] = dir->eseq[i];
		dir->ents[j]->slot = j;
		j++;
	}
	dir->nents = j;
}

int pf__dent_add(pf_volume_t *v, struct pf_inode *dir, const char *name, size_t len,
		 struct pf_inode *in, struct pf_dent **out)
{
	struct pf_dent *d;
	size_t b;

	if (out)
		*out = NULL;
	if (len == 0 || len > PF_NAME_MAX)
		return -ENAMETOOLONG;
	if (v->ndents + 1 > v->ndbuckets && dent_table_grow(v) != 0)
		return -ENOMEM;
	if (dir->nents == dir->ents_cap) {
		size_t cap = dir->ents_cap ? dir->ents_cap * 2 : 8;
		struct pf_dent **ne = realloc(dir->ents, cap * sizeof(*ne));
		uint64_t *ns;

		if (!ne)
			return -ENOMEM;
		dir->ents = ne;
		ns = realloc(dir->eseq, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		dir->eseq = ns;
		dir->ents_cap = cap;
	}
	d = calloc(1, sizeof(*d) + len + 1);
	if (!d)
		return -ENOMEM;
	memcpy(d->name, name, len);
	d->len = (uint8_t)len;
	d->dir = dir;
	d->inode = in;
	d->seq = ++dir->next_seq;
	d->slot = dir->nents;
	dir->eseq[dir->nents] = d->seq;
	dir->ents[dir->nents++] = d;
	dir->nlive++;
	b = dent_hash(dir->ino, name, len) % v->ndbuckets;
	d->hnext = v->dbuckets[b];
	v->dbuckets[b] = d;
	v->ndents++;
	d->nnext = in->names;
	in->names = d;
	in->nlink++;
	if (in->type == PF_TYPE_DIR) {
		in->parent = dir;
		dir->nlink++; /* the subdirectory's ".." */
	}
	if (out)
		*out = d;
	return 0;
}

void pf__dent_del(pf_volume_t *v, struct pf_dent *d)
{
	struct pf_inode *dir = d->dir, *in = d->inode;
	struct pf_dent **pp = &v->dbuckets[dent_hash(dir->ino, d->name, d->len) % v->ndbuckets];

	while (*pp && *pp != d)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = d->hnext;
	v->ndents--;
	dir->ents[d->slot] = NULL;
	dir->nlive--;
	if (dir->nents > 32 && dir->nlive < dir->nents / 2)
		ents_compact(dir);
	else if (d->slot + 1 == dir->nents)
		dir->nents--; /* the newest: no hole left */
	for (pp = &in->names; *pp && *pp != d; pp = &(*pp)->nnext)
		;
	if (*pp)
		*pp = d->nnext;
	in->nlink--;
	if (in->type == PF_TYPE_DIR) {
		dir->nlink--;
		in->parent = in;
	}
	free(d);
}

/* ---- paths and stat ---- */

int pf__inode_path(pf_volume_t *v, const struct pf_inode *in, char *out, size_t size)
{
	size_t pos = size - 1;
	int depth = 0;

	if (size == 0)
		return -ENAMETOOLONG;
	out[pos] = '\0';
	while (in != v->root) {
		const struct pf_dent *d = in->names;

		if (!d || ++depth > PF_MAX_PATH / 2)
			return -ENOENT;
		if ((size_t)d->len + 1 > pos)
			return -ENAMETOOLONG;
		pos -= d->len;
		memcpy(out + pos, d->name, d->len);
		in = d->dir;
		if (in != v->root)
			out[--pos] = '/';
	}
	memmove(out, out + pos, size - pos);
	return 0;
}

const char *pf__node_path(const struct pf_node *n)
{
	pf_volume_t *v = n->vol;

	if (pf__inode_path(v, n->inode, v->pathbuf, sizeof(v->pathbuf)) != 0)
		return "(unlinked file)";
	return v->pathbuf;
}

enum pf_region_kind pf__region_at(pf_volume_t *v, const struct pf_inode *dir, const char *name)
{
	char path[PF_MAX_PATH + PF_NAME_MAX + 2];
	size_t n;

	if (v->regions_len == 0)
		return PF_REGION_ENCRYPTED;
	if (pf__inode_path(v, dir, path, PF_MAX_PATH) != 0)
		return PF_REGION_ENCRYPTED;
	n = strlen(path);
	if (name && name[0])
		snprintf(path + n, sizeof(path) - n, "%s%s", n ? "/" : "", name);
	return pf__region_of(v, path);
}

void pf__fill_stat(pf_volume_t *v, const struct pf_inode *in, struct pf_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->ino = in->ino;
	st->type = in->type;
	st->is_dir = in->type == PF_TYPE_DIR;
	st->mode = in->mode;
	st->nlink = in->nlink;
	st->uid = in->uid;
	st->gid = in->gid;
	st->atime_ns = in->atime_ns;
	st->mtime_ns = in->mtime_ns;
	st->ctime_ns = in->ctime_ns;
	st->blksize = v->cs;
	switch (in->type) {
	case PF_TYPE_REG:
		st->size = in->node ? in->node->size : in->size;
		st->kind = (enum pf_region_kind)in->kind;
		st->blocks = pf__node_blocks(v, in);
		break;
	case PF_TYPE_LNK:
		st->size = strlen(in->target);
		st->kind = pf__region_at(v, in->names ? in->names->dir : v->root,
					 in->names ? in->names->name : "");
		break;
	default:
		st->kind = in->names ? pf__region_at(v, in->names->dir, in->names->name) :
				       pf__region_at(v, in, NULL);
		break;
	}
}

mode_t pf_type_mode(enum pf_type t)
{
	switch (t) {
	case PF_TYPE_DIR:
		return S_IFDIR;
	case PF_TYPE_LNK:
		return S_IFLNK;
	case PF_TYPE_FIFO:
		return S_IFIFO;
	case PF_TYPE_SOCK:
		return S_IFSOCK;
	default:
		return S_IFREG;
	}
}

void pf__touch_atime(struct pf_inode *in)
{
	int64_t now = pf__now_ns();

	/* relatime: only when the last access is not after the last change, or a
	 * day old (Linux's default mount option). */
	if (in->atime_ns <= in->mtime_ns || in->atime_ns <= in->ctime_ns ||
	    now - in->atime_ns >= 86400ll * 1000000000)
		in->atime_ns = now;
}

void pf__touch(struct pf_inode *in, unsigned what)
{
	int64_t now = pf__now_ns();

	if (what & PF_TOUCH_A)
		in->atime_ns = now;
	if (what & PF_TOUCH_M)
		in->mtime_ns = now;
	if (what & PF_TOUCH_C)
		in->ctime_ns = now;
}
