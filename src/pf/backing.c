/* Helpers over the storage callbacks: whole writes, zero-padded reads, backing
 * file names, and removal of backing files (now, or after the next durable
 * commit when the committed metadata still names them). */
#include "pf/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int pf__st_pwrite_all(pf_volume_t *v, void *fh, const void *buf, size_t size, uint64_t off)
{
	const uint8_t *p = buf;

	while (size) {
		ssize_t n = v->so->pwrite(v->sctx, fh, p, size, off);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		size -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Cut or extend fh to size unless it has that size already: a truncate to
 * the same size still changes the file's times, which the file system must
 * journal; files rewritten at every commit (the tag sidecars, meta.tmp) keep
 * their size from one commit to the next. */
int pf__st_set_size(pf_volume_t *v, void *fh, uint64_t size)
{
	uint64_t now;
	int ret = v->so->get_size(v->sctx, fh, &now);

	if (ret || now == size)
		return ret;
	return v->so->truncate(v->sctx, fh, size);
}

/* Reads up to size bytes; zero-fills what lies past EOF. */
int pf__st_pread_pad(pf_volume_t *v, void *fh, void *buf, size_t size, uint64_t off)
{
	ssize_t n = v->so->pread(v->sctx, fh, buf, size, off);

	if (n < 0)
		return (int)n;
	if ((size_t)n < size)
		memset((uint8_t *)buf + n, 0, size - (size_t)n);
	return 0;
}

void pf__backing_name(const uint8_t id[static PF_BACKING_ID_SIZE], char out[PF_BNAME_MAX])
{
	kiln_hex_encode(id, PF_BACKING_ID_SIZE, out);
}

/* With sides false the caller knows no journal or tag sidecar of name was
 * ever created (pf_inode.bare): the four removes would all be ENOENT. */
void pf__remove_backing(pf_volume_t *v, const char *name, bool sides)
{
	char j[PF_BNAME_MAX];

	/* Failures leave an orphan that the next read-write open collects. */
	(void)v->so->remove(v->sctx, name);
	if (!sides)
		return;
	snprintf(j, sizeof(j), "%s.j", name);
	(void)v->so->remove(v->sctx, j);
	snprintf(j, sizeof(j), "%s.k", name);
	(void)v->so->remove(v->sctx, j);
	snprintf(j, sizeof(j), "%s.t", name);
	(void)v->so->remove(v->sctx, j);
	snprintf(j, sizeof(j), "%s.h", name);
	(void)v->so->remove(v->sctx, j);
}

void pf__schedule_remove(pf_volume_t *v, const char *name, bool in_meta, bool sides)
{
	struct pf_pending *p;

	if (!in_meta) {
		pf__remove_backing(v, name, sides);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return; /* orphan, collected on the next open */
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->sides = sides;
	p->next = v->pending;
	v->pending = p;
}
