/* kiln run, supervised mode (supervise.h): a seccomp user-notification
 * supervisor for statically linked programs. Runs in the `kiln` process, never
 * inside the program. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/supervise_int.h"

/* The child hands the seccomp listener over within this time. */
#define SV_HANDOFF_NS (60ull * 1000000000)

/* The program's pid for the signal forwarder (0: none). */
static volatile sig_atomic_t g_child;

/* SIGTERM/SIGHUP sent to the launcher go to the program, which then exits
 * through exit_group so what it wrote is committed; the launcher stays to the
 * end. */
static void forward(int sig)
{
	if (g_child > 0)
		kill((pid_t)g_child, sig);
}

/* The filter sends the calls the table marks `supervised` (syscalls.def) to
 * the supervisor; everything else is allowed. */
static int install_filter(void)
{
	/* Header (3), one compare and one return per trapped call, x32 (2), allow. */
	struct sock_filter f[4 + 2 * RT_SYSCALL_COUNT + 3];
	struct sock_fprog prog;
	size_t n = 0;

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (unsigned nr = 0; nr < RT_SYSCALL_COUNT; nr++) {
		if (!g_rt_syscalls[nr].supervised && !sv_traps_write(nr))
			continue;
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	}
	/* x32 numbers would bypass the list above. */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)n;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			    SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static void child_exec(int sock, pid_t parent, const struct rt_sv_opts *o, char *const argv[])
{
	char one = 1;
	int fd;

	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	/* Without its supervisor the program's file calls would fail ENOSYS. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) || getppid() != parent)
		_exit(127);
	if (o->pwd && chdir(o->pwd)) {
		fprintf(stderr, "kiln: working directory %s: %s\n", o->pwd, strerror(errno));
		_exit(127);
	}
	fd = install_filter();
	if (fd < 0) {
		fprintf(stderr, "kiln: cannot install the seccomp filter: %s\n", strerror(-fd));
		_exit(127);
	}
	if (kiln_send_fd_deadline(sock, &one, 1, fd, kiln_now_ns() + SV_HANDOFF_NS))
		_exit(127);
	/* From here on, file calls wait for the supervisor, which has the fd. */
	close(fd);
	if (o->exe_fd >= 0) {
		/* The very file that was measured: no path lookup between the
		 * measurement and the exec. */
		syscall(SYS_execveat, o->exe_fd, "", argv, o->envp ? o->envp : environ,
			AT_EMPTY_PATH);
	} else if (o->envp) {
		execvpe(argv[0], argv, o->envp);
	} else {
		execvp(argv[0], argv);
	}
	fprintf(stderr, "kiln: cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int recv_fd(int sock)
{
	char one;
	int fd;
	ssize_t n = kiln_recv_fd_deadline(sock, &one, 1, 0, kiln_now_ns() + SV_HANDOFF_NS, &fd);

	if (n == 1 && fd >= 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -EPIPE;
}

/* ---- reading the program's arguments ----------------------------------- */
int sv_read_mem(pid_t pid, uint64_t addr, void *buf, size_t size)
{
	struct iovec l = { .iov_base = buf, .iov_len = size };
	struct iovec r = { .iov_base = (void *)(uintptr_t)addr, .iov_len = size };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == size ? 0 : -EFAULT;
}

int sv_write_mem(pid_t pid, uint64_t addr, const void *buf, size_t size)
{
	struct iovec l = { .iov_base = (void *)buf, .iov_len = size };
	struct iovec r = { .iov_base = (void *)(uintptr_t)addr, .iov_len = size };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == size ? 0 : -EFAULT;
}

/* A NUL-terminated string, read page by page (a short read at an unmapped page
 * is not an error until the NUL is missing). */
static int read_str(pid_t pid, uint64_t addr, char *out, size_t size)
{
	size_t got = 0;

	if (!addr)
		return -EFAULT;
	while (got < size) {
		size_t chunk = 4096 - ((addr + got) & 4095);
		int ret;

		if (chunk > size - got)
			chunk = size - got;
		ret = sv_read_mem(pid, addr + got, out + got, chunk);
		if (ret)
			return ret;
		if (memchr(out + got, '\0', chunk))
			return 0;
		got += chunk;
	}
	return -ENAMETOOLONG;
}

/* Absolute, normalized form of (dirfd, path) as the program sees it: 0, 1
 * when it was taken relative to a protected directory fd (which stands for
 * its directory; the kernel would take it relative to the removed empty one
 * the fd is, supervise_dirs.c), or -errno. */
static int resolve(struct sv *sv, pid_t pid, int dirfd, uint64_t path_addr, char *out,
		   size_t out_size)
{
	char path[SV_PATH], link[64], base[SV_PATH];
	const char *dir;
	ssize_t n;
	int ret = read_str(pid, path_addr, path, sizeof(path));

	if (ret)
		return ret;
	if (!path[0])
		return -ENOENT;
	if (path[0] != '/' && dirfd != AT_FDCWD && (dir = sv_dir_path(sv, pid, dirfd))) {
		ret = rt_path_normalize(dir, path, out, out_size);
		return ret ? ret : 1;
	}
	if (path[0] != '/') {
		if (dirfd == AT_FDCWD)
			snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
		else
			snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, dirfd);
		n = readlink(link, base, sizeof(base) - 1);
		if (n <= 0)
			return -EBADF;
		base[n] = '\0';
		if (base[0] != '/')
			return -ENOTDIR;
	}
	return rt_path_normalize(path[0] == '/' ? "/" : base, path, out, out_size);
}

/* ---- injected files --------------------------------------------------------- */
int rt_sv_file_add(void *setp, const char *path, const void *data, size_t size, mode_t mode)
{
	struct rt_sv_files *set = setp;
	int fd;

	if (set->n >= RT_SV_MAX_INJECTED)
		return -E2BIG;
	if (strlen(path) >= sizeof(set->f[0].path) ||
	    rt_path_normalize(NULL, path, set->f[set->n].path, sizeof(set->f[0].path)))
		return -ENAMETOOLONG;
	fd = memfd_create("kiln-injected", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((size && kiln_write_all(fd, data, size)) || fchmod(fd, mode & 07777)) {
		int ret = -errno;

		close(fd);
		return ret ? ret : -EIO;
	}
	set->f[set->n++].memfd = fd;
	return 0;
}

void rt_sv_files_close(struct rt_sv_files *set)
{
	for (size_t i = 0; set && i < set->n; i++) {
		/* The content is a secret: empty it before the last close. */
		int r = ftruncate(set->f[i].memfd, 0);

		(void)r;
		close(set->f[i].memfd);
	}
	if (set)
		set->n = 0;
}

static int find_injected(const struct sv *sv, const char *abs)
{
	for (size_t i = 0; sv->inj && i < sv->inj->n; i++)
		if (strcmp(sv->inj->f[i].path, abs) == 0)
			return sv->inj->f[i].memfd;
	return -1;
}

/* open of an injected file: a new open file description on its memfd (the
 * program's writes are seen by its later opens, as on a tmpfs). */
static long open_injected(struct sv *sv, const struct seccomp_notif *n, int memfd, int flags)
{
	char p[64];
	int fd, ret;

	if ((flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	if (flags & O_DIRECTORY)
		return -ENOTDIR;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", memfd);
	fd = open(p, (flags & (O_ACCMODE | O_APPEND)) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && ftruncate(fd, 0)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return sv_inject(sv, n, fd, flags);
}

long sv_inject(struct sv *sv, const struct seccomp_notif *n, int fd, int flags)
{
	struct seccomp_notif_addfd add = { 0 };
	int ret;

	add.id = n->id;
	add.flags = SECCOMP_ADDFD_FLAG_SEND;
	add.srcfd = (unsigned)fd;
	add.newfd_flags = (flags & O_CLOEXEC) ? O_CLOEXEC : 0;
	ret = ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
	if (ret < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* ---- refusals and reports ---------------------------------------------------- */
/* A call kiln cannot serve for a static program: ENOTSUP, and one line the
 * first time that call is refused (sqlite opens a database's directory to
 * fsync it at every transaction; the line would repeat for ever). */
long sv_refuse(struct sv *sv, const char *call, long nr, const char *abs)
{
	if (nr >= 0 && nr < RT_SYSCALL_COUNT && !(sv->refused[nr / 8] & (1u << (nr % 8)))) {
		sv->refused[nr / 8] |= (uint8_t)(1u << (nr % 8));
		fprintf(stderr, "kiln: %s on %s: not supported for statically linked programs\n",
			call, abs);
		fflush(stderr);
	}
	return -ENOTSUP;
}

void sv_report(const char *call, const char *path, const char *msg)
{
	fprintf(stderr, "kiln: %s on %s: %s\n", call, path, msg);
	fflush(stderr);
}

/* stat of an injected file: its memfd's (mode from the policy). */
static long injected_stat(int memfd, struct stat *st)
{
	return fstat(memfd, st) ? -errno : 0;
}

static void statx_of(const struct stat *st, struct statx *sx)
{
	memset(sx, 0, sizeof(*sx));
	sx->stx_mask = STATX_BASIC_STATS;
	sx->stx_dev_major = major(st->st_dev);
	sx->stx_dev_minor = minor(st->st_dev);
	sx->stx_ino = st->st_ino;
	sx->stx_blksize = (uint32_t)st->st_blksize;
	sx->stx_nlink = (uint32_t)st->st_nlink;
	sx->stx_uid = st->st_uid;
	sx->stx_gid = st->st_gid;
	sx->stx_mode = (uint16_t)st->st_mode;
	sx->stx_size = (uint64_t)st->st_size;
	sx->stx_blocks = (uint64_t)st->st_blocks;
	sx->stx_atime.tv_sec = st->st_atim.tv_sec;
	sx->stx_atime.tv_nsec = (uint32_t)st->st_atim.tv_nsec;
	sx->stx_mtime.tv_sec = st->st_mtim.tv_sec;
	sx->stx_mtime.tv_nsec = (uint32_t)st->st_mtim.tv_nsec;
	sx->stx_ctime.tv_sec = st->st_ctim.tv_sec;
	sx->stx_ctime.tv_nsec = (uint32_t)st->st_ctim.tv_nsec;
	sx->stx_btime = sx->stx_mtime;
}

enum { SV_CONTINUE = 1, SV_REPLIED = 2 };

/* Handle one notification. Returns SV_CONTINUE (let the kernel run it),
 * SV_REPLIED (answered by ADDFD), or 0 with *val set (reply with *val). */
static int handle(struct sv *sv, const struct seccomp_notif *n, long *val)
{
	const __u64 *a = n->data.args;
	const char *call = rt_syscall_name(n->data.nr);
	char abs[SV_PATH], abs2[SV_PATH];
	const char *rel = NULL, *rel2 = NULL;
	struct sv_vol *v, *v2;
	pid_t tid = (pid_t)n->pid;
	int nr = n->data.nr, dirfd = AT_FDCWD, inj, ret;
	bool via_dir;
	uint64_t path = a[0];

	switch (nr) {
	case SYS_execve:
	case SYS_execveat:
		/* An attested program's environment holds its policy's secrets,
		 * and what it would execute inherits that environment with no
		 * runtime in it and no attestation of its own (the seccomp
		 * supervisor cannot attest a program in its place after an exec):
		 * refused, also from a forked child. In development mode the exec
		 * goes on, still supervised. The first exec is the supervisor's
		 * own, of the program. */
		if (!sv->attested || !sv->started) {
			sv->started = true;
			return SV_CONTINUE;
		}
		if ((nr == SYS_execveat ? resolve(sv, (pid_t)n->pid, (int)a[0], a[1], abs, sizeof(abs))
					: resolve(sv, (pid_t)n->pid, AT_FDCWD, a[0], abs, sizeof(abs))) < 0)
			snprintf(abs, sizeof(abs), "(a program)");
		fprintf(stderr, "kiln: %s %s: an attested statically linked program may not "
			"execute another program (it would inherit the secrets unattested): "
			"refused\n", call, abs);
		*val = -EPERM;
		return 0;
	case SYS_fsync:
	case SYS_fdatasync:
	case SYS_close:
	case SYS_getdents64: {
		struct sv_fd *e = nr == SYS_getdents64 ? NULL : sv_fd_find(sv, tid, (int)a[0]);
		struct sv_dfd *de;

		if (!e) {
			/* A directory's (a close: only one tracked already). */
			de = sv_dfd_find(sv, tid, (int)a[0], nr != SYS_close);
			if (!de)
				return SV_CONTINUE;
			if (nr == SYS_close) {
				sv_dir_close(sv, de);
				return SV_CONTINUE;
			}
			*val = nr == SYS_getdents64 ? sv_getdents(sv, tid, de, a[1], (size_t)a[2]) :
			       sv_dir_fsync(de);
			return 0;
		}
		if (nr == SYS_close) {
			sv_close(sv, n, e);
			return SV_CONTINUE;
		}
		*val = sv_fsync(sv, e);
		return 0;
	}
	case SYS_exit_group:
		sv_exit(sv, tid);
		return SV_CONTINUE;
	case SYS_write:
	case SYS_pwrite64:
	case SYS_writev:
	case SYS_pwritev:
	case SYS_pwritev2:
	case SYS_sendfile:
	case SYS_splice:
	case SYS_copy_file_range:
		return sv_sync_write(sv, n, val) ? 0 : SV_CONTINUE;
	case SYS_openat:
	case SYS_openat2:
	case SYS_newfstatat:
	case SYS_statx:
	case SYS_faccessat:
	case SYS_faccessat2:
	case SYS_unlinkat:
	case SYS_renameat:
	case SYS_renameat2:
	case SYS_mkdirat:
		dirfd = (int)a[0];
		path = a[1];
		break;
	default:
		break;
	}
	ret = resolve(sv, tid, dirfd, path, abs, sizeof(abs));
	if (ret < 0)
		return SV_CONTINUE; /* the kernel gives the program the same error */
	via_dir = ret == 1;
	v = sv_find_vol(sv, abs, &rel);
	if (nr == SYS_rename || nr == SYS_renameat || nr == SYS_renameat2) {
		int d2 = nr == SYS_rename ? AT_FDCWD : (int)a[2];

		ret = resolve(sv, tid, d2, nr == SYS_rename ? a[1] : a[3], abs2, sizeof(abs2));
		if (ret < 0)
			return SV_CONTINUE;
		v2 = sv_find_vol(sv, abs2, &rel2);
		inj = find_injected(sv, abs) >= 0 || find_injected(sv, abs2) >= 0;
		if (!v && !v2 && !inj && !via_dir && ret != 1)
			return SV_CONTINUE;
		if (ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &n->id))
			return SV_REPLIED;
		if (inj || (!v && !v2))
			goto unsupported; /* out of a volume through its directory fd */
		if (v != v2) {
			*val = -EXDEV;
			return 0;
		}
		*val = sv_rename(sv, tid, v, rel, rel2, nr == SYS_renameat2 ? (unsigned)a[4] : 0);
		return 0;
	}
	inj = find_injected(sv, abs);
	if (!v && inj < 0 && !via_dir)
		return SV_CONTINUE;
	/* Decided from the program's memory: act only if the call is still live. */
	if (ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &n->id))
		return SV_REPLIED;
	if (!v && inj < 0)
		goto unsupported; /* out of a volume through its directory fd */
	switch (nr) {
	case SYS_open:
	case SYS_openat:
	case SYS_creat:
	case SYS_openat2: {
		int flags = (int)(nr == SYS_open ? a[1] : a[2]);
		mode_t mode = (mode_t)(nr == SYS_open ? a[2] : a[3]);

		if (nr == SYS_creat) {
			flags = O_CREAT | O_WRONLY | O_TRUNC;
			mode = (mode_t)a[1];
		} else if (nr == SYS_openat2) {
			struct open_how how = { 0 };

			if (a[3] < sizeof(how) || sv_read_mem(tid, a[2], &how, sizeof(how))) {
				*val = -EFAULT;
				return 0;
			}
			flags = (int)how.flags;
			mode = (mode_t)how.mode;
		}
		if (inj >= 0)
			*val = open_injected(sv, n, inj, flags);
		else
			*val = sv_open(sv, n, abs, v, rel, flags, mode);
		return *val >= 0 ? SV_REPLIED : 0;
	}
	case SYS_stat:
	case SYS_lstat:
	case SYS_newfstatat:
	case SYS_statx: {
		bool nofollow = nr == SYS_lstat ||
				(nr == SYS_newfstatat && (a[3] & AT_SYMLINK_NOFOLLOW)) ||
				(nr == SYS_statx && (a[2] & AT_SYMLINK_NOFOLLOW));
		struct stat st;

		ret = inj >= 0 ? (int)injected_stat(inj, &st) :
		      (int)sv_stat(sv, tid, v, rel, nofollow ? RT_STAT_NOFOLLOW : 0, &st);
		if (ret) {
			*val = ret;
			return 0;
		}
		if (nr == SYS_statx) {
			struct statx sx;

			statx_of(&st, &sx);
			ret = sv_write_mem(tid, a[4], &sx, sizeof(sx));
		} else {
			ret = sv_write_mem(tid, nr == SYS_newfstatat ? a[2] : a[1], &st, sizeof(st));
		}
		*val = ret ? -EFAULT : 0;
		return 0;
	}
	case SYS_access:
	case SYS_faccessat:
	case SYS_faccessat2: {
		int mode = (int)(nr == SYS_access ? a[1] : a[2]);
		int flags = nr == SYS_faccessat2 ? (int)a[3] : 0;

		*val = inj >= 0 ? 0 : sv_access(sv, tid, v, rel, mode, flags);
		return 0;
	}
	default:
		break;
	}
	if (inj >= 0)
		goto unsupported;
	switch (nr) {
	case SYS_unlink:
	case SYS_unlinkat:
	case SYS_rmdir:
		*val = sv_unlink(sv, tid, v, rel,
				 nr == SYS_rmdir || (nr == SYS_unlinkat && (a[2] & AT_REMOVEDIR)) ?
				 AT_REMOVEDIR : 0);
		return 0;
	case SYS_mkdir:
	case SYS_mkdirat:
		*val = sv_mkdir(sv, tid, v, rel, (mode_t)(nr == SYS_mkdir ? a[1] : a[2]));
		return 0;
	case SYS_truncate:
		*val = sv_truncate(sv, tid, v, rel, a[1]);
		return 0;
	default:
		break;
	}
unsupported:
	*val = sv_refuse(sv, call, nr, abs);
	return 0;
}

int sv_serve_one(struct sv *sv)
{
	struct seccomp_notif n;
	struct seccomp_notif_resp r;
	long val = 0;
	int what;

	memset(&n, 0, sizeof(n));
	if (ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_RECV, &n))
		return errno == EINTR || errno == ENOENT ? 0 : -errno;
	if (n.data.nr == SYS_execve || n.data.nr == SYS_execveat)
		sv_sweep_soon(sv); /* O_CLOEXEC fds go without a close */
	what = handle(sv, &n, &val);
	if (what == SV_REPLIED)
		return 0;
	memset(&r, 0, sizeof(r));
	r.id = n.id;
	if (what == SV_CONTINUE) {
		r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	} else if (val < 0) {
		r.error = (int)val;
	} else {
		r.val = val;
	}
	/* ENOENT: the call was interrupted meanwhile; nothing to undo. */
	(void)ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
	return 0;
}

static void loop(struct sv *sv)
{
	for (;;) {
		struct pollfd p = { .fd = sv->listener, .events = POLLIN };
		uint64_t now = kiln_now_ns();
		int np, timeout = -1;

		/* Files held: look again for fds the program lost without a
		 * close (exec, exit, kill) and for kept files to give back,
		 * every second, and soon after an exit or exec. */
		if (sv_holds_files(sv) && !sv->sweep_at)
			sv->sweep_at = now + 1000000000ull;
		if (sv->sweep_at && now >= sv->sweep_at) {
			sv_sweep(sv);
			continue;
		}
		if (sv->sweep_at)
			timeout = (int)((sv->sweep_at - now) / 1000000) + 1;
		np = poll(&p, 1, timeout);
		if (np < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (np == 0)
			continue;
		if (!(p.revents & POLLIN))
			return; /* POLLHUP: every task of the program is gone */
		if (sv_serve_one(sv))
			return;
	}
}

int rt_supervise(const struct rt_config *cfg, char *const argv[], int *exit_status,
		 struct kiln_err *err)
{
	const struct rt_sv_opts o = { .exe_fd = -1 };

	return rt_supervise_ex(cfg, &o, argv, exit_status, err);
}

int rt_supervise_ex(const struct rt_config *cfg, const struct rt_sv_opts *opts,
		    char *const argv[], int *exit_status, struct kiln_err *err)
{
	struct sv *sv = calloc(1, sizeof(*sv));
	int sp[2] = { -1, -1 }, ret, st;
	void (*sig_int)(int) = SIG_DFL, (*sig_quit)(int) = SIG_DFL;
	void (*sig_term)(int) = SIG_DFL, (*sig_hup)(int) = SIG_DFL;
	bool signals = false;
	pid_t parent;

	if (!sv)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	sv->listener = sv->devnull = sv->deadfd = -1;
	sv->attested = cfg->cas[0] != '\0';
	sv->inj = opts->files;
	sv->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (sv->devnull < 0) {
		ret = kiln_err_set(err, -errno, "/dev/null: %s", strerror(errno));
		goto out;
	}
	ret = sv_vols_open(sv, cfg, err);
	if (ret)
		goto out;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp)) {
		ret = kiln_err_set(err, -errno, "socketpair: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	/* Terminal signals reach the program directly (same process group). */
	sig_int = signal(SIGINT, SIG_IGN);
	sig_quit = signal(SIGQUIT, SIG_IGN);
	sig_term = signal(SIGTERM, forward);
	sig_hup = signal(SIGHUP, forward);
	signals = true;
	parent = getpid();
	sv->pid = fork();
	if (sv->pid < 0) {
		ret = kiln_err_set(err, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (sv->pid == 0) {
		close(sp[0]);
		child_exec(sp[1], parent, opts, argv);
	}
	g_child = sv->pid;
	close(sp[1]);
	sp[1] = -1;
	sv->listener = recv_fd(sp[0]);
	if (sv->listener < 0) {
		/* The child said why on stderr. */
		while (waitpid(sv->pid, &st, 0) < 0 && errno == EINTR)
			;
		ret = kiln_err_set(err, -ENOSYS, "cannot supervise %s with seccomp", argv[0]);
		goto out;
	}
	loop(sv);
	while (waitpid(sv->pid, &st, 0) < 0) {
		if (errno != EINTR) {
			st = 0;
			break;
		}
	}
	*exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	ret = 0;
out:
	g_child = 0;
	if (signals) {
		signal(SIGINT, sig_int);
		signal(SIGQUIT, sig_quit);
		signal(SIGTERM, sig_term);
		signal(SIGHUP, sig_hup);
	}
	sv_vols_close(sv);
	if (sv->devnull >= 0)
		close(sv->devnull);
	if (sv->listener >= 0)
		close(sv->listener);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	free(sv);
	return ret;
}
