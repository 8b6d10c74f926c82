/* Fuzz the commit log's parser: pf__log_parse runs at every volume open over
 * ".kiln/log", a file the host controls. Three views of an input:
 *   - the bytes as a log (records sealed with the fixed test key reach the
 *     body decoder; the seeds in fuzz/corpus/pf_log are such logs);
 *   - the bytes as a record body past authentication (pf__log_body_decode),
 *     without and with PF_LOG_NS (namespace entries first), and with
 *     PF_LOG_DATA (slots after the file entries); a body it accepts is
 *     sealed again and must open to the same entries and slots;
 *   - the first 40 bytes as a record header (any fields) sealed over the rest
 *     as the body, so mutated headers and bodies reach the checks behind the
 *     tag.
 * The properties: nothing crashes or leaks; every refusal has a message; what
 * is accepted is in range (1..PF_LOG_MAX_FILES files, distinct inodes above
 * the root, sizes in range; namespace entries with valid names, each created
 * inode below the next one and with its file entry, no unlinked file with
 * contents; slots of files of the record, each chunk once, lengths 1 ..
 * PF_MAX_CHUNK_SIZE, at most PF_LOG_DATA_MAX bytes in all) and the versions
 * a parse applies follow each other from the base.
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

static void check_slots(const struct pf_log_rec *rec, uint32_t flags)
{
	size_t bytes = 0;

	if (!(flags & PF_LOG_DATA) ? rec->nslots != 0 :
	    rec->nslots == 0 || rec->nslots > PF_LOG_MAX_SLOTS || (flags & PF_LOG_ONEPHASE))
		abort();
	for (size_t i = 0; i < rec->nslots; i++) {
		const struct pf_log_slot *sl = &rec->slots[i];
		bool has_file = false;

		if (sl->len == 0 || sl->len > PF_MAX_CHUNK_SIZE)
			abort();
		bytes += PF_SLOT_META + sl->len;
		for (size_t j = 0; j < rec->count; j++)
			has_file |= rec->ents[j].ino == sl->ino;
		for (size_t j = 0; j < i; j++)
			if (rec->slots[j].ino == sl->ino && rec->slots[j].idx == sl->idx)
				abort();
		if (!has_file)
			abort();
	}
	if (bytes > PF_LOG_DATA_MAX)
		abort();
}

static void check_rec(const struct pf_log_rec *rec, uint32_t flags)
{
	bool ns = flags & PF_LOG_NS;

	if ((!ns && rec->count == 0) || rec->count > PF_LOG_MAX_FILES)
		abort();
	if (ns ? rec->nns == 0 || rec->nns > PF_LOG_MAX_NS : rec->nns != 0)
		abort();
	for (size_t i = 0; i < rec->count; i++) {
		if (rec->ents[i].ino <= PF_ROOT_INO || rec->ents[i].size > PF_MAX_FILE_SIZE)
			abort();
		for (size_t j = 0; j < i; j++)
			if (rec->ents[j].ino == rec->ents[i].ino)
				abort();
	}
	for (size_t i = 0; i < rec->nns; i++) {
		const struct pf_log_ns *e = &rec->ns[i];
		bool has_file = false;

		if ((e->op != PF_LOG_NS_CREATE && e->op != PF_LOG_NS_UNLINK) ||
		    e->ino <= PF_ROOT_INO || e->parent < PF_ROOT_INO ||
		    !pf__name_ok(e->name, e->len) || strlen(e->name) != e->len)
			abort();
		for (size_t j = 0; j < rec->count; j++)
			has_file |= rec->ents[j].ino == e->ino;
		/* A create comes with its contents; an unlinked file has none. */
		if (e->op == PF_LOG_NS_CREATE &&
		    (!has_file || e->ino >= rec->next_ino || e->mode > 07777 ||
		     !pf__kind_ok(e->kind)))
			abort();
		if (e->op == PF_LOG_NS_UNLINK && has_file)
			abort();
	}
	check_slots(rec, flags);
}

static void as_log(const uint8_t *data, size_t size, uint64_t base)
{
	struct pf_log_scan s;

	if (pf__log_parse(&g_keys, data, size, base, UINT64_MAX, &s) != 0)
		return;
	for (size_t i = 0; i < s.count; i++) {
		if (s.recs[i].version != base + 1 + i)
			abort();
		check_rec(&s.recs[i], s.recs[i].flags);
	}
	if (s.version != base + s.count || s.end > size)
		abort();
	pf__log_scan_clear(&s);
}

static void as_body(const uint8_t *data, size_t size, uint32_t flags)
{
	struct kiln_err err = { 0 };
	struct pf_log_rec rec, back;
	uint8_t *sealed = NULL;
	size_t sealed_size = 0;

	if (pf__log_body_decode(data, size, flags, &rec, &err) != 0) {
		if (err.msg[0] == '\0')
			abort();
		return;
	}
	check_rec(&rec, flags);
	rec.version = 7;
	rec.flags = flags;
	if (pf__log_seal(&g_keys, &rec, &sealed, &sealed_size) != 0 ||
	    pf__log_open_rec(&g_keys, sealed, sealed_size, &back, NULL) != 0)
		abort();
	if (back.version != 7 || back.count != rec.count || back.size != sealed_size ||
	    back.nns != rec.nns || back.next_ino != rec.next_ino || back.flags != flags ||
	    memcmp(back.ents, rec.ents, rec.count * sizeof(*rec.ents)) != 0 ||
	    (rec.nns && memcmp(back.ns, rec.ns, rec.nns * sizeof(*rec.ns)) != 0) ||
	    back.nslots != rec.nslots)
		abort();
	for (size_t i = 0; i < rec.nslots; i++)
		if (back.slots[i].ino != rec.slots[i].ino || back.slots[i].idx != rec.slots[i].idx ||
		    back.slots[i].len != rec.slots[i].len ||
		    memcmp(back.slots[i].slot, rec.slots[i].slot, PF_SLOT_META + rec.slots[i].len))
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
		check_rec(&rec, rec.flags);
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

/* A namespace entry at p (the record format of docs/fs.md "Commit log"). */
static size_t put_ns_seed(uint8_t *p, uint8_t op, uint64_t parent, uint64_t ino,
			  const char *name)
{
	size_t len = strlen(name), off = PF_LOG_NS_FIXED;

	p[0] = op;
	p[1] = (uint8_t)len;
	pf__put_u64(p + 4, parent);
	pf__put_u64(p + 12, ino);
	if (op == PF_LOG_NS_CREATE) {
		pf__put_u32(p + off, 0644);
		pf__put_u32(p + off + 12, 1); /* encrypted */
		off += PF_LOG_NS_CREATE_EXTRA;
	}
	memcpy(p + off, name, len);
	return off + len;
}

/* Seeds: a log of six records from base 0 (versions 1, 2, 3: one, two and
 * one file; 4: an unlink and a create with its file; 5: a data record, two
 * slots of one file; 6: a create with its first contents as data), one
 * record's plaintext body, a namespace body (a create with its file, an
 * unlink; the body views decode it with PF_LOG_NS), a data body (one file,
 * two slots: PF_LOG_DATA) and a create's data body (a create, its file, a
 * slot of each of its two chunks: PF_LOG_NS | PF_LOG_DATA, as a data record
 * that creates a file). */
static void make_seeds(const char *dir)
{
	struct pf_log_entry ents[2] = { { 0 } };
	struct pf_log_ns ns[2] = { { 0 } };
	uint8_t log[8192], body[8 + 2 * PF_LOG_ENTRY_SIZE] = { 0 };
	uint8_t nbody[16 + 2 * PF_LOG_NS_MAX_SIZE + PF_LOG_ENTRY_SIZE] = { 0 };
	size_t off = 0, noff;

	uint8_t sbuf[2][PF_SLOT_META + 100];
	struct pf_log_slot slots[2] = {
		{ .ino = 2, .idx = 0, .len = 100, .slot = sbuf[0] },
		{ .ino = 2, .idx = 3, .len = 50, .slot = sbuf[1] },
	};
	uint8_t dbody[8 + PF_LOG_ENTRY_SIZE + 8 + 2 * PF_LOG_SLOT_FIXED +
		      2 * PF_SLOT_META + 150] = { 0 };
	uint8_t cbody[16 + PF_LOG_NS_MAX_SIZE + PF_LOG_ENTRY_SIZE + 8 +
		      2 * (PF_LOG_SLOT_FIXED + PF_SLOT_META + 4096)] = { 0 };
	size_t doff;

	memset(sbuf, 0xa5, sizeof(sbuf));
	for (uint64_t ver = 1; ver <= 6; ver++) {
		struct pf_log_rec r = { .version = ver, .ents = ents, .count = ver == 2 ? 2 : 1 };
		uint8_t *rec;
		size_t rsize;

		ents[0].ino = 2;
		ents[0].size = 4096 * ver;
		ents[0].mtime_ns = (int64_t)ver * 1000000;
		memset(ents[0].root, (int)ver, PF_ROOT_SIZE);
		ents[1].ino = 5;
		ents[1].size = 10;
		if (ver == 4) {
			ns[0].op = PF_LOG_NS_UNLINK;
			ns[0].parent = 1;
			ns[0].ino = 5;
			ns[0].len = 3;
			memcpy(ns[0].name, "old", 3);
			ns[1].op = PF_LOG_NS_CREATE;
			ns[1].parent = 1;
			ns[1].ino = 6;
			ns[1].mode = 0600;
			ns[1].kind = 1;
			ns[1].len = 10;
			memcpy(ns[1].name, "db-journal", 10);
			ents[0].ino = 6;
			r.flags = PF_LOG_NS;
			r.ns = ns;
			r.nns = 2;
			r.next_ino = 7;
		}
		if (ver == 5) {
			ents[0].ino = 2;
			ents[0].size = 3 * 4096 + 50;
			r.flags = PF_LOG_DATA;
			r.ns = NULL;
			r.nns = 0;
			r.slots = slots;
			r.nslots = 2;
		}
		if (ver == 6) {
			ns[0] = ns[1];
			ns[0].ino = 7;
			ns[0].len = 3;
			memcpy(ns[0].name, "new", 4);
			ents[0].ino = 7;
			ents[0].size = 100;
			slots[0].ino = 7;
			r.flags = PF_LOG_DATA | PF_LOG_NS;
			r.ns = ns;
			r.nns = 1;
			r.next_ino = 8;
			r.slots = slots;
			r.nslots = 1;
		}
		if (pf__log_seal(&g_keys, &r, &rec, &rsize) != 0 || off + rsize > sizeof(log))
			abort();
		memcpy(log + off, rec, rsize);
		off += rsize;
		free(rec);
	}
	write_seed(dir, "log-six", log, off);
	pf__put_u32(body, 2);
	pf__put_u64(body + 8, 2);
	pf__put_u64(body + 16, 100);
	pf__put_u64(body + 8 + PF_LOG_ENTRY_SIZE, 3);
	write_seed(dir, "body-two", body, sizeof(body));
	pf__put_u32(nbody, 1);
	pf__put_u32(nbody + 4, 2);
	pf__put_u64(nbody + 8, 9);
	noff = 16 + put_ns_seed(nbody + 16, PF_LOG_NS_CREATE, 1, 8, "new");
	noff += put_ns_seed(nbody + noff, PF_LOG_NS_UNLINK, 1, 3, "gone");
	pf__put_u64(nbody + noff, 8);
	noff += PF_LOG_ENTRY_SIZE;
	write_seed(dir, "body-ns", nbody, noff);
	pf__put_u32(dbody, 1);
	pf__put_u64(dbody + 8, 2);
	pf__put_u64(dbody + 16, 3 * 4096 + 50);
	doff = 8 + PF_LOG_ENTRY_SIZE;
	pf__put_u32(dbody + doff, 2);
	doff += 8;
	for (int i = 0; i < 2; i++) {
		uint32_t len = i ? 50 : 100;

		pf__put_u64(dbody + doff, 2);
		pf__put_u64(dbody + doff + 8, i ? 3 : 0);
		pf__put_u32(dbody + doff + 16, len);
		memset(dbody + doff + PF_LOG_SLOT_FIXED, 0x5a, PF_SLOT_META + len);
		doff += PF_LOG_SLOT_FIXED + PF_SLOT_META + len;
	}
	write_seed(dir, "body-data", dbody, doff);
	pf__put_u32(cbody, 1);
	pf__put_u32(cbody + 4, 1);
	pf__put_u64(cbody + 8, 9);
	doff = 16 + put_ns_seed(cbody + 16, PF_LOG_NS_CREATE, 1, 8, "db-journal");
	pf__put_u64(cbody + doff, 8);
	pf__put_u64(cbody + doff + 8, 4096 + 516);
	doff += PF_LOG_ENTRY_SIZE;
	pf__put_u32(cbody + doff, 2);
	doff += 8;
	for (int i = 0; i < 2; i++) {
		uint32_t len = i ? 516 : 4096;

		pf__put_u64(cbody + doff, 8);
		pf__put_u64(cbody + doff + 8, (uint64_t)i);
		pf__put_u32(cbody + doff + 16, len);
		memset(cbody + doff + PF_LOG_SLOT_FIXED, 0x3c, PF_SLOT_META + len);
		doff += PF_LOG_SLOT_FIXED + PF_SLOT_META + len;
	}
	write_seed(dir, "body-create-data", cbody, doff);
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
	as_body(data, size, 0);
	as_body(data, size, PF_LOG_NS);
	as_body(data, size, PF_LOG_DATA);
	as_body(data, size, PF_LOG_NS | PF_LOG_DATA);
	if (size >= PF_LOG_HDR_SIZE)
		as_sealed(data, size);
	return 0;
}
