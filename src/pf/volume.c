/* Volumes: init, open (metadata, published namespace, freshness check,
 * orphan collection), flush/close, rekey, verify. */
#include "pf/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"

static int vol_alloc(const struct pf_volume_opts *opts, pf_volume_t **out)
{
	pf_volume_t *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	v->nibuckets = 64;
	v->ibuckets = calloc(v->nibuckets, sizeof(*v->ibuckets));
	if (!v->ibuckets) {
		free(v);
		return -ENOMEM;
	}
	v->log_data_max = PF_LOG_DATA_MAX;
	v->euid = geteuid();
	v->egid = getegid();
	if (opts) {
		v->so = opts->storage;
		v->sctx = opts->storage_ctx;
		v->fo = opts->freshness;
		v->fctx = opts->freshness_ctx;
		v->read_only = opts->read_only;
		v->seal_thread = opts->seal_thread;
		if (opts->log_data_max > 0 && opts->log_data_max < (int32_t)PF_LOG_DATA_MAX)
			v->log_data_max = (uint32_t)opts->log_data_max;
		else if (opts->log_data_max < 0)
			v->log_data_max = 0;
	}
	*out = v;
	return 0;
}

static int vol_set_chunk_size(pf_volume_t *v, uint32_t cs)
{
	/* Set once per volume (pf__log_vouch may need it before the metadata
	 * in use is chosen: meta.pub has the same). */
	if (v->iobuf)
		return v->cs == cs ? 0 : -KILN_EFORMAT;
	v->cs = cs;
	v->stride = (uint64_t)cs + PF_SLOT_META;
	v->batch = PF_IO_BATCH_BYTES / v->stride;
	if (v->batch < 1)
		v->batch = 1;
	v->wb_cap = PF_WB_BYTES / v->stride;
	if (v->wb_cap < 1)
		v->wb_cap = 1;
	v->iobuf = malloc(v->batch * v->stride);
	v->slot = malloc(v->stride);
	v->pt = malloc(cs);
	v->aad = malloc(32 + (size_t)cs);
	v->jbuf = malloc(12 + v->stride + 8);
	v->nonces = malloc(v->batch * PF_NONCE_SIZE);
	v->zeros = calloc(2, cs);
	if (!v->iobuf || !v->slot || !v->pt || !v->aad || !v->jbuf || !v->nonces || !v->zeros)
		return -ENOMEM;
	return 0;
}

static void vol_free(pf_volume_t *v)
{
	if (!v)
		return;
	pf__sealer_stop(v);
	while (v->files) {
		struct pf_file *f = v->files;

		v->files = f->next;
		free(f);
	}
	while (v->nodes)
		pf__node_free(v->nodes);
	for (size_t b = 0; b < v->ndbuckets; b++) {
		struct pf_dent *d = v->dbuckets[b], *nd;

		for (; d; d = nd) {
			nd = d->hnext;
			free(d);
		}
	}
	for (size_t b = 0; b < v->nibuckets; b++) {
		struct pf_inode *in = v->ibuckets[b], *ni;

		for (; in; in = ni) {
			ni = in->hnext;
			pf__inode_free(in);
		}
	}
	while (v->pending) {
		struct pf_pending *p = v->pending;

		v->pending = p->next;
		free(p);
	}
	for (size_t i = 0; i < v->regions_len; i++)
		free(v->regions[i].prefix);
	free(v->regions);
	free(v->ibuckets);
	free(v->dbuckets);
	/* The I/O buffers only ever hold what the backing files hold (sealed
	 * slots; a plain region's bytes): freed without a wipe, which faulted in
	 * the untouched pages of a volume that did little (its close). */
	free(v->iobuf);
	free(v->iobuf2);
	free(v->rbuf);
	if (v->slot)
		kiln_free_secret(v->slot, v->stride);
	if (v->pt)
		kiln_free_secret(v->pt, v->cs);
	if (v->aad)
		kiln_free_secret(v->aad, 32 + (size_t)v->cs);
	if (v->jbuf)
		kiln_free_secret(v->jbuf, 12 + v->stride + 8);
	free(v->nonces);
	free(v->zeros);
	if (v->log_fh)
		v->so->close(v->sctx, v->log_fh);
	if (v->nsops)
		kiln_free_secret(v->nsops, v->nsops_cap * sizeof(*v->nsops));
	if (v->so && v->so->free)
		v->so->free(v->sctx);
	if (v->fo && v->fo->free)
		v->fo->free(v->fctx);
	pthread_mutex_destroy(&v->lock);
	kiln_wipe(v, sizeof(*v));
	free(v);
}

static int vol_storage(pf_volume_t *v, const char *dir, bool create, struct kiln_err *err)
{
	char path[PF_MAX_PATH + 16];

	if (v->so)
		return 0;
	if (snprintf(path, sizeof(path), "%s/.kiln", dir) >= (int)sizeof(path))
		return kiln_err_set(err, -ENAMETOOLONG, "%s: path too long", dir);
	return pf_storage_posix(path, create, &v->so, &v->sctx, err);
}

static int vol_keys(pf_volume_t *v, const uint8_t key[static PF_KEY_SIZE])
{
	memcpy(v->key, key, PF_KEY_SIZE);
	return pf__meta_keys_derive(key, &v->mk);
}

int pf_volume_init(const char *dir, const uint8_t key[static PF_KEY_SIZE],
		   const struct pf_volume_opts *opts, pf_volume_t **vol, struct kiln_err *err)
{
	uint32_t cs = opts && opts->chunk_size ? opts->chunk_size : PF_DEFAULT_CHUNK_SIZE;
	pf_volume_t *v;
	void *fh = NULL;
	int ret;

	*vol = NULL;
	ret = vol_alloc(opts, &v);
	if (ret) {
		if (opts && opts->storage && opts->storage->free)
			opts->storage->free(opts->storage_ctx);
		if (opts && opts->freshness && opts->freshness->free)
			opts->freshness->free(opts->freshness_ctx);
		return ret;
	}
	v->read_only = false;
	if (cs < PF_MIN_CHUNK_SIZE || cs > PF_MAX_CHUNK_SIZE || cs % 16) {
		ret = kiln_err_set(err, -EINVAL, "chunk size %u: must be a multiple of 16 in "
				   "[%u, %u]", cs, PF_MIN_CHUNK_SIZE, PF_MAX_CHUNK_SIZE);
		goto out;
	}
	if ((ret = vol_storage(v, dir, true, err)))
		goto out;
	if ((ret = vol_set_chunk_size(v, cs)) || (ret = vol_keys(v, key)))
		goto out;
	ret = v->so->open(v->sctx, "meta", PF_SO_RDONLY, &fh);
	if (ret == 0) {
		v->so->close(v->sctx, fh);
		ret = kiln_err_set(err, -EEXIST, "%s: already holds a kiln volume", dir);
		goto out;
	}
	if (ret == -KILN_EUNSAFE) {
		kiln_err_set(err, ret, "%s: metadata (.kiln/meta): %s", dir, kiln_strerror(ret));
		goto out;
	}
	if (opts && opts->regions_len > PF_MAX_REGIONS) {
		ret = kiln_err_set(err, -EINVAL, "too many regions (max %d)", PF_MAX_REGIONS);
		goto out;
	}
	if (opts && opts->regions_len) {
		v->regions = calloc(opts->regions_len, sizeof(*v->regions));
		if (!v->regions) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < opts->regions_len; i++) {
			char norm[PF_MAX_PATH];
			enum pf_region_kind k = opts->regions[i].kind;

			if (pf__path_normalize(opts->regions[i].prefix, norm) != 0 ||
			    (k != PF_REGION_ENCRYPTED && k != PF_REGION_AUTHENTICATED &&
			     k != PF_REGION_PLAIN)) {
				ret = kiln_err_set(err, -EINVAL, "region '%s': invalid",
						   opts->regions[i].prefix);
				goto out;
			}
			v->regions[i].kind = k;
			v->regions[i].prefix = strdup(norm);
			v->regions_len++;
			if (!v->regions[i].prefix) {
				ret = -ENOMEM;
				goto out;
			}
		}
	}
	v->root = pf__inode_alloc(v, PF_ROOT_INO, PF_TYPE_DIR);
	if (!v->root || (ret = pf__ino_insert(v, v->root))) {
		pf__inode_free(v->root);
		v->root = NULL;
		ret = -ENOMEM;
		goto out;
	}
	v->root->mode = 0755;
	v->root->uid = v->euid;
	v->root->gid = v->egid;
	pf__touch(v->root, PF_TOUCH_A | PF_TOUCH_M | PF_TOUCH_C);
	v->root->nlink = 2;
	v->next_ino = PF_ROOT_INO + 1;
	ret = pf__write_meta(v, true, err);
	if (ret)
		goto out;
	*vol = v;
	v = NULL;
out:
	vol_free(v);
	return ret;
}

/* Build the inode tables from a parsed (and checked) metadata body. */
static int load_inodes(pf_volume_t *v, struct pf_meta *m, struct kiln_err *err)
{
	int ret;

	v->regions = m->regions;
	v->regions_len = m->regions_len;
	m->regions = NULL;
	m->regions_len = 0;
	v->next_ino = m->next_ino;
	for (size_t i = 0; i < m->ninodes; i++) {
		struct pf_meta_inode *x = &m->inodes[i];
		struct pf_inode *in = pf__inode_alloc(v, x->ino, (enum pf_type)x->type);

		if (!in)
			return -ENOMEM;
		in->mode = x->mode;
		/* Format 1 kept no owners: the volume's user owns everything. */
		in->uid = m->format == 1 ? v->euid : x->uid;
		in->gid = m->format == 1 ? v->egid : x->gid;
		in->atime_ns = x->atime_ns;
		in->mtime_ns = x->mtime_ns;
		in->ctime_ns = x->ctime_ns;
		if (in->type == PF_TYPE_REG) {
			in->kind = x->kind;
			in->root_fmt = x->root_fmt;
			in->size = x->size;
			memcpy(in->key, x->key, PF_KEY_SIZE);
			memcpy(in->file_id, x->file_id, PF_FILE_ID_SIZE);
			memcpy(in->root, x->root, PF_ROOT_SIZE);
			memcpy(in->backing, x->backing, PF_BACKING_ID_SIZE);
			in->in_meta = true;
		} else if (in->type == PF_TYPE_LNK) {
			in->target = x->target;
			x->target = NULL;
		}
		if ((ret = pf__ino_insert(v, in))) {
			pf__inode_free(in);
			return ret;
		}
	}
	v->root = pf__ino_find(v, PF_ROOT_INO);
	v->root->nlink = 2;
	for (size_t i = 0; i < m->ninodes; i++) {
		struct pf_meta_inode *x = &m->inodes[i];
		struct pf_inode *dir;

		if (x->type != PF_TYPE_DIR)
			continue;
		dir = pf__ino_find(v, x->ino);
		for (size_t j = 0; j < x->nents; j++) {
			struct pf_inode *in = pf__ino_find(v, x->ents[j].ino);

			ret = pf__dent_add(v, dir, x->ents[j].name, strlen(x->ents[j].name), in,
					   NULL);
			if (ret)
				return kiln_err_set(err, ret, "metadata: %s", kiln_strerror(ret));
		}
	}
	return 0;
}

struct gc_ctx {
	pf_volume_t *v;
	uint8_t (*used)[PF_BACKING_ID_SIZE]; /* sorted backing ids in use */
	size_t nused;
	char **names;
	size_t len, cap;
};

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, PF_BACKING_ID_SIZE);
}

static int gc_collect(void *arg, const char *name)
{
	struct gc_ctx *g = arg;
	size_t n = strlen(name);
	uint8_t id[PF_BACKING_ID_SIZE];
	char hex[2 * PF_BACKING_ID_SIZE + 1];
	bool used;

	if (strcmp(name, "meta.tmp") == 0)
		goto collect;
	if (n != 32 && !(n == 34 && (strcmp(name + 32, ".j") == 0 ||
				      strcmp(name + 32, ".k") == 0 ||
				      strcmp(name + 32, ".t") == 0 ||
				      strcmp(name + 32, ".h") == 0)))
		return 0;
	memcpy(hex, name, 32);
	hex[32] = '\0';
	if (kiln_hex_decode(hex, id, sizeof(id), NULL) != 0)
		return 0;
	used = bsearch(id, g->used, g->nused, PF_BACKING_ID_SIZE, cmp_id) != NULL;
	if (used)
		return 0;
collect:
	if (g->len == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		char **nn = realloc(g->names, cap * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		g->names = nn;
		g->cap = cap;
	}
	g->names[g->len] = strdup(name);
	if (!g->names[g->len])
		return -ENOMEM;
	g->len++;
	return 0;
}

/* Remove backing files no committed entry refers to (left by crashes). A
 * crash leaves regular files only: anything else under such a name, or at
 * meta.tmp, was planted, and the volume is refused naming it (-KILN_EUNSAFE)
 * rather than cleaned up in silence. A regular meta.tmp stays: the next
 * checkpoint writes over it (nothing reads it), where a new one would cost
 * the file system an inode allocation, journaled by its sync. */
static int collect_orphans(pf_volume_t *v, struct kiln_err *err)
{
	struct gc_ctx g = { v, NULL, 0, NULL, 0, 0 };
	int ret = 0;

	if (!v->so->list)
		return 0;
	g.used = calloc(v->ninodes ? v->ninodes : 1, sizeof(*g.used));
	if (!g.used)
		return 0;
	for (size_t b = 0; b < v->nibuckets; b++)
		for (struct pf_inode *in = v->ibuckets[b]; in; in = in->hnext)
			if (in->type == PF_TYPE_REG)
				memcpy(g.used[g.nused++], in->backing, PF_BACKING_ID_SIZE);
	qsort(g.used, g.nused, PF_BACKING_ID_SIZE, cmp_id);
	(void)v->so->list(v->sctx, gc_collect, &g);
	free(g.used);
	for (size_t i = 0; i < g.len; i++) {
		void *fh = NULL;
		int r = ret ? ret : v->so->open(v->sctx, g.names[i], PF_SO_RDONLY, &fh);

		if (fh)
			v->so->close(v->sctx, fh);
		if (r == -KILN_EUNSAFE && !ret)
			ret = kiln_err_set(err, r, ".kiln/%s: %s", g.names[i], kiln_strerror(r));
		else if (!ret && strcmp(g.names[i], "meta.tmp") != 0)
			(void)v->so->remove(v->sctx, g.names[i]);
		free(g.names[i]);
	}
	free(g.names);
	return ret;
}

/* meta.pub (pf_volume_publish) holds the namespace published since the last
 * durable commit, under that commit's version. It is used when it is whole and
 * carries the version of meta; a torn, missing or older one is ignored: that is
 * the crash losing changes that were never durable. On success *body is
 * replaced (the old one wiped and freed). Returns 1 when used, 0 when not, and
 * -KILN_EUNSAFE when something else than a file sits at "meta.pub" (planted:
 * refused, not ignored). */
static int load_published(pf_volume_t *v, uint64_t version, uint32_t *format, uint8_t **body,
			  size_t *body_size)
{
	uint8_t *env = NULL, *pbody = NULL;
	size_t pbody_size = 0;
	uint64_t size = 0, pversion = 0;
	uint32_t pformat = 0;
	void *fh = NULL;
	int ok = 0, ret;
	ssize_t n;

	ret = v->so->open(v->sctx, "meta.pub", PF_SO_RDONLY, &fh);
	if (ret)
		return ret == -KILN_EUNSAFE ? ret : 0;
	if (v->so->get_size(v->sctx, fh, &size) != 0 || size < PF_META_HDR_SIZE ||
	    size > PF_META_MAX_SIZE + PF_META_HDR_SIZE + PF_TAG_SIZE || !(env = malloc(size)))
		goto out;
	n = v->so->pread(v->sctx, fh, env, size, 0);
	if (n != (ssize_t)size ||
	    pf__meta_unseal(&v->mk, env, size, &pversion, &pformat, &pbody, &pbody_size,
			    NULL) != 0)
		goto out;
	if (pversion != version) {
		kiln_free_secret(pbody, pbody_size);
		goto out;
	}
	kiln_free_secret(*body, *body_size);
	*body = pbody;
	*body_size = pbody_size;
	*format = pformat;
	ok = 1;
out:
	v->so->close(v->sctx, fh);
	free(env);
	return ok;
}

int pf_volume_open(const char *dir, const uint8_t key[static PF_KEY_SIZE],
		   const struct pf_volume_opts *opts, pf_volume_t **vol, struct kiln_err *err)
{
	int published;
	struct pf_log_scan ls = { 0 };
	struct pf_meta m = { 0 };
	uint8_t *env = NULL, *body = NULL;
	size_t body_size = 0;
	uint64_t env_size = 0, version;
	uint32_t format;
	pf_volume_t *v;
	void *fh = NULL;
	ssize_t n;
	int ret;

	*vol = NULL;
	ret = vol_alloc(opts, &v);
	if (ret) {
		if (opts && opts->storage && opts->storage->free)
			opts->storage->free(opts->storage_ctx);
		if (opts && opts->freshness && opts->freshness->free)
			opts->freshness->free(opts->freshness_ctx);
		return ret;
	}
	if ((ret = vol_storage(v, dir, false, err)))
		goto out;
	if ((ret = vol_keys(v, key)))
		goto out;
	ret = v->so->open(v->sctx, "meta", PF_SO_RDONLY, &fh);
	if (ret) {
		if (ret == -ENOENT)
			kiln_err_set(err, ret, "%s: missing metadata (.kiln/meta)", dir);
		else
			kiln_err_set(err, ret, "%s: metadata: %s", dir, kiln_strerror(ret));
		goto out;
	}
	ret = v->so->get_size(v->sctx, fh, &env_size);
	if (!ret && env_size > PF_META_MAX_SIZE + PF_META_HDR_SIZE + PF_TAG_SIZE)
		ret = -EFBIG;
	if (ret) {
		kiln_err_set(err, ret, "%s: metadata: %s", dir, kiln_strerror(ret));
		goto out;
	}
	env = malloc(env_size ? env_size : 1);
	if (!env) {
		ret = -ENOMEM;
		goto out;
	}
	n = v->so->pread(v->sctx, fh, env, env_size, 0);
	v->so->close(v->sctx, fh);
	fh = NULL;
	if (n < 0) {
		ret = kiln_err_set(err, (int)n, "%s: metadata: %s", dir, kiln_strerror((int)n));
		goto out;
	}
	ret = pf__meta_unseal(&v->mk, env, (size_t)n, &version, &format, &body, &body_size, err);
	if (ret)
		goto out;
	/* The commit log's records after this version: the volume's version is
	 * the last one that follows (docs/fs.md "Commit log"). */
	ret = pf__log_scan(v, version, &ls, err);
	if (ret)
		goto out;
	/* A one-phase last record counts only when the journals vouch for it:
	 * they are found through the metadata the records follow. */
	if (ls.count && (ls.recs[ls.count - 1].flags & PF_LOG_ONEPHASE)) {
		ret = pf__meta_parse(body, body_size, format, &m, err);
		if (!ret)
			ret = vol_set_chunk_size(v, m.chunk_size);
		if (!ret)
			ret = pf__log_vouch(v, &m, &ls);
		pf__meta_clear(&m);
		if (ret) {
			if (!(err && err->code))
				kiln_err_set(err, ret, "%s: commit log: %s", dir, kiln_strerror(ret));
			goto out;
		}
	}
	version = ls.version;
	published = load_published(v, version, &format, &body, &body_size);
	if (published < 0) {
		ret = kiln_err_set(err, published, "%s: published metadata (.kiln/meta.pub): %s",
				   dir, kiln_strerror(published));
		goto out;
	}
	ret = pf__meta_parse(body, body_size, format, &m, err);
	if (ret)
		goto out;
	if ((ret = vol_set_chunk_size(v, m.chunk_size)))
		goto out;
	if ((ret = load_inodes(v, &m, err)))
		goto out;
	if (published) {
		/* meta.pub was written at the version the log reached: it holds
		 * what the records set. It is not durable, so the next commit
		 * writes the whole metadata (a record must follow a durable one). */
		v->log_broken = true;
		v->log_off = ls.end;
		v->log_records = (uint32_t)ls.count;
	} else if ((ret = pf__log_replay(v, &ls, err))) {
		goto out;
	}
	/* A format 1 volume is written in format 2 at its next commit. */
	if (format != PF_META_FORMAT)
		v->ns_dirty = true;
	v->version = version;
	ret = pf__check_freshness(v, version, opts && opts->trust_first, &ls, err);
	if (ret)
		goto out;
	/* Data records: their slots in the backing files before any read
	 * (and only on a volume that passed the rollback check). */
	if ((ret = pf__log_place(v, &ls, err)))
		goto out;
	/* Published metadata is not durable: files it no longer names may be
	 * named by the durable one. Orphans wait for an open after a commit. */
	if (!v->read_only && !published && (ret = collect_orphans(v, err))) {
		kiln_err_prefix(err, "%s/", dir);
		goto out;
	}
	*vol = v;
	v = NULL;
out:
	if (ret && err && err->code == 0)
		kiln_err_set(err, ret, "%s: %s", dir, kiln_strerror(ret));
	if (fh)
		v->so->close(v->sctx, fh);
	pf__meta_clear(&m);
	pf__log_scan_clear(&ls);
	if (body)
		kiln_free_secret(body, body_size);
	free(env);
	vol_free(v);
	return ret;
}

void pf_volume_discard(pf_volume_t *v)
{
	if (!v)
		return;
	/* A read-only volume writes nothing when closed. */
	pthread_mutex_lock(&v->lock);
	v->read_only = true;
	pthread_mutex_unlock(&v->lock);
	(void)pf_volume_close(v, NULL);
}

int pf_volume_close(pf_volume_t *v, struct kiln_err *err)
{
	int ret = 0;

	if (!v)
		return 0;
	if (!v->read_only)
		ret = pf_volume_flush(v, err);
	/* A checkpoint: a volume at rest has its whole state in the metadata
	 * and a spent log. */
	pthread_mutex_lock(&v->lock);
	if (!ret && !v->read_only && v->log_records > 0)
		ret = pf__write_meta(v, true, err);
	pthread_mutex_unlock(&v->lock);
	vol_free(v);
	return ret;
}

/* *p, a counter of v, read under v's lock. */
static uint64_t locked_u64(pf_volume_t *v, const uint64_t *p)
{
	uint64_t n;

	pthread_mutex_lock(&v->lock);
	n = *p;
	pthread_mutex_unlock(&v->lock);
	return n;
}

uint64_t pf_volume_version(pf_volume_t *v)
{
	return locked_u64(v, &v->version);
}

uint64_t pf_volume_rides(pf_volume_t *v)
{
	return locked_u64(v, &v->rides);
}

uint32_t pf_volume_log_records(pf_volume_t *v)
{
	uint32_t n;

	pthread_mutex_lock(&v->lock);
	n = v->log_records;
	pthread_mutex_unlock(&v->lock);
	return n;
}

uint32_t pf_volume_chunk_size(pf_volume_t *v)
{
	return v->cs;
}

size_t pf_volume_symlinks(pf_volume_t *v)
{
	size_t n;

	pthread_mutex_lock(&v->lock);
	n = v->nsymlinks;
	pthread_mutex_unlock(&v->lock);
	return n;
}

enum pf_region_kind pf_volume_region(pf_volume_t *v, const char *path)
{
	char norm[PF_MAX_PATH];
	enum pf_region_kind k;

	if (pf__path_normalize(path, norm) != 0)
		return PF_REGION_ENCRYPTED;
	pthread_mutex_lock(&v->lock);
	k = pf__region_of(v, norm);
	pthread_mutex_unlock(&v->lock);
	return k;
}

int pf_volume_rekey(pf_volume_t *v, const uint8_t new_key[static PF_KEY_SIZE],
		    struct kiln_err *err)
{
	struct pf_meta_keys old = v->mk;
	uint8_t old_key[PF_KEY_SIZE];
	int ret;

	if (v->read_only)
		return kiln_err_set(err, -EROFS, "volume is open read-only");
	pthread_mutex_lock(&v->lock);
	memcpy(old_key, v->key, PF_KEY_SIZE);
	ret = vol_keys(v, new_key);
	if (!ret)
		ret = pf__write_meta(v, true, err);
	if (ret) {
		v->mk = old;
		memcpy(v->key, old_key, PF_KEY_SIZE);
	}
	pthread_mutex_unlock(&v->lock);
	kiln_wipe(&old, sizeof(old));
	kiln_wipe(old_key, sizeof(old_key));
	return ret;
}

/* Read every stored chunk of node n (to check each tag and the tag blocks);
 * holes are skipped (their tags, zeros, are checked with their blocks). */
static int verify_node(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	size_t bsize = v->batch * v->cs;
	uint8_t *buf = malloc(bsize);
	uint64_t off = 0, hole;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	/* One data run at a time: each seek scans the tags from off, so seeking
	 * again after every batch would be quadratic in a dense file. */
	while (off < n->size && !ret) {
		ret = pf__seek(n, off, /*data=*/true, &off, err);
		if (ret == -ENXIO) {
			ret = 0;
			break;
		}
		if (!ret)
			ret = pf__seek(n, off, /*data=*/false, &hole, err);
		while (!ret && off < hole) {
			ssize_t r = pf__node_read(n, buf, hole - off < bsize ? hole - off : bsize,
						  off, err);

			if (r <= 0)
				ret = r < 0 ? (int)r : -EIO; /* never 0 below the size */
			else
				off += (uint64_t)r;
		}
	}
	kiln_free_secret(buf, bsize);
	return ret;
}

int pf_volume_verify(pf_volume_t *v, pf_verify_cb cb, void *arg, struct kiln_err *err)
{
	struct pf_inode **list = NULL;
	size_t count = 0;
	int first = 0;

	pthread_mutex_lock(&v->lock);
	list = calloc(v->ninodes ? v->ninodes : 1, sizeof(*list));
	if (!list) {
		pthread_mutex_unlock(&v->lock);
		return -ENOMEM;
	}
	for (size_t b = 0; b < v->nibuckets; b++)
		for (struct pf_inode *in = v->ibuckets[b]; in; in = in->hnext)
			if (in->type == PF_TYPE_REG && in->names)
				list[count++] = in;
	for (size_t i = 0; i < count; i++) {
		struct pf_inode *e = list[i];
		char path[PF_MAX_PATH];
		struct kiln_err fe = { 0 };
		struct pf_node *n = e->node;
		bool temp = false;
		int ret = 0;

		if (!n) {
			ret = pf__node_load(v, e, &n, &fe);
			temp = ret == 0;
		}
		if (!ret)
			ret = verify_node(n, &fe);
		if (temp)
			pf__node_free(n);
		if (pf__inode_path(v, e, path, sizeof(path)) != 0)
			snprintf(path, sizeof(path), "(inode %llu)", (unsigned long long)e->ino);
		if (cb)
			cb(arg, path, ret, ret ? kiln_err_msg(&fe, ret) : "ok");
		if (ret && !first) {
			first = ret;
			if (err)
				*err = fe;
		}
	}
	free(list);
	pthread_mutex_unlock(&v->lock);
	if (first && first != -KILN_EAUTH && first != -KILN_ECORRUPT)
		return first;
	return first ? -KILN_EAUTH : 0;
}
