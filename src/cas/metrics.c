/* Prometheus text-format metrics of the CAS. Every event loop updates them:
 * m->lock guards every field (held for one update or one render). */
#include "cas/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double g_lat_le[N_LAT_BUCKETS - 1] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
						    0.025, 0.05, 0.1, 0.25, 0.5, 1.0 };

static void bump(struct metric_count *arr, size_t *n, size_t cap, const char *label, int code)
{
	for (size_t i = 0; i < *n; i++) {
		if (arr[i].code == code && !strcmp(arr[i].label, label)) {
			arr[i].count++;
			return;
		}
	}
	if (*n == cap)
		return; /* labels come from fixed sets; never reached in practice */
	snprintf(arr[*n].label, sizeof(arr[*n].label), "%s", label);
	arr[*n].code = code;
	arr[*n].count = 1;
	(*n)++;
}

void cas__metrics_request(struct cas__metrics *m, const char *route, int code, double seconds)
{
	size_t i = 0;

	pthread_mutex_lock(&m->lock);
	bump(m->req, &m->n_req, KILN_ARRAY_SIZE(m->req), route, code);
	while (i < N_LAT_BUCKETS - 1 && seconds > g_lat_le[i])
		i++;
	m->lat_buckets[i]++;
	m->lat_sum += seconds;
	m->lat_count++;
	pthread_mutex_unlock(&m->lock);
}

void cas__metrics_refused(struct cas__metrics *m, const char *label)
{
	pthread_mutex_lock(&m->lock);
	bump(m->refused, &m->n_refused, KILN_ARRAY_SIZE(m->refused), label, 0);
	pthread_mutex_unlock(&m->lock);
}

void cas__metrics_attest_ok(struct cas__metrics *m)
{
	pthread_mutex_lock(&m->lock);
	m->attest_ok++;
	pthread_mutex_unlock(&m->lock);
}

void cas__metrics_connection(struct cas__metrics *m)
{
	pthread_mutex_lock(&m->lock);
	m->connections++;
	pthread_mutex_unlock(&m->lock);
}

char *cas__metrics_render(struct cas__metrics *m)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	uint64_t cum = 0, refused = 0;

	if (!f)
		return NULL;
	pthread_mutex_lock(&m->lock);
	fputs("# HELP kiln_cas_requests_total HTTP requests by route and status code.\n"
	      "# TYPE kiln_cas_requests_total counter\n", f);
	for (size_t i = 0; i < m->n_req; i++)
		fprintf(f, "kiln_cas_requests_total{path=\"%s\",code=\"%d\"} %llu\n",
			m->req[i].label, m->req[i].code, (unsigned long long)m->req[i].count);
	fputs("# HELP kiln_cas_attestations_total Attestations by result and refusal reason.\n"
	      "# TYPE kiln_cas_attestations_total counter\n", f);
	fprintf(f, "kiln_cas_attestations_total{result=\"ok\",reason=\"\"} %llu\n",
		(unsigned long long)m->attest_ok);
	for (size_t i = 0; i < m->n_refused; i++) {
		fprintf(f, "kiln_cas_attestations_total{result=\"refused\",reason=\"%s\"} %llu\n",
			m->refused[i].label, (unsigned long long)m->refused[i].count);
		refused += m->refused[i].count;
	}
	(void)refused;
	fprintf(f, "# HELP kiln_cas_connections_total TLS connections accepted.\n"
		"# TYPE kiln_cas_connections_total counter\n"
		"kiln_cas_connections_total %llu\n", (unsigned long long)m->connections);
	fputs("# HELP kiln_cas_request_duration_seconds Time to handle a request (after TLS).\n"
	      "# TYPE kiln_cas_request_duration_seconds histogram\n", f);
	for (size_t i = 0; i < N_LAT_BUCKETS; i++) {
		cum += m->lat_buckets[i];
		if (i < N_LAT_BUCKETS - 1)
			fprintf(f, "kiln_cas_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
				g_lat_le[i], (unsigned long long)cum);
		else
			fprintf(f, "kiln_cas_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
	}
	fprintf(f, "kiln_cas_request_duration_seconds_sum %.6f\n", m->lat_sum);
	fprintf(f, "kiln_cas_request_duration_seconds_count %llu\n",
		(unsigned long long)m->lat_count);
	pthread_mutex_unlock(&m->lock);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
