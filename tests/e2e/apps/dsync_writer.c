/* Durable writes without fsync (test_app_dsync.py), built dynamically linked
 * (libkiln) and statically linked (the supervisor):
 *
 *   rt_dsync_writer oflag DIR N   open DIR/log O_WRONLY|O_CREAT|O_DSYNC and write
 *                                 N records: the first third on the fd, the next
 *                                 on a dup of it (F_GETFL must still say
 *                                 O_DSYNC), the rest from a forked child, which
 *                                 execs this program (argv[0], a path) so
 *                                 that its writes are on the fd an exec kept;
 *                                 the child says "ready" and holds, the parent
 *                                 waits for it
 *   rt_dsync_writer osync DIR N   the same with O_SYNC
 *   rt_dsync_writer rwf DIR N     open DIR/log without either, write N records
 *                                 with pwritev2(..., RWF_DSYNC)
 *   rt_dsync_writer sendfile DIR N  open DIR/log O_DSYNC, each record put in a
 *                                 memfd, then sendfile to the log's position
 *   rt_dsync_writer copy DIR N    the same with copy_file_range (offsets given)
 *   rt_dsync_writer splice DIR N  the same with splice from a pipe, which a
 *                                 forked child fills one record at a time,
 *                                 10 ms apart (the splice may wait for it)
 *
 * After each write returns it prints "ack I"; at the end "ready", then it
 * waits for EOF on stdin, never closing, syncing or exiting first (an exit
 * commits what the process wrote): the test kills everything then, the
 * volume server included. Exit 2 on a failed call
 * (with a line on stderr). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REC 64

static int fail(const char *what)
{
	fprintf(stderr, "rt_dsync_writer: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void record(char *buf, int i)
{
	memset(buf, 'x', REC);
	snprintf(buf, REC, "record %06d ", i);
	buf[strlen(buf)] = 'x';
	buf[REC - 1] = '\n';
}

/* Records [from, to) on fd, each at its place (I * REC). */
static void write_range(int fd, int from, int to, int dsync_bit, bool rwf)
{
	char buf[REC];

	for (int i = from; i < to; i++) {
		struct iovec v = { buf, REC };
		long fl = fcntl(fd, F_GETFL);

		if (fl < 0)
			fail("F_GETFL");
		if (dsync_bit && (fl & dsync_bit) != dsync_bit) {
			fprintf(stderr, "rt_dsync_writer: F_GETFL 0x%lx lacks 0x%x\n", fl,
				dsync_bit);
			exit(2);
		}
		record(buf, i);
		if (rwf ? pwritev2(fd, &v, 1, (off_t)i * REC, RWF_DSYNC) != REC
			: pwrite(fd, buf, REC, (off_t)i * REC) != REC)
			fail("write");
		printf("ack %d\n", i);
		fflush(stdout);
	}
}

/* Records [0, n) into fd (O_DSYNC) by sendfile, copy_file_range or splice. */
static void transfer_range(int fd, int n, const char *how)
{
	int src = memfd_create("dsync-src", 0), p[2];
	char buf[REC];
	pid_t pid = -1;

	if (src < 0 || pipe(p))
		fail("memfd_create");
	if (strcmp(how, "splice") == 0) {
		pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid == 0) {
			struct timespec ms10 = { 0, 10 * 1000 * 1000 };

			for (int i = 0; i < n; i++) {
				nanosleep(&ms10, NULL);
				record(buf, i);
				if (write(p[1], buf, REC) != REC)
					fail("pipe write");
			}
			_exit(0);
		}
	}
	for (int i = 0; i < n; i++) {
		loff_t in = 0, out = (loff_t)i * REC;
		off_t off = 0;
		ssize_t r;

		record(buf, i);
		if (pid < 0 && pwrite(src, buf, REC, 0) != REC)
			fail("pwrite src");
		if (strcmp(how, "sendfile") == 0) {
			r = sendfile(fd, src, &off, REC);
			in = off;
			out = lseek(fd, 0, SEEK_CUR); /* at the fd's position */
		} else if (strcmp(how, "copy") == 0) {
			r = copy_file_range(src, &in, fd, &out, REC, 0);
		} else {
			r = splice(p[0], NULL, fd, &out, REC, 0);
			in = REC; /* a pipe has no offset */
		}
		if (r != REC)
			fail(how);
		if (in != REC || out != (loff_t)(i + 1) * REC) {
			fprintf(stderr, "rt_dsync_writer: %s: offsets %lld %lld\n", how,
				(long long)in, (long long)out);
			exit(2);
		}
		printf("ack %d\n", i);
		fflush(stdout);
	}
	if (pid > 0 && waitpid(pid, NULL, 0) != pid)
		fail("waitpid");
}

static void hold(void)
{
	char c;

	printf("ready\n");
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
}

int main(int argc, char **argv)
{
	int fd, dup_fd, n, bit = 0, flags = O_WRONLY | O_CREAT;
	char path[4096], arg[32];
	pid_t pid;
	int st;

	if (argc == 6 && strcmp(argv[1], "inherited") == 0) {
		/* inherited FD FROM TO BIT */
		write_range(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), false);
		hold();
		return 0;
	}
	if (argc != 4)
		return 2;
	n = atoi(argv[3]);
	snprintf(path, sizeof(path), "%s/log", argv[2]);
	if (strcmp(argv[1], "sendfile") == 0 || strcmp(argv[1], "copy") == 0 ||
	    strcmp(argv[1], "splice") == 0) {
		fd = open(path, flags | O_DSYNC, 0600);
		if (fd < 0)
			fail(path);
		transfer_range(fd, n, argv[1]);
		hold();
		return 0;
	}
	if (strcmp(argv[1], "oflag") == 0)
		bit = O_DSYNC;
	else if (strcmp(argv[1], "osync") == 0)
		bit = O_SYNC;
	else if (strcmp(argv[1], "rwf") != 0)
		return 2;
	fd = open(path, flags | bit, 0600);
	if (fd < 0)
		fail(path);
	if (!bit) {
		write_range(fd, 0, n, 0, true);
		hold();
		return 0;
	}
	write_range(fd, 0, n / 3, bit, false);
	dup_fd = dup(fd);
	if (dup_fd < 0)
		fail("dup");
	write_range(dup_fd, n / 3, 2 * n / 3, bit, false);
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		char a_fd[16], a_from[16], a_to[16];

		snprintf(a_fd, sizeof(a_fd), "%d", dup_fd);
		snprintf(a_from, sizeof(a_from), "%d", 2 * n / 3);
		snprintf(a_to, sizeof(a_to), "%d", n);
		snprintf(arg, sizeof(arg), "%d", bit);
		execl(argv[0], argv[0], "inherited", a_fd, a_from, a_to, arg,
		      (char *)NULL);
		fail("exec");
	}
	/* The child says "ready" and holds; an exit of either would commit. */
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "rt_dsync_writer: the exec'd child failed\n");
		return 2;
	}
	return 0;
}
