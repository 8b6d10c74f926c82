/* kiln fs: inspect and edit protected volumes offline; mount them with FUSE. */
#include "cli/cli.h"
#include "cli/fs_live.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "crypto/crypto.h"
#include "pf/pf.h"
#include "cli/fs.h"


#define FS_IO_SIZE (1024 * 1024)

/* Options shared by the subcommands (systemd style arg_ globals). */
static const char *arg_key_file;
static const char *arg_version_file;
static const char *arg_expect_version;
static bool arg_trust;

static const char g_usage[] =
	"Usage: kiln fs COMMAND DIR [ARGS...] [--key-file KEY]\n\n"
	"Protected volumes: every file encrypted (or authenticated) in chunks, with an\n"
	"encrypted, versioned metadata file; tampering and rollback are detected.\n\n"
	"Commands:\n"
	"  init DIR [--chunk-size N] [--region PREFIX=encrypted|authenticated|plain]...\n"
	"  put DIR PATH [--from FILE|-]   write a file (stdin by default)\n"
	"  cat DIR PATH                   print a file\n"
	"  ls DIR [PATH] [-r]             list a directory\n"
	"  rm DIR PATH                    remove a file or an empty directory\n"
	"  verify DIR [--expect-version N]  check every file; prints the volume version\n"
	"  rekey DIR --new-key-file K2    re-encrypt the metadata under a new key\n"
	"  mount DIR MOUNTPOINT [--expect-version N] [-f]   FUSE view (fusermount3 -u)\n\n"
	"Common options:\n"
	"  --key-file KEY   32-byte volume key (or $KILN_KEY_FILE); init creates it (0600)\n"
	"  --version-file FILE   trusted version store (default KEY.version)\n"
	"  --expect-version N    expect this volume version instead of the version file\n"
	"  --trust          accept the volume's version when the version file is missing\n"
	"  (--tag-file and --tag are deprecated names of --version-file, --expect-version)\n\n"
	"See docs/fs.md.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_error("fs: %s (see 'kiln fs --help')", msg);
	return CLI_EXIT_USAGE;
}

/* ---- key handling ---- */

static int create_key(const char *path, uint8_t key[static PF_KEY_SIZE])
{
	int fd, ret;

	ret = kc_random(key, PF_KEY_SIZE);
	if (ret) {
		cli_error("cannot generate a key: %s", kiln_strerror(ret));
		return ret;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		cli_error("key file %s: %s", path, kiln_strerror(ret));
		return ret;
	}
	ret = kiln_write_all(fd, key, PF_KEY_SIZE);
	if (!ret && fsync(fd) != 0)
		ret = -errno;
	close(fd);
	if (ret)
		cli_error("key file %s: %s", path, kiln_strerror(ret));
	return ret;
}

static const char *key_file(void)
{
	if (arg_key_file)
		return arg_key_file;
	const char *env = secure_getenv("KILN_KEY_FILE");

	return env && env[0] ? env : NULL;
}

/* Fill opts' freshness provider from --expect-version / --version-file /
 * KEY.version. */
static int freshness(const char *kf, struct pf_volume_opts *o)
{
	char path[4096];
	int ret;

	if (arg_expect_version) {
		uint64_t t;

		if (kiln_parse_u64(arg_expect_version, &t) != 0) {
			cli_error("--expect-version %s: not a number", arg_expect_version);
			return -EINVAL;
		}
		return pf_freshness_fixed(t, &o->freshness, &o->freshness_ctx);
	}
	if (arg_version_file) {
		snprintf(path, sizeof(path), "%s", arg_version_file);
	} else if (cli_version_file(kf, path, sizeof(path)) != 0) {
		cli_error("key file path too long");
		return -ENAMETOOLONG;
	}
	if (path[0] != '/') {
		/* Absolute: `mount` without -f changes to / when it daemonizes. */
		char cwd[2048], abs[4096 + 2048];

		if (!getcwd(cwd, sizeof(cwd))) {
			cli_error("getcwd: %s", strerror(errno));
			return -errno;
		}
		snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
		ret = pf_freshness_local(abs, &o->freshness, &o->freshness_ctx);
	} else {
		ret = pf_freshness_local(path, &o->freshness, &o->freshness_ctx);
	}
	o->trust_first = arg_trust;
	return ret;
}

/* Explain why DIR cannot be a volume, before the library says something vaguer. */
static int check_volume_dir(const char *dir)
{
	char path[4096];
	struct stat st;

	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		cli_error("%s: no such directory", dir);
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "%s/.kiln", dir);
	if (stat(path, &st) != 0) {
		cli_error("%s: not a kiln volume (no .kiln directory)", dir);
		return -KILN_EFORMAT;
	}
	return 0;
}

int cli_fs_open_volume(const char *dir, pf_volume_t **vol)
{
	struct pf_volume_opts o = { 0 };
	struct kiln_err err = { 0 };
	uint8_t key[PF_KEY_SIZE];
	const char *kf = key_file();
	int ret;

	*vol = NULL;
	if (!kf) {
		cli_error("fs: --key-file KEY (or KILN_KEY_FILE) is required");
		return -EINVAL;
	}
	if ((ret = check_volume_dir(dir)))
		return ret;
	if ((ret = cli_volume_key_read(kf, key)))
		return ret;
	if ((ret = freshness(kf, &o)))
		goto out;
	o.seal_thread = true; /* a CLI process of our own: a helper thread is fine */
	ret = pf_volume_open(dir, key, &o, vol, &err);
	if (ret)
		cli_error("%s", kiln_err_msg(&err, ret));
out:
	kiln_wipe(key, sizeof(key));
	return ret;
}

int cli_fs_close_volume(pf_volume_t *v, int status)
{
	struct kiln_err err = { 0 };
	int ret = pf_volume_close(v, &err);

	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	return status;
}

/* A running workload's volume server for dir, or NULL: ls and cat go
 * through it (fs_live.c), since it owns the volume while it runs. */
static struct fs_live *live_server(const char *dir)
{
	uint8_t key[PF_KEY_SIZE];
	const char *kf = key_file();
	struct fs_live *l = NULL;

	if (!kf || check_volume_dir(dir) || cli_volume_key_read(kf, key))
		return NULL;
	fs_live_connect(dir, key, &l);
	kiln_wipe(key, sizeof(key));
	return l;
}

/* ---- option parsing ---- */

enum {
	OPT_KEY = 256, OPT_VERSION_FILE, OPT_EXPECT_VERSION, OPT_TAG_FILE, OPT_TAG, OPT_TRUST,
	OPT_CHUNK, OPT_REGION, OPT_FROM,
	OPT_NEW_KEY,
};

static const struct option g_opts[] = {
	{ "key-file", required_argument, NULL, OPT_KEY },
	{ "version-file", required_argument, NULL, OPT_VERSION_FILE },
	{ "expect-version", required_argument, NULL, OPT_EXPECT_VERSION },
	/* Deprecated names (the counter was called "tag", like the GCM tag). */
	{ "tag-file", required_argument, NULL, OPT_TAG_FILE },
	{ "tag", required_argument, NULL, OPT_TAG },
	{ "trust", no_argument, NULL, OPT_TRUST },
	{ "chunk-size", required_argument, NULL, OPT_CHUNK },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "new-key-file", required_argument, NULL, OPT_NEW_KEY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int cli_fs_parse(int argc, char **argv, const char *allowed, int min_pos, int max_pos,
		 struct fs_args *a)
{
	int c;

	memset(a, 0, sizeof(*a));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hrf", g_opts, NULL)) != -1) {
		const char *name = NULL;

		switch (c) {
		case 'h':
			fputs(g_usage, stdout);
			return CLI_EXIT_OK;
		case OPT_KEY: arg_key_file = optarg; continue;
		case OPT_TAG_FILE:
			cli_error("warning: --tag-file is deprecated; use --version-file");
			/* fall through */
		case OPT_VERSION_FILE: arg_version_file = optarg; continue;
		case OPT_TAG:
			cli_error("warning: --tag is deprecated; use --expect-version");
			/* fall through */
		case OPT_EXPECT_VERSION:
			name = "expect-version";
			c = OPT_EXPECT_VERSION;
			arg_expect_version = optarg;
			break;
		case OPT_TRUST: arg_trust = true; continue;
		case OPT_CHUNK: name = "chunk-size"; a->chunk_size = optarg; break;
		case OPT_FROM: name = "from"; a->from = optarg; break;
		case OPT_NEW_KEY: name = "new-key-file"; a->new_key = optarg; break;
		case 'r': name = "r"; a->recursive = true; break;
		case 'f': name = "f"; a->foreground = true; break;
		case OPT_REGION: {
			char *eq = strchr(optarg, '=');

			name = "region";
			if (!eq)
				return usage_error("--region %s: expected PREFIX=KIND", optarg);
			if (a->nregions == PF_MAX_REGIONS)
				return usage_error("--region %s: too many regions", optarg);
			*eq = '\0';
			a->regions[a->nregions].prefix = optarg;
			if (strcmp(eq + 1, "encrypted") == 0)
				a->regions[a->nregions].kind = PF_REGION_ENCRYPTED;
			else if (strcmp(eq + 1, "authenticated") == 0)
				a->regions[a->nregions].kind = PF_REGION_AUTHENTICATED;
			else if (strcmp(eq + 1, "plain") == 0)
				a->regions[a->nregions].kind = PF_REGION_PLAIN;
			else
				return usage_error("--region: unknown kind '%s' (encrypted, "
						   "authenticated or plain)", eq + 1);
			a->nregions++;
			break;
		}
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
		if (name && !strchr(allowed, c == OPT_REGION ? 'R' : c == OPT_CHUNK ? 'C' :
				    c == OPT_FROM ? 'F' : c == OPT_NEW_KEY ? 'N' :
				    c == OPT_EXPECT_VERSION ? 'T' : c))
			/* Named by the option, not argv[optind - 1]: that is its
			 * value when one was given apart ("--expect-version 6"). */
			return usage_error("option '%s%s' does not apply to 'kiln fs %s'",
					   name[1] ? "--" : "-", name, argv[0]);
		/* getopt permutes: positional arguments may come after options. */
	}
	for (int i = optind; i < argc; i++) {
		if (a->npos == max_pos)
			return usage_error("unexpected argument '%s'", argv[i]);
		a->pos[a->npos++] = argv[i];
	}
	if (a->npos < min_pos)
		return usage_error("%s: missing arguments", argv[0]);
	return -1;
}

/* ---- subcommands ---- */

static int cmd_init(int argc, char **argv)
{
	struct pf_volume_opts o = { 0 };
	struct kiln_err err = { 0 };
	uint8_t key[PF_KEY_SIZE];
	struct fs_args a;
	pf_volume_t *v = NULL;
	const char *kf;
	uint64_t cs = 0;
	int ret = cli_fs_parse(argc, argv, "RC", 1, 1, &a);

	if (ret >= 0)
		return ret;
	kf = key_file();
	if (!kf)
		return usage_error("init: --key-file KEY is required");
	if (a.chunk_size && (kiln_parse_u64(a.chunk_size, &cs) != 0 || cs > UINT32_MAX))
		return usage_error("--chunk-size %s: not a number", a.chunk_size);
	if (access(kf, F_OK) == 0)
		ret = cli_volume_key_read(kf, key);
	else
		ret = create_key(kf, key);
	if (ret)
		return CLI_EXIT_FAIL;
	ret = freshness(kf, &o);
	if (ret)
		goto out;
	o.chunk_size = (uint32_t)cs;
	o.regions = a.regions;
	o.regions_len = a.nregions;
	ret = pf_volume_init(a.pos[0], key, &o, &v, &err);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		goto out;
	}
	printf("initialized volume %s (chunk size %u, version %llu)\n", a.pos[0],
	       pf_volume_chunk_size(v), (unsigned long long)pf_volume_version(v));
	ret = cli_fs_close_volume(v, 0);
out:
	kiln_wipe(key, sizeof(key));
	return ret ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* mkdir -p for the parents of path inside the volume. */
static int make_parents(pf_volume_t *v, const char *path)
{
	char buf[PF_MAX_PATH];
	struct kiln_err err = { 0 };

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *s = buf + 1; *s; s++) {
		struct pf_stat st;
		int ret;

		if (*s != '/')
			continue;
		*s = '\0';
		if (pf_stat(v, buf, &st, NULL) != 0 && (ret = pf_mkdir(v, buf, 0755, &err))) {
			cli_error("%s", kiln_err_msg(&err, ret));
			return ret;
		}
		*s = '/';
	}
	return 0;
}

/* Copy fd (a pipe or terminal) to f from offset *off until EOF. */
static int put_stream(int fd, const char *from, pf_file_t *f, uint8_t *buf, uint64_t *off)
{
	struct kiln_err err = { 0 };

	for (;;) {
		ssize_t n = read(fd, buf, FS_IO_SIZE), w;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_error("%s: %s", from, strerror(errno));
			return -EIO;
		}
		if (n == 0)
			return 0;
		w = pf_pwrite(f, buf, (size_t)n, *off, &err);
		if (w < 0) {
			cli_error("%s", kiln_err_msg(&err, (int)w));
			return -EIO;
		}
		*off += (uint64_t)n;
	}
}

/* Copy a regular file's data ranges only (SEEK_DATA/SEEK_HOLE), so that its
 * holes stay holes in the volume (no chunk stored, like cp --sparse=auto).
 * -ESPIPE when fd is not a regular file. */
static int put_sparse(int fd, const char *from, pf_file_t *f, uint8_t *buf)
{
	struct kiln_err err = { 0 };
	struct stat st;
	off_t data = 0, hole;
	int ret;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return -ESPIPE;
	for (;;) {
		off_t at = data;

		data = lseek(fd, at, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* no data after: the rest is a hole */
		if (data < 0 && errno == EINVAL && at == 0)
			return -ESPIPE; /* no SEEK_DATA here: read it all */
		hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			cli_error("%s: %s", from, strerror(errno));
			return -EIO;
		}
		while (data < hole) {
			size_t want = hole - data < FS_IO_SIZE ? (size_t)(hole - data) : FS_IO_SIZE;
			ssize_t n = pread(fd, buf, want, data), w;

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) { /* the file shrank under us: copy what there was */
				if (n < 0) {
					cli_error("%s: %s", from, strerror(errno));
					return -EIO;
				}
				hole = data;
				break;
			}
			w = pf_pwrite(f, buf, (size_t)n, (uint64_t)data, &err);
			if (w < 0) {
				cli_error("%s", kiln_err_msg(&err, (int)w));
				return -EIO;
			}
			data += n;
		}
		data = hole;
		if (fstat(fd, &st) != 0 || data >= st.st_size)
			break;
	}
	/* A trailing hole: the size says where the file ends. */
	if (fstat(fd, &st) == 0 && (ret = pf_ftruncate(f, (uint64_t)st.st_size, &err)) != 0) {
		cli_error("%s", kiln_err_msg(&err, ret));
		return -EIO;
	}
	return 0;
}

static int cmd_put(int argc, char **argv)
{
	struct kiln_err err = { 0 };
	struct fs_args a;
	pf_volume_t *v;
	pf_file_t *f = NULL;
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int fd = 0, ret = cli_fs_parse(argc, argv, "F", 2, 2, &a), status = CLI_EXIT_FAIL;

	if (ret >= 0)
		return ret;
	if (a.from && strcmp(a.from, "-") != 0) {
		fd = open(a.from, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			cli_error("%s: %s", a.from, strerror(errno));
			return CLI_EXIT_FAIL;
		}
	}
	if (cli_fs_open_volume(a.pos[0], &v)) {
		if (fd > 0)
			close(fd);
		return CLI_EXIT_FAIL;
	}
	buf = malloc(FS_IO_SIZE);
	if (!buf)
		goto out;
	{
		struct pf_stat st;

		ret = pf_stat(v, a.pos[1], &st, &err);
		if (ret == -EINVAL || ret == -ENAMETOOLONG) {
			cli_error("%s", kiln_err_msg(&err, ret));
			goto out;
		}
	}
	if (make_parents(v, a.pos[1]))
		goto out;
	ret = pf_open(v, a.pos[1], O_WRONLY | O_CREAT | O_TRUNC, 0644, &f, &err);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		goto out;
	}
	ret = put_sparse(fd, a.from ? a.from : "stdin", f, buf);
	if (ret == -ESPIPE) /* not a regular file: read it to the end */
		ret = put_stream(fd, a.from ? a.from : "stdin", f, buf, &off);
	if (ret)
		goto out;
	ret = pf_fsync(f, &err);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		goto out;
	}
	status = CLI_EXIT_OK;
out:
	pf_close(f);
	if (buf)
		kiln_free_secret(buf, FS_IO_SIZE);
	if (fd > 0)
		close(fd);
	return cli_fs_close_volume(v, status);
}

static int cmd_cat(int argc, char **argv)
{
	struct kiln_err err = { 0 };
	struct fs_live *live;
	struct fs_args a;
	pf_volume_t *v;
	pf_file_t *f = NULL;
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int ret = cli_fs_parse(argc, argv, "", 2, 2, &a), status = CLI_EXIT_FAIL;

	if (ret >= 0)
		return ret;
	if ((live = live_server(a.pos[0]))) {
		ret = fs_live_cat(live, a.pos[1]);
		fs_live_close(live);
		return ret ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	}
	if (cli_fs_open_volume(a.pos[0], &v))
		return CLI_EXIT_FAIL;
	buf = malloc(FS_IO_SIZE);
	if (!buf)
		goto out;
	ret = pf_open(v, a.pos[1], O_RDONLY, 0, &f, &err);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		goto out;
	}
	for (;;) {
		ssize_t n = pf_pread(f, buf, FS_IO_SIZE, off, &err);

		if (n < 0) {
			cli_error("%s", kiln_err_msg(&err, (int)n));
			goto out;
		}
		if (n == 0)
			break;
		if (kiln_write_all(STDOUT_FILENO, buf, (size_t)n) != 0) {
			cli_error("stdout: %s", strerror(errno));
			goto out;
		}
		off += (uint64_t)n;
	}
	status = CLI_EXIT_OK;
out:
	pf_close(f);
	if (buf)
		kiln_free_secret(buf, FS_IO_SIZE);
	return cli_fs_close_volume(v, status);
}

static const char *kind_name(enum pf_region_kind k)
{
	return k == PF_REGION_PLAIN ? "plain" : k == PF_REGION_AUTHENTICATED ? "authenticated"
									      : "encrypted";
}

static int ls_dir(pf_volume_t *v, const char *dir, bool recursive)
{
	struct kiln_err err = { 0 };
	char **names = NULL;
	size_t count = 0;
	int ret = pf_readdir(v, dir, &names, &count, &err);

	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		return ret;
	}
	for (size_t i = 0; i < count && !ret; i++) {
		char path[PF_MAX_PATH + 256];
		struct pf_stat st;

		snprintf(path, sizeof(path), "%s%s%s", dir, dir[0] ? "/" : "", names[i]);
		ret = pf_stat(v, path, &st, &err);
		if (ret) {
			cli_error("%s", kiln_err_msg(&err, ret));
			break;
		}
		printf("%c%04o %12llu %-13s %s%s\n", st.is_dir ? 'd' : '-', (unsigned)st.mode,
		       (unsigned long long)st.size, kind_name(st.kind), path,
		       st.is_dir ? "/" : "");
		if (st.is_dir && recursive)
			ret = ls_dir(v, path, true);
	}
	pf_names_free(names, count);
	return ret;
}

static int cmd_ls(int argc, char **argv)
{
	struct fs_live *live;
	struct fs_args a;
	pf_volume_t *v;
	char dir[PF_MAX_PATH];
	struct pf_stat st;
	struct kiln_err err = { 0 };
	int ret = cli_fs_parse(argc, argv, "r", 1, 2, &a);

	if (ret >= 0)
		return ret;
	snprintf(dir, sizeof(dir), "%s", a.npos > 1 ? a.pos[1] : "");
	while (dir[0] == '/')
		memmove(dir, dir + 1, strlen(dir));
	if ((live = live_server(a.pos[0]))) {
		ret = fs_live_ls(live, dir, a.recursive);
		fs_live_close(live);
		return ret ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	}
	if (cli_fs_open_volume(a.pos[0], &v))
		return CLI_EXIT_FAIL;
	ret = pf_stat(v, dir, &st, &err);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
	} else if (!st.is_dir) {
		printf("-%04o %12llu %-13s %s\n", (unsigned)st.mode, (unsigned long long)st.size,
		       kind_name(st.kind), dir);
	} else {
		ret = ls_dir(v, dir, a.recursive);
	}
	return cli_fs_close_volume(v, ret ? CLI_EXIT_FAIL : CLI_EXIT_OK);
}

static int cmd_rm(int argc, char **argv)
{
	struct kiln_err err = { 0 };
	struct fs_args a;
	struct pf_stat st;
	pf_volume_t *v;
	int ret = cli_fs_parse(argc, argv, "", 2, 2, &a);

	if (ret >= 0)
		return ret;
	if (cli_fs_open_volume(a.pos[0], &v))
		return CLI_EXIT_FAIL;
	ret = pf_stat(v, a.pos[1], &st, &err);
	if (!ret)
		ret = st.is_dir ? pf_rmdir(v, a.pos[1], &err) : pf_unlink(v, a.pos[1], &err);
	if (!ret)
		ret = pf_fsync_dir(v, &err);
	if (ret)
		cli_error("%s", kiln_err_msg(&err, ret));
	return cli_fs_close_volume(v, ret ? CLI_EXIT_FAIL : CLI_EXIT_OK);
}

struct verify_state {
	size_t ok, bad;
};

static void verify_cb(void *arg, const char *path, int code, const char *msg)
{
	struct verify_state *s = arg;

	if (code == 0) {
		s->ok++;
		printf("ok      %s\n", path);
	} else {
		s->bad++;
		printf("FAILED  %s: %s\n", path, msg);
	}
}

static int cmd_verify(int argc, char **argv)
{
	struct kiln_err err = { 0 };
	struct verify_state s = { 0, 0 };
	struct fs_args a;
	pf_volume_t *v;
	int ret = cli_fs_parse(argc, argv, "T", 1, 1, &a);

	if (ret >= 0)
		return ret;
	if (cli_fs_open_volume(a.pos[0], &v))
		return CLI_EXIT_FAIL;
	ret = pf_volume_verify(v, verify_cb, &s, &err);
	printf("volume version: %llu\n", (unsigned long long)pf_volume_version(v));
	/* Commits since the last checkpoint: a volume left by a crash. */
	if (pf_volume_log_records(v))
		printf("commit log: %u record(s) after the metadata\n", pf_volume_log_records(v));
	printf("%zu file(s) intact, %zu damaged\n", s.ok, s.bad);
	if (ret && s.bad == 0)
		cli_error("%s", kiln_err_msg(&err, ret));
	else if (ret)
		cli_error("verify: %zu file(s) damaged; first: %s", s.bad, kiln_err_msg(&err, ret));
	return cli_fs_close_volume(v, ret ? CLI_EXIT_FAIL : CLI_EXIT_OK);
}

static int cmd_rekey(int argc, char **argv)
{
	struct pf_volume_opts o = { 0 };
	struct kiln_err err = { 0 };
	uint8_t key[PF_KEY_SIZE];
	struct fs_args a;
	pf_volume_t *v;
	char tpath[4096];
	int ret = cli_fs_parse(argc, argv, "N", 1, 1, &a);

	if (ret >= 0)
		return ret;
	if (!a.new_key)
		return usage_error("rekey: --new-key-file K2 is required");
	if (access(a.new_key, F_OK) == 0)
		ret = cli_volume_key_read(a.new_key, key);
	else
		ret = create_key(a.new_key, key);
	if (ret)
		return CLI_EXIT_FAIL;
	if (cli_fs_open_volume(a.pos[0], &v)) {
		kiln_wipe(key, sizeof(key));
		return CLI_EXIT_FAIL;
	}
	ret = pf_volume_rekey(v, key, &err);
	kiln_wipe(key, sizeof(key));
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		return cli_fs_close_volume(v, CLI_EXIT_FAIL);
	}
	/* The new key's version file starts at the volume's current version. */
	snprintf(tpath, sizeof(tpath), "%s.version", a.new_key);
	ret = pf_freshness_local(tpath, &o.freshness, &o.freshness_ctx);
	if (!ret)
		ret = o.freshness->prepare(o.freshness_ctx, pf_volume_version(v), &err);
	if (!ret)
		ret = o.freshness->commit(o.freshness_ctx, pf_volume_version(v), &err);
	if (o.freshness)
		o.freshness->free(o.freshness_ctx);
	if (ret) {
		cli_error("%s", kiln_err_msg(&err, ret));
		return cli_fs_close_volume(v, CLI_EXIT_FAIL);
	}
	printf("volume %s rekeyed (version %llu, trusted version in %s)\n", a.pos[0],
	       (unsigned long long)pf_volume_version(v), tpath);
	return cli_fs_close_volume(v, CLI_EXIT_OK);
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} g_fs_cmds[] = {
	{ "init", cmd_init }, { "put", cmd_put }, { "cat", cmd_cat }, { "ls", cmd_ls },
	{ "rm", cmd_rm }, { "verify", cmd_verify }, { "rekey", cmd_rekey },
	{ "mount", cli_fs_mount },
};

int fs_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(g_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(g_usage, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_fs_cmds); i++)
		if (strcmp(argv[1], g_fs_cmds[i].name) == 0)
			return g_fs_cmds[i].fn(argc - 1, argv + 1);
	cli_error("fs: unknown command '%s' (see 'kiln fs --help')", argv[1]);
	return CLI_EXIT_USAGE;
}
