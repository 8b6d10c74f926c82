/* Test program for tests/e2e/apps/test_app_file_cache.py: the lock-free open
 * of known files (src/runtime/shield/fast.c) under signals and threads.
 *
 * Threads open, fstat, read and close files of DIR (a.txt, b.txt, c.txt,
 * each holding its own name repeated) in a loop while an interval timer
 * fires SIGALRM every 200 us at the process; the handler does the same
 * (open is async-signal-safe), on whichever thread it interrupts: inside a
 * lock-free open or close, inside the shield's lock (signals blocked there:
 * it runs after), inside another thread's. One thread also dup's and closes
 * fds. Every read must return the file's own bytes; the program must end
 * (the test's timeout catches a deadlock).
 *
 * Usage: reopen_signals DIR ITERATIONS. Prints "ok N handlers" or the first
 * failure, exits 1 on failure. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define NFILES 3
#define SIZE 600

static const char *g_dir;
static char g_want[NFILES][SIZE];
static atomic_int g_bad;
static atomic_long g_handlers;
static char g_why[256];

static void fail(const char *what, int i, int err)
{
	if (atomic_fetch_add(&g_bad, 1) == 0)
		snprintf(g_why, sizeof(g_why), "%s of file %d: %s", what, i, strerror(err));
}

/* Async-signal-safe: open, fstat, pread, close, a local buffer. */
static void check_one(int i, int dupit)
{
	static const char *names[NFILES] = { "a.txt", "b.txt", "c.txt" };
	char path[512], buf[SIZE + 16];
	struct stat st;
	size_t n = strlen(g_dir);
	ssize_t r;
	int fd, fd2;

	memcpy(path, g_dir, n);
	path[n] = '/';
	memcpy(path + n + 1, names[i], strlen(names[i]) + 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("open", i, errno);
		return;
	}
	if (dupit) {
		fd2 = dup(fd);
		close(fd);
		fd = fd2;
		if (fd < 0) {
			fail("dup", i, errno);
			return;
		}
	}
	if (fstat(fd, &st) || st.st_size != SIZE)
		fail("fstat", i, errno ? errno : EINVAL);
	r = pread(fd, buf, sizeof(buf), 0);
	if (r != SIZE || memcmp(buf, g_want[i], SIZE) != 0)
		fail("read", i, r < 0 ? errno : EIO);
	if (close(fd))
		fail("close", i, errno);
}

static void on_alarm(int sig)
{
	int saved = errno;

	(void)sig;
	check_one((int)(atomic_fetch_add(&g_handlers, 1) % NFILES), 0);
	errno = saved;
}

struct worker {
	pthread_t t;
	long iterations;
	int dupit;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (long k = 0; k < w->iterations && !atomic_load(&g_bad); k++)
		check_one((int)(k % NFILES), w->dupit && k % 4 == 0);
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker w[3];
	struct sigaction sa = { 0 };
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	static const char *names[NFILES] = { "a.txt", "b.txt", "c.txt" };

	if (argc != 3) {
		fprintf(stderr, "usage: reopen_signals DIR ITERATIONS\n");
		return 2;
	}
	g_dir = argv[1];
	for (int i = 0; i < NFILES; i++)
		for (int j = 0; j < SIZE; j++)
			g_want[i][j] = names[i][j % 5];
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) || setitimer(ITIMER_REAL, &it, NULL)) {
		perror("timer");
		return 1;
	}
	for (int i = 0; i < 3; i++) {
		w[i].iterations = atol(argv[2]);
		w[i].dupit = i == 2;
		if (pthread_create(&w[i].t, NULL, work, &w[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	for (int i = 0; i < 3; i++)
		pthread_join(w[i].t, NULL);
	it.it_value.tv_usec = it.it_interval.tv_usec = 0;
	setitimer(ITIMER_REAL, &it, NULL);
	if (atomic_load(&g_bad)) {
		printf("failed: %s (%d failures)\n", g_why, atomic_load(&g_bad));
		return 1;
	}
	printf("ok %ld handlers\n", atomic_load(&g_handlers));
	return 0;
}
