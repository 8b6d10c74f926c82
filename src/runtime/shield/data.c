/* kiln runtime, file shield v2: the data path. A protected fd is an open of the
 * volume server's plaintext memfd, so reads and writes are native system
 * calls; around them the shield keeps the shared chunk state (proto.h):
 *
 *   read:  a file whose chunks are all valid is read natively, checked by the
 *          eviction sequence (a concurrent eviction makes the read retry);
 *          otherwise the chunks are pinned, the missing ones filled by the
 *          server (decrypted and verified), then read natively.
 *   write: the chunks are pinned and the partial ones filled, the write is
 *          native, the chunks are marked VALID|DIRTY. Appends (O_APPEND) take
 *          the file's append lock (an OFD lock on the state memfd) so that
 *          the end of the file cannot move or be evicted meanwhile. On an
 *          O_DSYNC / O_SYNC fd, or with RWF_DSYNC / RWF_SYNC, the write then
 *          waits for the commit an fdatasync makes.
 *
 * Large transfers go in windows, so that a read of a huge file never needs
 * more than a window of it in memory at once (the server evicts behind).
 * Nothing here takes the shield lock or a guard, except a round trip to the
 * server (fill, grow, write-back), which runs in a guard. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/shield/internal.h"

#define WINDOW RT_WINDOW

/* One line per distinct failure, per process. */
static void say_once(const struct rt_node *n, const char *msg)
{
	static uint64_t seen[32];
	static unsigned next;
	uint64_t h = kiln_fnv1a(KILN_FNV1A_INIT, msg, strlen(msg));

	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		if (seen[i] == h)
			return;
	seen[next++ % (sizeof(seen) / sizeof(seen[0]))] = h;
	rt__say("%s%s%s: %s", n->vol->cfg->mount, n->rel[0] ? "/" : "", n->rel,
		msg[0] ? msg : "I/O error");
}

/* A round trip about node n (fill, grow, write-back, truncate ...). */
int rt__node_call(struct rt_node *n, struct rt_msg *m)
{
	struct rt_guard g;
	char errmsg[RT_ERRMSG_MAX] = "";
	int ret;

	if (n->gen != n->vol->gen || atomic_load(&n->dead))
		return -EIO;
	m->id = n->id;
	rt__enter(&g);
	ret = rt__cl_simple(n->vol, m, errmsg);
	rt__leave(&g);
	if (ret == -EIO && errmsg[0])
		say_once(n, errmsg);
	return ret;
}

bool rt__node_dead(struct rt_node *n)
{
	if (atomic_load(&n->dead))
		return true;
	if (n->gen == n->vol->gen && !rt__cl_dead(n->vol))
		return false;
	atomic_store(&n->dead, true);
	return true;
}

/* Make the state mapping cover chunk c (a writer asks the server to grow the
 * state memfd; a reader never needs chunks past it: they are past the end of
 * the file). */
static int ensure_words(struct rt_node *n, uint64_t c, bool grow)
{
	uint64_t now;

	if (c < atomic_load(&n->seg_words))
		return 0;
	now = atomic_load(&atomic_load(&n->seg)->nwords);
	if (c >= now && !grow)
		return now > atomic_load(&n->seg_words) ? rt__node_remap(n, now) : 0;
	return rt__node_remap(n, c >= now ? c + 1 : now);
}

int rt__node_words(struct rt_node *n, uint64_t c)
{
	return ensure_words(n, c, true);
}

/* Pin chunks [c0, c1] and get the missing ones filled. 0, or -EIO (a chunk
 * fails verification: logged, the chunks are unpinned). */
int rt__pin_fill(struct rt_node *n, uint64_t c0, uint64_t c1)
{
	struct rt_fseg *seg = atomic_load(&n->seg);
	uint64_t lo, hi;
	int ret;

	if (!rt__ck_pin(seg, c0, c1, &lo, &hi))
		return 0;
	for (int tries = 0; tries < 8; tries++) {
		struct rt_msg m = { .op = RT_OP_FILL, .a = lo, .b = hi - lo + 1 };

		ret = rt__node_call(n, &m);
		if (ret)
			break;
		if (!rt__ck_missing(seg, c0, c1, &lo, &hi))
			return 0;
	}
	rt__ck_unpin(seg, c0, c1);
	return ret ? ret : -EIO;
}

/* Prepare chunks [c0, *c1] for a transfer: 0 when pinned and valid, 1 when
 * there is nothing to pin (a read wholly past the end of the file), or an
 * error. A read is clipped to the chunks the file has. */
static int prepare(struct rt_node *n, uint64_t c0, uint64_t *c1, bool write)
{
	int ret = ensure_words(n, *c1, write);

	if (ret)
		return ret;
	if (!write) {
		uint64_t words = atomic_load(&n->seg_words);

		if (c0 >= words)
			return 1;
		if (*c1 >= words)
			*c1 = words - 1;
	}
	return rt__pin_fill(n, c0, *c1);
}

long rt__read_window(struct rt_node *n, int fd, char *buf, uint64_t at, uint64_t len)
{
	uint64_t c0 = at / n->vol->chunk, c1 = (at + len - 1) / n->vol->chunk;
	int ret = prepare(n, c0, &c1, false);
	long r;

	if (ret < 0)
		return ret;
	r = rt__raw(SYS_pread64, fd, buf, len, at);
	if (ret == 0)
		rt__ck_unpin(atomic_load(&n->seg), c0, c1);
	return r;
}

/* After a write grew dirty data: above dirty_background, nudge the server
 * once (it answers at once and writes back while this writer goes on
 * filling the memfd: sealing overlaps the writing); above dirty_limit, wait
 * for its write-back (a writer faster than sealing must not fill memory). */
static void throttle(struct rt_node *n)
{
	struct rt_vseg *v = atomic_load(&n->vol->vseg);
	struct rt_msg m = { .op = RT_OP_WRITEBACK };
	uint32_t idle = 0;

	if (atomic_load(&v->dirty_bytes) <= v->dirty_limit &&
	    atomic_load(&v->cache_bytes) <= v->cache_limit + v->cache_limit / 4) {
		if (atomic_load(&v->dirty_bytes) <= v->dirty_background ||
		    !atomic_compare_exchange_strong(&v->wb_nudged, &idle, 1))
			return;
		m.flags = RT_WB_NUDGE;
	}
	rt__node_call(n, &m);
}

/* ---- the range of one call ---------------------------------------------- */
static struct iovec *iov_map(int cnt)
{
	long p = rt__raw(SYS_mmap, NULL, (size_t)cnt * sizeof(struct iovec),
			 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p < 0 && p > -4096 ? NULL : (struct iovec *)p;
}

static uint64_t iov_total(const struct iovec *iov, int cnt)
{
	uint64_t sum = 0;

	for (int i = 0; i < cnt; i++)
		sum += iov[i].iov_len;
	return sum;
}

/* Windowed positional transfer of iov at off (reads: pread; writes: pwrite,
 * marking). Returns the bytes transferred or an error. */
static long windows(struct rt_node *n, int fd, bool write, const struct iovec *iov, int cnt,
		    uint64_t off)
{
	uint64_t cs = n->vol->chunk, done = 0;
	long ret = 0;

	for (int i = 0; i < cnt; i++) {
		uint64_t pos = 0;

		while (pos < iov[i].iov_len) {
			uint64_t len = iov[i].iov_len - pos, at = off + done, c0, c1;
			char *base = (char *)iov[i].iov_base + pos;
			long r;

			if (len > WINDOW - at % cs)
				len = WINDOW - at % cs;
			c0 = at / cs;
			c1 = (at + len - 1) / cs;
			ret = prepare(n, c0, &c1, write);
			if (ret < 0)
				return done ? (long)done : ret;
			r = rt__raw(write ? SYS_pwrite64 : SYS_pread64, fd, base, len, at);
			if (write && r > 0)
				rt__ck_mark(atomic_load(&n->seg), atomic_load(&n->vol->vseg), c0,
					    (at + (uint64_t)r - 1) / cs);
			if (ret == 0)
				rt__ck_unpin(atomic_load(&n->seg), c0, c1);
			if (r <= 0)
				return done ? (long)done : r;
			done += (uint64_t)r;
			pos += (uint64_t)r;
			if ((uint64_t)r < len)
				return (long)done;
			if (write)
				throttle(n);
		}
	}
	return (long)done;
}

/* One native call over chunks [c0, c1], pinned and filled. */
static long one_call(struct rt_node *n, long nr, const long a[6], uint64_t off, uint64_t len,
		     bool write)
{
	uint64_t cs = n->vol->chunk, c0 = off / cs, c1 = (off + len - 1) / cs;
	long r;
	int ret = prepare(n, c0, &c1, write);

	if (ret < 0)
		return ret;
	r = rt__raw6(nr, a);
	if (write && r > 0)
		rt__ck_mark(atomic_load(&n->seg), atomic_load(&n->vol->vseg), c0,
			    (off + (uint64_t)r - 1) / cs);
	if (ret == 0)
		rt__ck_unpin(atomic_load(&n->seg), c0, c1);
	return r;
}

/* O_APPEND: under the append lock, the end of the file is where the write
 * goes, its chunk is filled (the server keeps it so while the file is open,
 * but it may be corrupt) and nothing evicts it. In a guard: a handler of the
 * program that appends to the file too would wait for the lock for ever. */
static long append(struct rt_node *n, int fd, long nr, const long a[6], uint64_t len)
{
	uint64_t cs = n->vol->chunk, size, c0, c1;
	/* Locked and unlocked through the same mapping (the lock is robust:
	 * it sits on a list of this thread by address). */
	struct rt_fseg *lk = atomic_load(&n->seg), *seg;
	struct rt_guard g;
	struct stat st;
	long r;
	int ret;

	rt__enter(&g);
	rt__ck_lock(lk);
	r = rt__mstat((int)fd, &st);
	if (r < 0)
		goto out;
	size = (uint64_t)st.st_size;
	c0 = size / cs;
	c1 = (size + len - 1) / cs;
	ret = prepare(n, c0, &c1, true);
	if (ret) {
		r = ret;
		goto out;
	}
	r = rt__raw6(nr, a);
	seg = atomic_load(&n->seg);
	if (r > 0) {
		/* Where it went: the end before, unless another writer extended
		 * the file without the lock (a positional write past the end). */
		long end = rt__raw(SYS_lseek, fd, 0, SEEK_CUR);
		uint64_t start = end >= r ? (uint64_t)end - (uint64_t)r : size;
		uint64_t s0 = start / cs, s1 = (start + (uint64_t)r - 1) / cs, lo, hi;

		if (start == size) {
			rt__ck_mark(seg, atomic_load(&n->vol->vseg), s0, s1);
		} else if (ensure_words(n, s1, true) == 0) {
			struct rt_fseg *now = atomic_load(&n->seg);

			rt__ck_pin(now, s0, s1, &lo, &hi);
			rt__ck_mark(now, atomic_load(&n->vol->vseg), s0, s1);
			rt__ck_unpin(now, s0, s1);
		}
	}
	rt__ck_unpin(seg, c0, c1);
out:
	rt__ck_unlock(lk);
	rt__leave(&g);
	return r;
}

/* The fast read: every chunk below stored_size is valid, and no eviction
 * ran meanwhile. -EAGAIN: take the slow path (nothing was read). */
static long fast_read(struct rt_node *n, int fd, long nr, const long a[6], bool positional)
{
	struct rt_fseg *seg = atomic_load(&n->seg);
	uint64_t s1 = atomic_load(&seg->evict_seq);
	long r;

	if ((s1 & 1) || !atomic_load(&seg->all_valid))
		return -EAGAIN;
	r = rt__raw6(nr, a);
	if (atomic_load(&seg->evict_seq) == s1)
		return r;
	/* An eviction ran while we read: undo the offset move and retry. */
	if (r > 0 && !positional)
		rt__raw(SYS_lseek, fd, -r, SEEK_CUR);
	return -EAGAIN;
}

/* A read of the file (data served from the memfd, filled or not): its atime,
 * relatime as Linux's default mount option -- moved to now when it is not
 * after the last modification or change, or a day old -- and never for an
 * fd opened O_NOATIME. The server stores the segment's atime into pf at the
 * next write-back or commit. */
static void file_accessed(struct rt_node *n, int fd)
{
	struct rt_fseg *f = atomic_load(&n->seg);
	int64_t at = atomic_load(&f->atime_ns), now;
	struct timespec ts;
	long fl;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (at > atomic_load(&f->mtime_ns) && at > atomic_load(&f->ctime_ns) &&
	    now - at < 86400ll * 1000000000)
		return;
	fl = rt__raw(SYS_fcntl, fd, F_GETFL);
	if (fl >= 0 && (fl & O_NOATIME))
		return;
	atomic_store(&f->atime_ns, now);
}

long rt__shield_data(long nr, const long a[6])
{
	int fd = (int)a[0];
	struct rt_ofd *o = rt_fd_get(fd);
	struct rt_node *n;
	bool write = false, positional = false, vec = false, io = false;
	struct iovec *iov = NULL, one, local[64];
	uint64_t off = 0, len;
	int cnt = 1;
	long r;

	if (rt_fd_kind(fd) != RT_FD_FILE)
		return rt__raw6(nr, a);
	rt__child_check();
	if (!rt__ofd_tryref(o))
		return rt__raw6(nr, a);
	n = o->node;
	switch (nr) {
	case SYS_write:
		write = true;
		/* fall through */
	case SYS_read:
		len = (uint64_t)a[2];
		break;
	case SYS_pwrite64:
		write = true;
		/* fall through */
	case SYS_pread64:
		len = (uint64_t)a[2];
		positional = true;
		off = (uint64_t)a[3];
		break;
	case SYS_writev:
		write = true;
		/* fall through */
	case SYS_readv:
		vec = true;
		break;
	case SYS_pwritev:
	case SYS_pwritev2:
		write = true;
		/* fall through */
	case SYS_preadv:
	case SYS_preadv2:
		vec = true;
		positional = a[3] != -1 || nr == SYS_preadv || nr == SYS_pwritev;
		off = (uint64_t)a[3];
		break;
	default:
		r = rt__raw6(nr, a);
		goto out;
	}
	io = true;
	if (vec) {
		cnt = (int)a[2];
		if (cnt < 0 || cnt > IOV_MAX) {
			r = -EINVAL;
			goto out;
		}
		/* The program's iovec array, copied without trusting the pointer
		 * (a bad one is EFAULT, as the kernel says). */
		iov = cnt <= (int)(sizeof(local) / sizeof(local[0])) ? local : iov_map(cnt);
		if (!iov) {
			r = -ENOMEM;
			goto out;
		}
		r = rt__copy_in((void *)iov, (const void *)a[1], (size_t)cnt * sizeof(*iov));
		if (r < 0)
			goto out;
		len = iov_total(iov, cnt);
	} else {
		one.iov_base = (void *)a[1];
		one.iov_len = (size_t)len;
		iov = &one;
	}
	if (!n->vol) { /* an injected file: plaintext in memory only */
		r = rt__raw6(nr, a);
		goto out;
	}
	if (rt__node_dead(n)) {
		r = -EIO;
		goto out;
	}
	if (len == 0 || (!write && (r = fast_read(n, fd, nr, a, positional)) != -EAGAIN)) {
		if (len == 0)
			r = rt__raw6(nr, a);
		goto out;
	}
	if (write && (atomic_load(&atomic_load(&n->seg)->flags) & RT_FS_FAILED)) {
		r = -EIO;
		goto out;
	}
	if (write && !atomic_load(&n->wrote)) {
		atomic_store(&n->wrote, true);
		atomic_store(&n->vol->wrote, true);
	}
	if (write && o->append) {
		r = append(n, fd, nr, a, len);
		goto out_write;
	}
	if (!positional) {
		r = rt__raw(SYS_lseek, fd, 0, SEEK_CUR);
		if (r < 0)
			goto out;
		off = (uint64_t)r;
	}
	/* A large write of whole chunks at the end of the file: sealed here
	 * (wstream.c); what it leaves goes the usual way. */
	if (write && (nr == SYS_write || nr == SYS_pwrite64) &&
	    (r = rt__wstream_write(n, fd, iov[0].iov_base, len, off)) > 0) {
		if ((uint64_t)r < len) {
			struct iovec rest = { (char *)iov[0].iov_base + r, len - (uint64_t)r };
			long k = windows(n, fd, true, &rest, 1, off + (uint64_t)r);

			r += k > 0 ? k : 0;
		}
		if (!positional)
			rt__raw(SYS_lseek, fd, (long)(off + (uint64_t)r), SEEK_SET);
	} else if (!write && cnt == 1 && !(nr == SYS_preadv2 && a[5]) &&
	    (r = rt__stream_read(n, fd, iov[0].iov_base, len, off)) != -EAGAIN) {
		if (r > 0 && !positional)
			rt__raw(SYS_lseek, fd, (long)(off + (uint64_t)r), SEEK_SET);
	} else if (len <= WINDOW) {
		r = one_call(n, nr, a, off, len, write);
	} else {
		r = windows(n, fd, write, iov, cnt, off);
		if (r > 0 && !positional)
			rt__raw(SYS_lseek, fd, (long)(off + (uint64_t)r), SEEK_SET);
	}
out_write:
	if (write && r > 0)
		throttle(n);
	/* O_DSYNC / O_SYNC, RWF_DSYNC / RWF_SYNC: the write returns once durable,
	 * as after an fdatasync (the kernel's answer when that fails: EIO). */
	if (write && r > 0 &&
	    (o->dsync || (nr == SYS_pwritev2 && (a[5] & RT_RWF_SYNCING))) &&
	    rt__ofd_sync(o) < 0)
		r = -EIO;
out:
	if (io && !write && len > 0 && r >= 0 && n->vol)
		file_accessed(n, fd);
	if (iov && iov != local && iov != &one)
		rt__raw(SYS_munmap, iov, (size_t)cnt * sizeof(*iov));
	rt__ofd_unref_lockfree(o);
	return r;
}

/* ---- sendfile, splice, copy_file_range ------------------------------------
 * From a protected file: its window is pinned and filled, then the call is
 * native. Into one: through a buffer, with the write path above (these calls
 * are rare into files; cp uses copy_file_range, which gets the same). */
static long copy_through(int out, int in, long *in_off, uint64_t count, long *out_off)
{
	static RT_TLS char *buf;
	uint64_t done = 0;

	if (!buf) {
		buf = mmap(NULL, 256 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
		if (buf == MAP_FAILED) {
			buf = NULL;
			return -ENOMEM;
		}
	}
	while (done < count) {
		uint64_t want = count - done < 256 * 1024 ? count - done : 256 * 1024;
		long a[6] = { in, (long)buf, (long)want, in_off ? *in_off : 0 };
		long r, w = 0;

		r = rt__shield_data(in_off ? SYS_pread64 : SYS_read, a);
		if (r <= 0)
			return done ? (long)done : r;
		while (w < r) {
			long b[6] = { out, (long)(buf + w), r - w, out_off ? *out_off : 0 };
			long k = rt__shield_data(out_off ? SYS_pwrite64 : SYS_write, b);

			if (k <= 0) {
				kiln_wipe(buf, (size_t)r);
				return done ? (long)done : k;
			}
			w += k;
			if (out_off)
				*out_off += k;
		}
		kiln_wipe(buf, (size_t)r);
		if (in_off)
			*in_off += r;
		done += (uint64_t)r;
		if ((uint64_t)r < want)
			break;
	}
	return (long)done;
}

/* splice from a pipe into a protected file: what the pipe holds, up to count
 * bytes, through the write path (the kernel's answers for what splice cannot
 * do: EINVAL when in is no pipe, ESPIPE for an offset on it; EAGAIN for
 * SPLICE_F_NONBLOCK on an empty pipe). off_dst: the program's pointer or
 * NULL (read and written with the fault-safe copies). */
static long splice_into(int out, int in, const long *uin_off, long *uout_off, uint64_t count,
			unsigned flags)
{
	struct stat st;
	long off, r;
	int avail = 0;

	if (rt__raw(SYS_fstat, in, &st) < 0 || !S_ISFIFO(st.st_mode))
		return -EINVAL;
	if (uin_off)
		return -ESPIPE;
	if (count == 0)
		return 0;
	if ((flags & SPLICE_F_NONBLOCK) && rt__raw(SYS_ioctl, in, FIONREAD, &avail) == 0 &&
	    avail == 0)
		return -EAGAIN;
	if (!uout_off)
		return copy_through(out, in, NULL, count, NULL);
	if (rt__copy_in(&off, uout_off, sizeof(off)))
		return -EFAULT;
	if (off < 0)
		return -EINVAL;
	r = copy_through(out, in, NULL, count, &off);
	if (r > 0 && rt__copy_out(uout_off, &off, sizeof(off)))
		return -EFAULT;
	return r;
}

long rt__shield_transfer(long nr, const long a[6])
{
	int in, out;
	long *in_off, *out_off = NULL;
	uint64_t count;
	bool in_p, out_p;

	switch (nr) {
	case SYS_sendfile:
		out = (int)a[0];
		in = (int)a[1];
		in_off = (long *)a[2];
		count = (uint64_t)a[3];
		break;
	case SYS_splice:
	case SYS_copy_file_range:
		in = (int)a[0];
		in_off = (long *)a[1];
		out = (int)a[2];
		out_off = (long *)a[3];
		count = (uint64_t)a[4];
		break;
	default:
		return rt__raw6(nr, a);
	}
	in_p = rt_fd_kind(in) == RT_FD_FILE && ((struct rt_ofd *)rt_fd_get(in))->node->vol;
	out_p = rt_fd_kind(out) == RT_FD_FILE && ((struct rt_ofd *)rt_fd_get(out))->node->vol;
	if (!in_p && !out_p)
		return rt__raw6(nr, a);
	if (nr == SYS_splice && out_p)
		return in_p ? -EINVAL : splice_into(out, in, in_off, out_off, count, (unsigned)a[5]);
	if (out_p || nr == SYS_copy_file_range)
		return copy_through(out, in, in_off, count, out_off);
	/* From a protected file to a socket or pipe: native, window by window. */
	{
		struct rt_ofd *o = rt_fd_get(in);
		struct rt_node *n = o->node;
		uint64_t done = 0, cs = n->vol->chunk;
		long r = 0;

		if (!rt__ofd_tryref(o))
			return -EBADF;
		if (rt__node_dead(n)) {
			rt__ofd_unref_lockfree(o);
			return -EIO;
		}
		while (done < count) {
			uint64_t off, len = count - done, c0, c1;
			long b[6];
			int ret;

			if (in_off) {
				off = (uint64_t)*in_off;
			} else {
				r = rt__raw(SYS_lseek, in, 0, SEEK_CUR);
				if (r < 0)
					break;
				off = (uint64_t)r;
			}
			if (len > WINDOW - off % cs)
				len = WINDOW - off % cs;
			c0 = off / cs;
			c1 = (off + len - 1) / cs;
			ret = prepare(n, c0, &c1, false);
			if (ret < 0) {
				r = ret;
				break;
			}
			memcpy(b, a, sizeof(b));
			if (nr == SYS_sendfile)
				b[3] = (long)len;
			else
				b[4] = (long)len;
			r = rt__raw6(nr, b);
			if (ret == 0)
				rt__ck_unpin(atomic_load(&n->seg), c0, c1);
			if (r <= 0)
				break;
			done += (uint64_t)r;
			if ((uint64_t)r < len)
				break;
		}
		if (done || r >= 0)
			file_accessed(n, in);
		rt__ofd_unref_lockfree(o);
		return done ? (long)done : r;
	}
}
