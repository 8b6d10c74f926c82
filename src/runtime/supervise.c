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

#include "pf/pf.h"
#include "runtime/runtime.h"
#include "runtime/supervise.h"
#include "runtime/attest_proto.h"

#define SV_PATH 4096
#define SV_MAX_FILES 1024
/* The child hands the seccomp listener over within this time. */
#define SV_HANDOFF_NS (60ull * 1000000000)

struct sv_vol {
	const struct rt_volume_cfg *cfg;
	pf_volume_t *pf; /* owned */
	dev_t dev;       /* st_dev of its files (struct sv_ident) */
};

/* A protected file the program has open: its fd number in the program, the
 * memfd with the plaintext (our copy) and the pf handle. */
struct sv_file {
	pid_t tgid;         /* the process (thread group) that owns child_fd */
	int child_fd;
	int memfd;          /* owned */
	pf_file_t *pf;      /* owned */
	struct sv_vol *vol;
	bool writable;
	struct timespec mtime, ctime; /* of the memfd when last in sync */
	char path[SV_PATH]; /* absolute path the program used */
};

struct sv {
	pid_t pid;
	int listener;
	bool attested;                 /* the program holds a grant (kiln run --cas) */
	bool started;                  /* the program itself was executed (first exec) */
	const struct rt_sv_files *inj; /* injected files, may be NULL */
	size_t nvols;
	struct sv_vol vols[RT_MAX_VOLUMES];
	size_t nfiles;
	struct sv_file *files[SV_MAX_FILES]; /* owned */
	uint8_t refused[(RT_SYSCALL_COUNT + 7) / 8]; /* calls already refused with a line */
};

/* The program's pid for the signal forwarder (0: none). */
static volatile sig_atomic_t g_child;

/* SIGTERM/SIGHUP sent to the launcher go to the program, which then exits
 * through exit_group so its files are written back; the launcher stays to the
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
		if (!g_rt_syscalls[nr].supervised)
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
static int read_mem(pid_t pid, uint64_t addr, void *buf, size_t size)
{
	struct iovec l = { .iov_base = buf, .iov_len = size };
	struct iovec r = { .iov_base = (void *)(uintptr_t)addr, .iov_len = size };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == size ? 0 : -EFAULT;
}

static int write_mem(pid_t pid, uint64_t addr, const void *buf, size_t size)
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
		ret = read_mem(pid, addr + got, out + got, chunk);
		if (ret)
			return ret;
		if (memchr(out + got, '\0', chunk))
			return 0;
		got += chunk;
	}
	return -ENAMETOOLONG;
}

/* Absolute, normalized form of (dirfd, path) as the program sees it. */
static int resolve(pid_t pid, int dirfd, uint64_t path_addr, char *out, size_t out_size)
{
	char path[SV_PATH], link[64], base[SV_PATH];
	ssize_t n;
	int ret = read_str(pid, path_addr, path, sizeof(path));

	if (ret)
		return ret;
	if (!path[0])
		return -ENOENT;
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

static struct sv_vol *find_vol(struct sv *sv, const char *abs, const char **rel)
{
	struct sv_vol *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < sv->nvols; i++) {
		const char *r = rt_path_under(abs, sv->vols[i].cfg->mount);
		size_t len = strlen(sv->vols[i].cfg->mount);

		if (r && (!best || len > best_len)) {
			best = &sv->vols[i];
			best_len = len;
			*rel = r;
		}
	}
	return best;
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
	struct seccomp_notif_addfd add = { 0 };
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

/* ---- protected files ------------------------------------------------------ */
/* The process of thread tid (notifications name threads), or -1. */
static pid_t tgid_of(pid_t tid)
{
	char path[64], buf[512];
	const char *t;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	t = strstr(buf, "\nTgid:");
	return t ? (pid_t)atoi(t + 6) : -1;
}

/* The entry for (process of tid, child_fd); the process is looked up only
 * when some entry has that fd number (the common close is not ours). */
static struct sv_file **find_file(struct sv *sv, pid_t tid, int child_fd)
{
	pid_t tgid = 0;

	for (size_t i = 0; i < sv->nfiles; i++) {
		if (sv->files[i]->child_fd != child_fd)
			continue;
		if (!tgid)
			tgid = tgid_of(tid);
		if (sv->files[i]->tgid == tgid)
			return &sv->files[i];
	}
	return NULL;
}

static void memfd_times(int memfd, struct timespec *m, struct timespec *c)
{
	struct stat st;

	if (fstat(memfd, &st) == 0) {
		*m = st.st_mtim;
		*c = st.st_ctim;
	}
}

/* A call kiln cannot serve for a static program: ENOTSUP, and one line the
 * first time that call is refused (sqlite opens a database's directory to
 * fsync it at every transaction; the line would repeat for ever). */
static long refuse(struct sv *sv, const char *call, long nr, const char *abs)
{
	if (nr >= 0 && nr < RT_SYSCALL_COUNT && !(sv->refused[nr / 8] & (1u << (nr % 8)))) {
		sv->refused[nr / 8] |= (uint8_t)(1u << (nr % 8));
		fprintf(stderr, "kiln: %s on %s: not supported for statically linked programs\n",
			call, abs);
		fflush(stderr);
	}
	return -ENOTSUP;
}

/* Write the memfd back through pf when it changed since the last write-back. */
static int write_back(struct sv_file *f, struct kiln_err *err)
{
	static char buf[1 << 16];
	struct stat st;
	uint64_t off = 0;
	int ret;

	if (!f->writable)
		return 0;
	if (fstat(f->memfd, &st))
		return kiln_err_set(err, -errno, "fstat: %s", strerror(errno));
	if (st.st_mtim.tv_sec == f->mtime.tv_sec && st.st_mtim.tv_nsec == f->mtime.tv_nsec &&
	    st.st_ctim.tv_sec == f->ctime.tv_sec && st.st_ctim.tv_nsec == f->ctime.tv_nsec)
		return 0;
	while (off < (uint64_t)st.st_size) {
		ssize_t n = pread(f->memfd, buf, sizeof(buf), (off_t)off);
		ssize_t w;

		if (n <= 0)
			break;
		w = pf_pwrite(f->pf, buf, (size_t)n, off, err);
		if (w < 0) {
			ret = (int)w;
			goto out;
		}
		off += (uint64_t)n;
	}
	ret = pf_ftruncate(f->pf, off, err);
	if (!ret)
		ret = pf_fsync(f->pf, err);
	if (!ret) {
		f->mtime = st.st_mtim;
		f->ctime = st.st_ctim;
	}
out:
	kiln_wipe(buf, sizeof(buf));
	return ret;
}

static void file_free(struct sv_file *f)
{
	if (!f)
		return;
	pf_close(f->pf);
	close(f->memfd);
	free(f);
}

static void report(const char *call, const char *path, const struct kiln_err *err, int code)
{
	fprintf(stderr, "kiln: %s on %s: %s\n", call, path, kiln_err_msg(err, code));
	fflush(stderr);
}

/* open/openat/openat2/creat on a protected path: decrypt into a memfd and
 * install it in the program. Returns the program's new fd or -errno. */
static long do_open(struct sv *sv, const struct seccomp_notif *n, const char *call,
		    const char *abs, struct sv_vol *v, const char *rel, int flags, mode_t mode)
{
	struct kiln_err err = { 0 };
	struct sv_file *f = NULL;
	struct seccomp_notif_addfd add = { 0 };
	static char buf[1 << 16];
	int acc = flags & O_ACCMODE, inject = -1, ret;
	uint64_t off = 0;

	if (sv->nfiles >= SV_MAX_FILES)
		return -EMFILE;
	if (flags & (O_DIRECTORY | O_PATH))
		return refuse(sv, call, n->data.nr, abs);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->memfd = -1;
	f->vol = v;
	f->writable = acc != O_RDONLY || (flags & O_TRUNC);
	snprintf(f->path, sizeof(f->path), "%s", abs);
	ret = pf_open(v->pf, rel, (f->writable ? O_RDWR : O_RDONLY) |
		      (flags & (O_CREAT | O_EXCL | O_TRUNC)), mode & 07777, &f->pf, &err);
	if (ret == -EISDIR) {
		ret = (int)refuse(sv, call, n->data.nr, abs);
		goto fail;
	}
	if (ret)
		goto fail_report;
	f->memfd = memfd_create("kiln-static", MFD_CLOEXEC);
	if (f->memfd < 0) {
		ret = -errno;
		goto fail;
	}
	for (;;) {
		ssize_t r = pf_pread(f->pf, buf, sizeof(buf), off, &err);

		if (r < 0) {
			ret = (int)r;
			kiln_wipe(buf, sizeof(buf));
			goto fail_report;
		}
		if (r == 0)
			break;
		if (pwrite(f->memfd, buf, (size_t)r, (off_t)off) != r) {
			ret = -EIO;
			kiln_wipe(buf, sizeof(buf));
			goto fail;
		}
		off += (uint64_t)r;
	}
	kiln_wipe(buf, sizeof(buf));
	if (f->writable && (flags & O_TRUNC))
		memset(&f->mtime, 0, sizeof(f->mtime)); /* the truncation must be stored */
	else
		memfd_times(f->memfd, &f->mtime, &f->ctime);
	if ((flags & O_APPEND) && fcntl(f->memfd, F_SETFL, O_APPEND)) {
		ret = -errno;
		goto fail;
	}
	if (acc == O_RDONLY) {
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", f->memfd);
		inject = open(p, O_RDONLY | O_CLOEXEC);
		if (inject < 0) {
			ret = -errno;
			goto fail;
		}
	}
	add.id = n->id;
	add.flags = SECCOMP_ADDFD_FLAG_SEND;
	add.srcfd = (unsigned)(inject >= 0 ? inject : f->memfd);
	add.newfd_flags = (flags & O_CLOEXEC) ? O_CLOEXEC : 0;
	ret = ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
	if (inject >= 0)
		close(inject);
	if (ret < 0) {
		ret = -errno;
		goto fail;
	}
	f->child_fd = ret;
	f->tgid = tgid_of((pid_t)n->pid);
	/* A stale entry for the same number (closed behind our back: exec with
	 * O_CLOEXEC, dup2 over it) goes first. */
	{
		struct sv_file **old = find_file(sv, (pid_t)n->pid, ret);

		if (old) {
			struct kiln_err e2 = { 0 };
			int r2 = write_back(*old, &e2);

			if (r2)
				report("close", (*old)->path, &e2, r2);
			file_free(*old);
			*old = f;
			return ret;
		}
	}
	sv->files[sv->nfiles++] = f;
	return ret;
fail_report:
	/* Integrity and format failures name the file; plain errnos (ENOENT...)
	 * are the program's business, as they would be without kiln. */
	if (ret < -4095)
		report(call, abs, &err, ret);
fail:
	file_free(f);
	return ret < -4095 ? -EIO : ret;
}

/* Which file a stat names, as the program compares it with fstat: a file the
 * program has open is its memfd (fstat is not trapped, so the kernel answers
 * it from the memfd: sqlite takes a stat(path) whose st_ino differs from its
 * fstat(fd) for a database moved under it, "attempt to write a readonly
 * database"); any other is pf's inode number on a device of its own (the
 * LD_PRELOAD path's major, "kln"), never 0 for every file (cp, tar, find
 * -samefile tell files apart by them). */
struct sv_ident {
	dev_t dev;
	ino_t ino;
};

static void fill_stat(const struct pf_stat *ps, const struct sv_ident *id, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = id->dev;
	st->st_ino = id->ino;
	st->st_mode = (ps->is_dir ? S_IFDIR : S_IFREG) | (ps->mode & 07777);
	st->st_nlink = ps->is_dir ? 2 : 1;
	st->st_uid = geteuid();
	st->st_gid = getegid();
	st->st_size = (off_t)ps->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((ps->size + 511) / 512);
	st->st_mtim.tv_sec = ps->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = ps->mtime_ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void fill_statx(const struct pf_stat *ps, const struct sv_ident *id, struct statx *sx)
{
	memset(sx, 0, sizeof(*sx));
	sx->stx_mask = STATX_BASIC_STATS;
	sx->stx_dev_major = major(id->dev);
	sx->stx_dev_minor = minor(id->dev);
	sx->stx_ino = id->ino;
	sx->stx_blksize = 4096;
	sx->stx_nlink = ps->is_dir ? 2 : 1;
	sx->stx_uid = geteuid();
	sx->stx_gid = getegid();
	sx->stx_mode = (uint16_t)((ps->is_dir ? S_IFDIR : S_IFREG) | (ps->mode & 07777));
	sx->stx_size = ps->size;
	sx->stx_blocks = (ps->size + 511) / 512;
	sx->stx_mtime.tv_sec = ps->mtime_ns / 1000000000;
	sx->stx_mtime.tv_nsec = (uint32_t)(ps->mtime_ns % 1000000000);
	sx->stx_atime = sx->stx_mtime;
	sx->stx_ctime = sx->stx_mtime;
	sx->stx_btime = sx->stx_mtime;
}

/* stat of an injected file, from its memfd. */
static int injected_stat(int memfd, struct pf_stat *ps, struct sv_ident *id)
{
	struct stat st;

	if (fstat(memfd, &st))
		return -errno;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	memset(ps, 0, sizeof(*ps));
	ps->mode = st.st_mode & 07777;
	ps->size = (uint64_t)st.st_size;
	ps->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
}

/* An open protected file: size and identity from its memfd, which may be
 * ahead of the volume and is what the program's fstat sees. */
static void open_ident(struct sv *sv, const char *abs, struct pf_stat *ps, struct sv_ident *id)
{
	for (size_t i = 0; i < sv->nfiles; i++) {
		struct stat st;

		if (strcmp(sv->files[i]->path, abs) == 0 && fstat(sv->files[i]->memfd, &st) == 0) {
			ps->size = (uint64_t)st.st_size;
			id->dev = st.st_dev;
			id->ino = st.st_ino;
		}
	}
}

static long errno_of(int ret)
{
	return ret < -4095 ? -EIO : ret;
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
	struct kiln_err err = { 0 };
	int nr = n->data.nr, dirfd = AT_FDCWD, inj, ret;
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
		if (nr == SYS_execveat ? resolve((pid_t)n->pid, (int)a[0], a[1], abs, sizeof(abs))
				       : resolve((pid_t)n->pid, AT_FDCWD, a[0], abs, sizeof(abs)))
			snprintf(abs, sizeof(abs), "(a program)");
		fprintf(stderr, "kiln: %s %s: an attested statically linked program may not "
			"execute another program (it would inherit the secrets unattested): "
			"refused\n", call, abs);
		*val = -EPERM;
		return 0;
	case SYS_fsync:
	case SYS_fdatasync:
	case SYS_close: {
		struct sv_file **fp = find_file(sv, (pid_t)n->pid, (int)a[0]);

		if (!fp)
			return SV_CONTINUE;
		ret = write_back(*fp, &err);
		if (ret)
			report(call, (*fp)->path, &err, ret);
		if (nr != SYS_close) {
			*val = ret ? -EIO : 0;
			return 0;
		}
		file_free(*fp);
		*fp = sv->files[--sv->nfiles];
		return SV_CONTINUE;
	}
	case SYS_exit_group:
		for (size_t i = 0; i < sv->nfiles; i++) {
			ret = write_back(sv->files[i], &err);
			if (ret)
				report("exit", sv->files[i]->path, &err, ret);
		}
		return SV_CONTINUE;
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
	ret = resolve(sv->pid, dirfd, path, abs, sizeof(abs));
	if (ret)
		return SV_CONTINUE; /* the kernel gives the program the same error */
	v = find_vol(sv, abs, &rel);
	if (nr == SYS_rename || nr == SYS_renameat || nr == SYS_renameat2) {
		int d2 = nr == SYS_rename ? AT_FDCWD : (int)a[2];

		ret = resolve(sv->pid, d2, nr == SYS_rename ? a[1] : a[3], abs2, sizeof(abs2));
		if (ret)
			return SV_CONTINUE;
		v2 = find_vol(sv, abs2, &rel2);
		inj = find_injected(sv, abs) >= 0 || find_injected(sv, abs2) >= 0;
		if (!v && !v2 && !inj)
			return SV_CONTINUE;
		if (ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &n->id))
			return SV_REPLIED;
		if (inj)
			goto unsupported;
		if (v != v2) {
			*val = -EXDEV;
			return 0;
		}
		if (nr == SYS_renameat2 && a[4]) {
			fprintf(stderr, "kiln: renameat2 with flags on %s: not supported for "
				"statically linked programs\n", abs);
			*val = -ENOTSUP;
			return 0;
		}
		ret = pf_rename(v->pf, rel, rel2, &err);
		if (!ret)
			ret = pf_fsync_dir(v->pf, &err);
		for (size_t i = 0; !ret && i < sv->nfiles; i++)
			if (strcmp(sv->files[i]->path, abs) == 0)
				snprintf(sv->files[i]->path, SV_PATH, "%s", abs2);
		*val = errno_of(ret);
		return 0;
	}
	inj = find_injected(sv, abs);
	if (!v && inj < 0)
		return SV_CONTINUE;
	/* Decided from the program's memory: act only if the call is still live. */
	if (ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &n->id))
		return SV_REPLIED;
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

			if (a[3] < sizeof(how) || read_mem(sv->pid, a[2], &how, sizeof(how))) {
				*val = -EFAULT;
				return 0;
			}
			flags = (int)how.flags;
			mode = (mode_t)how.mode;
		}
		if (inj >= 0)
			*val = open_injected(sv, n, inj, flags);
		else
			*val = do_open(sv, n, call, abs, v, rel, flags, mode);
		return *val >= 0 ? SV_REPLIED : 0;
	}
	case SYS_stat:
	case SYS_lstat:
	case SYS_newfstatat:
	case SYS_statx: {
		struct pf_stat ps;
		struct sv_ident id = { 0 };

		if (inj >= 0) {
			ret = injected_stat(inj, &ps, &id);
		} else {
			ret = pf_stat(v->pf, rel, &ps, &err);
			if (!ret) {
				id.dev = v->dev;
				id.ino = (ino_t)ps.ino;
				open_ident(sv, abs, &ps, &id);
			}
		}
		if (ret) {
			*val = errno_of(ret);
			return 0;
		}
		if (nr == SYS_statx) {
			struct statx sx;

			fill_statx(&ps, &id, &sx);
			ret = write_mem(sv->pid, a[4], &sx, sizeof(sx));
		} else {
			struct stat st;

			fill_stat(&ps, &id, &st);
			ret = write_mem(sv->pid, nr == SYS_newfstatat ? a[2] : a[1], &st,
					sizeof(st));
		}
		*val = ret ? -EFAULT : 0;
		return 0;
	}
	case SYS_access:
	case SYS_faccessat:
	case SYS_faccessat2: {
		struct pf_stat ps;

		*val = inj >= 0 ? 0 : errno_of(pf_stat(v->pf, rel, &ps, &err));
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
		if (nr == SYS_rmdir || (nr == SYS_unlinkat && (a[2] & AT_REMOVEDIR)))
			ret = pf_rmdir(v->pf, rel, &err);
		else
			ret = pf_unlink(v->pf, rel, &err);
		if (!ret)
			ret = pf_fsync_dir(v->pf, &err);
		*val = errno_of(ret);
		return 0;
	case SYS_mkdir:
	case SYS_mkdirat:
		ret = pf_mkdir(v->pf, rel, (mode_t)(nr == SYS_mkdir ? a[1] : a[2]) & 07777, &err);
		if (!ret)
			ret = pf_fsync_dir(v->pf, &err);
		*val = errno_of(ret);
		return 0;
	case SYS_truncate:
		ret = pf_truncate(v->pf, rel, a[1], &err);
		if (!ret)
			ret = pf_volume_flush(v->pf, &err);
		*val = errno_of(ret);
		return 0;
	default:
		break;
	}
unsupported:
	*val = refuse(sv, call, nr, abs);
	return 0;
}

static void loop(struct sv *sv)
{
	struct seccomp_notif n;
	struct seccomp_notif_resp r;

	for (;;) {
		struct pollfd p = { .fd = sv->listener, .events = POLLIN };
		long val = 0;
		int what;

		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (!(p.revents & POLLIN))
			return; /* POLLHUP: every task of the program is gone */
		memset(&n, 0, sizeof(n));
		if (ioctl(sv->listener, SECCOMP_IOCTL_NOTIF_RECV, &n)) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			return;
		}
		what = handle(sv, &n, &val);
		if (what == SV_REPLIED)
			continue;
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
	}
}

/* st_dev of a volume's files, from its store (.kiln, which pf has just opened,
 * never through a symlink); 0 if it cannot be read. */
static dev_t volume_dev(const char *dir)
{
	char store[4200];
	struct stat st;

	snprintf(store, sizeof(store), "%s/.kiln", dir);
	return lstat(store, &st) == 0 ? rt_vol_dev(st.st_dev, st.st_ino) : 0;
}

static int open_volumes(struct sv *sv, const struct rt_config *cfg, struct kiln_err *err)
{
	for (size_t i = 0; i < cfg->n_volumes; i++) {
		const struct rt_volume_cfg *vc = &cfg->volumes[i];
		struct pf_volume_opts o = { 0 };
		bool create = false;
		int ret;

		sv->vols[i].cfg = vc;
		if (vc->cas_id[0]) {
			/* Granted by the CAS, which holds its tag; made at first use. */
			if (vc->committed == 0) {
				char store[4200];
				struct stat st;

				snprintf(store, sizeof(store), "%s/.kiln/meta", vc->dir);
				create = stat(store, &st) != 0 && errno == ENOENT;
				ret = create ? kiln_mkdir_p(vc->dir, 0700) : 0;
				if (ret)
					return kiln_err_set(err, ret, "volume %s: cannot create "
							    "%s: %s", vc->cas_id, vc->dir,
							    kiln_strerror(ret));
			}
			ret = rt_fresh_cas(vc, &o.freshness, &o.freshness_ctx);
			if (ret)
				return kiln_err_set(err, ret, "volume %s: %s", vc->cas_id,
						    kiln_strerror(ret));
		} else if (vc->tag_file[0]) {
			ret = pf_freshness_local(vc->tag_file, &o.freshness, &o.freshness_ctx);
			if (ret)
				return kiln_err_set(err, ret, "tag file %s: %s", vc->tag_file,
						    kiln_strerror(ret));
		}
		if (create)
			ret = pf_volume_init(vc->dir, vc->key, &o, &sv->vols[i].pf, err);
		else
			ret = pf_volume_open(vc->dir, vc->key, &o, &sv->vols[i].pf, err);
		if (ret) {
			char msg[sizeof(err->msg)];

			snprintf(msg, sizeof(msg), "%s", kiln_err_msg(err, ret));
			return kiln_err_set(err, ret, "volume %s: %s", vc->dir, msg);
		}
		sv->vols[i].dev = volume_dev(vc->dir);
		sv->nvols++;
	}
	return 0;
}

static void close_all(struct sv *sv)
{
	struct kiln_err err = { 0 };
	int ret;

	for (size_t i = 0; i < sv->nfiles; i++) {
		ret = write_back(sv->files[i], &err);
		if (ret)
			report("exit", sv->files[i]->path, &err, ret);
		file_free(sv->files[i]);
	}
	sv->nfiles = 0;
	for (size_t i = 0; i < sv->nvols; i++) {
		ret = pf_volume_close(sv->vols[i].pf, &err);
		if (ret)
			fprintf(stderr, "kiln: volume %s: %s\n", sv->vols[i].cfg->dir,
				kiln_err_msg(&err, ret));
	}
	sv->nvols = 0;
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
	sv->listener = -1;
	sv->attested = cfg->cas[0] != '\0';
	sv->inj = opts->files;
	ret = open_volumes(sv, cfg, err);
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
	close_all(sv);
	if (sv->listener >= 0)
		close(sv->listener);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	free(sv);
	return ret;
}
