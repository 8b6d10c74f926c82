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

int pf__log_seal(const struct pf_meta_keys *k, uint64_t version, uint32_t flags,
		 const struct pf_log_entry *ents, size_t count, uint8_t **out, size_t *out_size)
{
	size_t bsize = body_size_of(count), total = PF_LOG_HDR_SIZE + bsize + PF_TAG_SIZE;
	uint8_t *buf = NULL, *body = NULL;
	kc_aead_t *a = NULL;
	int ret = -ENOMEM;

	*out = NULL;
	*out_size = 0;
	if (count == 0 || count > PF_LOG_MAX_FILES)
		return -EINVAL;
	buf = calloc(1, total);
	body = calloc(1, bsize);
	if (!buf || !body)
		goto out;
	memcpy(buf, PF_LOG_MAGIC, 8);
	pf__put_u64(buf + 8, version);
	pf__put_u32(buf + 16, (uint32_t)bsize);
	pf__put_u32(buf + 20, flags);
	ret = kc_random(buf + 24, KC_AEAD_IV_SIZE);
	if (ret)
		goto out;
	pf__put_u32(body, (uint32_t)count);
	for (size_t i = 0; i < count; i++) {
		uint8_t *p = body + 8 + i * PF_LOG_ENTRY_SIZE;

		pf__put_u64(p, ents[i].ino);
		pf__put_u64(p + 8, ents[i].size);
		pf__put_u64(p + 16, (uint64_t)ents[i].atime_ns);
		pf__put_u64(p + 24, (uint64_t)ents[i].mtime_ns);
		pf__put_u64(p + 32, (uint64_t)ents[i].ctime_ns);
		memcpy(p + 40, ents[i].root, PF_ROOT_SIZE);
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
	memset(rec, 0, sizeof(*rec));
}

int pf__log_body_decode(const uint8_t *body, size_t size, struct pf_log_rec *rec,
			struct kiln_err *err)
{
	uint64_t count;

	rec->ents = NULL;
	rec->count = 0;
	if (size < 8)
		return kiln_err_set(err, -KILN_ETRUNC, "log record: body of %zu bytes", size);
	count = pf__get_u32(body);
	if (count == 0 || count > PF_LOG_MAX_FILES)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: %llu files (1..%u)",
				    (unsigned long long)count, PF_LOG_MAX_FILES);
	if (pf__get_u32(body + 4) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: reserved field set");
	if (size != body_size_of(count))
		return kiln_err_set(err, -KILN_EFORMAT, "log record: %llu files in %zu bytes",
				    (unsigned long long)count, size);
	rec->ents = calloc(count, sizeof(*rec->ents));
	if (!rec->ents)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		const uint8_t *p = body + 8 + i * PF_LOG_ENTRY_SIZE;
		struct pf_log_entry *e = &rec->ents[i];

		e->ino = pf__get_u64(p);
		e->size = pf__get_u64(p + 8);
		e->atime_ns = (int64_t)pf__get_u64(p + 16);
		e->mtime_ns = (int64_t)pf__get_u64(p + 24);
		e->ctime_ns = (int64_t)pf__get_u64(p + 32);
		memcpy(e->root, p + 40, PF_ROOT_SIZE);
		if (e->ino <= PF_ROOT_INO || e->size > PF_MAX_FILE_SIZE) {
			kiln_err_set(err, -KILN_EFORMAT, "log record: file %zu: inode %llu, size "
				     "%llu out of range", i, (unsigned long long)e->ino,
				     (unsigned long long)e->size);
			goto bad;
		}
		/* One entry per file: a second one would make the order matter. */
		for (size_t j = 0; j < i; j++) {
			if (rec->ents[j].ino == e->ino) {
				kiln_err_set(err, -KILN_EFORMAT, "log record: inode %llu named "
					     "twice", (unsigned long long)e->ino);
				goto bad;
			}
		}
	}
	rec->count = count;
	return 0;
bad:
	pf__log_rec_clear(rec);
	return -KILN_EFORMAT;
}

int pf__log_open_rec(const struct pf_meta_keys *k, const uint8_t *buf, size_t size,
		     struct pf_log_rec *rec, struct kiln_err *err)
{
	uint8_t *body = NULL;
	uint32_t bsize;
	kc_aead_t *a;
	int ret;

	memset(rec, 0, sizeof(*rec));
	if (size < PF_LOG_HDR_SIZE)
		return kiln_err_set(err, -KILN_ETRUNC, "log record: header cut (%zu bytes)", size);
	if (memcmp(buf, PF_LOG_MAGIC, 8) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: bad magic");
	bsize = pf__get_u32(buf + 16);
	if ((pf__get_u32(buf + 20) & ~PF_LOG_ONEPHASE) != 0 || pf__get_u32(buf + 36) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "log record: reserved field set");
	if (bsize < 8 || bsize > body_size_of(PF_LOG_MAX_FILES) ||
	    (bsize - 8) % PF_LOG_ENTRY_SIZE != 0)
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
	ret = pf__log_body_decode(body, bsize, rec, err);
	if (ret)
		goto out;
	rec->version = pf__get_u64(buf + 8);
	rec->flags = pf__get_u32(buf + 20);
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
		char name[PF_BNAME_MAX];

		for (size_t k = 0; k < m->ninodes && !in; k++)
			if (m->inodes[k].ino == rec->ents[i].ino)
				in = &m->inodes[k];
		/* Not a file of the metadata: pf__log_replay refuses it. */
		if (!in || in->type != PF_TYPE_REG)
			continue;
		pf__backing_name(in->backing, name);
		ret = pf__journal_vouches(v, name, in->file_id, rec->ents[i].root,
					  rec->ents[i].size, &yes);
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

int pf__log_replay(pf_volume_t *v, const struct pf_log_scan *s, struct kiln_err *err)
{
	for (size_t r = 0; r < s->count; r++) {
		const struct pf_log_rec *rec = &s->recs[r];

		for (size_t i = 0; i < rec->count; i++) {
			const struct pf_log_entry *e = &rec->ents[i];
			struct pf_inode *in = pf__ino_find(v, e->ino);

			/* Authentic, so written by this volume's key holder against
			 * this metadata: anything else is a corrupt volume. */
			if (!in || in->type != PF_TYPE_REG || !in->in_meta)
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
	v->log_off = s->end;
	v->log_records = (uint32_t)s->count;
	return 0;
}

int pf__log_append(pf_volume_t *v, uint64_t version, uint32_t flags, size_t *size,
		   struct kiln_err *err)
{
	struct pf_log_entry *ents = NULL;
	uint8_t *rec = NULL;
	size_t count = 0, rec_size = 0;
	int ret;

	for (struct pf_node *n = v->nodes; n; n = n->next)
		count += n->committing;
	ents = calloc(count ? count : 1, sizeof(*ents));
	if (!ents)
		return -ENOMEM;
	count = 0;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		struct pf_inode *in = n->inode;

		if (!n->committing)
			continue;
		ents[count].ino = in->ino;
		ents[count].size = in->size;
		ents[count].atime_ns = in->atime_ns;
		ents[count].mtime_ns = in->mtime_ns;
		ents[count].ctime_ns = in->ctime_ns;
		memcpy(ents[count].root, in->root, PF_ROOT_SIZE);
		count++;
	}
	*size = 0;
	ret = pf__log_seal(&v->mk, version, flags, ents, count, &rec, &rec_size);
	if (ret)
		goto out;
	if (!v->log_fh) {
		ret = v->so->open(v->sctx, PF_LOG_NAME, PF_SO_CREATE, &v->log_fh);
		/* The log's name must be durable before a record in it counts. */
		if (!ret)
			ret = v->so->sync_dir(v->sctx);
		if (ret)
			goto out;
	}
	ret = pf__st_pwrite_all(v, v->log_fh, rec, rec_size, v->log_off);
	if (!ret)
		*size = rec_size;
out:
	if (ret)
		kiln_err_set(err, ret, "commit log (.kiln/%s): cannot write: %s", PF_LOG_NAME,
			     kiln_strerror(ret));
	free(rec);
	free(ents);
	return ret;
}
