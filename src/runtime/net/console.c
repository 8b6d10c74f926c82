/* kiln runtime: the console shield (services[].console: protected).
 *
 * What the program writes to stdout and stderr leaves as console records
 * (src/console: AES-256-GCM under a key of the stream derived from the
 * service's console key, numbered per channel), one write(2) per record, so
 * a pipe shared by several processes never interleaves inside one. Each
 * process image writes a stream of its own: a header record per channel
 * (seq 0) when it starts (a forked child: at its first write), then data
 * records, then, at exit_group, an end record carrying the exit status. What
 * the program reads from stdin must be records of its own stream, made by
 * `kiln console attach` for this run, in order: anything else (plaintext, a
 * record for another run, a missing, repeated or modified record) fails the
 * read with EIO and one line naming the record. Each attach (kiln run
 * --console-listen lets several come one after the other) starts its input
 * with a header record whose number may skip ahead of the last one read,
 * never back: numbers, and so nonces, are never used twice.
 *
 * Limits: poll/select/epoll on stdin report the pipe's readiness (a record
 * read whole may leave plaintext that only the next read returns); a write to
 * a full stdout pipe waits with signals blocked (one record at a time). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "console/console.h"
#include "crypto/crypto.h"
#include "runtime/net/internal.h"

struct rt_con {
	struct rt_nobj obj;
	uint8_t channel;
};

struct chan {
	pthread_mutex_t lock;
	uint64_t seq;        /* the next record's number */
	bool started;        /* its header went out (this stream) */
	int fd;              /* where its end record goes */
};

static struct {
	uint8_t key[CON_KEY_SIZE];
	struct con_stream *out;   /* this process image's stream */
	struct con_stream *in;    /* stdin: records of the first stream of the run */
	struct rt_con obj[3];
	struct chan ch[3];
	/* stdin */
	uint8_t rec[CON_MAX_RECORD];
	size_t rec_len;
	uint8_t plain[CON_MAX_PAYLOAD];
	size_t p_off, p_len;
	bool in_started, in_eof, in_failed;
} g_con;

static int new_stream(struct con_stream **s)
{
	uint8_t id[CON_ID_SIZE];

	if (kc_random(id, sizeof(id)) < 0)
		return -KILN_ECRYPTO;
	return con_stream_new(g_con.key, id, s);
}

/* One whole record to fd: -errno, or 0. A non-blocking fd waits for room
 * (a record is never half written). */
static int put_record(int fd, const uint8_t *rec, size_t len)
{
	size_t done = 0;

	while (done < len) {
		long n = rt__raw(SYS_write, fd, rec + done, len - done);

		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			struct pollfd p = { fd, POLLOUT, 0 };

			rt__raw(SYS_poll, &p, 1, -1);
			continue;
		}
		if (n < 0)
			return (int)n;
		done += (size_t)n;
	}
	return 0;
}

/* Under the channel's lock. */
static int seal_put(uint8_t ch, int fd, uint8_t type, const void *p, size_t size)
{
	uint8_t rec[CON_MAX_RECORD];
	int n;

	if (!g_con.out)
		return -EIO; /* a child without a stream of its own writes nothing */
	n = con_seal(g_con.out, type, ch, g_con.ch[ch].seq, p, size, rec);
	if (n < 0)
		return n;
	g_con.ch[ch].seq++;
	n = put_record(fd, rec, (size_t)n);
	OPENSSL_cleanse(rec, sizeof(rec));
	return n;
}

static int header(uint8_t ch, int fd)
{
	struct con_info info = { .pid = (uint32_t)rt__raw0(SYS_getpid) };
	uint8_t p[CON_INFO_SIZE];
	struct timespec ts;
	char exe[256];
	long n;

	clock_gettime(CLOCK_REALTIME, &ts);
	info.start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	n = rt__raw(SYS_readlink, "/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	snprintf(info.program, sizeof(info.program), "%.63s",
		 strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe);
	con_info_encode(&info, p);
	g_con.ch[ch].seq = 0;
	g_con.ch[ch].started = true;
	g_con.ch[ch].fd = fd;
	return seal_put(ch, fd, CON_T_HEADER, p, sizeof(p));
}

int rt__con_init(const struct rt_json *console, struct kiln_err *err)
{
	const char *key = rt_json_str(rt_json_get(console, "key"));
	int ret;

	if (!key || kiln_hex_decode(key, g_con.key, sizeof(g_con.key), NULL) < 0)
		return kiln_err_set(err, -KILN_EFORMAT, "attestation answer: console malformed");
	ret = new_stream(&g_con.out);
	if (ret == 0)
		ret = con_stream_new(g_con.key, con_stream_id(g_con.out), &g_con.in);
	if (ret < 0)
		return kiln_err_set(err, ret, "console shield: %s", kiln_strerror(ret));
	for (uint8_t ch = 0; ch < 3; ch++) {
		g_con.obj[ch].obj.type = RT_NOBJ_CON;
		atomic_init(&g_con.obj[ch].obj.refs, 1); /* static: never freed */
		g_con.obj[ch].channel = ch;
		pthread_mutex_init(&g_con.ch[ch].lock, NULL);
		g_con.ch[ch].fd = -1;
		if (rt__raw(SYS_fcntl, ch, F_GETFD) < 0)
			continue; /* not open: nothing to protect */
		rt__nobj_set(ch, &g_con.obj[ch]);
	}
	/* The headers go out now: attach learns the stream (and binds stdin to
	 * it) even before the program writes anything. */
	for (uint8_t ch = CON_STDOUT; ch <= CON_STDERR; ch++)
		if (rt_fd_kind(ch) == RT_FD_NET && (ret = header(ch, ch)) < 0)
			return kiln_err_set(err, ret, "console shield: %s: %s",
					    ch == 1 ? "stdout" : "stderr", kiln_strerror(ret));
	return 0;
}

void rt__con_put(struct rt_con *k)
{
	(void)k; /* the three channel objects are static */
}

long rt__con_write(struct rt_con *k, int fd, const struct iovec *iov, int cnt,
		   struct rt_guard *g)
{
	uint8_t ch = k->channel, buf[CON_MAX_PAYLOAD];
	size_t total = 0;
	long r = 0;

	(void)g;
	if (ch == CON_STDIN)
		ch = CON_STDOUT; /* a write to the fd stdin names: as stdout */
	pthread_mutex_lock(&g_con.ch[ch].lock);
	if (!g_con.ch[ch].started && (r = header(ch, fd)) < 0)
		goto out;
	for (int i = 0; i < cnt; i++) {
		size_t off = 0;

		while (off < iov[i].iov_len) {
			size_t n = iov[i].iov_len - off;

			n = n < sizeof(buf) ? n : sizeof(buf);
			if (rt__copy_in(buf, (const char *)iov[i].iov_base + off, n)) {
				r = -EFAULT;
				goto out;
			}
			r = seal_put(ch, fd, CON_T_DATA, buf, n);
			if (r < 0)
				goto out;
			off += n;
			total += n;
		}
	}
out:
	g_con.ch[ch].fd = fd;
	pthread_mutex_unlock(&g_con.ch[ch].lock);
	OPENSSL_cleanse(buf, sizeof(buf));
	return total ? (long)total : r;
}

long rt__con_send_from(struct rt_con *k, int fd, int in_fd, int64_t *off, size_t n,
		       struct rt_guard *g)
{
	uint8_t *buf = malloc(CON_MAX_PAYLOAD);
	size_t total = 0;
	long r = 0;

	if (!buf)
		return -ENOMEM;
	while (total < n) {
		size_t want = n - total < CON_MAX_PAYLOAD ? n - total : CON_MAX_PAYLOAD;
		long a[6] = { in_fd, (long)buf, (long)want, off ? (long)*off : 0, 0, 0 };
		struct iovec v;

		rt__leave(g);
		r = rt__dispatch(off ? SYS_pread64 : SYS_read, a, NULL);
		rt__enter(g);
		if (r <= 0)
			break;
		v.iov_base = buf;
		v.iov_len = (size_t)r;
		r = rt__con_write(k, fd, &v, 1, g);
		if (r <= 0)
			break;
		total += (size_t)r;
		if (off)
			*off += r;
	}
	free(buf);
	return total ? (long)total : r;
}

/* ---- stdin -------------------------------------------------------------------------- */
__attribute__((format(printf, 1, 2))) static long in_fail(const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	g_con.in_failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rt__say("console: stdin: %s: reads fail with EIO", msg);
	return -EIO;
}

/* One whole record of stdin, checked and opened into g_con.plain. 1: data
 * (or a header: nothing to return yet), 0: the end record, -EAGAIN, -EINTR,
 * -EIO. Under the channel's lock. */
static long next_record(int fd, struct rt_guard *g)
{
	for (;;) {
		struct con_hdr h;
		int ret = con_parse_hdr(g_con.rec, g_con.rec_len, &h);
		size_t need = CON_HDR_SIZE;
		long n;

		if (ret == -KILN_EFORMAT)
			return in_fail("not a console record (plaintext? stdin must come from "
				       "kiln console attach)");
		if (ret == 0)
			need = CON_HDR_SIZE + h.size + CON_TAG_SIZE;
		if (g_con.rec_len >= need) {
			if (memcmp(h.id, con_stream_id(g_con.in), CON_ID_SIZE) || h.channel)
				return in_fail("record %llu was made for another run",
					       (unsigned long long)h.seq);
			/* A header record starts an input session (one per attach:
			 * attach --connect numbers each from its clock, so no two
			 * sessions share numbers, i.e. nonces); it may skip ahead,
			 * never back. Inside a session the numbers go one by one. */
			if (h.seq > g_con.ch[0].seq && h.type != CON_T_HEADER)
				return in_fail("records %llu-%llu are missing (dropped)",
					       (unsigned long long)g_con.ch[0].seq,
					       (unsigned long long)h.seq - 1);
			if (h.seq < g_con.ch[0].seq)
				return in_fail("record %llu came again (replayed or reordered)",
					       (unsigned long long)h.seq);
			if (con_open(g_con.in, g_con.rec, &h, g_con.plain) < 0)
				return in_fail("record %llu does not authenticate (modified)",
					       (unsigned long long)h.seq);
			g_con.ch[0].seq = h.seq + 1;
			g_con.in_started = true;
			memmove(g_con.rec, g_con.rec + need, g_con.rec_len - need);
			g_con.rec_len -= need;
			if (h.type == CON_T_END)
				return 0;
			g_con.p_off = 0;
			g_con.p_len = h.type == CON_T_DATA ? h.size : 0;
			return 1;
		}
		/* Only this record's bytes: the rest of stdin stays for whoever
		 * reads it next (a child, an exec'd program). */
		rt__leave(g);
		n = rt__raw(SYS_read, fd, g_con.rec + g_con.rec_len, need - g_con.rec_len);
		rt__enter(g);
		if (n < 0)
			return n;
		if (n == 0) {
			if (!g_con.in_started && !g_con.rec_len)
				return 0; /* empty stdin (/dev/null): an ordinary end */
			if (g_con.rec_len)
				return in_fail("ends inside record %llu",
					       (unsigned long long)g_con.ch[0].seq);
			return in_fail("ends after record %llu without its end record (cut)",
				       (unsigned long long)(g_con.ch[0].seq ? g_con.ch[0].seq - 1 : 0));
		}
		g_con.rec_len += (size_t)n;
	}
}

long rt__con_read(struct rt_con *k, int fd, const struct iovec *iov, int cnt,
		  struct rt_guard *g)
{
	size_t total = 0;
	long r = 0;

	if (k->channel != CON_STDIN)
		return -EBADF; /* stdout/stderr are write-only here */
	pthread_mutex_lock(&g_con.ch[0].lock);
	while (g_con.p_off == g_con.p_len && !g_con.in_failed && !g_con.in_eof) {
		r = next_record(fd, g);
		if (r < 0)
			break;
		if (r == 0)
			g_con.in_eof = true;
	}
	/* What is decrypted, buffer by buffer. */
	for (int i = 0; i < cnt && g_con.p_off < g_con.p_len; i++) {
		size_t n = g_con.p_len - g_con.p_off;

		n = n < iov[i].iov_len ? n : iov[i].iov_len;
		if (n && rt__copy_out(iov[i].iov_base, g_con.plain + g_con.p_off, n)) {
			r = -EFAULT;
			break;
		}
		g_con.p_off += n;
		total += n;
	}
	if (g_con.p_off == g_con.p_len)
		OPENSSL_cleanse(g_con.plain, sizeof(g_con.plain));
	if (!total && r >= 0)
		r = g_con.in_failed ? -EIO : 0;
	pthread_mutex_unlock(&g_con.ch[0].lock);
	return total ? (long)total : r;
}

unsigned rt__con_ready_now(struct rt_con *k, unsigned want)
{
	return k->channel == CON_STDIN && g_con.p_off < g_con.p_len ? want & POLLIN : 0;
}

/* ---- fork and exit ------------------------------------------------------------------ */
void rt__con_after_fork(void)
{
	struct con_stream *s = NULL;

	/* A stream of its own: the same key and numbers here would reuse the
	 * parent's nonces. Its headers go out with its first write. */
	for (uint8_t ch = 0; ch < 3; ch++) {
		pthread_mutex_init(&g_con.ch[ch].lock, NULL);
		if (ch != CON_STDIN)
			g_con.ch[ch].started = false;
	}
	if (new_stream(&s) == 0) {
		con_stream_free(g_con.out);
		g_con.out = s;
	} else {
		/* Without a stream of its own it must not write at all. */
		con_stream_free(g_con.out);
		g_con.out = NULL;
	}
}

void rt__con_exit(int status)
{
	uint8_t p[4] = { (uint8_t)(status >> 24), (uint8_t)(status >> 16), (uint8_t)(status >> 8),
			 (uint8_t)status };

	for (uint8_t ch = CON_STDOUT; ch <= CON_STDERR; ch++) {
		struct chan *c = &g_con.ch[ch];

		if (!c->started || c->fd < 0 || !g_con.out)
			continue;
		pthread_mutex_lock(&c->lock);
		seal_put(ch, c->fd, CON_T_END, p, sizeof(p));
		c->started = false;
		pthread_mutex_unlock(&c->lock);
	}
}
