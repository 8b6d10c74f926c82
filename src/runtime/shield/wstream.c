/* kiln runtime, file shield v2: large writes sealed in the program's process,
 * the mirror of stream.c (docs/fs.md "Large writes sealed in the program's
 * process"). A write of whole chunks at the end of a file this process opened
 * for writing: per window, under the file's append lock and with the chunks
 * pinned, the server reserves them (RT_OP_WSTREAM), the chunks are sealed
 * straight from the caller's buffer and their slots written here, and the
 * server records their tags (DONE): the file then ends after them and every
 * reader fills them from pf. Anything unusual sends the window the usual way. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "crypto/crypto.h"
#include "runtime/shield/internal.h"

#define WSTREAM_MIN ((uint64_t)256 * 1024)
#define WBATCH ((uint64_t)9 << 18) /* slot bytes per pwrite: a window of 512 4 KiB chunks */
#define PAGE 4096u
#define NONCE 12u

/* One per node, in its own pages (rt__handover_lock). */
struct rt_wstream {
	struct rt_handover h; /* first; fd writable; buf WBATCH + a slot; off: the
			       * server refused it, or writing failed: never again */
	uint32_t lease;       /* token of the lease the last tags took, of chunk lease_c on */
	uint64_t lease_c;
	uint8_t nonces[RT_WSTREAM_MAX * NONCE];
	uint8_t tags[RT_WSTREAM_MAX * PF_STREAM_TAG];
};
#define WSTREAM_BYTES ((sizeof(struct rt_wstream) + PAGE - 1) / PAGE * PAGE)
const size_t rt__wstream_bytes = WSTREAM_BYTES;

/* RT_OP_WSTREAM about chunks [c, c + count): flags 0 (reserve, with the
 * hand-over when due), RT_WSTREAM_DONE (with the tags) or
 * RT_WSTREAM_CANCEL. The server's status. In window's guard. */
static int call(struct rt_node *n, struct rt_wstream *s, uint32_t flags, uint64_t c,
		uint64_t count)
{
	bool key = !flags && !s->h.ready;
	struct rt_msg m = { .op = RT_OP_WSTREAM, .id = n->id, .a = c, .b = count,
			    .flags = flags | (key ? RT_STREAM_KEY : 0), .tags = s->tags };
	size_t hdr = key ? sizeof(s->h.info) : 0;
	struct rt_call cl;
	int ret;

	if (n->gen != n->vol->gen || atomic_load(&n->dead))
		return -EIO;
	ret = rt__cl_call(n->vol, &m, &cl);
	if (ret >= 0 && (cl.size != hdr || (key && cl.fds[0] < 0)))
		ret = -EPROTO;
	if (ret == 0 && key)
		ret = rt__handover_take(&s->h, &cl);
	rt__cl_done(n->vol, &cl);
	if (ret == -ENOMEM && key) {
		m.flags = RT_WSTREAM_CANCEL; /* no hand-over here: nothing written */
		rt__cl_simple(n->vol, &m, NULL);
	}
	if (!flags && (ret == -EACCES || ret == -EOPNOTSUPP || ret == -EBADF))
		s->h.off = true;
	return ret;
}

/* Seal chunks [c0, c0 + count) from buf and write their slots, in batches;
 * their tags into s->tags. 0 or -errno. */
static int seal_write(struct rt_wstream *s, const char *buf, uint64_t c0, uint64_t count,
		      uint64_t cs)
{
	uint64_t stride = s->h.info.stride, per = WBATCH / stride ? WBATCH / stride : 1;
	long r;
	int ret;

	for (uint64_t i = 0; i < count;) {
		uint64_t m = count - i < per ? count - i : per, at, len;

		if ((ret = kc_random(s->nonces, m * NONCE)))
			return ret;
		for (uint64_t k = 0; k < m; k++) {
			uint8_t *slot = s->h.buf + k * stride;

			ret = pf_stream_seal(s->h.aead, &s->h.info, c0 + i + k,
					     (const uint8_t *)buf + (i + k) * cs, (uint32_t)cs,
					     s->nonces + k * NONCE, slot);
			if (ret)
				return ret;
			memcpy(s->tags + (i + k) * PF_STREAM_TAG, slot + NONCE, PF_STREAM_TAG);
		}
		at = s->h.info.slot0 + (c0 + i) * stride;
		len = m * stride;
		/* A regular file's write is whole or fails (short: no space), or a
		 * signal interrupted it (a backing store on NFS or FUSE): again. */
		while ((r = rt__raw(SYS_pwrite64, s->h.fd, s->h.buf, len, at)) == -EINTR)
			;
		if (r != (long)len)
			return r < 0 ? (int)r : -ENOSPC;
		i += m;
	}
	return 0; /* the server starts the write-back (pf_stream_record) */
}

/* One window of whole chunks [at, at + len) at the end of the file: len, or
 * 0 (nothing written: the usual way). In a guard, as an O_APPEND write: a
 * handler appending to the file would wait for the lock its thread holds. */
static long window(struct rt_node *n, struct rt_wstream *s, int fd, const char *buf, uint64_t at,
		   uint64_t len)
{
	uint64_t cs = n->vol->chunk, c0 = at / cs, count = len / cs, c1 = c0 + count - 1, lo, hi;
	struct rt_fseg *lk, *seg;
	struct rt_guard g;
	struct stat st;
	long ret = 0;
	bool leased;
	int r;

	if (rt__node_words(n, c1))
		return 0;
	/* Locked and unlocked through the same mapping (robust: by address). */
	lk = atomic_load(&n->seg);
	rt__enter(&g);
	rt__ck_lock(lk);
	seg = atomic_load(&n->seg);
	if (rt__mstat(fd, &st) || (uint64_t)st.st_size != at ||
	    c1 >= atomic_load(&n->seg_words) ||
	    (atomic_load(&seg->flags) & (RT_FS_NOEVICT | RT_FS_FAILED)))
		goto out;
	rt__ck_pin(seg, c0, c1, &lo, &hi);
	for (uint64_t k = c0; k <= c1; k++)
		if (atomic_load(&seg->w[k]) & (RT_CK_VALID | RT_CK_DIRTY))
			goto unpin;
	/* Reserved by the last window's tags (a lease: seg->wlease stays its
	 * token until the server cancels it, which takes the append lock). */
	leased = s->lease && s->lease_c == c0 && atomic_load(&seg->wlease) == s->lease;
	s->lease = 0;
	if (rt__probe((char *)buf, len, false) || (!leased && call(n, s, 0, c0, count)))
		goto unpin;
	r = seal_write(s, buf, c0, count, cs);
	if (r) {
		if (r != -ENOSPC && r != -EDQUOT && r != -EINTR)
			s->h.off = true;
		call(n, s, RT_WSTREAM_CANCEL, c0, count);
		goto unpin;
	}
	r = call(n, s, RT_WSTREAM_DONE | RT_WSTREAM_NEXT, c0, count);
	if (r >= 0) {
		rt__fseg_touch(seg);
		ret = (long)len;
		s->lease = (uint32_t)r;
		s->lease_c = c1 + 1;
	} else if (r != -EAGAIN && r != -EINVAL) {
		call(n, s, RT_WSTREAM_CANCEL, c0, count); /* DONE never reached it */
	}
unpin:
	rt__ck_unpin(seg, c0, c1);
out:
	rt__ck_unlock(lk);
	rt__leave(&g);
	return ret;
}

long rt__wstream_write(struct rt_node *n, int fd, const char *buf, uint64_t len, uint64_t off)
{
	uint64_t cs = n->vol->chunk, done = 0;
	uint64_t span = RT_WSTREAM_MAX * cs < RT_WINDOW ? RT_WSTREAM_MAX * cs : RT_WINDOW;
	struct rt_wstream *s;

	if (len < WSTREAM_MIN || len < cs || off % cs || span < cs ||
	    (rt__raw(SYS_fcntl, fd, F_GETFL) & O_ACCMODE) == O_RDONLY ||
	    (atomic_load(&atomic_load(&n->seg)->flags) & RT_FS_NOEVICT))
		return 0;
	s = rt__handover_lock(&n->wstream, WSTREAM_BYTES,
			      (WBATCH + cs + 64 + PAGE - 1) / PAGE * PAGE);
	if (!s)
		return 0;
	while (!s->h.off && len - done >= cs) {
		uint64_t wl = (len - done) / cs * cs;
		long r;

		if (wl > span - (off + done) % span)
			wl = span - (off + done) % span;
		r = window(n, s, fd, buf + done, off + done, wl);
		if (r <= 0)
			break;
		done += (uint64_t)r;
	}
	pthread_mutex_unlock(&s->h.lock);
	return (long)done;
}
