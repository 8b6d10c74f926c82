/* kiln console records: keys, sealing and opening one record (console.h). */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "console/console.h"
#include "crypto/crypto.h"

static const char g_magic[4] = { 'K', 'C', 'R', '1' };

struct con_stream {
	uint8_t id[CON_ID_SIZE];
	kc_aead_t *aead;
};

int con_stream_new(const uint8_t key[static CON_KEY_SIZE], const uint8_t id[static CON_ID_SIZE],
		   struct con_stream **out)
{
	static const char info[] = "kiln console v1";
	uint8_t k[KC_AEAD_KEY_SIZE];
	struct con_stream *s;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->id, id, CON_ID_SIZE);
	ret = kc_hkdf_sha256(key, CON_KEY_SIZE, id, CON_ID_SIZE, info, sizeof(info) - 1, k,
			     sizeof(k));
	if (ret == 0) {
		s->aead = kc_aead_new(k);
		if (!s->aead)
			ret = -ENOMEM;
	}
	OPENSSL_cleanse(k, sizeof(k));
	if (ret) {
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void con_stream_free(struct con_stream *s)
{
	if (!s)
		return;
	kc_aead_free(s->aead);
	free(s);
}

const uint8_t *con_stream_id(const struct con_stream *s)
{
	return s->id;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void nonce(uint8_t channel, uint64_t seq, uint8_t iv[KC_AEAD_IV_SIZE])
{
	put_be(iv, channel, 4);
	put_be(iv + 4, seq, 8);
}

static bool type_valid(uint8_t t)
{
	return t == CON_T_HEADER || t == CON_T_DATA || t == CON_T_END;
}

int con_seal(struct con_stream *s, uint8_t type, uint8_t channel, uint64_t seq,
	     const void *payload, size_t size, uint8_t *out)
{
	uint8_t iv[KC_AEAD_IV_SIZE];
	int ret;

	if (size > CON_MAX_PAYLOAD || !type_valid(type) || channel > CON_STDERR)
		return -EINVAL;
	memcpy(out, g_magic, 4);
	out[4] = type;
	out[5] = channel;
	put_be(out + 6, size, 2);
	memcpy(out + 8, s->id, CON_ID_SIZE);
	put_be(out + 24, seq, 8);
	nonce(channel, seq, iv);
	ret = kc_aead_seal(s->aead, iv, out, CON_HDR_SIZE, payload, size, out + CON_HDR_SIZE,
			   out + CON_HDR_SIZE + size);
	return ret < 0 ? ret : (int)(CON_HDR_SIZE + size + CON_TAG_SIZE);
}

int con_parse_hdr(const uint8_t *buf, size_t avail, struct con_hdr *h)
{
	if (avail < CON_HDR_SIZE)
		return avail && memcmp(buf, g_magic, avail < 4 ? avail : 4) ? -KILN_EFORMAT :
									     -EAGAIN;
	if (memcmp(buf, g_magic, 4) || !type_valid(buf[4]) || buf[5] > CON_STDERR)
		return -KILN_EFORMAT;
	h->type = buf[4];
	h->channel = buf[5];
	h->size = (uint16_t)get_be(buf + 6, 2);
	if (h->size > CON_MAX_PAYLOAD)
		return -KILN_EFORMAT;
	memcpy(h->id, buf + 8, CON_ID_SIZE);
	h->seq = get_be(buf + 24, 8);
	return 0;
}

int con_open(struct con_stream *s, const uint8_t *rec, const struct con_hdr *h, uint8_t *out)
{
	uint8_t iv[KC_AEAD_IV_SIZE];

	nonce(h->channel, h->seq, iv);
	return kc_aead_open(s->aead, iv, rec, CON_HDR_SIZE, rec + CON_HDR_SIZE, h->size, out,
			    rec + CON_HDR_SIZE + h->size);
}

void con_info_encode(const struct con_info *in, uint8_t out[static CON_INFO_SIZE])
{
	memset(out, 0, CON_INFO_SIZE);
	put_be(out, in->pid, 4);
	put_be(out + 4, in->start_ns, 8);
	memcpy(out + 12, in->program, strnlen(in->program, sizeof(in->program) - 1));
}

int con_info_decode(const uint8_t *p, size_t size, struct con_info *out)
{
	memset(out, 0, sizeof(*out));
	if (size != CON_INFO_SIZE)
		return -KILN_EFORMAT;
	out->pid = (uint32_t)get_be(p, 4);
	out->start_ns = get_be(p + 4, 8);
	memcpy(out->program, p + 12, sizeof(out->program) - 1);
	/* Printable ASCII only: it is shown to the reader's terminal. */
	for (char *q = out->program; *q; q++)
		if (*q < 0x20 || *q > 0x7e)
			*q = '?';
	return 0;
}
