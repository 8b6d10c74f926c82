/* The kiln workload measurement: SHA-384 over a canonical manifest of the
 * executable and every other file mapped executable in the process (see
 * docs/measurement.md for the exact text). Which mappings are files, which
 * are refused, and the checks that the mapped pages are the files' own are in
 * wm_maps.c.
 *
 * This code runs inside arbitrary processes (the libkiln constructor, the
 * measure preload) and inside kiln-las for its peers, so it uses no stdio
 * streams, keeps errno-style returns, opens every file O_CLOEXEC and allocates
 * only a few buffers that it frees before returning. */
#include "evidence/internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"

#define WM_MAPS_MAX (16u << 20)   /* a /proc/PID/maps larger than this is refused */
#define WM_MAX_FILES 4096         /* distinct executable mappings we are willing to hash */
#define WM_HASH_BUF (64u << 10)
#define WM_DELETED " (deleted)"

struct wm_file {
	struct ev__map map;     /* map.name points into the maps buffer */
	uint8_t digest[KC_SHA256_SIZE];
};

static int hash_fd(int fd, uint8_t *buf, uint8_t digest[static KC_SHA256_SIZE]);

struct wm_cache_entry {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	uint8_t digest[KC_SHA256_SIZE];
};

struct ev_wm_cache {
	pthread_mutex_t lock;
	struct wm_cache_entry *entries;
	size_t n, max, next;          /* next: slot replaced when full (FIFO) */
	uint64_t hits, misses;
};

struct ev_wm_cache *ev_wm_cache_new(size_t max_entries)
{
	struct ev_wm_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->max = max_entries ? max_entries : 4096;
	c->entries = calloc(c->max, sizeof(*c->entries));
	if (!c->entries) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void ev_wm_cache_free(struct ev_wm_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c->entries);
	free(c);
}

void ev_wm_cache_stats(struct ev_wm_cache *c, uint64_t *hits, uint64_t *misses)
{
	pthread_mutex_lock(&c->lock);
	*hits = c->hits;
	*misses = c->misses;
	pthread_mutex_unlock(&c->lock);
}

/* Only filesystems where any change of content moves ctime, as enforced by
 * the kernel itself; FUSE and network filesystems report what they like. */
static bool cacheable_fs(int fd)
{
	static const unsigned long ok[] = { EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC,
		BTRFS_SUPER_MAGIC, TMPFS_MAGIC, OVERLAYFS_SUPER_MAGIC, SQUASHFS_MAGIC,
		F2FS_SUPER_MAGIC };
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return false;
	for (size_t i = 0; i < KILN_ARRAY_SIZE(ok); i++)
		if ((unsigned long)sf.f_type == ok[i])
			return true;
	return false;
}

static bool same_key(const struct wm_cache_entry *e, const struct stat *st)
{
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static bool cache_get(struct ev_wm_cache *c, const struct stat *st, uint8_t *digest)
{
	bool hit = false;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n && !hit; i++) {
		if (same_key(&c->entries[i], st)) {
			memcpy(digest, c->entries[i].digest, KC_SHA256_SIZE);
			hit = true;
		}
	}
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void cache_put(struct ev_wm_cache *c, const struct stat *st, const uint8_t *digest)
{
	struct wm_cache_entry *e;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++) {
		/* The same inode with new times or size: replace it in place. */
		if (c->entries[i].dev == st->st_dev && c->entries[i].ino == st->st_ino) {
			e = &c->entries[i];
			goto fill;
		}
	}
	if (c->n < c->max) {
		e = &c->entries[c->n++];
	} else {
		e = &c->entries[c->next];
		c->next = (c->next + 1) % c->max;
	}
fill:
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->ctime = st->st_ctim;
	memcpy(e->digest, digest, KC_SHA256_SIZE);
	pthread_mutex_unlock(&c->lock);
}

/* Timestamps come from a coarse clock: a write in the same tick as our read
 * would leave mtime/ctime unchanged ("racy git"). Files changed less than this
 * long ago are therefore hashed every time and not cached. */
#define WM_CACHE_MIN_AGE_S 2

static bool old_enough(const struct stat *st)
{
	struct timespec now;

	if (clock_gettime(CLOCK_REALTIME, &now) < 0)
		return false;
	return st->st_ctim.tv_sec + WM_CACHE_MIN_AGE_S < now.tv_sec &&
	       st->st_mtim.tv_sec + WM_CACHE_MIN_AGE_S < now.tv_sec;
}

/* Digest of an open file, through the cache when one is given. The key is
 * taken before hashing and checked again after: a file changed while we read
 * it is hashed but not cached. */
static int digest_fd(int fd, struct ev_wm_cache *cache, uint8_t *buf,
		     uint8_t digest[static KC_SHA256_SIZE])
{
	struct stat before, after;
	struct wm_cache_entry key;
	int ret;

	if (!cache || fstat(fd, &before) < 0 || !S_ISREG(before.st_mode) || !cacheable_fs(fd))
		return hash_fd(fd, buf, digest);
	if (cache_get(cache, &before, digest))
		return 0;
	ret = hash_fd(fd, buf, digest);
	key = (struct wm_cache_entry){ .dev = before.st_dev, .ino = before.st_ino,
				       .size = before.st_size, .mtime = before.st_mtim,
				       .ctime = before.st_ctim };
	if (ret == 0 && old_enough(&before) && fstat(fd, &after) == 0 && same_key(&key, &after))
		cache_put(cache, &before, digest);
	return ret;
}

static int read_all_fd(int fd, size_t max_size, char **out, size_t *out_size)
{
	size_t cap = 16384, size = 0;
	char *buf = malloc(cap), *tmp;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (size + 1 >= cap) {
			if (cap >= max_size) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			tmp = realloc(buf, cap);
			if (!tmp) {
				free(buf);
				return -ENOMEM;
			}
			buf = tmp;
		}
		n = read(fd, buf + size, cap - size - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int ret = -errno;

			free(buf);
			return ret;
		}
		if (n == 0)
			break;
		size += (size_t)n;
	}
	buf[size] = '\0';
	*out = buf;
	*out_size = size;
	return 0;
}

/* SHA-256 of everything readable from fd. buf is a WM_HASH_BUF scratch buffer. */
static int hash_fd(int fd, uint8_t *buf, uint8_t digest[static KC_SHA256_SIZE])
{
	kc_hash_t *h = kc_hash_new("SHA256");
	size_t out_size = 0;
	ssize_t n;
	int ret = 0;

	if (!h)
		return -KILN_ECRYPTO;
	for (;;) {
		n = read(fd, buf, WM_HASH_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		ret = kc_hash_update(h, buf, (size_t)n);
		if (ret < 0)
			goto out;
	}
	ret = kc_hash_final(h, digest, &out_size);
out:
	kc_hash_free(h);
	return ret;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Open the file behind one mapping. /proc/PID/map_files gives the very file
 * that is mapped (immune to path replacement) but needs CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE; without it we open the path and check that the inode
 * is the mapped one (the device is compared only when it matches, because on
 * overlayfs maps shows the underlying device). O_NONBLOCK: a FIFO planted at
 * the path must not block us; only a regular file is hashed (a device could
 * be read forever). */
static int open_mapped(const char *proc, const struct ev__map *m, struct kiln_err *err)
{
	char link[128];
	struct stat st;
	int fd, ret;

	snprintf(link, sizeof(link), "%s/map_files/%lx-%lx", proc, m->start, m->end);
	fd = open(link, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		fd = open(m->name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0)
			return kiln_err_set(err, -errno, "cannot open mapped file %s: %s",
					    m->name, kiln_strerror(errno));
		if (fstat(fd, &st) < 0)
			goto stat_failed;
		if ((unsigned long)st.st_ino != m->ino ||
		    (major(st.st_dev) == m->dev_major && minor(st.st_dev) != m->dev_minor)) {
			close(fd);
			return kiln_err_set(err, -ESTALE,
					    "mapped file %s was replaced after it was mapped "
					    "(inode %lu mapped, %lu on disk)",
					    m->name, m->ino, (unsigned long)st.st_ino);
		}
	} else if (fstat(fd, &st) < 0) {
		goto stat_failed;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ev__map_refuse(m, "not a regular file", err);
	}
	return fd;
stat_failed:
	ret = -errno;
	close(fd);
	return kiln_err_set(err, ret, "cannot stat mapped file %s", m->name);
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, KC_SHA256_SIZE);
}

static bool in_set(const uint8_t d[static KC_SHA256_SIZE], const uint8_t (*set)[32], size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(d, set[i], KC_SHA256_SIZE) == 0)
			return true;
	return false;
}

/* out = SHA-384 of the manifest of exe_digest and the sorted libs (duplicates
 * dropped); *manifest_out (may be NULL) receives the text. what names the
 * measured thing in errors. */
static int build_manifest(const uint8_t exe_digest[static KC_SHA256_SIZE],
			  const uint8_t (*libs)[KC_SHA256_SIZE], size_t n_libs,
			  uint8_t out[static EV_WM_SIZE], char **manifest_out, const char *what,
			  struct kiln_err *err)
{
	static const char header[] = "kiln-manifest-v1\nruntime kiln-" KILN_VERSION "\n";
	char *manifest = malloc(sizeof(header) + 70 + n_libs * 70);
	size_t pos;
	int ret;

	if (!manifest)
		return kiln_err_set(err, -ENOMEM, "out of memory measuring %s", what);
	memcpy(manifest, header, sizeof(header) - 1);
	pos = sizeof(header) - 1;
	memcpy(manifest + pos, "exe ", 4);
	kiln_hex_encode(exe_digest, KC_SHA256_SIZE, manifest + pos + 4);
	pos += 4 + 2 * KC_SHA256_SIZE;
	manifest[pos++] = '\n';
	for (size_t i = 0; i < n_libs; i++) {
		if (i > 0 && memcmp(libs[i], libs[i - 1], KC_SHA256_SIZE) == 0)
			continue;
		memcpy(manifest + pos, "lib ", 4);
		kiln_hex_encode(libs[i], KC_SHA256_SIZE, manifest + pos + 4);
		pos += 4 + 2 * KC_SHA256_SIZE;
		manifest[pos++] = '\n';
	}
	manifest[pos] = '\0';
	ret = kc_sha384(manifest, pos, out);
	if (ret < 0) {
		free(manifest);
		return kiln_err_set(err, ret, "SHA-384 failed");
	}
	if (manifest_out)
		*manifest_out = manifest;
	else
		free(manifest);
	return 0;
}

/* Read /proc/PID/maps, refuse what cannot be measured, check that every
 * executable page is still its file's, and collect the files to hash (one
 * entry per distinct file; the measuring library's own file is marked in
 * *self_index when pid is 0). */
static int collect_files(const char *proc, pid_t pid, char **maps_out, struct wm_file *files,
			 size_t *n_out, size_t *self_index, struct kiln_err *err)
{
	/* Any address inside the object that holds this code. */
	const uintptr_t self_addr = (uintptr_t)&ev_workload_measure_ex;
	char path[48], *line, *next;
	size_t maps_size = 0, n_files = 0;
	int fd, pagemap = -1, ret;

	*self_index = SIZE_MAX;
	snprintf(path, sizeof(path), "%s/maps", proc);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kiln_err_set(err, -errno, "cannot open %s: %s", path, kiln_strerror(errno));
	ret = read_all_fd(fd, WM_MAPS_MAX, maps_out, &maps_size);
	close(fd);
	if (ret < 0)
		return kiln_err_set(err, ret, "cannot read %s", path);
	snprintf(path, sizeof(path), "%s/pagemap", proc);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	if (pagemap < 0)
		return kiln_err_set(err, -errno, "cannot open %s: %s", path, kiln_strerror(errno));

	for (line = *maps_out; line && *line; line = next) {
		struct ev__map m;
		bool seen = false;
		int kind;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		kind = ev__map_parse(line, &m, err);
		if (kind < 0) {
			ret = kind;
			goto out;
		}
		if (kind == EV__MAP_DATA)
			continue;
		if (kind == EV__MAP_REFUSED) {
			ret = ev__map_refuse(&m, m.why, err);
			goto out;
		}
		/* [vsyscall] is outside the process's page tables (emulated or
		 * execute-only): nothing there can be written. [vdso] can be
		 * (mprotect, /proc/PID/mem) and is checked like a file. */
		if (strcmp(m.name, "[vsyscall]") != 0) {
			ret = ev__map_check_pages(pagemap, &m, err);
			if (ret < 0)
				goto out;
		}
		if (kind == EV__MAP_KERNEL)
			continue;
		/* One file usually has one r-x mapping: hash each file once. Two
		 * files can show the same path (mount namespaces, a file renamed
		 * over), so the inode is part of the key. */
		for (size_t i = 0; i < n_files && !seen; i++) {
			const struct ev__map *o = &files[i].map;

			seen = o->ino == m.ino && o->dev_major == m.dev_major &&
			       o->dev_minor == m.dev_minor && strcmp(o->name, m.name) == 0;
			if (seen && pid == 0 && self_addr >= m.start && self_addr < m.end)
				*self_index = i;
		}
		if (seen)
			continue;
		if (n_files == WM_MAX_FILES) {
			ret = kiln_err_set(err, -E2BIG, "%s maps more than %u executable files",
					   proc, WM_MAX_FILES);
			goto out;
		}
		if (pid == 0 && self_addr >= m.start && self_addr < m.end)
			*self_index = n_files;
		files[n_files++].map = m;
	}
	*n_out = n_files;
	ret = 0;
out:
	close(pagemap);
	return ret;
}

int ev_workload_measure_cached(pid_t pid, const uint8_t (*exclude)[32], size_t n_exclude,
			       struct ev_wm_cache *cache, uint8_t out[static EV_WM_SIZE],
			       char **manifest_out, struct kiln_err *err)
{
	char proc[32], exe_link[48], link_path[4096];
	char *maps = NULL;
	struct wm_file *files = NULL;
	uint8_t *buf = NULL, exe_digest[KC_SHA256_SIZE];
	uint8_t (*libs)[KC_SHA256_SIZE] = NULL;
	size_t n_files = 0, n_libs = 0, self_index = SIZE_MAX;
	ssize_t n;
	int fd = -1, ret;

	if (manifest_out)
		*manifest_out = NULL;
	if (pid < 0)
		return kiln_err_set(err, -EINVAL, "invalid pid %d", (int)pid);
	if (pid == 0)
		snprintf(proc, sizeof(proc), "/proc/self");
	else
		snprintf(proc, sizeof(proc), "/proc/%d", (int)pid);

	buf = malloc(WM_HASH_BUF);
	files = calloc(WM_MAX_FILES, sizeof(*files));
	if (!buf || !files) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory measuring %s", proc);
		goto out;
	}
	/* A tracer can rewrite code after we looked at it: refused before and
	 * after (the second look covers one that attached meanwhile). */
	ret = ev__check_tracer(proc, err);
	if (ret < 0)
		goto out;

	/* The executable, through the magic link: the file the kernel executed. */
	snprintf(exe_link, sizeof(exe_link), "%s/exe", proc);
	n = readlink(exe_link, link_path, sizeof(link_path) - 1);
	if (n < 0) {
		ret = kiln_err_set(err, -errno, "cannot read %s: %s", exe_link,
				   kiln_strerror(errno));
		goto out;
	}
	link_path[n] = '\0';
	if (ends_with(link_path, WM_DELETED)) {
		ret = kiln_err_set(err, -KILN_EUNMEASURED, "executable %s is deleted (removed or "
				   "replaced after it started): it cannot be measured: refused "
				   "(restart the program if it was upgraded)", link_path);
		goto out;
	}
	fd = open(exe_link, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = kiln_err_set(err, -errno, "cannot open executable %s of %s: %s", link_path,
				   proc, kiln_strerror(errno));
		goto out;
	}
	ret = digest_fd(fd, cache, buf, exe_digest);
	close(fd);
	fd = -1;
	if (ret < 0) {
		kiln_err_set(err, ret, "cannot read executable %s", link_path);
		goto out;
	}

	ret = collect_files(proc, pid, &maps, files, &n_files, &self_index, err);
	if (ret < 0)
		goto out;
	libs = calloc(n_files ? n_files : 1, sizeof(*libs));
	if (!libs) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory measuring %s", proc);
		goto out;
	}
	for (size_t i = 0; i < n_files; i++) {
		/* The measuring library itself stands as the `runtime` line; but when
		 * the code is linked into the executable the exe line covers it. */
		if (i == self_index)
			continue;
		fd = open_mapped(proc, &files[i].map, err);
		if (fd < 0) {
			ret = fd;
			goto out;
		}
		ret = digest_fd(fd, cache, buf, files[i].digest);
		close(fd);
		fd = -1;
		if (ret < 0) {
			kiln_err_set(err, ret, "cannot read mapped file %s", files[i].map.name);
			goto out;
		}
		if (memcmp(files[i].digest, exe_digest, KC_SHA256_SIZE) == 0 ||
		    in_set(files[i].digest, exclude, n_exclude))
			continue;
		memcpy(libs[n_libs++], files[i].digest, KC_SHA256_SIZE);
	}
	/* Byte order of digests is the order of their lowercase hex. */
	qsort(libs, n_libs, sizeof(*libs), cmp_digest);

	ret = ev__check_tracer(proc, err);
	if (ret < 0)
		goto out;
	ret = build_manifest(exe_digest, libs, n_libs, out, manifest_out, proc, err);
	if (ret < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(libs);
	free(files);
	free(maps);
	free(buf);
	return ret;
}

int ev_workload_measure_ex(pid_t pid, const uint8_t (*exclude)[32], size_t n_exclude,
			   uint8_t out[static EV_WM_SIZE], char **manifest_out,
			   struct kiln_err *err)
{
	return ev_workload_measure_cached(pid, exclude, n_exclude, NULL, out, manifest_out, err);
}

int ev_workload_measure_pid(pid_t pid, uint8_t out[static EV_WM_SIZE], char **manifest_out,
			    struct kiln_err *err)
{
	return ev_workload_measure_cached(pid, NULL, 0, NULL, out, manifest_out, err);
}

int ev_file_sha256_fd(int fd, struct ev_wm_cache *cache, uint8_t out[static KC_SHA256_SIZE])
{
	uint8_t *buf = malloc(WM_HASH_BUF);
	int ret;

	if (!buf)
		return -ENOMEM;
	if (lseek(fd, 0, SEEK_SET) < 0)
		ret = -errno;
	else
		ret = digest_fd(fd, cache, buf, out);
	free(buf);
	return ret;
}

int ev_workload_measure_static_fd(int fd, struct ev_wm_cache *cache,
				  uint8_t out[static EV_WM_SIZE], char **manifest_out,
				  uint8_t exe_sha256[static KC_SHA256_SIZE], struct kiln_err *err)
{
	struct stat st;
	int ret;

	if (manifest_out)
		*manifest_out = NULL;
	if (fstat(fd, &st) < 0)
		return kiln_err_set(err, -errno, "cannot stat the program: %s",
				    kiln_strerror(errno));
	if (!S_ISREG(st.st_mode))
		return kiln_err_set(err, -KILN_EFORMAT, "the program is not a regular file");
	if (ev_elf_is_static_fd(fd) != 1)
		return kiln_err_set(err, -KILN_EFORMAT, "the program is not a statically linked "
				    "64-bit ELF executable (it has a program interpreter, or is no "
				    "ELF)");
	ret = ev_file_sha256_fd(fd, cache, exe_sha256);
	if (ret < 0)
		return kiln_err_set(err, ret, "cannot read the program: %s", kiln_strerror(ret));
	/* A static process maps only its executable (and the kernel's [vdso],
	 * which is no file): no lib lines. */
	return build_manifest(exe_sha256, NULL, 0, out, manifest_out, "the program", err);
}
