/* Unit tests for the SEV-SNP verifier (src/evidence/snp_report.c, snp_chain.c,
 * snp_verify.c) on the real Milan report from testdata/evidence/snp (see its
 * EXPECTED.md), plus negative cases derived from it: bit flips in every region,
 * wrong chains and roots, times outside the validity windows, truncation,
 * trailing bytes, and (with self-made leaf certificates) the chip_id and TCB
 * binding checks the real report cannot reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "evidence/snp.h"

#define AT_2025_07_01 ((time_t)1751328000)

static uint8_t *g_report;
static size_t g_report_size;
static char *g_vcek_pem;
static uint8_t *g_vcek_der;
static size_t g_vcek_der_size;
static char *g_chain[6]; /* milan, genoa, turin_vcek, milan_vlek, genoa_vlek, turin_vlek */
static const char *const g_chain_names[] = { "milan", "genoa", "turin_vcek", "milan_vlek",
					     "genoa_vlek", "turin_vlek" };

static void read_testdata(const char *name, uint8_t **data, size_t *size)
{
	const char *root = getenv("KILN_TESTDATA");
	char path[1024];

	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/evidence/snp/%s", root, name);
	assert_int_equal(kiln_read_file(path, 1 << 20, data, size), 0);
}

static char *der_to_pem(const uint8_t *der, size_t size)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)size);
	BIO *bio = BIO_new(BIO_s_mem());
	char *buf, *out;
	long len;

	assert_non_null(x);
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	len = BIO_get_mem_data(bio, &buf);
	out = calloc(1, (size_t)len + 1);
	memcpy(out, buf, (size_t)len);
	BIO_free(bio);
	X509_free(x);
	return out;
}

static int setup(void **state)
{
	size_t size;

	read_testdata("report_milan.bin", &g_report, &g_report_size);
	read_testdata("vcek_milan.der", &g_vcek_der, &g_vcek_der_size);
	g_vcek_pem = der_to_pem(g_vcek_der, g_vcek_der_size);
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_chain); i++) {
		char name[64];

		snprintf(name, sizeof(name), "ask_ark_%s.pem", g_chain_names[i]);
		read_testdata(name, (uint8_t **)&g_chain[i], &size);
	}
	return 0;
}

static int teardown(void **state)
{
	free(g_report);
	free(g_vcek_der);
	free(g_vcek_pem);
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_chain); i++)
		free(g_chain[i]);
	ev_snp_cache_clear();
	return 0;
}

/* Verify `report` with the VCEK plus chain index `chain` (-1: VCEK only). */
static int verify_with(const uint8_t *report, size_t size, int chain, time_t at,
		       json_t **claims, struct kiln_err *err)
{
	const char *certs[2] = { g_vcek_pem, chain >= 0 ? g_chain[chain] : NULL };
	struct ev_verify_opts opts = { .at = at, .certs_pem = certs,
				       .n_certs = chain >= 0 ? 2 : 1 };

	memset(err, 0, sizeof(*err));
	return ev_backend_snp.verify(report, size, &opts, claims, err);
}

static int verify_copy(const uint8_t *report, struct kiln_err *err)
{
	json_t *claims = NULL;
	int ret = verify_with(report, EV_SNP_REPORT_SIZE, 0, AT_2025_07_01, &claims, err);

	if (ret < 0)
		assert_null(claims);
	json_decref(claims);
	return ret;
}

static void assert_claim_str(json_t *c, const char *key, const char *want)
{
	json_t *v = json_object_get(c, key);

	assert_non_null(v);
	assert_string_equal(json_string_value(v), want);
}

static void assert_claim_int(json_t *c, const char *key, json_int_t want)
{
	json_t *v = json_object_get(c, key);

	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), want);
}

static void check_milan_claims(json_t *c)
{
	json_t *tcb = json_object_get(c, "reported_tcb");
	const char *meas = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b"
			   "6bdf8a9ece31a5a608eb0cf2e4872b01";

	assert_claim_str(c, "tee", "snp");
	assert_claim_str(c, "measurement", meas);
	assert_claim_str(c, "platform_measurement", meas);
	char want_rd[129];

	memset(want_rd, '0', 128);
	want_rd[128] = '\0';
	memcpy(want_rd, "0102030405", 10);
	assert_claim_str(c, "report_data", want_rd);
	assert_claim_str(c, "host_data", want_rd + 64); /* 32 zero bytes */
	assert_claim_str(c, "chip_id", "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c9"
			 "51bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9"
			 "b610c5068b006b5d");
	assert_claim_int(c, "policy", 0xb0000);
	assert_true(json_is_true(json_object_get(c, "debug")));
	assert_true(json_is_false(json_object_get(c, "migrate_ma")));
	assert_true(json_is_true(json_object_get(c, "smt")));
	assert_true(json_is_false(json_object_get(c, "insecure")));
	assert_claim_int(c, "vmpl", 0);
	assert_claim_int(c, "guest_svn", 0);
	assert_claim_int(c, "report_version", 2);
	assert_claim_str(c, "signing_key", "vcek");
	assert_claim_str(c, "product", "Milan");
	assert_claim_str(c, "firmware", "1.49.3");
	assert_non_null(tcb);
	assert_claim_int(tcb, "bootloader", 2);
	assert_claim_int(tcb, "tee", 0);
	assert_claim_int(tcb, "snp", 5);
	assert_claim_int(tcb, "microcode", 68);
	assert_null(json_object_get(tcb, "fmc"));
	/* Current, committed and launch TCB are the same on this platform. */
	assert_true(json_equal(json_object_get(c, "current_tcb"), tcb));
	assert_true(json_equal(json_object_get(c, "committed_tcb"), tcb));
	assert_true(json_equal(json_object_get(c, "launch_tcb"), tcb));
}

static void test_real_milan_verifies(void **state)
{
	struct kiln_err err;
	json_t *claims = NULL;

	/* Twice: the second run is served by the chain cache; then without it. */
	for (int round = 0; round < 3; round++) {
		if (round == 2)
			ev_snp_cache_set_enabled(false);
		assert_int_equal(verify_with(g_report, g_report_size, 0, AT_2025_07_01, &claims,
					     &err), 0);
		check_milan_claims(claims);
		json_decref(claims);
		claims = NULL;
	}
	ev_snp_cache_set_enabled(true);
}

static void test_parse_fields(void **state)
{
	struct ev_snp_report r;
	struct ev_snp_tcb t;

	assert_int_equal(ev_snp_report_parse(g_report, g_report_size, &r, NULL), 0);
	assert_int_equal(r.version, 2);
	assert_int_equal(r.signature_algo, 1);
	assert_int_equal(r.policy, 0xb0000);
	assert_int_equal(r.platform_info, 1);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.signing_key, EV_SNP_KEY_VCEK);
	assert_int_equal(r.reported_tcb, 0x4405000000000002ULL);
	assert_int_equal(r.committed_tcb, r.reported_tcb);
	assert_int_equal(r.launch_tcb, r.reported_tcb);
	assert_int_equal(r.current_major, 1);
	assert_int_equal(r.current_minor, 49);
	assert_int_equal(r.current_build, 3);
	ev_snp_tcb_decode(r.reported_tcb, false, &t);
	assert_int_equal(t.bootloader, 2);
	assert_int_equal(t.tee, 0);
	assert_int_equal(t.snp, 5);
	assert_int_equal(t.microcode, 68);
	ev_snp_tcb_decode(0x0500000004030201ULL, true, &t);
	assert_int_equal(t.fmc, 1);
	assert_int_equal(t.bootloader, 2);
	assert_int_equal(t.tee, 3);
	assert_int_equal(t.snp, 4);
	assert_int_equal(t.microcode, 5);
}

/* One bit flipped in each named region gives the named error. */
static void test_bit_flips_named(void **state)
{
	static const struct {
		const char *region;
		size_t off;
		uint8_t bit;
		int code;
	} cases[] = {
		{ "version 2->10", 0x000, 0x08, -KILN_EFORMAT },
		{ "version 2->3", 0x000, 0x01, -KILN_ESIG },
		{ "guest_svn", 0x004, 0x01, -KILN_ESIG },
		{ "policy debug bit", 0x00A, 0x08, -KILN_ESIG },
		{ "family_id", 0x010, 0x80, -KILN_ESIG },
		{ "image_id", 0x020, 0x01, -KILN_ESIG },
		{ "vmpl", 0x030, 0x01, -KILN_ESIG },
		{ "vmpl out of range", 0x030, 0x04, -KILN_EFORMAT },
		{ "signature_algo", 0x034, 0x02, -KILN_EFORMAT },
		{ "current_tcb", 0x038, 0x01, -KILN_ESIG },
		{ "platform_info", 0x040, 0x02, -KILN_ESIG },
		{ "flags: VLEK", 0x048, 0x04, -KILN_ECHAIN },
		{ "flags: unknown key", 0x048, 0x08, -KILN_EFORMAT },
		{ "flags: mask chip key", 0x048, 0x02, -KILN_ESIG },
		{ "report_data", 0x050, 0x01, -KILN_ESIG },
		{ "report_data end", 0x08F, 0x80, -KILN_ESIG },
		{ "measurement", 0x090, 0x01, -KILN_ESIG },
		{ "measurement end", 0x0BF, 0x40, -KILN_ESIG },
		{ "host_data", 0x0C0, 0x01, -KILN_ESIG },
		{ "id_key_digest", 0x0E0, 0x01, -KILN_ESIG },
		{ "author_key_digest", 0x110, 0x01, -KILN_ESIG },
		{ "report_id", 0x140, 0x01, -KILN_ESIG },
		{ "report_id_ma", 0x160, 0x01, -KILN_ESIG },
		{ "reported_tcb", 0x180, 0x01, -KILN_ESIG },
		{ "reported_tcb microcode", 0x187, 0x01, -KILN_ESIG },
		{ "chip_id", 0x1A0, 0x01, -KILN_ESIG },
		{ "chip_id end", 0x1DF, 0x80, -KILN_ESIG },
		{ "committed_tcb", 0x1E0, 0x01, -KILN_ESIG },
		{ "current version", 0x1E9, 0x01, -KILN_ESIG },
		{ "launch_tcb", 0x1F0, 0x01, -KILN_ESIG },
		{ "reserved2", 0x29F, 0x01, -KILN_ESIG },
		{ "signature.r", 0x2A0, 0x01, -KILN_ESIG },
		{ "signature.r high", 0x2CF, 0x01, -KILN_ESIG },
		{ "signature.r padding", 0x2D0, 0x01, -KILN_EFORMAT },
		{ "signature.s", 0x2E8, 0x01, -KILN_ESIG },
		{ "signature.s high", 0x317, 0x80, -KILN_ESIG },
		{ "signature.s padding", 0x32F, 0x01, -KILN_EFORMAT },
		{ "signature.reserved", 0x400, 0x01, -KILN_EFORMAT },
		{ "last byte", 0x49F, 0x80, -KILN_EFORMAT },
	};
	uint8_t copy[EV_SNP_REPORT_SIZE];
	struct kiln_err err;

	for (size_t i = 0; i < KILN_ARRAY_SIZE(cases); i++) {
		int ret;

		memcpy(copy, g_report, sizeof(copy));
		copy[cases[i].off] ^= cases[i].bit;
		ret = verify_copy(copy, &err);
		if (ret != cases[i].code)
			fail_msg("%s (0x%zx): got %d (%s), want %d", cases[i].region, cases[i].off,
				 ret, err.msg, cases[i].code);
	}
	/* The messages name what failed. */
	memcpy(copy, g_report, sizeof(copy));
	copy[0x90] ^= 1;
	assert_int_equal(verify_copy(copy, &err), -KILN_ESIG);
	assert_non_null(strstr(err.msg, "signature"));
	memcpy(copy, g_report, sizeof(copy));
	copy[0x34] ^= 2;
	assert_int_equal(verify_copy(copy, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "signature_algo"));
}

/* Every byte of the report: no flipped bit verifies. */
static void test_bit_flips_everywhere(void **state)
{
	uint8_t copy[EV_SNP_REPORT_SIZE];
	struct kiln_err err;

	for (size_t off = 0; off < EV_SNP_REPORT_SIZE; off++) {
		memcpy(copy, g_report, sizeof(copy));
		copy[off] ^= (uint8_t)(1u << (off % 8));
		if (verify_copy(copy, &err) >= 0)
			fail_msg("flipped bit %zu of byte 0x%zx still verifies", off % 8, off);
	}
}

static void test_wrong_chains(void **state)
{
	static const struct {
		int chain;
		int code;
		const char *needle;
	} cases[] = {
		{ 1, -KILN_ECHAIN, "issuer SEV-Milan" }, /* Genoa ASK/ARK */
		{ 2, -KILN_ECHAIN, "issuer SEV-Milan" }, /* Turin */
		{ 3, -KILN_ECHAIN, "issuer SEV-Milan" }, /* Milan ASVK (VLEK chain) */
		{ 4, -KILN_ECHAIN, "issuer SEV-Milan" },
		{ -1, -KILN_ECHAIN, "issuer SEV-Milan" }, /* VCEK alone */
	};
	struct kiln_err err;
	json_t *claims = NULL;

	for (size_t i = 0; i < KILN_ARRAY_SIZE(cases); i++) {
		int ret = verify_with(g_report, g_report_size, cases[i].chain, AT_2025_07_01,
				      &claims, &err);

		if (ret != cases[i].code || !strstr(err.msg, cases[i].needle))
			fail_msg("chain %d: got %d '%s'", cases[i].chain, ret, err.msg);
		assert_null(claims);
	}
}

/* Split a two-certificate PEM file into its two PEM blocks. */
static void split_chain(const char *pem, char **first, char **second)
{
	const char *end = strstr(pem, "-----END CERTIFICATE-----");
	size_t n;

	assert_non_null(end);
	end += strlen("-----END CERTIFICATE-----");
	n = (size_t)(end - pem);
	*first = strndup(pem, n);
	*second = strdup(end);
}

static void test_missing_certs(void **state)
{
	struct ev_verify_opts opts = { .at = AT_2025_07_01 };
	struct kiln_err err = { 0 };
	json_t *claims = NULL;
	char *milan_ask, *milan_ark, *genoa_ask, *genoa_ark;
	const char *certs[3];

	assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims, &err),
			 -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "no VCEK certificate"));

	split_chain(g_chain[0], &milan_ask, &milan_ark);
	split_chain(g_chain[1], &genoa_ask, &genoa_ark);
	/* Milan ASK without its ARK, then with the Genoa ARK: no trusted root. */
	certs[0] = g_vcek_pem;
	certs[1] = milan_ask;
	certs[2] = genoa_ark;
	opts.certs_pem = certs;
	opts.n_certs = 2;
	assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims, &err),
			 -KILN_EROOT);
	assert_non_null(strstr(err.msg, "ARK-Milan"));
	opts.n_certs = 3;
	assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims, &err),
			 -KILN_EROOT);
	/* The right chain, given as two separate inputs. */
	certs[1] = milan_ask;
	certs[2] = milan_ark;
	assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims, &err),
			 0);
	json_decref(claims);
	/* A certificate string with no PEM inside. */
	certs[2] = "not a certificate";
	assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "input 3"));
	free(milan_ask);
	free(milan_ark);
	free(genoa_ask);
	free(genoa_ark);
}

/* A certificate with the given subject and issuer names, key and extensions,
 * signed with signer (RSA-PSS when signer is RSA, else ECDSA-SHA384). */
static X509 *make_cert(const X509_NAME *subject, const X509_NAME *issuer, EVP_PKEY *key,
		       EVP_PKEY *signer, X509_EXTENSION **exts, size_t n_exts)
{
	X509 *x = X509_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	assert_int_equal(X509_set_subject_name(x, subject), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer), 1);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &(time_t){ AT_2025_07_01 - 86400 });
	X509_time_adj_ex(X509_getm_notAfter(x), 365, 0, &(time_t){ AT_2025_07_01 });
	assert_int_equal(X509_set_pubkey(x, key), 1);
	for (size_t i = 0; i < n_exts; i++)
		assert_int_equal(X509_add_ext(x, exts[i], -1), 1);
	assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha384(), NULL, signer), 1);
	if (EVP_PKEY_get_base_id(signer) == EVP_PKEY_RSA) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48), 1);
	}
	assert_true(X509_sign_ctx(x, md) > 0);
	EVP_MD_CTX_free(md);
	return x;
}

static char *cert_pem(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *buf, *out;
	long len;

	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	len = BIO_get_mem_data(bio, &buf);
	out = strndup(buf, (size_t)len);
	BIO_free(bio);
	return out;
}

static X509 *pem_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

	BIO_free(bio);
	assert_non_null(x);
	return x;
}

/* A forged root with ARK-Milan's name is not pinned; a forged ASK with SEV-Milan's name
 * under the real ARK does not carry ARK's signature. */
static void test_forged_roots(void **state)
{
	char *ask_pem, *ark_pem, *fake_pem;
	X509 *ask, *ark, *fake;
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	const char *certs[3];
	struct ev_verify_opts opts = { .at = AT_2025_07_01, .certs_pem = certs, .n_certs = 3 };
	struct kiln_err err = { 0 };
	json_t *claims = NULL;

	assert_non_null(rsa);
	split_chain(g_chain[0], &ask_pem, &ark_pem);
	ask = pem_cert(ask_pem);
	ark = pem_cert(ark_pem);
	certs[0] = g_vcek_pem;

	fake = make_cert(X509_get_subject_name(ark), X509_get_subject_name(ark), rsa, rsa,
			 NULL, 0);
	fake_pem = cert_pem(fake);
	certs[1] = ask_pem;
	certs[2] = fake_pem;
	assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims, &err),
			 -KILN_EROOT);
	assert_non_null(strstr(err.msg, "not a pinned AMD ARK"));
	X509_free(fake);
	free(fake_pem);

	fake = make_cert(X509_get_subject_name(ask), X509_get_subject_name(ark), rsa, rsa,
			 NULL, 0);
	fake_pem = cert_pem(fake);
	certs[1] = fake_pem;
	certs[2] = ark_pem;
	assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims, &err),
			 -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "SEV-Milan: signature by ARK-Milan does not verify"));
	assert_null(claims);
	X509_free(fake);
	free(fake_pem);
	X509_free(ask);
	X509_free(ark);
	free(ask_pem);
	free(ark_pem);
	EVP_PKEY_free(rsa);
}

static void test_validity_window(void **state)
{
	struct kiln_err err;
	json_t *claims = NULL;

	/* VCEK: 2022-09-24T00:55:28Z .. 2029-09-24T00:55:28Z. */
	assert_int_equal(verify_with(g_report, g_report_size, 0, 1916265600 /* 2030-09-22 */,
				     &claims, &err), -KILN_EEXPIRED);
	assert_non_null(strstr(err.msg, "SEV-VCEK"));
	assert_non_null(strstr(err.msg, "2029-09-24T00:55:28Z"));
	assert_int_equal(verify_with(g_report, g_report_size, 0, 1663980927 /* one s early */,
				     &claims, &err), -KILN_EEXPIRED);
	assert_int_equal(verify_with(g_report, g_report_size, 0, 1663980928, &claims, &err), 0);
	json_decref(claims);
	assert_int_equal(verify_with(g_report, g_report_size, 0, 1884905728, &claims, &err), 0);
	json_decref(claims);
	assert_int_equal(verify_with(g_report, g_report_size, 0, 1884905729, &claims, &err),
			 -KILN_EEXPIRED);
	assert_null(claims);
}

static void test_truncated(void **state)
{
	struct kiln_err err;
	json_t *claims = NULL;

	/* Every length short of a report; copies so ASan sees any over-read. */
	for (size_t len = 0; len < EV_SNP_REPORT_SIZE; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		int ret;

		memcpy(copy, g_report, len);
		ret = verify_with(copy, len, 0, AT_2025_07_01, &claims, &err);
		free(copy);
		if (ret != -KILN_ETRUNC)
			fail_msg("length %zu: got %d '%s'", len, ret, err.msg);
		assert_null(claims);
	}
	assert_int_equal(verify_with(g_report, 0x1A0 + 10, 0, AT_2025_07_01, &claims, &err),
			 -KILN_ETRUNC);
	assert_non_null(strstr(err.msg, "'chip_id'"));
	assert_int_equal(verify_with(g_report, 2, 0, AT_2025_07_01, &claims, &err),
			 -KILN_ETRUNC);
	assert_non_null(strstr(err.msg, "'version'"));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* report || certificate table {VCEK, ASK, ARK} verifies without certs_pem; trailing
 * bytes that are not a table are refused. */
static void test_trailing_and_cert_table(void **state)
{
	static const uint8_t vcek_guid[16] = { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
					       0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd };
	static const uint8_t ask_guid[16] = { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
					      0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 };
	static const uint8_t ark_guid_mixed[16] = { 0xa4, 0x06, 0xb4, 0xc0, 0x03, 0xa8, 0x52,
						    0x49, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c,
						    0xd0, 0xae };
	struct ev_verify_opts opts = { .at = AT_2025_07_01 };
	struct kiln_err err = { 0 };
	json_t *claims = NULL;
	char *ask_pem, *ark_pem;
	X509 *ask, *ark;
	unsigned char *ask_der = NULL, *ark_der = NULL;
	int ask_size, ark_size;
	size_t table_size, off, size;
	uint8_t *buf;
	uint8_t **ders;
	size_t *sizes, n;

	split_chain(g_chain[0], &ask_pem, &ark_pem);
	ask = pem_cert(ask_pem);
	ark = pem_cert(ark_pem);
	ask_size = i2d_X509(ask, &ask_der);
	ark_size = i2d_X509(ark, &ark_der);
	table_size = 4 * 24 + g_vcek_der_size + (size_t)ask_size + (size_t)ark_size;
	size = EV_SNP_REPORT_SIZE + table_size;
	buf = calloc(1, size);
	memcpy(buf, g_report, EV_SNP_REPORT_SIZE);
	{
		uint8_t *t = buf + EV_SNP_REPORT_SIZE;

		off = 4 * 24;
		memcpy(t, vcek_guid, 16);
		put_le32(t + 16, (uint32_t)off);
		put_le32(t + 20, (uint32_t)g_vcek_der_size);
		memcpy(t + off, g_vcek_der, g_vcek_der_size);
		off += g_vcek_der_size;
		memcpy(t + 24, ask_guid, 16);
		put_le32(t + 40, (uint32_t)off);
		put_le32(t + 44, (uint32_t)ask_size);
		memcpy(t + off, ask_der, (size_t)ask_size);
		off += (size_t)ask_size;
		memcpy(t + 48, ark_guid_mixed, 16);
		put_le32(t + 64, (uint32_t)off);
		put_le32(t + 68, (uint32_t)ark_size);
		memcpy(t + off, ark_der, (size_t)ark_size);
	}
	assert_int_equal(ev_snp_cert_table_parse(buf + EV_SNP_REPORT_SIZE, table_size, &ders,
						 &sizes, &n, NULL), 0);
	assert_int_equal(n, 3);
	assert_int_equal(sizes[0], g_vcek_der_size);
	for (size_t i = 0; i < n; i++)
		free(ders[i]);
	free(ders);
	free(sizes);
	assert_int_equal(ev_backend_snp.verify(buf, size, &opts, &claims, &err), 0);
	check_milan_claims(claims);
	json_decref(claims);
	claims = NULL;

	/* An entry pointing past the end: not a table, so "trailing bytes". */
	put_le32(buf + EV_SNP_REPORT_SIZE + 68, (uint32_t)table_size);
	assert_int_equal(ev_backend_snp.verify(buf, size, &opts, &claims, &err),
			 -KILN_ETRAILING);
	assert_int_equal(ev_snp_cert_table_parse(buf + EV_SNP_REPORT_SIZE, table_size, &ders,
						 &sizes, &n, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "entry 2"));
	/* One extra byte after the report. */
	assert_int_equal(ev_backend_snp.verify(buf, EV_SNP_REPORT_SIZE + 1, &opts, &claims,
					       &err), -KILN_ETRAILING);
	assert_non_null(strstr(err.msg, "1 unexpected bytes"));
	assert_int_equal(ev_snp_report_parse(buf, EV_SNP_REPORT_SIZE + 1,
					     &(struct ev_snp_report){ 0 }, NULL), -KILN_ETRAILING);
	assert_null(claims);
	free(buf);
	OPENSSL_free(ask_der);
	OPENSSL_free(ark_der);
	X509_free(ask);
	X509_free(ark);
	free(ask_pem);
	free(ark_pem);
}

/* ---- binding checks with a self-made VCEK ----------------------------------------- */

static X509_EXTENSION *ext_raw(const char *oid, const uint8_t *der, size_t size)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e;

	assert_int_equal(ASN1_OCTET_STRING_set(os, der, (int)size), 1);
	e = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
	assert_non_null(e);
	ASN1_OBJECT_free(obj);
	ASN1_OCTET_STRING_free(os);
	return e;
}

static X509_EXTENSION *ext_int(const char *oid, uint8_t v)
{
	uint8_t der[4] = { 0x02, 0x01, v };
	size_t size = 3;

	if (v & 0x80) { /* positive INTEGER needs a leading zero */
		der[1] = 2;
		der[2] = 0;
		der[3] = v;
		size = 4;
	}
	return ext_raw(oid, der, size);
}

struct fake_tcb {
	int fmc, bl, tee, snp, ucode; /* -1: extension absent */
};

/* A self-signed P-384 "VCEK" with hwID and TCB extensions; *key receives its key. */
static X509 *fake_vcek(const uint8_t *hwid, const struct fake_tcb *t, EVP_PKEY **key)
{
	X509_EXTENSION *e[6];
	X509_NAME *name = X509_NAME_new();
	size_t n = 0;
	X509 *x;

	*key = EVP_EC_gen("P-384");
	assert_non_null(*key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"SEV-VCEK",
				   -1, -1, 0);
	if (hwid)
		e[n++] = ext_raw("1.3.6.1.4.1.3704.1.4", hwid, 64);
	if (t->bl >= 0)
		e[n++] = ext_int("1.3.6.1.4.1.3704.1.3.1", (uint8_t)t->bl);
	if (t->tee >= 0)
		e[n++] = ext_int("1.3.6.1.4.1.3704.1.3.2", (uint8_t)t->tee);
	if (t->snp >= 0)
		e[n++] = ext_int("1.3.6.1.4.1.3704.1.3.3", (uint8_t)t->snp);
	if (t->ucode >= 0)
		e[n++] = ext_int("1.3.6.1.4.1.3704.1.3.8", (uint8_t)t->ucode);
	if (t->fmc >= 0)
		e[n++] = ext_int("1.3.6.1.4.1.3704.1.3.9", (uint8_t)t->fmc);
	x = make_cert(name, name, *key, *key, e, n);
	for (size_t i = 0; i < n; i++)
		X509_EXTENSION_free(e[i]);
	X509_NAME_free(name);
	return x;
}

/* Sign report[0, 0x2A0) with key, writing r and s little-endian. */
static void sign_report(uint8_t *report, EVP_PKEY *key)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[128];
	const unsigned char *p = der;
	size_t der_size = sizeof(der);
	ECDSA_SIG *sig;

	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key), 1);
	assert_int_equal(EVP_DigestSign(md, der, &der_size, report, EV_SNP_SIGNED_SIZE), 1);
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_size);
	assert_non_null(sig);
	memset(report + 0x2A0, 0, EV_SNP_REPORT_SIZE - 0x2A0);
	assert_int_equal(BN_bn2lebinpad(ECDSA_SIG_get0_r(sig), report + 0x2A0, 72), 72);
	assert_int_equal(BN_bn2lebinpad(ECDSA_SIG_get0_s(sig), report + 0x2E8, 72), 72);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
}

static int check_fake(uint8_t *report, const uint8_t *hwid, const struct fake_tcb *t,
		      const char *product, struct kiln_err *err)
{
	EVP_PKEY *key;
	X509 *x = fake_vcek(hwid, t, &key);
	int ret;

	sign_report(report, key);
	memset(err, 0, sizeof(*err));
	ret = ev_snp_check_report(report, EV_SNP_REPORT_SIZE, x, product, err);
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

static void test_binding_checks(void **state)
{
	const struct fake_tcb milan = { -1, 2, 0, 5, 68 };
	uint8_t report[EV_SNP_REPORT_SIZE], chip[64];
	struct kiln_err err;

	memcpy(report, g_report, sizeof(report));
	memcpy(chip, g_report + 0x1A0, 64);
	/* Positive control: same fields, our key. */
	assert_int_equal(check_fake(report, chip, &milan, "Milan", &err), 0);
	/* The real VCEK does not verify our signature. */
	{
		const unsigned char *p = g_vcek_der;
		X509 *real = d2i_X509(NULL, &p, (long)g_vcek_der_size);

		assert_int_equal(ev_snp_check_report(report, sizeof(report), real, "Milan", &err),
				 -KILN_ESIG);
		X509_free(real);
	}
	/* chip_id differs from hwID. */
	report[0x1A5] ^= 0x10;
	assert_int_equal(check_fake(report, chip, &milan, "Milan", &err), -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "VCEK hwID does not match report chip_id"));
	/* Masked chip id. */
	memset(report + 0x1A0, 0, 64);
	assert_int_equal(check_fake(report, chip, &milan, "Milan", &err), -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "masked"));
	memcpy(report + 0x1A0, chip, 64);
	/* No hwID extension. */
	assert_int_equal(check_fake(report, NULL, &milan, "Milan", &err), -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "no hwID"));
	/* Each TCB component differing. */
	{
		const struct {
			struct fake_tcb t;
			const char *needle;
		} cases[] = {
			{ { -1, 3, 0, 5, 68 }, "blSPL is 3 but report reported_tcb.bootloader "
						"is 2" },
			{ { -1, 2, 1, 5, 68 }, "teeSPL is 1 but report reported_tcb.tee is 0" },
			{ { -1, 2, 0, 8, 68 }, "snpSPL is 8" },
			{ { -1, 2, 0, 5, 200 }, "ucodeSPL is 200 but report reported_tcb.microcode "
						 "is 68" },
			{ { -1, -1, 0, 5, 68 }, "no TCB extension blSPL" },
		};

		for (size_t i = 0; i < KILN_ARRAY_SIZE(cases); i++) {
			int ret = check_fake(report, chip, &cases[i].t, "Milan", &err);

			if (ret != -KILN_ECHAIN || !strstr(err.msg, cases[i].needle))
				fail_msg("tcb case %zu: %d '%s'", i, ret, err.msg);
		}
	}
	/* Turin layout: fmc 1, bl 2, tee 3, snp 4, ucode 5 -> bytes 01 02 03 04 00 00 00 05. */
	{
		const uint8_t raw[8] = { 1, 2, 3, 4, 0, 0, 0, 5 };
		const struct fake_tcb turin = { 1, 2, 3, 4, 5 }, bad_fmc = { 9, 2, 3, 4, 5 };

		memcpy(report + 0x180, raw, 8);
		assert_int_equal(check_fake(report, chip, &turin, "Turin", &err), 0);
		assert_int_equal(check_fake(report, chip, &bad_fmc, "Turin", &err), -KILN_ECHAIN);
		assert_non_null(strstr(err.msg, "fmcSPL is 9"));
		/* Read with the Milan layout the same bytes mean other levels. */
		assert_int_equal(check_fake(report, chip, &turin, "Milan", &err), -KILN_ECHAIN);
		/* A v3 report names its CPU: a Turin part under a Milan chain is refused
		 * before any TCB comparison. */
		report[0] = 3;
		report[0x188] = 0x1A;
		report[0x189] = 0x02;
		assert_int_equal(check_fake(report, chip, &turin, "Turin", &err), 0);
		assert_int_equal(check_fake(report, chip, &turin, "Milan", &err), -KILN_ECHAIN);
		assert_non_null(strstr(err.msg, "model 0x02 is a Turin part"));
		report[0x188] = 0x19;
		report[0x189] = 0x11;
		assert_int_equal(check_fake(report, chip, &turin, "Turin", &err), -KILN_ECHAIN);
		assert_non_null(strstr(err.msg, "Genoa part"));
		/* Unknown family: no claim about the product, the chain decides. */
		report[0x188] = 0x42;
		assert_int_equal(check_fake(report, chip, &turin, "Turin", &err), 0);
	}
}

/* A CRL issued under `issuer`'s name, signed with `signer` (RSA-PSS), revoking the
 * certificates in `revoked`. */
static X509_CRL *make_crl(X509 *issuer, EVP_PKEY *signer, X509 *const *revoked, size_t n)
{
	X509_CRL *crl = X509_CRL_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	ASN1_TIME *t = ASN1_TIME_new();

	assert_non_null(crl);
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)), 1);
	ASN1_TIME_set(t, AT_2025_07_01 - 86400);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	ASN1_TIME_set(t, AT_2025_07_01 + 86400);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();

		ASN1_TIME_set(t, AT_2025_07_01 - 3600);
		assert_int_equal(X509_REVOKED_set_serialNumber(r,
				 X509_get_serialNumber(revoked[i])), 1);
		assert_int_equal(X509_REVOKED_set_revocationDate(r, t), 1);
		assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
	}
	X509_CRL_sort(crl);
	assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha384(), NULL, signer), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48), 1);
	assert_true(X509_CRL_sign_ctx(crl, md) > 0);
	EVP_MD_CTX_free(md);
	ASN1_TIME_free(t);
	return crl;
}

static char *crl_pem(X509_CRL *crl)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *buf, *out;
	long len;

	assert_int_equal(PEM_write_bio_X509_CRL(bio, crl), 1);
	len = BIO_get_mem_data(bio, &buf);
	out = strndup(buf, (size_t)len);
	BIO_free(bio);
	return out;
}

/* AMD CRLs: revocation of the ASK or the leaf, issuer and signature checks; with the
 * real chain, a CRL that claims to be ARK-Milan's but is not signed by it. */
static void test_crl(void **state)
{
	EVP_PKEY *ark_key = EVP_RSA_gen(2048), *other = EVP_RSA_gen(2048), *leaf_key;
	X509_NAME *ark_name = X509_NAME_new(), *ask_name = X509_NAME_new();
	X509 *ark, *ask, *leaf, *chain[2];
	X509_CRL *crl;
	struct fake_tcb t = { -1, 2, 0, 5, 68 };
	struct kiln_err err = { 0 };
	time_t tu, nu;

	X509_NAME_add_entry_by_txt(ark_name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"ARK-Test", -1, -1, 0);
	X509_NAME_add_entry_by_txt(ask_name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"SEV-Test", -1, -1, 0);
	ark = make_cert(ark_name, ark_name, ark_key, ark_key, NULL, 0);
	ask = make_cert(ask_name, ark_name, other, ark_key, NULL, 0);
	leaf = fake_vcek(NULL, &t, &leaf_key);
	ASN1_INTEGER_set(X509_get_serialNumber(ask), 0x5e);
	ASN1_INTEGER_set(X509_get_serialNumber(leaf), 0x1eaf);
	chain[0] = ask;
	chain[1] = leaf;

	crl = make_crl(ark, ark_key, NULL, 0);
	assert_int_equal(ev_snp_check_crl(crl, ark, chain, 2, &tu, &nu, &err), 0);
	assert_int_equal(tu, AT_2025_07_01 - 86400);
	assert_int_equal(nu, AT_2025_07_01 + 86400);
	X509_CRL_free(crl);

	crl = make_crl(ark, ark_key, &ask, 1);
	assert_int_equal(ev_snp_check_crl(crl, ark, chain, 2, &tu, &nu, &err), -KILN_EREVOKED);
	assert_non_null(strstr(err.msg, "certificate SEV-Test (serial 5E) is revoked by the "
				   "CRL of ARK-Test since 2025-06-30T23:00:00Z"));
	X509_CRL_free(crl);
	/* Serials are per issuer: the ARK's CRL listing the leaf's serial does not revoke
	 * a leaf the ARK did not issue. */
	crl = make_crl(ark, ark_key, &leaf, 1);
	assert_int_equal(ev_snp_check_crl(crl, ark, chain, 2, &tu, &nu, &err), 0);
	X509_CRL_free(crl);
	/* Signed by another key; issued by another CA. */
	crl = make_crl(ark, other, NULL, 0);
	assert_int_equal(ev_snp_check_crl(crl, ark, chain, 2, &tu, &nu, &err), -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "signature by ARK-Test does not verify"));
	X509_CRL_free(crl);
	crl = make_crl(ask, other, NULL, 0);
	assert_int_equal(ev_snp_check_crl(crl, ark, chain, 2, &tu, &nu, &err), -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "CRL issued by SEV-Test, not by the chain's root "
				   "ARK-Test"));
	X509_CRL_free(crl);

	/* Through the verifier, with the real Milan chain. */
	{
		char *ask_pem, *ark_pem, *fake_crl;
		X509 *real_ark;
		const char *certs[3];
		struct ev_verify_opts opts = { .at = AT_2025_07_01, .certs_pem = certs,
					       .n_certs = 3 };
		json_t *claims = NULL;

		split_chain(g_chain[0], &ask_pem, &ark_pem);
		real_ark = pem_cert(ark_pem);
		crl = make_crl(real_ark, other, NULL, 0);
		fake_crl = crl_pem(crl);
		certs[0] = g_vcek_pem;
		certs[1] = g_chain[0];
		certs[2] = fake_crl; /* an input holding only a CRL is fine */
		assert_int_equal(ev_backend_snp.verify(g_report, g_report_size, &opts, &claims,
						       &err), -KILN_ECHAIN);
		assert_non_null(strstr(err.msg, "CRL of ARK-Milan: signature by ARK-Milan does "
					   "not verify"));
		assert_null(claims);
		X509_CRL_free(crl);
		X509_free(real_ark);
		free(fake_crl);
		free(ask_pem);
		free(ark_pem);
	}
	X509_free(ark);
	X509_free(ask);
	X509_free(leaf);
	X509_NAME_free(ark_name);
	X509_NAME_free(ask_name);
	EVP_PKEY_free(ark_key);
	EVP_PKEY_free(other);
	EVP_PKEY_free(leaf_key);
}

static void *verify_thread(void *arg)
{
	int *failures = arg;

	for (int i = 0; i < 10; i++) {
		struct kiln_err err;
		json_t *claims = NULL;

		if (verify_with(g_report, g_report_size, 0, AT_2025_07_01, &claims, &err) != 0 ||
		    !json_is_true(json_object_get(claims, "debug")))
			(*failures)++;
		json_decref(claims);
		/* A failing chain in between runs the uncached path concurrently. */
		if (verify_with(g_report, g_report_size, 1, AT_2025_07_01, &claims, &err) !=
		    -KILN_ECHAIN)
			(*failures)++;
	}
	return NULL;
}

/* The chain cache is shared: concurrent verifications all succeed. */
static void test_concurrent_verify(void **state)
{
	pthread_t t[4];
	int failures[4] = { 0 };

	ev_snp_cache_clear();
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, verify_thread, &failures[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(failures[i], 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_milan_verifies),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_bit_flips_named),
		cmocka_unit_test(test_bit_flips_everywhere),
		cmocka_unit_test(test_wrong_chains),
		cmocka_unit_test(test_missing_certs),
		cmocka_unit_test(test_forged_roots),
		cmocka_unit_test(test_validity_window),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing_and_cert_table),
		cmocka_unit_test(test_binding_checks),
		cmocka_unit_test(test_concurrent_verify),
		cmocka_unit_test(test_crl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
