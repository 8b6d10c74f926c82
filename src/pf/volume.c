/* Volumes: init, open (metadata, published namespace, freshness check,
 * orphan collection), flush/close, rekey, verify. */
#include "pf/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

static int vol_alloc(const struct pf_volume_opts *opts, pf_volume_t **out)
{
	pf_volume_t *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	v->nbuckets = 64;
	v->buckets = calloc(v->nbuckets, sizeof(*v->buckets));
	if (!v->buckets) {
		free(v);
		return -ENOMEM;
	}
	if (opts) {
		v->so = opts->storage;
		v->sctx = opts->storage_ctx;
		v->fo = opts->freshness;
		v->fctx = opts->freshness_ctx;
		v->read_only = opts->read_only;
		v->seal_thread = opts->seal_thread;
	}
	*out = v;
	return 0;
}

static int vol_set_chunk_size(pf_volume_t *v, uint32_t cs)
{
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
	if (!v->iobuf || !v->slot || !v->pt || !v->aad || !v->jbuf || !v->nonces)
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
	for (size_t b = 0; b < v->nbuckets; b++) {
		struct pf_entry *e = v->buckets[b], *ne;

		for (; e; e = ne) {
			ne = e->hnext;
			pf__ent_free(e);
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
	free(v->buckets);
	if (v->iobuf)
		kiln_free_secret(v->iobuf, v->batch * v->stride);
	if (v->slot)
		kiln_free_secret(v->slot, v->stride);
	if (v->pt)
		kiln_free_secret(v->pt, v->cs);
	if (v->aad)
		kiln_free_secret(v->aad, 32 + (size_t)v->cs);
	if (v->jbuf)
		kiln_free_secret(v->jbuf, 12 + v->stride + 8);
	free(v->nonces);
	if (v->iobuf2)
		kiln_free_secret(v->iobuf2, v->batch * v->stride);
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
	ret = pf__write_meta(v, true, err);
	if (ret)
		goto out;
	*vol = v;
	v = NULL;
out:
	vol_free(v);
	return ret;
}

static int load_entries(pf_volume_t *v, struct pf_meta *m, struct kiln_err *err)
{
	int ret;

	v->regions = m->regions;
	v->regions_len = m->regions_len;
	m->regions = NULL;
	m->regions_len = 0;
	for (size_t i = 0; i < m->dirs_len + m->files_len; i++) {
		struct pf_entry *e = calloc(1, sizeof(*e));
		const char *path;

		if (!e)
			return -ENOMEM;
		if (i < m->dirs_len) {
			struct pf_meta_dir *d = &m->dirs[i];

			e->is_dir = true;
			e->mode = d->mode;
			e->mtime_ns = d->mtime_ns;
			e->path = d->path;
			d->path = NULL;
		} else {
			struct pf_meta_file *f = &m->files[i - m->dirs_len];

			e->kind = f->kind;
			e->mode = f->mode;
			e->mtime_ns = f->mtime_ns;
			e->size = f->size;
			memcpy(e->key, f->key, PF_KEY_SIZE);
			memcpy(e->file_id, f->file_id, PF_FILE_ID_SIZE);
			memcpy(e->root, f->root, PF_ROOT_SIZE);
			memcpy(e->backing, f->backing, PF_BACKING_ID_SIZE);
			e->in_meta = true;
			e->path = f->path;
			f->path = NULL;
		}
		path = e->path;
		if (pf__ent_find(v, path)) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "metadata: duplicate path '%s'",
					   path);
			pf__ent_free(e);
			return ret;
		}
		if ((ret = pf__ent_insert(v, e))) {
			pf__ent_free(e);
			return ret;
		}
	}
	/* Every entry's parent must be a directory. */
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (pf__check_parent(v, e->path) != 0)
				return kiln_err_set(err, -KILN_EFORMAT, "metadata: '%s' has no "
						    "parent directory", e->path);
	return 0;
}

struct gc_ctx {
	pf_volume_t *v;
	char **names;
	size_t len, cap;
};

static int gc_collect(void *arg, const char *name)
{
	struct gc_ctx *g = arg;
	size_t n = strlen(name);
	uint8_t id[PF_BACKING_ID_SIZE];
	char hex[2 * PF_BACKING_ID_SIZE + 1];
	struct pf_entry *e = NULL;
	bool used = false;

	if (strcmp(name, "meta.tmp") == 0) {
		(void)g->v->so->remove(g->v->sctx, name);
		return 0;
	}
	if (n != 32 && !(n == 34 && (strcmp(name + 32, ".j") == 0 ||
				      strcmp(name + 32, ".t") == 0)))
		return 0;
	memcpy(hex, name, 32);
	hex[32] = '\0';
	if (kiln_hex_decode(hex, id, sizeof(id), NULL) != 0)
		return 0;
	for (size_t b = 0; b < g->v->nbuckets && !used; b++)
		for (e = g->v->buckets[b]; e && !used; e = e->hnext)
			used = !e->is_dir && memcmp(e->backing, id, sizeof(id)) == 0;
	if (used)
		return 0;
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

/* Remove backing files no committed entry refers to (left by crashes). */
static void collect_orphans(pf_volume_t *v)
{
	struct gc_ctx g = { v, NULL, 0, 0 };

	if (!v->so->list)
		return;
	/* O(files x entries); fine for the volumes this serves, see docs/fs.md. */
	(void)v->so->list(v->sctx, gc_collect, &g);
	for (size_t i = 0; i < g.len; i++) {
		(void)v->so->remove(v->sctx, g.names[i]);
		free(g.names[i]);
	}
	free(g.names);
}

/* meta.pub (pf_volume_publish) holds the namespace published since the last
 * durable commit, under that commit's version. It is used when it is whole and
 * carries the version of meta; a torn, missing or older one is ignored: that is
 * the crash losing changes that were never durable. On success *body is
 * replaced (the old one wiped and freed). */
static bool load_published(pf_volume_t *v, uint64_t version, uint8_t **body, size_t *body_size)
{
	uint8_t *env = NULL, *pbody = NULL;
	size_t pbody_size = 0;
	uint64_t size = 0, pversion = 0;
	void *fh = NULL;
	bool ok = false;
	ssize_t n;

	if (v->so->open(v->sctx, "meta.pub", PF_SO_RDONLY, &fh) != 0)
		return false;
	if (v->so->get_size(v->sctx, fh, &size) != 0 || size < PF_META_HDR_SIZE ||
	    size > PF_META_MAX_SIZE + PF_META_HDR_SIZE + PF_TAG_SIZE || !(env = malloc(size)))
		goto out;
	n = v->so->pread(v->sctx, fh, env, size, 0);
	if (n != (ssize_t)size ||
	    pf__meta_unseal(&v->mk, env, size, &pversion, &pbody, &pbody_size, NULL) != 0)
		goto out;
	if (pversion != version) {
		kiln_free_secret(pbody, pbody_size);
		goto out;
	}
	kiln_free_secret(*body, *body_size);
	*body = pbody;
	*body_size = pbody_size;
	ok = true;
out:
	v->so->close(v->sctx, fh);
	free(env);
	return ok;
}

int pf_volume_open(const char *dir, const uint8_t key[static PF_KEY_SIZE],
		   const struct pf_volume_opts *opts, pf_volume_t **vol, struct kiln_err *err)
{
	bool published;
	struct pf_meta m = { 0 };
	uint8_t *env = NULL, *body = NULL;
	size_t body_size = 0;
	uint64_t env_size = 0, version;
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
	ret = pf__meta_unseal(&v->mk, env, (size_t)n, &version, &body, &body_size, err);
	if (ret)
		goto out;
	published = load_published(v, version, &body, &body_size);
	ret = pf__meta_parse(body, body_size, &m, err);
	if (ret)
		goto out;
	if ((ret = vol_set_chunk_size(v, m.chunk_size)))
		goto out;
	if ((ret = load_entries(v, &m, err)))
		goto out;
	v->version = version;
	ret = pf__check_freshness(v, version, opts && opts->trust_first, err);
	if (ret)
		goto out;
	/* Published metadata is not durable: files it no longer names may be
	 * named by the durable one. Orphans wait for an open after a commit. */
	if (!v->read_only && !published)
		collect_orphans(v);
	*vol = v;
	v = NULL;
out:
	if (ret && err && err->code == 0)
		kiln_err_set(err, ret, "%s: %s", dir, kiln_strerror(ret));
	if (fh)
		v->so->close(v->sctx, fh);
	pf__meta_clear(&m);
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
	vol_free(v);
	return ret;
}

uint64_t pf_volume_version(pf_volume_t *v)
{
	uint64_t t;

	pthread_mutex_lock(&v->lock);
	t = v->version;
	pthread_mutex_unlock(&v->lock);
	return t;
}

uint32_t pf_volume_chunk_size(pf_volume_t *v)
{
	return v->cs;
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

/* Read every chunk of node n (to check each tag). */
static int verify_node(struct pf_node *n, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	size_t bsize = v->batch * v->cs;
	uint8_t *buf = malloc(bsize);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < n->size; off += bsize) {
		ssize_t r = pf__node_read(n, buf, bsize, off, err);

		if (r < 0) {
			ret = (int)r;
			break;
		}
	}
	kiln_free_secret(buf, bsize);
	return ret;
}

int pf_volume_verify(pf_volume_t *v, pf_verify_cb cb, void *arg, struct kiln_err *err)
{
	struct pf_entry **list = NULL;
	size_t count = 0;
	int first = 0;

	pthread_mutex_lock(&v->lock);
	list = calloc(v->nentries ? v->nentries : 1, sizeof(*list));
	if (!list) {
		pthread_mutex_unlock(&v->lock);
		return -ENOMEM;
	}
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct pf_entry *e = v->buckets[b]; e; e = e->hnext)
			if (!e->is_dir)
				list[count++] = e;
	for (size_t i = 0; i < count; i++) {
		struct pf_entry *e = list[i];
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
		if (cb)
			cb(arg, e->path, ret, ret ? kiln_err_msg(&fe, ret) : "ok");
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
