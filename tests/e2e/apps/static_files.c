/* Statically linked test program for supervised mode (docs/runtime.md):
 *
 *   rt_static_files write DIR TEXT   write DIR/file.txt, fsync, close, reopen,
 *                                    read back, stat, append "+more", rename to
 *                                    DIR/renamed.txt; prints what it read
 *   rt_static_files read DIR         print DIR/renamed.txt and its size
 *   rt_static_files dir DIR          mkdir DIR/sub, then open it as a directory
 *                                    (not supported: expects ENOTSUP), rmdir it
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
		 * them), two files are two identities, and a directory opened
		 * to be fsynced (sqlite's journal) is refused, twice. */
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
			if (open(argv[2], O_RDONLY) >= 0 || errno != ENOTSUP)
				return fail("open-dir-plain");
		puts("ident ok");
		return 0;
	}
	if (strcmp(argv[1], "dir") == 0) {
		snprintf(path, sizeof(path), "%s/sub", argv[2]);
		if (mkdir(path, 0700))
			return fail("mkdir");
		if (stat(path, &st) || !S_ISDIR(st.st_mode))
			return fail("stat-dir");
		fd = open(path, O_RDONLY | O_DIRECTORY);
		if (fd >= 0 || errno != ENOTSUP)
			return fail("open-dir");
		if (rmdir(path))
			return fail("rmdir");
		if (stat(path, &st) == 0 || errno != ENOENT)
			return fail("stat-gone");
		puts("dir ok");
		return 0;
	}
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
