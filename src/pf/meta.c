/* The metadata body: encoding the namespace (format 2, an inode table), and
 * parsing formats 1 (a path list, converted) and 2 with the checks that make
 * it one tree. Layout byte by byte: docs/fs.md "Metadata". */
#include "pf/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- growing buffer ---- */

void pf__buf_put(struct pf_buf *b, const void *data, size_t size)
{
	if (b->err)
		return;
	if (size > SIZE_MAX - b->len) {
		b->err = -ENOMEM;
		return;
	}
	if (b->len + size > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *np;

		while (cap < b->len + size)
			cap *= 2;
		np = malloc(cap);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		if (b->p) {
			memcpy(np, b->p, b->len);
			kiln_free_secret(b->p, b->cap);
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, size);
	b->len += size;
}

void pf__buf_u8(struct pf_buf *b, uint32_t v)
{
	uint8_t x = (uint8_t)v;

	pf__buf_put(b, &x, 1);
}

void pf__buf_u16(struct pf_buf *b, uint32_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	pf__buf_put(b, x, 2);
}

void pf__buf_u32(struct pf_buf *b, uint32_t v)
{
	uint8_t x[4];

	pf__put_u32(x, v);
	pf__buf_put(b, x, 4);
}

void pf__buf_u64(struct pf_buf *b, uint64_t v)
{
	uint8_t x[8];

	pf__put_u64(x, v);
	pf__buf_put(b, x, 8);
}

void pf__buf_free(struct pf_buf *b)
{
	if (b->p)
		kiln_free_secret(b->p, b->cap);
	memset(b, 0, sizeof(*b));
}

/* ---- encoding (format 2) ---- */

bool pf__inode_persisted(const pf_volume_t *v, const struct pf_inode *in)
{
	if (in != v->root && !in->names)
		return false; /* unlinked, kept only for its open handles */
	return in->type != PF_TYPE_REG || in->in_meta;
}

void pf__encode_inode(const pf_volume_t *v, struct pf_buf *b, const struct pf_inode *in)
{
	pf__buf_u64(b, in->ino);
	pf__buf_u8(b, in->type);
	pf__buf_u32(b, in->mode);
	pf__buf_u32(b, in->uid);
	pf__buf_u32(b, in->gid);
	pf__buf_u64(b, (uint64_t)in->atime_ns);
	pf__buf_u64(b, (uint64_t)in->mtime_ns);
	pf__buf_u64(b, (uint64_t)in->ctime_ns);
	switch (in->type) {
	case PF_TYPE_REG:
		pf__buf_u32(b, in->kind);
		pf__buf_u8(b, in->root_fmt);
		pf__buf_u64(b, in->size);
		pf__buf_put(b, in->key, PF_KEY_SIZE);
		pf__buf_put(b, in->file_id, PF_FILE_ID_SIZE);
		pf__buf_put(b, in->root, PF_ROOT_SIZE);
		pf__buf_put(b, in->backing, PF_BACKING_ID_SIZE);
		break;
	case PF_TYPE_LNK:
		pf__buf_u16(b, (uint32_t)strlen(in->target));
		pf__buf_put(b, in->target, strlen(in->target));
		break;
	case PF_TYPE_DIR: {
		uint32_t n = 0;

		for (size_t i = 0; i < in->nents; i++)
			n += in->ents[i] && pf__inode_persisted(v, in->ents[i]->inode);
		pf__buf_u32(b, n);
		for (size_t i = 0; i < in->nents; i++) {
			const struct pf_dent *d = in->ents[i];

			if (!d || !pf__inode_persisted(v, d->inode))
				continue;
			pf__buf_u8(b, d->len);
			pf__buf_put(b, d->name, d->len);
			pf__buf_u64(b, d->inode->ino);
		}
		break;
	}
	default:
		break;
	}
}

int pf__meta_encode(const pf_volume_t *v, struct pf_buf *b)
{
	uint64_t n = 0;

	pf__buf_u32(b, v->cs);
	pf__buf_u32(b, (uint32_t)v->regions_len);
	for (size_t i = 0; i < v->regions_len; i++) {
		pf__buf_u32(b, v->regions[i].kind);
		pf__buf_u16(b, (uint32_t)strlen(v->regions[i].prefix));
		pf__buf_put(b, v->regions[i].prefix, strlen(v->regions[i].prefix));
	}
	pf__buf_u64(b, v->next_ino);
	for (size_t i = 0; i < v->nibuckets; i++)
		for (const struct pf_inode *in = v->ibuckets[i]; in; in = in->hnext)
			n += pf__inode_persisted(v, in);
	pf__buf_u64(b, n);
	for (size_t i = 0; i < v->nibuckets; i++)
		for (const struct pf_inode *in = v->ibuckets[i]; in; in = in->hnext)
			if (pf__inode_persisted(v, in))
				pf__encode_inode(v, b, in);
	return b->err;
}

/* ---- parsing ---- */

struct rd {
	const uint8_t *p;
	size_t left;
};

/* The next size bytes, consumed; NULL when fewer are left. Every reader
 * below goes through here, so the bounds check is in one place. */
static const uint8_t *rd_take(struct rd *r, size_t size)
{
	const uint8_t *p = r->p;

	if (r->left < size)
		return NULL;
	r->p += size;
	r->left -= size;
	return p;
}

/* The next size (at most 8) bytes as a little-endian number. */
static int rd_le(struct rd *r, size_t size, uint64_t *v)
{
	const uint8_t *p = rd_take(r, size);

	*v = 0;
	if (!p)
		return -KILN_ETRUNC;
	for (size_t i = size; i-- > 0;)
		*v = *v << 8 | p[i];
	return 0;
}

static int rd_le32(struct rd *r, size_t size, uint32_t *v)
{
	uint64_t u;
	int ret = rd_le(r, size, &u);

	*v = (uint32_t)u;
	return ret;
}

static int rd_u8(struct rd *r, uint32_t *v) { return rd_le32(r, 1, v); }
static int rd_u16(struct rd *r, uint32_t *v) { return rd_le32(r, 2, v); }
static int rd_u32(struct rd *r, uint32_t *v) { return rd_le32(r, 4, v); }
static int rd_u64(struct rd *r, uint64_t *v) { return rd_le(r, 8, v); }

static int rd_i64(struct rd *r, int64_t *v)
{
	uint64_t u = 0;
	int ret = rd_u64(r, &u);

	*v = (int64_t)u;
	return ret;
}

static int rd_bytes(struct rd *r, void *out, size_t size)
{
	const uint8_t *p = rd_take(r, size);

	if (!p)
		return -KILN_ETRUNC;
	memcpy(out, p, size);
	return 0;
}

/* len bytes as a malloc'd string; no NUL inside. */
static int rd_str(struct rd *r, uint32_t len, char **out)
{
	const uint8_t *p;

	*out = NULL;
	if (r->left >= len && memchr(r->p, '\0', len))
		return -KILN_EFORMAT;
	if (!(p = rd_take(r, len)))
		return -KILN_ETRUNC;
	*out = malloc((size_t)len + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, p, len);
	(*out)[len] = '\0';
	return 0;
}

/* A length-prefixed normalized path (format 1 entries, region prefixes). */
static int rd_path(struct rd *r, char **out, bool allow_empty)
{
	char tmp[PF_MAX_PATH];
	uint32_t len;
	int ret = rd_u16(r, &len);

	*out = NULL;
	if (ret)
		return ret;
	if (len >= PF_MAX_PATH)
		return -KILN_EFORMAT;
	if ((ret = rd_str(r, len, out)))
		return ret;
	if ((!allow_empty && len == 0) || pf__path_normalize(*out, tmp) != 0 ||
	    strcmp(tmp, *out) != 0)
		return -KILN_EFORMAT;
	return 0;
}

bool pf__name_ok(const char *name, size_t len)
{
	if (len == 0 || len > PF_NAME_MAX || memchr(name, '/', len) || memchr(name, '\0', len))
		return false;
	return !(name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')));
}

void pf__meta_clear(struct pf_meta *m)
{
	for (size_t i = 0; i < m->regions_len; i++)
		free(m->regions[i].prefix);
	for (size_t i = 0; i < m->ninodes; i++) {
		struct pf_meta_inode *x = &m->inodes[i];

		free(x->target);
		for (size_t j = 0; j < x->nents; j++)
			free(x->ents[j].name);
		free(x->ents);
		kiln_wipe(x->key, PF_KEY_SIZE);
	}
	free(m->regions);
	free(m->inodes);
	memset(m, 0, sizeof(*m));
}

static int parse_regions(struct rd *r, struct pf_meta *m)
{
	uint32_t n;
	int ret;

	if ((ret = rd_u32(r, &m->chunk_size)))
		return ret;
	if (!pf__chunk_size_ok(m->chunk_size))
		return -KILN_EFORMAT;
	if ((ret = rd_u32(r, &n)))
		return ret;
	if (n > PF_MAX_REGIONS)
		return -KILN_EFORMAT;
	m->regions = calloc(n ? n : 1, sizeof(*m->regions));
	if (!m->regions)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct pf_meta_region *g = &m->regions[i];

		m->regions_len++;
		if ((ret = rd_u32(r, &g->kind)) || (ret = rd_path(r, &g->prefix, true)))
			return ret;
		if (!pf__kind_ok(g->kind))
			return -KILN_EFORMAT;
	}
	return 0;
}

static int cmp_ino(const void *a, const void *b)
{
	uint64_t x = (*(struct pf_meta_inode *const *)a)->ino;
	uint64_t y = (*(struct pf_meta_inode *const *)b)->ino;

	return x < y ? -1 : x > y;
}

static struct pf_meta_inode *by_ino(struct pf_meta_inode **sorted, size_t n, uint64_t ino)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sorted[mid]->ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && sorted[lo]->ino == ino ? sorted[lo] : NULL;
}

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const struct pf_meta_dirent *)a)->name,
		      ((const struct pf_meta_dirent *)b)->name);
}

/* The checks of pf__meta_parse (one tree). */
static int check_tree(struct pf_meta *m, struct kiln_err *err)
{
	size_t n = m->ninodes, nvisit = 0, qn = 0;
	struct pf_meta_inode **sorted = calloc(n ? n : 1, sizeof(*sorted));
	struct pf_meta_inode **queue = calloc(n ? n : 1, sizeof(*queue));
	uint32_t *refs = calloc(n ? n : 1, sizeof(*refs));
	bool *seen = calloc(n ? n : 1, sizeof(*seen));
	struct pf_meta_inode *root;
	int ret = -ENOMEM;

	if (!sorted || !queue || !refs || !seen)
		goto out;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &m->inodes[i];
	qsort(sorted, n, sizeof(*sorted), cmp_ino);
	ret = -KILN_EFORMAT;
	for (size_t i = 0; i < n; i++) {
		if (sorted[i]->ino == 0 || sorted[i]->ino >= m->next_ino) {
			kiln_err_set(err, ret, "metadata: inode %llu out of range",
				     (unsigned long long)sorted[i]->ino);
			goto out;
		}
		if (i && sorted[i]->ino == sorted[i - 1]->ino) {
			kiln_err_set(err, ret, "metadata: inode %llu appears twice",
				     (unsigned long long)sorted[i]->ino);
			goto out;
		}
	}
	root = by_ino(sorted, n, 1);
	if (!root || root->type != PF_TYPE_DIR) {
		kiln_err_set(err, ret, "metadata: no root directory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct pf_meta_inode *x = sorted[i];

		if (x->type != PF_TYPE_DIR)
			continue;
		if (x->nents > 1) /* ents is NULL for an empty directory */
			qsort(x->ents, x->nents, sizeof(*x->ents), cmp_dent);
		for (size_t j = 0; j < x->nents; j++) {
			struct pf_meta_inode *t = by_ino(sorted, n, x->ents[j].ino);

			if (j && strcmp(x->ents[j].name, x->ents[j - 1].name) == 0) {
				kiln_err_set(err, ret, "metadata: directory %llu names '%s' twice",
					     (unsigned long long)x->ino, x->ents[j].name);
				goto out;
			}
			if (!t) {
				kiln_err_set(err, ret, "metadata: '%s' names missing inode %llu",
					     x->ents[j].name, (unsigned long long)x->ents[j].ino);
				goto out;
			}
			refs[t - m->inodes]++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct pf_meta_inode *x = &m->inodes[i];

		if ((x == root && refs[i]) || (x != root && !refs[i]) ||
		    (x->type == PF_TYPE_DIR && refs[i] > 1) || refs[i] > PF_MAX_LINKS) {
			kiln_err_set(err, ret, "metadata: inode %llu is named %u times",
				     (unsigned long long)x->ino, refs[i]);
			goto out;
		}
	}
	/* Every directory has one parent and the root none: a cycle would be a
	 * part the root does not reach. */
	queue[qn++] = root;
	seen[root - m->inodes] = true;
	nvisit = 1;
	while (qn) {
		struct pf_meta_inode *x = queue[--qn];

		for (size_t j = 0; j < x->nents; j++) {
			struct pf_meta_inode *t = by_ino(sorted, n, x->ents[j].ino);

			if (seen[t - m->inodes])
				continue;
			seen[t - m->inodes] = true;
			nvisit++;
			if (t->type == PF_TYPE_DIR)
				queue[qn++] = t;
		}
	}
	if (nvisit != n) {
		kiln_err_set(err, ret, "metadata: %zu inode(s) not reachable from the root",
			     n - nvisit);
		goto out;
	}
	ret = 0;
out:
	free(sorted);
	free(queue);
	free(refs);
	free(seen);
	return ret;
}

static int parse_v2(struct rd *r, struct pf_meta *m, const char **what)
{
	uint64_t n;
	int ret;

	*what = "inode table";
	if ((ret = rd_u64(r, &m->next_ino)) || (ret = rd_u64(r, &n)))
		return ret;
	/* Each record takes at least 45 bytes: bound the allocation by the input. */
	if (n > r->left / 45)
		return -KILN_ETRUNC;
	m->inodes = calloc(n ? n : 1, sizeof(*m->inodes));
	if (!m->inodes)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		struct pf_meta_inode *x = &m->inodes[i];
		uint32_t len, ne;

		m->ninodes++;
		*what = "inode";
		if ((ret = rd_u64(r, &x->ino)) || (ret = rd_u8(r, &x->type)) ||
		    (ret = rd_u32(r, &x->mode)) || (ret = rd_u32(r, &x->uid)) ||
		    (ret = rd_u32(r, &x->gid)) || (ret = rd_i64(r, &x->atime_ns)) ||
		    (ret = rd_i64(r, &x->mtime_ns)) || (ret = rd_i64(r, &x->ctime_ns)))
			return ret;
		if (x->mode > 07777)
			return -KILN_EFORMAT;
		switch (x->type) {
		case PF_TYPE_REG:
			*what = "file inode";
			if ((ret = rd_u32(r, &x->kind)) || (ret = rd_u8(r, &x->root_fmt)) ||
			    (ret = rd_u64(r, &x->size)) ||
			    (ret = rd_bytes(r, x->key, PF_KEY_SIZE)) ||
			    (ret = rd_bytes(r, x->file_id, PF_FILE_ID_SIZE)) ||
			    (ret = rd_bytes(r, x->root, PF_ROOT_SIZE)) ||
			    (ret = rd_bytes(r, x->backing, PF_BACKING_ID_SIZE)))
				return ret;
			if (!pf__kind_ok(x->kind) || x->size > PF_MAX_FILE_SIZE ||
			    (x->root_fmt != PF_ROOT_FLAT && x->root_fmt != PF_ROOT_TREE))
				return -KILN_EFORMAT;
			break;
		case PF_TYPE_LNK:
			*what = "symlink inode";
			if ((ret = rd_u16(r, &len)) || (ret = rd_str(r, len, &x->target)))
				return ret;
			if (len == 0 || len >= PF_MAX_PATH)
				return -KILN_EFORMAT;
			break;
		case PF_TYPE_DIR:
			*what = "directory inode";
			if ((ret = rd_u32(r, &ne)))
				return ret;
			if (ne > r->left / 10) /* u8 len, a name of at least 1, u64 ino */
				return -KILN_ETRUNC;
			x->ents = calloc(ne ? ne : 1, sizeof(*x->ents));
			if (!x->ents)
				return -ENOMEM;
			for (uint32_t j = 0; j < ne; j++) {
				struct pf_meta_dirent *d = &x->ents[j];

				x->nents++;
				if ((ret = rd_u8(r, &len)) || (ret = rd_str(r, len, &d->name)) ||
				    (ret = rd_u64(r, &d->ino)))
					return ret;
				if (!pf__name_ok(d->name, len))
					return -KILN_EFORMAT;
			}
			break;
		case PF_TYPE_FIFO:
		case PF_TYPE_SOCK:
			break;
		default:
			return -KILN_EFORMAT;
		}
	}
	return 0;
}

/* Format 1: directories and files by path, converted to an inode table. */
struct v1_entry {
	char *path;
	struct pf_meta_inode *inode;
};

static int cmp_v1(const void *a, const void *b)
{
	return strcmp(((const struct v1_entry *)a)->path, ((const struct v1_entry *)b)->path);
}

static struct v1_entry *v1_find(struct v1_entry *e, size_t n, const char *path)
{
	struct v1_entry key = { (char *)path, NULL };

	return bsearch(&key, e, n, sizeof(*e), cmp_v1);
}

/* The path of the next format-1 record, as a new inode of type; e[*n] owns
 * the path from here, also on failure. */
static int v1_next(struct rd *r, struct pf_meta *m, struct v1_entry *e, size_t *n,
		   uint32_t type, struct pf_meta_inode **out)
{
	struct pf_meta_inode *x = &m->inodes[m->ninodes];
	int ret = rd_path(r, &e[*n].path, false);

	e[(*n)++].inode = x;
	if (ret)
		return ret;
	x->ino = ++m->ninodes;
	x->type = type;
	*out = x;
	return 0;
}

static int parse_v1(struct rd *r, struct pf_meta *m, const char **what, struct kiln_err *err)
{
	struct v1_entry *e = NULL;
	uint32_t ndirs, nfiles;
	size_t n = 0;
	int ret;

	*what = "directories";
	if ((ret = rd_u32(r, &ndirs)))
		return ret;
	/* Each directory record takes at least 15 bytes, each file 123. */
	if (ndirs > r->left / 15)
		return -KILN_ETRUNC;
	m->inodes = calloc((size_t)ndirs + 1 + r->left / 123, sizeof(*m->inodes));
	e = calloc((size_t)ndirs + 1 + r->left / 123, sizeof(*e));
	if (!m->inodes || !e) {
		ret = -ENOMEM;
		goto out;
	}
	m->inodes[0].ino = 1;
	m->inodes[0].type = PF_TYPE_DIR;
	m->inodes[0].mode = 0755;
	m->ninodes = 1;
	for (uint32_t i = 0; i < ndirs; i++) {
		struct pf_meta_inode *x;

		if ((ret = v1_next(r, m, e, &n, PF_TYPE_DIR, &x)) || (ret = rd_u32(r, &x->mode)) ||
		    (ret = rd_i64(r, &x->mtime_ns)))
			goto out;
	}
	*what = "files";
	if ((ret = rd_u32(r, &nfiles)))
		goto out;
	if (nfiles > r->left / 123) {
		ret = -KILN_ETRUNC;
		goto out;
	}
	for (uint32_t i = 0; i < nfiles; i++) {
		struct pf_meta_inode *x;

		if ((ret = v1_next(r, m, e, &n, PF_TYPE_REG, &x)))
			goto out;
		x->root_fmt = PF_ROOT_FLAT;
		if ((ret = rd_u32(r, &x->kind)) || (ret = rd_u32(r, &x->mode)) ||
		    (ret = rd_i64(r, &x->mtime_ns)) || (ret = rd_u64(r, &x->size)) ||
		    (ret = rd_bytes(r, x->key, PF_KEY_SIZE)) ||
		    (ret = rd_bytes(r, x->file_id, PF_FILE_ID_SIZE)) ||
		    (ret = rd_bytes(r, x->root, PF_ROOT_SIZE)) ||
		    (ret = rd_bytes(r, x->backing, PF_BACKING_ID_SIZE)))
			goto out;
		if (!pf__kind_ok(x->kind) || x->size > PF_MAX_FILE_SIZE) {
			ret = -KILN_EFORMAT;
			goto out;
		}
	}
	*what = "end";
	if (r->left) {
		ret = -KILN_ETRAILING;
		goto out;
	}
	m->next_ino = m->ninodes + 1;
	for (size_t i = 0; i < m->ninodes; i++) {
		struct pf_meta_inode *x = &m->inodes[i];

		x->mode &= 07777;
		x->atime_ns = x->ctime_ns = x->mtime_ns;
		/* The root had no record: its times are its newest entry's. */
		if (x->mtime_ns > m->inodes[0].mtime_ns && i)
			m->inodes[0].mtime_ns = x->mtime_ns;
	}
	m->inodes[0].atime_ns = m->inodes[0].ctime_ns = m->inodes[0].mtime_ns;
	/* Name each entry in its parent directory. */
	if (n > 1)
		qsort(e, n, sizeof(*e), cmp_v1);
	for (size_t i = 0; i < n; i++) {
		char parent[PF_MAX_PATH];
		const char *slash = strrchr(e[i].path, '/');
		struct pf_meta_inode *dir = &m->inodes[0];
		struct pf_meta_dirent *d;

		if (i && strcmp(e[i].path, e[i - 1].path) == 0) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "metadata: duplicate path '%s'",
					   e[i].path);
			goto out;
		}
		if (slash) {
			struct v1_entry *p;

			memcpy(parent, e[i].path, (size_t)(slash - e[i].path));
			parent[slash - e[i].path] = '\0';
			p = v1_find(e, n, parent);
			if (!p || p->inode->type != PF_TYPE_DIR) {
				ret = kiln_err_set(err, -KILN_EFORMAT, "metadata: '%s' has no "
						   "parent directory", e[i].path);
				goto out;
			}
			dir = p->inode;
		}
		d = realloc(dir->ents, (dir->nents + 1) * sizeof(*d));
		if (!d) {
			ret = -ENOMEM;
			goto out;
		}
		dir->ents = d;
		d = &dir->ents[dir->nents];
		d->name = strdup(slash ? slash + 1 : e[i].path);
		if (!d->name) {
			ret = -ENOMEM;
			goto out;
		}
		d->ino = e[i].inode->ino;
		dir->nents++;
	}
	ret = 0;
out:
	for (size_t i = 0; e && i < n; i++)
		free(e[i].path);
	free(e);
	return ret;
}

int pf__meta_parse(const uint8_t *body, size_t size, uint32_t format, struct pf_meta *m,
		   struct kiln_err *err)
{
	struct rd r = { body, size };
	const char *what = "header";
	int ret;

	memset(m, 0, sizeof(*m));
	m->format = format;
	if (format != 1 && format != 2) {
		ret = -KILN_EFORMAT;
		goto out;
	}
	ret = parse_regions(&r, m);
	if (!ret)
		what = "regions";
	if (!ret && format == 1)
		ret = parse_v1(&r, m, &what, err);
	else if (!ret)
		ret = parse_v2(&r, m, &what);
	if (!ret && r.left) {
		what = "end";
		ret = -KILN_ETRAILING;
	}
	if (!ret)
		ret = check_tree(m, err);
out:
	if (ret) {
		if (!err || !err->code)
			kiln_err_set(err, ret, "metadata: malformed %s section (%s)", what,
				     kiln_strerror(ret));
		pf__meta_clear(m);
	}
	return ret;
}
