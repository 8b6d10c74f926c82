/* The volume's commit log ".kiln/log" (docs/fs.md "Commit log"): a commit
 * that changes only the content of files already in the metadata (their
 * roots, sizes and times) appends one sealed record instead of rewriting the
 * whole metadata; opening the volume replays the records that follow the
 * metadata's version (pf__log_scan, then pf__log_replay). The full metadata
 * (a checkpoint) is written again at any namespace change, every
 * PF_LOG_MAX_RECORDS records or PF_LOG_MAX_BYTES of log, and at close; the
 * records before it are then spent: the next one is written at offset 0 over
 * them (a replay skips records at or below the metadata's version, and a
 * record cut by a later shorter one ends the log).
 *
 * A record: header (the AAD) magic[8] version u64 body_size u32 flags u32
 * iv[12] reserved u32, then the body sealed with AES-256-GCM under the log key
 * (HKDF of the volume key, "log"), then the tag. Body: count u32 reserved u32,
 * then count entries of ino u64 size u64 atime mtime ctime (i64 ns) root[32]. */
#include "pf/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

/* Records are read from at most this much of the log: the writer checkpoints
 * before PF_LOG_MAX_BYTES, and one record is at most PF_LOG_REC_MAX. */
#define PF_LOG_READ_MAX (PF_LOG_MAX_BYTES + 2 * PF_LOG_REC_MAX)

static size_t body_size_of(size_t count)
{
	return 8 + count * PF_LOG_ENTRY_SIZE;
}

static size_t ns_size(const struct pf_log_ns *e)
{
	return PF_LOG_NS_FIXED + (e->op == PF_LOG_NS_CREATE ? PF_LOG_NS_CREATE_EXTRA : 0) + e->len;
}

static size_t slot_size(const struct pf_log_slot *sl)
{
	return PF_LOG_SLOT_FIXED + PF_SLOT_META + sl->len;
}

static size_t rec_body_size(const struct pf_log_rec *rec)
{
	size_t size = body_size_of(rec->count);

	if (rec->flags & PF_LOG_NS) {
		size += 8;
		for (size_t i = 0; i < rec->nns; i++)
			size += ns_size(&rec->ns[i]);
	}
	if (rec->flags & PF_LOG_DATA) {
		size += 8;
		for (size_t i = 0; i < rec->nslots; i++)
			size += slot_size(&rec->slots[i]);
	}
	return size;
}

static uint8_t *put_ns(uint8_t *p, const struct pf_log_ns *e)
{
	p[0] = e->op;
	p[1] = e->len;
	p[2] = p[3] = 0;
	pf__put_u64(p + 4, e->parent);
	pf__put_u64(p + 12, e->ino);
	pf__put_u64(p + 20, (uint64_t)e->pmtime_ns);
	pf__put_u64(p + 28, (uint64_t)e->pctime_ns);
	p += PF_LOG_NS_FIXED;
	if (e->op == PF_LOG_NS_CREATE) {
		pf__put_u32(p, e->mode);
		pf__put_u32(p + 4, e->uid);
		pf__put_u32(p + 8, e->gid);
		pf__put_u32(p + 12, e->kind);
		memcpy(p + 16, e->key, PF_KEY_SIZE);
		memcpy(p + 16 + PF_KEY_SIZE, e->file_id, PF_FILE_ID_SIZE);
		memcpy(p + 16 + PF_KEY_SIZE + PF_FILE_ID_SIZE, e->backing, PF_BACKING_ID_SIZE);
		p += PF_LOG_NS_CREATE_EXTRA;
	}
	memcpy(p, e->name, e->len);
	return p + e->len;
}

int pf__log_seal(const struct pf_meta_keys *k, const struct pf_log_rec *rec, uint8_t **out,
		 size_t *out_size)
{
	bool ns = rec->flags & PF_LOG_NS;
	size_t bsize = rec_body_size(rec), total = PF_LOG_HDR_SIZE + bsize + PF_TAG_SIZE;
	uint8_t *buf = NULL, *body = NULL, *p;
	kc_aead_t *a = NULL;
	int ret = -ENOMEM;

	*out = NULL;
	*out_size = 0;
	if (rec->count > PF_LOG_MAX_FILES || (!ns && rec->count == 0) ||
	    (ns && (rec->nns == 0 || rec->nns > PF_LOG_MAX_NS)))
		return -EINVAL;
	if (rec->flags & PF_LOG_DATA) {
		size_t bytes = 0;

		for (size_t i = 0; i < rec->nslots; i++)
			bytes += PF_SLOT_META + rec->slots[i].len;
		if ((rec->flags & PF_LOG_ONEPHASE) || rec->nslots == 0 ||
		    rec->nslots > PF_LOG_MAX_SLOTS || bytes > PF_LOG_DATA_MAX)
			return -EINVAL;
	}
	buf = calloc(1, total);
	body = calloc(1, bsize);
	if (!buf || !body)
		goto out;
	memcpy(buf, PF_LOG_MAGIC, 8);
	pf__put_u64(buf + 8, rec->version);
	pf__put_u32(buf + 16, (uint32_t)bsize);
	pf__put_u32(buf + 20, rec->flags);
	ret = pf__nonces(buf + 24, 1);
	if (ret)
		goto out;
	pf__put_u32(body, (uint32_t)rec->count);
	p = body + 8;
	if (ns) {
		pf__put_u32(body + 4, (uint32_t)rec->nns);
		pf__put_u64(p, rec->next_ino);
		p += 8;
		for (size_t i = 0; i < rec->nns; i++)
			p = put_ns(p, &rec->ns[i]);
	}
	for (size_t i = 0; i < rec->count; i++, p += PF_LOG_ENTRY_SIZE) {
		const struct pf_log_entry *e = &rec->ents[i];

		pf__put_u64(p, e->ino);
		pf__put_u64(p + 8, e->size);
		pf__put_u64(p + 16, (uint64_t)e->atime_ns);
		pf__put_u64(p + 24, (uint64_t)e->mtime_ns);
		pf__put_u64(p + 32, (uint64_t)e->ctime_ns);
		memcpy(p + 40, e->root, PF_ROOT_SIZE);
	}
	if (rec->flags & PF_LOG_DATA) {
		pf__put_u32(p, (uint32_t)rec->nslots);
		p += 8;
		for (size_t i = 0; i < rec->nslots; i++) {
			const struct pf_log_slot *sl = &rec->slots[i];

			pf__put_u64(p, sl->ino);
			pf__put_u64(p + 8, sl->idx);
			pf__put_u32(p + 16, sl->len);
			memcpy(p + PF_LOG_SLOT_FIXED, sl->slot, PF_SLOT_META + sl->len);
			p += slot_size(sl);
		}
	}
	a = kc_aead_new(k->log);
	if (!a) {
		ret = -KILN_ECRYPTO;
		goto out;
	}
	ret = kc_aead_seal(a, buf + 24, buf, PF_LOG_HDR_SIZE, body, bsize, buf + PF_LOG_HDR_SIZE,
			   buf + PF_LOG_HDR_SIZE + bsize);
	if (ret)
		goto out;
	*out = buf;
	*out_size = total;
	buf = NULL;
out:
	kc_aead_free(a);
	if (body)
		kiln_free_secret(body, bsize);
	free(buf);
	return ret;
}

void pf__log_rec_clear(struct pf_log_rec *rec)
{
	free(rec->ents);
	free(rec->slots);
	free(rec->dbuf);
	if (rec->ns)
		kiln_free_secret(rec->ns, rec->nns * sizeof(*rec->ns));
	memset(rec, 0, sizeof(*rec));
}

/* One namespace entry at body[*off..size): checked alone (the order and the
 * pairing with the files are checked by the caller). */
static int get_ns(const uint8_t *body, size_t size, size_t *off, size_t i,
		  struct pf_log_ns *e, struct kiln_err *err)
{
	const uint8_t *p = body + *off;
	size_t left = size - *off;

	if (left < PF_LOG_NS_FIXED)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu cut", i);
	e->op = p[0];
	e->len = p[1];
	e->parent = pf__get_u64(p + 4);
	e->ino = pf__get_u64(p + 12);
	e->pmtime_ns = (int64_t)pf__get_u64(p + 20);
	e->pctime_ns = (int64_t)pf__get_u64(p + 28);
	if (e->op != PF_LOG_NS_CREATE && e->op != PF_LOG_NS_UNLINK)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu: "
				    "operation %u", i, e->op);
	if (p[2] || p[3])
		return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu: "
				    "reserved field set", i);
	if (left < ns_size(e))
		return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu cut", i);
	if (e->parent < PF_ROOT_INO || e->ino <= PF_ROOT_INO || e->parent == e->ino)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu: "
				    "inode %llu in directory %llu out of range", i,
				    (unsigned long long)e->ino, (unsigned long long)e->parent);
	p += PF_LOG_NS_FIXED;
	if (e->op == PF_LOG_NS_CREATE) {
		e->mode = pf__get_u32(p);
		e->uid = pf__get_u32(p + 4);
		e->gid = pf__get_u32(p + 8);
		e->kind = pf__get_u32(p + 12);
		memcpy(e->key, p + 16, PF_KEY_SIZE);
		memcpy(e->file_id, p + 16 + PF_KEY_SIZE, PF_FILE_ID_SIZE);
		memcpy(e->backing, p + 16 + PF_KEY_SIZE + PF_FILE_ID_SIZE, PF_BACKING_ID_SIZE);
		p += PF_LOG_NS_CREATE_EXTRA;
		if (e->mode > 07777 || !pf__kind_ok(e->kind))
			return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry "
					    "%zu: mode %o, region kind %u", i, e->mode, e->kind);
	}
	if (!pf__name_ok((const char *)p, e->len))
		return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu: "
				    "invalid name", i);
	memcpy(e->name, p, e->len);
	e->name[e->len] = '\0';
	*off += ns_size(e);
	return 0;
}

/* The namespace part of a PF_LOG_NS body: next_ino, then nns entries, each
 * created inode new to the record, below next_ino, never also unlinked. */
static int decode_ns(const uint8_t *body, size_t size, size_t *off, struct pf_log_rec *rec,
		     struct kiln_err *err)
{
	size_t nns = pf__get_u32(body + 4);

	if (nns == 0 || nns > PF_LOG_MAX_NS)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: %zu namespace entries "
				    "(1..%u)", nns, PF_LOG_MAX_NS);
	if (size < 16)
		return kiln_err_set(err, -KILN_ETRUNC, "log record: body of %zu bytes", size);
	rec->next_ino = pf__get_u64(body + 8);
	rec->ns = calloc(nns, sizeof(*rec->ns));
	if (!rec->ns)
		return -ENOMEM;
	rec->nns = nns;
	*off = 16;
	for (size_t i = 0; i < nns; i++) {
		struct pf_log_ns *e = &rec->ns[i];
		int ret = get_ns(body, size, off, i, e, err);

		if (ret)
			return ret;
		if (e->op == PF_LOG_NS_CREATE && e->ino >= rec->next_ino)
			return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu: "
					    "inode %llu not below the next inode %llu", i,
					    (unsigned long long)e->ino,
					    (unsigned long long)rec->next_ino);
		for (size_t j = 0; j < i; j++) {
			if (rec->ns[j].ino == e->ino &&
			    (rec->ns[j].op == PF_LOG_NS_CREATE || e->op == PF_LOG_NS_CREATE))
				return kiln_err_set(err, -KILN_EFORMAT, "log record: namespace "
						    "entry %zu: inode %llu created and named "
						    "again in one record", i,
						    (unsigned long long)e->ino);
		}
	}
	return 0;
}

/* The data part of a PF_LOG_DATA body (p[size], after the file entries,
 * which rec holds): the slots, each of a file of the record, each (ino,
 * chunk) once, at most PF_LOG_DATA_MAX bytes of slots. Whether a chunk lies
 * within its file is checked at the replay (the chunk size is the volume's). */
static int decode_data(const uint8_t *p, size_t size, struct pf_log_rec *rec,
		       struct kiln_err *err)
{
	size_t nslots, off = 8, bytes = 0;

	if (size < 8)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: data part cut");
	nslots = pf__get_u32(p);
	if (nslots == 0 || nslots > PF_LOG_MAX_SLOTS)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: %zu slots (1..%u)", nslots,
				    (unsigned)PF_LOG_MAX_SLOTS);
	if (pf__get_u32(p + 4) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: reserved field set");
	rec->dbuf = malloc(size);
	rec->slots = calloc(nslots, sizeof(*rec->slots));
	if (!rec->dbuf || !rec->slots)
		return -ENOMEM;
	memcpy(rec->dbuf, p, size);
	for (size_t i = 0; i < nslots; i++) {
		struct pf_log_slot *sl = &rec->slots[i];
		bool named = false;

		if (size - off < PF_LOG_SLOT_FIXED)
			return kiln_err_set(err, -KILN_EFORMAT, "log record: slot %zu cut", i);
		sl->ino = pf__get_u64(p + off);
		sl->idx = pf__get_u64(p + off + 8);
		sl->len = pf__get_u32(p + off + 16);
		if (pf__get_u32(p + off + 20) != 0)
			return kiln_err_set(err, -KILN_EFORMAT, "log record: slot %zu: reserved "
					    "field set", i);
		if (sl->len == 0 || sl->len > PF_MAX_CHUNK_SIZE ||
		    sl->idx > PF_MAX_FILE_SIZE / PF_MIN_CHUNK_SIZE)
			return kiln_err_set(err, -KILN_EFORMAT, "log record: slot %zu: chunk %llu "
					    "of %u bytes out of range", i,
					    (unsigned long long)sl->idx, sl->len);
		bytes += PF_SLOT_META + sl->len;
		if (bytes > PF_LOG_DATA_MAX)
			return kiln_err_set(err, -KILN_EFORMAT, "log record: slots of more than "
					    "%u bytes", PF_LOG_DATA_MAX);
		if (size - off - PF_LOG_SLOT_FIXED < PF_SLOT_META + (size_t)sl->len)
			return kiln_err_set(err, -KILN_EFORMAT, "log record: slot %zu cut", i);
		sl->slot = rec->dbuf + off + PF_LOG_SLOT_FIXED;
		for (size_t j = 0; j < rec->count && !named; j++)
			named = rec->ents[j].ino == sl->ino;
		if (!named)
			return kiln_err_set(err, -KILN_EFORMAT, "log record: slot %zu: inode %llu "
					    "has no file entry", i, (unsigned long long)sl->ino);
		for (size_t j = 0; j < i; j++)
			if (rec->slots[j].ino == sl->ino && rec->slots[j].idx == sl->idx)
				return kiln_err_set(err, -KILN_EFORMAT, "log record: slot %zu: "
						    "chunk %llu of inode %llu twice", i,
						    (unsigned long long)sl->idx,
						    (unsigned long long)sl->ino);
		off += slot_size(sl);
		rec->nslots = i + 1;
	}
	if (off != size)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: %zu bytes after the slots",
				    size - off);
	return 0;
}

int pf__log_body_decode(const uint8_t *body, size_t size, uint32_t flags,
			struct pf_log_rec *rec, struct kiln_err *err)
{
	bool ns = flags & PF_LOG_NS, data = flags & PF_LOG_DATA;
	size_t off = 8;
	uint64_t count;
	int ret;

	memset(rec, 0, sizeof(*rec));
	if (size < 8)
		return kiln_err_set(err, -KILN_ETRUNC, "log record: body of %zu bytes", size);
	count = pf__get_u32(body);
	if ((!ns && count == 0) || count > PF_LOG_MAX_FILES)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: %llu files (%u..%u)",
				    (unsigned long long)count, ns ? 0 : 1, PF_LOG_MAX_FILES);
	if (!ns && pf__get_u32(body + 4) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: reserved field set");
	if (ns && (ret = decode_ns(body, size, &off, rec, err)))
		goto bad;
	if (data ? size - off < count * PF_LOG_ENTRY_SIZE :
		   size - off != count * PF_LOG_ENTRY_SIZE) {
		ret = kiln_err_set(err, -KILN_EFORMAT, "log record: %llu files in %zu bytes",
				   (unsigned long long)count, size - off);
		goto bad;
	}
	rec->ents = calloc(count ? count : 1, sizeof(*rec->ents));
	if (!rec->ents) {
		ret = -ENOMEM;
		goto bad;
	}
	for (size_t i = 0; i < count; i++) {
		const uint8_t *p = body + off + i * PF_LOG_ENTRY_SIZE;
		struct pf_log_entry *e = &rec->ents[i];

		e->ino = pf__get_u64(p);
		e->size = pf__get_u64(p + 8);
		e->atime_ns = (int64_t)pf__get_u64(p + 16);
		e->mtime_ns = (int64_t)pf__get_u64(p + 24);
		e->ctime_ns = (int64_t)pf__get_u64(p + 32);
		memcpy(e->root, p + 40, PF_ROOT_SIZE);
		if (e->ino <= PF_ROOT_INO || e->size > PF_MAX_FILE_SIZE) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "log record: file %zu: inode %llu, "
					   "size %llu out of range", i, (unsigned long long)e->ino,
					   (unsigned long long)e->size);
			goto bad;
		}
		/* One entry per file: a second one would make the order matter. */
		for (size_t j = 0; j < i; j++) {
			if (rec->ents[j].ino == e->ino) {
				ret = kiln_err_set(err, -KILN_EFORMAT, "log record: inode %llu "
						   "named twice", (unsigned long long)e->ino);
				goto bad;
			}
		}
		/* A file this record removes has no contents in it. */
		for (size_t j = 0; j < rec->nns; j++) {
			if (rec->ns[j].op == PF_LOG_NS_UNLINK && rec->ns[j].ino == e->ino) {
				ret = kiln_err_set(err, -KILN_EFORMAT, "log record: file %zu: "
						   "inode %llu unlinked in the same record", i,
						   (unsigned long long)e->ino);
				goto bad;
			}
		}
	}
	rec->count = count;
	/* A created file's contents come with it: its file entry. */
	for (size_t j = 0; j < rec->nns; j++) {
		bool found = rec->ns[j].op != PF_LOG_NS_CREATE;

		for (size_t i = 0; i < count && !found; i++)
			found = rec->ents[i].ino == rec->ns[j].ino;
		if (!found) {
			ret = kiln_err_set(err, -KILN_EFORMAT, "log record: namespace entry %zu: "
					   "created inode %llu has no file entry", j,
					   (unsigned long long)rec->ns[j].ino);
			goto bad;
		}
	}
	if (data && (ret = decode_data(body + off + count * PF_LOG_ENTRY_SIZE,
				       size - off - count * PF_LOG_ENTRY_SIZE, rec, err)))
		goto bad;
	return 0;
bad:
	pf__log_rec_clear(rec);
	return ret;
}

int pf__log_open_rec(const struct pf_meta_keys *k, const uint8_t *buf, size_t size,
		     struct pf_log_rec *rec, struct kiln_err *err)
{
	uint8_t *body = NULL;
	uint32_t bsize, flags;
	kc_aead_t *a;
	int ret;

	memset(rec, 0, sizeof(*rec));
	if (size < PF_LOG_HDR_SIZE)
		return kiln_err_set(err, -KILN_ETRUNC, "log record: header cut (%zu bytes)", size);
	if (memcmp(buf, PF_LOG_MAGIC, 8) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: bad magic");
	bsize = pf__get_u32(buf + 16);
	flags = pf__get_u32(buf + 20);
	if ((flags & ~(PF_LOG_ONEPHASE | PF_LOG_NS | PF_LOG_DATA)) != 0 ||
	    pf__get_u32(buf + 36) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: reserved field set");
	/* A data record vouches for itself: no journal takes part. */
	if ((flags & PF_LOG_ONEPHASE) && (flags & PF_LOG_DATA))
		return kiln_err_set(err, -KILN_EFORMAT, "log record: one-phase with data");
	if (flags & PF_LOG_DATA ? bsize < 16 || bsize > PF_LOG_REC_MAX :
	    !(flags & PF_LOG_NS) ? bsize < 8 || bsize > body_size_of(PF_LOG_MAX_FILES) ||
				   (bsize - 8) % PF_LOG_ENTRY_SIZE != 0 :
				   bsize < 16 || bsize > PF_LOG_REC_MAX)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: body size %u", bsize);
	if (size - PF_LOG_HDR_SIZE < (size_t)bsize + PF_TAG_SIZE)
		return kiln_err_set(err, -KILN_ETRUNC, "log record: cut (%zu of %zu bytes)", size,
				    PF_LOG_HDR_SIZE + (size_t)bsize + PF_TAG_SIZE);
	body = malloc(bsize);
	if (!body)
		return -ENOMEM;
	a = kc_aead_new(k->log);
	if (!a) {
		free(body);
		return -KILN_ECRYPTO;
	}
	ret = kc_aead_open(a, buf + 24, buf, PF_LOG_HDR_SIZE, buf + PF_LOG_HDR_SIZE, bsize, body,
			   buf + PF_LOG_HDR_SIZE + bsize);
	kc_aead_free(a);
	if (ret) {
		ret = kiln_err_set(err, ret == -KILN_EAUTH ? ret : -KILN_ECRYPTO,
				   "log record: authentication failed");
		goto out;
	}
	ret = pf__log_body_decode(body, bsize, flags, rec, err);
	if (ret)
		goto out;
	rec->version = pf__get_u64(buf + 8);
	rec->flags = flags;
	rec->size = PF_LOG_HDR_SIZE + (size_t)bsize + PF_TAG_SIZE;
out:
	kiln_free_secret(body, bsize);
	return ret;
}

void pf__log_scan_clear(struct pf_log_scan *s)
{
	for (size_t i = 0; i < s->count; i++)
		pf__log_rec_clear(&s->recs[i]);
	free(s->recs);
	memset(s, 0, sizeof(*s));
}

int pf__log_parse(const struct pf_meta_keys *k, const uint8_t *buf, size_t size, uint64_t base,
		  uint64_t admit, struct pf_log_scan *s)
{
	size_t off = 0;

	memset(s, 0, sizeof(*s));
	s->version = base;
	while (off < size) {
		struct pf_log_rec rec;
		struct pf_log_rec *nr;

		/* A record that does not open ends the log: it was being written
		 * (its commit never acknowledged) or is what a spent log left. */
		if (pf__log_open_rec(k, buf + off, size - off, &rec, NULL) != 0)
			break;
		if (rec.version <= s->version) {
			/* Spent: covered by the metadata or an earlier record. */
			off += rec.size;
			pf__log_rec_clear(&rec);
			continue;
		}
		/* A gap, or a version the trusted store never prepared: the
		 * commit of that record never completed. */
		if (rec.version != s->version + 1 || rec.version > admit) {
			pf__log_rec_clear(&rec);
			break;
		}
		nr = realloc(s->recs, (s->count + 1) * sizeof(*nr));
		if (!nr) {
			pf__log_rec_clear(&rec);
			pf__log_scan_clear(s);
			return -ENOMEM;
		}
		off += rec.size;
		rec.end = off;
		s->recs = nr;
		s->recs[s->count++] = rec;
		s->version = rec.version;
		s->end = off;
	}
	return 0;
}

int pf__log_scan(pf_volume_t *v, uint64_t base, struct pf_log_scan *s, struct kiln_err *err)
{
	uint64_t size = 0, c = 0, p = 0, admit = UINT64_MAX;
	uint8_t *buf = NULL;
	void *fh = NULL;
	ssize_t n;
	int ret;

	memset(s, 0, sizeof(*s));
	s->version = base;
	ret = v->so->open(v->sctx, PF_LOG_NAME, PF_SO_RDONLY, &fh);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return kiln_err_set(err, ret, "commit log (.kiln/%s): %s", PF_LOG_NAME,
				    kiln_strerror(ret));
	ret = v->so->get_size(v->sctx, fh, &size);
	if (ret || size == 0)
		goto out;
	if (size > PF_LOG_READ_MAX)
		size = PF_LOG_READ_MAX;
	buf = malloc(size);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	n = v->so->pread(v->sctx, fh, buf, size, 0);
	if (n < 0) {
		ret = (int)n;
		goto out;
	}
	ret = pf__log_parse(&v->mk, buf, (size_t)n, base, UINT64_MAX, s);
	if (ret || s->count == 0 || !v->fo)
		goto out;
	/* Records the trusted store never prepared are not replayed. (Asked
	 * only when there are records: for a CAS it is a round trip.) */
	ret = pf__fresh_current(v, s->recs[s->count - 1].version, &c, &p, err);
	if (!ret || ret == -ENOENT) {
		s->asked = true;
		s->fresh_ret = ret;
		s->fresh_c = c;
		s->fresh_p = p;
	}
	if (ret == -ENOENT)
		ret = 0; /* nothing trusted yet: pf__check_freshness decides */
	else if (!ret)
		admit = c > p ? c : p;
	if (ret) {
		pf__log_scan_clear(s);
		goto out_msg;
	}
	while (s->count > 0 && s->recs[s->count - 1].version > admit)
		pf__log_rec_clear(&s->recs[--s->count]);
	s->version = s->count ? s->recs[s->count - 1].version : base;
	s->end = s->count ? s->recs[s->count - 1].end : 0;
out:
	if (ret && !(err && err->code))
		kiln_err_set(err, ret, "commit log (.kiln/%s): %s", PF_LOG_NAME,
			     kiln_strerror(ret));
out_msg:
	v->so->close(v->sctx, fh);
	free(buf);
	return ret;
}

/* Does the backing file of ent's file, which rec itself created (made), hold
 * ent's state? A new file has no journal from before: its content is checked
 * against the root the record carries. Or a journal of it names that state
 * in its header: a generation began on it (after the commit completed) and
 * may have written in place since, which its recovery puts back. */
static int vouch_created(pf_volume_t *v, const struct pf_log_ns *made,
			 const struct pf_log_entry *ent, bool *yes)
{
	struct pf_inode e = { .ino = ent->ino, .type = PF_TYPE_REG, .kind = made->kind,
			      .root_fmt = PF_ROOT_TREE, .size = ent->size };
	char name[PF_BNAME_MAX];
	int ret;

	memcpy(e.key, made->key, PF_KEY_SIZE);
	memcpy(e.file_id, made->file_id, PF_FILE_ID_SIZE);
	memcpy(e.backing, made->backing, PF_BACKING_ID_SIZE);
	memcpy(e.root, ent->root, PF_ROOT_SIZE);
	ret = pf__node_vouches(v, &e, yes);
	kiln_wipe(e.key, sizeof(e.key));
	if (ret || *yes)
		return ret;
	pf__backing_name(made->backing, name);
	return pf__journal_names(v, name, made->file_id, ent->root, ent->size, yes);
}

int pf__log_vouch(pf_volume_t *v, const struct pf_meta *m, struct pf_log_scan *s)
{
	const struct pf_log_rec *rec = s->count ? &s->recs[s->count - 1] : NULL;
	bool yes = true;
	int ret = 0;

	/* Only the last record: a commit starts after the one before it
	 * completed, so every earlier one's sync group did. */
	if (!rec || !(rec->flags & PF_LOG_ONEPHASE))
		return 0;
	for (size_t i = 0; i < rec->count && yes && !ret; i++) {
		const struct pf_meta_inode *in = NULL;
		const struct pf_log_ns *made = NULL;
		char name[PF_BNAME_MAX];
		size_t r = 0;

		/* A file a record created is not in the metadata: its backing
		 * file and id are in that record's entry. */
		for (; r < s->count && !made; r++)
			for (size_t k = 0; k < s->recs[r].nns && !made; k++)
				if (s->recs[r].ns[k].op == PF_LOG_NS_CREATE &&
				    s->recs[r].ns[k].ino == rec->ents[i].ino)
					made = &s->recs[r].ns[k];
		/* Created by this record (r is one past the record found). */
		if (made && r == s->count) {
			ret = vouch_created(v, made, &rec->ents[i], &yes);
			continue;
		}
		for (size_t k = 0; k < m->ninodes && !in && !made; k++)
			if (m->inodes[k].ino == rec->ents[i].ino)
				in = &m->inodes[k];
		/* Not a file of the metadata: pf__log_replay refuses it. */
		if (!made && (!in || in->type != PF_TYPE_REG))
			continue;
		pf__backing_name(made ? made->backing : in->backing, name);
		ret = pf__journal_vouches(v, name, made ? made->file_id : in->file_id,
					  rec->ents[i].root, rec->ents[i].size, &yes);
	}
	if (ret || yes)
		return ret;
	/* Its sync group did not finish: never acknowledged. Its version
	 * stays used (the provider holds it at most: pf__versions_known). */
	pf__log_rec_clear(&s->recs[--s->count]);
	s->version--; /* the records follow each other */
	s->end = s->count ? s->recs[s->count - 1].end : 0;
	return 0;
}

/* Apply namespace entry i of rec to v's tables, or refuse with a message
 * naming both. */
static int replay_ns(pf_volume_t *v, const struct pf_log_rec *rec, size_t i, struct kiln_err *err)
{
	const struct pf_log_ns *e = &rec->ns[i];
	struct pf_inode *dir = pf__ino_find(v, e->parent), *in;
	struct pf_dent *d;
	const char *why = NULL;
	int ret;

	if (!dir || dir->type != PF_TYPE_DIR || (!dir->names && dir != v->root)) {
		why = "its directory is not a directory of the volume";
		goto refuse;
	}
	d = pf__dent_find(v, dir, e->name, e->len);
	if (e->op == PF_LOG_NS_UNLINK) {
		if (!d || d->inode->ino != e->ino || d->inode->type != PF_TYPE_REG) {
			why = "the name does not name that file";
			goto refuse;
		}
		in = d->inode;
		pf__dent_del(v, d);
		/* Its backing file is an orphan now (collected at a read-write
		 * open), or goes with the next checkpoint. */
		pf__inode_release(v, in);
	} else {
		if (d) {
			why = "the name exists";
			goto refuse;
		}
		/* Numbers are never reused: a create takes one above all before. */
		if (pf__ino_find(v, e->ino) || e->ino < v->next_ino) {
			why = "the inode number was used before";
			goto refuse;
		}
		in = pf__inode_alloc(v, e->ino, PF_TYPE_REG);
		if (!in)
			return -ENOMEM;
		in->mode = e->mode;
		in->uid = e->uid;
		in->gid = e->gid;
		in->kind = e->kind;
		in->root_fmt = PF_ROOT_TREE;
		memcpy(in->key, e->key, PF_KEY_SIZE);
		memcpy(in->file_id, e->file_id, PF_FILE_ID_SIZE);
		memcpy(in->backing, e->backing, PF_BACKING_ID_SIZE);
		in->in_meta = true; /* its file entry (checked by the parser) sets the rest */
		if ((ret = pf__ino_insert(v, in))) {
			pf__inode_free(in);
			return ret;
		}
		if ((ret = pf__dent_add(v, dir, e->name, e->len, in, NULL))) {
			pf__inode_release(v, in);
			return ret;
		}
	}
	dir->mtime_ns = e->pmtime_ns;
	dir->ctime_ns = e->pctime_ns;
	return 0;
refuse:
	return kiln_err_set(err, -KILN_ECORRUPT, "commit log: record %llu, namespace entry %zu "
			    "(%s of '%s', inode %llu in directory %llu) does not apply: %s",
			    (unsigned long long)rec->version, i,
			    e->op == PF_LOG_NS_CREATE ? "create" : "unlink", e->name,
			    (unsigned long long)e->ino, (unsigned long long)e->parent, why);
}

int pf__log_replay(pf_volume_t *v, const struct pf_log_scan *s, struct kiln_err *err)
{
	for (size_t r = 0; r < s->count; r++) {
		const struct pf_log_rec *rec = &s->recs[r];
		int ret;

		for (size_t i = 0; i < rec->nns; i++)
			if ((ret = replay_ns(v, rec, i, err)))
				return ret;
		if (rec->nns) {
			if (rec->next_ino < v->next_ino)
				return kiln_err_set(err, -KILN_ECORRUPT, "commit log: record %llu: "
						    "next inode %llu below %llu",
						    (unsigned long long)rec->version,
						    (unsigned long long)rec->next_ino,
						    (unsigned long long)v->next_ino);
			v->next_ino = rec->next_ino;
		}
		for (size_t i = 0; i < rec->count; i++) {
			const struct pf_log_entry *e = &rec->ents[i];
			struct pf_inode *in = pf__ino_find(v, e->ino);

			/* Authentic, so written by this volume's key holder against
			 * this metadata: anything else is a corrupt volume. */
			if (!in || in->type != PF_TYPE_REG || !in->in_meta || !in->names)
				return kiln_err_set(err, -KILN_ECORRUPT, "commit log: record %llu "
						    "names inode %llu, not a file of the volume",
						    (unsigned long long)rec->version,
						    (unsigned long long)e->ino);
			memcpy(in->root, e->root, PF_ROOT_SIZE);
			in->root_fmt = PF_ROOT_TREE;
			in->size = e->size;
			in->atime_ns = e->atime_ns;
			in->mtime_ns = e->mtime_ns;
			in->ctime_ns = e->ctime_ns;
		}
	}
	/* Unlinked files' backing files: orphans of the replayed namespace
	 * (collect_orphans), not removals waiting for a commit. */
	while (v->pending) {
		struct pf_pending *p = v->pending;

		v->pending = p->next;
		free(p);
	}
	v->log_off = s->end;
	v->log_records = (uint32_t)s->count;
	return 0;
}

/* One slot pf__log_place puts in place, and the record carrying it. */
struct place {
	const struct pf_log_slot *sl;
	uint64_t version;
};

static int place_cmp(const void *a, const void *b)
{
	const struct pf_log_slot *x = ((const struct place *)a)->sl;
	const struct pf_log_slot *y = ((const struct place *)b)->sl;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Drop the slots of ino from ps[*np]: all of them (size NULL) when a later
 * record sets its state without them (written only once the file's data was
 * synced) or removes it; those that do not fit a file of *size bytes when a
 * later data record shrank it (a truncate in a whole generation): a chunk past
 * its new end, or a last chunk now shorter, which that record carries anew. */
static void place_drop(pf_volume_t *v, struct place *ps, size_t *np, uint64_t ino,
		       const uint64_t *size)
{
	size_t k = 0;

	for (size_t i = 0; i < *np; i++) {
		const struct pf_log_slot *sl = ps[i].sl;

		if (sl->ino != ino || (size && sl->idx < pf__nchunks(v, *size) &&
				       sl->len == pf__chunk_len(v, *size, sl->idx)))
			ps[k++] = ps[i];
	}
	*np = k;
}

/* Put the slots ps[0..n) of one file (in, sorted by chunk) in its backing
 * file and sync it; or, read-only, compare them with what it holds. */
static int place_file(pf_volume_t *v, struct pf_inode *in, const struct place *ps, size_t n,
		      struct kiln_err *err)
{
	char name[PF_BNAME_MAX];
	uint64_t phys = 0;
	uint8_t *buf = NULL;
	void *fh = NULL;
	int ret;

	pf__backing_name(in->backing, name);
	ret = v->so->open(v->sctx, name, v->read_only ? PF_SO_RDONLY : PF_SO_CREATE, &fh);
	if (ret == -ENOENT && v->read_only) {
		in->log_unplaced = true;
		return 0;
	}
	if (!ret)
		ret = v->so->get_size(v->sctx, fh, &phys);
	if (ret)
		goto out;
	if (v->read_only) {
		buf = malloc(v->stride);
		if (!buf) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n && !in->log_unplaced; i++) {
			size_t len = PF_SLOT_META + ps[i].sl->len;

			in->log_unplaced = pf__st_pread_pad(v, fh, buf, len,
							    pf__slot_off(v, ps[i].sl->idx)) != 0 ||
					   memcmp(buf, ps[i].sl->slot, len) != 0;
		}
		goto out;
	}
	/* A file the log created may have lost its header with its name: it
	 * is the create entry's (its id, kind, the volume's chunk size). */
	if (phys < PF_HDR_SIZE) {
		struct pf_header h = { .version = PF_HDR_VERSION, .kind = in->kind,
				       .chunk_size = v->cs };
		uint8_t hdr[PF_HDR_SIZE];

		memcpy(h.file_id, in->file_id, PF_FILE_ID_SIZE);
		pf__header_encode(&h, hdr);
		if ((ret = pf__st_pwrite_all(v, fh, hdr, sizeof(hdr), 0)))
			goto out;
	}
	for (size_t i = 0; i < n && !ret; i++)
		ret = pf__st_pwrite_all(v, fh, ps[i].sl->slot, PF_SLOT_META + ps[i].sl->len,
					pf__slot_off(v, ps[i].sl->idx));
	if (!ret)
		ret = v->so->sync(v->sctx, fh);
	if (!ret && phys < PF_HDR_SIZE)
		ret = v->so->sync_dir(v->sctx);
out:
	free(buf);
	if (fh)
		v->so->close(v->sctx, fh);
	if (ret)
		kiln_err_set(err, ret, "commit log: file %s (inode %llu): cannot put its "
			     "record's data in place: %s", name, (unsigned long long)in->ino,
			     kiln_strerror(ret));
	return ret;
}

int pf__log_place(pf_volume_t *v, const struct pf_log_scan *s, struct kiln_err *err)
{
	struct place *ps = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;

	for (size_t r = 0; r < s->count; r++) {
		const struct pf_log_rec *rec = &s->recs[r];

		for (size_t i = 0; i < rec->nns; i++)
			if (rec->ns[i].op == PF_LOG_NS_UNLINK)
				place_drop(v, ps, &n, rec->ns[i].ino, NULL);
		for (size_t i = 0; i < rec->count; i++) {
			bool data = rec->flags & PF_LOG_DATA;
			struct pf_inode *in = data ? pf__ino_find(v, rec->ents[i].ino) : NULL;

			place_drop(v, ps, &n, rec->ents[i].ino, data ? &rec->ents[i].size : NULL);
			if (in)
				in->log_data = true;
		}
		if (!(rec->flags & PF_LOG_DATA))
			continue;
		for (size_t i = 0; i < rec->nslots; i++) {
			const struct pf_log_slot *sl = &rec->slots[i];
			size_t k = 0;

			/* The newest slot of a chunk wins. */
			while (k < n && !(ps[k].sl->ino == sl->ino && ps[k].sl->idx == sl->idx))
				k++;
			if (k == n) {
				if (n == cap) {
					struct place *np;

					cap = cap ? 2 * cap : 64;
					np = realloc(ps, cap * sizeof(*np));
					if (!np) {
						free(ps);
						return -ENOMEM;
					}
					ps = np;
				}
				n++;
			}
			ps[k].sl = sl;
			ps[k].version = rec->version;
		}
	}
	if (n)
		qsort(ps, n, sizeof(*ps), place_cmp);
	for (size_t i = 0, j; i < n && !ret; i = j) {
		struct pf_inode *in = pf__ino_find(v, ps[i].sl->ino);

		/* pf__log_replay checked that each names a file of the volume;
		 * a published namespace (meta.pub) may have removed it since. */
		for (j = i; j < n && ps[j].sl->ino == ps[i].sl->ino; j++)
			;
		if (!in || in->type != PF_TYPE_REG)
			continue;
		for (size_t k = i; k < j; k++) {
			const struct pf_log_slot *sl = ps[k].sl;

			if (sl->idx < pf__nchunks(v, in->size) &&
			    sl->len == pf__chunk_len(v, in->size, sl->idx))
				continue;
			ret = kiln_err_set(err, -KILN_ECORRUPT, "commit log: record %llu: its "
					   "slot of chunk %llu (%u bytes) does not fit inode %llu "
					   "of %llu bytes", (unsigned long long)ps[k].version,
					   (unsigned long long)sl->idx, sl->len,
					   (unsigned long long)sl->ino, (unsigned long long)in->size);
			break;
		}
		if (!ret)
			ret = place_file(v, in, ps + i, j - i, err);
	}
	free(ps);
	return ret;
}

/* Write a sealed record at the log's end. Past the file's end, zeros follow
 * it up to the next multiple of PF_LOG_AHEAD, in the same write: the records
 * after it are written over zeros, keeping the file's size, so their sync
 * is a data sync alone (on ext4 without a journal an append's fdatasync also
 * writes the inode and waits for it; with one, commits the journal). A
 * replay stops at the zeros, as at any record that does not open. */
static int log_write(pf_volume_t *v, const uint8_t *rec, size_t rec_size)
{
	uint64_t end = v->log_off + rec_size, ahead;
	uint8_t *buf;
	int ret;

	if (end <= v->log_size)
		return pf__st_pwrite_all(v, v->log_fh, rec, rec_size, v->log_off);
	ahead = (end + PF_LOG_AHEAD - 1) / PF_LOG_AHEAD * PF_LOG_AHEAD;
	buf = calloc(1, ahead - v->log_off);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, rec, rec_size);
	ret = pf__st_pwrite_all(v, v->log_fh, buf, ahead - v->log_off, v->log_off);
	free(buf);
	/* A failed write may have extended the file partly: unknown, so the
	 * next record past the last known size extends it again. */
	if (!ret)
		v->log_size = ahead;
	return ret;
}

/* The slots of n, a file the data record creates (pf_node.dnew): written in
 * place at once (a new file holds nothing back), read back from its backing
 * file into buf, each checked against the tag the root was made from. */
static int read_created(pf_volume_t *v, struct pf_node *n, uint8_t *buf, struct pf_log_rec *r)
{
	uint64_t nch = pf__nchunks(v, n->size);
	int ret = pf__tags_need(n, 0, nch, NULL);

	if (!ret)
		ret = pf__st_pread_pad(v, n->fh, buf, pf__expected_phys(v, n->size) - PF_HDR_SIZE,
				       PF_HDR_SIZE);
	for (uint64_t k = 0; k < nch && !ret; k++) {
		struct pf_log_slot *sl = &r->slots[r->nslots++];

		sl->ino = n->inode->ino;
		sl->idx = k;
		sl->len = pf__chunk_len(v, n->size, k);
		sl->slot = buf + k * v->stride;
		if (memcmp(sl->slot + PF_NONCE_SIZE, pf__tag(n, k), PF_TAG_SIZE) != 0)
			ret = -EIO; /* not what this process wrote */
	}
	return ret;
}

int pf__log_append(pf_volume_t *v, uint64_t version, uint32_t flags, size_t *size,
		   struct kiln_err *err)
{
	struct pf_log_rec r = { .version = version, .flags = flags };
	uint8_t *rec = NULL, *dbuf = NULL;
	size_t count = 0, rec_size = 0, dsize = 0;
	int ret;

	*size = 0;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		count += n->committing;
		if (n->committing && (flags & PF_LOG_DATA))
			r.nslots += n->wb_count;
		if (n->committing && n->dnew) {
			r.nslots += pf__nchunks(v, n->size);
			dsize += pf__expected_phys(v, n->size) - PF_HDR_SIZE;
		}
	}
	r.ents = calloc(count ? count : 1, sizeof(*r.ents));
	r.slots = calloc(r.nslots ? r.nslots : 1, sizeof(*r.slots));
	dbuf = dsize ? malloc(dsize) : NULL;
	if (!r.ents || !r.slots || (dsize && !dbuf)) {
		free(r.ents);
		free(r.slots);
		free(dbuf);
		return -ENOMEM;
	}
	r.nslots = 0;
	dsize = 0;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		struct pf_inode *in = n->inode;
		struct pf_log_entry *e = &r.ents[r.count];

		if (!n->committing)
			continue;
		/* A data record: the held slots, as they go in place. */
		for (size_t i = 0; (flags & PF_LOG_DATA) && i < n->wb_count; i++) {
			struct pf_log_slot *sl = &r.slots[r.nslots++];

			sl->ino = in->ino;
			sl->idx = n->wb_idx[i];
			sl->len = n->wb_len[i] - PF_SLOT_META;
			sl->slot = n->wb + i * v->stride;
		}
		if (n->dnew) {
			if ((ret = read_created(v, n, dbuf + dsize, &r)))
				goto out;
			dsize += pf__expected_phys(v, n->size) - PF_HDR_SIZE;
		}
		e->ino = in->ino;
		e->size = in->size;
		e->atime_ns = in->atime_ns;
		e->mtime_ns = in->mtime_ns;
		e->ctime_ns = in->ctime_ns;
		memcpy(e->root, in->root, PF_ROOT_SIZE);
		r.count++;
	}
	if (v->nnsops) {
		/* A created file's attributes as they are now (the commit's). */
		for (size_t i = 0; i < v->nnsops; i++) {
			struct pf_log_ns *e = &v->nsops[i];
			struct pf_inode *in = pf__ino_find(v, e->ino);

			if (e->op != PF_LOG_NS_CREATE || !in)
				continue;
			e->mode = in->mode;
			e->uid = in->uid;
			e->gid = in->gid;
			e->kind = in->kind;
			memcpy(e->key, in->key, PF_KEY_SIZE);
			memcpy(e->file_id, in->file_id, PF_FILE_ID_SIZE);
			memcpy(e->backing, in->backing, PF_BACKING_ID_SIZE);
		}
		r.flags |= PF_LOG_NS;
		r.ns = v->nsops;
		r.nns = v->nnsops;
		r.next_ino = v->next_ino;
	}
	*size = 0;
	ret = pf__log_seal(&v->mk, &r, &rec, &rec_size);
	if (ret)
		goto out;
	if (!v->log_fh) {
		ret = v->so->open(v->sctx, PF_LOG_NAME, PF_SO_CREATE, &v->log_fh);
		/* The log's name must be durable before a record in it counts. */
		if (!ret)
			ret = v->so->sync_dir(v->sctx);
		if (!ret)
			ret = v->so->get_size(v->sctx, v->log_fh, &v->log_size);
		if (ret)
			goto out;
	}
	ret = log_write(v, rec, rec_size);
	if (!ret)
		*size = rec_size;
out:
	if (ret)
		kiln_err_set(err, ret, "commit log (.kiln/%s): cannot write: %s", PF_LOG_NAME,
			     kiln_strerror(ret));
	free(rec);
	free(r.ents);
	free(r.slots);
	free(dbuf); /* sealed slots: nothing secret */
	return ret;
}

/* ---- namespace changes a record carries (v->nsops) ---- */

static struct pf_log_ns *nsop_add(pf_volume_t *v)
{
	if (v->nnsops == v->nsops_cap) {
		size_t cap = v->nsops_cap ? v->nsops_cap * 2 : 8;
		struct pf_log_ns *n;

		/* Past a record's limit the commit checkpoints anyway. */
		if (v->nnsops >= PF_LOG_MAX_NS)
			return NULL;
		n = realloc(v->nsops, cap * sizeof(*n));
		if (!n)
			return NULL;
		v->nsops = n;
		v->nsops_cap = cap;
	}
	memset(&v->nsops[v->nnsops], 0, sizeof(*v->nsops));
	return &v->nsops[v->nnsops++];
}

void pf__nsop_create(pf_volume_t *v, struct pf_inode *dir, struct pf_inode *in)
{
	struct pf_log_ns *e = in->names ? nsop_add(v) : NULL;

	if (!e) {
		v->ns_dirty = true;
		return;
	}
	e->op = PF_LOG_NS_CREATE;
	e->parent = dir->ino;
	e->ino = in->ino;
	e->pmtime_ns = dir->mtime_ns;
	e->pctime_ns = dir->ctime_ns;
	e->len = in->names->len;
	memcpy(e->name, in->names->name, e->len);
}

bool pf__nsop_created(const pf_volume_t *v, pf_ino_t ino)
{
	for (size_t i = 0; i < v->nnsops; i++)
		if (v->nsops[i].op == PF_LOG_NS_CREATE && v->nsops[i].ino == ino)
			return true;
	return false;
}

void pf__nsop_unlink(pf_volume_t *v, struct pf_dent *d)
{
	struct pf_log_ns *e;

	/* A file created since the last durable commit was never in it: its
	 * create goes, and nothing is recorded of it (its name was its only
	 * one: links checkpoint). */
	for (size_t i = 0; i < v->nnsops; i++) {
		if (v->nsops[i].op != PF_LOG_NS_CREATE || v->nsops[i].ino != d->inode->ino)
			continue;
		memmove(&v->nsops[i], &v->nsops[i + 1], (v->nnsops - i - 1) * sizeof(*v->nsops));
		v->nnsops--;
		return;
	}
	e = d->inode->type == PF_TYPE_REG ? nsop_add(v) : NULL;
	if (!e) {
		v->ns_dirty = true;
		return;
	}
	e->op = PF_LOG_NS_UNLINK;
	e->parent = d->dir->ino;
	e->ino = d->inode->ino;
	e->pmtime_ns = d->dir->mtime_ns;
	e->pctime_ns = d->dir->ctime_ns;
	e->len = d->len;
	memcpy(e->name, d->name, d->len);
}

void pf__nsops_clear(pf_volume_t *v)
{
	if (v->nsops)
		kiln_wipe(v->nsops, v->nsops_cap * sizeof(*v->nsops));
	v->nnsops = 0;
}
