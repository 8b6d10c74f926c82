/* Test program for tests/e2e/apps/test_app_guard_signals.py: a handler that
 * appends to a file while its thread is inside a sealed write of that file
 * (docs/fs.md "Large writes sealed in the program's process": each window
 * holds the file's append lock).
 *
 * The main thread writes N blocks of 1 MiB of 'm' at the end of DIR/big
 * (fstat, then pwrite: whole chunks at the end of a file it opened for
 * writing, sealed in this process); a second thread sends it SIGUSR1, each
 * time waiting until the handler has run, and an interval timer sends SIGALRM
 * every 300 us. Both handlers append a 4 KiB record ('u' or 'a') to the same
 * file through an O_APPEND descriptor, so the end stays chunk-aligned and the
 * next block is sealed again. A handler that ran while its thread held the
 * append lock would wait for ever: the sender gives up after 20 s and the
 * program exits 3.
 *
 * At the end the file is read back: every 4 KiB block is one block's 'm' or
 * one record (a record appended between the main thread's fstat and pwrite is
 * overwritten by that block: the program's own race), at most one record per
 * append. Prints "ok BLOCKS RECORDS SIGNALS" or the first failure (exit 1). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1 << 20)
#define REC 4096

static char g_big[512];
static atomic_long g_handled, g_appends, g_failed;
static atomic_bool g_done;
static pthread_t g_main;

static void on_signal(int sig)
{
	int saved = errno, fd = open(g_big, O_WRONLY | O_APPEND | O_CLOEXEC);
	char rec[REC];

	memset(rec, sig == SIGUSR1 ? 'u' : 'a', sizeof(rec));
	if (fd < 0 || write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) || close(fd))
		atomic_fetch_add(&g_failed, 1);
	else
		atomic_fetch_add(&g_appends, 1);
	if (sig == SIGUSR1)
		atomic_fetch_add(&g_handled, 1);
	errno = saved;
}

static void *sender(void *arg)
{
	(void)arg;
	for (long i = 0; !atomic_load(&g_done); i++) {
		struct timespec pause = { 0, 50 * 1000 }, t0, now;

		pthread_kill(g_main, SIGUSR1);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (atomic_load(&g_handled) <= i) {
			nanosleep(&pause, NULL);
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - t0.tv_sec > 20) {
				printf("a signal not handled in 20 s (deadlock?)\n");
				fflush(stdout);
				_exit(3);
			}
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct itimerval it = { { 0, 300 }, { 0, 300 } };
	struct sigaction sa;
	static char buf[BLOCK];
	long n, blocks = 0, recs = 0;
	struct stat st;
	pthread_t t;
	int fd;

	if (argc != 3)
		return 2;
	n = atol(argv[2]);
	snprintf(g_big, sizeof(g_big), "%s/big", argv[1]);
	fd = open(g_big, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return printf("open: %s\n", strerror(errno)), 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	g_main = pthread_self();
	if (pthread_create(&t, NULL, sender, NULL))
		return 1;
	setitimer(ITIMER_REAL, &it, NULL);
	memset(buf, 'm', sizeof(buf));
	for (long i = 0; i < n; i++) {
		ssize_t w;

		if (fstat(fd, &st))
			return printf("fstat: %s\n", strerror(errno)), 1;
		w = pwrite(fd, buf, sizeof(buf), st.st_size);
		if (w != (ssize_t)sizeof(buf))
			return printf("pwrite: %zd %s\n", w, strerror(errno)), 1;
	}
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	atomic_store(&g_done, true);
	pthread_join(t, NULL);
	if (atomic_load(&g_failed))
		return printf("%ld appends failed\n", atomic_load(&g_failed)), 1;
	if (fsync(fd) || fstat(fd, &st) || st.st_size % REC)
		return printf("fsync/fstat: %s, size %lld\n", strerror(errno),
			      (long long)st.st_size), 1;
	for (off_t at = 0; at < st.st_size;) {
		char c;

		if (pread(fd, buf, REC, at) != REC)
			return printf("read at %lld: %s\n", (long long)at, strerror(errno)), 1;
		c = buf[0];
		for (int k = 1; k < REC; k++)
			if (buf[k] != c || (c != 'm' && c != 'u' && c != 'a'))
				return printf("mixed block at %lld\n", (long long)at), 1;
		if (c == 'm' && (pread(fd, buf, BLOCK, at) != BLOCK || memchr(buf, 'u', BLOCK) ||
				 memchr(buf, 'a', BLOCK)))
			return printf("a torn block at %lld\n", (long long)at), 1;
		blocks += c == 'm';
		recs += c != 'm';
		at += c == 'm' ? BLOCK : REC;
	}
	if (blocks != n || recs > atomic_load(&g_appends))
		return printf("%ld blocks, %ld records of %ld appends\n", blocks, recs,
			      atomic_load(&g_appends)), 1;
	printf("ok %ld %ld %ld\n", blocks, recs, atomic_load(&g_handled));
	return 0;
}
