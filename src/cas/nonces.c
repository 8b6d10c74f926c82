/* Attestation nonces: single use, short-lived, and bounded per client.
 *
 * The table was global and first come, first served: one connection pipelining
 * GET /v1/nonce filled it and every other workload got 503 until the nonces
 * expired. Now each nonce is charged to its client, "id:<spki sha256>" when the
 * request carried a client certificate (a workload's ephemeral key: it needs one
 * nonce) or "ip:<address>" (an IPv6 address by its /64, which one host usually
 * holds whole) when it did not, and a client over its limit is refused while the
 * others are served. Filling the whole table through identities would take
 * CAS_NONCE_MAX / CAS_NONCES_PER_ID handshakes within CAS_NONCE_TTL_S, far more
 * than a server does (docs/cas.md, "Limits").
 *
 * t->lock guards everything; nonce_consume is the single point where a nonce is
 * used, so of two loops racing with one nonce exactly one wins. */
#include "cas/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cas__nonce {
	uint8_t nonce[32];
	uint64_t expires_ns;
	struct cas__tally_ent *q; /* the client it is charged to */
	struct cas__nonce *next;
};

static size_t bucket_of_bytes(const uint8_t *b)
{
	return ((size_t)b[0] << 8 | b[1]) % CAS_NONCE_BUCKETS;
}

void cas__nonces_init(struct cas__nonce_table *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->max_total = CAS_NONCE_MAX;
	t->max_per_id = CAS_NONCES_PER_ID;
	t->max_per_addr = CAS_NONCES_PER_ADDR;
	t->ttl_ns = (uint64_t)CAS_NONCE_TTL_S * 1000000000ull;
}

static void nonce_drop(struct cas__nonce_table *t, struct cas__nonce **pp)
{
	struct cas__nonce *e = *pp;

	*pp = e->next;
	cas__tally_put(&t->clients, e->q);
	free(e);
	t->n--;
}

int cas__nonce_issue(struct cas__nonce_table *t, const char *client, bool identified,
		     uint64_t now_ns, uint8_t nonce[32])
{
	struct cas__nonce *e = calloc(1, sizeof(*e));
	uint32_t limit = identified ? t->max_per_id : t->max_per_addr;
	int ret = 0;

	if (!e)
		return -ENOMEM;
	if (kc_random(e->nonce, sizeof(e->nonce)) < 0) {
		free(e);
		return -KILN_ECRYPTO;
	}
	e->expires_ns = now_ns + t->ttl_ns;
	pthread_mutex_lock(&t->lock);
	if (t->n >= t->max_total && cas__tally_of(&t->clients, client) < limit) {
		ret = -ENOSPC;
		goto out;
	}
	e->q = cas__tally_take(&t->clients, client, limit, &ret); /* -EUSERS: has enough */
	if (!e->q)
		goto out;
	memcpy(nonce, e->nonce, sizeof(e->nonce));
	e->next = t->buckets[bucket_of_bytes(e->nonce)];
	t->buckets[bucket_of_bytes(e->nonce)] = e;
	t->n++;
	e = NULL;
out:
	pthread_mutex_unlock(&t->lock);
	free(e);
	return ret;
}

bool cas__nonce_consume(struct cas__nonce_table *t, const uint8_t nonce[32], uint64_t now_ns)
{
	bool fresh = false;

	pthread_mutex_lock(&t->lock);
	for (struct cas__nonce **pp = &t->buckets[bucket_of_bytes(nonce)]; *pp;
	     pp = &(*pp)->next) {
		if (memcmp((*pp)->nonce, nonce, 32))
			continue;
		fresh = (*pp)->expires_ns > now_ns;
		nonce_drop(t, pp);
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return fresh;
}

bool cas__nonce_peek(struct cas__nonce_table *t, const uint8_t nonce[32], uint64_t now_ns)
{
	bool fresh = false;

	pthread_mutex_lock(&t->lock);
	for (struct cas__nonce *e = t->buckets[bucket_of_bytes(nonce)]; e; e = e->next) {
		if (!memcmp(e->nonce, nonce, 32)) {
			fresh = e->expires_ns > now_ns;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return fresh;
}

size_t cas__nonces_sweep(struct cas__nonce_table *t, uint64_t now_ns)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < CAS_NONCE_BUCKETS; b++) {
		for (struct cas__nonce **pp = &t->buckets[b]; *pp;) {
			if ((*pp)->expires_ns <= now_ns)
				nonce_drop(t, pp);
			else
				pp = &(*pp)->next;
		}
	}
	n = t->n;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void cas__nonces_free(struct cas__nonce_table *t)
{
	for (size_t b = 0; b < CAS_NONCE_BUCKETS; b++)
		while (t->buckets[b])
			nonce_drop(t, &t->buckets[b]);
	cas__tally_free(&t->clients);
	pthread_mutex_destroy(&t->lock);
}

void cas__client_key(const uint8_t *spki, const char *address, char out[CAS_CLIENT_KEY_SIZE])
{
	struct in6_addr a6;
	char buf[INET6_ADDRSTRLEN];

	if (spki) {
		memcpy(out, "id:", 3);
		kiln_hex_encode(spki, KC_SHA256_SIZE, out + 3);
		return;
	}
	/* One host usually holds a whole IPv6 /64: count it as one client. */
	if (address && inet_pton(AF_INET6, address, &a6) == 1) {
		memset(a6.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &a6, buf, sizeof(buf))) {
			snprintf(out, CAS_CLIENT_KEY_SIZE, "ip:%s/64", buf);
			return;
		}
	}
	snprintf(out, CAS_CLIENT_KEY_SIZE, "ip:%.64s", address ? address : "?");
}
