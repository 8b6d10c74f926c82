/* Test program for tests/e2e/apps/test_app_fork_handlers.py: forks while the
 * program's own code uses the file shield around them.
 *
 * Phase 1, pthread_atfork: the program's prepare handler creates, writes and
 * fsyncs a protected file; its parent and child handlers append a record to a
 * protected log. N forks through libc's fork; each child also reads the file
 * the prepare handler wrote and exits with 0 when it holds the right bytes.
 *
 * Phase 2, signals: a thread sends the main thread SIGUSR1 N times, each once
 * the last was handled; the handler opens a protected file and appends a
 * record to the log. Meanwhile the main thread forks (libc's fork, and the raw
 * fork system call, which under syscall user dispatch the runtime's trap
 * handler runs) and waits for each child (it exits at once).
 *
 * The log must end holding one record per append made. Prints "ok FORKS USR1"
 * or the first failure (exit 1). A hang is the failure the test looks for:
 * before, the runtime took the shield's lock before the program's prepare
 * handler ran (its open waited for ever), and a signal handled while the lock
 * was held for a fork did the same.
 *
 * Usage: fork_handlers DIR N */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define REC 8

static char g_dir[3000], g_log[3100], g_file[3100];
static int g_logfd;
static atomic_long g_appends, g_usr1;
static atomic_int g_pending;
static pthread_t g_main;

static void fail(const char *what)
{
	printf("%s: %s\n", what, strerror(errno));
	exit(1);
}

static void append(char tag)
{
	char rec[REC];

	memset(rec, tag, REC - 1);
	rec[REC - 1] = '\n';
	if (write(g_logfd, rec, REC) != REC)
		fail("append");
	g_appends++;
}

static void prepare(void)
{
	int fd = open(g_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, "prepared", 8) != 8 || fsync(fd) || close(fd))
		fail("prepare handler");
	append('p');
}

static void parent(void)
{
	append('a');
}

static void child(void)
{
	append('c');
}

static void on_usr1(int sig)
{
	int e = errno, fd = open(g_file, O_RDONLY);

	(void)sig;
	if (fd < 0)
		fail("handler open");
	close(fd);
	append('s');
	g_usr1++;
	g_pending = 0;
	errno = e;
}

static void *sender(void *arg)
{
	long n = (long)arg;

	for (long i = 0; i < n; i++) {
		g_pending = 1;
		pthread_kill(g_main, SIGUSR1);
		while (g_pending)
			sched_yield();
	}
	return NULL;
}

static int check_child(void)
{
	char buf[16] = { 0 };
	int fd = open(g_file, O_RDONLY);

	return fd >= 0 && read(fd, buf, sizeof(buf)) == 8 && memcmp(buf, "prepared", 8) == 0 ? 0 : 3;
}

static void reap(pid_t pid, const char *what)
{
	int st;

	if (pid < 0)
		fail(what);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			fail("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("%s: child status %#x\n", what, st);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	long n, forks = 0, libc_forks = 0;
	pthread_t t;

	if (argc != 3)
		return 2;
	n = atol(argv[2]);
	snprintf(g_dir, sizeof(g_dir), "%s", argv[1]);
	snprintf(g_log, sizeof(g_log), "%s/fork.log", g_dir);
	snprintf(g_file, sizeof(g_file), "%s/prepared", g_dir);
	g_logfd = open(g_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (g_logfd < 0)
		fail("open log");

	if (pthread_atfork(prepare, parent, child))
		fail("pthread_atfork");
	for (long i = 0; i < n / 10; i++, forks++, libc_forks++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(check_child());
		reap(pid, "fork with handlers");
	}

	g_main = pthread_self();
	sigaction(SIGUSR1, &sa, NULL);
	if (pthread_create(&t, NULL, sender, (void *)n))
		fail("pthread_create");
	while (g_usr1 < n) {
		pid_t pid = forks & 1 ? (pid_t)syscall(SYS_fork) : fork();

		if (pid == 0)
			_exit(0);
		reap(pid, forks & 1 ? "raw fork" : "fork");
		libc_forks += !(forks & 1);
		forks++;
	}
	pthread_join(t, NULL);

	/* The children's records are in the log too: one per fork through libc
	 * (the raw system call runs no handler). */
	{
		off_t size = lseek(g_logfd, 0, SEEK_END);
		long expect = g_appends + libc_forks;

		if (size != expect * REC) {
			printf("log holds %lld bytes, %ld records expected\n", (long long)size, expect);
			return 1;
		}
	}
	printf("ok %ld %ld\n", forks, (long)g_usr1);
	return 0;
}
