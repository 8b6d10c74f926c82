/* The answers of a PCCS (Intel's Provisioning Certificate Caching Service, API
 * v4; docs/cas.md "Collateral from a PCCS") made into one platform's collateral
 * in the format of `kiln cas collateral add` (the one ev_dcap_collateral_info
 * authenticates). Pure: no I/O, fuzzed (fuzz_pccs_answers). The signed JSON
 * (tcbInfo, enclaveIdentity) is taken byte for byte from the answer, never
 * re-serialized: Intel signs those exact bytes. */
#include "cas/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The raw bytes of the value of member `name` of the top-level object in
 * text[0..size): *start, *len. The text was already parsed as one JSON object
 * (jansson), so this scanner only has to track strings and nesting. */
static int raw_member(const char *text, size_t size, const char *name, size_t *start,
		      size_t *len)
{
	size_t nlen = strlen(name), i = 0;
	int depth = 0;

	while (i < size) {
		char c = text[i];

		if (c == '"') {
			size_t s = ++i;

			while (i < size && text[i] != '"')
				i += text[i] == '\\' ? 2 : 1;
			if (i >= size)
				return -KILN_EFORMAT;
			/* a key of the top-level object: a string followed by ':' */
			if (depth == 1 && i - s == nlen && !memcmp(text + s, name, nlen)) {
				size_t j = i + 1, v, d = 0;

				while (j < size && strchr(" \t\r\n", text[j]))
					j++;
				if (j >= size || text[j] != ':')
					goto next;
				j++;
				while (j < size && strchr(" \t\r\n", text[j]))
					j++;
				if (j >= size || text[j] != '{')
					return -KILN_EFORMAT;
				for (v = j; v < size; v++) {
					if (text[v] == '"') {
						for (v++; v < size && text[v] != '"'; v++)
							if (text[v] == '\\')
								v++;
					} else if (text[v] == '{' || text[v] == '[') {
						d++;
					} else if ((text[v] == '}' || text[v] == ']') && --d == 0) {
						*start = j;
						*len = v + 1 - j;
						return 0;
					}
				}
				return -KILN_EFORMAT;
			}
next:
			i++;
			continue;
		}
		if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']')
			depth--;
		i++;
	}
	return -ENOENT;
}

/* A signed document answer {"<member>": {...}, "signature": "<hex>"}: the raw
 * member text and the signature into out[key] and out[sig_key]. */
static int signed_doc(const struct cas__pccs_body *b, const char *what, const char *member,
		      const char *key, const char *sig_key, json_t *out, struct kiln_err *err)
{
	json_error_t jerr;
	json_t *j = NULL;
	const char *sig;
	size_t start = 0, len = 0;
	char *raw = NULL;
	int ret = -KILN_EFORMAT;

	if (!b->data || !b->size) {
		kiln_err_set(err, ret, "%s: empty answer", what);
		goto out;
	}
	j = json_loadb(b->data, b->size, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j) || json_object_size(j) != 2 ||
	    !json_is_object(json_object_get(j, member))) {
		kiln_err_set(err, ret, "%s: expected {\"%s\": {...}, \"signature\": HEX}%s%s", what,
			     member, j ? "" : ": ", j ? "" : jerr.text);
		goto out;
	}
	sig = json_string_value(json_object_get(j, "signature"));
	if (!sig || strlen(sig) != 128 || strspn(sig, "0123456789abcdefABCDEF") != 128) {
		kiln_err_set(err, ret, "%s: \"signature\" must be 64 bytes (r||s) in hex", what);
		goto out;
	}
	if (raw_member(b->data, b->size, member, &start, &len) < 0 ||
	    !(raw = strndup(b->data + start, len))) {
		kiln_err_set(err, ret, "%s: cannot take \"%s\" from the answer", what, member);
		goto out;
	}
	if (json_object_set_new(out, key, json_string(raw)) < 0 ||
	    json_object_set_new(out, sig_key, json_string(sig)) < 0) {
		ret = kiln_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = 0;
out:
	free(raw);
	json_decref(j);
	return ret;
}

/* A CRL as the collateral holds it: PEM as it is, hex as it is (the PCCS's Root
 * CA CRL), anything else is DER and becomes hex. */
static int crl_text(const struct cas__pccs_body *b, const char *what, const char *key,
		    json_t *out, struct kiln_err *err)
{
	char *hex;
	int ret;

	if (!b->data || !b->size || b->size > CAS_PCCS_MAX_BODY)
		return kiln_err_set(err, -KILN_EFORMAT, "%s: empty or too large answer", what);
	if ((b->size >= 10 && !memcmp(b->data, "-----BEGIN", 10)) ||
	    (b->size % 2 == 0 && strspn(b->data, "0123456789abcdefABCDEF") == b->size)) {
		char *s = strndup(b->data, b->size);

		ret = s && json_object_set_new(out, key, json_string(s)) == 0 ? 0 : -ENOMEM;
		free(s);
		return ret < 0 ? kiln_err_set(err, ret, "out of memory") : 0;
	}
	hex = malloc(2 * b->size + 1);
	if (!hex)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	kiln_hex_encode(b->data, b->size, hex);
	ret = json_object_set_new(out, key, json_string(hex));
	free(hex);
	return ret < 0 ? kiln_err_set(err, -ENOMEM, "out of memory") : 0;
}

/* An issuer chain header: URL-encoded PEM (evhttp_uridecode'd by the caller). */
static int chain(const char *pem, const char *what, const char *header, const char *key,
		 json_t *out, struct kiln_err *err)
{
	if (!pem || !strstr(pem, "-----BEGIN CERTIFICATE-----"))
		return kiln_err_set(err, -KILN_EFORMAT, "%s: no %s header with a PEM certificate "
				    "chain", what, header);
	if (json_object_set_new(out, key, json_string(pem)) < 0)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

int cas__pccs_collateral(const struct cas__pccs_answers *a, json_t **out, struct kiln_err *err)
{
	json_t *j = json_object();
	int ret;

	*out = NULL;
	if (!j)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	ret = crl_text(&a->pck_crl, "PCK CRL", "pck_crl", j, err);
	if (ret == 0)
		ret = chain(a->pck_crl_chain, "PCK CRL", "SGX-PCK-CRL-Issuer-Chain",
			    "pck_crl_issuer_chain", j, err);
	if (ret == 0)
		ret = crl_text(&a->root_ca_crl, "Root CA CRL", "root_ca_crl", j, err);
	if (ret == 0)
		ret = signed_doc(&a->tcb_info, "TCB Info", "tcbInfo", "tcb_info",
				 "tcb_info_signature", j, err);
	if (ret == 0)
		ret = chain(a->tcb_info_chain, "TCB Info", "TCB-Info-Issuer-Chain",
			    "tcb_info_issuer_chain", j, err);
	if (ret == 0)
		ret = signed_doc(&a->qe_identity, "QE Identity", "enclaveIdentity", "qe_identity",
				 "qe_identity_signature", j, err);
	if (ret == 0)
		ret = chain(a->qe_identity_chain, "QE Identity", "SGX-Enclave-Identity-Issuer-Chain",
			    "qe_identity_issuer_chain", j, err);
	if (ret < 0) {
		json_decref(j);
		return ret;
	}
	*out = j;
	return 0;
}
