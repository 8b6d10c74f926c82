/* Fuzz the undo journal's recovery (pf__journal_recover, run when a file is
 * opened after a crash): the journal "<id>.j" is a file the host controls.
 *
 * At start the target makes a real crash: a volume (in /dev/shm, chunk 512)
 * holds a committed file A of 6 chunks; a child process overwrites chunks 0,
 * 2 and 5, writes them back through the real write path (the journal of the
 * committed slots synced first) and dies without committing. That storage
 * directory and the live journal it left are the starting point of every run.
 *
 * An input is one flag byte and a delta XORed onto the live journal (its
 * length is the journal's length: shorter cuts it, longer appends the delta's
 * own bytes), so an input of zeros is the real journal and the fuzzer mutates
 * from there. Flags: 1 rebinds the header to the committed state, 2 recomputes
 * every entry's check (so mutated entries reach the checks after it), 4 with 1
 * writes a format 1 header (entries unbound).
 *
 * Each run restores the storage directory, writes the journal, opens the
 * volume and the file and reads it. The property: the file reads back exactly
 * as committed (A), or opening/reading it fails with a message. A journal
 * never makes other bytes readable, and nothing crashes.
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
static uint8_t g_a[FILE_SIZE];
/* The crash image: every file of the storage directory but the journal. */
static struct {
	char name[64];
	uint8_t *data;
	size_t size;
} g_files[MAX_FILES];
static size_t g_nfiles;
static char g_jname[64];
static uint8_t *g_journal;
static size_t g_jsize;
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

static pf_volume_t *vol_open(bool init)
{
	struct pf_volume_opts o = { .chunk_size = CS };
	struct kiln_err err = { 0 };
	pf_volume_t *v = NULL;

	if ((init ? pf_volume_init : pf_volume_open)(g_dir, g_key, &o, &v, &err) != 0)
		return NULL;
	return v;
}

/* The child's half of the crash: overwrite chunks 0, 2 and 5 of f and write
 * them back (journal synced first), then die without a commit. */
static void crash_child(void)
{
	pf_volume_t *v = vol_open(false);
	struct kiln_err err = { 0 };
	uint8_t b[100];
	pf_file_t *f;

	memset(b, 'B', sizeof(b));
	if (!v || pf_open(v, "f", O_RDWR, 0, &f, &err) != 0)
		_exit(2);
	if (pf_pwrite(f, b, sizeof(b), 10, &err) != sizeof(b) ||
	    pf_pwrite(f, b, sizeof(b), 2 * CS + 7, &err) != sizeof(b) ||
	    pf_pwrite(f, b, 20, 5 * CS + 3, &err) != 20)
		_exit(3);
	if (pf__wb_drain(f->node, &err) != 0 || f->node->wb_count != 0)
		_exit(4);
	_exit(0);
}

static void make_crash(void)
{
	struct kiln_err err = { 0 };
	pf_volume_t *v;
	pf_file_t *f;
	DIR *d;
	struct dirent *de;
	pid_t pid;
	int st;

	v = vol_open(true);
	if (!v)
		die("init", NULL);
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
	pid = fork();
	if (pid == 0)
		crash_child();
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("crash child", NULL);
	d = opendir(g_kdir);
	if (!d)
		die(g_kdir, NULL);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if (len > 2 && strcmp(de->d_name + len - 2, ".j") == 0) {
			snprintf(g_jname, sizeof(g_jname), "%s", de->d_name);
			g_journal = get_file(de->d_name, &g_jsize);
			continue;
		}
		if (g_nfiles == MAX_FILES || len >= sizeof(g_files[0].name))
			die("too many files", NULL);
		snprintf(g_files[g_nfiles].name, sizeof(g_files[0].name), "%s", de->d_name);
		g_files[g_nfiles].data = get_file(de->d_name, &g_files[g_nfiles].size);
		g_nfiles++;
	}
	closedir(d);
	/* Header and three entries: 0 and 2 whole, 5 partial. */
	if (!g_journal || g_jsize != PF_JOURNAL_HDR_SIZE + 2 * (20 + PF_SLOT_META + CS) +
						  (20 + PF_SLOT_META + 40))
		die("no live journal of the expected size", NULL);
}

static bool in_image(const char *name)
{
	if (strcmp(name, g_jname) == 0)
		return true;
	for (size_t i = 0; i < g_nfiles; i++)
		if (strcmp(name, g_files[i].name) == 0)
			return true;
	return false;
}

/* Remove what a run added to the storage directory (all of it: at exit). */
static void sweep(bool all)
{
	DIR *d = opendir(g_kdir);
	struct dirent *de;
	char path[256];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    (!all && in_image(de->d_name)))
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

	write_seed(dir, "live", 0, g_jsize, 0);
	write_seed(dir, "live-resummed", 3, g_jsize, 0);
	write_seed(dir, "format1", 7, g_jsize, 0);
	write_seed(dir, "torn-tail", 0, g_jsize - 5, 0);
	write_seed(dir, "header-only", 0, PF_JOURNAL_HDR_SIZE, 0);
	write_seed(dir, "empty", 0, 0, 0);
	write_seed(dir, "stale-header", 0, g_jsize, 1 + 9);
	write_seed(dir, "spent", 0, g_jsize, 1 + 0); /* magic changed */
	write_seed(dir, "entry-bad-sum", 0, g_jsize, 1 + e1 + 20);
	write_seed(dir, "entry-bad-index", 2, g_jsize, 1 + e1 + 3);
	write_seed(dir, "entry-bad-len", 2, g_jsize, 1 + e1 + 9);
	write_seed(dir, "slot-flipped", 2, g_jsize, 1 + e0 + 12 + PF_SLOT_META + 5);
	write_seed(dir, "longer", 0, g_jsize + 600, 0);
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
static uint8_t *make_journal(const uint8_t *data, size_t size, size_t *out_size)
{
	uint8_t flags = size ? data[0] : 0;
	size_t len = size ? size - 1 : 0;
	uint8_t *j = calloc(1, len > PF_JOURNAL_HDR_SIZE ? len : PF_JOURNAL_HDR_SIZE);

	if (!j)
		abort();
	for (size_t i = 0; i < len; i++)
		j[i] = data[1 + i] ^ (i < g_jsize ? g_journal[i] : 0);
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
			uint64_t esize = 12 + PF_SLOT_META + (uint64_t)pf__get_u32(j + off + 8);
			uint8_t sum[KC_SHA256_SIZE];

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
	size_t jsize;
	uint8_t *j;
	pf_volume_t *v;
	pf_file_t *f;
	ssize_t n;

	if (size > 1 + (1u << 16))
		return -1;
	sweep(false);
	for (size_t i = 0; i < g_nfiles; i++)
		put_file(g_files[i].name, g_files[i].data, g_files[i].size);
	j = make_journal(data, size, &jsize);
	put_file(g_jname, j, jsize);
	free(j);
	v = vol_open(false);
	if (!v)
		die("volume open", NULL); /* the journal is read when the file is */
	if (pf_open(v, "f", O_RDONLY, 0, &f, &err) != 0) {
		if (!err.msg[0])
			abort(); /* every failure explains itself */
	} else {
		n = pf_pread(f, got, sizeof(got), 0, &err);
		if (n >= 0 && (n != FILE_SIZE || memcmp(got, g_a, FILE_SIZE) != 0))
			abort(); /* bytes that were never committed */
		if (n < 0 && !err.msg[0])
			abort();
		pf_close(f);
	}
	pf_volume_close(v, NULL);
	return 0;
}
