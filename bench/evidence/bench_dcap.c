/* bench_dcap: Intel SGX/TDX DCAP quote verifications per second on one core, with and
 * without a collateral cache, on the real samples of testdata/evidence.
 *
 *   without cache: every verification parses and authenticates the collateral JSON
 *                  (issuer chains, CRL signatures, TCB Info / QE Identity signatures)
 *                  and then the quote, exactly what ev_backend_sgx/tdx.verify does;
 *   collateral cache: the collateral is parsed once (ev_dcap_collateral_parse) and
 *                  every verification runs ev_dcap_verify with the PCK memo off: the
 *                  whole PCK chain of the quote is parsed and checked (3 ECDSA
 *                  verifications: PCK certificate, QE report, quote), CRL lookups,
 *                  binding, TCB evaluation, claims;
 *   collateral cache + PCK memo (the default of a cached collateral): as above, but a
 *                  PCK certificate already proved is not parsed and re-verified (2 ECDSA
 *                  verifications per quote; validity and CRL still checked).
 *
 * Usage: bench_dcap [--testdata DIR] [--seconds S]
 * Prints one JSON object on stdout. Single-threaded by construction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/dcap.h"

struct sample {
	const char *name, *backend, *quote, *collateral, *at;
	uint32_t tee;
};

static const struct sample g_samples[] = {
	{"sgx", "sgx", "evidence/sgx/quote.bin", "evidence/sgx/collateral.json",
	 "2025-07-01T00:00:00Z", EV_DCAP_TEE_SGX},
	{"tdx", "tdx", "evidence/tdx/quote_v4.bin", "evidence/tdx/quote_v4_collateral.json",
	 "2025-07-01T00:00:00Z", EV_DCAP_TEE_TDX},
};

struct job {
	const uint8_t *quote;
	size_t size;
	const struct sample *s;
	json_t *collateral_json;
	ev_dcap_collateral_t *collateral;
	time_t at;
};

enum mode { NO_CACHE, CACHE, CACHE_MEMO };

static int one(const struct job *j, enum mode mode)
{
	struct kiln_err err = {0};
	json_t *claims = NULL;
	int ret;

	if (mode != NO_CACHE) {
		ret = ev_dcap_verify(j->quote, j->size, j->s->tee, j->collateral, j->at, &claims,
				     &err);
	} else {
		struct ev_verify_opts opts = {.at = j->at, .collateral = j->collateral_json};

		ret = ev_backend_find(j->s->backend)->verify(j->quote, j->size, &opts, &claims,
							     &err);
	}
	if (ret != 0)
		fprintf(stderr, "bench_dcap: %s: %s\n", j->s->name, kiln_err_msg(&err, ret));
	json_decref(claims);
	return ret;
}

/* Verifies until `seconds` have passed; returns verifications per second, or -1. */
static double rate(const struct job *j, enum mode mode, double seconds, uint64_t *count)
{
	uint64_t start, now, n = 0;

	if (mode != NO_CACHE)
		ev_dcap_collateral_set_pck_memo(j->collateral, mode == CACHE_MEMO);
	for (int i = 0; i < 20; i++)  /* warm-up: caches, lazy OpenSSL initialization */
		if (one(j, mode) != 0)
			return -1;
	start = kiln_now_ns();
	do {
		for (int i = 0; i < 16; i++)
			if (one(j, mode) != 0)
				return -1;
		n += 16;
		now = kiln_now_ns();
	} while (now - start < (uint64_t)(seconds * 1e9));
	*count = n;
	return (double)n / ((double)(now - start) / 1e9);
}

int main(int argc, char **argv)
{
	const char *testdata = getenv("KILN_TESTDATA");
	double seconds = 2.0;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--testdata") == 0 && i + 1 < argc) {
			testdata = argv[++i];
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = strtod(argv[++i], NULL);
		} else {
			fprintf(stderr, "usage: bench_dcap [--testdata DIR] [--seconds S]\n");
			return 2;
		}
	}
	if (!testdata)
		testdata = "../shared/testdata";
	if (!(seconds > 0 && seconds < 600)) {
		fprintf(stderr, "bench_dcap: --seconds must be in (0, 600)\n");
		return 2;
	}
	printf("{\n  \"seconds_per_measurement\": %.1f,\n  \"threads\": 1", seconds);
	for (size_t k = 0; k < KILN_ARRAY_SIZE(g_samples); k++) {
		const struct sample *s = &g_samples[k];
		struct job j = {.s = s};
		struct kiln_err err = {0};
		char path[4096];
		uint8_t *quote = NULL;
		uint64_t n_cold = 0, n_warm = 0, n_hot = 0;
		double cold, warm, hot, parse;
		int ret;

		snprintf(path, sizeof(path), "%s/%s", testdata, s->quote);
		if ((ret = kiln_read_file(path, 1 << 20, &quote, &j.size)) != 0) {
			fprintf(stderr, "bench_dcap: %s: %s\n", path, kiln_strerror(ret));
			goto out;
		}
		j.quote = quote;
		snprintf(path, sizeof(path), "%s/%s", testdata, s->collateral);
		j.collateral_json = json_load_file(path, 0, NULL);
		if (!j.collateral_json || ev_dcap_parse_time(s->at, &j.at) != 0 ||
		    (ret = ev_dcap_collateral_parse(j.collateral_json, &j.collateral, &err))) {
			fprintf(stderr, "bench_dcap: %s: cannot load collateral\n", path);
			free(quote);
			json_decref(j.collateral_json);
			goto out;
		}
		cold = rate(&j, NO_CACHE, seconds, &n_cold);
		warm = rate(&j, CACHE, seconds, &n_warm);
		hot = rate(&j, CACHE_MEMO, seconds, &n_hot);
		/* Collateral parse alone: what a cache saves per verification. */
		{
			uint64_t start = kiln_now_ns(), n = 0;

			do {
				ev_dcap_collateral_t *c = NULL;

				if (ev_dcap_collateral_parse(j.collateral_json, &c, NULL) == 0)
					n++;
				ev_dcap_collateral_free(c);
			} while (kiln_now_ns() - start < (uint64_t)(seconds * 1e9 / 2));
			parse = (double)n / ((double)(kiln_now_ns() - start) / 1e9);
		}
		ev_dcap_collateral_free(j.collateral);
		json_decref(j.collateral_json);
		free(quote);
		if (cold < 0 || warm < 0 || hot < 0)
			goto out;
		printf(",\n  \"%s\": {\"quote\": \"%s\", \"verify_per_s_no_cache\": %.0f, "
		       "\"verify_per_s_collateral_cache\": %.0f, "
		       "\"verify_per_s_collateral_cache_pck_memo\": %.0f, "
		       "\"collateral_parse_per_s\": %.0f, \"runs\": [%llu, %llu, %llu]}", s->name,
		       s->quote, cold, warm, hot, parse, (unsigned long long)n_cold,
		       (unsigned long long)n_warm, (unsigned long long)n_hot);
		fflush(stdout);
	}
	printf("\n}\n");
	rc = 0;
out:
	return rc;
}
