/* kiln fs on a volume in use: while a workload runs, its volume server owns the
 * volume (and its lock), and holds changes that only it knows (names created,
 * data not yet committed). `kiln fs ls` and `kiln fs cat` then ask the server,
 * with the same key proof as the workload's processes (src/runtime/shield/);
 * the other subcommands need the volume alone and say so. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/fs_live.h"
#include "runtime/shield/proto.h"
#include "runtime/shield/server.h"

struct fs_live {
	int sock;
	uint8_t reply[RT_MSG_MAX];
};

int fs_live_connect(const char *dir, const uint8_t key[static 32], struct fs_live **out)
{
	struct rt_srv_config *cfg = calloc(1, sizeof(*cfg));
	struct fs_live *l = calloc(1, sizeof(*l));
	struct rt_auth_keys k;
	struct kiln_err err = { 0 };
	int vfd = -1, ret;

	*out = NULL;
	if (!cfg || !l) {
		ret = -ENOMEM;
		goto out;
	}
	snprintf(cfg->dir, sizeof(cfg->dir), "%s", dir);
	ret = rt__auth_derive(key, &k);
	if (ret)
		goto out;
	ret = rt__srv_connect(cfg, &k, NULL, (uint32_t)getpid(), &vfd, &err);
	rt__auth_wipe(&k);
	if (ret < 0) {
		if (ret != -ENOENT)
			cli_error("%s", kiln_err_msg(&err, ret));
		goto out;
	}
	l->sock = ret;
	close(vfd);
	*out = l;
	l = NULL;
	ret = 0;
out:
	free(l);
	free(cfg);
	return ret;
}

void fs_live_close(struct fs_live *l)
{
	if (!l)
		return;
	close(l->sock);
	free(l);
}

static int call(struct fs_live *l, const struct rt_msg *m, const uint8_t **body, size_t *size,
		int fds[2], const char *what)
{
	char errmsg[RT_ERRMSG_MAX] = "";
	int ret = rt__request(l->sock, m, l->reply, body, size, fds, errmsg);

	if (ret < 0)
		cli_error("%s: %s", what, errmsg[0] ? errmsg : kiln_strerror(ret));
	return ret;
}

static const char *kind_name(uint32_t k)
{
	return k == 3 ? "plain" : k == 2 ? "authenticated" : "encrypted";
}

static int stat_of(struct fs_live *l, const char *path, struct rt_stat_reply *r)
{
	struct rt_msg m = { .op = RT_OP_STAT, .path = path };
	const uint8_t *body;
	size_t size;
	int ret = call(l, &m, &body, &size, NULL, path[0] ? path : "/");

	if (ret == 0 && size != sizeof(*r))
		ret = -EPROTO;
	if (ret == 0)
		memcpy(r, body, sizeof(*r));
	return ret;
}

static void print_entry(const char *path, const struct rt_stat_reply *r)
{
	bool dir = S_ISDIR(r->mode);

	printf("%c%04o %12llu %-13s %s%s\n", dir ? 'd' : '-', (unsigned)(r->mode & 07777),
	       (unsigned long long)r->size, kind_name(r->kind), path, dir ? "/" : "");
}

static int ls_dir(struct fs_live *l, const char *dir, bool recursive)
{
	uint64_t cookie = 0;
	int ret = 0;

	do {
		struct rt_msg m = { .op = RT_OP_READDIR, .a = cookie, .path = dir };
		const uint8_t *body;
		size_t size, pos = 8;
		uint8_t *copy;

		ret = call(l, &m, &body, &size, NULL, dir[0] ? dir : "/");
		if (ret)
			return ret;
		if (size < 8)
			return -EPROTO;
		copy = malloc(size); /* the reply buffer is reused below */
		if (!copy)
			return -ENOMEM;
		memcpy(copy, body, size);
		memcpy(&cookie, copy, 8);
		while (pos + 10 <= size && !ret) {
			const char *name = (const char *)copy + pos + 9;
			char path[RT_MSG_PATH_MAX + 256];
			struct rt_stat_reply r;
			size_t n = strnlen(name, size - pos - 9);

			if (n == size - pos - 9) {
				ret = -EPROTO;
				break;
			}
			pos += 9 + n + 1;
			snprintf(path, sizeof(path), "%s%s%s", dir, dir[0] ? "/" : "", name);
			ret = stat_of(l, path, &r);
			if (ret == -ENOENT) { /* gone since the listing */
				ret = 0;
				continue;
			}
			if (ret)
				break;
			print_entry(path, &r);
			if (S_ISDIR(r.mode) && recursive)
				ret = ls_dir(l, path, true);
		}
		free(copy);
	} while (cookie && !ret);
	return ret;
}

int fs_live_ls(struct fs_live *l, const char *dir, bool recursive)
{
	struct rt_stat_reply r;
	int ret = stat_of(l, dir, &r);

	if (ret)
		return ret;
	if (!S_ISDIR(r.mode)) {
		print_entry(dir, &r);
		return 0;
	}
	return ls_dir(l, dir, recursive);
}

/* The file's plaintext as the workload sees it now: chunks pinned and filled
 * by the server (decrypted and verified), read from its memfd. */
int fs_live_cat(struct fs_live *l, const char *path)
{
	struct rt_msg m = { .op = RT_OP_OPEN, .flags = O_RDONLY, .path = path };
	struct rt_stat_reply r;
	struct rt_fseg *seg = MAP_FAILED;
	const uint8_t *body;
	size_t size, seg_bytes = 0;
	uint8_t *buf = NULL;
	struct stat st;
	int fds[2] = { -1, -1 }, ret;

	ret = call(l, &m, &body, &size, fds, path);
	if (ret)
		return ret;
	if (size != sizeof(r) || fds[0] < 0 || fds[1] < 0) {
		ret = -EPROTO;
		goto out;
	}
	memcpy(&r, body, sizeof(r));
	if (fstat(fds[1], &st) < 0 || (size_t)st.st_size < RT_FSEG_HDR) {
		ret = -EPROTO;
		goto out;
	}
	seg_bytes = (size_t)st.st_size;
	seg = mmap(NULL, seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
	buf = malloc(1 << 20);
	if (seg == MAP_FAILED || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t off = 0;;) {
		uint64_t cs = seg->chunk_size, words = (seg_bytes - RT_FSEG_HDR) / 4;
		uint64_t c0 = off / cs, c1 = (off + (1 << 20) - 1) / cs, lo, hi;
		ssize_t n;

		if (fstat(fds[0], &st) < 0 || off >= (uint64_t)st.st_size)
			break;
		if (c1 >= words)
			c1 = words - 1;
		if (c0 > c1)
			break;
		if (rt__ck_pin(seg, c0, c1, &lo, &hi)) {
			struct rt_msg f = { .op = RT_OP_FILL, .id = r.id, .a = lo, .b = hi - lo + 1 };

			ret = call(l, &f, &body, &size, NULL, path);
			if (!ret && rt__ck_missing(seg, c0, c1, &lo, &hi))
				ret = -EIO;
		}
		n = ret ? ret : pread(fds[0], buf, (c1 - c0 + 1) * cs, (off_t)(c0 * cs));
		rt__ck_unpin(seg, c0, c1);
		if (n < 0) {
			ret = ret ? ret : -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (kiln_write_all(STDOUT_FILENO, buf, (size_t)n) != 0) {
			cli_error("stdout: %s", strerror(errno));
			ret = -EIO;
			goto out;
		}
		off += (uint64_t)n;
	}
	ret = 0;
out:
	if (buf)
		kiln_free_secret(buf, 1 << 20);
	if (seg != MAP_FAILED)
		munmap(seg, seg_bytes);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}
