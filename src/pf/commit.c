/* Metadata commits: serialize the namespace, seal it, and put it in place
 * through the freshness protocol (durable), or publish it without a sync;
 * commit the data of one file or of every dirty file with it. */
#include "pf/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

/* Files of a flush whose one-phase group is synced file by file (see
 * onephase_group). */
#define PF_GROUP_FILES 3

/* Start a sync (storage sync_start) or do it now; syncs_settle waits. */
static int sync_begin(pf_volume_t *v, void *fh)
{
	int ret;

	if (!v->so->sync_start || !v->so->sync_wait)
		return v->so->sync(v->sctx, fh);
	ret = v->so->sync_start(v->sctx, fh);
	if (!ret)
		v->syncs_started = true;
	return ret;
}

/* Start a sync of the directory (storage sync_dir_start) or do it now. */
static int sync_dir_begin(pf_volume_t *v)
{
	int ret;

	if (!v->so->sync_dir_start || !v->so->sync_wait)
		return v->so->sync_dir(v->sctx);
	ret = v->so->sync_dir_start(v->sctx);
	if (!ret)
		v->syncs_started = true;
	return ret;
}

static int syncs_settle(pf_volume_t *v)
{
	int ret = 0;

	if (v->syncs_started) {
		ret = v->so->sync_wait(v->sctx);
		v->syncs_started = false;
		if (ret)
			v->syncs_failed = true;
	}
	return ret;
}

/* Put tmp in place of name atomically. Swapping the two names (when the
 * storage can) reuses both files on the next write instead of creating one
 * and deleting the other every time; tmp then holds the previous content,
 * which nothing reads. */
static int replace(pf_volume_t *v, const char *tmp, const char *name)
{
	int ret = v->so->exchange ? v->so->exchange(v->sctx, tmp, name) : -ENOSYS;

	if (ret == -ENOENT || ret == -EINVAL || ret == -ENOSYS || ret == -ENOTSUP)
		ret = v->so->rename(v->sctx, tmp, name);
	return ret;
}

/* Versions are never used twice. Whatever is sealed with version X (a
 * metadata or a record) may stay on the host's disk even when X's commit
 * never completes; were X used again for another content, the host could
 * later show the first one under the committed X (docs/fs.md, rollback
 * protection; test_version_never_reused). So: nothing sealed with X is
 * written before the provider holds X - 1 (else X's prepare comes first,
 * not overlapped with the writes); then a crash leaves at most trusted + 1
 * written beyond what the provider holds, and open takes that one as used
 * (pf__versions_known). The next commit goes above every version used. */
void pf__versions_known(pf_volume_t *v, uint64_t trusted)
{
	v->trusted = trusted;
	v->burned = trusted + 1;
}

static uint64_t next_version(const pf_volume_t *v)
{
	if (!v->fo)
		return v->version + 1;
	return (v->version > v->burned ? v->version : v->burned) + 1;
}

/* A prepare that fails may still have reached the provider: its version
 * counts as used either way. The syncs started so far run beside it (a
 * storage that queues them submits them now). */
static int prepare(pf_volume_t *v, uint64_t version, struct kiln_err *err)
{
	int ret;

	if (!v->fo)
		return 0;
	if (v->syncs_started && v->so->sync_submit)
		(void)v->so->sync_submit(v->sctx); /* its error: sync_wait's */
	if (version > v->burned)
		v->burned = version;
	ret = v->fo->prepare(v->fctx, version, err);
	if (!ret && version > v->trusted)
		v->trusted = version;
	return ret;
}

/* A record's prepare, riding the log's flush (docs/fs.md "One flush per
 * commit"): the provider's write waited for through the device, not
 * flushed; the caller's sync of the log, started only after this returns
 * and awaited before the commit is acknowledged, then covers it. A one-phase
 * or data record is written already (written: its write-back started first
 * runs beside the provider's); a two-phase one after it. Safe because a
 * record above the provider's prepared version is not replayed (a crash may
 * keep the record and lose the tag); never for a checkpoint: a metadata
 * above it is refused at open (pf__check_freshness). v->trusted moves only
 * once the log's sync completed (commit_by_log). -EOPNOTSUPP: the provider
 * cannot here, or the version before is not held; nothing is prepared
 * (prepare then). */
static int prepare_riding(pf_volume_t *v, uint64_t version, bool written, struct kiln_err *err)
{
	int ret;

	if (!v->fo || !v->fo->prepare_unflushed || v->trusted + 1 < version)
		return -EOPNOTSUPP;
	if (written && v->so->writeback)
		(void)v->so->writeback(v->sctx, v->log_fh, v->log_off, 0);
	if (v->syncs_started && v->so->sync_submit)
		(void)v->so->sync_submit(v->sctx); /* the group's other syncs */
	if (version > v->burned)
		v->burned = version;
	ret = v->fo->prepare_unflushed(v->fctx, version, err);
	if (!ret)
		v->rides++;
	return ret;
}

/* A two-phase or `pre` record's prepare, before its record is written:
 * riding when it can (*rode), else in full. */
static int prepare_before(pf_volume_t *v, uint64_t version, bool *rode, struct kiln_err *err)
{
	int ret = prepare_riding(v, version, false, err);

	*rode = ret != -EOPNOTSUPP;
	return *rode ? ret : prepare(v, version, err);
}

/* About to write what is sealed with version: its prepare first unless the
 * provider holds the version before it (the common case, a commit after a
 * completed one: the prepare then overlaps the writes). *later says
 * whether the caller still has to prepare. */
static int use_version(pf_volume_t *v, uint64_t version, bool *later, struct kiln_err *err)
{
	*later = v->fo && v->trusted + 1 >= version;
	if (!*later)
		return prepare(v, version, err);
	if (version > v->burned)
		v->burned = version;
	return 0;
}

/* Durable: write the metadata as version+1 to meta.tmp and sync it (overlapped
 * with the prepare of version+1 and the data syncs pf__commit_locked started), put it
 * in place of meta, sync the directory, commit; then remove the backing files
 * it no longer refers to. Not durable (pf_volume_publish): the same version
 * into meta.pub (through meta.pub.tmp, so readers see it whole), no sync at
 * all, no freshness provider; meta stays as it is, so a crash that tears or
 * loses meta.pub falls back to it (see load_published). Pending removals wait
 * for a durable write. */
int pf__write_meta(pf_volume_t *v, bool durable, struct kiln_err *err)
{
	struct pf_buf w = { 0 };
	uint8_t *env = NULL;
	size_t env_size = 0;
	uint64_t version = durable ? next_version(v) : v->version;
	void *fh = NULL;
	bool later = false;
	int ret;

	if (durable) {
		ret = use_version(v, version, &later, err);
		if (ret)
			goto out;
	}
	ret = pf__meta_encode(v, &w);
	if (!ret)
		ret = pf__meta_seal(&v->mk, version, w.p, w.len, &env, &env_size);
	if (ret) {
		kiln_err_set(err, ret, "metadata: %s", kiln_strerror(ret));
		goto out;
	}
	/* meta.tmp is written and its sync started before the prepare (when
	 * use_version allows it): nothing reads it before the rename, which
	 * waits for all three (and for the data syncs pf__commit_locked
	 * started). */
	ret = v->so->open(v->sctx, durable ? "meta.tmp" : "meta.pub.tmp", PF_SO_CREATE, &fh);
	if (!ret)
		ret = pf__st_pwrite_all(v, fh, env, env_size, 0);
	/* Written over the previous content (the exchange left it there), not
	 * truncated first: the size rarely changes, and a file whose size stays
	 * is synced without a journal commit of the file system (fdatasync of
	 * data alone). Nothing reads it before the rename. */
	if (!ret)
		ret = pf__st_set_size(v, fh, env_size);
	if (!ret && durable)
		ret = sync_begin(v, fh);
	/* A checkpoint spends the log: the slots data records placed since
	 * the last one are made durable in its group first, in every file
	 * still loaded (pf_close keeps such nodes; pf__journal_close syncs one
	 * that goes) and not gone: no metadata names an unlinked file. */
	for (struct pf_node *n = v->nodes; n && !ret && durable; n = n->next)
		if (n->dplaced && !pf__node_gone(n))
			ret = n->failed || !n->fh ? -EIO : sync_begin(v, n->fh);
	if (!ret && durable && v->dplaced_lost)
		ret = -EIO;
	/* The full prepare, never prepare_riding: meta at a version the
	 * provider does not hold is refused at open, not dropped. */
	if (!ret && later)
		ret = prepare(v, version, err);
	if (syncs_settle(v) && !ret)
		ret = -EIO;
	if (fh) {
		int r = v->so->close(v->sctx, fh);

		ret = ret ? ret : r;
	}
	if (ret && err && err->code)
		goto out; /* the provider's message */
	if (!ret)
		ret = durable ? replace(v, "meta.tmp", "meta") :
		      replace(v, "meta.pub.tmp", "meta.pub");
	if (ret) {
		kiln_err_set(err, ret, "metadata: cannot write: %s", kiln_strerror(ret));
		goto out;
	}
	if (!durable) {
		v->lazy = true;
		goto out;
	}
	ret = v->so->sync_dir(v->sctx);
	v->version = version;
	v->lazy = false;
	pf__nsops_clear(v); /* the metadata holds them */
	if (ret) {
		/* Renamed but maybe not durable: the next commit or open settles it.
		 * A record after it could follow a metadata the crash takes back
		 * (a gap the replay stops at): the next commit checkpoints. */
		v->log_broken = true;
		kiln_err_set(err, ret, "metadata: cannot sync directory: %s", kiln_strerror(ret));
		goto out;
	}
	/* A checkpoint: the log's records are at or below this version now, so
	 * the next record goes at its start, over them. */
	v->log_off = 0;
	v->log_records = 0;
	v->log_broken = false;
	for (struct pf_node *n = v->nodes; n; n = n->next)
		n->dplaced = false;
	/* A failed commit leaves the version prepared, which open accepts. meta.pub,
	 * if any, now has an older version: it is ignored, and reused by the next
	 * publish. */
	if (v->fo)
		(void)v->fo->commit(v->fctx, version, NULL);
	while (v->pending) {
		struct pf_pending *p = v->pending;

		v->pending = p->next;
		pf__remove_backing(v, p->name, p->sides);
		free(p);
	}
out:
	pf__buf_free(&w);
	free(env);
	return ret;
}

/* The volume's side of log_commit_ok: the last durable write was a metadata
 * or a record of the version before (no namespace change a record does not
 * carry, nothing published, no abandoned prepare: a skipped version is a gap
 * a replay stops at, so the metadata carries the jump), and the log is due
 * no checkpoint. */
static bool log_volume_ok(const pf_volume_t *v)
{
	return !(v->ns_dirty || v->lazy || v->log_broken ||
		 next_version(v) != v->version + 1 || v->log_records >= PF_LOG_MAX_RECORDS ||
		 v->log_off >= PF_LOG_MAX_BYTES);
}

/* Can this commit be a log record instead of a metadata rewrite? Only when
 * what changes is the content (root, size, times) of files the durable
 * metadata already names, in their same backing files, and the namespace
 * changes a record carries (v->nsops: regular files created, with their
 * first contents, and unlinked): nothing else changed in the namespace,
 * nothing published since the last durable write, no file switched to a new
 * backing file, every file created since committed now; and log_volume_ok.
 * Backing files of unlinked files wait for the checkpoint. */
static bool log_commit_ok(pf_volume_t *v)
{
	size_t count = 0;

	if (!log_volume_ok(v))
		return false;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!n->committing)
			continue;
		if ((!n->save_in_meta && !pf__nsop_created(v, n->inode->ino)) || n->fresh ||
		    memcmp(n->save_backing, n->inode->backing, PF_BACKING_ID_SIZE) != 0)
			return false;
		count++;
	}
	for (size_t i = 0; i < v->nnsops; i++) {
		struct pf_inode *in = v->nsops[i].op == PF_LOG_NS_CREATE ?
				      pf__ino_find(v, v->nsops[i].ino) : NULL;

		if (v->nsops[i].op == PF_LOG_NS_CREATE &&
		    (!in || !in->node || !in->node->committing))
			return false;
	}
	return (count > 0 || v->nnsops > 0) && count <= PF_LOG_MAX_FILES &&
	       v->nnsops <= PF_LOG_MAX_NS;
}

/* The commit as a log record (docs/fs.md "Commit log"). One phase, when
 * every file's generation is whole (all of it in its journal's redo entries)
 * or the file is new, created by the record:
 * the record is written and its sync started in the group pf__commit_locked
 * started (journals, data), in parallel with the prepare of version+1 when the
 * provider holds version (use_version; else the prepare comes first); the
 * group's end is the commit point, and a replay takes the record last only
 * when the journals, or a new file's content, vouch for it (pf__log_vouch). Two phases otherwise: the
 * prepare overlapped with the group, then the record written and synced.
 * Then the commit of the version. The prepare rides the log's sync where
 * it can (prepare_riding): that sync follows it on every path and is
 * awaited before the reply. A failed record leaves the version prepared
 * (or only burned, when it rode), as a failed rename does, and makes the
 * next commit a checkpoint. */
static int commit_by_log(pf_volume_t *v, bool data, bool whole, struct kiln_err *err)
{
	uint64_t version = v->version + 1;
	bool one = true, later = false, dir = false, pre = false, rode = false;
	size_t size = 0;
	int ret;

	/* A data record: nothing but the record (and the prepare) is synced,
	 * unless the previous commit of a file left slots placed under its
	 * journal's redo entries (jlive): those are made durable before the
	 * record, which alone then carries the file's state. */
	for (struct pf_node *n = v->nodes; data && n; n = n->next) {
		if (!n->committing || !n->jlive)
			continue;
		if ((ret = sync_begin(v, n->fh))) {
			kiln_err_set(err, ret, "file %s: sync: %s", pf__node_path(n),
				     kiln_strerror(ret));
			(void)syncs_settle(v);
			v->log_broken = true;
			return ret;
		}
		pre = true;
	}
	if (pre) {
		ret = prepare_before(v, version, &rode, err);
		if (syncs_settle(v) && !ret)
			ret = kiln_err_set(err, -EIO, "commit: a data sync failed");
		if (ret) {
			v->log_broken = true;
			return ret;
		}
	}
	for (struct pf_node *n = v->nodes; n && !data; n = n->next) {
		/* Slots a data record placed are durable only in the log: a
		 * record without them waits for the file's data sync (its
		 * group settled first), so a replay never writes them over
		 * what this commit wrote in place (pf__log_place). */
		if (n->committing && n->dplaced)
			one = false;
		/* A whole generation's journal vouches for the record; a file
		 * the record creates, its content (its data synced in the
		 * group, checked against the record's root at the replay:
		 * pf__log_vouch). Not a plain file: its root does not tell. */
		if (n->committing && !(n->redo && n->whole) &&
		    (n->save_in_meta || n->kind == PF_REGION_PLAIN ||
		     !pf__nsop_created(v, n->inode->ino)))
			one = false;
		/* A journal created in this generation, or a new file's backing
		 * file: its name must be durable with the commit (a metadata
		 * write's directory sync covers it). */
		if (n->committing && ((n->redo && n->j_dir) || !n->save_in_meta))
			dir = true;
	}
	/* The names' sync joins the group: before the record for two phases
	 * (settled before it is written); beside it for one, where the
	 * vouching covers it (a journal whose name a cut lost vouches for
	 * nothing: the record is dropped, its commit never acknowledged). */
	if (dir && (ret = sync_dir_begin(v))) {
		kiln_err_set(err, ret, "commit: cannot sync directory: %s", kiln_strerror(ret));
		(void)syncs_settle(v);
		v->log_broken = true;
		return ret;
	}
	if (data || one) {
		ret = pre ? 0 : use_version(v, version, &later, err);
		if (!ret)
			ret = pf__log_append(v, version, data ? PF_LOG_DATA : PF_LOG_ONEPHASE,
					     &size, err);
		if (!ret && later) {
			ret = prepare_riding(v, version, true, err);
			rode = !ret;
			later = ret == -EOPNOTSUPP;
			ret = later ? 0 : ret;
		}
		/* Riding, the log's sync starts only now (in the group still:
		 * measured faster than a sync in this thread); else it runs
		 * beside the prepare. */
		if (!ret && (ret = sync_begin(v, v->log_fh)))
			kiln_err_set(err, ret, "commit log (.kiln/%s): sync: %s", PF_LOG_NAME,
				     kiln_strerror(ret));
		if (later) {
			int r = prepare(v, version, err);

			ret = ret ? ret : r;
		}
		if (syncs_settle(v) && !ret)
			ret = kiln_err_set(err, -EIO, "commit: a data, journal, directory or log "
					   "sync failed");
	} else {
		/* The record is written once its prepare completed (or, riding,
		 * reached the device): nothing to order. */
		ret = prepare_before(v, version, &rode, err);
		if (syncs_settle(v) && !ret)
			ret = kiln_err_set(err, -EIO, "commit: a data, journal or directory sync "
					   "failed");
		if (!ret)
			ret = pf__log_append(v, version, 0, &size, err);
		if (!ret && (ret = v->so->sync(v->sctx, v->log_fh)))
			kiln_err_set(err, ret, "commit log (.kiln/%s): sync: %s", PF_LOG_NAME,
				     kiln_strerror(ret));
	}
	if (ret) {
		v->log_broken = true;
		return ret;
	}
	/* The log's flush made a riding prepare durable: only now held. */
	if (rode && version > v->trusted)
		v->trusted = version;
	v->log_off += size;
	v->log_records++;
	v->version = version;
	pf__nsops_clear(v); /* the record holds them */
	if (v->fo)
		(void)v->fo->commit(v->fctx, version, NULL);
	/* The version committed as before the reply (a CAS's commit is a round
	 * trip the host may hold back: what it holds when fsync returns stays). */
	if (whole && v->on_durable)
		v->on_durable(v->on_durable_arg);
	return 0;
}

bool pf__node_needs_commit(const struct pf_node *n)
{
	return n->inode->names && (n->dirty || !n->base_in_meta);
}

/* No journal sync in n's generation: nothing of it moved, all of it is held
 * (it goes into the redo entries). Not for a plain file: its root (no tags)
 * does not tell its states apart, so a journal naming it cannot vouch for a
 * record (pf__journal_vouches). */
static bool gen_whole(const struct pf_node *n)
{
	return n->j_hdr && n->wb_count > 0 && n->kind != PF_REGION_PLAIN;
}

/* Will this flush of many files be a one-phase record (commit_by_log's
 * `one`)? Every file to commit has a committed state in the metadata, in the
 * same backing file, and a whole generation, and the log takes a record.
 * Then the record joins the files' sync group, and that group is one sync
 * per journal and data file started together (sync_start) with the record's,
 * in parallel with prepare(N+1): one flush latency. A syncfs cannot be
 * started that way: after the record it would be a second latency beside
 * the prepare (docs/fs.md "Commit log"). Up to PF_GROUP_FILES files (their
 * 2 x 3 + 1 syncs fit one submission of the runtime's ring); a flush of more
 * keeps the syncfs. Only a guess: a file that fails in the commit, or any
 * other surprise, takes the per-file path, which is always correct. */
static bool onephase_group(pf_volume_t *v)
{
	size_t count = 0;

	/* Namespace changes: the files one by one (a new file has no
	 * committed state; commit_by_log decides its record's phases). */
	if (!log_volume_ok(v) || v->nnsops)
		return false;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (n->failed || !pf__node_needs_commit(n))
			continue;
		if (++count > PF_GROUP_FILES || !pf__has_base(n) || !n->gen_open ||
		    !gen_whole(n) || !n->inode->in_meta || n->fresh ||
		    memcmp(n->backing, n->inode->backing, PF_BACKING_ID_SIZE) != 0)
			return false;
	}
	return count >= 2;
}

/* Can n, a file this commit creates, go into a data record whole? Its
 * chunks, written in place at once (not held: no committed state), are read
 * back into the record (pf__log_append): so no hole (the record carries
 * every chunk), nothing past its end, not empty, not a plain file. Adds its
 * slots' bytes to *bytes. */
static bool data_create_ok(pf_volume_t *v, const struct pf_node *n, size_t *bytes)
{
	uint64_t nch = pf__nchunks(v, n->size);

	if (n->base_in_meta || n->fresh || n->size == 0 || n->kind == PF_REGION_PLAIN ||
	    n->wb_count || n->sres_end || !pf__nsop_created(v, n->inode->ino) ||
	    n->phys_size != pf__expected_phys(v, n->size))
		return false;
	for (uint64_t k = 0; k < nch; k++) {
		bool known = false;

		if (pf__tag_hole(n, k, &known) || !known)
			return false;
	}
	*bytes += (size_t)(pf__expected_phys(v, n->size) - PF_HDR_SIZE);
	return true;
}

/* Will this commit be a data record (docs/fs.md "Data records")? Every file
 * to commit (only, or every one needing it) has a committed state in the
 * metadata, in the same backing file, and a whole generation (nothing of it
 * moved: every new slot held), not a plain file; or the commit creates it
 * (data_create_ok); the slots come to at most PF_LOG_DATA_MAX bytes in all;
 * the namespace changes since the last durable commit are unlinks and
 * creates of files of this commit; and the log takes a record. Then the
 * record carries the slots and is the only file synced (beside the
 * prepare). */
static bool data_commit(pf_volume_t *v, const struct pf_node *only)
{
	size_t bytes = 0, count = 0;

	if (!v->log_data_max || !log_volume_ok(v))
		return false;
	for (size_t i = 0; i < v->nnsops; i++) {
		struct pf_inode *in = v->nsops[i].op == PF_LOG_NS_CREATE ?
				      pf__ino_find(v, v->nsops[i].ino) : NULL;

		if (v->nsops[i].op == PF_LOG_NS_CREATE &&
		    (!in || !in->node || (only && in->node != only) ||
		     !pf__node_needs_commit(in->node)))
			return false;
	}
	for (const struct pf_node *n = v->nodes; n; n = n->next) {
		if ((only && n != only) || !pf__node_needs_commit(n))
			continue;
		if (n->failed)
			return false;
		if (!pf__has_base(n)) {
			if (!data_create_ok(v, n, &bytes))
				return false;
		} else if (!n->gen_open || !gen_whole(n) || !n->inode->in_meta || n->fresh ||
			   memcmp(n->backing, n->inode->backing, PF_BACKING_ID_SIZE) != 0) {
			return false;
		}
		for (size_t i = 0; i < n->wb_count; i++)
			bytes += n->wb_len[i];
		if (++count > PF_LOG_MAX_FILES || bytes > v->log_data_max)
			return false;
	}
	return count > 0;
}

/* A generation with a journal commits in one sync phase: its new root (from
 * the tags in memory), then its held slots as redo entries and the end
 * record, synced with the data; the slots go in place after the rename. */
static int redo_end(struct pf_node *n)
{
	int ret = pf__tree_root(n, n->size, n->new_root, NULL);

	n->whole = gen_whole(n);
	if (!ret)
		ret = pf__journal_end(n, n->new_root, n->size, n->whole);
	if (!ret)
		n->redo = true;
	return ret;
}

/* Commit one node (or every node needing it when only == NULL) and the
 * namespace in one metadata write. */
int pf__commit_locked(pf_volume_t *v, struct pf_node *only, struct kiln_err *err)
{
	uint64_t old_version = v->version;
	/* Removals wait for a durable state without the file: after a record
	 * that unlinked it, for the next checkpoint (any commit that is one). */
	bool any = v->ns_dirty || v->nnsops || (v->pending && !v->log_records) || v->lazy;
	bool failed = false, data;
	int ret = 0;

	if (v->read_only)
		return 0;
	for (struct pf_node *n = v->nodes; n; n = n->next)
		n->redo = n->data = n->dnew = false;
	data = data_commit(v, only);
	/* Many files in one commit (a flush): one syncfs instead of a sync each,
	 * covering the journals (with their redo entries) and the data; not when
	 * the commit is a one-phase record (onephase_group). */
	if (!only && v->so->sync_all && !data && !onephase_group(v)) {
		size_t count = 0;

		for (struct pf_node *n = v->nodes; n && count < 2; n = n->next)
			count += !n->failed && pf__node_needs_commit(n);
		if (count >= 2) {
			for (struct pf_node *n = v->nodes; n; n = n->next) {
				if (n->failed || !pf__node_needs_commit(n))
					continue;
				if (!pf__has_base(n) || !n->gen_open) {
					n->synced = pf__wb_drain(n, NULL) == 0;
				} else if (redo_end(n) == 0) {
					n->synced = true;
				} else {
					/* The journal's end is unknown: like a failed write. */
					n->failed = true;
				}
			}
			if (v->so->sync_all(v->sctx) != 0)
				for (struct pf_node *n = v->nodes; n; n = n->next)
					n->synced = false;
		}
	}
	v->syncs_failed = false;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		bool ended;

		if (only && n != only)
			continue;
		if (n->failed) {
			/* Its journal restores it on the next open; commit the others. */
			if (!failed)
				kiln_err_set(err, -EIO, "file %s: earlier write failed; reopen "
					     "the volume", pf__node_path(n));
			failed = true;
			continue;
		}
		if (!pf__node_needs_commit(n))
			continue;
		if (data) {
			/* Its held slots (or a new file's) go into the record: no
			 * journal, no sync. */
			ret = pf__tree_root(n, n->size, n->new_root, NULL);
			n->data = ret == 0;
			n->dnew = !pf__has_base(n);
			goto root;
		}
		/* redo_end ran already (above) when n->redo is set. */
		ended = n->redo;
		if (!ended)
			n->redo = !n->synced && pf__has_base(n) && n->gen_open;
		ret = n->synced || n->redo ? 0 : pf__wb_drain(n, NULL);
		/* Nothing committed lies past the new end of a file without a base:
		 * cut it before the sync, which then covers both. */
		if (!ret && !pf__has_base(n) && n->phys_size > pf__expected_phys(v, n->size)) {
			ret = v->so->truncate(v->sctx, n->fh, pf__expected_phys(v, n->size));
			if (!ret && n->synced)
				ret = v->so->sync(v->sctx, n->fh);
			if (!ret)
				n->phys_size = pf__expected_phys(v, n->size);
		}
		if (!ret && n->redo && !ended)
			ret = redo_end(n);
		if (!ret && n->redo && !n->synced)
			ret = sync_begin(v, n->jfh);
		if (!ret && !n->synced)
			ret = sync_begin(v, n->fh);
		n->synced = false;
		if (!ret && !n->redo)
			ret = pf__tree_root(n, n->size, n->new_root, NULL);
root:
		if (ret) {
			/* After a failed sync the data on disk is unknown (Linux
			 * forgets the error): treat the file as failed, like a write. */
			if (!failed)
				kiln_err_set(err, ret, "file %s: sync: %s", pf__node_path(n),
					     kiln_strerror(ret));
			n->failed = true;
			failed = true;
			ret = 0;
			continue;
		}
		n->committing = true;
		memcpy(n->save_root, n->inode->root, PF_ROOT_SIZE);
		n->save_size = n->inode->size;
		n->save_in_meta = n->inode->in_meta;
		n->save_root_fmt = n->inode->root_fmt;
		memcpy(n->save_backing, n->inode->backing, PF_BACKING_ID_SIZE);
		memcpy(n->inode->backing, n->backing, PF_BACKING_ID_SIZE);
		memcpy(n->inode->root, n->new_root, PF_ROOT_SIZE);
		n->inode->root_fmt = PF_ROOT_TREE;
		n->inode->size = n->size;
		n->inode->in_meta = true;
		any = true;
	}
	if (!any) {
		ret = syncs_settle(v);
		return failed || ret ? -EIO : 0;
	}
	/* A file that failed above is not in the record (nor committed). */
	if (data || log_commit_ok(v))
		ret = commit_by_log(v, data, !failed, err);
	else
		ret = pf__write_meta(v, true, err);
	(void)syncs_settle(v); /* both settled them, unless they failed early */
	if (v->version != old_version)
		v->ns_dirty = false;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		bool lazy;

		if (!n->committing)
			continue;
		n->committing = false;
		if (v->syncs_failed) {
			/* Its data sync may be among those that failed: unknown data,
			 * restored from the journal at the next open. */
			n->failed = true;
		}
		if (v->version == old_version) {
			/* Not renamed into place: the old metadata still rules. A
			 * journal with an end record may be needed as it is. */
			if (n->redo)
				n->failed = true;
			n->redo = n->data = n->dnew = false;
			memcpy(n->inode->root, n->save_root, PF_ROOT_SIZE);
			n->inode->size = n->save_size;
			n->inode->in_meta = n->save_in_meta;
			n->inode->root_fmt = n->save_root_fmt;
			memcpy(n->inode->backing, n->save_backing, PF_BACKING_ID_SIZE);
			continue;
		}
		if (n->fresh) {
			/* The metadata no longer refers to the old backing file. */
			pf__remove_backing(v, n->old_name, true);
			n->fresh = false;
		}
		n->base_in_meta = n->was_in_meta = true;
		n->base_size = n->size;
		memcpy(n->base_root, n->new_root, PF_ROOT_SIZE);
		n->gen_open = false;
		/* A lazy generation wrote no journal: nothing to spend. */
		lazy = n->j_lazy;
		n->j_lazy = false;
		n->dirty = false;
		/* The data sync covered the slots the previous commit placed (a
		 * data record's: before its record, commit_by_log). */
		n->jlive = false;
		if (!n->data)
			n->dplaced = false;
		/* The held slots in place: a data record's, or the redo entries'. */
		if (!n->failed && (n->data ? pf__journal_data_placed(n) != 0 :
				   n->redo && pf__journal_placed(n) != 0)) {
			if (!ret)
				ret = kiln_err_set(err, -EIO, "file %s: write after commit "
						   "failed; reopen the volume", pf__node_path(n));
			n->failed = true;
		}
		/* Cut debris, make that durable, and only then empty the journal:
		 * an empty journal means "no trailing bytes expected" on open. */
		if (n->phys_size > pf__expected_phys(v, n->size) &&
		    v->so->truncate(v->sctx, n->fh, pf__expected_phys(v, n->size)) == 0 &&
		    v->so->sync(v->sctx, n->fh) == 0)
			n->phys_size = pf__expected_phys(v, n->size);
		if (!n->jlive && !n->failed && n->jfh && !lazy &&
		    n->phys_size <= pf__expected_phys(v, n->size))
			(void)pf__journal_spend(n);
		n->redo = n->data = n->dnew = false;
		/* The commit stands; a planted sidecar is still reported. */
		if (pf__tree_committed(n, n->size, ret ? NULL : err) && !ret)
			ret = -KILN_EUNSAFE;
	}
	/* A checkpoint: no record needs a journal now; the nodes pf_close kept
	 * for theirs go (syncing their data, spending the journal). The
	 * sidecars records deferred are written. */
	for (struct pf_node *n = v->nodes, *next; v->log_records == 0 && n; n = next) {
		next = n->next;
		if (pf__tree_sidecars(n, ret ? NULL : err) && !ret)
			ret = -KILN_EUNSAFE;
		if (n->kept && n->refs == 0 && !n->failed && !pf__node_needs_commit(n))
			pf__node_free(n);
	}
	return ret ? ret : failed ? -EIO : 0;
}

void pf_volume_on_durable(pf_volume_t *v, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&v->lock);
	v->on_durable = fn;
	v->on_durable_arg = arg;
	pthread_mutex_unlock(&v->lock);
}

int pf_volume_flush(pf_volume_t *v, struct kiln_err *err)
{
	int ret;

	pthread_mutex_lock(&v->lock);
	ret = pf__commit_locked(v, NULL, err);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* A node pf_volume_publish may put into the metadata without syncing it: a file
 * created since the last commit and still empty, whose committed state is the
 * empty file (see load_empty for what a crash may leave of its backing file). */
static bool publishable(const struct pf_node *n)
{
	return !n->failed && !n->base_in_meta && !n->fresh && n->size == 0 &&
	       n->wb_count == 0 && n->phys_size <= PF_HDR_SIZE;
}

int pf_volume_publish(pf_volume_t *v, struct kiln_err *err)
{
	bool data = false, any;
	int ret = 0;

	pthread_mutex_lock(&v->lock);
	if (v->read_only)
		goto out;
	any = v->ns_dirty || v->nnsops;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!pf__node_needs_commit(n))
			continue;
		if (publishable(n))
			any = true;
		else
			data = true;
	}
	if (data) {
		/* File content to commit: that is a durable commit anyway. */
		ret = pf__commit_locked(v, NULL, err);
		goto out;
	}
	if (!any)
		goto out;
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!pf__node_needs_commit(n))
			continue;
		ret = pf__tree_root(n, 0, n->new_root, err);
		if (ret)
			goto undo;
		n->committing = true;
		n->save_in_meta = n->inode->in_meta;
		memcpy(n->save_root, n->inode->root, PF_ROOT_SIZE);
		n->save_root_fmt = n->inode->root_fmt;
		memcpy(n->inode->root, n->new_root, PF_ROOT_SIZE);
		n->inode->root_fmt = PF_ROOT_TREE;
		memcpy(n->inode->backing, n->backing, PF_BACKING_ID_SIZE);
		n->inode->size = 0;
		n->inode->in_meta = true;
	}
	ret = pf__write_meta(v, false, err);
undo:
	for (struct pf_node *n = v->nodes; n; n = n->next) {
		if (!n->committing)
			continue;
		n->committing = false;
		if (ret) {
			n->inode->in_meta = n->save_in_meta;
			n->inode->root_fmt = n->save_root_fmt;
			memcpy(n->inode->root, n->save_root, PF_ROOT_SIZE);
			continue;
		}
		n->base_in_meta = n->was_in_meta = true;
		n->base_size = 0;
		memcpy(n->base_root, n->new_root, PF_ROOT_SIZE);
		n->dirty = false;
	}
	if (!ret)
		v->ns_dirty = false;
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}
