/* kiln runtime, file shield v2: cold reads decrypted in the program's process
 * (docs/fs.md "Cold reads in the program's process", docs/runtime.md "What each
 * process holds"). A read of at least STREAM_MIN bytes of chunks neither VALID
 * nor DIRTY: per window, pin the chunks, ask the server for the tags it checks
 * (the first time also for the file's key, id and an O_DIRECT descriptor of its
 * backing file), read the slots in batches (O_DIRECT, io_submit: those of a
 * sequential read ahead of it), open each straight into the caller's buffer,
 * then look at the chunk words again: a chunk that became VALID meanwhile is
 * read from the memfd. A slot that does not open goes to the server's fill,
 * which alone decides EIO. Edge chunks, chunks past what pf stores and cached
 * ranges go the usual way. */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "crypto/crypto.h"
#include "runtime/shield/internal.h"

#define STREAM_MIN ((uint64_t)256 * 1024)
#define SBATCH ((uint64_t)1 << 20) /* slot bytes per O_DIRECT request */
#define PAGE 4096u
#define NBUF RT_HANDOVER_RQ /* batches read or being read, SBATCH + 2 pages each */
#define BUFB (SBATCH + 2 * PAGE)

/* How a chunk of a window is read: decrypted here, from the memfd, filled by
 * the server first (FILL; BAD: its slot did not open here). */
enum { DEC, MEM, FILL, BAD };

/* One per node, in its own pages (MADV_DONTDUMP, MADV_WIPEONFORK: a forked
 * child finds zeros, so not ready). */
struct rt_stream {
	struct rt_handover h; /* first; fd read-only, O_DIRECT; buf SBATCH + 2 pages;
			       * off: the server refused it, fills serve this node */
	bool stale;           /* a slot did not match: take a fresh hand-over */
	uint64_t seq;         /* the chunk after the last read here */
	uint8_t cls[RT_STREAM_MAX];
	uint8_t tags[RT_STREAM_MAX * PF_STREAM_TAG];
};
#define STREAM_BYTES ((sizeof(struct rt_stream) + PAGE - 1) / PAGE * PAGE)

void rt__handover_forget(struct rt_handover *h)
{
	if (h->ready) {
		kc_aead_free(h->aead);
		rt__own_close(h->fd);
	}
	kiln_wipe(&h->info, sizeof(h->info));
	h->aead = NULL;
	h->ready = false;
}

int rt__handover_take(struct rt_handover *h, struct rt_call *call)
{
	rt__handover_forget(h);
	memcpy(&h->info, call->body, sizeof(h->info));
	h->fd = rt__own_fd(call->fds[0]);
	call->fds[0] = -1;
	h->aead = h->fd >= 0 ? kc_aead_new(h->info.key) : NULL;
	kiln_wipe(h->info.key, sizeof(h->info.key));
	kiln_wipe((void *)call->body, sizeof(h->info));
	h->ready = h->aead != NULL;
	if (!h->ready && h->fd >= 0)
		rt__own_close(h->fd);
	return h->ready ? 0 : -ENOMEM;
}

static void *anon(size_t bytes)
{
	long p = rt__raw(SYS_mmap, NULL, bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p < 0 && p > -4096 ? NULL : (void *)p;
}

void *rt__handover_lock(void *_Atomic *slot, size_t bytes, size_t buf_bytes)
{
	struct rt_handover *h = atomic_load(slot), *none = NULL;

	if (!h && (h = anon(bytes)) != NULL) {
		rt__raw(SYS_madvise, h, bytes, MADV_DONTDUMP);
		rt__raw(SYS_madvise, h, bytes, MADV_WIPEONFORK);
		if (!atomic_compare_exchange_strong(slot, &none, h)) {
			rt__raw(SYS_munmap, h, bytes);
			h = none;
		}
	}
	if (!h || h->off || pthread_mutex_trylock(&h->lock))
		return NULL;
	if (!h->buf && (h->buf = anon(buf_bytes)) != NULL)
		h->buf_bytes = buf_bytes;
	if (!h->buf)
		pthread_mutex_unlock(&h->lock);
	return h->buf ? h : NULL;
}

void rt__handover_drop(void *_Atomic *slot, size_t bytes, bool unmap)
{
	struct rt_handover *h = atomic_load(slot);

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	rt__handover_forget(h);
	if (h->ctx)
		rt__raw(SYS_io_destroy, h->ctx);
	h->ctx = 0;
	memset(h->q, 0, sizeof(h->q));
	if (h->buf)
		rt__raw(SYS_munmap, h->buf, h->buf_bytes);
	h->buf = NULL;
	pthread_mutex_unlock(&h->lock);
	if (unmap) {
		rt__raw(SYS_munmap, h, bytes);
		atomic_store(slot, NULL);
	}
}

void rt__stream_drop(struct rt_node *n, bool unmap)
{
	rt__handover_drop(&n->stream, STREAM_BYTES, unmap);
	rt__handover_drop(&n->wstream, rt__wstream_bytes, unmap);
}

/* The server's tags for chunks [c, c + count), with the hand-over when due.
 * 0, or the server's refusal (-EACCES, -EOPNOTSUPP: never again here). */
static int ask(struct rt_node *n, struct rt_stream *s, uint64_t c, uint64_t count)
{
	bool key = !s->h.ready || s->stale;
	struct rt_msg m = { .op = RT_OP_STREAM, .id = n->id, .a = c, .b = count,
			    .flags = key ? RT_STREAM_KEY : 0 };
	size_t hdr = key ? sizeof(s->h.info) : 0;
	struct rt_call call;
	struct rt_guard g;
	int ret;

	rt__enter(&g);
	ret = rt__cl_call(n->vol, &m, &call);
	if (ret == 0 && (call.size != hdr + count * PF_STREAM_TAG || (key && call.fds[0] < 0)))
		ret = -EPROTO;
	if (ret == 0 && key && (ret = rt__handover_take(&s->h, &call)) == 0)
		s->stale = false;
	if (ret == 0)
		memcpy(s->tags, call.body + hdr, count * PF_STREAM_TAG);
	rt__cl_done(n->vol, &call);
	rt__leave(&g);
	if (ret == -EACCES || ret == -EOPNOTSUPP)
		s->h.off = true;
	return ret;
}

int rt__probe(char *buf, uint64_t len, bool out)
{
	char c = 0;
	int bad = 0;

	for (uint64_t p = 0; p < len + PAGE && !bad; p = (p + PAGE) / PAGE * PAGE) {
		char *at = buf + (p < len ? p : len - 1);

		bad = out ? rt__copy_out(at, &c, 1) : rt__copy_in(&c, at, 1);
	}
	return bad ? -EFAULT : 0;
}

/* Are the slots of chunks [c0, c1] to be read around the page cache (not all
 * of them cached, none waiting for write-back)? Else the server reads them. */
static bool cold(struct rt_stream *s, uint64_t c0, uint64_t c1, uint64_t *a, uint64_t *b)
{
	struct kiln_cachestat_range range;
	struct kiln_cachestat st;

	*a = (s->h.info.slot0 + c0 * s->h.info.stride) / PAGE * PAGE;
	*b = (s->h.info.slot0 + (c1 + 1) * s->h.info.stride + PAGE - 1) / PAGE * PAGE;
	range = (struct kiln_cachestat_range){ *a, *b - *a };
	return rt__raw(KILN_NR_CACHESTAT, s->h.fd, &range, &st, 0) == 0 &&
	       kiln_read_around_cache(&st, *b - *a, PAGE);
}

/* q's request done: its bytes, or -errno. */
static long rq_wait(struct rt_stream *s, struct rt_rq *q)
{
	while (q->busy) {
		struct io_event ev[NBUF];
		long n = rt__raw(SYS_io_getevents, s->h.ctx, 1, NBUF, ev, NULL);

		for (long e = 0; e < n; e++)
			s->h.q[ev[e].data].busy = false, s->h.q[ev[e].data].r = (long)ev[e].res;
		if (n < 0 && n != -EINTR)
			return s->h.off = true, n; /* left busy: never used again */
	}
	return q->r;
}

/* Batch b's slots (chunks [b * per, (b + 1) * per)) from chunk k's, up to lim's,
 * in buffer b % NBUF: there, or their read started. -EAGAIN: cached or dirty
 * (the server reads them), or no AIO here (never again: the server reads). */
static int batch(struct rt_stream *s, uint64_t b, uint64_t per, uint64_t k, uint64_t lim)
{
	struct rt_rq *q = &s->h.q[b % NBUF];
	uint64_t at = s->h.info.slot0 + k * s->h.info.stride, a, e;
	struct iocb cb, *cbs[1] = { &cb };

	if (q->len && q->a <= at && at + s->h.info.stride <= q->a + q->len)
		return 0;
	if (!cold(s, k, (b + 1) * per - 1 < lim ? (b + 1) * per - 1 : lim, &a, &e) ||
	    (rq_wait(s, q) < 0 && q->busy))
		return -EAGAIN;
	if (!s->h.ctx && rt__raw(SYS_io_setup, NBUF, &s->h.ctx) < 0)
		return s->h.ctx = 0, s->h.off = true, -EAGAIN;
	cb = (struct iocb){ .aio_data = b % NBUF, .aio_lio_opcode = IOCB_CMD_PREAD,
			    .aio_fildes = (uint32_t)s->h.fd,
			    .aio_buf = (uintptr_t)(s->h.buf + (b % NBUF) * BUFB),
			    .aio_nbytes = e - a, .aio_offset = (int64_t)a };
	*q = (struct rt_rq){ a, e - a, 0, rt__raw(SYS_io_submit, s->h.ctx, 1, cbs) == 1 };
	return q->busy ? 0 : (q->len = 0, -EAGAIN);
}

/* Open the DEC chunks of [c0, c1] (chunk k's bytes at buf + k * cs - base,
 * its tag s->tags[k - c0]), their slots read in batches, NBUF - 1 of them
 * ahead of a sequential read; a chunk that does not open becomes BAD. */
static int decrypt(struct rt_stream *s, uint8_t *cls, uint64_t cs, uint64_t stored,
		   uint64_t c0, uint64_t c1, char *buf, uint64_t base)
{
	uint64_t stride = s->h.info.stride, per = SBATCH / stride, nst = (stored + cs - 1) / cs;
	bool seq = c0 == s->seq;

	s->seq = c1 + 1;
	for (uint64_t k = c0; k <= c1; k++) {
		uint64_t at = s->h.info.slot0 + k * stride, b = k / per;
		const uint8_t *tag = s->tags + (k - c0) * PF_STREAM_TAG;
		uint32_t len = (uint32_t)((k + 1) * cs <= stored ? cs : stored - k * cs);
		uint8_t *out = (uint8_t *)buf + (k * cs - base);
		static const uint8_t hole[PF_STREAM_TAG];
		struct rt_rq *q = &s->h.q[b % NBUF];
		long r;

		if (cls[k - c0] != DEC)
			continue;
		if (!memcmp(tag, hole, sizeof(hole))) {
			memset(out, 0, len);
			continue;
		}
		if (batch(s, b, per, k, seq ? nst - 1 : c1))
			return -EAGAIN;
		for (uint64_t x = b + 1; seq && (k == c0 || k % per == 0) && x < b + NBUF &&
		     x * per < nst; x++)
			if (batch(s, x, per, x * per, nst - 1))
				break;
		if ((r = rq_wait(s, q)) == -EINVAL)
			s->h.off = true; /* this file system's O_DIRECT wants more */
		if (r < 0)
			return (int)r;
		if (at + stride > q->a + (uint64_t)r ||
		    pf_stream_open(s->h.aead, &s->h.info, k,
				   s->h.buf + (b % NBUF) * BUFB + (at - q->a), len, tag, out))
			cls[k - c0] = BAD, q->len = 0; /* read it again next time */
	}
	return 0;
}

/* One window [at, at + len) of the read into buf: the bytes read, or -EAGAIN
 * (nothing done: read it the usual way), or an error. */
static long window(struct rt_node *n, struct rt_stream *s, int fd, char *buf, uint64_t at,
		   uint64_t len)
{
	/* The words first: a remap stores the mapping, then its size. */
	uint64_t words = atomic_load(&n->seg_words);
	struct rt_fseg *seg = atomic_load(&n->seg);
	uint64_t cs = n->vol->chunk, c0 = at / cs, c1 = (at + len - 1) / cs, lo, hi;
	uint64_t stored = atomic_load(&seg->stored_size), d0 = UINT64_MAX, d1 = 0;
	long ret = 0;

	if (c1 >= words || (atomic_load(&seg->flags) & RT_FS_NOEVICT))
		return -EAGAIN;
	rt__ck_pin(seg, c0, c1, &lo, &hi);
	for (uint64_t k = c0; k <= c1; k++) {
		uint32_t w = atomic_load(&seg->w[k]);
		bool whole = k * cs >= at && (k + 1) * cs <= at + len;

		if (((w & RT_CK_VALID) && !(w & RT_CK_BUSY)) || k * cs >= stored)
			s->cls[k - c0] = MEM;
		else if (!whole || (k + 1) * cs > stored)
			s->cls[k - c0] = FILL;
		else
			s->cls[k - c0] = DEC;
		if (s->cls[k - c0] == DEC)
			d0 = d0 < k ? d0 : k, d1 = k;
	}
	/* Tags of [d0, d1] (every one below what pf stores). */
	if (d0 > d1 || (s->h.ready && !s->stale && !cold(s, d0, d1, &lo, &hi)) ||
	    ask(n, s, d0, d1 - d0 + 1) || rt__probe(buf, len, true) ||
	    decrypt(s, s->cls + (d0 - c0), cs, stored, d0, d1, buf + (d0 * cs - at), d0 * cs)) {
		rt__ck_unpin(seg, c0, c1);
		return -EAGAIN;
	}
	for (uint64_t k = c0; k <= c1; k++) {
		uint32_t w = atomic_load(&seg->w[k]);

		if (s->cls[k - c0] == DEC && (w & RT_CK_VALID) && !(w & RT_CK_BUSY))
			s->cls[k - c0] = MEM; /* written or filled meanwhile */
		s->stale |= s->cls[k - c0] == BAD;
	}
	/* The rest: runs of FILL (filled by the server) and MEM chunks from the memfd. */
	for (uint64_t k = c0; k <= c1 && ret >= 0; k++) {
		uint64_t e = k, rs, re;

		if (s->cls[k - c0] == DEC)
			continue;
		while (e < c1 && s->cls[e + 1 - c0] != DEC)
			e++;
		for (uint64_t f = k; f <= e && ret >= 0; f++)
			if (s->cls[f - c0] >= FILL && (ret = rt__pin_fill(n, f, f)) == 0)
				rt__ck_unpin(seg, f, f);
		rs = k * cs > at ? k * cs : at;
		re = (e + 1) * cs < at + len ? (e + 1) * cs : at + len;
		if (ret >= 0)
			ret = rt__raw(SYS_pread64, fd, buf + (rs - at), re - rs, rs);
		if (ret >= 0 && (uint64_t)ret < re - rs) {
			len = rs - at + (uint64_t)ret; /* the end of the file moved */
			break;
		}
		k = e;
	}
	rt__ck_unpin(seg, c0, c1);
	return ret < 0 ? ret : (long)len;
}

long rt__stream_read(struct rt_node *n, int fd, char *buf, uint64_t len, uint64_t off)
{
	uint64_t cs = n->vol->chunk;
	uint64_t span = RT_STREAM_MAX * cs < RT_WINDOW ? RT_STREAM_MAX * cs : RT_WINDOW;
	uint64_t done = 0;
	struct rt_stream *s;
	struct stat st;
	long r = 0;

	if (len < STREAM_MIN || (rt__raw(SYS_fcntl, fd, F_GETFL) & O_ACCMODE) == O_WRONLY ||
	    rt__mstat(fd, &st) || off >= (uint64_t)st.st_size)
		return -EAGAIN;
	if (len > (uint64_t)st.st_size - off)
		len = (uint64_t)st.st_size - off;
	if (!(s = rt__handover_lock(&n->stream, STREAM_BYTES, NBUF * BUFB)))
		return -EAGAIN;
	while (done < len) {
		uint64_t at = off + done, wl = len - done;

		if (wl > span - at % span)
			wl = span - at % span;
		r = window(n, s, fd, buf + done, at, wl);
		if (r == -EAGAIN)
			r = rt__read_window(n, fd, buf + done, at, wl);
		if (r <= 0)
			break;
		done += (uint64_t)r;
		if ((uint64_t)r < wl)
			break;
	}
	pthread_mutex_unlock(&s->h.lock);
	return done ? (long)done : r;
}
