/* The CAS's own attestation: GET /v1/attestation?nonce=HEX answers evidence of
 * this process from the backend chosen at start (`kiln cas serve --tee`), its
 * report_data binding the TLS server key and the client's nonce (docs/api.md,
 * ev_cas_binding). A client (`kiln cas verify`, KILN_CAS_EXPECT) checks it
 * before it trusts the CAS with anything. No state is kept per request: the
 * nonce is the client's, so freshness is the client's to check. */
#include "cas/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Evidence for nonce from the configured backend. sim: from the measurement
 * taken at start (the process does not change); host: kiln-las measures this
 * process itself; tdx, snp: configfs-tsm. *ev owned by the caller. */
static int self_produce(struct cas__self *self, const uint8_t nonce[EV_NONCE_SIZE],
			uint8_t **ev, size_t *size, struct kiln_err *err)
{
	uint8_t rd[EV_REPORT_DATA_SIZE];
	int ret;

	ret = ev_cas_binding(self->key_sha256, nonce, self->wm, rd);
	if (ret < 0)
		return kiln_err_set(err, ret, "cannot compute the binding");
	pthread_mutex_lock(&self->lock);
	if (self->be == &ev_backend_sim)
		ret = ev_sim_produce(rd, self->wm, ev, size);
	else
		ret = self->be->produce(rd, ev, size, err);
	pthread_mutex_unlock(&self->lock);
	if (ret == -ENOMEM)
		kiln_err_set(err, ret, "out of memory");
	return ret;
}

int cas__self_init(struct cas__server *s, const char *tee, const uint8_t key_sha256[32],
		   struct kiln_err *err)
{
	struct cas__self *self = &s->self;
	const struct ev_backend *be;
	uint8_t nonce[EV_NONCE_SIZE] = { 0 }, *ev = NULL;
	char wm_hex[2 * sizeof(self->wm) + 1];
	size_t size = 0;
	int ret;

	pthread_mutex_init(&self->lock, NULL);
	pthread_mutex_init(&self->rl_lock, NULL);
	memcpy(self->key_sha256, key_sha256, sizeof(self->key_sha256));
	if (!tee)
		return 0;
	be = ev_backend_find(tee);
	if (!be || !be->produce)
		return kiln_err_set(err, -EINVAL, "--tee %s: the CAS attests with sim (INSECURE), "
				    "host, tdx or snp%s", tee, be ? " (kiln does not run as an "
				    "SGX enclave)" : "");
	ret = ev_workload_measure_pid(0, self->wm, NULL, err);
	if (ret < 0) {
		kiln_err_prefix(err, "--tee %s: cannot measure kiln-cas: ", tee);
		return ret;
	}
	self->be = be;
	ret = self_produce(self, nonce, &ev, &size, err);
	free(ev);
	if (ret < 0) {
		self->be = NULL;
		kiln_err_prefix(err, "--tee %s: cannot produce the CAS's evidence: ", tee);
		return ret;
	}
	kiln_hex_encode(self->wm, sizeof(self->wm), wm_hex);
	if (be->insecure)
		kiln_log(KILN_LOG_WARN, "attestation of the CAS is INSECURE: sim evidence, "
			 "anybody can forge it", "tee=sim workload_measurement=%s", wm_hex);
	else
		kiln_log(KILN_LOG_INFO, "attestation of the CAS enabled",
			 "tee=%s workload_measurement=%s", be->name, wm_hex);
	return 0;
}

/* The nonce of "nonce=<64 hex>" in the query (the only parameter). */
static int query_nonce(const char *query, uint8_t nonce[EV_NONCE_SIZE])
{
	size_t n = 0;

	if (!query || strncmp(query, "nonce=", 6) || strlen(query + 6) != 2 * EV_NONCE_SIZE)
		return -EINVAL;
	if (kiln_hex_decode(query + 6, nonce, EV_NONCE_SIZE, &n) < 0 || n != EV_NONCE_SIZE)
		return -EINVAL;
	return 0;
}

/* Take a token of addr's bucket at now: 0, or the seconds until it has one. */
static unsigned take_token(struct cas__self *self, const char *addr, uint64_t now,
			   bool *first_refusal)
{
	struct cas__self_bucket *b = NULL, *oldest = &self->rl[0];
	unsigned wait = 0;

	pthread_mutex_lock(&self->rl_lock);
	for (size_t i = 0; i < CAS_SELF_ADDRS && !b; i++) {
		if (!strcmp(self->rl[i].addr, addr))
			b = &self->rl[i];
		else if (self->rl[i].last_ns < oldest->last_ns)
			oldest = &self->rl[i];
	}
	if (!b) {
		b = oldest;
		snprintf(b->addr, sizeof(b->addr), "%s", addr);
		b->tokens = CAS_SELF_BURST;
		b->limited = false;
	} else {
		b->tokens += (double)(now - b->last_ns) / 1e9 * CAS_SELF_PER_SECOND;
		if (b->tokens > CAS_SELF_BURST)
			b->tokens = CAS_SELF_BURST;
	}
	b->last_ns = now;
	*first_refusal = false;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		b->limited = false;
	} else {
		wait = (unsigned)((1 - b->tokens) / CAS_SELF_PER_SECOND) + 1;
		*first_refusal = !b->limited;
		b->limited = true;
	}
	pthread_mutex_unlock(&self->rl_lock);
	return wait;
}

void cas__api_attestation(struct cas__req *rc)
{
	struct cas__self *self = &rc->s->self;
	struct kiln_err err = { 0 };
	uint8_t nonce[EV_NONCE_SIZE], *ev = NULL;
	char nonce_hex[2 * EV_NONCE_SIZE + 1], key[7 + 2 * KC_SHA256_SIZE + 1];
	char wm_hex[2 * sizeof(self->wm) + 1], *b64 = NULL;
	size_t size = 0;
	json_t *body;
	bool first;
	int ret;

	if (!self->be) {
		cas__fail(rc, -ENOENT, "this CAS serves no attestation of itself (kiln cas serve "
			  "--tee sim|host|tdx|snp)");
		return;
	}
	if (query_nonce(rc->conn->head.query, nonce) < 0) {
		cas__fail(rc, -EINVAL, "expected ?nonce=<64 hex digits> (32 random bytes of "
			  "the client's)");
		return;
	}
	rc->retry_after = take_token(self, rc->conn->addr, kiln_now_ns(), &first);
	if (rc->retry_after) {
		if (first)
			kiln_log(KILN_LOG_WARN, "CAS evidence refused: client over its rate",
				 "addr=%s burst=%d per_second=%d request_id=%s", rc->conn->addr,
				 CAS_SELF_BURST, CAS_SELF_PER_SECOND, rc->request_id);
		cas__fail(rc, -EUSERS, "too many attestation requests from this address; "
			  "retry after the time Retry-After gives");
		return;
	}
	ret = self_produce(self, nonce, &ev, &size, &err);
	if (ret < 0) {
		kiln_log(KILN_LOG_ERROR, "CAS evidence not produced", "tee=%s reason=\"%s\" "
			 "request_id=%s", self->be->name, kiln_err_msg(&err, ret),
			 rc->request_id);
		cas__fail(rc, ret == -ENOMEM ? -ENOMEM : -EAGAIN, "cannot produce the CAS's "
			  "evidence now, retry later");
		return;
	}
	b64 = kiln_b64_encode(ev, size);
	free(ev);
	if (!b64) {
		cas__fail(rc, -ENOMEM, NULL);
		return;
	}
	kiln_hex_encode(nonce, sizeof(nonce), nonce_hex);
	memcpy(key, "sha256:", 7);
	kiln_hex_encode(self->key_sha256, sizeof(self->key_sha256), key + 7);
	kiln_hex_encode(self->wm, sizeof(self->wm), wm_hex);
	body = json_pack("{s:i,s:s,s:b,s:s,s:s,s:s,s:s}", "kiln_cas_attestation", 1, "tee",
			 self->be->name, "insecure", self->be->insecure, "nonce", nonce_hex,
			 "server_key", key, "workload_measurement", wm_hex, "evidence", b64);
	free(b64);
	if (body && self->be->insecure)
		json_object_set_new(body, "warning", json_string("INSECURE: sim evidence, anybody "
								 "can forge it; it proves nothing"));
	cas__reply_json(rc, 200, body);
}
