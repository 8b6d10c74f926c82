/* Unit tests for the CAS request handlers (src/cas/route.c, api_policy.c,
 * api_volume.c, api_attest.c's nonce), called directly on a store in a temporary
 * directory, without TLS or sockets: the route table, the one failure -> status
 * mapping, and what each handler answers to whom. (The whole service over TLS is
 * tested end to end in tests/e2e/test_cas*.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cas/internal.h"

#define ALICE "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define VOL "/v1/volumes/0123456789abcdef0123456789abcdef"
#define BOB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char g_dir[256];
static struct cas__server *g_s;

static void noop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int setup(void **state)
{
	struct kiln_err err = { 0 };
	struct cas__loop *l;

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/kiln-test-cas-api-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	g_s = calloc(1, sizeof(*g_s));
	if (!g_s || cas__store_open(&g_s->st, g_dir, true, &err) < 0)
		return -1;
	cas__nonces_init(&g_s->nonces);
	cas__grant_limits_init(&g_s->grants);
	pthread_mutex_init(&g_s->m.lock, NULL);
	pthread_mutex_init(&g_s->store_lock, NULL);
	l = &g_s->loops[0];
	l->s = g_s;
	l->base = event_base_new();
	if (!l->base)
		return -1;
	l->commit_ev = evtimer_new(l->base, noop, NULL);
	l->pending_tail = &l->pending;
	l->done_tail = &l->done;
	l->parked_tail = &l->parked;
	l->resume_tail = &l->resume;
	g_s->n_loops = 1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	event_free(g_s->loops[0].commit_ev);
	event_base_free(g_s->loops[0].base);
	cas__nonces_free(&g_s->nonces);
	cas__tally_free(&g_s->refusals.per_id);
	cas__store_close(&g_s->st);
	free(g_s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* One request: its connection and context as cas__handle makes them. */
struct req {
	struct cas__conn c;
	json_t *answer; /* parsed answer body */
	int code;
};

static void req_init(struct req *r, enum cas__http_method method, const char *path,
		     const char *who, const char *body)
{
	struct cas__req *rc = &r->c.rc;

	memset(r, 0, sizeof(*r));
	r->c.loop = &g_s->loops[0];
	r->c.head.method = method;
	r->c.head.path = (char *)path;
	snprintf(r->c.addr, sizeof(r->c.addr), "192.0.2.1");
	if (body) {
		r->c.body = strdup(body);
		r->c.body_size = strlen(body);
	}
	rc->s = g_s;
	rc->loop = &g_s->loops[0];
	rc->conn = &r->c;
	rc->route = "other";
	strcpy(rc->request_id, "0123456789abcdef");
	if (who) {
		snprintf(rc->peer_id, sizeof(rc->peer_id), "%s", who);
		memset(rc->peer_spki, who[7], sizeof(rc->peer_spki));
	}
}

/* Route the request as cas__handle does, run its handler, and commit what it
 * wrote (the committer thread's job in the service). */
static void run(struct req *r)
{
	struct cas__req *rc = &r->c.rc;
	const struct cas__route *route, *other;

	route = cas__route_find(r->c.head.method, r->c.head.path, &rc->args, &other);
	if (route) {
		rc->route = route->path;
		rc->store = route->store;
		route->fn(rc);
	} else {
		cas__fail(rc, other ? -EOPNOTSUPP : -ENOENT, NULL);
	}
	if (rc->store && rc->refused)
		(void)cas__refusal_audit(rc);
	if (g_s->batch_open) {
		assert_int_equal(cas__store_commit(&g_s->st), 0);
		g_s->batch_open = false;
	}
	g_s->loops[0].pending = NULL;
	g_s->loops[0].pending_tail = &g_s->loops[0].pending;
	r->code = rc->out_code;
	r->answer = rc->out_body ? json_loads(rc->out_body, 0, NULL) : NULL;
	assert_non_null(r->answer);
	kiln_free_secret(rc->out_body, rc->out_size);
	rc->out_body = NULL;
	free(r->c.body);
}

static const char *field(struct req *r, const char *key)
{
	return json_string_value(json_object_get(r->answer, key));
}

static int call(enum cas__http_method method, const char *path, const char *who,
		const char *body, json_t **answer)
{
	struct req r;

	req_init(&r, method, path, who, body);
	run(&r);
	if (answer)
		*answer = r.answer;
	else
		json_decref(r.answer);
	return r.code;
}

static const char *policy_yaml(const char *name, const char *predecessor, const char *read)
{
	static char y[1024];

	snprintf(y, sizeof(y),
		 "name: %s\n"
		 "predecessor: %s\n"
		 "access:\n"
		 "  read: [%s]\n"
		 "  update: [owner]\n"
		 "security:\n"
		 "  tee: [sim]\n"
		 "  allow_insecure_sim: true\n"
		 "services:\n"
		 "  - name: app\n"
		 "    command: [/bin/true]\n"
		 "    measurement: [any]\n",
		 name, predecessor ? predecessor : "null", read);
	return y;
}

/* ---- the route table and the status mapping ---- */

static void test_route_table_finds_each_route_with_its_parameter(void **state)
{
	struct cas__route_args a;
	const struct cas__route *r, *other;

	(void)state;
	r = cas__route_find(CAS_HTTP_GET, "/v1/nonce", &a, &other);
	assert_non_null(r);
	assert_string_equal(r->path, "/v1/nonce");
	assert_false(r->store);
	r = cas__route_find(CAS_HTTP_POST, "/v1/attest", &a, &other);
	assert_non_null(r);
	assert_false(r->store); /* takes the store after verifying the evidence */
	r = cas__route_find(CAS_HTTP_GET, "/v1/policies", &a, &other);
	assert_non_null(r);
	assert_true(r->fn == cas__api_policy_list);
	r = cas__route_find(CAS_HTTP_POST, "/v1/policies", &a, &other);
	assert_true(r && r->fn == cas__api_policy_apply);
	/* a namespaced name keeps its slash */
	r = cas__route_find(CAS_HTTP_DELETE, "/v1/policies/alice/web", &a, &other);
	assert_true(r && r->fn == cas__api_policy_delete);
	assert_string_equal(r->path, "/v1/policies/{name}");
	assert_string_equal(a.name, "alice/web");
	r = cas__route_find(CAS_HTTP_POST, VOL "/commit",
			    &a, &other);
	assert_true(r && r->fn == cas__api_volume_commit && r->store);
	assert_string_equal(a.id, "0123456789abcdef0123456789abcdef");
	assert_string_equal(r->path, "/v1/volumes/{id}/commit");
	/* health and metrics take any method */
	assert_non_null(cas__route_find(CAS_HTTP_DELETE, "/v1/health", &a, &other));
	assert_non_null(cas__route_find(CAS_HTTP_POST, "/metrics", &a, &other));
}

static void test_route_table_tells_wrong_method_from_unknown_path(void **state)
{
	struct cas__route_args a;
	const struct cas__route *other;

	(void)state;
	assert_null(cas__route_find(CAS_HTTP_POST, "/v1/nonce", &a, &other));
	assert_non_null(other); /* 405, labelled with its route */
	assert_string_equal(other->path, "/v1/nonce");
	assert_null(cas__route_find(CAS_HTTP_POST, VOL "/tag", &a, &other));
	assert_non_null(other);
	assert_null(cas__route_find(CAS_HTTP_GET, "/v1/nonces", &a, &other));
	assert_null(other);
	assert_null(cas__route_find(CAS_HTTP_GET, "/v1/nonce/", &a, &other));
	assert_null(other);
	/* an id is exactly 32 lowercase hex digits, the operation one of three */
	assert_null(cas__route_find(CAS_HTTP_GET,
				    "/v1/volumes/0123456789ABCDEF" "0123456789abcdef/tag", &a,
				    &other));
	assert_null(other);
	assert_null(cas__route_find(CAS_HTTP_GET, VOL "0/tag", &a, &other));
	assert_null(cas__route_find(CAS_HTTP_GET, "/v1/volumes/0123456789abcdef/tag", &a, &other));
	assert_null(cas__route_find(CAS_HTTP_POST, VOL "/delete", &a, &other));
	assert_null(other);
	assert_null(cas__route_find(CAS_HTTP_GET, VOL "/tag/x", &a, &other));
	assert_int_equal(call(CAS_HTTP_GET, "/nowhere", NULL, NULL, NULL), 404);
	assert_int_equal(call(CAS_HTTP_DELETE, "/v1/attest", NULL, NULL, NULL), 405);
}

static void test_status_mapping_is_one_table(void **state)
{
	(void)state;
	assert_int_equal(cas__http_status(-KILN_EFORMAT), 400);
	assert_int_equal(cas__http_status(-ENOKEY), 401);
	assert_int_equal(cas__http_status(-KILN_EDENIED), 403);
	assert_int_equal(cas__http_status(-KILN_EPOLICY), 403);
	assert_int_equal(cas__http_status(-ENOENT), 404);
	assert_int_equal(cas__http_status(-EOPNOTSUPP), 405);
	assert_int_equal(cas__http_status(-KILN_ECONFLICT), 409);
	assert_int_equal(cas__http_status(-EFBIG), 413);
	assert_int_equal(cas__http_status(-EIO), 500);
	assert_int_equal(cas__http_status(-EBUSY), 503);
	assert_int_equal(cas__http_status(-EAGAIN), 503);
	/* anything unlisted is an internal error, never a 2xx or a 4xx */
	assert_int_equal(cas__http_status(-KILN_ECRYPTO), 500);
	assert_int_equal(cas__http_status(-EXDEV), 500);
	assert_int_equal(cas__http_status(0), 500);
}

static void test_fail_answers_json_with_request_id_and_default_message(void **state)
{
	struct req r;

	(void)state;
	req_init(&r, CAS_HTTP_GET, "/x", NULL, NULL);
	cas__fail(&r.c.rc, -EBUSY, NULL);
	r.code = r.c.rc.out_code;
	assert_int_equal(r.code, 503);
	assert_string_equal(r.c.rc.out_ctype, "application/json");
	r.answer = json_loads(r.c.rc.out_body, 0, NULL);
	assert_string_equal(field(&r, "error"), "store busy");
	assert_string_equal(field(&r, "request_id"), "0123456789abcdef");
	json_decref(r.answer);
	free(r.c.rc.out_body);
	/* a handler's own message wins; an unlisted code says "internal error" */
	req_init(&r, CAS_HTTP_GET, "/x", NULL, NULL);
	cas__fail(&r.c.rc, -KILN_ECRYPTO, NULL);
	r.answer = json_loads(r.c.rc.out_body, 0, NULL);
	assert_int_equal(r.c.rc.out_code, 500);
	assert_string_equal(field(&r, "error"), "internal error");
	json_decref(r.answer);
	free(r.c.rc.out_body);
}

/* ---- policies ---- */

static void test_policy_handlers_need_an_identity(void **state)
{
	json_t *a;

	(void)state;
	assert_int_equal(call(CAS_HTTP_GET, "/v1/policies", NULL, NULL, &a), 401);
	assert_non_null(strstr(json_string_value(json_object_get(a, "error")),
			       "client certificate"));
	json_decref(a);
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", NULL,
			      policy_yaml("nobody", NULL, "owner"), NULL), 401);
	assert_int_equal(call(CAS_HTTP_DELETE, "/v1/policies/nobody", NULL, NULL, NULL), 401);
}

static void test_policy_apply_creates_then_needs_the_predecessor(void **state)
{
	json_t *a;
	char hash[100];

	(void)state;
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("app1", NULL, "owner"), &a), 201);
	assert_string_equal(json_string_value(json_object_get(a, "owner")), ALICE);
	assert_int_equal(json_integer_value(json_object_get(a, "version")), 1);
	snprintf(hash, sizeof(hash), "%s", json_string_value(json_object_get(a, "hash")));
	json_decref(a);
	/* the same name again without its predecessor: 409 naming the current hash */
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("app1", NULL, "owner"), &a), 409);
	assert_string_equal(json_string_value(json_object_get(a, "current")), hash);
	assert_true(json_is_null(json_object_get(a, "predecessor")));
	json_decref(a);
	/* with it: an update, version 2 */
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("app1", hash, "owner, " BOB), &a), 200);
	assert_int_equal(json_integer_value(json_object_get(a, "version")), 2);
	json_decref(a);
	/* a predecessor for a name that does not exist: 409 */
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("app-none", hash, "owner"), NULL), 409);
	/* a malformed policy: 400 naming line and column */
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE, "name: [\n", &a), 400);
	assert_non_null(strstr(json_string_value(json_object_get(a, "error")), "policy:"));
	json_decref(a);
}

static void test_policy_update_by_a_reader_is_refused_without_oracle(void **state)
{
	json_t *a, *b;

	(void)state;
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("app2", NULL, "owner, " BOB), NULL), 201);
	/* Bob may read, not update: the same 403 as for a policy he cannot see */
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", BOB,
			      policy_yaml("app2", NULL, "owner"), &a), 403);
	assert_int_equal(call(CAS_HTTP_DELETE, "/v1/policies/does-not-exist", BOB, NULL, &b),
			 403);
	assert_string_equal(json_string_value(json_object_get(a, "error")),
			    json_string_value(json_object_get(b, "error")));
	json_decref(a);
	json_decref(b);
	assert_int_equal(call(CAS_HTTP_DELETE, "/v1/policies/app2", BOB, NULL, NULL), 403);
}

static void test_policy_get_and_list_show_only_what_the_caller_may_read(void **state)
{
	json_t *a, *list;
	bool seen_private = false, seen_shared = false;
	size_t i;
	json_t *row;

	(void)state;
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("private", NULL, "owner"), NULL), 201);
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("shared", NULL, "owner, " BOB), NULL), 201);
	assert_int_equal(call(CAS_HTTP_GET, "/v1/policies/shared", BOB, NULL, &a), 200);
	assert_non_null(strstr(json_string_value(json_object_get(a, "yaml")), "name: shared"));
	json_decref(a);
	/* hidden and missing look the same */
	assert_int_equal(call(CAS_HTTP_GET, "/v1/policies/private", BOB, NULL, &a), 403);
	assert_string_equal(json_string_value(json_object_get(a, "error")),
			    "not allowed or not found");
	json_decref(a);
	assert_int_equal(call(CAS_HTTP_GET, "/v1/policies/missing", BOB, NULL, &a), 403);
	assert_string_equal(json_string_value(json_object_get(a, "error")),
			    "not allowed or not found");
	json_decref(a);
	assert_int_equal(call(CAS_HTTP_GET, "/v1/policies", BOB, NULL, &a), 200);
	list = json_object_get(a, "policies");
	json_array_foreach(list, i, row) {
		const char *n = json_string_value(json_object_get(row, "name"));

		seen_private |= !strcmp(n, "private");
		seen_shared |= !strcmp(n, "shared");
	}
	assert_false(seen_private);
	assert_true(seen_shared);
	json_decref(a);
	/* the owner deletes; then it is gone for everyone */
	assert_int_equal(call(CAS_HTTP_DELETE, "/v1/policies/shared", ALICE, NULL, &a), 200);
	assert_string_equal(json_string_value(json_object_get(a, "deleted")), "shared");
	json_decref(a);
	assert_int_equal(call(CAS_HTTP_GET, "/v1/policies/shared", ALICE, NULL, NULL), 403);
}

static void test_stored_policy_is_parsed_once_per_hash(void **state)
{
	struct kiln_err err = { 0 };
	struct pol_policy *p1, *p2, *p3;
	struct cas__policy row = { 0 };
	char owner[CAS_ID_SIZE], hash[100];
	json_t *a;

	(void)state;
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("cached", NULL, "owner"), &a), 201);
	snprintf(hash, sizeof(hash), "%s", json_string_value(json_object_get(a, "hash")));
	json_decref(a);
	assert_int_equal(cas__policy_load(&g_s->st, "cached", &p1, owner, &err), 0);
	assert_int_equal(cas__policy_load(&g_s->st, "cached", &p2, owner, &err), 0);
	assert_ptr_equal(p1, p2); /* the same parse, referenced twice */
	assert_string_equal(owner, ALICE);
	/* a new version is a new entry; the held one stays valid */
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("cached", hash, "owner, " BOB), NULL), 200);
	assert_int_equal(cas__policy_load(&g_s->st, "cached", &p3, owner, &err), 0);
	assert_ptr_not_equal(p3, p1);
	assert_string_equal(p1->hash, hash);
	assert_string_not_equal(p3->hash, hash);
	assert_true(pol_may_read(p3, owner, BOB));
	assert_false(pol_may_read(p1, owner, BOB));
	cas__policy_unref(&g_s->st, p1);
	cas__policy_unref(&g_s->st, p2);
	cas__policy_unref(&g_s->st, p3);
	/* a row whose stored hash is not its YAML's is parsed each time, never cached
	 * under the hash it claims */
	row.name = "cached";
	row.hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	row.yaml = (char *)policy_yaml("cached", NULL, "owner");
	assert_int_equal(cas__policy_parse(&g_s->st, &row, &p1, &err), 0);
	assert_int_equal(cas__policy_parse(&g_s->st, &row, &p2, &err), 0);
	assert_ptr_not_equal(p1, p2);
	assert_string_equal(p1->hash, hash); /* what the YAML hashes to */
	cas__policy_unref(&g_s->st, p1);
	cas__policy_unref(&g_s->st, p2);
}

/* ---- volumes and nonces ---- */

static int call_as_workload(enum cas__http_method method, const char *path, const char *who,
			    const char *body, json_t **answer)
{
	struct req r;
	X509 *peer = X509_new();

	assert_non_null(peer);
	req_init(&r, method, path, who, body);
	r.c.rc.peer = peer; /* a certificate was presented (its key: who) */
	run(&r);
	X509_free(peer);
	*answer = r.answer;
	return r.code;
}

static const char *volume_policy_yaml(const char *predecessor, bool with_volume)
{
	static char y[1024];

	snprintf(y, sizeof(y),
		 "name: vol1\n"
		 "predecessor: %s\n"
		 "security: {tee: [sim], allow_insecure_sim: true}\n"
		 "%s"
		 "services:\n"
		 "  - name: app\n"
		 "    command: [/bin/true]\n"
		 "    measurement: [any]\n"
		 "%s",
		 predecessor ? predecessor : "null",
		 with_volume ? "volumes:\n  - {name: data}\n" : "",
		 with_volume ? "    mounts: [{volume: data, path: /data}]\n" : "");
	return y;
}

static void test_volume_needs_the_attested_key_and_its_grant(void **state)
{
	struct cas__grant_limits g;
	struct cas__volume v;
	char ids[1][33], path[100], hash[100];
	bool evicted;
	json_t *a;

	(void)state;
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      volume_policy_yaml(NULL, true), &a), 201);
	snprintf(hash, sizeof(hash), "%s", json_string_value(json_object_get(a, "hash")));
	json_decref(a);
	assert_int_equal(cas__volume_get_or_create(&g_s->st, "vol1", "data", &v), 0);
	memcpy(ids[0], v.id, sizeof(v.id));
	snprintf(path, sizeof(path), "/v1/volumes/%s/tag", v.id);
	/* no client certificate at all: 401 */
	assert_int_equal(call(CAS_HTTP_GET, path, NULL, NULL, NULL), 401);
	/* a key that attested for no volume: 403 */
	assert_int_equal(call_as_workload(CAS_HTTP_GET, path, ALICE, NULL, &a), 403);
	assert_non_null(strstr(json_string_value(json_object_get(a, "error")), "no grant"));
	json_decref(a);
	/* the key that attested: tags, prepare committed+1, commit it */
	{
		uint8_t spki[KC_SHA256_SIZE];

		memset(spki, 'a', sizeof(spki));
		cas__grant_limits_init(&g);
		assert_int_equal(cas__grant_put(&g_s->st, &g, spki, "vol1", ids, 1,
						cas__grant_clock(), &evicted), 0);
	}
	assert_int_equal(call_as_workload(CAS_HTTP_GET, path, ALICE, NULL, &a), 200);
	assert_int_equal(json_integer_value(json_object_get(a, "committed")), 0);
	assert_true(json_is_null(json_object_get(a, "prepared")));
	json_decref(a);
	snprintf(path, sizeof(path), "/v1/volumes/%s/commit", v.id);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 1}", &a), 409);
	assert_non_null(strstr(json_string_value(json_object_get(a, "error")), "prepared none"));
	json_decref(a);
	snprintf(path, sizeof(path), "/v1/volumes/%s/prepare", v.id);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 1}", &a), 200);
	assert_int_equal(json_integer_value(json_object_get(a, "prepared")), 1);
	json_decref(a);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 0}", &a), 400);
	json_decref(a);
	/* a commit that failed is abandoned: its tag is never prepared or
	 * committed again (pf skips it), the next one goes above it */
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 2}", &a), 200);
	assert_int_equal(json_integer_value(json_object_get(a, "prepared")), 2);
	json_decref(a);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 2}", &a), 200);
	json_decref(a); /* a retry */
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 1}", &a), 409);
	assert_non_null(strstr(json_string_value(json_object_get(a, "error")), "prepared 2"));
	json_decref(a);
	snprintf(path, sizeof(path), "/v1/volumes/%s/commit", v.id);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 1}", &a), 409);
	json_decref(a);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 2}", &a), 200);
	assert_int_equal(json_integer_value(json_object_get(a, "committed")), 2);
	json_decref(a);
	/* nothing at or below the committed tag is prepared again */
	snprintf(path, sizeof(path), "/v1/volumes/%s/prepare", v.id);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 2}", &a), 409);
	json_decref(a);
	assert_int_equal(call_as_workload(CAS_HTTP_POST, path, ALICE, "{\"tag\": 1}", &a), 409);
	json_decref(a);
	/* another key, even with the volume's id: 403 */
	snprintf(path, sizeof(path), "/v1/volumes/%s/tag", v.id);
	assert_int_equal(call_as_workload(CAS_HTTP_GET, path, BOB, NULL, &a), 403);
	json_decref(a);
	/* the policy updated without the volume: the grant no longer allows it */
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      volume_policy_yaml(hash, false), &a), 200);
	json_decref(a);
	assert_int_equal(call_as_workload(CAS_HTTP_GET, path, ALICE, NULL, &a), 403);
	assert_non_null(strstr(json_string_value(json_object_get(a, "error")), "no grant"));
	json_decref(a);
	kiln_wipe(v.key, sizeof(v.key));
}

static void test_nonce_is_fresh_hex_and_bounded_per_client(void **state)
{
	json_t *a;
	char first[65];
	int code = 200;
	size_t n = 0;

	(void)state;
	assert_int_equal(call(CAS_HTTP_GET, "/v1/nonce", NULL, NULL, &a), 200);
	assert_int_equal(strlen(json_string_value(json_object_get(a, "nonce"))), 64);
	snprintf(first, sizeof(first), "%s", json_string_value(json_object_get(a, "nonce")));
	assert_int_equal(json_integer_value(json_object_get(a, "expires_in")), CAS_NONCE_TTL_S);
	json_decref(a);
	assert_int_equal(call(CAS_HTTP_GET, "/v1/nonce", NULL, NULL, &a), 200);
	assert_string_not_equal(json_string_value(json_object_get(a, "nonce")), first);
	json_decref(a);
	/* one address cannot hold more than its share: 503, retry later */
	while (code == 200 && n++ < 100000)
		code = call(CAS_HTTP_GET, "/v1/nonce", NULL, NULL, NULL);
	assert_int_equal(code, 503);
}

/* ---- approvals and audited refusals ---- */

#define CAROL "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

/* An approval verifies only as signed: moving it to another action, proposal,
 * expiry, hash or policy breaks the signature; the identity is its key's. */
static void test_approval_binds_action_proposal_and_expiry(void **state)
{
	static const char *const fields[][2] = {
		{ "action", "\"delete\"" }, { "proposal", "\"00000000000000000000000000000000\"" },
		{ "not_after", "1900000001" }, { "policy", "\"acme/other\"" },
		{ "hash", "\"sha256:1111111111111111111111111111111111111111111111111111111111111111\"" },
	};
	struct cas_approval ap = { 0 }, got;
	struct kiln_err err = { 0 };
	EVP_PKEY *key = NULL;
	char *text = NULL;

	(void)state;
	assert_int_equal(cas__x509_keygen("p256", &key), 0);
	snprintf(ap.policy, sizeof(ap.policy), "acme/db");
	snprintf(ap.action, sizeof(ap.action), "update");
	snprintf(ap.hash, sizeof(ap.hash), "sha256:%064d", 7);
	snprintf(ap.proposal, sizeof(ap.proposal), "0123456789abcdef0123456789abcdef");
	ap.not_after = 1900000000;
	assert_int_equal(cas_approval_sign(key, &ap, &text, &err), 0);
	assert_int_equal(cas_approval_verify(text, strlen(text), &got, &err), 0);
	assert_string_equal(got.proposal, ap.proposal);
	assert_string_equal(got.identity, ap.identity);
	assert_string_equal(got.digest, ap.digest);
	assert_int_equal(got.not_after, 1900000000);
	assert_false(cas_approval_offline(&got));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		json_t *o = json_loads(text, 0, NULL), *v = json_loads(fields[i][1],
								      JSON_DECODE_ANY, NULL);
		char *moved;

		json_object_set_new(o, fields[i][0], v);
		moved = json_dumps(o, JSON_COMPACT);
		assert_int_equal(cas_approval_verify(moved, strlen(moved), &got, &err), -KILN_ESIG);
		assert_non_null(strstr(err.msg, "the signature does not verify"));
		free(moved);
		json_decref(o);
	}
	free(text);
	/* Without a proposal id it is a fresh one-use offline approval. */
	ap.proposal[0] = '\0';
	assert_int_equal(cas_approval_sign(key, &ap, &text, &err), 0);
	assert_true(cas_approval_offline(&ap));
	assert_int_equal(cas_approval_verify(text, strlen(text), &got, &err), 0);
	assert_string_equal(got.proposal, ap.proposal);
	free(text);
	EVP_PKEY_free(key);
}

static int64_t refusals_by(const char *who)
{
	struct cas__stmt *s = NULL;
	int64_t n = -1;

	assert_int_equal(cas__db_query(g_s->st.db, &s, "SELECT count(*) FROM audit WHERE kind = "
				       "'policy.refused' AND actor = ?", "t", who), 0);
	if (cas__db_step(s) == 1)
		n = cas__db_col_int64(s, 0);
	cas__db_finalize(s);
	return n;
}

/* A refused read is audited (who, policy, rule); a flood of them gets at most
 * CAS_REFUSALS_PER_ID entries a minute, and another identity's still go in. */
static void test_refusals_are_audited_and_rate_limited(void **state)
{
	int64_t minute = (int64_t)time(NULL) / 60, windows, bob;
	json_t *a;

	(void)state;
	cas__tally_free(&g_s->refusals.per_id);
	memset(&g_s->refusals, 0, sizeof(g_s->refusals));
	assert_int_equal(call(CAS_HTTP_POST, "/v1/policies", ALICE,
			      policy_yaml("acme/refuse", NULL, "owner"), NULL), 201);
	assert_int_equal(refusals_by(CAROL), 0);
	for (int i = 0; i < 3 * CAS_REFUSALS_PER_ID; i++)
		assert_int_equal(call(CAS_HTTP_GET, "/v1/policies/acme/refuse", CAROL, NULL, NULL),
				 403);
	windows = (int64_t)time(NULL) / 60 - minute + 1;
	assert_true(refusals_by(CAROL) >= CAS_REFUSALS_PER_ID);
	assert_true(refusals_by(CAROL) <= CAS_REFUSALS_PER_ID * windows);
	bob = refusals_by(BOB);
	assert_int_equal(call(CAS_HTTP_DELETE, "/v1/policies/acme/refuse", BOB, NULL, &a), 403);
	assert_string_equal(json_string_value(json_object_get(a, "error")),
			    "not allowed or not found");
	json_decref(a);
	assert_int_equal(refusals_by(BOB), bob + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_table_finds_each_route_with_its_parameter),
		cmocka_unit_test(test_route_table_tells_wrong_method_from_unknown_path),
		cmocka_unit_test(test_status_mapping_is_one_table),
		cmocka_unit_test(test_fail_answers_json_with_request_id_and_default_message),
		cmocka_unit_test(test_policy_handlers_need_an_identity),
		cmocka_unit_test(test_policy_apply_creates_then_needs_the_predecessor),
		cmocka_unit_test(test_policy_update_by_a_reader_is_refused_without_oracle),
		cmocka_unit_test(test_policy_get_and_list_show_only_what_the_caller_may_read),
		cmocka_unit_test(test_stored_policy_is_parsed_once_per_hash),
		cmocka_unit_test(test_volume_needs_the_attested_key_and_its_grant),
		cmocka_unit_test(test_nonce_is_fresh_hex_and_bounded_per_client),
		cmocka_unit_test(test_approval_binds_action_proposal_and_expiry),
		cmocka_unit_test(test_refusals_are_audited_and_rate_limited),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
