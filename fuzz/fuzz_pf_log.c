/* Fuzz the commit log's parser: pf__log_parse runs at every volume open over
 * ".kiln/log", a file the host controls. Three views of an input:
 *   - the bytes as a log (records sealed with the fixed test key reach the
 *     body decoder; the seeds in fuzz/corpus/pf_log are such logs);
 *   - the bytes as a record body past authentication (pf__log_body_decode);
 *     a body it accepts is sealed again and must open to the same entries;
 *   - the first 40 bytes as a record header (any fields) sealed over the rest
 *     as the body, so mutated headers and bodies reach the checks behind the
 *     tag.
 * The properties: nothing crashes or leaks; every refusal has a message; what
 * is accepted is in range (1..PF_LOG_MAX_FILES files, distinct inodes above
 * the root, sizes in range) and the versions a parse applies follow each
 * other from the base.
 *
 * Seeds: KILN_FUZZ_SEEDS=DIR fuzz_pf_log -runs=0 writes the seed corpus
 * (fuzz/corpus/pf_log). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "pf/internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pf_meta_keys g_keys;

static void check_rec(const struct pf_log_rec *rec)
{
	if (rec->count == 0 || rec->count > PF_LOG_MAX_FILES)
		abort();
	for (size_t i = 0; i < rec->count; i++) {
		if (rec->ents[i].ino <= PF_ROOT_INO || rec->ents[i].size > PF_MAX_FILE_SIZE)
			abort();
		for (size_t j = 0; j < i; j++)
			if (rec->ents[j].ino == rec->ents[i].ino)
				abort();
	}
}

static void as_log(const uint8_t *data, size_t size, uint64_t base)
{
	struct pf_log_scan s;

	if (pf__log_parse(&g_keys, data, size, base, UINT64_MAX, &s) != 0)
		return;
	for (size_t i = 0; i < s.count; i++) {
		if (s.recs[i].version != base + 1 + i)
			abort();
		check_rec(&s.recs[i]);
	}
	if (s.version != base + s.count || s.end > size)
		abort();
	pf__log_scan_clear(&s);
}

static void as_body(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	struct pf_log_rec rec, back;
	uint8_t *sealed = NULL;
	size_t sealed_size = 0;

	if (pf__log_body_decode(data, size, &rec, &err) != 0) {
		if (err.msg[0] == '\0')
			abort();
		return;
	}
	check_rec(&rec);
	if (pf__log_seal(&g_keys, 7, 0, rec.ents, rec.count, &sealed, &sealed_size) != 0 ||
	    pf__log_open_rec(&g_keys, sealed, sealed_size, &back, NULL) != 0)
		abort();
	if (back.version != 7 || back.count != rec.count || back.size != sealed_size ||
	    memcmp(back.ents, rec.ents, rec.count * sizeof(*rec.ents)) != 0)
		abort();
	pf__log_rec_clear(&back);
	pf__log_rec_clear(&rec);
	free(sealed);
}

static void as_sealed(const uint8_t *data, size_t size)
{
	struct kiln_err err = { 0 };
	struct pf_log_rec rec;
	size_t bsize = size - PF_LOG_HDR_SIZE;
	uint8_t *buf = malloc(size + PF_TAG_SIZE);
	kc_aead_t *a = kc_aead_new(g_keys.log);

	if (!buf || !a)
		abort();
	memcpy(buf, data, PF_LOG_HDR_SIZE);
	memcpy(buf, PF_LOG_MAGIC, 8);
	if (kc_aead_seal(a, buf + 24, buf, PF_LOG_HDR_SIZE, data + PF_LOG_HDR_SIZE, bsize,
			 buf + PF_LOG_HDR_SIZE, buf + PF_LOG_HDR_SIZE + bsize) != 0)
		abort();
	kc_aead_free(a);
	if (pf__log_open_rec(&g_keys, buf, size + PF_TAG_SIZE, &rec, &err) == 0) {
		check_rec(&rec);
		if (rec.size > size + PF_TAG_SIZE)
			abort();
		pf__log_rec_clear(&rec);
	} else if (err.msg[0] == '\0') {
		abort();
	}
	free(buf);
}

static void write_seed(const char *dir, const char *name, const uint8_t *buf, size_t size)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, size, f) != size)
		abort();
	fclose(f);
}

/* Seeds: a log of three records from base 0 (versions 1, 2, 3: one, two and
 * one file), and one record's plaintext body. */
static void make_seeds(const char *dir)
{
	struct pf_log_entry ents[2] = { { 0 } };
	uint8_t log[4096], body[8 + 2 * PF_LOG_ENTRY_SIZE] = { 0 };
	size_t off = 0;

	for (uint64_t ver = 1; ver <= 3; ver++) {
		uint8_t *rec;
		size_t rsize;

		ents[0].ino = 2;
		ents[0].size = 4096 * ver;
		ents[0].mtime_ns = (int64_t)ver * 1000000;
		memset(ents[0].root, (int)ver, PF_ROOT_SIZE);
		ents[1].ino = 5;
		ents[1].size = 10;
		if (pf__log_seal(&g_keys, ver, 0, ents, ver == 2 ? 2 : 1, &rec, &rsize) != 0 ||
		    off + rsize > sizeof(log))
			abort();
		memcpy(log + off, rec, rsize);
		off += rsize;
		free(rec);
	}
	write_seed(dir, "log-three", log, off);
	pf__put_u32(body, 2);
	pf__put_u64(body + 8, 2);
	pf__put_u64(body + 16, 100);
	pf__put_u64(body + 8 + PF_LOG_ENTRY_SIZE, 3);
	write_seed(dir, "body-two", body, sizeof(body));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t key[PF_KEY_SIZE];
	const char *seeds = getenv("KILN_FUZZ_SEEDS");

	memset(key, 0x11, sizeof(key));
	if (pf__meta_keys_derive(key, &g_keys) != 0)
		abort();
	if (seeds)
		make_seeds(seeds);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_log(data, size, 0);
	as_log(data, size, 2); /* records 1 and 2 spent */
	as_body(data, size);
	if (size >= PF_LOG_HDR_SIZE)
		as_sealed(data, size);
	return 0;
}
