/* kiln common: errors, logging, encodings, files. The one header of src/common/.
 *
 * Error convention: functions return 0 on success or a negative code: -errno for
 * system failures, -KILN_E* (below) for kiln's own failure kinds. Functions that
 * can explain themselves also take a `struct kiln_err *` (may be NULL) that
 * receives a one-line message naming the offending thing. */
#ifndef KILN_COMMON_H
#define KILN_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KILN_WARN_UNUSED __attribute__((warn_unused_result))
#define KILN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KILN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* kiln's own failure kinds; one reserved range above every errno value. */
enum {
	KILN_EBASE = 4096,
	KILN_EAUTH,         /* authentication tag mismatch: data corrupt or tampered */
	KILN_EKEY,          /* wrong key */
	KILN_EROLLBACK,     /* older state than the trusted freshness tag */
	KILN_EFORMAT,       /* malformed input */
	KILN_ETRUNC,        /* input ends early */
	KILN_ETRAILING,     /* unexpected bytes after the input */
	KILN_ESIG,          /* signature does not verify */
	KILN_ECHAIN,        /* certificate chain does not verify */
	KILN_EROOT,         /* chain ends at an untrusted root */
	KILN_EEXPIRED,      /* certificate or collateral outside its validity window */
	KILN_EREVOKED,      /* certificate revoked by a CRL */
	KILN_ETCB,          /* no TCB level matches the platform */
	KILN_EPOLICY,       /* refused by policy */
	KILN_EMEASUREMENT,  /* measurement not allowed by policy */
	KILN_ENONCE,        /* nonce unknown, used or expired */
	KILN_EBINDING,      /* evidence not bound to this channel/key */
	KILN_ECONFLICT,     /* predecessor hash does not match (lost update) */
	KILN_EDENIED,       /* access denied */
	KILN_EINSECURE,     /* insecure backend used without opt-in */
	KILN_ECRYPTO,       /* crypto library failure */
	KILN_ECORRUPT,      /* structure inconsistent (not a crypto failure) */
	KILN_EUNMEASURED,   /* the process holds code that cannot be measured */
	KILN_EUNSAFE,       /* a symlink or special file where kiln keeps a file of its own */
	KILN_ELAST
};

/* Like strerror() for both -errno and -KILN_E* (sign ignored). Never NULL. */
const char *kiln_strerror(int code);

struct kiln_err {
	int code;       /* negative code, 0 when unset */
	char msg[512];  /* human-readable, names what is wrong; never holds secrets */
};

/* Record code and message in `e` (which may be NULL); returns `code` so callers
 * can write `return kiln_err_set(err, -KILN_EAUTH, "file %s: ...", path);`. */
int kiln_err_set(struct kiln_err *e, int code, const char *fmt, ...) KILN_PRINTF(3, 4);
/* Prefix an existing message with context ("volume /x: " + old message). */
void kiln_err_prefix(struct kiln_err *e, const char *fmt, ...) KILN_PRINTF(2, 3);
/* End the full, NUL-terminated string buf[0..size) with "... (truncated)": what a
 * message that had to be cut ends with (kiln_err_set does it). */
void kiln_mark_truncated(char *buf, size_t size);
/* The message, or kiln_strerror(code) when no message was set. */
const char *kiln_err_msg(const struct kiln_err *e, int code);

/* Logging for main() and daemons only; library code never logs.
 * Output: `ts=... level=info msg="..." key=value ...` on stderr. Each message
 * (msg, per level) is rate-limited: at most 50 lines per 5 s; the lines left out
 * are counted and reported as one line `msg="suppressed N similar lines"
 * similar="<msg>"` after the window (log.c). kiln_log_set_rate changes the limits
 * (burst 0: no limit); kiln_log_flush writes the pending summaries (at exit). */
enum kiln_log_level { KILN_LOG_DEBUG, KILN_LOG_INFO, KILN_LOG_WARN, KILN_LOG_ERROR };
void kiln_log_set_level(enum kiln_log_level level);
void kiln_log_set_rate(unsigned burst, unsigned window_s);
/* "debug", "info", "warn", "error": the names log lines carry (level=...) and
 * options take. parse: 0, or -EINVAL for another word. */
const char *kiln_log_level_name(enum kiln_log_level level);
int kiln_log_level_parse(const char *s, enum kiln_log_level *out);
/* A byte string as one line of text a UTF-8 reader accepts: valid UTF-8 is
 * kept, control characters, DEL and bytes that are not UTF-8 become \xNN,
 * a backslash becomes two. Writes at most out_size - 1 bytes and a NUL (cut at a
 * whole character); returns the length written. Async-signal-safe. */
size_t kiln_escape_text(char *out, size_t out_size, const char *in, size_t in_len);
void kiln_log(enum kiln_log_level level, const char *msg, const char *kvfmt, ...)
	KILN_PRINTF(3, 4);
void kiln_log_flush(void);

/* FNV-1a over n bytes, continuing from h (start with KILN_FNV1A_INIT): the
 * hash of the runtime's small lookup tables (paths, credentials). Not for
 * anything an attacker must not collide: a table slot, checked after. */
#define KILN_FNV1A_INIT 1469598103934665603ull
static inline uint64_t kiln_fnv1a(uint64_t h, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
	return h;
}

/* Hex: encode writes 2*size+1 bytes (NUL-terminated) to out. Decode accepts upper
 * and lower case, requires exactly out_size bytes unless out_len is non-NULL. */
void kiln_hex_encode(const void *data, size_t size, char *out);
int kiln_hex_decode(const char *hex, void *out, size_t out_size, size_t *out_len);

/* Base64 (standard alphabet, padded). encode returns a malloc'd string the caller
 * frees, or NULL. decode returns a malloc'd buffer the caller frees (and wipes if
 * secret) in *out, ignoring whitespace; -KILN_EFORMAT on bad input. */
char *kiln_b64_encode(const void *data, size_t size);
int kiln_b64_decode(const char *b64, uint8_t **out, size_t *out_size);

/* Constant-time comparison; true when equal. */
bool kiln_ct_equal(const void *a, const void *b, size_t size);
/* Wipe memory that held secrets; never optimized away. */
void kiln_wipe(void *p, size_t size);
/* Wipe then free; accepts NULL. */
void kiln_free_secret(void *p, size_t size);

/* Strict unsigned parse: the whole string must be a number in range. */
int kiln_parse_u64(const char *s, uint64_t *out);

/* Read a whole file (at most max_size bytes, else -EFBIG). *data is malloc'd,
 * NUL-terminated for convenience (not counted in *size); the caller frees. */
int kiln_read_file(const char *path, size_t max_size, uint8_t **data, size_t *size);
/* Read a private key file with the same contract: refused (-EINVAL) unless it is
 * a regular file (a FIFO is refused without blocking), and (-EACCES) when group or
 * others have any permission on it, as ssh requires; err names the file and
 * the fix. */
int kiln_read_private_file(const char *path, size_t max_size, uint8_t **data, size_t *size,
			   struct kiln_err *err);
/* Read from an fd until EOF with the same contract. */
int kiln_read_fd(int fd, size_t max_size, uint8_t **data, size_t *size);
/* Replace path atomically: write a temp file in the same directory, fsync it,
 * rename over path, fsync the directory. mode applies to the new file. */
int kiln_write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
/* write()/pwrite() the whole buffer, retrying on EINTR and short writes. */
int kiln_write_all(int fd, const void *data, size_t size);
int kiln_pwrite_all(int fd, const void *data, size_t size, off_t off);
/* pread() until size bytes or EOF; returns bytes read (>= 0) or -errno. */
ssize_t kiln_pread_full(int fd, void *data, size_t size, off_t off);
/* One read of /proc/PID/NAME (the kernel makes such a file at the read) into
 * buf, NUL-terminated: the bytes read (0: empty, e.g. a process that is gone)
 * or -errno. */
ssize_t kiln_read_proc(pid_t pid, const char *name, char *buf, size_t size);
/* fsync the directory that holds path (or path itself if it is a directory). */
int kiln_fsync_dir(const char *path);
/* mkdir -p with mode for each created component. */
int kiln_mkdir_p(const char *path, mode_t mode);

struct stat;

/* Files kiln keeps for itself in storage someone else may control (a volume's
 * .kiln, a freshness file): never through a symlink, never a FIFO, directory
 * or device. KILN_O_OWN is added to the open flags: the last component is not
 * followed (ELOOP), a FIFO does not block the open, no controlling tty. */
#define KILN_O_OWN (O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) /* needs <fcntl.h> */
/* The error for such an open: -KILN_EUNSAFE for what the kernel reports on a
 * symlink (ELOOP) or a directory opened for writing (EISDIR), else err. */
int kiln_own_open_error(int err);
/* 0 when st (of a file opened with KILN_O_OWN) is a regular file, else
 * -KILN_EUNSAFE. */
int kiln_own_check(const struct stat *st);
/* openat(dirfd, path, oflags | KILN_O_OWN, mode) that returns a descriptor of a
 * regular file only (else -KILN_EUNSAFE, or -errno); the descriptor is
 * O_NONBLOCK, which regular files ignore. Directories in path are followed:
 * callers pass one name under a directory they hold, or a path the user gave. */
int kiln_open_own(int dirfd, const char *path, int oflags, mode_t mode);
/* Open the directory name under dirfd for kiln's own use: not through a
 * symlink, and a directory (else -KILN_EUNSAFE). With create, mkdirat first
 * (mode; an existing one is fine). */
int kiln_open_own_dir(int dirfd, const char *name, bool create, mode_t mode);

/* cachestat(2) (Linux 6.5; not in this libc's headers, the same number on
 * every architecture): how much of [off, off + len) of a file is in the page
 * cache. The storages read a range that is not all cached around the cache
 * (O_DIRECT, pf_storage_ops.pread_direct): also one partly cached, or the
 * kernel's read-ahead behind one buffered read would keep every later range
 * partly cached. */
#define KILN_NR_CACHESTAT 451
struct kiln_cachestat_range {
	uint64_t off, len;
};
struct kiln_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
/* From cachestat's answer for a range of size bytes: read it around the
 * cache? Not when all of it is cached, or some of it waits to be written back
 * (O_DIRECT would write it back first). */
static inline bool kiln_read_around_cache(const struct kiln_cachestat *cs, uint64_t size,
					  uint64_t page)
{
	return !cs->nr_dirty && !cs->nr_writeback && cs->nr_cache < (size + page - 1) / page;
}

/* Stream-socket I/O bounded by an absolute kiln_now_ns() deadline (-ETIMEDOUT).
 * send_all writes everything (MSG_NOSIGNAL). recv_line reads one "\n"-terminated
 * line of at most max_size bytes (-EMSGSIZE beyond, -KILN_ETRAILING when bytes
 * follow the newline in the same read, -ECONNRESET at EOF); *out is malloc'd,
 * NUL-terminated without the newline, owned by the caller. */
int kiln_send_all_deadline(int fd, const void *data, size_t size, uint64_t deadline_ns);
int kiln_recv_line_deadline(int fd, size_t max_size, uint64_t deadline_ns, char **out,
			    size_t *size);

/* Passing one file descriptor (SCM_RIGHTS) over a unix stream socket, bounded
 * by the same kind of deadline. send_fd sends data with fd attached to its
 * first byte (size >= 1). recv_fd reads up to size bytes (flags: e.g. MSG_PEEK;
 * the descriptor comes close-on-exec): the count (0 at EOF) with *fd the passed
 * descriptor, owned by the caller, or -1 when none came; -EPROTO when several
 * descriptors or other control data came (none is kept). */
int kiln_send_fd_deadline(int sock, const void *data, size_t size, int fd,
			  uint64_t deadline_ns);
ssize_t kiln_recv_fd_deadline(int sock, void *buf, size_t size, int flags,
			      uint64_t deadline_ns, int *fd);

/* Monotonic clock in nanoseconds. */
uint64_t kiln_now_ns(void);

/* ---- what the C library may lack ------------------------------------------
 * The runtime is also built with musl (libkiln-musl.so, docs/runtime.md),
 * whose headers (Debian's musl 1.2.3) leave out some of the kernel interface
 * glibc declares. Each fallback is keyed on the missing name itself, never on
 * which C library it is, and takes the kernel's value. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef STATX_BASIC_STATS
#include <linux/stat.h> /* struct statx and STATX_* (glibc: <sys/stat.h>) */
#endif
#ifndef FALLOC_FL_ZERO_RANGE
#include <linux/falloc.h>
#endif
#ifndef SEEK_DATA
#define SEEK_DATA 3
#define SEEK_HOLE 4
#endif
#ifndef __O_TMPFILE
#define __O_TMPFILE (O_TMPFILE & ~O_DIRECTORY) /* glibc's name for the bit alone */
#endif
#ifndef RENAME_NOREPLACE
/* glibc declares renameat2 and its flags together (<stdio.h>); without them
 * the call is the system call. (Inside libkiln both renameat2 and syscall
 * are the runtime's own wrappers, which dispatch the call alike.) */
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#define RENAME_WHITEOUT (1 << 2)
static inline int kiln_renameat2(int olddir, const char *oldpath, int newdir,
				 const char *newpath, unsigned int flags)
{
	return (int)syscall(SYS_renameat2, olddir, oldpath, newdir, newpath, flags);
}
#define renameat2 kiln_renameat2
#endif

#endif
