/* bench/evidence/bench_snp: SEV-SNP report verifications per second on one core, with
 * and without the parsed-certificate-chain cache, beside the raw ECDSA P-384 verify
 * rate (in-process, and `openssl speed ecdsap384` from the same run), because
 * absolute numbers on shared machines move from run to run.
 *
 * Usage: bench_snp [--testdata DIR] [--seconds S] [--out FILE.json]
 * S (default 6) is the time per rate, split over 5 interleaved rounds.
 * Writes FILE.json and FILE.md (a Markdown table). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "evidence/snp.h"

#define BENCH_ROUNDS 5

struct sample {
	uint8_t *report;
	size_t report_size;
	char *vcek_pem;
	char *chain_pem;
};

/* CPU time of this process, not wall time: `openssl speed` divides by user CPU time
 * too (unless -elapsed), so both sides are rates per busy core, and other load on a
 * shared machine does not count against us. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *der_file_to_pem(const char *path)
{
	uint8_t *der = NULL;
	size_t size = 0;
	const unsigned char *p;
	X509 *x;
	BIO *bio;
	char *buf, *out = NULL;
	long len;

	if (kiln_read_file(path, 1 << 20, &der, &size) < 0)
		return NULL;
	p = der;
	x = d2i_X509(NULL, &p, (long)size);
	bio = BIO_new(BIO_s_mem());
	if (x && bio && PEM_write_bio_X509(bio, x) == 1) {
		len = BIO_get_mem_data(bio, &buf);
		out = strndup(buf, (size_t)len);
	}
	BIO_free(bio);
	X509_free(x);
	free(der);
	return out;
}

/* Verifications per second over at least `seconds`. -1 on a failed verification. */
static double rate_verify(const struct sample *s, double seconds)
{
	const char *certs[2] = { s->vcek_pem, s->chain_pem };
	struct ev_verify_opts opts = { .at = 1751328000, .certs_pem = certs, .n_certs = 2 };
	double start = now_s(), elapsed;
	unsigned long n = 0;

	do {
		for (int i = 0; i < 20; i++) {
			struct kiln_err err = { 0 };
			json_t *claims = NULL;

			if (ev_backend_snp.verify(s->report, s->report_size, &opts, &claims,
						  &err) != 0) {
				fprintf(stderr, "bench_snp: verify failed: %s\n", err.msg);
				return -1;
			}
			json_decref(claims);
			n++;
		}
		elapsed = now_s() - start;
	} while (elapsed < seconds);
	return (double)n / elapsed;
}

/* The bare P-384 verify of one signature with a prepared key, in this process. */
static double rate_raw_p384(double seconds)
{
	EVP_PKEY *key = EVP_EC_gen("P-384");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char msg[EV_SNP_SIGNED_SIZE] = { 1 }, sig[128];
	size_t sig_size = sizeof(sig);
	double start, elapsed, rate = -1;
	unsigned long n = 0;

	if (!key || !md || EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key) != 1 ||
	    EVP_DigestSign(md, sig, &sig_size, msg, sizeof(msg)) != 1)
		goto out;
	start = now_s();
	do {
		for (int i = 0; i < 20; i++) {
			EVP_MD_CTX_reset(md);
			if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) != 1 ||
			    EVP_DigestVerify(md, sig, sig_size, msg, sizeof(msg)) != 1)
				goto out;
			n++;
		}
		elapsed = now_s() - start;
	} while (elapsed < seconds);
	rate = (double)n / elapsed;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return rate;
}

/* `openssl speed -seconds S ecdsap384`: the verify/s column, or -1. */
static double rate_openssl_speed(double seconds)
{
	char cmd[128], line[512];
	double rate = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "openssl speed -seconds %d ecdsap384 2>/dev/null",
		 seconds < 1 ? 1 : (int)seconds);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		double sign_s, verify_s, signs, verifies;
		char *q = strstr(line, "(nistp384)");

		if (q && sscanf(q + strlen("(nistp384)"), "%lfs %lfs %lf %lf", &sign_s, &verify_s,
				&signs, &verifies) == 4)
			rate = verifies;
	}
	pclose(p);
	return rate;
}

static void cpu_model(char *out, size_t size)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];

	snprintf(out, size, "unknown");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && c) {
			snprintf(out, size, "%s", c + 2);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	const char *testdata = getenv("KILN_TESTDATA"), *out = "bench/results/evidence_snp.json";
	double seconds = 6, cached, uncached, raw, speed;
	struct sample s = { 0 };
	char path[1024], cpu[128], date[32], *md_path;
	uint8_t *chain = NULL;
	size_t chain_size;
	json_t *doc;
	time_t t = time(NULL);
	FILE *f;

	if (!testdata)
		testdata = "../shared/testdata";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--testdata") == 0)
			testdata = argv[i + 1];
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--out") == 0)
			out = argv[i + 1];
	}
	/* One core: everything here is single-threaded and timed in CPU seconds, and
	 * `openssl speed` runs one process timed the same way. */

	snprintf(path, sizeof(path), "%s/evidence/snp/report_milan.bin", testdata);
	if (kiln_read_file(path, 1 << 20, &s.report, &s.report_size) < 0) {
		fprintf(stderr, "bench_snp: cannot read %s\n", path);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/evidence/snp/vcek_milan.der", testdata);
	s.vcek_pem = der_file_to_pem(path);
	snprintf(path, sizeof(path), "%s/evidence/snp/ask_ark_milan.pem", testdata);
	if (!s.vcek_pem || kiln_read_file(path, 1 << 20, &chain, &chain_size) < 0) {
		fprintf(stderr, "bench_snp: cannot read the certificates under %s\n", testdata);
		return 1;
	}
	s.chain_pem = (char *)chain;

	/* Interleaved rounds, best of each: other load on a shared machine only ever slows
	 * a round down, so the best round is the least disturbed one. */
	cached = uncached = raw = speed = -1;
	for (int round = 0; round < BENCH_ROUNDS; round++) {
		double r;

		ev_snp_cache_set_enabled(true);
		r = rate_verify(&s, seconds / BENCH_ROUNDS);
		cached = r > cached ? r : cached;
		ev_snp_cache_set_enabled(false);
		r = rate_verify(&s, seconds / BENCH_ROUNDS);
		uncached = r > uncached ? r : uncached;
		ev_snp_cache_set_enabled(true);
		r = rate_raw_p384(seconds / BENCH_ROUNDS);
		raw = r > raw ? r : raw;
		r = rate_openssl_speed(seconds / BENCH_ROUNDS);
		speed = r > speed ? r : speed;
	}
	if (cached < 0 || uncached < 0 || raw < 0) {
		fprintf(stderr, "bench_snp: measurement failed\n");
		return 1;
	}

	cpu_model(cpu, sizeof(cpu));
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	doc = json_pack("{s:s, s:s, s:s, s:s, s:f, s:s, s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f}}",
			"benchmark", "evidence_snp", "date", date, "cpu", cpu, "openssl",
			OpenSSL_version(OPENSSL_VERSION), "seconds_per_rate", seconds,
			"clock", "process CPU time (as openssl speed)",
			"results",
			"snp_verify_per_s_cached", cached,
			"snp_verify_per_s_uncached", uncached,
			"ecdsa_p384_verify_per_s_in_process", raw,
			"ecdsa_p384_verify_per_s_openssl_speed", speed,
			"cached_over_raw_p384", cached / raw,
			"uncached_over_raw_p384", uncached / raw,
			"cache_speedup", cached / uncached);
	if (!doc || json_dump_file(doc, out, JSON_INDENT(2)) != 0) {
		fprintf(stderr, "bench_snp: cannot write %s\n", out);
		return 1;
	}
	json_decref(doc);
	md_path = malloc(strlen(out) + 4);
	snprintf(md_path, strlen(out) + 4, "%.*s.md", (int)(strlen(out) - 5), out);
	f = fopen(md_path, "we");
	if (f) {
		fprintf(f, "# evidence_snp (%s, %s, one core)\n\n", date, cpu);
		fprintf(f, "| measurement | per second | vs raw P-384 verify |\n|---|---:|---:|\n");
		fprintf(f, "| SNP report verify, chain cache | %.0f | %.2f |\n", cached,
			cached / raw);
		fprintf(f, "| SNP report verify, no cache | %.0f | %.2f |\n", uncached,
			uncached / raw);
		fprintf(f, "| ECDSA P-384 verify (in process) | %.0f | 1.00 |\n", raw);
		fprintf(f, "| ECDSA P-384 verify (`openssl speed ecdsap384`) | %.0f | %.2f |\n",
			speed, speed / raw);
		fclose(f);
	}
	printf("snp verify/s: cached %.0f, uncached %.0f; P-384 verify/s: in-process %.0f, "
	       "openssl speed %.0f\n", cached, uncached, raw, speed);
	free(md_path);
	free(s.report);
	free(s.vcek_pem);
	free(s.chain_pem);
	ev_snp_cache_clear();
	return 0;
}
