/* Freshness: the rollback check of a volume's metadata against the trusted
 * store (pf__check_freshness), and the providers that hold the trusted value: a
 * local file, and a fixed expected value. */
#include "pf/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pf__fresh_current(pf_volume_t *v, uint64_t version, uint64_t *c, uint64_t *p,
		      struct kiln_err *err)
{
	int ret = v->fo->current(v->fctx, c, p, err);

	/* The first answer may be a snapshot (the CAS's tags as the grant
	 * carried them at attestation). A commit can have completed since (the
	 * volume server of a run just ended, closing): when the answer does
	 * not admit what storage holds, the provider is asked again. */
	if (ret == -ENOENT || (!ret && version > *c && version > *p)) {
		if (err)
			memset(err, 0, sizeof(*err));
		ret = v->fo->current(v->fctx, c, p, err);
	}
	return ret;
}

int pf__check_freshness(pf_volume_t *v, uint64_t version, bool trust_first,
			const struct pf_log_scan *known, struct kiln_err *err)
{
	uint64_t c = 0, p = 0;
	int ret;

	if (!v->fo)
		return 0;
	/* The log's scan asked already (for its last record, at or above
	 * version, after the metadata and the log were read): the same answer. */
	if (known && known->asked) {
		ret = known->fresh_ret;
		c = known->fresh_c;
		p = known->fresh_p;
	} else {
		ret = pf__fresh_current(v, version, &c, &p, err);
	}
	if (ret == -ENOENT && trust_first) {
		if (v->read_only)
			return 0;
		ret = v->fo->prepare(v->fctx, version, err);
		if (!ret)
			ret = v->fo->commit(v->fctx, version, err);
		if (!ret)
			pf__versions_known(v, version);
		return ret;
	}
	if (!ret)
		pf__versions_known(v, c > p ? c : p);
	if (ret == -ENOENT)
		return kiln_err_set(err, -KILN_EROLLBACK, "no trusted volume version is available "
				    "(found version %llu)", (unsigned long long)version);
	if (ret)
		return ret;
	if (version == c || version == p) {
		if (version != c && !v->read_only)
			return v->fo->commit(v->fctx, version, err);
		return 0;
	}
	if (version < c)
		return kiln_err_set(err, -KILN_EROLLBACK, "volume rolled back: found version %llu, "
				    "expected %llu", (unsigned long long)version,
				    (unsigned long long)c);
	if (version < p)
		return kiln_err_set(err, -KILN_EROLLBACK, "volume rolled back: found version %llu, "
				    "expected %llu or %llu", (unsigned long long)version,
				    (unsigned long long)c, (unsigned long long)p);
	return kiln_err_set(err, -KILN_ECONFLICT, "volume version %llu is newer than the trusted "
			    "version %llu (stale version store?)", (unsigned long long)version,
			    (unsigned long long)p);
}

struct local_fresh {
	char *path;
};

static int lf_read(struct local_fresh *l, uint64_t *committed, uint64_t *prepared,
		   struct kiln_err *err)
{
	uint8_t *data = NULL;
	size_t size;
	char c[32], p[32];
	/* The trusted store is kiln's own file: not through a symlink, and a
	 * FIFO planted there must not block the volume's open. */
	int fd = kiln_open_own(AT_FDCWD, l->path, O_RDONLY, 0), ret;

	if (fd == -ENOENT)
		return fd;
	ret = fd < 0 ? fd : kiln_read_fd(fd, 256, &data, &size);
	if (fd >= 0)
		close(fd);
	if (ret)
		return kiln_err_set(err, ret, "version file %s: %s", l->path, kiln_strerror(ret));
	if (sscanf((char *)data, "%31s %31s", c, p) != 2 || kiln_parse_u64(c, committed) ||
	    kiln_parse_u64(p, prepared)) {
		free(data);
		return kiln_err_set(err, -KILN_EFORMAT,
				    "version file %s: malformed (expected \"COMMITTED PREPARED\")",
				    l->path);
	}
	free(data);
	return 0;
}

static int lf_write(struct local_fresh *l, uint64_t committed, uint64_t prepared,
		    struct kiln_err *err)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%llu %llu\n", (unsigned long long)committed,
			 (unsigned long long)prepared);
	int ret = kiln_write_file_atomic(l->path, buf, (size_t)n, 0600);

	if (ret)
		return kiln_err_set(err, ret, "version file %s: cannot write: %s", l->path,
				    kiln_strerror(ret));
	return 0;
}

static int lf_prepare(void *ctx, uint64_t version, struct kiln_err *err)
{
	uint64_t c = 0, p = 0;
	int ret = lf_read(ctx, &c, &p, err);

	if (ret == -ENOENT)
		c = version;
	else if (ret)
		return ret;
	return lf_write(ctx, c, version, err);
}

static int lf_commit(void *ctx, uint64_t version, struct kiln_err *err)
{
	return lf_write(ctx, version, version, err);
}

static int lf_current(void *ctx, uint64_t *committed, uint64_t *prepared, struct kiln_err *err)
{
	return lf_read(ctx, committed, prepared, err);
}

static void lf_free(void *ctx)
{
	struct local_fresh *l = ctx;

	if (!l)
		return;
	free(l->path);
	free(l);
}

static const struct pf_freshness_ops g_local_ops = {
	.prepare = lf_prepare,
	.commit = lf_commit,
	.current = lf_current,
	.free = lf_free,
};

int pf_freshness_local(const char *path, const struct pf_freshness_ops **ops, void **ctx)
{
	struct local_fresh *l = calloc(1, sizeof(*l));

	*ops = NULL;
	*ctx = NULL;
	if (!l || !(l->path = strdup(path))) {
		free(l);
		return -ENOMEM;
	}
	*ops = &g_local_ops;
	*ctx = l;
	return 0;
}

struct fixed_fresh {
	uint64_t version;
};

static int ff_prepare(void *ctx, uint64_t version, struct kiln_err *err)
{
	return 0;
}

static int ff_commit(void *ctx, uint64_t version, struct kiln_err *err)
{
	/* Later commits of this volume are trusted from here on. */
	((struct fixed_fresh *)ctx)->version = version;
	return 0;
}

static int ff_current(void *ctx, uint64_t *committed, uint64_t *prepared, struct kiln_err *err)
{
	*committed = *prepared = ((struct fixed_fresh *)ctx)->version;
	return 0;
}

static void ff_free(void *ctx)
{
	free(ctx);
}

static const struct pf_freshness_ops g_fixed_ops = {
	.prepare = ff_prepare,
	.commit = ff_commit,
	.current = ff_current,
	.free = ff_free,
};

int pf_freshness_fixed(uint64_t version, const struct pf_freshness_ops **ops, void **ctx)
{
	struct fixed_fresh *f = calloc(1, sizeof(*f));

	*ops = NULL;
	*ctx = NULL;
	if (!f)
		return -ENOMEM;
	f->version = version;
	*ops = &g_fixed_ops;
	*ctx = f;
	return 0;
}
