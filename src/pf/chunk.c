/* The crypto of one chunk: seal and open a slot (nonce, tag, data) under the
 * file key with the chunk's AAD, and the file root over the tag list
 * (docs/fs.md "Chunk crypto"). */
#include "pf/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "crypto/crypto.h"

static const uint8_t g_plain_tag[PF_TAG_SIZE] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

static void make_aad(const uint8_t *file_id, uint32_t kind, uint64_t i, uint32_t len,
		     uint8_t aad[32])
{
	memcpy(aad, file_id, PF_FILE_ID_SIZE);
	pf__put_u64(aad + 16, i);
	pf__put_u32(aad + 24, len);
	pf__put_u32(aad + 28, kind);
}

/* Nonces from a pool of random bytes: one getrandom per 4,000 bytes, not one
 * per small write-back and log record (two per one-file commit). The pool
 * is a page the kernel gives a forked child zeroed (MADV_WIPEONFORK, Linux
 * 4.14): its mutex unlocked, nothing left, so a child never takes bytes its
 * parent took or will take. Taken bytes are zeroed. Over 1 KiB of nonces (a
 * large write's batch), or without the page, getrandom itself. */
struct nonce_pool {
	pthread_mutex_t mu;
	uint32_t left;
	uint8_t bytes[4000];
};
static _Atomic(struct nonce_pool *) g_pool;

int pf__nonces(uint8_t *out, size_t count)
{
	struct nonce_pool *p = atomic_load(&g_pool), *none = NULL;
	size_t size = count * PF_NONCE_SIZE;
	int ret = 0;

	if (size > 1024)
		return kc_random(out, size);
	if (!p) {
		p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
		if (p == MAP_FAILED)
			return kc_random(out, size);
		if (madvise(p, sizeof(*p), MADV_WIPEONFORK) != 0 ||
		    !atomic_compare_exchange_strong(&g_pool, &none, p)) {
			munmap(p, sizeof(*p));
			if (!none) /* the madvise refused */
				return kc_random(out, size);
			p = none;
		}
	}
	pthread_mutex_lock(&p->mu);
	if (p->left < size && (ret = kc_random(p->bytes, sizeof(p->bytes))) == 0)
		p->left = sizeof(p->bytes);
	if (ret == 0) {
		uint8_t *b = p->bytes + sizeof(p->bytes) - p->left;

		memcpy(out, b, size);
		memset(b, 0, size);
		p->left -= (uint32_t)size;
	}
	pthread_mutex_unlock(&p->mu);
	return ret;
}

void pf__make_aad(struct pf_node *n, uint64_t i, uint32_t len, uint8_t aad[32])
{
	make_aad(n->file_id, n->kind, i, len, aad);
}

bool pf_stream_ask(const uint8_t tag[PF_STREAM_TAG])
{
	return memcmp(tag, g_plain_tag, PF_TAG_SIZE) == 0;
}

int pf_stream_open(kc_aead_t *a, const struct pf_stream_info *info, uint64_t k,
		   const uint8_t *slot, uint32_t len, const uint8_t tag[PF_STREAM_TAG],
		   uint8_t *out)
{
	uint8_t aad[32];

	if (info->kind != PF_REGION_ENCRYPTED || pf_stream_ask(tag) ||
	    !kiln_ct_equal(slot + PF_NONCE_SIZE, tag, PF_TAG_SIZE))
		return -KILN_EAUTH;
	make_aad(info->file_id, info->kind, k, len, aad);
	return kc_aead_open(a, slot, aad, sizeof(aad), slot + PF_SLOT_META, len, out,
			    slot + PF_NONCE_SIZE);
}

int pf_stream_seal(kc_aead_t *a, const struct pf_stream_info *info, uint64_t k,
		   const uint8_t *pt, uint32_t len, const uint8_t *nonce, uint8_t *slot)
{
	uint8_t aad[32];
	int ret;

	if (info->kind != PF_REGION_ENCRYPTED)
		return -EINVAL;
	make_aad(info->file_id, info->kind, k, len, aad);
	for (;;) {
		if (nonce)
			memcpy(slot, nonce, PF_NONCE_SIZE);
		else if ((ret = kc_random(slot, PF_NONCE_SIZE)) != 0)
			return ret;
		ret = kc_aead_seal(a, slot, aad, sizeof(aad), pt, len, slot + PF_SLOT_META,
				   slot + PF_NONCE_SIZE);
		/* An all-zero tag would read as a hole (2^-128): seal again. */
		if (ret || !pf__tag_is_zero(slot + PF_NONCE_SIZE))
			return ret;
		nonce = NULL;
	}
}

/* Seal plaintext pt[len] as chunk i into slot (nonce, tag, data). nonce: 12
 * fresh random bytes drawn by the caller for this seal only, or NULL to draw
 * them here (one RAND_bytes call per chunk). */
int pf__seal_chunk(struct pf_node *n, uint64_t i, const uint8_t *pt, uint32_t len,
		      const uint8_t *nonce, uint8_t *slot)
{
	pf_volume_t *v = n->vol;
	uint8_t aad[32];
	int ret;

	if (n->kind == PF_REGION_PLAIN) {
		memset(slot, 0, PF_NONCE_SIZE);
		memcpy(slot + PF_NONCE_SIZE, g_plain_tag, PF_TAG_SIZE);
		memmove(slot + PF_SLOT_META, pt, len);
		return 0;
	}
	/* Random 96-bit nonces: no counter to persist across crashes; with a key
	 * per file the birthday bound (2^32 writes per file) is far away. */
	if (nonce)
		memcpy(slot, nonce, PF_NONCE_SIZE);
	else if ((ret = pf__nonces(slot, 1)) != 0)
		return ret;
	pf__make_aad(n, i, len, aad);
	if (n->kind == PF_REGION_ENCRYPTED) {
		ret = kc_aead_seal(n->aead, slot, aad, sizeof(aad), pt, len, slot + PF_SLOT_META,
				   slot + PF_NONCE_SIZE);
	} else {
		memcpy(v->aad, aad, sizeof(aad));
		memcpy(v->aad + sizeof(aad), pt, len);
		ret = kc_aead_seal(n->aead, slot, v->aad, sizeof(aad) + len, NULL, 0,
				   slot + PF_SLOT_META, slot + PF_NONCE_SIZE);
		memmove(slot + PF_SLOT_META, pt, len);
	}
	/* A real tag of all zeros would read as a hole; 2^-128, but be exact. */
	if (ret == 0 && pf__tag_is_zero(slot + PF_NONCE_SIZE))
		return pf__seal_chunk(n, i, pt, len, NULL, slot);
	return ret;
}

/* Authenticate and decrypt slot of chunk i (len plaintext bytes) into out. */
int pf__open_chunk(struct pf_node *n, uint64_t i, const uint8_t *slot, uint32_t len,
		      uint8_t *out, struct kiln_err *err)
{
	pf_volume_t *v = n->vol;
	uint8_t aad[32];
	int ret;

	if (!kiln_ct_equal(slot + PF_NONCE_SIZE, pf__tag(n, i), PF_TAG_SIZE)) {
		ret = -KILN_EAUTH;
		goto fail;
	}
	if (n->kind == PF_REGION_PLAIN) {
		memmove(out, slot + PF_SLOT_META, len);
		return 0;
	}
	pf__make_aad(n, i, len, aad);
	if (n->kind == PF_REGION_ENCRYPTED) {
		ret = kc_aead_open(n->aead, slot, aad, sizeof(aad), slot + PF_SLOT_META, len, out,
				   slot + PF_NONCE_SIZE);
	} else {
		uint8_t dummy[1];

		memcpy(v->aad, aad, sizeof(aad));
		memcpy(v->aad + sizeof(aad), slot + PF_SLOT_META, len);
		ret = kc_aead_open(n->aead, slot, v->aad, sizeof(aad) + len, NULL, 0, dummy,
				   slot + PF_NONCE_SIZE);
		if (ret == 0)
			memmove(out, slot + PF_SLOT_META, len);
	}
	if (ret == 0)
		return 0;
fail:
	if (ret == -KILN_EAUTH)
		return kiln_err_set(err, ret, "file %s: chunk %llu is corrupt (authentication "
				    "failed)", pf__node_path(n), (unsigned long long)i);
	return kiln_err_set(err, ret, "file %s: chunk %llu: %s", pf__node_path(n),
			    (unsigned long long)i, kiln_strerror(ret));
}
