/* Memory BIOs to C strings: what OpenSSL's PEM writers produce is handed on as a
 * NUL-terminated string the caller owns. */
#include "crypto/crypto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>

int kc_bio_take(struct bio_st *b, char **out, size_t *size)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);

	if (n < 0)
		return -KILN_ECRYPTO;
	*out = malloc((size_t)n + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, p, (size_t)n);
	(*out)[n] = '\0';
	if (size)
		*size = (size_t)n;
	/* What is written into a memory BIO is often a private key: wipe the
	 * BIO's copy so only the caller's remains. */
	OPENSSL_cleanse(p, (size_t)n);
	return 0;
}
