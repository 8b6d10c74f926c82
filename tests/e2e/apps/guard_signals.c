/* Test program for tests/e2e/apps/test_app_guard_signals.py: signals while the
 * file shield works (its guards keep the program's signals and deliver them
 * when the call is done, sys/signal.c).
 *
 * The main thread hammers calls on protected paths: stat and access of
 * missing files (sqlite's -journal / -wal, answered from the lookup cache),
 * open + read + close of a known file, an O_APPEND write of a record to a log,
 * and every 16 rounds a new file written, fsync'd, renamed and unlinked (round
 * trips to the volume server). A second thread sends it SIGUSR1 N times (every
 * tenth a SIGBUS instead: the runtime's fault handler sees it first), each
 * time waiting until the handler has run (so no two are ever pending at once:
 * a lost one stalls the sender, which says so), and an interval timer sends
 * SIGALRM every 300 us. The handlers do the same I/O on the same files (open,
 * read, stat, an O_APPEND record to the same log: a handler that ran while the
 * thread held the shield's lock or the file's append lock would deadlock).
 *
 * No call may fail, EINTR included (none of them is interruptible on a local
 * file system, SA_RESTART or not); every read has the file's bytes; the log
 * ends holding exactly one record per append made.
 *
 * Usage: guard_signals DIR N RESTART(0|1) [rt]. With "rt" a handler for a
 * real-time signal is installed too (the guards mask signals then). Prints
 * "ok ROUNDS USR1 ALRM" or the first failure (exit 1). */
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

#define SIZE 700
#define REC 16

static char g_data[512], g_journal[512], g_wal[512], g_log[512], g_tmp[512], g_moved[512];
static char g_want[SIZE];
static atomic_int g_bad;
static atomic_long g_usr1, g_bus, g_alrm, g_appends;
static atomic_bool g_done;
static char g_why[256];

static void fail(const char *what, int err)
{
	if (atomic_fetch_add(&g_bad, 1) == 0)
		snprintf(g_why, sizeof(g_why), "%s: %s", what, strerror(err));
}

static void append_rec(char who)
{
	char rec[REC];
	int fd = open(g_log, O_WRONLY | O_APPEND | O_CLOEXEC);

	memset(rec, who, sizeof(rec));
	rec[REC - 1] = '\n';
	if (fd < 0) {
		fail("open log", errno);
		return;
	}
	if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec))
		fail("append", errno ? errno : EIO);
	else
		atomic_fetch_add(&g_appends, 1);
	if (close(fd))
		fail("close log", errno);
}

/* Async-signal-safe calls only. */
static void io(char who)
{
	char buf[SIZE + 16];
	struct stat st;
	ssize_t r;
	int fd;

	if (stat(g_journal, &st) == 0 || errno != ENOENT)
		fail("stat -journal", errno ? errno : EEXIST);
	if (access(g_wal, F_OK) == 0 || errno != ENOENT)
		fail("access -wal", errno ? errno : EEXIST);
	fd = open(g_data, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("open data", errno);
		return;
	}
	r = read(fd, buf, sizeof(buf));
	if (r != SIZE || memcmp(buf, g_want, SIZE) != 0)
		fail("read data", r < 0 ? errno : EIO);
	if (close(fd))
		fail("close data", errno);
	append_rec(who);
}

/* SIGUSR1, SIGBUS and SIGALRM: the same I/O (none for SIGALRM once the sender
 * is done), a count each. */
static void on_signal(int sig)
{
	int saved = errno;

	if (sig != SIGALRM || !atomic_load(&g_done))
		io(sig == SIGUSR1 ? 'u' : sig == SIGBUS ? 'b' : 'a');
	atomic_fetch_add(sig == SIGUSR1 ? &g_usr1 : sig == SIGBUS ? &g_bus : &g_alrm, 1);
	errno = saved;
}

static pthread_t g_main;
static long g_n;

static void *sender(void *arg)
{
	(void)arg;
	for (long i = 0; i < g_n && !atomic_load(&g_bad); i++) {
		struct timespec pause = { 0, 20 * 1000 }, t0, now;

		pthread_kill(g_main, i % 10 == 9 ? SIGBUS : SIGUSR1);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (atomic_load(&g_usr1) + atomic_load(&g_bus) <= i) {
			nanosleep(&pause, NULL);
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - t0.tv_sec > 30) {
				fail("a signal never handled (lost?)", ETIMEDOUT);
				break;
			}
		}
	}
	atomic_store(&g_done, true);
	return NULL;
}

static void server_round(long i)
{
	char buf[64];
	int fd = open(g_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int n = snprintf(buf, sizeof(buf), "round %ld\n", i);

	if (fd < 0) {
		fail("create", errno);
		return;
	}
	if (write(fd, buf, (size_t)n) != n)
		fail("write", errno ? errno : EIO);
	if (fsync(fd))
		fail("fsync", errno);
	if (close(fd))
		fail("close", errno);
	if (rename(g_tmp, g_moved))
		fail("rename", errno);
	if (unlink(g_moved))
		fail("unlink", errno);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct itimerval it = { { 0, 300 }, { 0, 300 } };
	struct stat st;
	pthread_t t;
	long rounds = 0;
	int fd, restart;

	if (argc != 4 && argc != 5)
		return 2;
	g_n = atol(argv[2]);
	restart = atoi(argv[3]);
	snprintf(g_data, sizeof(g_data), "%s/data.txt", argv[1]);
	snprintf(g_journal, sizeof(g_journal), "%s/db-journal", argv[1]);
	snprintf(g_wal, sizeof(g_wal), "%s/db-wal", argv[1]);
	snprintf(g_log, sizeof(g_log), "%s/log", argv[1]);
	snprintf(g_tmp, sizeof(g_tmp), "%s/tmp", argv[1]);
	snprintf(g_moved, sizeof(g_moved), "%s/moved", argv[1]);
	for (int i = 0; i < SIZE; i++)
		g_want[i] = (char)('a' + i % 26);
	fd = open(g_data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, g_want, SIZE) != SIZE || close(fd))
		return printf("setup: %s\n", strerror(errno)), 1;
	fd = open(g_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || close(fd))
		return printf("setup: %s\n", strerror(errno)), 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = restart ? SA_RESTART : 0;
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	if (argc == 5)
		sigaction(SIGRTMIN, &sa, NULL);
	g_main = pthread_self();
	if (pthread_create(&t, NULL, sender, NULL))
		return 1;
	setitimer(ITIMER_REAL, &it, NULL);
	while (!atomic_load(&g_done) && !atomic_load(&g_bad)) {
		io('m');
		if (rounds % 16 == 0)
			server_round(rounds);
		rounds++;
	}
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	pthread_join(t, NULL);
	if (!atomic_load(&g_bad) &&
	    (atomic_load(&g_bus) != g_n / 10 || atomic_load(&g_usr1) + atomic_load(&g_bus) != g_n))
		fail("SIGUSR1 or SIGBUS handled a wrong number of times", EPROTO);
	if (!atomic_load(&g_bad) &&
	    (stat(g_log, &st) || st.st_size != (off_t)(atomic_load(&g_appends) * REC)))
		fail("the log does not hold one record per append", EIO);
	if (atomic_load(&g_bad)) {
		printf("%s\n", g_why);
		return 1;
	}
	printf("ok %ld %ld %ld\n", rounds, atomic_load(&g_usr1) + atomic_load(&g_bus),
	       atomic_load(&g_alrm));
	return 0;
}
