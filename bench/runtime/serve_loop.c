/* kiln runtime micro-benchmark: what a static-file server does per request,
 * without the network: open a file, fstat it, sendfile it into a socket pair,
 * close it, recv the bytes on the other end. Run natively on a plain file and
 * under `kiln run --volume` on the same file in a volume: the difference is
 * the file shield's cost per request (bench/runtime/run.py --only nginx).
 *
 * Usage: serve_loop FILE ITERATIONS. Output: one JSON object
 * {"op": "serve", "ns": best nanoseconds per request over 5 rounds}. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	double best = 1e18;
	int sv[2], n;

	if (argc != 3 || (n = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: serve_loop FILE ITERATIONS\n");
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		perror("socketpair");
		return 1;
	}
	for (int r = 0; r < 5; r++) {
		double t0 = now_ns(), d;

		for (int i = 0; i < n; i++) {
			int fd = open(argv[1], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			struct stat st;
			off_t off = 0;

			if (fd < 0 || fstat(fd, &st) || st.st_size > (off_t)sizeof(buf)) {
				perror(argv[1]);
				return 1;
			}
			if (sendfile(sv[0], fd, &off, (size_t)st.st_size) != st.st_size) {
				perror("sendfile");
				return 1;
			}
			close(fd);
			if (recv(sv[1], buf, sizeof(buf), 0) != st.st_size) {
				perror("recv");
				return 1;
			}
		}
		d = (now_ns() - t0) / n;
		if (d < best)
			best = d;
	}
	printf("{\"op\": \"serve\", \"ns\": %.0f}\n", best);
	return 0;
}
