/* On-disk formats of protected volumes: file header, metadata envelope, path
 * rules (the metadata body is meta.c). Layouts: docs/fs.md. */
#include "pf/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

void pf__header_encode(const struct pf_header *h, uint8_t out[static PF_HDR_SIZE])
{
	memset(out, 0, PF_HDR_SIZE);
	memcpy(out, PF_HDR_MAGIC, 8);
	pf__put_u32(out + 8, h->version);
	pf__put_u32(out + 12, h->kind);
	pf__put_u32(out + 16, h->chunk_size);
	memcpy(out + 24, h->file_id, PF_FILE_ID_SIZE);
}

static bool all_zero(const uint8_t *p, size_t size)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < size; i++)
		acc |= p[i];
	return acc == 0;
}

bool pf__chunk_size_ok(uint32_t cs)
{
	return cs >= PF_MIN_CHUNK_SIZE && cs <= PF_MAX_CHUNK_SIZE && cs % 16 == 0;
}

bool pf__kind_ok(uint32_t kind)
{
	return kind == PF_REGION_ENCRYPTED || kind == PF_REGION_AUTHENTICATED ||
	       kind == PF_REGION_PLAIN;
}

int pf__header_decode(const uint8_t *buf, size_t size, struct pf_header *h)
{
	memset(h, 0, sizeof(*h));
	if (size < PF_HDR_SIZE)
		return -KILN_ETRUNC;
	if (memcmp(buf, PF_HDR_MAGIC, 8) != 0)
		return -KILN_EFORMAT;
	h->version = pf__get_u32(buf + 8);
	h->kind = pf__get_u32(buf + 12);
	h->chunk_size = pf__get_u32(buf + 16);
	memcpy(h->file_id, buf + 24, PF_FILE_ID_SIZE);
	if (h->version != PF_HDR_VERSION || !pf__kind_ok(h->kind) ||
	    !pf__chunk_size_ok(h->chunk_size) || pf__get_u32(buf + 20) != 0 ||
	    !all_zero(buf + 40, PF_HDR_SIZE - 40))
		return -KILN_EFORMAT;
	return 0;
}

int pf__path_normalize(const char *path, char *out)
{
	size_t len, i = 0;

	while (*path == '/')
		path++;
	len = strlen(path);
	if (len >= PF_MAX_PATH)
		return -ENAMETOOLONG;
	/* Allow one trailing slash ("dir/"). */
	if (len > 0 && path[len - 1] == '/')
		len--;
	memcpy(out, path, len);
	out[len] = '\0';
	while (i < len) {
		size_t j = i;

		while (j < len && out[j] != '/')
			j++;
		if (j == i)
			return -EINVAL; /* empty component ("a//b") */
		if (out[i] == '.' && (j - i == 1 || (j - i == 2 && out[i + 1] == '.')))
			return -EINVAL;
		if (j - i > 255)
			return -ENAMETOOLONG;
		i = j + 1;
	}
	return 0;
}

/* ---- envelope ---- */

int pf__meta_keys_derive(const uint8_t key[static PF_KEY_SIZE], struct pf_meta_keys *k)
{
	static const char salt[] = "kiln-pf-v1";
	uint8_t kcv_key[32];
	int ret;

	ret = kc_hkdf_sha256(key, PF_KEY_SIZE, salt, sizeof(salt) - 1, "metadata", 8, k->enc,
			     sizeof(k->enc));
	/* The commit log's own key: a record can never be taken for an
	 * envelope or the other way round. */
	if (!ret)
		ret = kc_hkdf_sha256(key, PF_KEY_SIZE, salt, sizeof(salt) - 1, "log", 3, k->log,
				     sizeof(k->log));
	if (ret)
		return ret;
	ret = kc_hkdf_sha256(key, PF_KEY_SIZE, salt, sizeof(salt) - 1, "key-check", 9, kcv_key,
			     sizeof(kcv_key));
	if (ret == 0) {
		uint8_t mac[KC_SHA256_SIZE];

		ret = kc_hmac_sha256(kcv_key, sizeof(kcv_key), "kiln volume key check", 21, mac);
		memcpy(k->kcv, mac, PF_KCV_SIZE);
	}
	kiln_wipe(kcv_key, sizeof(kcv_key));
	return ret;
}

/* Envelope header (AAD): magic[8] format u32 reserved u32 volume version u64 kcv[16]
 * iv[12] reserved u32 body_size u64; then ciphertext, then the GCM tag. */
int pf__meta_seal(const struct pf_meta_keys *k, uint64_t version, const uint8_t *body, size_t size,
		 uint8_t **out, size_t *out_size)
{
	uint8_t *buf;
	kc_aead_t *a;
	int ret;

	*out = NULL;
	*out_size = 0;
	if (size > PF_META_MAX_SIZE)
		return -EFBIG;
	buf = calloc(1, PF_META_HDR_SIZE + size + PF_TAG_SIZE);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, PF_META_MAGIC, 8);
	pf__put_u32(buf + 8, PF_META_FORMAT);
	pf__put_u64(buf + 16, version);
	memcpy(buf + 24, k->kcv, PF_KCV_SIZE);
	ret = kc_random(buf + 40, KC_AEAD_IV_SIZE);
	if (ret)
		goto out;
	pf__put_u64(buf + 56, size);
	a = kc_aead_new(k->enc);
	if (!a) {
		ret = -KILN_ECRYPTO;
		goto out;
	}
	ret = kc_aead_seal(a, buf + 40, buf, PF_META_HDR_SIZE, body, size, buf + PF_META_HDR_SIZE,
			   buf + PF_META_HDR_SIZE + size);
	kc_aead_free(a);
	if (ret)
		goto out;
	*out = buf;
	*out_size = PF_META_HDR_SIZE + size + PF_TAG_SIZE;
	buf = NULL;
out:
	free(buf);
	return ret;
}

int pf__meta_unseal(const struct pf_meta_keys *k, const uint8_t *buf, size_t size,
		    uint64_t *version, uint32_t *format, uint8_t **body, size_t *body_size,
		    struct kiln_err *err)
{
	uint64_t bsize;
	uint8_t *pt = NULL;
	kc_aead_t *a;
	int ret;

	*body = NULL;
	*body_size = 0;
	*version = 0;
	*format = 0;
	if (size < 8 || memcmp(buf, PF_META_MAGIC, 8) != 0)
		return kiln_err_set(err, -KILN_EFORMAT, "metadata: not a kiln volume (bad magic)");
	if (size < PF_META_HDR_SIZE + PF_TAG_SIZE)
		return kiln_err_set(err, -KILN_ETRUNC, "metadata: truncated (%zu bytes)", size);
	if (pf__get_u32(buf + 8) != 1 && pf__get_u32(buf + 8) != PF_META_FORMAT)
		return kiln_err_set(err, -KILN_EFORMAT, "metadata: unsupported format %u",
				    pf__get_u32(buf + 8));
	if (!kiln_ct_equal(buf + 24, k->kcv, PF_KCV_SIZE))
		return kiln_err_set(err, -KILN_EKEY,
				    "metadata: wrong volume key (key check value differs)");
	bsize = pf__get_u64(buf + 56);
	if (bsize > PF_META_MAX_SIZE || bsize != size - PF_META_HDR_SIZE - PF_TAG_SIZE)
		return kiln_err_set(err, -KILN_EAUTH,
				    "metadata: corrupt (body size %llu, file holds %zu)",
				    (unsigned long long)bsize,
				    size - PF_META_HDR_SIZE - PF_TAG_SIZE);
	pt = malloc(bsize ? bsize : 1);
	if (!pt)
		return -ENOMEM;
	a = kc_aead_new(k->enc);
	if (!a) {
		free(pt);
		return -KILN_ECRYPTO;
	}
	ret = kc_aead_open(a, buf + 40, buf, PF_META_HDR_SIZE, buf + PF_META_HDR_SIZE, bsize, pt,
			   buf + PF_META_HDR_SIZE + bsize);
	kc_aead_free(a);
	if (ret) {
		free(pt);
		if (ret == -KILN_EAUTH)
			return kiln_err_set(err, ret,
					    "metadata: corrupt (authentication tag mismatch)");
		return kiln_err_set(err, ret, "metadata: %s", kiln_strerror(ret));
	}
	*version = pf__get_u64(buf + 16);
	*format = pf__get_u32(buf + 8);
	*body = pt;
	*body_size = bsize;
	return 0;
}
