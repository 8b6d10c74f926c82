/* Signals that arrive while the network shield works (test_app_net_signals.py).
 *
 * usage: rt_net_signals PORT SIGNALS
 *
 * Twice, with an SA_SIGINFO handler of SIGUSR1 with SA_RESTART and then
 * without: a new thread (one that never entered a guard of the shield, so its
 * first guard makes its block, runtime/thread.c) writes 256 KiB at a time
 * over a shielded TLS connection to PORT (a server that answers with the
 * count of bytes it got when the thread half-closes) while a child process sends SIGUSR1 with
 * sigqueue, values 1..SIGNALS, one at a time: the next only once the handler
 * has seen the last. The main thread blocks SIGUSR1, so every one goes to the
 * thread. Checked: each value arrives exactly once, in order, with si_code
 * SI_QUEUE and the child's pid; the server got every byte; with SA_RESTART
 * no call fails with EINTR. Some signals land inside a guard, where the
 * runtime keeps them and sends them again when the guard ends: the handler
 * sees those as delivered right after a rt_tgsigqueueinfo of SIGUSR1 to its
 * own thread (the registers of that system call in its context), and counts
 * them. A lost signal is reported by the child, which gives up after 20 s. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MSG (256 * 1024)
#define MAXSIG 100000

struct shared {
	_Atomic int acked; /* the last value the handler saw */
};

static struct shared *g_sh;
static pid_t g_sender, g_tid;
static int g_nsig, g_port;
static unsigned char *g_seen; /* per value: deliveries */
static atomic_int g_bad_info, g_deferred, g_stop;
static long g_eintr, g_bad_count;

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
	greg_t *r = ((ucontext_t *)ctx)->uc_mcontext.gregs;
	const unsigned char *ip = (const unsigned char *)r[REG_RIP];
	int v = si->si_value.sival_int;

	if (si->si_code != SI_QUEUE || si->si_pid != g_sender || v < 1 || v > g_nsig ||
	    v != atomic_load(&g_sh->acked) + 1)
		atomic_fetch_add(&g_bad_info, 1);
	if (v >= 1 && v <= g_nsig)
		g_seen[v]++;
	/* Right after "syscall" with rt_tgsigqueueinfo(pid, this thread, SIGUSR1)
	 * done (rax 0): the runtime sent it again after its guard. */
	if (ip[-2] == 0x0f && ip[-1] == 0x05 && r[REG_RAX] == 0 && r[REG_RDI] == getpid() &&
	    r[REG_RSI] == g_tid && r[REG_RDX] == sig)
		atomic_fetch_add(&g_deferred, 1);
	atomic_store(&g_sh->acked, v);
}

static int whole(int fd, unsigned char *buf, size_t n, int write_it)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = write_it ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);

		if (r < 0 && errno == EINTR) {
			g_eintr++;
			continue;
		}
		if (r < 0)
			return -1;
		if (r == 0)
			return (int)done;
		done += (size_t)r;
	}
	return (int)done;
}

/* Writes until told to stop (most of its time encrypting, inside guards),
 * then half-closes: the server answers with the count of bytes it got. */
static void *worker(void *arg)
{
	static unsigned char out[MSG];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(g_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned long long sent = 0;
	char reply[32] = "";
	sigset_t usr1;
	int fd, r;

	(void)arg;
	g_tid = (pid_t)syscall(SYS_gettid);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	while ((r = connect(fd, (struct sockaddr *)&a, sizeof(a))) < 0 && errno == EINTR)
		g_eintr++;
	/* Again after EINTR: connected meanwhile, as with a plain socket (the
	 * first write waits for the rest of the handshake). */
	if (r < 0 && errno == EISCONN && g_eintr)
		r = 0;
	if (fd < 0 || r < 0) {
		perror("connect");
		exit(2);
	}
	memset(out, 'k', sizeof(out));
	while (!atomic_load(&g_stop)) {
		if (whole(fd, out, MSG, 1) != MSG) {
			perror("write");
			exit(2);
		}
		sent += MSG;
	}
	if (shutdown(fd, SHUT_WR) || whole(fd, (unsigned char *)reply, sizeof(reply) - 1, 0) < 0) {
		perror("reply");
		exit(2);
	}
	g_bad_count = strtoull(reply, NULL, 10) != sent;
	close(fd);
	return NULL;
}

static int phase(const char *name, int flags)
{
	struct sigaction sa = { .sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO | flags };
	pthread_t th;
	int st, once = 0;

	atomic_store(&g_sh->acked, 0);
	atomic_store(&g_stop, 0);
	atomic_store(&g_bad_info, 0);
	atomic_store(&g_deferred, 0);
	g_eintr = g_bad_count = 0;
	memset(g_seen, 0, (size_t)g_nsig + 1);
	sigaction(SIGUSR1, &sa, NULL);
	g_sender = fork();
	if (g_sender == 0) {
		for (int v = 1; v <= g_nsig; v++) {
			struct timespec t0, t, nap = { 0, 20000 }, at = { 0, 1000 * (rand() % 500) };

			/* At a point of the thread's work that is not tied to the
			 * last delivery (which woke it if it waited). */
			nanosleep(&at, NULL);
			if (sigqueue(getppid(), SIGUSR1, (union sigval){ .sival_int = v }))
				_exit(3);
			clock_gettime(CLOCK_MONOTONIC, &t0);
			while (atomic_load(&g_sh->acked) != v) {
				nanosleep(&nap, NULL);
				clock_gettime(CLOCK_MONOTONIC, &t);
				if (t.tv_sec - t0.tv_sec > 20) {
					fprintf(stderr, "%s: signal %d lost\n", name, v);
					_exit(4);
				}
			}
		}
		_exit(0);
	}
	pthread_create(&th, NULL, worker, NULL);
	waitpid(g_sender, &st, 0);
	atomic_store(&g_stop, 1);
	pthread_join(th, NULL);
	for (int v = 1; v <= g_nsig; v++)
		once += g_seen[v] == 1;
	/* The counts, for the log of a failure (stdout says only none or some). */
	fprintf(stderr, "%s: deferred %d, eintr %ld\n", name, atomic_load(&g_deferred), g_eintr);
	printf("%s: sender %d, delivered once %d/%d, bad siginfo %d, deferred %s, "
	       "eintr %s, bytes %s\n",
	       name, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), once, g_nsig,
	       atomic_load(&g_bad_info), atomic_load(&g_deferred) > 0 ? "some" : "none",
	       g_eintr ? "some" : "none", g_bad_count ? "wrong" : "right");
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	sigset_t usr1;

	if (argc != 3 || (g_port = atoi(argv[1])) <= 0 || (g_nsig = atoi(argv[2])) <= 0 ||
	    g_nsig > MAXSIG) {
		fprintf(stderr, "usage: rt_net_signals PORT SIGNALS (1..%d)\n", MAXSIG);
		return 2;
	}
	g_sh = mmap(NULL, sizeof(*g_sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	g_seen = calloc((size_t)g_nsig + 1, 1);
	if (g_sh == MAP_FAILED || !g_seen)
		return 2;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	phase("restart", SA_RESTART);
	phase("no-restart", 0);
	return 0;
}
