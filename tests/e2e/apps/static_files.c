/* Statically linked test program for supervised mode (docs/runtime.md):
 *
 *   rt_static_files write DIR TEXT   write DIR/file.txt, fsync, close, reopen,
 *                                    read back, stat, append "+more", rename to
 *                                    DIR/renamed.txt; prints what it read
 *   rt_static_files read DIR         print DIR/renamed.txt and its size
 *   rt_static_files dir DIR          mkdir DIR/sub, open it as a directory:
 *                                    fsync, *at calls, readdir, rewinddir, a dup
 *                                    (dir() below); empty it, rmdir it
 *   rt_static_files fork DIR         write "A" to DIR/forked.txt, fork a child
 *                                    that closes the inherited fd and exits,
 *                                    then write "B", close, print the content
 *   rt_static_files bench DIR N      N open+close of DIR/renamed.txt, then of a
 *                                    file outside DIR; prints ns per open
 *   rt_static_files attest DIR [hold] (under `kiln run --cas`): print the
 *                                    arguments, whether $APP_PW is set and equals
 *                                    the injected /etc/kiln-test/pw.txt, whether
 *                                    $LAUNCHER_ENV is set, the working directory;
 *                                    append "$APP_PW $NOTE" to DIR/notes.txt
 *                                    (fsync) and
 *                                    print its line count; with hold, print
 *                                    "ready" and wait for EOF on stdin
 *   rt_static_files hold             print "ready", wait for EOF on stdin
 *   rt_static_files thread DIR       start a thread that prints "thread ran",
 *                                    join it, print "joined"
 *   rt_static_files signals DIR      (the static loader's SIGSYS) try to take
 *                                    SIGSYS (prints the result), then read
 *                                    DIR/renamed.txt with every signal blocked
 *                                    and from a SIGUSR1 handler whose mask is
 *                                    full
 *   rt_static_files list DIR         (libkiln semantics: the static loader)
 *                                    mkdir DIR/ls, create DIR/ls/a, list DIR/ls
 *                                    with readdir, print the names but . and ..
 *   rt_static_files shell DIR        commands on stdin, one answer line each
 *                                    (shell() below): a test drives this one
 *                                    and rt_dyn_files (the same source, linked
 *                                    dynamically: libkiln) on one volume
 *   rt_static_files forkview DIR     open DIR/view.txt, write "P1", fork; the
 *                                    child opens it again, reads "P1", writes
 *                                    "C1" after it; the parent reads it all
 *                                    (no close, no fsync between)
 *   rt_static_files head PATH N      print the first N bytes of PATH
 *
 * Exit 0 on success, 1 with "CALL: errno=N" on stdout on failure. Only libc. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "static_read.h"

static int fail(const char *call)
{
	printf("%s: errno=%d\n", call, errno);
	return 1;
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return fail("open-read");
	n = read(fd, buf, size - 1);
	if (n < 0)
		return fail("read");
	buf[n] = '\0';
	close(fd);
	return 0;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int hold(void)
{
	char c;

	puts("ready");
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

static int attest(int argc, char **argv)
{
	const char *pw = getenv("APP_PW"), *note;
	char path[4096], buf[4096];
	size_t lines = 0;
	ssize_t n;
	int fd;

	printf("argv");
	for (int i = 2; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\npw-env %zu %s\n", pw ? strlen(pw) : 0,
	       getenv("LAUNCHER_ENV") ? "launcher-env" : "policy-env-only");
	if (!pw || read_file("/etc/kiln-test/pw.txt", buf, sizeof(buf)))
		return 1;
	printf("pw-file %s\n", strcmp(buf, pw) == 0 ? "same" : "different");
	if (!getcwd(buf, sizeof(buf)))
		return fail("getcwd");
	printf("cwd %s\n", buf);
	snprintf(path, sizeof(path), "%s/notes.txt", argv[2]);
	fd = open(path, O_RDWR | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return fail("open-notes");
	note = getenv("NOTE");
	if (write(fd, pw, strlen(pw)) != (ssize_t)strlen(pw) ||
	    (note && (write(fd, " ", 1) != 1 ||
		      write(fd, note, strlen(note)) != (ssize_t)strlen(note))) ||
	    write(fd, "\n", 1) != 1)
		return fail("write");
	if (fsync(fd))
		return fail("fsync");
	if (lseek(fd, 0, SEEK_SET) < 0)
		return fail("lseek");
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	if (close(fd))
		return fail("close");
	printf("lines %zu\n", lines);
	if (argc > 3 && strcmp(argv[3], "hold") == 0)
		return hold();
	return 0;
}

static const char *g_sig_path;
static volatile sig_atomic_t g_sig_read;

static void on_usr1(int sig)
{
	char buf[256];

	(void)sig;
	g_sig_read = read_some(g_sig_path, buf, sizeof(buf)) > 0;
}

static int signals(const char *path)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigset_t all;
	char buf[256];
	int r;

	r = sigaction(SIGSYS, &sa, NULL);
	printf("sigaction SIGSYS: %d errno=%d\n", r, r ? errno : 0);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	printf("blocked read: %s\n", read_some(path, buf, sizeof(buf)) > 0 ? buf : "failed");
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	g_sig_path = path;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		return fail("sigaction");
	raise(SIGUSR1);
	printf("handler read: %s\n", g_sig_read ? "ok" : "failed");
	return 0;
}

static void *thread_main(void *arg)
{
	(void)arg;
	puts("thread ran");
	return NULL;
}

/* shell(): one command per line on stdin, one answer line on stdout:
 *   open NAME r|w|a   open DIR/NAME (w: O_RDWR|O_CREAT, a: and O_APPEND) -> ok
 *   pwrite OFF TEXT   -> ok            pread OFF LEN -> data TEXT
 *   append TEXT N     N writes of "TEXT\n" (each one write call) -> ok
 *   lock | unlock     fcntl F_SETLK of the whole file (write lock) -> ok | busy
 *   size              -> size N        close -> ok        quit
 *   dup               the open fd becomes a dup of it (the first closed) -> ok
 *   fsync             -> ok
 * A failure answers "CALL: errno=N". */
static int shell(const char *dir)
{
	char line[4096], path[8200], a[4096], b[4096];
	int fd = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		struct flock fl = { .l_whence = SEEK_SET };
		long long off = 0, n = 0;
		struct stat st;

		a[0] = b[0] = '\0';
		if (sscanf(line, "open %4095s %4095s", a, b) == 2) {
			int flags = b[0] == 'r' ? O_RDONLY : O_RDWR | O_CREAT;

			if (b[0] == 'a')
				flags |= O_APPEND;
			if (fd >= 0)
				close(fd);
			snprintf(path, sizeof(path), "%s/%s", dir, a);
			fd = open(path, flags, 0600);
			if (fd < 0)
				fail("open");
			else
				puts("ok");
		} else if (sscanf(line, "pwrite %lld %4095s", &off, a) == 2) {
			if (pwrite(fd, a, strlen(a), off) != (ssize_t)strlen(a))
				fail("pwrite");
			else
				puts("ok");
		} else if (sscanf(line, "pread %lld %lld", &off, &n) == 2 && n < 4096) {
			ssize_t r = pread(fd, a, (size_t)n, off);

			if (r < 0) {
				fail("pread");
			} else {
				a[r] = '\0';
				printf("data %s\n", a);
			}
		} else if (sscanf(line, "append %4000s %lld", a, &n) == 2) {
			size_t len = strlen(a);

			a[len++] = '\n';
			for (long long i = 0; i < n; i++) {
				if (write(fd, a, len) != (ssize_t)len) {
					fail("append");
					break;
				}
				if (i == n - 1)
					puts("ok");
			}
		} else if (strcmp(line, "lock\n") == 0 || strcmp(line, "unlock\n") == 0) {
			fl.l_type = line[0] == 'l' ? F_WRLCK : F_UNLCK;
			if (fcntl(fd, F_SETLK, &fl) == 0)
				puts("ok");
			else if (errno == EAGAIN || errno == EACCES)
				puts("busy");
			else
				fail("fcntl");
		} else if (strcmp(line, "size\n") == 0) {
			if (fstat(fd, &st))
				fail("fstat");
			else
				printf("size %lld\n", (long long)st.st_size);
		} else if (strcmp(line, "fsync\n") == 0) {
			if (fsync(fd))
				fail("fsync");
			else
				puts("ok");
		} else if (strcmp(line, "dup\n") == 0) {
			int d = dup(fd);

			if (d < 0 || close(fd)) {
				fail("dup");
			} else {
				fd = d;
				puts("ok");
			}
		} else if (strcmp(line, "close\n") == 0) {
			if (close(fd))
				fail("close");
			else
				puts("ok");
			fd = -1;
		} else if (strcmp(line, "quit\n") == 0) {
			return 0;
		} else {
			puts("unknown command");
		}
	}
	return 0;
}

/* Two processes of one supervised program on one file: one view. */
static int forkview(const char *dir)
{
	char path[4096], buf[64];
	int fd, pipefd[2], status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/view.txt", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "P1", 2) != 2)
		return fail("open-write");
	if (pipe(pipefd))
		return fail("pipe");
	pid = fork();
	if (pid < 0)
		return fail("fork");
	if (pid == 0) {
		int cfd = open(path, O_RDWR);
		ssize_t n;

		if (cfd < 0)
			_exit(fail("child-open"));
		n = pread(cfd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		printf("child read: %s\n", buf);
		fflush(stdout);
		if (pwrite(cfd, "C1", 2, 2) != 2)
			_exit(fail("child-write"));
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		/* Exits holding cfd: no close, no fsync. */
		_exit(0);
	}
	if (read(pipefd[0], buf, 1) != 1)
		return fail("pipe-read");
	memset(buf, 0, sizeof(buf));
	if (pread(fd, buf, sizeof(buf) - 1, 0) < 0)
		return fail("pread");
	printf("parent read: %s\n", buf);
	if (waitpid(pid, &status, 0) != pid)
		return fail("waitpid");
	return 0;
}

static int head(const char *path, long n)
{
	char buf[4096];
	ssize_t r;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return fail("open");
	r = read(fd, buf, n < (long)sizeof(buf) ? (size_t)n : sizeof(buf));
	if (r < 0)
		return fail("read");
	fwrite(buf, 1, (size_t)r, stdout);
	return 0;
}

/* A volume directory opened, as redis opens its AOF directory and sqlite a
 * database's: fsync'd, listed (readdir, rewinddir, a dup of the fd), used as
 * the directory of *at calls, then emptied and removed. Prints the listings. */
static void list(DIR *d, const char *what)
{
	struct dirent *de;
	int dots = 0;

	printf("%s:", what);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			printf(" %s%s", de->d_name, de->d_type == DT_DIR ? "/" : "");
		else
			dots++;
	}
	printf(" (%d dots)\n", dots);
}

static int dir(const char *top)
{
	char path[4096];
	struct stat st;
	DIR *d;
	int fd, f, dfd, pipefd[2], status;
	pid_t pid;

	if (pipe(pipefd))
		return fail("pipe");
	snprintf(path, sizeof(path), "%s/sub", top);
	if (mkdir(path, 0700) || (fd = open(path, O_RDWR | O_DIRECTORY)) >= 0 || errno != EISDIR)
		return fail("mkdir");
	snprintf(path, sizeof(path), "%s/sub/a", top);
	f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || write(f, "A", 1) != 1 || fsync(f) || close(f))
		return fail("create-a");
	snprintf(path, sizeof(path), "%s/sub", top);
	fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fstat(fd, &st) || !S_ISDIR(st.st_mode))
		return fail("open-dir");
	if (fsync(fd) || fdatasync(fd))
		return fail("fsync-dir");
	/* Names relative to the fd are the directory's. */
	f = openat(fd, "b", O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (f < 0 || write(f, "BB", 2) != 2 || close(f) || mkdirat(fd, "c", 0700))
		return fail("openat-dir");
	if (fstatat(fd, "b", &st, 0) || st.st_size != 2 || fsync(fd))
		return fail("fstatat-dir");
	/* Out of the volume through it: the kernel would take the name
	 * relative to another directory than the program's. */
	if (openat(fd, "../../x", O_RDONLY) >= 0 || errno != ENOTSUP)
		return fail("openat-out");
	dfd = dup(fd);
	d = fdopendir(fd);
	if (dfd < 0 || !d)
		return fail("fdopendir");
	list(d, "listed");
	rewinddir(d);
	list(d, "again");
	if (lseek(dfd, 0, SEEK_SET) || unlinkat(dfd, "c", AT_REMOVEDIR))
		return fail("unlinkat-dir");
	list(d, "dup-rewound");
	closedir(d);
	if (close(dfd))
		return fail("close-dir");
	if (fsync(dfd) == 0 || errno != EBADF)
		return fail("fsync-closed");
	snprintf(path, sizeof(path), "%s/sub/a", top);
	if (unlink(path))
		return fail("unlink-a");
	snprintf(path, sizeof(path), "%s/sub/b", top);
	if (unlink(path))
		return fail("unlink-b");
	snprintf(path, sizeof(path), "%s/sub", top);
	if (rmdir(path) || stat(path, &st) == 0 || errno != ENOENT)
		return fail("rmdir");
	fd = open(top, O_RDONLY);
	if (fd < 0 || fsync(fd) || close(fd))
		return fail("open-top");
	/* A forked child lists the directory on its inherited fd after the
	 * parent closed its own, and removes a file through it. */
	snprintf(path, sizeof(path), "%s/k", top);
	f = open(path, O_WRONLY | O_CREAT, 0600);
	fd = open(top, O_RDONLY | O_DIRECTORY);
	if (f < 0 || close(f) || fd < 0)
		return fail("open-top");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return fail("fork");
	if (pid == 0) {
		char c;

		if (read(pipefd[0], &c, 1) != 1 || !(d = fdopendir(fd)) || fsync(fd))
			_exit(fail("child"));
		list(d, "child");
		if (unlinkat(fd, "k", 0))
			_exit(fail("child-unlinkat"));
		fflush(stdout);
		_exit(0);
	}
	if (close(fd) || write(pipefd[1], "x", 1) != 1 || waitpid(pid, &status, 0) != pid ||
	    status)
		return fail("parent");
	puts("dir ok");
	return 0;
}

int main(int argc, char **argv)
{
	char path[4096], path2[4096], buf[4096];
	struct stat st;
	int fd;

	if (argc == 2 && strcmp(argv[1], "hold") == 0)
		return hold();
	if (argc < 3)
		return 2;
	if (strcmp(argv[1], "attest") == 0)
		return attest(argc, argv);
	if (strcmp(argv[1], "shell") == 0)
		return shell(argv[2]);
	if (strcmp(argv[1], "forkview") == 0)
		return forkview(argv[2]);
	if (strcmp(argv[1], "head") == 0 && argc == 4)
		return head(argv[2], atol(argv[3]));
	snprintf(path, sizeof(path), "%s/file.txt", argv[2]);
	snprintf(path2, sizeof(path2), "%s/renamed.txt", argv[2]);
	if (strcmp(argv[1], "write") == 0 && argc == 4) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			return fail("open-write");
		if (write(fd, argv[3], strlen(argv[3])) != (ssize_t)strlen(argv[3]))
			return fail("write");
		if (fsync(fd))
			return fail("fsync");
		if (close(fd))
			return fail("close");
		if (read_file(path, buf, sizeof(buf)))
			return 1;
		printf("read: %s\n", buf);
		if (stat(path, &st))
			return fail("stat");
		printf("size: %lld\n", (long long)st.st_size);
		fd = open(path, O_WRONLY | O_APPEND);
		if (fd < 0)
			return fail("open-append");
		if (write(fd, "+more", 5) != 5)
			return fail("append");
		close(fd);
		if (rename(path, path2))
			return fail("rename");
		if (access(path, F_OK) == 0 || errno != ENOENT)
			return fail("access-old");
		if (read_file(path2, buf, sizeof(buf)))
			return 1;
		printf("renamed: %s\n", buf);
		return 0;
	}
	if (strcmp(argv[1], "read") == 0) {
		if (read_file(path2, buf, sizeof(buf)))
			return 1;
		if (stat(path2, &st))
			return fail("stat");
		printf("content: %s\nsize: %lld\n", buf, (long long)st.st_size);
		return 0;
	}
	if (strcmp(argv[1], "fork") == 0) {
		pid_t pid;
		int status;

		snprintf(path, sizeof(path), "%s/forked.txt", argv[2]);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, "A", 1) != 1)
			return fail("open-write");
		pid = fork();
		if (pid < 0)
			return fail("fork");
		if (pid == 0) {
			close(fd);
			_exit(0);
		}
		if (waitpid(pid, &status, 0) != pid)
			return fail("waitpid");
		if (write(fd, "B", 1) != 1)
			return fail("write");
		if (close(fd))
			return fail("close");
		if (read_file(path, buf, sizeof(buf)))
			return 1;
		printf("forked: %s\n", buf);
		return 0;
	}
	if (strcmp(argv[1], "signals") == 0)
		return signals(path2);
	if (strcmp(argv[1], "thread") == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, thread_main, NULL))
			return fail("pthread_create");
		pthread_join(t, NULL);
		puts("joined");
		return 0;
	}
	if (strcmp(argv[1], "list") == 0) {
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "%s/ls", argv[2]);
		if (mkdir(path, 0700) && errno != EEXIST)
			return fail("mkdir");
		snprintf(path2, sizeof(path2), "%s/ls/a", argv[2]);
		fd = open(path2, O_WRONLY | O_CREAT, 0600);
		if (fd < 0 || close(fd))
			return fail("create");
		d = opendir(path);
		if (!d)
			return fail("opendir");
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				printf("entry %s\n", de->d_name);
		closedir(d);
		return 0;
	}
	if (strcmp(argv[1], "ident") == 0) {
		/* stat(path) names the file fstat(fd) names (sqlite compares
		 * them), two files are two identities, and an O_TMPFILE open is
		 * refused, twice. */
		struct stat a, b, fa;
		char pb[4096];

		snprintf(path, sizeof(path), "%s/a.txt", argv[2]);
		snprintf(pb, sizeof(pb), "%s/b.txt", argv[2]);
		fd = open(pb, O_CREAT | O_WRONLY, 0600);
		if (fd < 0 || close(fd))
			return fail("create-b");
		fd = open(path, O_CREAT | O_RDWR, 0600);
		if (fd < 0 || write(fd, "x", 1) != 1)
			return fail("create-a");
		if (fstat(fd, &fa) || stat(path, &a))
			return fail("stat-open");
		if (fa.st_dev != a.st_dev || fa.st_ino != a.st_ino)
			return fail("ident-open");
		if (close(fd) || stat(path, &a) || stat(pb, &b))
			return fail("stat-closed");
		if (a.st_ino == 0 || (a.st_dev == b.st_dev && a.st_ino == b.st_ino))
			return fail("ident-two");
		for (int i = 0; i < 2; i++)
			if (open(argv[2], O_RDWR | O_TMPFILE, 0600) >= 0 || errno != ENOTSUP)
				return fail("open-tmpfile");
		puts("ident ok");
		return 0;
	}
	if (strcmp(argv[1], "dir") == 0)
		return dir(argv[2]);
	if (strcmp(argv[1], "bench") == 0 && argc == 4) {
		long n = atol(argv[3]);
		double t0, t1, t2;

		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			fd = open(path2, O_RDONLY);
			if (fd < 0)
				return fail("open");
			close(fd);
		}
		t1 = now_ns();
		for (long i = 0; i < n; i++) {
			fd = open("/proc/self/stat", O_RDONLY);
			if (fd < 0)
				return fail("open-outside");
			close(fd);
		}
		t2 = now_ns();
		printf("protected open+close: %.0f ns\nunprotected open+close: %.0f ns\n",
		       (t1 - t0) / (double)n, (t2 - t1) / (double)n);
		return 0;
	}
	return 2;
}
