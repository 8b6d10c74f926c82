/* EFAULT: system calls given bad pointers (an unmapped page, a PROT_NONE page,
 * NULL) on paths and fds of the directory in argv[1] must fail with EFAULT (or
 * what Linux answers), never crash the program. Each call runs in a forked child;
 * the line says the errno name, "ok", or SIG<n> if the child died.
 * Usage: posix_efault DIR  (prints `key: value` lines, see caselib.py) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Globals the compiler cannot see through (its warnings about bad pointers would
 * otherwise stop the build: the bad pointers are the point). */
static void *volatile g_none;           /* a PROT_NONE page */
static void *volatile g_unmapped;       /* 16: below mmap_min_addr, never mapped */
static char *volatile g_null;           /* NULL */
static int g_file_fd, g_dir_fd;

static const char *errname(int e)
{
	switch (e) {
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case EXDEV: return "EXDEV";
	case ENOTDIR: return "ENOTDIR";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOTSUP: return "ENOTSUP";
	case EIO: return "EIO";
	case ENOSYS: return "ENOSYS";
	case EEXIST: return "EEXIST";
	case EROFS: return "EROFS";
	default: return NULL;
	}
}

/* Run fn in a child; print key: result. fn returns the call's result (-1 + errno). */
static void probe(const char *key, long (*fn)(void))
{
	int pfd[2];
	pid_t pid;
	int status;
	char buf[64] = "";

	if (pipe(pfd) != 0) {
		perror("pipe");
		exit(1);
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		long r;
		const char *n;
		char out[64];

		close(pfd[0]);
		errno = 0;
		r = fn();
		if (r >= 0) {
			snprintf(out, sizeof(out), "ok");
		} else if ((n = errname(errno))) {
			snprintf(out, sizeof(out), "%s", n);
		} else {
			snprintf(out, sizeof(out), "errno %d", errno);
		}
		if (write(pfd[1], out, strlen(out)) < 0)
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		printf("%s: SIG%d\n", key, WTERMSIG(status));
	else
		printf("%s: %s\n", key, n > 0 ? buf : "no result");
}

/* libc wrappers (interposed by libkiln's LD_PRELOAD wrappers where it has them) */
static long c_open_unmapped(void) { return open(g_unmapped, O_RDONLY); }
static long c_open_none(void) { return open(g_none, O_RDONLY); }
static long c_open_null(void) { return open(g_null, O_RDONLY); }
static long c_creat_none(void) { return open(g_none, O_WRONLY | O_CREAT, 0644); }
static long c_openat_none(void) { return openat(g_dir_fd, g_none, O_RDONLY); }
static long c_stat_path(void) { struct stat st; return stat(g_none, &st); }
static long c_stat_buf(void) { return stat("file", g_none); }
static long c_lstat_buf(void) { return lstat("file", g_none); }
static long c_fstat_buf(void) { return fstat(g_file_fd, g_none); }
static long c_fstatat_buf(void) { return fstatat(g_dir_fd, "file", g_none, 0); }
static long c_statx_buf(void) { return statx(AT_FDCWD, "file", 0, STATX_BASIC_STATS, g_none); }
static long c_access(void) { return access(g_none, R_OK); }
static long c_read_buf(void) { return pread(g_file_fd, g_none, 4, 0); }
static long c_read_buf2(void) { return read(g_file_fd, g_unmapped, 4); }
static long c_write_buf(void) { return pwrite(g_file_fd, g_none, 4, 0); }
static long c_write_buf2(void) { return write(g_file_fd, g_unmapped, 4); }
static long c_readv_iov(void) { return readv(g_file_fd, g_none, 1); }
static long c_writev_iov(void) { return writev(g_file_fd, g_none, 1); }
static long c_writev_base(void)
{
	struct iovec iov = { g_none, 4 };

	return pwritev(g_file_fd, &iov, 1, 0);
}
static long c_rename_from(void) { return rename(g_none, "x"); }
static long c_rename_to(void) { return rename("file", g_none); }
static long c_rename_null(void) { return rename(g_null, "x"); }
static long c_unlink(void) { return unlink(g_none); }
static long c_mkdir(void) { return mkdir(g_none, 0755); }
static long c_rmdir(void) { return rmdir(g_none); }
static long c_chmod(void) { return chmod(g_none, 0600); }
static long c_truncate(void) { return truncate(g_none, 0); }
static long c_utimensat_times(void) { return utimensat(AT_FDCWD, "file", g_none, 0); }
static long c_link(void) { return link("file", g_none); }
static long c_symlink(void) { return symlink(g_none, "sl"); }
static long c_readlink_buf(void) { return readlink("link", g_none, 64); }
static long c_getdents(void) { return syscall(SYS_getdents64, g_dir_fd, g_none, 4096); }
static long c_statfs(void) { return syscall(SYS_statfs, g_none, g_none); }
static long c_chdir(void) { return chdir(g_none); }
static long c_bind_addr(void)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	return bind(s, g_none, sizeof(struct sockaddr_un));
}

/* raw system calls (trapped by Syscall User Dispatch under kiln run) */
static long s_openat(void) { return syscall(SYS_openat, AT_FDCWD, g_none, O_RDONLY); }
static long s_newfstatat_buf(void)
{
	return syscall(SYS_newfstatat, AT_FDCWD, "file", g_none, 0);
}
static long s_fstat_buf(void) { return syscall(SYS_fstat, g_file_fd, g_none); }
static long s_pread_buf(void) { return syscall(SYS_pread64, g_file_fd, g_none, 4, 0); }
static long s_pwrite_buf(void) { return syscall(SYS_pwrite64, g_file_fd, g_none, 4, 0); }
static long s_renameat2(void)
{
	return syscall(SYS_renameat2, AT_FDCWD, g_none, AT_FDCWD, "x", 0);
}
static long s_unlinkat(void) { return syscall(SYS_unlinkat, AT_FDCWD, g_none, 0); }
static long s_mkdirat(void) { return syscall(SYS_mkdirat, AT_FDCWD, g_none, 0755); }
static long s_readlinkat_path(void) { return syscall(SYS_readlinkat, AT_FDCWD, g_none, NULL, 64); }
static long s_statx_path(void)
{
	return syscall(SYS_statx, AT_FDCWD, g_none, 0, STATX_BASIC_STATS, g_none);
}
static long s_faccessat(void) { return syscall(SYS_faccessat, AT_FDCWD, g_none, R_OK); }
static long s_truncate(void) { return syscall(SYS_truncate, g_none, 0); }
static long s_getcwd(void) { return syscall(SYS_getcwd, g_none, 4096); }

static const struct {
	const char *key;
	long (*fn)(void);
} g_probes[] = {
	{ "open_unmapped", c_open_unmapped }, { "open_prot_none", c_open_none },
	{ "open_null", c_open_null }, { "creat_prot_none", c_creat_none },
	{ "openat_prot_none", c_openat_none }, { "stat_path", c_stat_path },
	{ "stat_buf", c_stat_buf }, { "lstat_buf", c_lstat_buf }, { "fstat_buf", c_fstat_buf },
	{ "fstatat_buf", c_fstatat_buf }, { "statx_buf", c_statx_buf },
	{ "access_path", c_access }, { "pread_buf", c_read_buf }, { "read_buf_unmapped", c_read_buf2 },
	{ "pwrite_buf", c_write_buf }, { "write_buf_unmapped", c_write_buf2 },
	{ "readv_iov", c_readv_iov }, { "writev_iov", c_writev_iov },
	{ "pwritev_base", c_writev_base }, { "rename_from", c_rename_from },
	{ "rename_to", c_rename_to }, { "rename_null", c_rename_null }, { "unlink", c_unlink },
	{ "mkdir", c_mkdir }, { "rmdir", c_rmdir }, { "chmod", c_chmod },
	{ "truncate", c_truncate }, { "utimensat_times", c_utimensat_times },
	{ "link_to", c_link }, { "symlink_target", c_symlink },
	{ "readlink_buf", c_readlink_buf }, { "getdents_buf", c_getdents },
	{ "statfs", c_statfs }, { "chdir", c_chdir }, { "bind_addr", c_bind_addr },
	{ "sys_openat", s_openat }, { "sys_newfstatat_buf", s_newfstatat_buf },
	{ "sys_fstat_buf", s_fstat_buf }, { "sys_pread_buf", s_pread_buf },
	{ "sys_pwrite_buf", s_pwrite_buf }, { "sys_renameat2", s_renameat2 },
	{ "sys_unlinkat", s_unlinkat }, { "sys_mkdirat", s_mkdirat },
	{ "sys_readlinkat_path", s_readlinkat_path }, { "sys_statx_path", s_statx_path },
	{ "sys_faccessat", s_faccessat }, { "sys_truncate", s_truncate },
	{ "sys_getcwd", s_getcwd },
};

int main(int argc, char **argv)
{
	char dir[4096];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: posix_efault DIR\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/efault", argv[1]);
	if (mkdir(dir, 0755) != 0 || chdir(dir) != 0) {
		perror(dir);
		return 1;
	}
	fd = open("file", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "content", 7) != 7 || close(fd) != 0) {
		perror("file");
		return 1;
	}
	if (symlink("file", "link") != 0)
		printf("setup_symlink: %s\n", errname(errno) ? errname(errno) : "error");
	g_file_fd = open("file", O_RDWR);
	g_dir_fd = open(".", O_RDONLY | O_DIRECTORY);
	g_unmapped = (void *)16;
	g_none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g_file_fd < 0 || g_dir_fd < 0 || g_none == MAP_FAILED) {
		perror("setup");
		return 1;
	}
	for (size_t i = 0; i < sizeof(g_probes) / sizeof(g_probes[0]); i++)
		probe(g_probes[i].key, g_probes[i].fn);
	/* The parent is still alive and the file intact after all that. */
	char buf[16] = "";
	printf("file_intact: %s\n", pread(g_file_fd, buf, sizeof(buf), 0) == 7 &&
	       memcmp(buf, "content", 7) == 0 ? "yes" : "no");
	return 0;
}
