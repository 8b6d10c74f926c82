/* Hex and base64 encodings, constant-time helpers, strict number parsing. */
#include "common/common.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

void kiln_hex_encode(const void *data, size_t size, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;

	for (size_t i = 0; i < size; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * size] = '\0';
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int kiln_hex_decode(const char *hex, void *out, size_t out_size, size_t *out_len)
{
	size_t len = strlen(hex);
	uint8_t *o = out;

	if (len % 2)
		return -KILN_EFORMAT;
	if (out_len ? len / 2 > out_size : len / 2 != out_size)
		return -KILN_EFORMAT;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -KILN_EFORMAT;
		o[i] = (uint8_t)(hi << 4 | lo);
	}
	if (out_len)
		*out_len = len / 2;
	return 0;
}

char *kiln_b64_encode(const void *data, size_t size)
{
	size_t out_size = 4 * ((size + 2) / 3) + 1;
	char *out;

	if (size > INT32_MAX)
		return NULL;
	out = malloc(out_size);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)size);
	return out;
}

int kiln_b64_decode(const char *b64, uint8_t **out, size_t *out_size)
{
	size_t len = strlen(b64), n = 0, pad = 0;
	char *clean = NULL;
	uint8_t *buf = NULL;
	int dec, ret = -KILN_EFORMAT;

	*out = NULL;
	*out_size = 0;
	clean = malloc(len + 1);
	if (!clean)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (b64[i] == ' ' || b64[i] == '\n' || b64[i] == '\r' || b64[i] == '\t')
			continue;
		clean[n++] = b64[i];
	}
	clean[n] = '\0';
	if (n % 4 || n > INT32_MAX)
		goto out;
	if (n && clean[n - 1] == '=')
		pad++;
	if (n > 1 && clean[n - 2] == '=')
		pad++;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	dec = EVP_DecodeBlock(buf, (unsigned char *)clean, (int)n);
	if (dec < 0 || (size_t)dec < pad)
		goto out;
	*out = buf;
	*out_size = (size_t)dec - pad;
	buf = NULL;
	ret = 0;
out:
	free(clean);
	free(buf);
	return ret;
}

bool kiln_ct_equal(const void *a, const void *b, size_t size)
{
	return CRYPTO_memcmp(a, b, size) == 0;
}

void kiln_wipe(void *p, size_t size)
{
	if (p)
		OPENSSL_cleanse(p, size);
}

void kiln_free_secret(void *p, size_t size)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, size);
	free(p);
}

int kiln_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}
