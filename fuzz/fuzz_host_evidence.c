/* Fuzz the "host" evidence verifier: the outer JSON, base64, PEM, the signature
 * check and (behind a valid signature) the strict payload parser.
 *
 * Input starting with '{' is verified as evidence with the test LAS certificate
 * below trusted (the seeds are real evidence from `kiln las serve` with that
 * key). Any other input: the bytes after the first are signed with the test key
 * as a payload and wrapped into evidence, so the payload parser is reached. */
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Test-only key (fuzz seeds were made with it); never used outside fuzzing. */
static const char g_key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdPDsT2nyRHeS6vgV\n"
	"V7taeIXHhqBMTPqexE3h6YXF9syhRANCAAR8F3lc9lDBYk6G0PIDouYLcnFbYIUF\n"
	"h6nIbBFDwpvn3vVjIIkEhbJ9GY1T6vKbRGEIqZ15YKp+Q6YqzBNpDFSA\n"
	"-----END PRIVATE KEY-----\n"
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBOzCB4qADAgECAhB0LAASWIA6nRMVT/2Q6sH4MAoGCCqGSM49BAMCMBYxFDAS\n"
	"BgNVBAMMC2tpbG4tbGFzIHZtMB4XDTI2MTEyNjA5MTA1NloXDTM2MTEyMzEwMTA1\n"
	"NlowFjEUMBIGA1UEAwwLa2lsbi1sYXMgdm0wWTATBgcqhkjOPQIBBggqhkjOPQMB\n"
	"BwNCAAR8F3lc9lDBYk6G0PIDouYLcnFbYIUFh6nIbBFDwpvn3vVjIIkEhbJ9GY1T\n"
	"6vKbRGEIqZ15YKp+Q6YqzBNpDFSAoxIwEDAOBgNVHQ8BAf8EBAMCB4AwCgYIKoZI\n"
	"zj0EAwIDSAAwRQIgSw1SrXl7GQN22vhy7QS61YE3Xq8oykab26pezBr2xaQCIQCZ\n"
	"QaCpRWPYQc0vuKALHgcJ0heGvRefP/iAaYnCKotYeA==\n"
	"-----END CERTIFICATE-----\n";
static const char g_cert_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBOzCB4qADAgECAhB0LAASWIA6nRMVT/2Q6sH4MAoGCCqGSM49BAMCMBYxFDAS\n"
	"BgNVBAMMC2tpbG4tbGFzIHZtMB4XDTI2MTEyNjA5MTA1NloXDTM2MTEyMzEwMTA1\n"
	"NlowFjEUMBIGA1UEAwwLa2lsbi1sYXMgdm0wWTATBgcqhkjOPQIBBggqhkjOPQMB\n"
	"BwNCAAR8F3lc9lDBYk6G0PIDouYLcnFbYIUFh6nIbBFDwpvn3vVjIIkEhbJ9GY1T\n"
	"6vKbRGEIqZ15YKp+Q6YqzBNpDFSAoxIwEDAOBgNVHQ8BAf8EBAMCB4AwCgYIKoZI\n"
	"zj0EAwIDSAAwRQIgSw1SrXl7GQN22vhy7QS61YE3Xq8oykab26pezBr2xaQCIQCZ\n"
	"QaCpRWPYQc0vuKALHgcJ0heGvRefP/iAaYnCKotYeA==\n"
	"-----END CERTIFICATE-----\n";

static EVP_PKEY *g_key;

static void check(int ret, json_t *claims)
{
	/* On failure no claims; on success claims are a JSON object. */
	if ((ret < 0) != (claims == NULL) || (claims && !json_is_object(claims)))
		abort();
	json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *certs[] = { g_cert_pem };
	struct ev_verify_opts opts = { .at = 1795688000, .certs_pem = certs, .n_certs = 1 };
	const struct ev_backend *host = ev_backend_find("host");
	struct kiln_err err = { 0 };
	json_t *claims = NULL, *ev;
	EVP_MD_CTX *ctx;
	uint8_t sig[128];
	size_t sig_size = sizeof(sig);
	char *payload_b64, *sig_b64, *text;

	if (!g_key) {
		BIO *bio = BIO_new_mem_buf(g_key_pem, -1);

		g_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
		if (!g_key)
			abort();
	}
	if (size > 0 && data[0] == '{') {
		check(host->verify(data, size, &opts, &claims, &err), claims);
		return 0;
	}
	if (size == 0)
		return 0;
	data++;
	size--;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, g_key) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_size, data, size) != 1)
		abort();
	EVP_MD_CTX_free(ctx);
	payload_b64 = kiln_b64_encode(data, size);
	sig_b64 = kiln_b64_encode(sig, sig_size);
	ev = json_pack("{s:s, s:s, s:s, s:s}", "format", "kiln-las-v1", "payload", payload_b64,
		       "signature", sig_b64, "cert", g_cert_pem);
	text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	if (text)
		check(host->verify((const uint8_t *)text, strlen(text), &opts, &claims, &err),
		      claims);
	free(text);
	json_decref(ev);
	free(payload_b64);
	free(sig_b64);
	return 0;
}
