/* Intel DCAP quote parser: versions 3 (SGX), 4 (SGX or TDX 1.0) and 5 (body descriptor,
 * TDX 1.0/1.5 or SGX). Layouts: Intel "SGX/TDX DCAP Quoting Library API", appendix A.
 *
 * Every read goes through a cursor that checks the remaining size first, so a short or
 * lying input ends in -KILN_ETRUNC naming the field and its offset, never in a read
 * past the buffer. */
#include "evidence/dcap.h"

#include <string.h>

struct cursor {
	const uint8_t *data;
	size_t size;
	size_t off;
	struct kiln_err *err;
};

static int take(struct cursor *c, size_t n, const char *field, const uint8_t **out)
{
	if (c->size - c->off < n)
		return kiln_err_set(c->err, -KILN_ETRUNC,
				    "quote truncated in %s: needs %zu bytes at offset %zu, "
				    "%zu left", field, n, c->off, c->size - c->off);
	*out = c->data + c->off;
	c->off += n;
	return 0;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static int take16(struct cursor *c, const char *field, uint16_t *v)
{
	const uint8_t *p = NULL;
	int r = take(c, 2, field, &p);

	if (r == 0)
		*v = le16(p);
	return r;
}

static int take32(struct cursor *c, const char *field, uint32_t *v)
{
	const uint8_t *p = NULL;
	int r = take(c, 4, field, &p);

	if (r == 0)
		*v = le32(p);
	return r;
}

/* QE report, its signature, QE auth data and the inner type-5 PCK chain. `end` is
 * where this certification data must end (exclusive). */
static int parse_qe_part(struct cursor *c, size_t end, struct ev_dcap_quote *q)
{
	uint16_t cert_type;
	uint32_t cert_size;
	const uint8_t *p = NULL;
	size_t at;
	int r;

	if ((r = take(c, EV_DCAP_QE_REPORT_SIZE, "QE report", &q->qe_report)) ||
	    (r = take(c, EV_DCAP_SIG_SIZE, "QE report signature", &q->qe_report_sig)) ||
	    (r = take16(c, "QE auth data size", &q->qe_auth_size)) ||
	    (r = take(c, q->qe_auth_size, "QE auth data", &q->qe_auth)))
		return r;
	at = c->off;
	if ((r = take16(c, "certification data type", &cert_type)) ||
	    (r = take32(c, "certification data size", &cert_size)))
		return r;
	if (cert_type != EV_DCAP_CERT_PCK_CHAIN)
		return kiln_err_set(c->err, -KILN_EFORMAT,
				    "quote certification data type at offset %zu: expected %d "
				    "(PCK certificate chain), found %u", at, EV_DCAP_CERT_PCK_CHAIN,
				    cert_type);
	q->pck_pem_off = c->off;
	if ((r = take(c, cert_size, "PCK certificate chain", &p)))
		return r;
	q->pck_pem = (const char *)p;
	q->pck_pem_size = cert_size;
	if (c->off != end)
		return kiln_err_set(c->err, -KILN_EFORMAT,
				    "quote certification data ends at offset %zu but its "
				    "enclosing size says %zu", c->off, end);
	return 0;
}

/* The signature data: quote signature, attestation key, then (v3) the QE part or
 * (v4/v5) the type-6 certification data wrapping it. Parsed inside [c->off, end) so
 * nothing it claims can reach the bytes after it. */
static int parse_sig_data(struct cursor *c, size_t end, struct ev_dcap_quote *q)
{
	int r;

	c->size = end;
	if ((r = take(c, EV_DCAP_SIG_SIZE, "quote signature", &q->signature)) ||
	    (r = take(c, EV_DCAP_KEY_SIZE, "attestation key", &q->att_key)))
		return r;
	if (q->version == 3) {
		r = parse_qe_part(c, end, q);
	} else {
		uint16_t outer_type;
		uint32_t outer_size;
		size_t at = c->off;

		if ((r = take16(c, "outer certification data type", &outer_type)) ||
		    (r = take32(c, "outer certification data size", &outer_size)))
			return r;
		if (outer_type != EV_DCAP_CERT_QE_REPORT)
			return kiln_err_set(c->err, -KILN_EFORMAT,
					    "quote outer certification data type at offset %zu: "
					    "expected 6 (QE report certification data), found %u",
					    at, outer_type);
		if (outer_size > end - c->off)
			return kiln_err_set(c->err, -KILN_ETRUNC,
					    "quote truncated in QE report certification data: "
					    "size says %u bytes at offset %zu, %zu left",
					    outer_size, c->off, end - c->off);
		r = parse_qe_part(c, c->off + outer_size, q);
	}
	if (r)
		return r;
	if (c->off != end)
		return kiln_err_set(c->err, -KILN_EFORMAT,
				    "quote signature data: %zu unused bytes before offset %zu",
				    end - c->off, end);
	return 0;
}

int ev_dcap_quote_parse(const uint8_t *data, size_t size, struct ev_dcap_quote *q,
			struct kiln_err *err)
{
	struct cursor c = {.data = data, .size = size, .off = 0, .err = err};
	uint32_t body_size32;
	size_t sig_end;
	int r;

	memset(q, 0, sizeof(*q));
	if ((r = take(&c, EV_DCAP_HEADER_SIZE, "header", &q->header)))
		return r;
	q->version = le16(q->header);
	q->att_key_type = le16(q->header + 2);
	q->tee_type = le32(q->header + 4);
	if (q->version < 3 || q->version > 5)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "quote header version at offset 0: expected 3, 4 or 5, "
				    "found %u", q->version);
	if (q->att_key_type != EV_DCAP_ATT_KEY_ECDSA_P256)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "quote header attestation key type at offset 2: expected 2 "
				    "(ECDSA-256 P-256), found %u", q->att_key_type);
	if (q->tee_type != EV_DCAP_TEE_SGX && q->tee_type != EV_DCAP_TEE_TDX)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "quote header TEE type at offset 4: expected 0x0 (SGX) or "
				    "0x81 (TDX), found 0x%x", q->tee_type);
	if (q->version == 3 && q->tee_type != EV_DCAP_TEE_SGX)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "quote version 3 carries only SGX, header TEE type is 0x%x",
				    q->tee_type);

	if (q->version == 5) {
		if ((r = take16(&c, "body type", &q->body_type)) ||
		    (r = take32(&c, "body size", &body_size32)))
			return r;
		static const size_t sizes[] = {0, EV_DCAP_SGX_BODY_SIZE, EV_DCAP_TD10_BODY_SIZE,
					       EV_DCAP_TD15_BODY_SIZE};
		if (q->body_type < 1 || q->body_type > 3)
			return kiln_err_set(err, -KILN_EFORMAT,
					    "quote body type at offset 48: expected 1, 2 or 3, "
					    "found %u", q->body_type);
		if (body_size32 != sizes[q->body_type])
			return kiln_err_set(err, -KILN_EFORMAT,
					    "quote body size at offset 50: body type %u needs %zu, "
					    "found %u", q->body_type, sizes[q->body_type],
					    body_size32);
		if ((q->body_type == 1) != (q->tee_type == EV_DCAP_TEE_SGX))
			return kiln_err_set(err, -KILN_EFORMAT,
					    "quote body type %u does not match header TEE type "
					    "0x%x", q->body_type, q->tee_type);
		q->body_size = body_size32;
	} else if (q->tee_type == EV_DCAP_TEE_SGX) {
		q->body_type = 1;
		q->body_size = EV_DCAP_SGX_BODY_SIZE;
	} else {
		q->body_type = 2;
		q->body_size = EV_DCAP_TD10_BODY_SIZE;
	}
	q->body_off = c.off;
	if ((r = take(&c, q->body_size, "report body", &q->body)))
		return r;
	q->signed_size = c.off;
	if ((r = take32(&c, "signature data size", &q->sig_data_size)))
		return r;
	q->sig_data_off = c.off;
	if (q->sig_data_size > size - c.off) {
		/* Name the field the file ends in, not only the outer size. */
		struct kiln_err inner = {0};
		struct ev_dcap_quote probe = *q;
		struct cursor pc = {.data = data, .size = size, .off = c.off, .err = &inner};

		r = parse_sig_data(&pc, size, &probe);
		return kiln_err_set(err, -KILN_ETRUNC,
				    "quote truncated: signature data size at offset %zu says %u "
				    "bytes, %zu left%s%s", q->signed_size, q->sig_data_size,
				    size - c.off, r == -KILN_ETRUNC ? "; " : "",
				    r == -KILN_ETRUNC ? inner.msg : "");
	}
	sig_end = c.off + q->sig_data_size;
	if ((r = parse_sig_data(&c, sig_end, q)))
		return r;
	q->trailing = size - sig_end;
	return 0;
}
