/* Fuzz the journals' recovery (pf__journal_recover, run when a file is
 * opened after a crash): the journals "<id>.j"/"<id>.k" are files the host
 * controls.
 *
 * At start the target makes three real crashes of a volume (in /dev/shm,
 * chunk 512) holding a committed file A of 6 chunks. Undo image: a child
 * process overwrites chunks 0, 2 and 5, writes them back through the real
 * write path (the journal of the committed slots synced first) and dies
 * without committing: the file must read A. Redo image (format 3): a child
 * makes the same overwrites and commits them with a namespace change (fsync:
 * the held slots go into the journal as redo entries with an end record, the
 * metadata is written, then the slots in place), and the in-place writes are
 * lost (the backing file as before): the file must read B. Record image: the
 * same, but after a checkpoint, so the commit is a one-phase commit log
 * record, which counts only when the journal vouches for it; the trusted
 * version is the record's (it was acknowledged), so a journal that no longer
 * vouches makes the open fail as a rollback, never read A. Those storage
 * directories and the live journals they left are the starting points of
 * every run.
 *
 * An input is one flag byte and a delta XORed onto the live journal (its
 * length is the journal's length: shorter cuts it, longer appends the delta's
 * own bytes), so an input of zeros is the real journal and the fuzzer mutates
 * from there. Flags: 1 rebinds the header to the committed state, 2 recomputes
 * every entry's check (so mutated entries reach the checks after it), 4 with 1
 * writes a format 1 header (entries unbound), 8 takes the redo image, 16 the
 * record image.
 *
 * Each run restores the storage directory, writes the journal, opens the
 * volume and the file and reads it. The property: the file reads back exactly
 * as committed (A, or B for the redo and record images), or opening/reading
 * it fails with a message; the real journal (a delta of zeros, no fix-ups)
 * reads back as committed. A journal never makes other bytes readable, and
 * nothing crashes.
 *
 * Seeds: KILN_FUZZ_SEEDS=DIR fuzz_pf_journal -runs=0 writes the seed corpus
 * (fuzz/corpus/pf_journal) from the live journal made at start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "pf/internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CS 512
#define FILE_SIZE (5 * CS + 40) /* 6 chunks, the last one partial */
#define MAX_FILES 16

static uint8_t g_key[PF_KEY_SIZE];
static char g_dir[64], g_kdir[96];
static uint8_t g_a[FILE_SIZE], g_b[FILE_SIZE];
struct sfile {
	char name[64];
	uint8_t *data;
	size_t size;
};
/* A crash image: every file of the storage directory but the journal. */
struct image {
	struct sfile files[MAX_FILES];
	size_t nfiles;
	char jname[64];
	uint8_t *journal;
	size_t jsize;
	const uint8_t *want; /* the committed content */
	uint64_t trusted;    /* the trusted version (0: no freshness provider) */
};
static struct image g_undo, g_redo, g_record;
/* The committed state the journal restores. */
static uint8_t g_root[PF_ROOT_SIZE], g_file_id[PF_FILE_ID_SIZE];

static void die(const char *what, const struct kiln_err *err)
{
	fprintf(stderr, "fuzz_pf_journal: %s: %s\n", what, err ? err->msg : strerror(errno));
	abort();
}

static void put_file(const char *name, const uint8_t *data, size_t size)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", g_kdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		die(path, NULL);
	close(fd);
}

static uint8_t *get_file(const char *name, size_t *size)
{
	char path[256];
	struct stat st;
	uint8_t *p;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", g_kdir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
		die(path, NULL);
	p = malloc((size_t)st.st_size + 1);
	if (!p || read(fd, p, (size_t)st.st_size) != st.st_size)
		die(path, NULL);
	close(fd);
	*size = (size_t)st.st_size;
	return p;
}

static pf_volume_t *vol_open(bool init, uint64_t trusted, struct kiln_err *err)
{
	/* The journals are the subject: no data records (a small commit's
	 * slots would go into the log instead of redo entries). */
	struct pf_volume_opts o = { .chunk_size = CS, .log_data_max = -1 };
	pf_volume_t *v = NULL;

	if (trusted && pf_freshness_fixed(trusted, &o.freshness, &o.freshness_ctx) != 0)
		return NULL;
	if ((init ? pf_volume_init : pf_volume_open)(g_dir, g_key, &o, &v, err) != 0)
		return NULL;
	return v;
}

enum crash { CRASH_UNDO, CRASH_REDO, CRASH_RECORD };

/* The child's half of the crash: overwrite chunks 0, 2 and 5 of f and write
 * them back (journal synced first), then die without a commit; or commit
 * them (redo: with a namespace change, a metadata write; record: after a
 * checkpoint, a one-phase commit log record) and die before the in-place
 * writes are durable, writing the version reached to fd. */
static void crash_child(enum crash c, int fd)
{
	struct kiln_err err = { 0 };
	pf_volume_t *v = vol_open(false, 0, &err);
	bool redo = c != CRASH_UNDO;
	uint64_t version;
	uint8_t b[100];
	pf_file_t *f;

	memset(b, 'B', sizeof(b));
	if (!v || pf_open(v, "f", O_RDWR, 0, &f, &err) != 0)
		_exit(2);
	/* A namespace change: the commit of redo writes the metadata; record
	 * commits it first (the checkpoint), then the overwrites as a record. */
	if (c != CRASH_UNDO && pf_mkdir(v, "d", 0700, &err) != 0)
		_exit(6);
	if (c == CRASH_RECORD && (pf_volume_flush(v, &err) != 0 || v->log_records != 0))
		_exit(6);
	if (pf_pwrite(f, b, sizeof(b), 10, &err) != sizeof(b) ||
	    pf_pwrite(f, b, sizeof(b), 2 * CS + 7, &err) != sizeof(b) ||
	    pf_pwrite(f, b, 20, 5 * CS + 3, &err) != 20)
		_exit(3);
	if (redo) {
		if (pf_fsync(f, &err) != 0 || !f->node->jlive ||
		    v->log_records != (c == CRASH_RECORD))
			_exit(5);
		version = pf_volume_version(v);
		if (write(fd, &version, sizeof(version)) != sizeof(version))
			_exit(7);
		_exit(0); /* no close: its sync would make the in-place writes durable */
	}
	if (pf__wb_drain(f->node, &err) != 0 || f->node->wb_count != 0)
		_exit(4);
	_exit(0);
}

/* Read the storage directory into img (the journal named jsuffix apart). */
static void snap(struct image *img, const char *jsuffix)
{
	DIR *d = opendir(g_kdir);
	struct dirent *de;

	if (!d)
		die(g_kdir, NULL);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if (len > 2 && strcmp(de->d_name + len - 2, jsuffix) == 0) {
			snprintf(img->jname, sizeof(img->jname), "%s", de->d_name);
			img->journal = get_file(de->d_name, &img->jsize);
			continue;
		}
		if (img->nfiles == MAX_FILES || len >= sizeof(img->files[0].name))
			die("too many files", NULL);
		snprintf(img->files[img->nfiles].name, sizeof(img->files[0].name), "%s",
			 de->d_name);
		img->files[img->nfiles].data = get_file(de->d_name, &img->files[img->nfiles].size);
		img->nfiles++;
	}
	closedir(d);
}

/* Returns the version the child's commit reached (0: none). */
static uint64_t run_child(enum crash c)
{
	uint64_t version = 0;
	int st, p[2];
	pid_t pid;

	if (pipe(p) != 0)
		die("pipe", NULL);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		crash_child(c, p[1]);
	}
	close(p[1]);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("crash child", NULL);
	if (c != CRASH_UNDO && read(p[0], &version, sizeof(version)) != sizeof(version))
		die("crash child's version", NULL);
	close(p[0]);
	return version;
}

static void put_image(const struct image *img)
{
	for (size_t i = 0; i < img->nfiles; i++)
		put_file(img->files[i].name, img->files[i].data, img->files[i].size);
}

static void sweep(bool all);

/* The in-place writes after the commit point are lost: the backing file (the
 * one name of 32 characters) as at rest. */
static void lose_in_place(struct image *img, const struct image *base)
{
	for (size_t i = 0; i < img->nfiles; i++)
		for (size_t k = 0; k < base->nfiles; k++)
			if (strlen(img->files[i].name) == 32 &&
			    strcmp(img->files[i].name, base->files[k].name) == 0) {
				free(img->files[i].data);
				img->files[i].data = malloc(base->files[k].size + 1);
				if (!img->files[i].data)
					abort();
				memcpy(img->files[i].data, base->files[k].data,
				       base->files[k].size);
				img->files[i].size = base->files[k].size;
			}
}

static void make_crash(void)
{
	struct image base = { 0 };
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *f;

	v = vol_open(true, 0, &err);
	if (!v)
		die("init", &err);
	for (size_t i = 0; i < sizeof(g_a); i++)
		g_a[i] = (uint8_t)('a' + i % 23);
	if (pf_open(v, "f", O_RDWR | O_CREAT, 0600, &f, &err) != 0 ||
	    pf_pwrite(f, g_a, sizeof(g_a), 0, &err) != sizeof(g_a) || pf_fsync(f, &err) != 0)
		die("write A", &err);
	memcpy(g_root, f->node->inode->root, PF_ROOT_SIZE);
	memcpy(g_file_id, f->node->inode->file_id, PF_FILE_ID_SIZE);
	pf_close(f);
	if (pf_volume_close(v, &err) != 0)
		die("close", &err);
	memcpy(g_b, g_a, sizeof(g_a));
	memset(g_b + 10, 'B', 100);
	memset(g_b + 2 * CS + 7, 'B', 100);
	memset(g_b + 5 * CS + 3, 'B', 20);
	/* The state at rest (no journal yet), then the redo crash over it. */
	snap(&base, ".j");
	run_child(CRASH_REDO);
	snap(&g_redo, ".j");
	g_redo.want = g_b;
	lose_in_place(&g_redo, &base);
	/* Back to rest, then the record crash, then the undo crash. */
	sweep(false);
	put_image(&base);
	g_record.trusted = run_child(CRASH_RECORD);
	snap(&g_record, ".j");
	g_record.want = g_b;
	lose_in_place(&g_record, &base);
	sweep(false);
	put_image(&base);
	run_child(CRASH_UNDO);
	snap(&g_undo, ".j");
	g_undo.want = g_a;
	for (size_t k = 0; k < base.nfiles; k++)
		free(base.files[k].data);
	/* Undo: header and three entries: 0 and 2 whole, 5 partial. Redo: the
	 * same undo entries, as many redo entries, the end record. */
	if (!g_undo.journal || g_undo.jsize != PF_JOURNAL_HDR_SIZE +
						2 * (20 + PF_SLOT_META + CS) + (20 + PF_SLOT_META + 40))
		die("no live journal of the expected size", NULL);
	if (!g_redo.journal || g_redo.jsize != 2 * g_undo.jsize - PF_JOURNAL_HDR_SIZE +
						PF_JOURNAL_END_SIZE + 8)
		die("no live redo journal of the expected size", NULL);
	if (!g_record.journal || g_record.jsize != g_redo.jsize || !g_record.trusted)
		die("no live journal of a record of the expected size", NULL);
}

/* Empty the storage directory (each run puts its image back); all: its
 * dot files too (at exit). */
static void sweep(bool all)
{
	DIR *d = opendir(g_kdir);
	struct dirent *de;
	char path[256];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    (!all && de->d_name[0] == '.'))
			continue;
		snprintf(path, sizeof(path), "%s/%s", g_kdir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

static void cleanup(void)
{
	sweep(true);
	rmdir(g_kdir);
	rmdir(g_dir);
}

static void write_seed(const char *dir, const char *name, uint8_t flags, size_t len,
		       size_t flip)
{
	char path[512];
	uint8_t *buf = calloc(1, len + 1);
	FILE *fp;

	if (!buf)
		abort();
	buf[0] = flags;
	if (flip)
		buf[flip] = 0x01;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	if (!fp || fwrite(buf, 1, len + 1, fp) != len + 1)
		die(path, NULL);
	fclose(fp);
	free(buf);
}

static void write_seeds(const char *dir)
{
	size_t e0 = PF_JOURNAL_HDR_SIZE, e1 = e0 + 20 + PF_SLOT_META + CS;
	size_t jsize0 = g_undo.jsize, rsize = g_redo.jsize;
	size_t redo0 = g_undo.jsize, end = rsize - PF_JOURNAL_END_SIZE - 8;

	write_seed(dir, "record-live", 16, rsize, 0);
	write_seed(dir, "record-torn-end", 16, rsize - 5, 0);
	write_seed(dir, "record-no-end", 16, end, 0);
	write_seed(dir, "record-end-root", 16 | 2, rsize, 1 + end + 12 + 3);
	write_seed(dir, "record-entry-forged", 16 | 2, rsize, 1 + redo0 + 12 + PF_SLOT_META + 5);
	write_seed(dir, "record-spent", 16, rsize, 1 + 0); /* magic changed */
	write_seed(dir, "redo-live", 8, rsize, 0);
	write_seed(dir, "redo-resummed", 8 | 3, rsize, 0);
	write_seed(dir, "redo-torn-end", 8, rsize - 5, 0);
	write_seed(dir, "redo-no-end", 8, end, 0);
	write_seed(dir, "redo-entry-flipped", 8, rsize, 1 + redo0 + 12 + PF_SLOT_META + 5);
	write_seed(dir, "redo-entry-forged", 8 | 2, rsize, 1 + redo0 + 12 + PF_SLOT_META + 5);
	write_seed(dir, "redo-bad-count", 8 | 2, rsize, 1 + end + 8);
	write_seed(dir, "redo-end-root", 8 | 2, rsize, 1 + end + 12 + 3);
	write_seed(dir, "redo-as-undo", 8 | 2, rsize, 1 + redo0 + 11); /* redo bit off */
	write_seed(dir, "live", 0, jsize0, 0);
	write_seed(dir, "live-resummed", 3, jsize0, 0);
	write_seed(dir, "format1", 7, jsize0, 0);
	write_seed(dir, "torn-tail", 0, jsize0 - 5, 0);
	write_seed(dir, "header-only", 0, PF_JOURNAL_HDR_SIZE, 0);
	write_seed(dir, "empty", 0, 0, 0);
	write_seed(dir, "stale-header", 0, jsize0, 1 + 9);
	write_seed(dir, "spent", 0, jsize0, 1 + 0); /* magic changed */
	write_seed(dir, "entry-bad-sum", 0, jsize0, 1 + e1 + 20);
	write_seed(dir, "entry-bad-index", 2, jsize0, 1 + e1 + 3);
	write_seed(dir, "entry-bad-len", 2, jsize0, 1 + e1 + 9);
	write_seed(dir, "slot-flipped", 2, jsize0, 1 + e0 + 12 + PF_SLOT_META + 5);
	write_seed(dir, "longer", 0, jsize0 + 600, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("KILN_FUZZ_SEEDS");

	(void)argc;
	(void)argv;
	memset(g_key, 0x22, sizeof(g_key));
	strcpy(g_dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/kiln-fuzz-j-XXXXXX"
						 : "/tmp/kiln-fuzz-j-XXXXXX");
	if (!mkdtemp(g_dir))
		die("mkdtemp", NULL);
	snprintf(g_kdir, sizeof(g_kdir), "%s/.kiln", g_dir);
	make_crash();
	atexit(cleanup);
	if (seeds)
		write_seeds(seeds);
	return 0;
}

/* The journal of this input: the live one XOR the delta, then the fixups. */
static uint8_t *make_journal(const struct image *img, const uint8_t *data, size_t size,
			     size_t *out_size)
{
	uint8_t flags = size ? data[0] : 0;
	size_t len = size ? size - 1 : 0;
	uint8_t *j = calloc(1, len > PF_JOURNAL_HDR_SIZE ? len : PF_JOURNAL_HDR_SIZE);

	if (!j)
		abort();
	for (size_t i = 0; i < len; i++)
		j[i] = data[1 + i] ^ (i < img->jsize ? img->journal[i] : 0);
	if (flags & 1) {
		pf__journal_header(g_root, FILE_SIZE, g_file_id,
				   flags & 4 ? PF_JOURNAL_MAGIC_V1 : PF_JOURNAL_MAGIC, j);
		if (len < PF_JOURNAL_HDR_SIZE)
			len = PF_JOURNAL_HDR_SIZE;
	}
	if ((flags & 2) && len >= PF_JOURNAL_HDR_SIZE) {
		const uint8_t *bind = memcmp(j, PF_JOURNAL_MAGIC_V1, 8) == 0 ? NULL : j + 64;
		size_t off = PF_JOURNAL_HDR_SIZE;

		while (off + 12 <= len) {
			uint64_t esize = 12 + PF_SLOT_META +
					 (uint64_t)(pf__get_u32(j + off + 8) & ~PF_JOURNAL_REDO);
			uint8_t sum[KC_SHA256_SIZE];

			if (pf__get_u64(j + off) == PF_JOURNAL_END)
				esize = PF_JOURNAL_END_SIZE;
			if (esize + 8 > len - off)
				break;
			pf__journal_entry_sum(bind, j + off, esize, sum);
			memcpy(j + off + esize, sum, 8);
			off += esize + 8;
		}
	}
	*out_size = len;
	return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	uint8_t got[FILE_SIZE + 1];
	const struct image *img;
	size_t jsize;
	bool real;
	uint8_t *j;
	pf_volume_t *v;
	pf_file_t *f;
	ssize_t n;

	if (size > 1 + (1u << 16))
		return -1;
	sweep(false);
	img = size && (data[0] & 16) ? &g_record : size && (data[0] & 8) ? &g_redo : &g_undo;
	/* The real journal: no fix-ups, a delta of zeros as long as it. */
	real = size == 1 + img->jsize && !(data[0] & 7);
	for (size_t i = 1; i < size && real; i++)
		real = data[i] == 0;
	put_image(img);
	j = make_journal(img, data, size, &jsize);
	put_file(img->jname, j, jsize);
	free(j);
	v = vol_open(false, img->trusted, &err);
	if (!v) {
		/* Only a record's journal is read at the volume's open (does it
		 * vouch for the record?); refused, it is a rollback. */
		if (!img->trusted || real || !err.msg[0])
			die("volume open", &err);
		return 0;
	}
	if (pf_open(v, "f", O_RDONLY, 0, &f, &err) != 0) {
		if (!err.msg[0] || real)
			abort(); /* every failure explains itself */
	} else {
		n = pf_pread(f, got, sizeof(got), 0, &err);
		if (n >= 0 && (n != FILE_SIZE || memcmp(got, img->want, FILE_SIZE) != 0))
			abort(); /* bytes that were never committed */
		if (n < 0 && (!err.msg[0] || real))
			abort();
		pf_close(f);
	}
	pf_volume_close(v, NULL);
	return 0;
}
