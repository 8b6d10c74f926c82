/* kiln runtime (libkiln.so): the one header of src/runtime/.
 *
 * libkiln is LD_PRELOADed into an unmodified program by `kiln run`. It
 * interposes the libc I/O surface (fast path) and enables Syscall User Dispatch
 * so that every other system call, including direct `syscall` instructions and
 * glibc-internal calls, traps into the runtime (safety net). Both paths meet in
 * rt__dispatch(), which consults the table of every x86-64 system call
 * (syscalls.def, generated) and calls the handler it names (src/runtime/sys/)
 * for calls that touch a protected path or fd; everything else is issued
 * unchanged from the runtime's allowed code region.
 *
 * The launcher passes its configuration through an inherited pipe whose number
 * is in KILN_CONFIG_FD (never secrets in the environment or on the command line);
 * the format is described at rt_config_parse(). This header is also used by the
 * CLI (`kiln run`) and the unit tests. */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

/* ---- the system call table ---------------------------------------------- */
enum rt_sys_action {
	RT_SYS_PASS = 0,    /* nothing to do, even on protected fds (they are memfds) */
	RT_SYS_SHIELD = 1,  /* implemented by the file shield on protected paths/fds */
	RT_SYS_REFUSE = 2,  /* ENOTSUP + one stderr line on protected paths/fds */
	RT_SYS_RUNTIME = 3, /* always inspected by the runtime (signals, threads, exec) */
};

struct rt_syscall {
	const char *name;     /* kernel name; "unassigned" for numbers without a call */
	uint8_t action;       /* enum rt_sys_action */
	uint8_t fd_mask;      /* bit i: argument i is an fd */
	int8_t paths[2][2];   /* (dirfd argument or -1, path argument) or (-1, -1) */
	bool supervised;      /* trapped by the supervisor of static programs */
	const char *handler;  /* libkiln's handler (src/runtime/sys/), by name */
	const char *note;     /* one line for docs/runtime.md */
};

#define RT_SYSCALL_MAX 469
#define RT_SYSCALL_COUNT (RT_SYSCALL_MAX + 1)
/* pwritev2's flags RWF_DSYNC | RWF_SYNC (<linux/fs.h>; musl's headers lack
 * them): the write is durable when it returns (shield/data.c,
 * supervise_sync.c). */
#define RT_RWF_SYNCING (0x2 | 0x4)
extern const struct rt_syscall g_rt_syscalls[RT_SYSCALL_COUNT];

/* Name of syscall nr ("unknown" outside the table). */
const char *rt_syscall_name(long nr);

/* st_dev of the files of the volume whose store (.kiln) has this device and
 * inode number (voldev.c): major RT_VOL_DEV_MAJOR ("kln"), minor a hash. */
#define RT_VOL_DEV_MAJOR 0x6b6c6eu
dev_t rt_vol_dev(dev_t store_dev, ino_t store_ino);

/* ---- paths ---------------------------------------------------------------- */
/* Lexically normalize path against cwd (used when path is relative; cwd must be
 * absolute): joins, collapses "//", "." and "..", drops a trailing '/'. Writes
 * an absolute path into out. -ENAMETOOLONG when out is too small, -EINVAL for
 * an empty path or a relative cwd. Symlinks are not resolved (documented in
 * docs/runtime.md). */
int rt_path_normalize(const char *cwd, const char *path, char *out, size_t out_size);

/* The last component of path as the kernel classifies it (fs/namei.c
 * LAST_NORM, LAST_DOT, LAST_DOTDOT, LAST_ROOT), and whether path ends with
 * '/' (the object must then be a directory). */
enum rt_path_last { RT_LAST_NORM, RT_LAST_DOT, RT_LAST_DOTDOT, RT_LAST_ROOT };
enum rt_path_last rt_path_tail(const char *path, bool *slash);

/* The next component of a path: slashes at *p skipped, *seg and *seg_len
 * name it, *p moves past it. RT_LAST_ROOT at the end of the path (nothing
 * left), else RT_LAST_NORM, RT_LAST_DOT or RT_LAST_DOTDOT for the component. */
enum rt_path_last rt_path_next(const char **p, const char **seg, size_t *seg_len);

/* Whether path has a ".." component. */
bool rt_path_has_dotdot(const char *path);

/* The length of path[0..len) without its last component and the slash
 * before it, never below keep ("/" keeps 1: ".." of "/" is "/"). */
size_t rt_path_pop(const char *path, size_t len, size_t keep);

/* The absolute form of a relative path against cwd, normalized as
 * rt_path_normalize does except for a last component ".", ".." or one
 * followed by '/', which stay as written ("a/../b/." -> "CWD/b/."), so that
 * whoever looks at the result sees what the program asked for. Absolute paths
 * and plain last components: rt_path_normalize. Same errors. */
int rt_path_absolute(const char *cwd, const char *path, char *out, size_t out_size);

/* When path (normalized) equals prefix or lies below it, return the remainder
 * ("" for the prefix itself, else without the leading '/'); NULL otherwise.
 * prefix is normalized; "/" matches everything. */
const char *rt_path_under(const char *path, const char *prefix);

/* ---- the fd table ---------------------------------------------------------- */
/* Maps app fd numbers to shield objects. Reads are lock-free (one atomic load);
 * updates use atomic exchange. An fd's object is reference counted by the
 * shield; the table only stores the pointer and a kind. */
#define RT_FD_MAX 65536

enum rt_fd_kind {
	RT_FD_NONE = 0,
	RT_FD_FILE = 1,  /* protected regular file (a memfd with the plaintext) */
	RT_FD_DIR = 2,   /* protected directory (listing from the volume) */
	RT_FD_OWNED = 3, /* the runtime's own fd: invisible to the app */
	RT_FD_PROCFD = 4, /* the app's fd on a /proc/<self>/fd directory: listings
			   * leave the runtime's own fds out */
	RT_FD_NET = 5,   /* an object of the network or console shield (net/net.h) */
};
/* Kinds live in the low bits of the objects' addresses (8-byte aligned). */
#define RT_FD_KIND_MASK 7u

struct rt_fd_entry;
/* The kind of fd (RT_FD_NONE for fds out of range or not tracked). */
enum rt_fd_kind rt_fd_kind(int fd);
/* The object stored for fd, or NULL. */
void *rt_fd_get(int fd);
/* Store (kind, obj) for fd; returns the previous object (or NULL) so the caller
 * can drop its reference. -EBADF-like misuse (fd out of range) returns NULL and
 * stores nothing: check rt_fd_in_range first. */
void *rt_fd_set(int fd, enum rt_fd_kind kind, void *obj);
/* Remove fd; returns the previous object (NULL if none). */
void *rt_fd_clear(int fd, enum rt_fd_kind *kind);
/* Remove fd only if it still holds (kind, obj): one compare-and-swap, so of
 * two threads closing the same fd exactly one gets the reference. True when
 * removed. */
bool rt_fd_clear_if(int fd, enum rt_fd_kind kind, void *obj);
bool rt_fd_in_range(int fd);
/* Number of tracked fds (for tests and the exit flush). */
size_t rt_fd_count(void);

/* ---- configuration (launcher -> runtime) --------------------------------- */
enum rt_freshness { RT_FRESH_EVERY_FSYNC, RT_FRESH_ON_CLOSE, RT_FRESH_ON_EXIT };

#define RT_MAX_VOLUMES 16
#define RT_TAG_ASK UINT64_MAX

struct rt_volume_cfg {
	char mount[4096]; /* normalized absolute path the program sees */
	char dir[4096];   /* normalized absolute volume directory */
	uint8_t key[32];  /* volume key (secret: wiped by rt_config_wipe) */
	char tag_file[4096]; /* local freshness tag store ("" = none), as `kiln fs` */
	/* Volumes granted by the CAS (never in the launcher's config): the CAS
	 * holds their freshness tag. */
	char cas_id[80];
	uint64_t committed, prepared; /* from the grant; RT_TAG_ASK once used */
};

#define RT_MAX_HOST_ENV 32
#define RT_MAX_INHERITED_FDS 256

struct rt_config {
	bool dev;                      /* development mode: no attestation */
	bool sud;                      /* enable Syscall User Dispatch */
	enum rt_freshness freshness;
	char cwd[4096];                /* virtual working directory in a volume ("" = none) */
	/* Attestation (no secrets): empty cas = development mode. */
	char cas[512];                 /* https://HOST:PORT */
	char cas_ca[4096];             /* absolute path of the pinned CA certificate, or "" */
	char cas_fingerprint[80];      /* hex SHA-256 of the CA certificate, or "" */
	char cas_key[80];              /* "sha256:<hex>" of the CAS's TLS key to require
					* (attested by the launcher: KILN_CAS_EXPECT),
					* or "" */
	char session[256];
	char service[256];
	char tee[16];                  /* "sim" | "host" */
	char las_socket[108];          /* kiln-las socket for tee host ("" = default) */
	char kiln[4096];               /* absolute path of the kiln binary, the supervisor
					* of statically linked programs ("" = unknown) */
	/* Launcher variables sent as {{host.NAME}} values (names only). */
	size_t n_host_env;
	char host_env[RT_MAX_HOST_ENV][128];
	/* Host directory of a policy volume, by volume name (else its mount path). */
	size_t n_volume_dirs;
	struct {
		char name[128];
		char dir[4096];
	} volume_dirs[RT_MAX_VOLUMES];
	size_t n_volumes;
	struct rt_volume_cfg volumes[RT_MAX_VOLUMES];
	/* Protected fds inherited across exec (the file shield attaches them
	 * again in the new program): fd number, volume index, server file id,
	 * inode of the file's memfd. */
	size_t n_fds;
	struct {
		int fd;
		int vol;
		uint64_t id;
		uint64_t ino;
	} fds[RT_MAX_INHERITED_FDS];
};

/* A small strict JSON reader for the attestation answers (json.c): libkiln
 * cannot use jansson (docs/attestation.md). A tree from rt_json_parse is owned
 * by the caller and released with rt_json_free, which wipes every string. */
enum rt_json_type {
	RT_JSON_NULL, RT_JSON_BOOL, RT_JSON_NUMBER, RT_JSON_STRING, RT_JSON_ARRAY,
	RT_JSON_OBJECT,
};
struct rt_json {
	enum rt_json_type type;
	bool boolean;
	bool is_int;            /* NUMBER: an integer that fits in num */
	long long num;
	char *str;              /* STRING: NUL-terminated (no NUL inside) */
	size_t str_len;
	size_t n;               /* ARRAY/OBJECT: number of items */
	struct rt_json **items;
	char **keys;            /* OBJECT: keys[i] names items[i] (unique) */
};
/* 0, -KILN_EFORMAT for anything but one valid JSON value, -ENOMEM, -E2BIG. */
int rt_json_parse(const char *text, size_t size, struct rt_json **out);
void rt_json_free(struct rt_json *j);
/* Member of an object (NULL when absent or not an object). */
const struct rt_json *rt_json_get(const struct rt_json *obj, const char *key);
/* The string value, or NULL when j is not a string. */
const char *rt_json_str(const struct rt_json *j);
/* s as a quoted JSON string; *out malloc'd, owned by the caller. */
int rt_json_quote(const char *s, char **out);

/* Text format, one item per line, first line "kiln-runtime-config-v1":
 *   mode dev
 *   sud on|off
 *   freshness every-fsync|on-close|on-exit
 *   volume <mount> <dir> <64 hex key> [<tag file>]   (paths without spaces)
 *   cwd <path>        (working directory inside a volume, passed across exec)
 *   cas <url> / cas-ca <path> / cas-fingerprint <hex> / session <name> /
 *   service <name> / tee <sim|host>      (attestation; no secrets)
 *   las-socket <path> / host-env <NAME> / volume-dir <name> <dir>
 *                     (attestation, docs/attestation.md; the last two repeat)
 *   fd <n> <volume index> <file id> <memfd inode>  (a protected fd inherited
 *                     across exec; repeats, at most RT_MAX_INHERITED_FDS)
 *   kiln <path>       (the kiln binary: supervisor of static programs executed
 *                      by an attested one)
 *   end
 * Parse: -KILN_EFORMAT with err naming the line on any unknown or malformed
 * line. Serialize: writes into a malloc'd string owned (and wiped) by the
 * caller. */
int rt_config_parse(const char *text, size_t size, struct rt_config *cfg,
		    struct kiln_err *err);
int rt_config_serialize(const struct rt_config *cfg, char **out, size_t *out_size);
void rt_config_wipe(struct rt_config *cfg);
/* The next entry of cfg->volumes, zeroed (not yet counted: the caller
 * increments n_volumes once it is filled), or NULL when the table is full. */
struct rt_volume_cfg *rt_config_add_volume(struct rt_config *cfg);
/* Parse "every-fsync" | "on-close" | "on-exit". */
int rt_freshness_parse(const char *s, enum rt_freshness *out);
/* Its name ("every-fsync", "on-close", "on-exit"). */
const char *rt_freshness_name(enum rt_freshness f);
/* Parse KILN_FILE_CACHE: "FILES" or "FILES:MIB" (decimal, MIB < 2^44); *mib is
 * left as is when absent. -EINVAL on anything else. */
int rt_file_cache_parse(const char *s, uint64_t *files, uint64_t *mib);

/* ---- the launcher's environment (loader_env.c) ----------------------------- */
/* True when the variable name (len bytes, not NUL-terminated) is one that makes
 * the dynamic loader, libc or OpenSSL load code or change how code is loaded
 * (LD_*, GCONV_PATH, GLIBC_TUNABLES, MALLOC_*, OPENSSL_CONF, ...). */
bool rt_env_is_loader(const char *name, size_t len);
/* Remove every such variable from environ (duplicates too). dropped (size
 * bytes, may be 0) receives their names, ", "-separated (cut short when it
 * does not fit). Returns how many entries were removed. */
int rt_env_drop_loader(char *dropped, size_t size);
/* Remove every entry of that name from environ, in place. Not unsetenv: a
 * program may define its own (bash does, for its variable table), and the
 * loader binds libkiln's call to the program's, which before the program's
 * main leaves environ as it is: bash would then export the name to every
 * child. */
void rt_env_drop(const char *name);

/* Environment variable naming the inherited config fd (only a number). */
#define RT_ENV_CONFIG_FD "KILN_CONFIG_FD"
/* Environment variable with the absolute path of libkiln.so (for exec). */
#define RT_ENV_LIB "KILN_RUNTIME_LIB"
#define RT_ENV_LIB_MUSL "KILN_RUNTIME_MUSL_LIB" /* libkiln-musl.so, for musl programs */

#endif
