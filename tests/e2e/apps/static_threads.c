/* A threaded program for the static loader's tests (test_app_static_loader.py),
 * built there with `musl-gcc -static -pthread` (and by gcc -static for glibc).
 *
 *   static_threads threads DIR N     N threads: each writes, reads back and
 *                                    checks DIR/tI.txt, and appends 20 lines
 *                                    to DIR/shared.txt under a mutex; a
 *                                    detached thread exits while they run;
 *                                    then 40 threads made and joined one by
 *                                    one; prints "ok N" and the number of
 *                                    tasks left once every thread is gone
 *   static_threads fork DIR          two threads stat DIR/f in a loop while
 *                                    the main thread forks: the child writes
 *                                    and reads DIR/child.txt; prints what the
 *                                    child read, and "threads ok"
 *
 * Exit 0 on success, 1 with "CALL: what" on stdout on failure. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "static_read.h"

#define LINES 20

static const char *g_dir;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_failed, g_stop, g_detached_done;

static void failed(const char *what, int i)
{
	printf("%s: thread %d errno=%d\n", what, i, errno);
	atomic_store(&g_failed, 1);
}

static int write_file(const char *path, const char *s, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	if (close(fd) || n != (ssize_t)strlen(s))
		return -1;
	return 0;
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	char path[4096], want[256], got[256], line[64];

	snprintf(path, sizeof(path), "%s/t%d.txt", g_dir, i);
	snprintf(want, sizeof(want), "thread %d wrote this, thread %d reads it\n", i, i);
	for (int round = 0; round < 5; round++) {
		if (write_file(path, want, O_TRUNC))
			return failed("write", i), NULL;
		if (read_some(path, got, sizeof(got)) < 0 || strcmp(got, want))
			return failed("read back", i), NULL;
	}
	snprintf(path, sizeof(path), "%s/shared.txt", g_dir);
	for (int k = 0; k < LINES; k++) {
		snprintf(line, sizeof(line), "%d %d\n", i, k);
		pthread_mutex_lock(&g_lock);
		if (write_file(path, line, O_APPEND))
			failed("append", i);
		pthread_mutex_unlock(&g_lock);
	}
	return NULL;
}

/* Exits (pthread_exit, a detached musl thread unmaps its own stack) while the
 * workers trap. */
static void *quitter(void *arg)
{
	char path[4096];
	struct stat st;

	(void)arg;
	snprintf(path, sizeof(path), "%s/t0.txt", g_dir);
	stat(path, &st);
	atomic_store(&g_detached_done, 1);
	pthread_exit(NULL);
}

static void *nothing(void *arg)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/shared.txt", g_dir);
	if (stat(path, &st))
		failed("stat", (int)(long)arg);
	return NULL;
}

/* The kernel threads of this process: the program's and the runtime's. */
static int tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int settle(void)
{
	struct timespec ms = { 0, 1000000 };
	int n = tasks();

	/* A donor ends a moment after its thread. */
	for (int i = 0; i < 3000 && n > 1; i++) {
		nanosleep(&ms, NULL);
		n = tasks();
	}
	return n;
}

static int threads(int n)
{
	pthread_t t[64], q;
	pthread_attr_t at;
	char path[4096], buf[65536], *p;
	int count[64] = { 0 };

	if (n < 1 || n > 64)
		return 2;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(long)i))
			return printf("pthread_create: %d\n", i), 1;
	if (pthread_create(&q, &at, quitter, NULL))
		return printf("pthread_create: detached\n"), 1;
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	while (!atomic_load(&g_detached_done))
		sched_yield();
	for (int i = 0; i < 40; i++) {
		pthread_t one;

		if (pthread_create(&one, NULL, nothing, (void *)(long)i) || pthread_join(one, NULL))
			return printf("pthread_create: one by one %d\n", i), 1;
	}
	if (atomic_load(&g_failed))
		return 1;
	snprintf(path, sizeof(path), "%s/shared.txt", g_dir);
	if (read_some(path, buf, sizeof(buf)) < 0)
		return printf("read shared: errno=%d\n", errno), 1;
	for (p = buf; *p;) {
		int i = atoi(p);

		if (i >= 0 && i < n)
			count[i]++;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	for (int i = 0; i < n; i++)
		if (count[i] != LINES)
			return printf("shared: thread %d has %d lines\n", i, count[i]), 1;
	printf("ok %d\n", n);
	printf("tasks: %d\n", settle());
	return 0;
}

static void *statter(void *arg)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/f", g_dir);
	while (!atomic_load(&g_stop))
		if (stat(path, &st))
			failed("stat", (int)(long)arg);
	return NULL;
}

static int forked(void)
{
	pthread_t t[2];
	char path[4096], buf[256];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/f", g_dir);
	if (write_file(path, "f\n", O_TRUNC))
		return printf("write f: errno=%d\n", errno), 1;
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, statter, (void *)(long)i);
	pid = fork();
	if (pid == 0) {
		snprintf(path, sizeof(path), "%s/child.txt", g_dir);
		if (write_file(path, "from the child\n", O_TRUNC) || read_some(path, buf, sizeof(buf)) < 0)
			_exit(3);
		_exit(strcmp(buf, "from the child\n") ? 4 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return printf("fork: errno=%d\n", errno), 1;
	atomic_store(&g_stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	snprintf(path, sizeof(path), "%s/child.txt", g_dir);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || read_some(path, buf, sizeof(buf)) < 0)
		return printf("child: status %d\n", status), 1;
	printf("child wrote: %s", buf);
	printf("threads %s\n", atomic_load(&g_failed) ? "failed" : "ok");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		return 2;
	g_dir = argv[2];
	if (strcmp(argv[1], "threads") == 0 && argc == 4)
		return threads(atoi(argv[3]));
	if (strcmp(argv[1], "fork") == 0)
		return forked();
	return 2;
}
