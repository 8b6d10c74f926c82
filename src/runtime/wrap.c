/* kiln runtime: LD_PRELOAD wrappers for the libc I/O surface (the fast path).
 *
 * Each wrapper packs its arguments and calls rt__dispatch, which issues the
 * system call from the runtime's allowed region (no SIGSYS trap, no extra
 * system call) or sends it to the file shield. glibc-internal calls that do
 * not go through these symbols (fopen's __open, opendir, malloc's mmap ...)
 * reach the same code through Syscall User Dispatch.
 *
 * The stat family: since glibc 2.33 stat/fstat/lstat/fstatat are real symbols;
 * older binaries call __xstat and friends, wrapped too. On x86-64 the kernel's
 * struct stat is glibc's struct stat (and stat64).
 *
 * Built without _FILE_OFFSET_BITS=64: with it, the libc headers redirect open
 * to open64 (and so on), and each wrapper must define exactly its own symbol.
 * Nor with _FORTIFY_SOURCE (distribution builds set it): its inline versions
 * of read, pread ... would stand where the wrappers define those very names. */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "runtime/net_load.h"

/* musl's headers (with _GNU_SOURCE) make the large-file names macros for the
 * plain ones (open64 is open), and common.h may make renameat2 a fallback:
 * each wrapper below defines the symbol of its own name. (A musl program
 * calls the plain names; the 64 ones are for glibc programs.) */
#undef open64
#undef openat64
#undef creat64
#undef pread64
#undef pwrite64
#undef lseek64
#undef fcntl64
#undef fstat64
#ifdef stat64 /* the struct too: musl's struct stat is the large-file one */
#undef stat64
#define rt_stat64 stat
#else
#define rt_stat64 stat64
#endif
#undef lstat64
#undef fstatat64
#undef ftruncate64
#undef truncate64
#undef getdents64
#undef sendfile64
#undef fopen64
#undef renameat2

#define RT_EXPORT __attribute__((visibility("default")))

static inline long call(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long a[6] = { a0, a1, a2, a3, a4, a5 };

	return rt__dispatch(nr, a, NULL);
}

/* Convert a raw result to the libc convention (errno preserved on success). */
static inline long ret(long r)
{
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

#define C0(nr) call((nr), 0, 0, 0, 0, 0, 0)
#define C1(nr, a) call((nr), (long)(a), 0, 0, 0, 0, 0)
#define C2(nr, a, b) call((nr), (long)(a), (long)(b), 0, 0, 0, 0)
#define C3(nr, a, b, c) call((nr), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define C4(nr, a, b, c, d) call((nr), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define C5(nr, a, b, c, d, e) \
	call((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* Prototypes for -Wmissing-prototypes: these symbols are the libc ones. The
 * large-file names are the same functions on x86-64 (off_t is 64 bits). */
#define DECL(type, name, ...) RT_EXPORT type name(__VA_ARGS__)
#define ALIAS(type, name, target, ...) DECL(type, name, __VA_ARGS__) __attribute__((alias(#target)))
/* A wrapper that is one call: WRAP(type, name, (parameters), Cn(nr, arguments)). */
#define WRAP(type, name, params, call) \
	RT_EXPORT type name params; \
	type name params \
	{ \
		return (type)ret(call); \
	}

static mode_t va_mode(int flags, va_list ap)
{
	if (flags & (O_CREAT | __O_TMPFILE))
		return (mode_t)va_arg(ap, int);
	return 0;
}

DECL(int, open, const char *path, int flags, ...);
int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = va_mode(flags, ap);
	va_end(ap);
	return (int)ret(C4(SYS_openat, AT_FDCWD, path, flags, mode));
}

ALIAS(int, open64, open, const char *path, int flags, ...);
WRAP(int, __open_2, (const char *path, int flags), C4(SYS_openat, AT_FDCWD, path, flags, 0))
ALIAS(int, __open64_2, __open_2, const char *path, int flags);

DECL(int, openat, int dirfd, const char *path, int flags, ...);
int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = va_mode(flags, ap);
	va_end(ap);
	return (int)ret(C4(SYS_openat, dirfd, path, flags, mode));
}

ALIAS(int, openat64, openat, int dirfd, const char *path, int flags, ...);
WRAP(int, __openat_2, (int dirfd, const char *path, int flags),
     C4(SYS_openat, dirfd, path, flags, 0))
WRAP(int, creat, (const char *path, mode_t mode),
     C4(SYS_openat, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode))
ALIAS(int, creat64, creat, const char *path, mode_t mode);
WRAP(ssize_t, read, (int fd, void *buf, size_t n), C3(SYS_read, fd, buf, n))
WRAP(ssize_t, write, (int fd, const void *buf, size_t n), C3(SYS_write, fd, buf, n))
WRAP(ssize_t, pread, (int fd, void *buf, size_t n, off_t off), C4(SYS_pread64, fd, buf, n, off))
ALIAS(ssize_t, pread64, pread, int fd, void *buf, size_t n, off_t off);
WRAP(ssize_t, pwrite, (int fd, const void *buf, size_t n, off_t off),
     C4(SYS_pwrite64, fd, buf, n, off))
ALIAS(ssize_t, pwrite64, pwrite, int fd, const void *buf, size_t n, off_t off);
WRAP(ssize_t, readv, (int fd, const struct iovec *iov, int cnt), C3(SYS_readv, fd, iov, cnt))
WRAP(ssize_t, writev, (int fd, const struct iovec *iov, int cnt), C3(SYS_writev, fd, iov, cnt))
WRAP(ssize_t, preadv, (int fd, const struct iovec *iov, int cnt, off_t off),
     C5(SYS_preadv, fd, iov, cnt, off, 0))
WRAP(ssize_t, pwritev, (int fd, const struct iovec *iov, int cnt, off_t off),
     C5(SYS_pwritev, fd, iov, cnt, off, 0))
WRAP(off_t, lseek, (int fd, off_t off, int whence), C3(SYS_lseek, fd, off, whence))
ALIAS(off_t, lseek64, lseek, int fd, off_t off, int whence);
WRAP(int, close, (int fd), C1(SYS_close, fd))
WRAP(int, dup, (int fd), C1(SYS_dup, fd))

DECL(int, dup2, int fd, int fd2);
int dup2(int fd, int fd2)
{
	if (fd == fd2) /* dup2 semantics: check fd, no close */
		return (int)ret(C2(SYS_fcntl, fd, F_GETFD) < 0 ? -EBADF : fd);
	return (int)ret(C3(SYS_dup3, fd, fd2, 0));
}

WRAP(int, dup3, (int fd, int fd2, int flags), C3(SYS_dup3, fd, fd2, flags))

DECL(int, fcntl, int fd, int cmd, ...);
int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return (int)ret(C3(SYS_fcntl, fd, cmd, arg));
}

ALIAS(int, fcntl64, fcntl, int fd, int cmd, ...);
WRAP(int, fstat, (int fd, struct stat *st), C2(SYS_fstat, fd, st))
WRAP(int, fstat64, (int fd, struct rt_stat64 *st), C2(SYS_fstat, fd, st))
WRAP(int, stat, (const char *path, struct stat *st), C4(SYS_newfstatat, AT_FDCWD, path, st, 0))
WRAP(int, stat64, (const char *path, struct rt_stat64 *st),
     C4(SYS_newfstatat, AT_FDCWD, path, st, 0))
WRAP(int, lstat, (const char *path, struct stat *st),
     C4(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW))
WRAP(int, lstat64, (const char *path, struct rt_stat64 *st),
     C4(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW))
WRAP(int, fstatat, (int dirfd, const char *path, struct stat *st, int flags),
     C4(SYS_newfstatat, dirfd, path, st, flags))
WRAP(int, fstatat64, (int dirfd, const char *path, struct rt_stat64 *st, int flags),
     C4(SYS_newfstatat, dirfd, path, st, flags))

WRAP(int, __xstat, (int ver, const char *path, struct stat *st),
     C4(SYS_newfstatat, AT_FDCWD, path, st, 0))
ALIAS(int, __xstat64, __xstat, int ver, const char *path, struct stat *st);

WRAP(int, __lxstat, (int ver, const char *path, struct stat *st),
     C4(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW))
ALIAS(int, __lxstat64, __lxstat, int ver, const char *path, struct stat *st);

WRAP(int, __fxstat, (int ver, int fd, struct stat *st), C2(SYS_fstat, fd, st))
ALIAS(int, __fxstat64, __fxstat, int ver, int fd, struct stat *st);

WRAP(int, __fxstatat, (int ver, int dirfd, const char *path, struct stat *st, int flags),
     C4(SYS_newfstatat, dirfd, path, st, flags))
ALIAS(int, __fxstatat64, __fxstatat, int ver, int dirfd, const char *path, struct stat *st,
      int flags);
WRAP(int, statx, (int dirfd, const char *path, int flags, unsigned mask, struct statx *st),
     C5(SYS_statx, dirfd, path, flags, mask, st))
WRAP(int, ftruncate, (int fd, off_t size), C2(SYS_ftruncate, fd, size))
ALIAS(int, ftruncate64, ftruncate, int fd, off_t size);
WRAP(int, truncate, (const char *path, off_t size), C2(SYS_truncate, path, size))
ALIAS(int, truncate64, truncate, const char *path, off_t size);
WRAP(int, fsync, (int fd), C1(SYS_fsync, fd))
WRAP(int, fdatasync, (int fd), C1(SYS_fdatasync, fd))

/* libc issues these from its own code: without a wrapper each one traps
 * (SIGSYS, a few microseconds). PostgreSQL's SetLatch is a kill, its
 * checkpointer and bgwriter call sync_file_range for every file they write. */
WRAP(int, sync_file_range, (int fd, off_t off, off_t n, unsigned int flags),
     C4(SYS_sync_file_range, fd, off, n, flags))
WRAP(int, kill, (pid_t pid, int sig), C2(SYS_kill, pid, sig))
WRAP(int, rename, (const char *from, const char *to),
     C5(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 0))
WRAP(int, renameat, (int fd1, const char *from, int fd2, const char *to),
     C5(SYS_renameat2, fd1, from, fd2, to, 0))
WRAP(int, renameat2, (int fd1, const char *from, int fd2, const char *to, unsigned flags),
     C5(SYS_renameat2, fd1, from, fd2, to, flags))
WRAP(int, unlink, (const char *path), C3(SYS_unlinkat, AT_FDCWD, path, 0))
WRAP(int, unlinkat, (int dirfd, const char *path, int flags), C3(SYS_unlinkat, dirfd, path, flags))
WRAP(int, mkdir, (const char *path, mode_t mode), C3(SYS_mkdirat, AT_FDCWD, path, mode))
WRAP(int, mkdirat, (int dirfd, const char *path, mode_t mode), C3(SYS_mkdirat, dirfd, path, mode))
WRAP(int, rmdir, (const char *path), C3(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR))
WRAP(int, access, (const char *path, int mode), C4(SYS_faccessat2, AT_FDCWD, path, mode, 0))
WRAP(int, faccessat, (int dirfd, const char *path, int mode, int flags),
     C4(SYS_faccessat2, dirfd, path, mode, flags))
WRAP(int, chmod, (const char *path, mode_t mode), C4(SYS_fchmodat, AT_FDCWD, path, mode, 0))
WRAP(int, fchmod, (int fd, mode_t mode), C2(SYS_fchmod, fd, mode))
WRAP(ssize_t, getdents64, (int fd, void *buf, size_t n), C3(SYS_getdents64, fd, buf, n))
WRAP(ssize_t, sendfile, (int out, int in, off_t *off, size_t n), C4(SYS_sendfile, out, in, off, n))
ALIAS(ssize_t, sendfile64, sendfile, int out, int in, off_t *off, size_t n);

WRAP(ssize_t, copy_file_range,
     (int in, off_t *in_off, int out, off_t *out_off, size_t n, unsigned flags),
     call(SYS_copy_file_range, in, (long)in_off, out, (long)out_off, (long)n, flags))

/* ---- sockets and event loops ------------------------------------------- *
 * Not file calls, but a server makes one or more per request (nginx: recv and
 * epoll_wait; redis: epoll_wait), and without a wrapper each one is a SUD trap
 * (~1.5 us, more than the request's file calls together). They dispatch as the
 * trap would. The glibc functions are cancellation points; these wrappers are
 * not, like the read and write wrappers above. */
WRAP(ssize_t, recv, (int fd, void *buf, size_t n, int flags),
     call(SYS_recvfrom, fd, (long)buf, (long)n, flags, 0, 0))
WRAP(ssize_t, recvfrom,
     (int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen),
     call(SYS_recvfrom, fd, (long)buf, (long)n, flags, (long)addr, (long)alen))
WRAP(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags), C3(SYS_recvmsg, fd, msg, flags))

WRAP(ssize_t, send, (int fd, const void *buf, size_t n, int flags),
     call(SYS_sendto, fd, (long)buf, (long)n, flags, 0, 0))
WRAP(ssize_t, sendto,
     (int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t alen),
     call(SYS_sendto, fd, (long)buf, (long)n, flags, (long)addr, (long)alen))
WRAP(ssize_t, sendmsg, (int fd, const struct msghdr *msg, int flags),
     C3(SYS_sendmsg, fd, msg, flags))
WRAP(int, accept, (int fd, struct sockaddr *addr, socklen_t *alen), C3(SYS_accept, fd, addr, alen))
WRAP(int, accept4, (int fd, struct sockaddr *addr, socklen_t *alen, int flags),
     C4(SYS_accept4, fd, addr, alen, flags))
WRAP(int, epoll_wait, (int epfd, struct epoll_event *ev, int max, int timeout),
     C4(SYS_epoll_wait, epfd, ev, max, timeout))

WRAP(int, epoll_pwait,
     (int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask),
     call(SYS_epoll_pwait, epfd, (long)ev, max, timeout, (long)mask, 8))

WRAP(int, epoll_ctl, (int epfd, int op, int fd, struct epoll_event *ev),
     C4(SYS_epoll_ctl, epfd, op, fd, ev))
WRAP(int, poll, (struct pollfd *fds, nfds_t n, int timeout), C3(SYS_poll, fds, n, timeout))
WRAP(int, setsockopt, (int fd, int level, int name, const void *val, socklen_t len),
     C5(SYS_setsockopt, fd, level, name, val, len))
WRAP(int, sigprocmask, (int how, const sigset_t *set, sigset_t *old),
     C4(SYS_rt_sigprocmask, how, set, old, 8))

DECL(int, pthread_sigmask, int how, const sigset_t *set, sigset_t *old);
int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	long r = C4(SYS_rt_sigprocmask, how, set, old, 8);

	return r < 0 ? (int)-r : 0;
}

/* getcwd: a virtual working directory inside a volume (with SUD off the libc
 * function would not trap). */
DECL(char *, getcwd, char *buf, size_t size);
char *getcwd(char *buf, size_t size)
{
	char tmp[4096];
	long r;

	if (!rt__vcwd_on()) {
		char *(*real)(char *, size_t) = (char *(*)(char *, size_t))dlsym(RTLD_NEXT,
										 "getcwd");

		return real ? real(buf, size) : NULL;
	}
	r = ret(C2(SYS_getcwd, tmp, sizeof(tmp)));
	if (r < 0)
		return NULL;
	if (!buf) {
		buf = malloc(size && size > (size_t)r ? size : (size_t)r);
		if (!buf)
			return NULL;
	} else if (size < (size_t)r) {
		errno = ERANGE;
		return NULL;
	}
	if (rt__copy_out(buf, tmp, (size_t)r)) {
		errno = EFAULT;
		return NULL;
	}
	return buf;
}

/* The generic syscall(2) entry: direct system calls made through libc get the
 * same treatment as the wrappers (faster than a SUD trap). */
DECL(long, syscall, long nr, ...);
long syscall(long nr, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	return ret(rt__dispatch(nr, a, NULL));
}

/* ---- stdio and directories when SUD is off ------------------------------- *
 * glibc's fopen/opendir open through internal functions that bypass the
 * wrappers; with SUD on they trap and are shielded anyway, with SUD off these
 * wrappers route them: the fd is opened through the shield and handed to the
 * real fdopen/fdopendir. */
static int fopen_flags(const char *mode, int *flags)
{
	int f;

	switch (mode[0]) {
	case 'r':
		f = O_RDONLY;
		break;
	case 'w':
		f = O_WRONLY | O_CREAT | O_TRUNC;
		break;
	case 'a':
		f = O_WRONLY | O_CREAT | O_APPEND;
		break;
	default:
		return -EINVAL;
	}
	for (const char *p = mode + 1; *p && *p != ','; p++) {
		if (*p == '+')
			f = (f & ~O_ACCMODE) | O_RDWR;
		else if (*p == 'e')
			f |= O_CLOEXEC;
		else if (*p == 'x')
			f |= O_EXCL;
	}
	*flags = f;
	return 0;
}

/* p, made of fd, or NULL (fd closed, errno kept). */
static void *made_of(void *p, int fd)
{
	int e = errno;

	if (!p && fd >= 0) {
		close(fd);
		errno = e;
	}
	return p;
}

DECL(FILE *, fopen, const char *path, const char *mode);
FILE *fopen(const char *path, const char *mode)
{
	int flags, fd;

	if (fopen_flags(mode, &flags)) {
		errno = EINVAL;
		return NULL;
	}
	fd = (int)ret(C4(SYS_openat, AT_FDCWD, path, flags, 0666));
	return made_of(fd < 0 ? NULL : fdopen(fd, mode), fd);
}

ALIAS(FILE *, fopen64, fopen, const char *path, const char *mode);

DECL(DIR *, opendir, const char *path);
DIR *opendir(const char *path)
{
	int fd = (int)ret(C4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0));

	return made_of(fd < 0 ? NULL : fdopendir(fd), fd);
}

/* ---- processes and threads ----------------------------------------------- */
struct thread_start {
	void *(*fn)(void *);
	void *arg;
};

static void *thread_trampoline(void *p)
{
	struct thread_start ts = *(struct thread_start *)p;

	free(p);
	rt__sud_thread_init();
	return ts.fn(ts.arg);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
				 void *);

DECL(int, pthread_create, pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
     void *arg);
int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	static pthread_create_fn real;
	struct thread_start *ts;
	struct rt_guard g;
	int r;

	if (!real)
		real = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
	if (!real)
		return EAGAIN;
	if (!g_rt.sud_on)
		return real(t, attr, fn, arg);
	ts = malloc(sizeof(*ts));
	if (!ts)
		return EAGAIN;
	ts->fn = fn;
	ts->arg = arg;
	/* The clone inside pthread_create runs with the selector allowing it;
	 * the new thread installs its own selector first thing. */
	g.selector = t_rt_selector;
	t_rt_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
	r = real(t, attr, thread_trampoline, ts);
	t_rt_selector = g.selector;
	if (r)
		free(ts);
	return r;
}

/* posix_spawn's child runs in libc without dispatch (it is not inherited), so
 * the re-launch environment is prepared here. */
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			const posix_spawnattr_t *, char *const[], char *const[]);

/* posix_spawnp's PATH search, done first: the runtime looks at the program;
 * out is left empty when nothing is found. */
static void search_path(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");

	out[0] = '\0';
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if ((size_t)snprintf(out, size, "%.*s%s%s", (int)n, path, n ? "/" : "", name) <
		    size && access(out, X_OK) == 0)
			return;
		out[0] = '\0';
		path += n;
		if (*path == ':')
			path++;
	}
}

static int spawn(const char *name, pid_t *pid, const char *path,
		 const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
		 char *const argv[], char *const envp[])
{
	spawn_fn real = (spawn_fn)dlsym(RTLD_NEXT, name);
	struct rt_exec_env e;
	char sel = t_rt_selector, found[4096];
	const char *prog = path;
	int prep, r;

	if (!real)
		return ENOSYS;
	t_rt_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
	/* The runtime looks at the program (attested mode: may it run; both:
	 * glibc's or musl's runtime), so it must know which file it is. */
	if (strcmp(name, "posix_spawnp") == 0 && !strchr(path, '/')) {
		search_path(path, found, sizeof(found));
		if (found[0])
			prog = found;
	}
	prep = rt__exec_env(AT_FDCWD, prog, 0, argv, envp, &e);
	if (prep < 0) {
		t_rt_selector = sel;
		return -prep;
	}
	if (prep > 0) {
		r = real(pid, path, fa, attr, argv, envp);
	} else if (e.path) {
		/* A static program: its supervisor (kiln) instead. */
		spawn_fn plain = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");

		r = plain ? plain(pid, e.path, fa, attr, e.argv, e.env) : ENOSYS;
	} else {
		r = real(pid, prog, fa, attr, e.argv ? e.argv : argv, e.env);
	}
	t_rt_selector = sel;
	if (prep == 0)
		rt__exec_env_free(&e);
	return r;
}

DECL(int, posix_spawn, pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
     const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn("posix_spawn", pid, path, fa, attr, argv, envp);
}

DECL(int, posix_spawnp, pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
     const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int posix_spawnp(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn("posix_spawnp", pid, path, fa, attr, argv, envp);
}

/* system() and popen() spawn through libc internals with environ: run them
 * with the re-launch environment installed in environ for the duration.
 * FIXME(threads): another thread reading environ meanwhile sees it too. */
extern char **environ;

/* The environment /bin/sh gets (its argv is libc's): 1 when the runtime is
 * not active, < 0 refused (never run with the caller's environment then). A
 * static /bin/sh under attestation would have to go to the supervisor, which
 * libc's internal spawn cannot be made to do: refused. */
static int shell_env(struct rt_exec_env *e)
{
	int r = rt__exec_env(AT_FDCWD, "/bin/sh", 0, NULL, environ, e);

	if (r == 0 && e->path) {
		rt__say("attested program: not running /bin/sh for system() or popen(): "
			"statically linked (executed directly, it would be supervised and "
			"attested)");
		rt__exec_env_free(e);
		r = -EACCES;
	}
	return r;
}

DECL(int, system, const char *cmd);
int system(const char *cmd)
{
	int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "system");
	struct rt_exec_env e;
	char **saved = environ;
	int r;

	if (!real)
		return -1;
	r = shell_env(&e);
	if (r > 0)
		return real(cmd);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	environ = e.env;
	r = real(cmd);
	environ = saved;
	rt__exec_env_free(&e);
	return r;
}

DECL(FILE *, popen, const char *cmd, const char *mode);
FILE *popen(const char *cmd, const char *mode)
{
	FILE *(*real)(const char *, const char *) =
		(FILE * (*)(const char *, const char *))dlsym(RTLD_NEXT, "popen");
	struct rt_exec_env e;
	char **saved = environ;
	FILE *f;
	int r;

	if (!real)
		return NULL;
	r = shell_env(&e);
	if (r > 0)
		return real(cmd, mode);
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	environ = e.env;
	f = real(cmd, mode);
	environ = saved;
	rt__exec_env_free(&e);
	return f;
}

/* vfork's child would share the wrapper's stack frame: run it as fork. */
DECL(pid_t, vfork, void);
pid_t vfork(void)
{
	return fork();
}
