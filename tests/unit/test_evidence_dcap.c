/* Unit tests for the Intel SGX/TDX DCAP verifiers (src/evidence/dcap_*.c), on the real
 * quotes and collateral of testdata/evidence (expected results: EXPECTED.md there) and
 * negatives derived from them: a flipped bit per region, times outside the collateral
 * window, a self-made root, truncation at many lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "evidence/dcap.h"

struct sample {
	const char *quote_path;
	const char *collateral_path;
	const char *at;          /* fixed verification time from EXPECTED.md */
	const char *backend;
	uint8_t *quote;
	size_t size;
	json_t *collateral;
	time_t t;
};

static struct sample g_sgx = {"evidence/sgx/quote.bin", "evidence/sgx/collateral.json",
			      "2025-07-01T00:00:00Z", "sgx", NULL, 0, NULL, 0};
static struct sample g_tdx4 = {"evidence/tdx/quote_v4.bin",
			       "evidence/tdx/quote_v4_collateral.json",
			       "2025-07-01T00:00:00Z", "tdx", NULL, 0, NULL, 0};
static struct sample g_tdx5 = {"evidence/tdx/quote_v5_tcb_not_supported.bin",
			       "evidence/tdx/quote_v5_tcb_not_supported_collateral.json",
			       "2026-03-01T00:00:00Z", "tdx", NULL, 0, NULL, 0};

static char *data_path(const char *rel)
{
	const char *base = getenv("KILN_TESTDATA");
	char *p;

	assert_non_null(base);
	assert_true(asprintf(&p, "%s/%s", base, rel) > 0);
	return p;
}

static void load(struct sample *s)
{
	char *qp = data_path(s->quote_path), *cp = data_path(s->collateral_path);
	json_error_t jerr;

	assert_int_equal(kiln_read_file(qp, 1 << 20, &s->quote, &s->size), 0);
	s->collateral = json_load_file(cp, 0, &jerr);
	assert_non_null(s->collateral);
	assert_int_equal(ev_dcap_parse_time(s->at, &s->t), 0);
	free(qp);
	free(cp);
}

static void unload(struct sample *s)
{
	free(s->quote);
	json_decref(s->collateral);
	s->quote = NULL;
	s->collateral = NULL;
}

static int setup(void **state)
{
	load(&g_sgx);
	load(&g_tdx4);
	load(&g_tdx5);
	return 0;
}

static int teardown(void **state)
{
	unload(&g_sgx);
	unload(&g_tdx4);
	unload(&g_tdx5);
	return 0;
}

/* Verify through the public backend table, as the CLI and the CAS do. */
static int verify_with(const struct sample *s, const uint8_t *q, size_t size,
		       const json_t *collateral, time_t at, json_t **claims,
		       struct kiln_err *err)
{
	const struct ev_backend *b = ev_backend_find(s->backend);
	struct ev_verify_opts opts = {.at = at, .collateral = collateral};

	assert_non_null(b);
	memset(err, 0, sizeof(*err));
	return b->verify(q, size, &opts, claims, err);
}

static int verify(const struct sample *s, json_t **claims, struct kiln_err *err)
{
	return verify_with(s, s->quote, s->size, s->collateral, s->t, claims, err);
}

static const char *str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	assert_non_null(v);
	return v;
}

/* ---- the real samples -------------------------------------------------------- */

static void test_root_pin(void **state)
{
	X509 *root = ev_dcap_root_ca(NULL);
	unsigned char *der = NULL;
	uint8_t digest[32];
	char hex[65];
	int n;

	assert_non_null(root);
	n = i2d_X509(root, &der);
	assert_true(n > 0);
	assert_int_equal(kc_sha256(der, (size_t)n, digest), 0);
	kiln_hex_encode(digest, sizeof(digest), hex);
	assert_string_equal(hex,
			    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3");
	OPENSSL_free(der);
}

static void test_sgx_quote(void **state)
{
	struct kiln_err err;
	json_t *c = NULL, *adv;

	assert_int_equal(verify(&g_sgx, &c, &err), 0);
	assert_string_equal(str(c, "tee"), "sgx");
	assert_string_equal(str(c, "mrenclave"),
			    "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
	assert_string_equal(str(c, "platform_measurement"), str(c, "mrenclave"));
	assert_string_equal(str(c, "mrsigner"),
			    "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6");
	assert_int_equal(json_integer_value(json_object_get(c, "isvprodid")), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "isvsvn")), 0);
	assert_true(json_is_false(json_object_get(c, "debug")));
	assert_string_equal(str(c, "report_data"),
			    "48656c6c6f2c20776f726c6421000000000000000000000000000000000000"
			    "0000000000000000000000000000000000000000000000000000000000000000"
			    "00");
	assert_string_equal(str(c, "cpusvn"), "0b0b1a18ffff04000000000000000000");
	assert_string_equal(str(c, "tcb_status"), "ConfigurationAndSWHardeningNeeded");
	assert_string_equal(str(c, "qe_status"), "UpToDate");
	assert_string_equal(str(c, "fmspc"), "00a067110000");
	assert_string_equal(str(c, "collateral_valid_until"), "2025-07-19T10:01:18Z");
	assert_int_equal(json_integer_value(json_object_get(c, "quote_version")), 3);
	assert_int_equal(json_integer_value(json_object_get(c, "trailing_bytes")), 0);
	adv = json_object_get(c, "advisories");
	assert_int_equal(json_array_size(adv), 2);
	assert_string_equal(json_string_value(json_array_get(adv, 0)), "INTEL-SA-00289");
	assert_string_equal(json_string_value(json_array_get(adv, 1)), "INTEL-SA-00615");
	json_decref(c);
}

static void test_tdx_v4_quote(void **state)
{
	struct kiln_err err;
	json_t *c = NULL;

	assert_int_equal(verify(&g_tdx4, &c, &err), 0);
	assert_string_equal(str(c, "tee"), "tdx");
	assert_string_equal(str(c, "tcb_status"), "UpToDate");
	assert_string_equal(str(c, "qe_status"), "UpToDate");
	assert_string_equal(str(c, "tdx_module_status"), "UpToDate");
	assert_int_equal(json_array_size(json_object_get(c, "advisories")), 0);
	assert_string_equal(str(c, "mrtd"), "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a"
			    "3520c942a604a407de03ae6dc5f87f27428b2538873118b7");
	assert_string_equal(str(c, "platform_measurement"), str(c, "mrtd"));
	assert_string_equal(str(c, "rtmr0"), "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b"
			    "8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0");
	assert_string_equal(str(c, "rtmr1"), "0084452c01668329d4bc06acdf58a7205c26743304509973"
			    "949e5619bf81a6a7aea8c323c173019b3093d54e579e9378");
	assert_string_equal(str(c, "rtmr2"), "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc55"
			    "1dccd829fc207aa3ba80b70870d7330733642e01d48c3132");
	assert_string_equal(str(c, "rtmr3"), "00000000000000000000000000000000"
			    "0000000000000000000000000000000000000000000000000000000000000000");
	assert_string_equal(str(c, "mrseam"), "5b38e33a6487958b72c3c12a938eaa5e3fd4510c51aeeab5"
			    "8c7d5ecee41d7c436489d6c8e4f92f160b7cad34207b00c1");
	assert_string_equal(str(c, "mrconfigid"), str(c, "rtmr3"));
	assert_string_equal(str(c, "mrowner"), str(c, "rtmr3"));
	assert_string_equal(str(c, "mrownerconfig"), str(c, "rtmr3"));
	assert_string_equal(str(c, "td_attributes"), "0000001000000000");
	assert_string_equal(str(c, "tee_tcb_svn"), "06010300000000000000000000000000");
	assert_true(json_is_false(json_object_get(c, "debug")));
	assert_string_equal(str(c, "report_data"),
			    "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9"
			    "eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20");
	assert_string_equal(str(c, "fmspc"), "b0c06f000000");
	assert_string_equal(str(c, "collateral_valid_until"), "2025-07-19T10:00:35Z");
	assert_int_equal(json_integer_value(json_object_get(c, "quote_version")), 4);
	/* The 70 zero bytes after the signature data are reported, not hidden. */
	assert_int_equal(json_integer_value(json_object_get(c, "trailing_bytes")), 70);
	json_decref(c);
}

static void test_tdx_v5_tcb_not_supported(void **state)
{
	struct kiln_err err;
	json_t *c = NULL;
	struct ev_dcap_quote q;

	assert_int_equal(ev_dcap_quote_parse(g_tdx5.quote, g_tdx5.size, &q, NULL), 0);
	assert_int_equal(q.version, 5);
	assert_int_equal(q.body_type, 3);
	assert_int_equal(q.body_size, 648);
	assert_int_equal(q.signed_size, 702);
	assert_int_equal(q.trailing, 0);
	assert_int_equal(verify(&g_tdx5, &c, &err), -KILN_ETCB);
	assert_null(c);
	assert_non_null(strstr(err.msg, "TCB level not supported"));
}

static void pck_ext_of(const struct sample *s, struct ev_dcap_pck_ext *ext)
{
	struct ev_dcap_quote q;
	STACK_OF(X509) *chain = NULL;
	struct kiln_err err = {0};

	assert_int_equal(ev_dcap_quote_parse(s->quote, s->size, &q, NULL), 0);
	assert_int_equal(ev_dcap_pem_chain(q.pck_pem, q.pck_pem_size, "PCK", &chain, &err), 0);
	assert_int_equal(sk_X509_num(chain), 3);
	assert_int_equal(ev_dcap_pck_ext_parse(sk_X509_value(chain, 0), ext, &err), 0);
	/* The CA has no SGX extension. */
	assert_int_equal(ev_dcap_pck_ext_parse(sk_X509_value(chain, 1), ext + 1, &err),
			 -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "no SGX extension"));
	sk_X509_pop_free(chain, X509_free);
}

/* The PCK certificates' SGX extensions, values from EXPECTED.md. */
static void test_pck_extension(void **state)
{
	static const uint8_t sgx_svn[16] = {11, 11, 2, 2, 255, 1};
	static const uint8_t tdx_svn[16] = {3, 3, 2, 2, 4, 1, 0, 5};
	static const uint8_t tdx5_svn[16] = {3, 3, 2, 2, 4, 1, 0, 3};
	struct ev_dcap_pck_ext ext[2];
	char hex[13];

	pck_ext_of(&g_sgx, ext);
	assert_memory_equal(ext->comp_svn, sgx_svn, 16);
	assert_int_equal(ext->pcesvn, 13);
	kiln_hex_encode(ext->fmspc, 6, hex);
	assert_string_equal(hex, "00a067110000");
	assert_int_equal(ext->pceid[0] | ext->pceid[1], 0);
	assert_int_equal(ext->sgx_type, 0);
	pck_ext_of(&g_tdx4, ext);
	assert_memory_equal(ext->comp_svn, tdx_svn, 16);
	assert_int_equal(ext->pcesvn, 11);
	kiln_hex_encode(ext->fmspc, 6, hex);
	assert_string_equal(hex, "b0c06f000000");
	assert_int_equal(ext->sgx_type, 1);
	pck_ext_of(&g_tdx5, ext);
	assert_memory_equal(ext->comp_svn, tdx5_svn, 16);
	assert_int_equal(ext->pcesvn, 13);
	kiln_hex_encode(ext->fmspc, 6, hex);
	assert_string_equal(hex, "90c06f000000");
}

/* dcap-qvl verifies at the last second of the window; one second later is expired. */
static void test_window_edges(void **state)
{
	struct kiln_err err;
	json_t *c = NULL;
	time_t end;

	assert_int_equal(ev_dcap_parse_time("2025-07-19T10:01:18Z", &end), 0);
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, g_sgx.collateral, end - 1,
				     &c, &err), 0);
	json_decref(c);
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, g_sgx.collateral, end + 1,
				     &c, &err), -KILN_EEXPIRED);
	assert_null(c);
	assert_non_null(strstr(err.msg, "QE Identity"));
	assert_non_null(strstr(err.msg, "has expired"));

	assert_int_equal(ev_dcap_parse_time("2025-06-19T10:32:26Z", &end), 0);
	assert_int_equal(verify_with(&g_tdx4, g_tdx4.quote, g_tdx4.size, g_tdx4.collateral, end,
				     &c, &err), -KILN_EEXPIRED);
	assert_non_null(strstr(err.msg, "not yet valid"));
	assert_int_equal(verify_with(&g_tdx4, g_tdx4.quote, g_tdx4.size, g_tdx4.collateral,
				     end + 1, &c, &err), 0);
	json_decref(c);
}

static void test_expired(void **state)
{
	struct kiln_err err;
	json_t *c = NULL;
	time_t t;

	/* A year later: everything has expired; the message names what expired first. */
	assert_int_equal(ev_dcap_parse_time("2026-07-01T00:00:00Z", &t), 0);
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, g_sgx.collateral, t, &c,
				     &err), -KILN_EEXPIRED);
	assert_non_null(strstr(err.msg, "QE Identity (issueDate .. nextUpdate) has expired"));
	assert_non_null(strstr(err.msg, "verification time 2026-07-01T00:00:00Z"));
	assert_non_null(strstr(err.msg, "other collateral items"));
	/* TDX: only the PCK CRL (nextUpdate 2025-07-19T10:00:35Z) is past. */
	assert_int_equal(ev_dcap_parse_time("2025-07-19T10:10:00Z", &t), 0);
	assert_int_equal(verify_with(&g_tdx4, g_tdx4.quote, g_tdx4.size, g_tdx4.collateral, t,
				     &c, &err), -KILN_EEXPIRED);
	assert_non_null(strstr(err.msg, "PCK CRL has expired: valid 2025-06-19T10:00:35Z .. "
				  "2025-07-19T10:00:35Z"));
	assert_null(strstr(err.msg, "other"));
	/* Before the TDX v5 collateral was issued. */
	assert_int_equal(verify_with(&g_tdx5, g_tdx5.quote, g_tdx5.size, g_tdx5.collateral,
				     g_tdx4.t, &c, &err), -KILN_EEXPIRED);
	assert_non_null(strstr(err.msg, "not yet valid"));
	/* TCB Info alone (CRLs still valid): 2025-07-19T10:30Z is past the SGX QE Identity
	 * and TCB Info nextUpdate but the Root CA CRL is fine. */
	assert_int_equal(ev_dcap_parse_time("2025-07-19T11:00:00Z", &t), 0);
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, g_sgx.collateral, t, &c,
				     &err), -KILN_EEXPIRED);
	assert_null(c);
}

static void test_cached_collateral(void **state)
{
	ev_dcap_collateral_t *col = NULL;
	struct kiln_err err = {0};
	json_t *a = NULL, *b = NULL;

	assert_int_equal(ev_dcap_collateral_parse(g_tdx4.collateral, &col, &err), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ev_dcap_verify(g_tdx4.quote, g_tdx4.size, EV_DCAP_TEE_TDX, col,
						g_tdx4.t, &b, &err), 0);
		if (a) {
			assert_true(json_equal(a, b));
			json_decref(b);
		} else {
			a = b;
		}
		b = NULL;
	}
	/* The same collateral object refuses a quote of the other TEE kind. */
	assert_int_equal(ev_dcap_verify(g_sgx.quote, g_sgx.size, EV_DCAP_TEE_TDX, col, g_tdx4.t,
					&b, &err), -KILN_EFORMAT);
	json_decref(a);
	ev_dcap_collateral_free(col);
}

struct thread_job {
	ev_dcap_collateral_t *col;
	int failures;
};

static void *verify_many(void *arg)
{
	struct thread_job *j = arg;

	for (int i = 0; i < 40; i++) {
		struct kiln_err err;
		json_t *c = NULL;

		/* The first calls race to fill the PCK memo, the rest hit it. */
		if (ev_dcap_verify(g_tdx4.quote, g_tdx4.size, EV_DCAP_TEE_TDX, j->col, g_tdx4.t, &c,
				   &err) != 0)
			j->failures++;
		json_decref(c);
	}
	return NULL;
}

/* One parsed collateral shared by concurrent verifications (the CAS's use). */
static void test_shared_collateral_threads(void **state)
{
	ev_dcap_collateral_t *col = NULL;
	struct kiln_err err = {0};
	struct thread_job jobs[4];
	pthread_t th[4];

	assert_int_equal(ev_dcap_collateral_parse(g_tdx4.collateral, &col, &err), 0);
	for (int i = 0; i < 4; i++) {
		jobs[i].col = col;
		jobs[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, verify_many, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].failures, 0);
	}
	ev_dcap_collateral_free(col);
}

static void test_wrong_kind_and_missing_collateral(void **state)
{
	struct kiln_err err;
	json_t *c = NULL;
	const struct ev_backend *tdx = ev_backend_find("tdx");
	struct ev_verify_opts opts = {.at = g_sgx.t, .collateral = g_sgx.collateral};

	/* SGX quote given to the TDX backend. */
	assert_int_equal(tdx->verify(g_sgx.quote, g_sgx.size, &opts, &c, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "TEE type"));
	/* SGX quote with the TDX collateral: the PCK CRL belongs to another CA. */
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, g_tdx4.collateral,
				     g_sgx.t, &c, &err), -KILN_ECHAIN);
	/* No collateral at all. */
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, NULL, g_sgx.t, &c, &err),
			 -EINVAL);
	assert_null(c);
	assert_null(ev_backend_find("sgx")->produce);
	/* TDX quotes are produced through configfs-tsm (tested in test_tsm.c). */
	assert_non_null(tdx->produce);
}

/* ---- TCB evaluation on edited (unsigned) documents ------------------------------
 * The signatures are proved by the tests above; here the evaluation logic runs on
 * modified TCB Info / QE Identity objects against the real quotes and PCK certificates. */

struct tcb_case {
	ev_dcap_collateral_t *c;
	struct ev_dcap_quote q;
	struct ev_dcap_pck_ext ext;
	json_t *tcb, *qe;        /* editable copies, installed by run_tcb */
	struct ev_dcap_tcb_result r;
	struct kiln_err err;
};

static void tcb_case_init(struct tcb_case *t, const struct sample *s)
{
	struct ev_dcap_pck_ext two[2];

	memset(t, 0, sizeof(*t));
	assert_int_equal(ev_dcap_collateral_parse(s->collateral, &t->c, &t->err), 0);
	assert_int_equal(ev_dcap_quote_parse(s->quote, s->size, &t->q, NULL), 0);
	pck_ext_of(s, two);
	t->ext = two[0];
	t->tcb = json_deep_copy(t->c->tcb_info);
	t->qe = json_deep_copy(t->c->qe_identity);
}

/* Install the edited documents and evaluate; returns the first failing code. */
static int run_tcb(struct tcb_case *t)
{
	int ret;

	json_decref(t->c->tcb_info);
	json_decref(t->c->qe_identity);
	t->c->tcb_info = json_incref(t->tcb);
	t->c->qe_identity = json_incref(t->qe);
	t->c->tcb_version = (int)json_integer_value(json_object_get(t->tcb, "version"));
	t->c->tcb_id = t->c->tcb_version == 2 ? "SGX" :
		       json_string_value(json_object_get(t->tcb, "id"));
	t->c->qe_id = json_string_value(json_object_get(t->qe, "id"));
	ev_dcap_tcb_result_clear(&t->r);
	memset(&t->err, 0, sizeof(t->err));
	ret = ev_dcap_eval_qe(t->c, t->q.qe_report, &t->r, &t->err);
	if (ret == 0)
		ret = ev_dcap_eval_tcb(t->c, &t->ext, &t->q, &t->r, &t->err);
	return ret;
}

static void tcb_case_free(struct tcb_case *t)
{
	ev_dcap_tcb_result_clear(&t->r);
	json_decref(t->tcb);
	json_decref(t->qe);
	ev_dcap_collateral_free(t->c);
}

static json_t *level(json_t *doc, size_t i)
{
	return json_array_get(json_object_get(doc, "tcbLevels"), i);
}

static void set_status(json_t *lvl, const char *status)
{
	json_object_set_new(lvl, "tcbStatus", json_string(status));
}

static bool has_advisory(const json_t *arr, const char *id)
{
	const json_t *v;
	size_t i;

	json_array_foreach(arr, i, v)
		if (strcmp(json_string_value(v), id) == 0)
			return true;
	return false;
}

static void test_tcb_qe_convergence(void **state)
{
	struct tcb_case t;
	json_t *lv;

	tcb_case_init(&t, &g_sgx);
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.status, EV_DCAP_CONFIGURATION_AND_SW_HARDENING_NEEDED);
	assert_int_equal(t.r.level_index, 1);

	/* QE ISVSVN 10 now only reaches an OutOfDate level carrying advisories. */
	json_object_set_new(json_object_get(level(t.qe, 0), "tcb"), "isvsvn", json_integer(11));
	lv = level(t.qe, 1);
	json_object_set_new(lv, "advisoryIDs", json_pack("[s,s]", "INTEL-SA-00615",
							 "INTEL-SA-99999"));
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.qe, EV_DCAP_OUT_OF_DATE);
	assert_int_equal(t.r.status, EV_DCAP_OUT_OF_DATE_CONFIGURATION_NEEDED);
	assert_int_equal(json_array_size(t.r.advisories), 3);  /* 615 only once */
	assert_true(has_advisory(t.r.advisories, "INTEL-SA-99999"));
	assert_true(has_advisory(t.r.advisories, "INTEL-SA-00289"));

	/* A Revoked QE level makes everything Revoked. */
	set_status(lv, "Revoked");
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.status, EV_DCAP_REVOKED);

	/* No QE level low enough. */
	for (size_t i = 0; i < json_array_size(json_object_get(t.qe, "tcbLevels")); i++)
		json_object_set_new(json_object_get(level(t.qe, i), "tcb"), "isvsvn",
				    json_integer(11));
	assert_int_equal(run_tcb(&t), -KILN_ETCB);
	assert_non_null(strstr(t.err.msg, "QE ISVSVN 10"));

	/* Unknown status string. */
	json_object_set_new(json_object_get(level(t.qe, 0), "tcb"), "isvsvn", json_integer(1));
	set_status(level(t.qe, 0), "Fine");
	assert_int_equal(run_tcb(&t), -KILN_EFORMAT);
	tcb_case_free(&t);
}

static void test_tcb_qe_identity_mismatch(void **state)
{
	static const struct {
		const char *key, *value;
		const char *msg;
	} cases[] = {
		{"mrsigner", "8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFE",
		 "MRSIGNER"},
		{"miscselect", "00000001", "MISCSELECT"},
		{"attributes", "13000000000000000000000000000000", "ATTRIBUTES"},
	};
	struct tcb_case t;

	tcb_case_init(&t, &g_sgx);
	for (size_t i = 0; i < KILN_ARRAY_SIZE(cases); i++) {
		json_t *saved = json_deep_copy(t.qe);

		json_object_set_new(t.qe, cases[i].key, json_string(cases[i].value));
		assert_int_equal(run_tcb(&t), -KILN_EMEASUREMENT);
		assert_non_null(strstr(t.err.msg, cases[i].msg));
		json_decref(t.qe);
		t.qe = saved;
	}
	json_object_set_new(t.qe, "isvprodid", json_integer(2));
	assert_int_equal(run_tcb(&t), -KILN_EMEASUREMENT);
	assert_non_null(strstr(t.err.msg, "ISVPRODID: expected 2, found 1"));
	json_object_set_new(t.qe, "isvprodid", json_integer(1));
	/* A mask that ignores the differing bit makes it match again. */
	json_object_set_new(t.qe, "miscselect", json_string("00000001"));
	json_object_set_new(t.qe, "miscselectMask", json_string("FFFFFFFE"));
	assert_int_equal(run_tcb(&t), 0);
	tcb_case_free(&t);
}

static void test_tcb_platform_levels(void **state)
{
	struct tcb_case t;
	json_t *levels, *copy;
	char key[32];

	tcb_case_init(&t, &g_sgx);
	/* The matched level says Revoked: authentic, status Revoked. */
	set_status(level(t.tcb, 1), "Revoked");
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.status, EV_DCAP_REVOKED);
	set_status(level(t.tcb, 1), "ConfigurationAndSWHardeningNeeded");

	/* TCB Info v2 layout (sgxtcbcompNNsvn keys) gives the same level. */
	copy = json_deep_copy(t.tcb);
	levels = json_object_get(copy, "tcbLevels");
	for (size_t i = 0; i < json_array_size(levels); i++) {
		json_t *tcb = json_object_get(json_array_get(levels, i), "tcb");
		json_t *comps = json_object_get(tcb, "sgxtcbcomponents");

		for (int k = 0; k < 16; k++) {
			snprintf(key, sizeof(key), "sgxtcbcomp%02dsvn", k + 1);
			json_object_set(tcb, key, json_object_get(json_array_get(comps, (size_t)k),
								   "svn"));
		}
		json_object_del(tcb, "sgxtcbcomponents");
	}
	json_object_set_new(copy, "version", json_integer(2));
	json_object_del(copy, "id");
	json_decref(t.tcb);
	t.tcb = copy;
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.status, EV_DCAP_CONFIGURATION_AND_SW_HARDENING_NEEDED);
	assert_int_equal(t.r.level_index, 1);

	/* FMSPC of another platform. */
	t.c->fmspc[5] ^= 1;
	assert_int_equal(run_tcb(&t), -KILN_ETCB);
	assert_non_null(strstr(t.err.msg, "FMSPC"));
	t.c->fmspc[5] ^= 1;

	/* A PCESVN below every level. */
	t.ext.pcesvn = 0;
	assert_int_equal(run_tcb(&t), -KILN_ETCB);
	assert_non_null(strstr(t.err.msg, "TCB level not supported"));
	tcb_case_free(&t);
}

static json_t *module(json_t *tcb, const char *id)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(tcb, "tdxModuleIdentities"), i, m)
		if (strcmp(json_string_value(json_object_get(m, "id")), id) == 0)
			return m;
	return NULL;
}

static void test_tcb_tdx_module(void **state)
{
	struct tcb_case t;
	json_t *m, *lv;

	tcb_case_init(&t, &g_tdx4);
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.status, EV_DCAP_UP_TO_DATE);
	assert_true(t.r.has_module);

	/* Module SVN 6 only reaches an OutOfDate module level. */
	m = module(t.tcb, "TDX_01");
	assert_non_null(m);
	lv = json_array_get(json_object_get(m, "tcbLevels"), 0);
	json_object_set_new(json_object_get(lv, "tcb"), "isvsvn", json_integer(7));
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.module, EV_DCAP_OUT_OF_DATE);
	assert_int_equal(t.r.platform, EV_DCAP_UP_TO_DATE);
	assert_int_equal(t.r.status, EV_DCAP_OUT_OF_DATE);
	json_object_set_new(json_object_get(lv, "tcb"), "isvsvn", json_integer(4));

	/* MRSIGNERSEAM must match the module identity. */
	json_object_set_new(m, "mrsigner", json_string("01000000000000000000000000000000"
						       "0000000000000000000000000000000000000000"
						       "000000000000000000000000"));
	assert_int_equal(run_tcb(&t), -KILN_EMEASUREMENT);
	assert_non_null(strstr(t.err.msg, "MRSIGNERSEAM"));

	/* The identity of the quote's module version is missing. */
	json_object_set_new(m, "id", json_string("TDX_02"));
	assert_int_equal(run_tcb(&t), -KILN_ETCB);
	assert_non_null(strstr(t.err.msg, "TDX_01"));
	tcb_case_free(&t);
}

static void test_tcb_tdx_components(void **state)
{
	struct tcb_case t;
	json_t *comps;

	tcb_case_init(&t, &g_tdx4);
	/* Level 0 now needs TDX module SVN 7 (TEE_TCB_SVN[0] is 6): the search goes on to
	 * level 1 (OutOfDate, with advisories), as Intel QVL does. */
	comps = json_object_get(json_object_get(level(t.tcb, 0), "tcb"), "tdxtcbcomponents");
	json_object_set_new(json_array_get(comps, 0), "svn", json_integer(7));
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.level_index, 1);
	assert_int_equal(t.r.status, EV_DCAP_OUT_OF_DATE);
	assert_true(has_advisory(t.r.advisories, "INTEL-SA-00837"));
	/* And when no level is low enough: TCB level not supported, naming the component. */
	comps = json_object_get(json_object_get(level(t.tcb, 1), "tcb"), "tdxtcbcomponents");
	json_object_set_new(json_array_get(comps, 2), "svn", json_integer(4));
	assert_int_equal(run_tcb(&t), -KILN_ETCB);
	assert_non_null(strstr(t.err.msg, "TDX TCB component 3 SVN >= 4, TEE_TCB_SVN has 3"));
	tcb_case_free(&t);
}

static void set_comp(json_t *doc, size_t lvl, const char *kind, size_t k, int svn)
{
	json_t *comps = json_object_get(json_object_get(level(doc, lvl), "tcb"), kind);

	json_object_set_new(json_array_get(comps, k), "svn", json_integer(svn));
}

/* TD 1.5 (the v5 sample, TEE_TCB_SVN 07 01 03, TEE_TCB_SVN2 0d 01 03): once its levels
 * are edited to accept the PCK's SEAMLDR SVN 3, the TCB evaluation goes through; with
 * the TD and its module OutOfDate but TEE_TCB_SVN2 current, relaunch is advised
 * (status stays OutOfDate, the flag says why). */
static void test_tcb_tdx_relaunch(void **state)
{
	struct tcb_case t;
	json_t *m;

	tcb_case_init(&t, &g_tdx5);
	assert_int_equal(run_tcb(&t), -KILN_ETCB);
	for (size_t i = 0; i < 3; i++)
		set_comp(t.tcb, i, "sgxtcbcomponents", 7, 3);
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.status, EV_DCAP_UP_TO_DATE);
	assert_int_equal(t.r.level_index, 0);

	/* Level 0 needs TDX module SVN 8 (the TD has 7): level 1, OutOfDate. The module
	 * identity's newest level needs 8 too: module OutOfDate. TEE_TCB_SVN2 has 13. */
	set_comp(t.tcb, 0, "tdxtcbcomponents", 0, 8);
	m = module(t.tcb, "TDX_01");
	json_object_set_new(json_object_get(json_array_get(json_object_get(m, "tcbLevels"), 0),
					    "tcb"), "isvsvn", json_integer(8));
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.level_index, 1);
	assert_int_equal(t.r.module, EV_DCAP_OUT_OF_DATE);
	assert_int_equal(t.r.status, EV_DCAP_OUT_OF_DATE);
	assert_true(t.r.relaunch_advised);
	/* The running module is not current either: no relaunch advice. */
	json_object_set_new(json_object_get(json_array_get(json_object_get(m, "tcbLevels"), 0),
					    "tcb"), "isvsvn", json_integer(14));
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.status, EV_DCAP_OUT_OF_DATE);
	assert_false(t.r.relaunch_advised);
	/* A QE that is OutOfDate itself: no advice either. */
	json_object_set_new(json_object_get(json_array_get(json_object_get(m, "tcbLevels"), 0),
					    "tcb"), "isvsvn", json_integer(8));
	assert_int_equal(run_tcb(&t), 0);
	assert_true(t.r.relaunch_advised);
	set_status(level(t.qe, 0), "OutOfDate");
	assert_int_equal(run_tcb(&t), 0);
	assert_int_equal(t.r.qe, EV_DCAP_OUT_OF_DATE);
	assert_false(t.r.relaunch_advised);
	tcb_case_free(&t);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* The SGX v3 sample re-laid out as a v4 quote (QE part wrapped in certification data
 * type 6) and as a v5 quote (body descriptor type 1): the parser takes both, the PCK
 * chain, QE report signature and binding still verify, and only the quote signature
 * fails, because the header changed. */
static uint8_t *relayout(int version, size_t *out_size)
{
	struct ev_dcap_quote q;
	size_t rest_off, rest, body_extra = version == 5 ? 6 : 0, n, o = 0;
	uint8_t *out;

	assert_int_equal(ev_dcap_quote_parse(g_sgx.quote, g_sgx.size, &q, NULL), 0);
	rest_off = (size_t)(q.qe_report - g_sgx.quote);
	rest = g_sgx.size - rest_off;
	n = 48 + body_extra + 384 + 4 + 128 + 6 + rest;
	out = malloc(n);
	memcpy(out, g_sgx.quote, 48);
	out[0] = (uint8_t)version;
	o = 48;
	if (version == 5) {
		out[o++] = 1;  /* body type 1: SGX */
		out[o++] = 0;
		put32(out + o, 384);
		o += 4;
	}
	memcpy(out + o, q.body, 384);
	o += 384;
	put32(out + o, (uint32_t)(128 + 6 + rest));
	o += 4;
	memcpy(out + o, q.signature, 128);  /* signature and attestation key */
	o += 128;
	out[o++] = 6;
	out[o++] = 0;
	put32(out + o, (uint32_t)rest);
	o += 4;
	memcpy(out + o, g_sgx.quote + rest_off, rest);
	*out_size = n;
	return out;
}

static void test_sgx_v4_v5_layouts(void **state)
{
	for (int version = 4; version <= 5; version++) {
		struct ev_dcap_quote q;
		struct kiln_err err;
		json_t *c = NULL;
		size_t size;
		uint8_t *quote = relayout(version, &size);

		assert_int_equal(ev_dcap_quote_parse(quote, size, &q, &err), 0);
		assert_int_equal(q.version, version);
		assert_int_equal(q.body_type, 1);
		assert_int_equal(q.signed_size, version == 5 ? 438 : 432);
		assert_int_equal(q.trailing, 0);
		assert_int_equal(verify_with(&g_sgx, quote, size, g_sgx.collateral, g_sgx.t, &c,
					     &err), -KILN_ESIG);
		assert_non_null(strstr(err.msg, "quote signature"));
		/* Wrong descriptor: a TD body type on an SGX header. */
		if (version == 5) {
			quote[48] = 2;
			assert_int_equal(ev_dcap_quote_parse(quote, size, &q, &err), -KILN_EFORMAT);
		}
		free(quote);
	}
}

/* ---- bit flips per region ----------------------------------------------------- */

struct region {
	const char *name;
	size_t off;     /* absolute offset of the byte to flip */
	int expect;
	const char *msg;  /* substring of the error message */
};

static void flip_quote(const struct sample *s, const struct region *r)
{
	uint8_t *q = malloc(s->size);
	struct kiln_err err;
	json_t *c = NULL;
	int ret;

	assert_non_null(q);
	memcpy(q, s->quote, s->size);
	q[r->off] ^= 0x02;
	ret = verify_with(s, q, s->size, s->collateral, s->t, &c, &err);
	if (ret != r->expect || (r->msg && !strstr(err.msg, r->msg)))
		fail_msg("%s quote, %s (offset %zu): expected %d '%s', got %d: %s", s->backend,
			 r->name, r->off, r->expect, r->msg ? r->msg : "", ret, err.msg);
	assert_null(c);
	free(q);
}

/* Offset of a base64 character inside the first (PCK) certificate's signature, where
 * replacing it keeps the PEM valid but changes the signature value. */
static size_t pem_sig_char(const struct ev_dcap_quote *q, const uint8_t *base)
{
	const char *pem = q->pck_pem;
	const char *end = memmem(pem, q->pck_pem_size, "-----END", 8);
	const char *p;

	assert_non_null(end);
	p = end - 12;
	while (*p == '\n' || *p == '=' || *p == '\r')
		p--;
	return (size_t)((const uint8_t *)p - base);
}

static void flip_regions(const struct sample *s)
{
	struct ev_dcap_quote q;
	size_t qe = 0, pem;

	assert_int_equal(ev_dcap_quote_parse(s->quote, s->size, &q, NULL), 0);
	qe = (size_t)(q.qe_report - s->quote);
	pem = pem_sig_char(&q, s->quote);
	const struct region regions[] = {
		{"header version", 0, -KILN_EFORMAT, "version"},
		{"header attestation key type", 2, -KILN_EFORMAT, "attestation key type"},
		{"header user data", 40, -KILN_ESIG, "quote signature"},
		{"body", q.body_off + 100, -KILN_ESIG, "quote signature"},
		{"body report data", q.signed_size - 1, -KILN_ESIG, "quote signature"},
		{"signature data size", q.signed_size + 1, -KILN_ETRUNC, "signature data"},
		{"signature", (size_t)(q.signature - s->quote) + 5, -KILN_ESIG,
		 "quote signature"},
		{"attestation key", (size_t)(q.att_key - s->quote) + 7, -KILN_EBINDING,
		 "attestation key"},
		{"QE report", qe + 64, -KILN_ESIG, "QE report signature"},
		{"QE report data", qe + 320, -KILN_ESIG, "QE report signature"},
		{"QE report signature", (size_t)(q.qe_report_sig - s->quote) + 40, -KILN_ESIG,
		 "QE report signature"},
		{"QE auth data", (size_t)(q.qe_auth - s->quote) + 3, -KILN_EBINDING, "bind"},
		{"QE auth data size", (size_t)(q.qe_auth - s->quote) - 2, 0, NULL},
		{"PCK chain PEM (signature)", pem, -KILN_ECHAIN, "PCK"},
		{"PCK chain PEM (header)", q.pck_pem_off + 3, -KILN_EFORMAT, "PCK chain"},
	};

	for (size_t i = 0; i < KILN_ARRAY_SIZE(regions); i++) {
		struct region r = regions[i];

		if (r.expect == 0) {
			/* A changed length field: the parser must notice, one way or another. */
			uint8_t *copy = malloc(s->size);
			struct kiln_err err;
			json_t *c = NULL;
			int ret;

			memcpy(copy, s->quote, s->size);
			copy[r.off] ^= 0x02;
			ret = verify_with(s, copy, s->size, s->collateral, s->t, &c, &err);
			assert_true(ret == -KILN_ETRUNC || ret == -KILN_EFORMAT);
			assert_null(c);
			free(copy);
			continue;
		}
		/* The base64 character must stay base64: swap it instead of flipping. */
		if (strstr(r.name, "(signature)")) {
			uint8_t *copy = malloc(s->size);
			struct kiln_err err;
			json_t *c = NULL;
			int ret;

			memcpy(copy, s->quote, s->size);
			copy[r.off] = copy[r.off] == 'A' ? 'B' : 'A';
			ret = verify_with(s, copy, s->size, s->collateral, s->t, &c, &err);
			if (ret != r.expect || !strstr(err.msg, r.msg))
				fail_msg("%s: got %d: %s", r.name, ret, err.msg);
			free(copy);
			continue;
		}
		flip_quote(s, &r);
	}
}

static void test_flip_sgx(void **state)
{
	flip_regions(&g_sgx);
}

static void test_flip_tdx(void **state)
{
	flip_regions(&g_tdx4);
}

/* Change one character of a collateral string field and expect ret, msg. */
static void flip_collateral(const struct sample *s, const char *key, const char *find,
			    int expect, const char *msg)
{
	json_t *col = json_deep_copy(s->collateral), *c = NULL;
	char *v = strdup(json_string_value(json_object_get(col, key)));
	char *p = find ? strstr(v, find) : v + strlen(v) / 2;
	struct kiln_err err;
	int ret;

	assert_non_null(p);
	if (find)
		p += strlen(find) - 1;
	/* Stay inside the alphabet of the field (hex digits, JSON digits, base64). */
	*p = *p == '1' ? '2' : '1';
	json_object_set_new(col, key, json_string(v));
	ret = verify_with(s, s->quote, s->size, col, s->t, &c, &err);
	if (ret != expect || (msg && !strstr(err.msg, msg)))
		fail_msg("collateral %s: expected %d '%s', got %d: %s", key, expect, msg, ret,
			 err.msg);
	assert_null(c);
	free(v);
	json_decref(col);
}

static void test_flip_collateral(void **state)
{
	const struct sample *all[] = {&g_sgx, &g_tdx4};

	for (size_t i = 0; i < KILN_ARRAY_SIZE(all); i++) {
		const struct sample *s = all[i];

		flip_collateral(s, "tcb_info", "\"tcbEvaluationDataNumber\":1", -KILN_ESIG,
				"TCB Info signature");
		flip_collateral(s, "tcb_info_signature", NULL, -KILN_ESIG, "TCB Info signature");
		flip_collateral(s, "qe_identity", "\"tcbEvaluationDataNumber\":1", -KILN_ESIG,
				"QE Identity signature");
		flip_collateral(s, "qe_identity_signature", NULL, -KILN_ESIG,
				"QE Identity signature");
		flip_collateral(s, "pck_crl", NULL, -KILN_ESIG, "PCK CRL");
		/* The last hex digits of a CRL are inside its signature's s value. */
		flip_collateral(s, "root_ca_crl", NULL, -KILN_ESIG, "Root CA CRL");
		flip_collateral(s, "tcb_info_issuer_chain", "-----END CERTIFICATE-----\n",
				-KILN_EFORMAT, "TCB Info issuer chain");
	}
}

/* A genuine Intel chain in the wrong role: the PCK CA chain offered as the TCB Info
 * signer, and a TCB signing chain offered as the PCK CRL issuer. */
static void test_chain_roles(void **state)
{
	json_t *col = json_deep_copy(g_sgx.collateral), *c = NULL;
	json_t *pck_chain = json_object_get(g_sgx.collateral, "pck_crl_issuer_chain");
	json_t *tcb_chain = json_object_get(g_sgx.collateral, "tcb_info_issuer_chain");
	struct kiln_err err;

	json_object_set(col, "tcb_info_issuer_chain", pck_chain);
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, col, g_sgx.t, &c, &err),
			 -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "is not an Intel SGX TCB Signing"));
	json_object_set(col, "tcb_info_issuer_chain", tcb_chain);
	json_object_set(col, "pck_crl_issuer_chain", tcb_chain);
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, col, g_sgx.t, &c, &err),
			 -KILN_ECHAIN);
	assert_non_null(strstr(err.msg, "PCK CRL issuer chain"));
	assert_null(c);
	/* An extra certificate in a collateral chain. */
	{
		char *both = NULL;

		assert_true(asprintf(&both, "%s%s", json_string_value(tcb_chain),
				     json_string_value(pck_chain)) > 0);
		json_object_set(col, "pck_crl_issuer_chain", pck_chain);
		json_object_set_new(col, "tcb_info_issuer_chain", json_string(both));
		assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, col, g_sgx.t, &c,
					     &err), -KILN_ECHAIN);
		assert_non_null(strstr(err.msg, "expected one certificate"));
		free(both);
	}
	json_decref(col);
}

/* ---- wrong roots ------------------------------------------------------------- */

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       bool ca)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), -365L * 24 * 3600 * 10);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600 * 10);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
				   0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	X509_NAME_free(name);
	return x;
}

static char *pem_of(X509 *const *certs, size_t n, size_t *size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(PEM_write_bio_X509(bio, certs[i]), 1);
	len = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)len + 1);
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	*size = (size_t)len;
	BIO_free(bio);
	return out;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* The sample quote with its PCK chain replaced by pem (sizes fixed up). */
static uint8_t *replace_chain(const struct sample *s, const char *pem, size_t pem_size,
			      size_t *out_size)
{
	struct ev_dcap_quote q;
	uint8_t *out;
	size_t head, tail_off, delta;

	assert_int_equal(ev_dcap_quote_parse(s->quote, s->size, &q, NULL), 0);
	head = q.pck_pem_off;
	tail_off = q.pck_pem_off + q.pck_pem_size;
	*out_size = head + pem_size + (s->size - tail_off);
	out = malloc(*out_size);
	memcpy(out, s->quote, head);
	memcpy(out + head, pem, pem_size);
	memcpy(out + head + pem_size, s->quote + tail_off, s->size - tail_off);
	delta = pem_size - q.pck_pem_size;  /* modular arithmetic is fine for the sums */
	put32(out + head - 4, (uint32_t)pem_size);
	put32(out + q.signed_size, (uint32_t)(get32(out + q.signed_size) + delta));
	if (q.version >= 4)
		put32(out + q.sig_data_off + 130,
		      (uint32_t)(get32(out + q.sig_data_off + 130) + delta));
	return out;
}

static void test_wrong_root(void **state)
{
	EVP_PKEY *rk = EVP_EC_gen("P-256"), *ck = EVP_EC_gen("P-256"), *lk = EVP_EC_gen("P-256");
	X509 *root, *ca, *leaf, *certs[3];
	struct kiln_err err;
	json_t *c = NULL, *col;
	uint8_t *q;
	size_t pem_size, q_size;
	char *pem;

	assert_non_null(rk);
	root = make_cert(rk, "Intel SGX Root CA", NULL, rk, true);
	ca = make_cert(ck, "Intel SGX PCK Processor CA", root, rk, true);
	leaf = make_cert(lk, "Intel SGX PCK Certificate", ca, ck, false);
	certs[0] = leaf;
	certs[1] = ca;
	certs[2] = root;

	/* A complete self-made chain in the quote. */
	pem = pem_of(certs, 3, &pem_size);
	q = replace_chain(&g_sgx, pem, pem_size, &q_size);
	assert_int_equal(verify_with(&g_sgx, q, q_size, g_sgx.collateral, g_sgx.t, &c, &err),
			 -KILN_EROOT);
	assert_non_null(strstr(err.msg, "not the pinned Intel SGX Root CA"));
	free(q);
	free(pem);
	/* The same chain without its root: the CA is not issued by the pinned root. */
	pem = pem_of(certs, 2, &pem_size);
	q = replace_chain(&g_tdx4, pem, pem_size, &q_size);
	assert_int_equal(verify_with(&g_tdx4, q, q_size, g_tdx4.collateral, g_tdx4.t, &c, &err),
			 -KILN_EROOT);
	free(q);

	/* A self-made TCB Info signing chain in the collateral. */
	col = json_deep_copy(g_sgx.collateral);
	json_object_set_new(col, "tcb_info_issuer_chain", json_string(pem));
	assert_int_equal(verify_with(&g_sgx, g_sgx.quote, g_sgx.size, col, g_sgx.t, &c, &err),
			 -KILN_EROOT);
	assert_non_null(strstr(err.msg, "TCB Info issuer chain"));
	json_decref(col);
	free(pem);
	X509_free(root);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ck);
	EVP_PKEY_free(lk);
}

/* A serial listed in the real TDX PCK CRL (44 entries) is refused, naming the serial
 * and the CRL; the real PCK certificate and an unlisted serial pass. */
static void test_revoked(void **state)
{
	ev_dcap_collateral_t *col = NULL;
	struct kiln_err err = {0};
	STACK_OF(X509_REVOKED) *revs;
	const ASN1_INTEGER *serial;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIGNUM *bn;
	char *hex;

	assert_int_equal(ev_dcap_collateral_parse(g_tdx4.collateral, &col, &err), 0);
	revs = X509_CRL_get_REVOKED(col->pck_crl);
	assert_int_equal(sk_X509_REVOKED_num(revs), 44);
	serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revs, 0));
	X509_set_serialNumber(x, (ASN1_INTEGER *)serial);
	X509_set_issuer_name(x, X509_CRL_get_issuer(col->pck_crl));
	X509_set_subject_name(x, X509_CRL_get_issuer(col->pck_crl));
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_int_equal(ev_dcap_check_revoked(col->pck_crl, x, "PCK certificate", "PCK CRL", &err),
			 -KILN_EREVOKED);
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	hex = BN_bn2hex(bn);
	assert_non_null(strstr(err.msg, hex));
	assert_non_null(strstr(err.msg, "revoked by the PCK CRL"));
	OPENSSL_free(hex);
	BN_free(bn);
	/* Same issuer, a serial that is not listed. */
	ASN1_INTEGER_set(X509_get_serialNumber(x), 12345);
	assert_int_equal(ev_dcap_check_revoked(col->pck_crl, x, "PCK certificate", "PCK CRL", &err),
			 0);
	/* The Root CA CRL lists nothing; the PCK CA passes it. */
	assert_null(X509_CRL_get_REVOKED(col->root_crl));
	assert_int_equal(ev_dcap_check_revoked(col->root_crl, col->pck_crl_issuer, "PCK CA",
					       "Root CA CRL", &err), 0);
	X509_free(x);
	EVP_PKEY_free(k);
	ev_dcap_collateral_free(col);
}

/* The PCK memo only skips re-proving an identical certificate: a changed one is checked
 * in full, and results are the same with the memo off. */
static void test_pck_memo(void **state)
{
	ev_dcap_collateral_t *col = NULL;
	struct kiln_err err = {0};
	json_t *a = NULL, *b = NULL;
	struct ev_dcap_quote q;
	uint8_t *bad = malloc(g_sgx.size);
	size_t off;

	assert_int_equal(ev_dcap_collateral_parse(g_sgx.collateral, &col, &err), 0);
	assert_int_equal(ev_dcap_verify(g_sgx.quote, g_sgx.size, EV_DCAP_TEE_SGX, col, g_sgx.t, &a,
					&err), 0);
	assert_non_null(col->memo[0].cert);
	assert_int_equal(ev_dcap_quote_parse(g_sgx.quote, g_sgx.size, &q, NULL), 0);
	off = pem_sig_char(&q, g_sgx.quote);
	memcpy(bad, g_sgx.quote, g_sgx.size);
	bad[off] = bad[off] == 'A' ? 'B' : 'A';
	assert_int_equal(ev_dcap_verify(bad, g_sgx.size, EV_DCAP_TEE_SGX, col, g_sgx.t, &b, &err),
			 -KILN_ECHAIN);
	ev_dcap_collateral_set_pck_memo(col, false);
	assert_int_equal(ev_dcap_verify(g_sgx.quote, g_sgx.size, EV_DCAP_TEE_SGX, col, g_sgx.t, &b,
					&err), 0);
	assert_true(json_equal(a, b));
	json_decref(a);
	json_decref(b);
	free(bad);
	ev_dcap_collateral_free(col);
}

/* ---- truncation and garbage ---------------------------------------------------- */

static void truncate_all(const struct sample *s)
{
	struct ev_dcap_quote q;
	size_t end;

	assert_int_equal(ev_dcap_quote_parse(s->quote, s->size, &q, NULL), 0);
	end = s->size - q.trailing;
	for (size_t len = 0; len < end; len += (len < 720 ? 1 : 7)) {
		struct kiln_err err;
		json_t *c = NULL;
		int ret = verify_with(s, s->quote, len, s->collateral, s->t, &c, &err);

		if (ret != -KILN_ETRUNC && ret != -KILN_EFORMAT)
			fail_msg("%s truncated to %zu bytes: got %d: %s", s->quote_path, len, ret,
				 err.msg);
		assert_null(c);
	}
}

static void test_truncated(void **state)
{
	struct kiln_err err = {0};
	struct ev_dcap_quote q;

	truncate_all(&g_sgx);
	truncate_all(&g_tdx4);
	truncate_all(&g_tdx5);
	assert_int_equal(ev_dcap_quote_parse(g_sgx.quote, 40, &q, &err), -KILN_ETRUNC);
	assert_non_null(strstr(err.msg, "header"));
	assert_int_equal(ev_dcap_quote_parse(g_sgx.quote, 1000, &q, &err), -KILN_ETRUNC);
	assert_non_null(strstr(err.msg, "signature data"));
}

static void test_trailing_bytes_reported(void **state)
{
	struct kiln_err err;
	json_t *c = NULL;
	uint8_t *q = calloc(1, g_sgx.size + 5);

	memcpy(q, g_sgx.quote, g_sgx.size);
	assert_int_equal(verify_with(&g_sgx, q, g_sgx.size + 5, g_sgx.collateral, g_sgx.t, &c,
				     &err), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "trailing_bytes")), 5);
	json_decref(c);
	free(q);
}

/* PEM splitting edge cases; the first one was found by fuzz_dcap_quote: an END line
 * that shares the dashes of the BEGIN line made the block length negative. */
static void test_pem_split(void **state)
{
	static const char *const bad[] = {
		"-----BEGIN CERTIFICATE-----END CERTIFICATE-----",
		"-----BEGIN CERTIFICATE-----",
		"-----BEGIN CERT",
		"garbage\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\n*!*\n-----END CERTIFICATE-----\n",
		"",
		" \n\t",
	};
	struct ev_dcap_der ders[EV_DCAP_MAX_CHAIN];
	struct kiln_err err = {0};
	int n = -1;

	for (size_t i = 0; i < KILN_ARRAY_SIZE(bad); i++) {
		/* An exact-size heap copy, not NUL-terminated, so ASan sees any over-read. */
		size_t len = strlen(bad[i]);
		char *copy = malloc(len ? len : 1);

		memcpy(copy, bad[i], len);
		assert_int_equal(ev_dcap_pem_split(copy, len, "PEM", ders, EV_DCAP_MAX_CHAIN, &n, &err),
				 -KILN_EFORMAT);
		assert_int_equal(n, 0);
		free(copy);
	}
	/* Base64 that decodes but is not a certificate. */
	assert_int_equal(ev_dcap_pem_split("-----BEGIN CERTIFICATE-----\nAAAA\n"
					   "-----END CERTIFICATE-----\0\0", 60, "PEM", ders,
					   EV_DCAP_MAX_CHAIN, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_null(ev_dcap_der_cert(&ders[0], "PEM", 1, &err));
	assert_int_equal(err.code, -KILN_EFORMAT);
	ev_dcap_der_free(ders, n);
}

static void test_parse_time(void **state)
{
	time_t t;

	assert_int_equal(ev_dcap_parse_time("2025-07-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 1751328000);
	assert_int_equal(ev_dcap_parse_time("2025-07-01T00:00:00.123Z", &t), 0);
	assert_int_equal(ev_dcap_parse_time("2025-02-30T00:00:00Z", &t), -KILN_EFORMAT);
	assert_int_equal(ev_dcap_parse_time("2025-07-01 00:00:00Z", &t), -KILN_EFORMAT);
	assert_int_equal(ev_dcap_parse_time("2025-07-01T00:00:00", &t), -KILN_EFORMAT);
	assert_int_equal(ev_dcap_parse_time(NULL, &t), -KILN_EFORMAT);
}

static void test_collateral_format(void **state)
{
	ev_dcap_collateral_t *col = NULL;
	struct kiln_err err = {0};
	json_t *j = json_deep_copy(g_sgx.collateral);

	json_object_del(j, "pck_crl");
	assert_int_equal(ev_dcap_collateral_parse(j, &col, &err), -KILN_EFORMAT);
	assert_non_null(strstr(err.msg, "\"pck_crl\" is missing"));
	json_object_set_new(j, "pck_crl", json_integer(3));
	assert_int_equal(ev_dcap_collateral_parse(j, &col, &err), -KILN_EFORMAT);
	json_object_set_new(j, "pck_crl", json_string("zz"));
	assert_int_equal(ev_dcap_collateral_parse(j, &col, &err), -KILN_EFORMAT);
	json_decref(j);
	j = json_array();
	assert_int_equal(ev_dcap_collateral_parse(j, &col, &err), -KILN_EFORMAT);
	assert_null(col);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_pin),
		cmocka_unit_test(test_sgx_quote),
		cmocka_unit_test(test_tdx_v4_quote),
		cmocka_unit_test(test_tdx_v5_tcb_not_supported),
		cmocka_unit_test(test_pck_extension),
		cmocka_unit_test(test_tcb_qe_convergence),
		cmocka_unit_test(test_tcb_qe_identity_mismatch),
		cmocka_unit_test(test_tcb_platform_levels),
		cmocka_unit_test(test_tcb_tdx_module),
		cmocka_unit_test(test_tcb_tdx_components),
		cmocka_unit_test(test_tcb_tdx_relaunch),
		cmocka_unit_test(test_sgx_v4_v5_layouts),
		cmocka_unit_test(test_window_edges),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_cached_collateral),
		cmocka_unit_test(test_shared_collateral_threads),
		cmocka_unit_test(test_wrong_kind_and_missing_collateral),
		cmocka_unit_test(test_flip_sgx),
		cmocka_unit_test(test_flip_tdx),
		cmocka_unit_test(test_flip_collateral),
		cmocka_unit_test(test_chain_roles),
		cmocka_unit_test(test_wrong_root),
		cmocka_unit_test(test_revoked),
		cmocka_unit_test(test_pck_memo),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing_bytes_reported),
		cmocka_unit_test(test_pem_split),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_collateral_format),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
