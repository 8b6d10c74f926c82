/* configfs-tsm: the report mechanism shared by the TDX and SNP producers
 * (tdx_produce.c, snp_produce.c), see tsm.h. */
#include "evidence/tsm.h"
#include "evidence/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"

/* ---- real file-system operations -------------------------------------------------- */

static int sys_mkdir(void *ctx, const char *path)
{
	return mkdir(path, 0700) == 0 ? 0 : -errno;
}

static int sys_rmdir(void *ctx, const char *path)
{
	return rmdir(path) == 0 ? 0 : -errno;
}

static int sys_read(void *ctx, const char *path, uint8_t **data, size_t *size)
{
	return kiln_read_file(path, EV_TSM_MAX_BLOB, data, size);
}

static int sys_write(void *ctx, const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = kiln_write_all(fd, data, size);
	/* configfs binary attributes commit the buffered data on close. */
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
	return ret;
}

static const struct ev_tsm_ops g_sys_ops = {
	.mkdir = sys_mkdir, .rmdir = sys_rmdir, .read = sys_read, .write = sys_write,
};

/* What a NULL ops means (ev_tsm_set_default_ops). */
static const struct ev_tsm_ops *g_default_ops = &g_sys_ops;
static void *g_default_ctx;

void ev_tsm_set_default_ops(const struct ev_tsm_ops *ops, void *ctx)
{
	g_default_ops = ops ? ops : &g_sys_ops;
	g_default_ctx = ops ? ctx : NULL;
}

void ev_tsm_result_free(struct ev_tsm_result *r)
{
	if (!r)
		return;
	free(r->outblob);
	free(r->auxblob);
	memset(r, 0, sizeof(*r));
}

const char *ev__tsm_base(const char *base)
{
	const char *env;

	if (base)
		return base;
	env = secure_getenv("KILN_TSM_PATH");
	return env && *env ? env : EV_TSM_DEFAULT_PATH;
}

/* Read a small text attribute, trimmed of its trailing newline. */
static int read_text(const struct ev_tsm_ops *ops, void *ctx, const char *path, char *out,
		     size_t out_size, struct kiln_err *err)
{
	uint8_t *data = NULL;
	size_t size = 0;
	int ret = ops->read(ctx, path, &data, &size);

	if (ret == -ENOENT)
		return kiln_err_set(err, -KILN_EFORMAT, "configfs-tsm: %s is missing (the kernel "
				    "creates it in every report entry: not a configfs-tsm report "
				    "directory?)", path);
	if (ret < 0)
		return kiln_err_set(err, ret, "configfs-tsm: cannot read %s: %s", path,
				    kiln_strerror(ret));
	while (size && (data[size - 1] == '\n' || data[size - 1] == '\0'))
		size--;
	if (size == 0 || size >= out_size || memchr(data, '\0', size)) {
		free(data);
		return kiln_err_set(err, -KILN_EFORMAT, "configfs-tsm: %s is empty or malformed",
				    path);
	}
	memcpy(out, data, size);
	out[size] = '\0';
	free(data);
	return 0;
}

static int read_generation(const struct ev_tsm_ops *ops, void *ctx, const char *path,
			   uint64_t *gen, struct kiln_err *err)
{
	char text[32];
	int ret = read_text(ops, ctx, path, text, sizeof(text), err);

	if (ret < 0)
		return ret;
	if (kiln_parse_u64(text, gen) != 0)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "configfs-tsm: %s holds '%s', not a number", path, text);
	return 0;
}

/* One attempt on a fresh entry. Returns 1 when a concurrent writer was detected. */
static int tsm_attempt(const char *base, const struct ev_tsm_ops *ops, void *ctx,
		       const uint8_t inblob[static EV_TSM_INBLOB_SIZE], struct ev_tsm_result *out,
		       struct kiln_err *err)
{
	static atomic_uint counter;
	char entry[4096], path[4200];
	uint64_t rnd, g0, g1;
	bool made = false;
	int ret;

	ret = kc_random(&rnd, sizeof(rnd));
	if (ret < 0)
		return kiln_err_set(err, ret, "configfs-tsm: no randomness for an entry name");
	snprintf(entry, sizeof(entry), "%s/kiln-%ld-%u-%016llx", base, (long)getpid(),
		 atomic_fetch_add(&counter, 1), (unsigned long long)rnd);
	ret = ops->mkdir(ctx, entry);
	if (ret < 0) {
		kiln_err_set(err, ret, "configfs-tsm: cannot create entry %s: %s", entry,
			     kiln_strerror(ret));
		goto out;
	}
	made = true;

	snprintf(path, sizeof(path), "%s/generation", entry);
	ret = read_generation(ops, ctx, path, &g0, err);
	if (ret < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/inblob", entry);
	ret = ops->write(ctx, path, inblob, EV_TSM_INBLOB_SIZE);
	if (ret < 0) {
		kiln_err_set(err, ret == -ENOENT ? -KILN_EFORMAT : ret,
			     "configfs-tsm: cannot write %s: %s (is %s a configfs-tsm "
			     "directory?)", path, kiln_strerror(ret), base);
		ret = ret == -ENOENT ? -KILN_EFORMAT : ret;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/outblob", entry);
	ret = ops->read(ctx, path, &out->outblob, &out->outblob_size);
	if (ret < 0 || out->outblob_size == 0) {
		ret = ret < 0 ? ret : -KILN_EFORMAT;
		kiln_err_set(err, ret, "configfs-tsm: cannot read %s: %s", path,
			     ret == -KILN_EFORMAT ? "empty" : kiln_strerror(ret));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/auxblob", entry);
	ret = ops->read(ctx, path, &out->auxblob, &out->auxblob_size);
	if (ret == -ENOENT || ret == -EOPNOTSUPP || ret == -ENOTTY ||
	    (ret == 0 && out->auxblob_size == 0)) {
		/* Only SEV-SNP hosts provide certificates; elsewhere it is absent. */
		free(out->auxblob);
		out->auxblob = NULL;
		out->auxblob_size = 0;
	} else if (ret < 0) {
		kiln_err_set(err, ret, "configfs-tsm: cannot read %s: %s", path,
			     kiln_strerror(ret));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/provider", entry);
	ret = read_text(ops, ctx, path, out->provider, sizeof(out->provider), err);
	if (ret < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/generation", entry);
	ret = read_generation(ops, ctx, path, &g1, err);
	if (ret < 0)
		goto out;
	out->generation = g1;
	ret = g1 == g0 + 1 ? 0 : 1;
	if (ret == 1)
		kiln_err_set(err, -EBUSY,
			     "configfs-tsm: %s went from %llu to %llu while we read the report "
			     "(another writer on the entry)", path, (unsigned long long)g0,
			     (unsigned long long)g1);
out:
	if (made) {
		int r = ops->rmdir(ctx, entry);

		if (r < 0 && ret == 0) {
			ret = kiln_err_set(err, r, "configfs-tsm: cannot remove entry %s: %s",
					   entry, kiln_strerror(r));
		}
	}
	return ret;
}

int ev_tsm_report_ops(const char *base, const struct ev_tsm_ops *ops, void *ctx,
		      const uint8_t inblob[static EV_TSM_INBLOB_SIZE], struct ev_tsm_result *out,
		      struct kiln_err *err)
{
	struct stat st;
	unsigned attempt;
	int ret = -EBUSY;

	memset(out, 0, sizeof(*out));
	base = ev__tsm_base(base);
	if (!ops) {
		ops = g_default_ops;
		ctx = g_default_ctx;
	}
	if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode))
		return kiln_err_set(err, -ENODEV,
				    "configfs-tsm is not available: %s is not a directory "
				    "(not a confidential VM, or a kernel older than 6.7)", base);
	for (attempt = 1; attempt <= EV_TSM_ATTEMPTS; attempt++) {
		ret = tsm_attempt(base, ops, ctx, inblob, out, err);
		if (ret == 0) {
			out->attempts = attempt;
			return 0;
		}
		ev_tsm_result_free(out);
		if (ret < 0)
			return ret;
	}
	return kiln_err_set(err, -EBUSY,
			    "configfs-tsm: the entry generation changed during each of %u "
			    "attempts (a concurrent writer); giving up", EV_TSM_ATTEMPTS);
}

int ev_tsm_report(const char *base, const uint8_t inblob[static EV_TSM_INBLOB_SIZE],
		  struct ev_tsm_result *out, struct kiln_err *err)
{
	return ev_tsm_report_ops(base, NULL, NULL, inblob, out, err);
}

int ev_tsm_produce(const char *base, const struct ev_tsm_ops *ops, void *ctx,
		   const char *provider, const uint8_t report_data[static EV_REPORT_DATA_SIZE],
		   uint8_t **evidence, size_t *size, struct kiln_err *err)
{
	struct ev_tsm_result res;
	uint8_t *buf;
	int ret;

	*evidence = NULL;
	*size = 0;
	ret = ev_tsm_report_ops(base, ops, ctx, report_data, &res, err);
	if (ret < 0)
		return ret;
	if (strcmp(res.provider, provider) != 0) {
		ret = kiln_err_set(err, -ENODEV,
				   "configfs-tsm provider is '%s', expected '%s' (wrong --tee for "
				   "this machine?)", res.provider, provider);
		goto out;
	}
	buf = malloc(res.outblob_size + res.auxblob_size);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(buf, res.outblob, res.outblob_size);
	if (res.auxblob_size)
		memcpy(buf + res.outblob_size, res.auxblob, res.auxblob_size);
	*evidence = buf;
	*size = res.outblob_size + res.auxblob_size;
	ret = 0;
out:
	ev_tsm_result_free(&res);
	return ret;
}

int ev_tsm_detect(const char *base, const struct ev_tsm_ops *ops, void *ctx, char name[static 8],
		  struct kiln_err *err)
{
	char entry[4096], path[4200], provider[32];
	struct stat st;
	uint64_t rnd;
	int ret, r;

	name[0] = '\0';
	base = ev__tsm_base(base);
	if (!ops) {
		ops = g_default_ops;
		ctx = g_default_ctx;
	}
	if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (stat("/dev/sev-guest", &st) == 0) {
			snprintf(name, 8, "snp");
			return 0;
		}
		if (stat("/dev/tdx_guest", &st) == 0) {
			snprintf(name, 8, "tdx");
			return 0;
		}
		return kiln_err_set(err, -ENODEV,
				    "no TEE guest interface: neither %s nor /dev/sev-guest nor "
				    "/dev/tdx_guest exists (not a confidential VM?)", base);
	}
	ret = kc_random(&rnd, sizeof(rnd));
	if (ret < 0)
		return kiln_err_set(err, ret, "configfs-tsm: no randomness for an entry name");
	snprintf(entry, sizeof(entry), "%s/kiln-detect-%ld-%016llx", base, (long)getpid(),
		 (unsigned long long)rnd);
	ret = ops->mkdir(ctx, entry);
	if (ret < 0)
		return kiln_err_set(err, ret, "configfs-tsm: cannot create entry %s: %s", entry,
				    kiln_strerror(ret));
	snprintf(path, sizeof(path), "%s/provider", entry);
	ret = read_text(ops, ctx, path, provider, sizeof(provider), err);
	r = ops->rmdir(ctx, entry);
	if (ret == 0 && r < 0)
		ret = kiln_err_set(err, r, "configfs-tsm: cannot remove entry %s: %s", entry,
				   kiln_strerror(r));
	if (ret < 0)
		return ret;
	if (strcmp(provider, "sev_guest") == 0)
		snprintf(name, 8, "snp");
	else if (strcmp(provider, "tdx_guest") == 0)
		snprintf(name, 8, "tdx");
	else
		return kiln_err_set(err, -ENOTSUP, "configfs-tsm provider '%s' is not supported "
				    "(expected sev_guest or tdx_guest)", provider);
	return 0;
}

/* Whether configfs-tsm is there (or KILN_TSM_PATH names a stand-in): the
 * producers prefer it to the guest devices. */
bool ev__tsm_present(void)
{
	struct stat st;

	return stat(ev__tsm_base(NULL), &st) == 0 && S_ISDIR(st.st_mode);
}

int ev_tee_detect(char name[static 8], struct kiln_err *err)
{
	return ev_tsm_detect(NULL, NULL, NULL, name, err);
}
