/* Unit tests for the pure parts of src/runtime: the syscall table, path
 * normalization and volume matching, the fd table and the launcher config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/runtime.h"

static void test_syscall_table_complete(void **state)
{
	/* Every number 0..max has an entry: a name, a valid action, and arguments
	 * that exist (x86-64 calls take at most 6). */
	for (int nr = 0; nr <= RT_SYSCALL_MAX; nr++) {
		const struct rt_syscall *s = &g_rt_syscalls[nr];

		assert_non_null(s->name);
		assert_true(s->name[0] != '\0');
		assert_true(s->action <= RT_SYS_RUNTIME);
		assert_true(s->fd_mask < (1u << 6));
		assert_non_null(s->note);
		/* The handler the table names for the action (sys/ in libkiln). */
		assert_non_null(s->handler);
		if (s->action == RT_SYS_PASS)
			assert_string_equal(s->handler, "rt__sys_pass");
		else if (s->action == RT_SYS_REFUSE)
			assert_string_equal(s->handler, "rt__sys_refuse");
		else
			assert_true(strncmp(s->handler, "rt__sys_", 8) == 0 &&
				    strcmp(s->handler, "rt__sys_refuse") != 0);
		for (int i = 0; i < 2; i++) {
			assert_true(s->paths[i][0] >= -1 && s->paths[i][0] < 6);
			assert_true(s->paths[i][1] >= -1 && s->paths[i][1] < 6);
			if (s->paths[i][1] < 0)
				assert_int_equal(s->paths[i][0], -1);
		}
	}
	assert_int_equal(RT_SYSCALL_COUNT, RT_SYSCALL_MAX + 1);
}

static void test_syscall_table_contents(void **state)
{
	assert_string_equal(g_rt_syscalls[SYS_openat].name, "openat");
	assert_int_equal(g_rt_syscalls[SYS_openat].action, RT_SYS_SHIELD);
	assert_int_equal(g_rt_syscalls[SYS_openat].paths[0][0], 0);
	assert_int_equal(g_rt_syscalls[SYS_openat].paths[0][1], 1);
	/* Data calls on a protected fd keep the shared chunk state. */
	assert_int_equal(g_rt_syscalls[SYS_read].action, RT_SYS_SHIELD);
	assert_int_equal(g_rt_syscalls[SYS_read].fd_mask, 1);
	assert_string_equal(g_rt_syscalls[SYS_pwritev2].handler, "rt__sys_data");
	assert_int_equal(g_rt_syscalls[SYS_mmap].fd_mask, 1 << 4);
	assert_int_equal(g_rt_syscalls[SYS_munmap].action, RT_SYS_RUNTIME);
	assert_int_equal(g_rt_syscalls[SYS_ioctl].action, RT_SYS_PASS);
	assert_int_equal(g_rt_syscalls[SYS_close].action, RT_SYS_SHIELD);
	assert_int_equal(g_rt_syscalls[SYS_fsync].action, RT_SYS_SHIELD);
	assert_int_equal(g_rt_syscalls[SYS_link].action, RT_SYS_SHIELD);
	assert_int_equal(g_rt_syscalls[SYS_setxattr].action, RT_SYS_REFUSE);
	assert_int_equal(g_rt_syscalls[SYS_mknodat].action, RT_SYS_SHIELD);
	assert_int_equal(g_rt_syscalls[SYS_mount].action, RT_SYS_REFUSE);
	/* AF_UNIX addresses may name a volume path: always looked at. */
	assert_int_equal(g_rt_syscalls[SYS_bind].action, RT_SYS_RUNTIME);
	assert_int_equal(g_rt_syscalls[SYS_connect].action, RT_SYS_RUNTIME);
	assert_int_equal(g_rt_syscalls[SYS_rt_sigreturn].action, RT_SYS_RUNTIME);
	assert_int_equal(g_rt_syscalls[SYS_execve].action, RT_SYS_RUNTIME);
	/* renameat2: two (dirfd, path) pairs. */
	assert_int_equal(g_rt_syscalls[SYS_renameat2].paths[1][0], 2);
	assert_int_equal(g_rt_syscalls[SYS_renameat2].paths[1][1], 3);
	assert_string_equal(g_rt_syscalls[SYS_openat].handler, "rt__sys_openat");
	assert_string_equal(g_rt_syscalls[SYS_fstat].handler, "rt__sys_fstat");
	assert_string_equal(g_rt_syscalls[SYS_rt_sigreturn].handler, "rt__sys_pass");
	/* The supervisor of static programs traps what it implements, from the
	 * same table. */
	assert_true(g_rt_syscalls[SYS_openat].supervised);
	assert_true(g_rt_syscalls[SYS_exit_group].supervised);
	assert_true(g_rt_syscalls[SYS_close].supervised);
	assert_false(g_rt_syscalls[SYS_read].supervised);
	assert_false(g_rt_syscalls[SYS_chmod].supervised);
	/* ... and execs, which an attested static program may not do. */
	assert_true(g_rt_syscalls[SYS_execve].supervised);
	assert_true(g_rt_syscalls[SYS_execveat].supervised);
	/* ... and listings of the volume directories it opens. */
	assert_true(g_rt_syscalls[SYS_getdents64].supervised);
	{
		int n = 0;

		for (int nr = 0; nr <= RT_SYSCALL_MAX; nr++)
			n += g_rt_syscalls[nr].supervised;
		assert_int_equal(n, 27);
	}
	/* Numbers without a call are listed too. */
	assert_string_equal(g_rt_syscalls[400].name, "unassigned");
	assert_string_equal(rt_syscall_name(SYS_getdents64), "getdents64");
	assert_string_equal(rt_syscall_name(-1), "unknown");
	assert_string_equal(rt_syscall_name(RT_SYSCALL_MAX + 1), "unknown");
}

static void norm_ok(const char *cwd, const char *path, const char *want)
{
	char out[256];

	assert_int_equal(rt_path_normalize(cwd, path, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_path_normalize(void **state)
{
	char small[8];

	norm_ok(NULL, "/", "/");
	norm_ok(NULL, "/a/b/", "/a/b");
	norm_ok(NULL, "//a///b", "/a/b");
	norm_ok(NULL, "/a/./b/.", "/a/b");
	norm_ok(NULL, "/a/b/../c", "/a/c");
	norm_ok(NULL, "/../..", "/");
	norm_ok(NULL, "/a/..", "/");
	norm_ok("/data", "x.db", "/data/x.db");
	norm_ok("/data/sub", "../x", "/data/x");
	norm_ok("/", "./x/../y", "/y");
	norm_ok("/data", ".", "/data");
	norm_ok("/data", "...", "/data/...");
	assert_int_equal(rt_path_normalize(NULL, "", small, sizeof(small)), -EINVAL);
	assert_int_equal(rt_path_normalize(NULL, "rel", small, sizeof(small)), -EINVAL);
	assert_int_equal(rt_path_normalize("rel", "x", small, sizeof(small)), -EINVAL);
	assert_int_equal(rt_path_normalize(NULL, "/abcdefgh", small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(rt_path_normalize(NULL, "/abcdefg", small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(rt_path_normalize(NULL, "/abcdef", small, sizeof(small)), 0);
	assert_string_equal(small, "/abcdef");
}

static void test_path_under(void **state)
{
	assert_string_equal(rt_path_under("/data", "/data"), "");
	assert_string_equal(rt_path_under("/data/a/b", "/data"), "a/b");
	assert_null(rt_path_under("/database", "/data"));
	assert_null(rt_path_under("/dat", "/data"));
	assert_null(rt_path_under("/other/data", "/data"));
	assert_string_equal(rt_path_under("/x/y", "/"), "x/y");
	assert_string_equal(rt_path_under("/", "/"), "");
}

static void tail_is(const char *path, enum rt_path_last want, bool want_slash)
{
	bool slash = !want_slash;

	assert_int_equal(rt_path_tail(path, &slash), want);
	assert_int_equal(slash, want_slash);
}

static void test_path_tail(void **state)
{
	tail_is("a", RT_LAST_NORM, false);
	tail_is("a/b/", RT_LAST_NORM, true);
	tail_is("a/.", RT_LAST_DOT, false);
	tail_is(".", RT_LAST_DOT, false);
	tail_is("./", RT_LAST_DOT, true);
	tail_is("a/..", RT_LAST_DOTDOT, false);
	tail_is("..//", RT_LAST_DOTDOT, true);
	tail_is("/", RT_LAST_ROOT, true);
	tail_is("//", RT_LAST_ROOT, true);
	tail_is("a.", RT_LAST_NORM, false);
	tail_is("a/...", RT_LAST_NORM, false);
	tail_is("a/.b", RT_LAST_NORM, false);
	tail_is("x..", RT_LAST_NORM, false);
	tail_is("", RT_LAST_NORM, false);
}

/* rt_path_next splits "//a/./..b/../" into its components and their kinds. */
static void test_path_next(void **state)
{
	static const struct {
		enum rt_path_last kind;
		const char *seg;
	} want[] = {
		{ RT_LAST_NORM, "a" }, { RT_LAST_DOT, "." }, { RT_LAST_NORM, "..b" },
		{ RT_LAST_DOTDOT, ".." }, { RT_LAST_ROOT, "" }, { RT_LAST_ROOT, "" },
	};
	const char *p = "//a/./..b/../", *seg;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(rt_path_next(&p, &seg, &len), want[i].kind);
		assert_int_equal(len, strlen(want[i].seg));
		assert_memory_equal(seg, want[i].seg, len);
	}
	assert_string_equal(p, "");
	p = "";
	assert_int_equal(rt_path_next(&p, &seg, &len), RT_LAST_ROOT);
	p = "...";
	assert_int_equal(rt_path_next(&p, &seg, &len), RT_LAST_NORM);
	assert_int_equal(len, 3);
}

static void abs_ok(const char *cwd, const char *path, const char *want)
{
	char out[256];

	assert_int_equal(rt_path_absolute(cwd, path, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_path_absolute(void **state)
{
	char small[12];

	/* Plain last components: as rt_path_normalize. */
	abs_ok("/v/c", "a/b", "/v/c/a/b");
	abs_ok("/v/c", "../x", "/v/x");
	abs_ok("/v/c", "/abs/./p", "/abs/p");
	/* ".", ".." and "name/" stay as written, after a normalized head. */
	abs_ok("/v/c", "new/", "/v/c/new/");
	abs_ok("/v/c", "d/sub/.", "/v/c/d/sub/.");
	abs_ok("/v/c", "d/./sub/..", "/v/c/d/sub/..");
	abs_ok("/v/c", ".", "/v/c/.");
	abs_ok("/v/c", "..", "/v/c/..");
	abs_ok("/", "x/", "/x/");
	abs_ok("/", "..", "/..");
	assert_int_equal(rt_path_absolute("/v/c", "long-name/", small, sizeof(small)),
			 -ENAMETOOLONG);
}

static void test_fd_table(void **state)
{
	_Alignas(8) long obj1, obj2;
	enum rt_fd_kind kind;
	size_t base = rt_fd_count();

	/* Objects are at least 8-byte aligned: the kind lives in the low 3 bits. */
	assert_int_equal(rt_fd_kind(5), RT_FD_NONE);
	assert_null(rt_fd_get(5));
	assert_null(rt_fd_set(5, RT_FD_FILE, &obj1));
	assert_int_equal(rt_fd_kind(5), RT_FD_FILE);
	assert_ptr_equal(rt_fd_get(5), &obj1);
	assert_int_equal(rt_fd_count(), base + 1);
	/* Replacing returns the previous object and keeps the count. */
	assert_ptr_equal(rt_fd_set(5, RT_FD_DIR, &obj2), &obj1);
	assert_int_equal(rt_fd_kind(5), RT_FD_DIR);
	assert_int_equal(rt_fd_count(), base + 1);
	assert_ptr_equal(rt_fd_clear(5, &kind), &obj2);
	assert_int_equal(kind, RT_FD_DIR);
	assert_int_equal(rt_fd_kind(5), RT_FD_NONE);
	assert_int_equal(rt_fd_count(), base);
	assert_null(rt_fd_clear(5, &kind));
	assert_int_equal(kind, RT_FD_NONE);
	/* Runtime-owned fds carry no object. */
	rt_fd_set(7, RT_FD_OWNED, NULL);
	assert_int_equal(rt_fd_kind(7), RT_FD_OWNED);
	assert_null(rt_fd_get(7));
	rt_fd_clear(7, NULL);
	/* So do the program's fds on /proc/self/fd. */
	rt_fd_set(7, RT_FD_PROCFD, NULL);
	assert_int_equal(rt_fd_kind(7), RT_FD_PROCFD);
	assert_null(rt_fd_get(7));
	rt_fd_clear(7, NULL);
	/* Out of range. */
	assert_false(rt_fd_in_range(-1));
	assert_false(rt_fd_in_range(RT_FD_MAX));
	assert_true(rt_fd_in_range(RT_FD_MAX - 1));
	assert_null(rt_fd_set(RT_FD_MAX, RT_FD_FILE, &obj1));
	assert_int_equal(rt_fd_kind(RT_FD_MAX), RT_FD_NONE);
	assert_int_equal(rt_fd_kind(-3), RT_FD_NONE);
	assert_null(rt_fd_get(-3));
}

/* rt_fd_clear_if: removes only the exact (kind, object) it was given. */
static void test_fd_clear_if(void **state)
{
	int obj1, obj2;
	size_t base = rt_fd_count();

	assert_false(rt_fd_clear_if(9, RT_FD_FILE, &obj1)); /* empty slot */
	rt_fd_set(9, RT_FD_FILE, &obj1);
	assert_false(rt_fd_clear_if(9, RT_FD_FILE, &obj2)); /* other object */
	assert_false(rt_fd_clear_if(9, RT_FD_DIR, &obj1));  /* other kind */
	assert_ptr_equal(rt_fd_get(9), &obj1);
	assert_int_equal(rt_fd_count(), base + 1);
	assert_true(rt_fd_clear_if(9, RT_FD_FILE, &obj1));
	assert_int_equal(rt_fd_kind(9), RT_FD_NONE);
	assert_int_equal(rt_fd_count(), base);
	assert_false(rt_fd_clear_if(9, RT_FD_FILE, &obj1)); /* second close loses */
	assert_false(rt_fd_clear_if(RT_FD_MAX, RT_FD_FILE, &obj1));
	assert_false(rt_fd_clear_if(-1, RT_FD_FILE, &obj1));
	assert_int_equal(rt_fd_count(), base);
}

static void test_config_round_trip(void **state)
{
	struct rt_config *in = calloc(1, sizeof(*in)), *out = malloc(sizeof(*out));
	struct kiln_err err = { 0 };
	char *text;
	size_t size;

	/* The parse zeroes what it fills, not the whole struct: nothing may
	 * come from what was there before. */
	memset(out, 0xa5, sizeof(*out));

	in->dev = true;
	in->sud = false;
	in->freshness = RT_FRESH_EVERY_FSYNC;
	in->n_volumes = 2;
	strcpy(in->volumes[0].mount, "/data");
	strcpy(in->volumes[0].dir, "/srv/vol");
	memset(in->volumes[0].key, 0xab, 32);
	strcpy(in->volumes[1].mount, "/srv/other");
	strcpy(in->volumes[1].dir, "/srv/other");
	memset(in->volumes[1].key, 0x01, 32);
	strcpy(in->volumes[1].tag_file, "/etc/kiln/other.key.tag");
	strcpy(in->cwd, "/data/sub");
	assert_int_equal(rt_config_serialize(in, &text, &size), 0);
	assert_int_equal(strlen(text), size);
	assert_int_equal(rt_config_parse(text, size, out, &err), 0);
	assert_true(out->dev);
	assert_false(out->sud);
	assert_int_equal(out->freshness, RT_FRESH_EVERY_FSYNC);
	assert_int_equal(out->n_volumes, 2);
	assert_string_equal(out->volumes[0].mount, "/data");
	assert_string_equal(out->volumes[0].dir, "/srv/vol");
	assert_memory_equal(out->volumes[0].key, in->volumes[0].key, 32);
	assert_string_equal(out->volumes[1].mount, "/srv/other");
	assert_string_equal(out->volumes[0].tag_file, "");
	assert_string_equal(out->volumes[1].tag_file, "/etc/kiln/other.key.tag");
	assert_string_equal(out->volumes[1].cas_id, "");
	assert_int_equal(out->volumes[1].committed, 0);
	assert_string_equal(out->cwd, "/data/sub");
	assert_string_equal(out->cas, "");
	assert_string_equal(out->kiln, "");
	assert_int_equal(out->n_host_env, 0);
	assert_int_equal(out->n_volume_dirs, 0);
	assert_int_equal(out->n_fds, 0);
	kiln_free_secret(text, size);
	rt_config_wipe(out);
	free(in);
	free(out);
}

/* rt_config_wipe touches only what is in use (the struct is 290 KB), yet
 * leaves no byte of a key: the counted entries, and the one after them that
 * a failed --volume or config line filled before counting it. */
static void test_config_wipe(void **state)
{
	struct rt_config *cfg = calloc(1, sizeof(*cfg));
	uint8_t *zero = calloc(1, sizeof(*cfg));

	(void)state;
	cfg->dev = true;
	strcpy(cfg->cas, "https://cas:8443");
	cfg->n_host_env = 1;
	strcpy(cfg->host_env[0], "HOSTNAME");
	cfg->n_volume_dirs = 1;
	strcpy(cfg->volume_dirs[0].name, "db");
	strcpy(cfg->volume_dirs[0].dir, "/srv/db");
	cfg->n_volumes = 2;
	memset(cfg->volumes[0].key, 0xab, 32);
	memset(cfg->volumes[1].key, 0xab, 32);
	strcpy(cfg->volumes[1].mount, "/data");
	memset(cfg->volumes[2].key, 0xcd, 32); /* filled, not counted */
	cfg->n_fds = 1;
	cfg->fds[0].id = 77;
	rt_config_wipe(cfg);
	assert_memory_equal(cfg, zero, sizeof(*cfg));
	/* Counts past the tables (a corrupt struct) are clamped, not followed. */
	cfg->n_volumes = (size_t)-1;
	cfg->n_host_env = 1u << 30;
	memset(cfg->volumes[RT_MAX_VOLUMES - 1].key, 0xab, 32);
	rt_config_wipe(cfg);
	assert_memory_equal(cfg, zero, sizeof(*cfg));
	free(zero);
	free(cfg);
}

static void parse_fails(const char *text, int code, const char *msg)
{
	struct rt_config *cfg = calloc(1, sizeof(*cfg));
	struct kiln_err err = { 0 };

	assert_int_equal(rt_config_parse(text, strlen(text), cfg, &err), code);
	assert_string_equal(err.msg, msg);
	/* Failed parses leave nothing behind (keys wiped). */
	assert_int_equal(cfg->n_volumes, 0);
	free(cfg);
}

static void test_config_errors(void **state)
{
	char key[65];

	memset(key, 'a', 64);
	key[64] = '\0';
	parse_fails("nope\nend\n", -KILN_EFORMAT,
		    "config: first line is not 'kiln-runtime-config-v1'");
	parse_fails("kiln-runtime-config-v1\nsud on\n", -KILN_ETRUNC,
		    "config: missing 'end' line");
	parse_fails("kiln-runtime-config-v1\nbogus\nend\n", -KILN_EFORMAT,
		    "config line 2: malformed");
	parse_fails("kiln-runtime-config-v1\nfreshness sometimes\nend\n", -KILN_EFORMAT,
		    "config line 2: malformed");
	parse_fails("kiln-runtime-config-v1\nvolume rel /d aa\nend\n", -KILN_EFORMAT,
		    "config line 2: malformed");
	parse_fails("kiln-runtime-config-v1\nvolume /m /d abcd\nend\n", -KILN_EFORMAT,
		    "config line 2: malformed");
	/* A key with trailing garbage is refused and never echoed. */
	{
		char text[256];

		snprintf(text, sizeof(text), "kiln-runtime-config-v1\nvolume /m /d %s x\nend\n",
			 key);
		parse_fails(text, -KILN_EFORMAT, "config line 2: malformed");
	}
}

static void test_file_cache_parse(void **state)
{
	uint64_t files = 7, mib = 256;

	assert_int_equal(rt_file_cache_parse("32", &files, &mib), 0);
	assert_int_equal(files, 32);
	assert_int_equal(mib, 256); /* unchanged without ":MIB" */
	assert_int_equal(rt_file_cache_parse("1000:2048", &files, &mib), 0);
	assert_int_equal(files, 1000);
	assert_int_equal(mib, 2048);
	assert_int_equal(rt_file_cache_parse("0", &files, &mib), 0);
	assert_int_equal(files, 0);
	assert_int_equal(rt_file_cache_parse("10:0", &files, &mib), 0);
	assert_int_equal(mib, 0);
	/* Rejected; the outputs keep their values. */
	files = 5;
	mib = 6;
	assert_int_equal(rt_file_cache_parse("", &files, &mib), -EINVAL);
	assert_int_equal(rt_file_cache_parse("lots", &files, &mib), -EINVAL);
	assert_int_equal(rt_file_cache_parse("-1", &files, &mib), -EINVAL);
	assert_int_equal(rt_file_cache_parse("4:", &files, &mib), -EINVAL);
	assert_int_equal(rt_file_cache_parse(":4", &files, &mib), -EINVAL);
	assert_int_equal(rt_file_cache_parse("4:5:6", &files, &mib), -EINVAL);
	assert_int_equal(rt_file_cache_parse("4:17592186044416", &files, &mib), -EINVAL);
	assert_int_equal(rt_file_cache_parse("123456789012345678901234567890123", &files, &mib),
			 -EINVAL);
	assert_int_equal(files, 5);
	assert_int_equal(mib, 6);
}

static void test_freshness_parse(void **state)
{
	enum rt_freshness f;

	assert_int_equal(rt_freshness_parse("every-fsync", &f), 0);
	assert_int_equal(f, RT_FRESH_EVERY_FSYNC);
	assert_int_equal(rt_freshness_parse("on-close", &f), 0);
	assert_int_equal(f, RT_FRESH_ON_CLOSE);
	assert_int_equal(rt_freshness_parse("on-exit", &f), 0);
	assert_int_equal(f, RT_FRESH_ON_EXIT);
	assert_int_equal(rt_freshness_parse("never", &f), -EINVAL);
}

/* The launcher's loader variables (loader_env.c): which names, and that every
 * entry goes, duplicates and malformed ones included, the rest kept in order. */
static void test_loader_env(void **state)
{
	extern char **environ;
	char **saved = environ, dropped[200];
	char *env[] = { "PATH=/bin", "LD_PRELOAD=/proc/self/fd/3", "HOME=/root",
			"LD_PRELOAD=/x", "LD_AUDIT", "OPENSSL_CONF=/tmp/c", "MALLOC_CHECK_=3",
			"LD=1", "MALLOC=2", "XLD_PRELOAD=1", "TMPDIR=/t", "GCONV_PATH=/g", NULL };
	static const char *const keep[] = { "PATH=/bin", "HOME=/root", "LD=1", "MALLOC=2",
					    "XLD_PRELOAD=1" };

	assert_true(rt_env_is_loader("LD_LIBRARY_PATH", 15));
	assert_true(rt_env_is_loader("LD_BIND_NOW=1", 11));
	assert_true(rt_env_is_loader("GLIBC_TUNABLES", 14));
	assert_true(rt_env_is_loader("OPENSSL_MODULES", 15));
	assert_false(rt_env_is_loader("LD_", 3));
	assert_false(rt_env_is_loader("PATH", 4));
	assert_false(rt_env_is_loader("TMPDIRX", 7));
	assert_false(rt_env_is_loader("KILN_CONFIG_FD", 14));

	environ = env;
	assert_int_equal(rt_env_drop_loader(dropped, sizeof(dropped)), 7);
	assert_string_equal(dropped, "LD_PRELOAD, LD_PRELOAD, LD_AUDIT, OPENSSL_CONF, "
			    "MALLOC_CHECK_, TMPDIR, GCONV_PATH");
	for (size_t i = 0; i < KILN_ARRAY_SIZE(keep); i++)
		assert_string_equal(environ[i], keep[i]);
	assert_null(environ[KILN_ARRAY_SIZE(keep)]);
	/* Nothing left: nothing dropped. */
	assert_int_equal(rt_env_drop_loader(dropped, sizeof(dropped)), 0);
	assert_string_equal(dropped, "");

	/* One name, every entry of it (in place: bash's main reads the same
	 * array), and nothing that only starts with it. */
	char *env2[] = { "KILN_CONFIG_FD=3", "A=1", "KILN_CONFIG_FDX=4", "KILN_CONFIG_FD",
			 "KILN_CONFIG_FD=5", NULL };

	environ = env2;
	rt_env_drop("KILN_CONFIG_FD");
	assert_ptr_equal(environ, env2);
	assert_string_equal(env2[0], "A=1");
	assert_string_equal(env2[1], "KILN_CONFIG_FDX=4");
	assert_null(env2[2]);
	environ = saved;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syscall_table_complete),
		cmocka_unit_test(test_syscall_table_contents),
		cmocka_unit_test(test_path_normalize),
		cmocka_unit_test(test_path_under),
		cmocka_unit_test(test_path_tail),
		cmocka_unit_test(test_path_next),
		cmocka_unit_test(test_path_absolute),
		cmocka_unit_test(test_fd_table),
		cmocka_unit_test(test_fd_clear_if),
		cmocka_unit_test(test_config_round_trip),
		cmocka_unit_test(test_config_wipe),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_freshness_parse),
		cmocka_unit_test(test_file_cache_parse),
		cmocka_unit_test(test_loader_env),
	};
	return cmocka_run_group_tests_name("runtime", tests, NULL, NULL);
}
