/* AMD SEV-SNP formats: the attestation report (layout, bounds, reserved
 * fields, the TCB encodings) and the certificate table that configfs-tsm's
 * auxblob or SNP_GET_EXT_REPORT appends. Parsing only: snp_verify.c checks
 * what the fields say. */
#include "evidence/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- report layout ---------------------------------------------------------------- */

struct snp_field {
	const char *name;
	uint32_t off, size;
};

/* Every field in file order, so a truncated report names the first field it cuts. */
static const struct snp_field g_fields[] = {
	{ "version", 0x000, 4 },          { "guest_svn", 0x004, 4 },
	{ "policy", 0x008, 8 },           { "family_id", 0x010, 16 },
	{ "image_id", 0x020, 16 },        { "vmpl", 0x030, 4 },
	{ "signature_algo", 0x034, 4 },   { "current_tcb", 0x038, 8 },
	{ "platform_info", 0x040, 8 },    { "flags", 0x048, 4 },
	{ "reserved0", 0x04C, 4 },        { "report_data", 0x050, 64 },
	{ "measurement", 0x090, 48 },     { "host_data", 0x0C0, 32 },
	{ "id_key_digest", 0x0E0, 48 },   { "author_key_digest", 0x110, 48 },
	{ "report_id", 0x140, 32 },       { "report_id_ma", 0x160, 32 },
	{ "reported_tcb", 0x180, 8 },     { "cpuid/reserved1", 0x188, 24 },
	{ "chip_id", 0x1A0, 64 },         { "committed_tcb", 0x1E0, 8 },
	{ "current_version", 0x1E8, 4 },  { "committed_version", 0x1EC, 4 },
	{ "launch_tcb", 0x1F0, 8 },       { "reserved2", 0x1F8, 0xA8 },
	{ "signature.r", 0x2A0, 72 },     { "signature.s", 0x2E8, 72 },
	{ "signature.reserved", 0x330, 0x170 },
};


static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

bool ev__all_zero(const uint8_t *p, size_t size)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < size; i++)
		acc |= p[i];
	return acc == 0;
}

int ev_snp_report_parse(const uint8_t *buf, size_t size, struct ev_snp_report *r,
			struct kiln_err *err)
{
	memset(r, 0, sizeof(*r));
	if (size < EV_SNP_REPORT_SIZE) {
		for (size_t i = 0; i < KILN_ARRAY_SIZE(g_fields); i++) {
			const struct snp_field *f = &g_fields[i];

			if ((size_t)f->off + f->size > size)
				return kiln_err_set(err, -KILN_ETRUNC,
						    "SNP report truncated at %zu bytes: field "
						    "'%s' (0x%x..0x%x) is incomplete; a report is "
						    "%d bytes",
						    size, f->name, f->off, f->off + f->size,
						    EV_SNP_REPORT_SIZE);
		}
	}
	if (size > EV_SNP_REPORT_SIZE)
		return kiln_err_set(err, -KILN_ETRAILING,
				    "SNP report: %zu unexpected bytes after the %d-byte report",
				    size - EV_SNP_REPORT_SIZE, EV_SNP_REPORT_SIZE);

	r->version = le32(buf + 0x000);
	if (r->version < 2 || r->version > 5)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'version' is %u, supported versions are 2-5",
				    r->version);
	r->guest_svn = le32(buf + 0x004);
	r->policy = le64(buf + 0x008);
	r->family_id = buf + 0x010;
	r->image_id = buf + 0x020;
	r->vmpl = le32(buf + 0x030);
	r->signature_algo = le32(buf + 0x034);
	r->current_tcb = le64(buf + 0x038);
	r->platform_info = le64(buf + 0x040);
	r->flags = le32(buf + 0x048);
	r->report_data = buf + 0x050;
	r->measurement = buf + 0x090;
	r->host_data = buf + 0x0C0;
	r->id_key_digest = buf + 0x0E0;
	r->author_key_digest = buf + 0x110;
	r->report_id = buf + 0x140;
	r->report_id_ma = buf + 0x160;
	r->reported_tcb = le64(buf + 0x180);
	if (r->version >= 3) {
		r->cpuid_fam_id = buf[0x188];
		r->cpuid_mod_id = buf[0x189];
		r->cpuid_step = buf[0x18A];
	}
	r->chip_id = buf + 0x1A0;
	r->committed_tcb = le64(buf + 0x1E0);
	r->current_build = buf[0x1E8];
	r->current_minor = buf[0x1E9];
	r->current_major = buf[0x1EA];
	r->committed_build = buf[0x1EC];
	r->committed_minor = buf[0x1ED];
	r->committed_major = buf[0x1EE];
	r->launch_tcb = le64(buf + 0x1F0);
	r->sig_r = buf + 0x2A0;
	r->sig_s = buf + 0x2E8;

	if (r->vmpl > 3)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'vmpl' is %u, expected 0-3", r->vmpl);
	if (r->signature_algo != 1)
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature_algo' is %u, expected 1 "
				    "(ECDSA P-384 with SHA-384)", r->signature_algo);
	switch ((r->flags >> 2) & 7) {
	case EV_SNP_KEY_VCEK:
		r->signing_key = EV_SNP_KEY_VCEK;
		break;
	case EV_SNP_KEY_VLEK:
		r->signing_key = EV_SNP_KEY_VLEK;
		break;
	case EV_SNP_KEY_NONE:
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'flags' says the report is not signed "
				    "(signing key 7 = none)");
	default:
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'flags' names unknown signing key %u "
				    "(expected 0 VCEK or 1 VLEK)", (r->flags >> 2) & 7);
	}
	/* P-384 values fill 48 of the 72 bytes; the rest and the reserved tail are
	 * outside the signed region, so anything there is refused rather than ignored. */
	if (!ev__all_zero(r->sig_r + EV__SNP_P384_SIZE, EV__SNP_SIG_COMPONENT_SIZE - EV__SNP_P384_SIZE))
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature.r' bytes 48-71 are not zero "
				    "(P-384 uses 48 bytes)");
	if (!ev__all_zero(r->sig_s + EV__SNP_P384_SIZE, EV__SNP_SIG_COMPONENT_SIZE - EV__SNP_P384_SIZE))
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature.s' bytes 48-71 are not zero "
				    "(P-384 uses 48 bytes)");
	if (!ev__all_zero(buf + 0x330, EV_SNP_REPORT_SIZE - 0x330))
		return kiln_err_set(err, -KILN_EFORMAT,
				    "SNP report: field 'signature.reserved' (0x330..0x4a0) is not "
				    "zero");
	return 0;
}

void ev_snp_tcb_decode(uint64_t raw, bool turin, struct ev_snp_tcb *out)
{
	memset(out, 0, sizeof(*out));
	if (turin) {
		out->fmc = (uint8_t)raw;
		out->bootloader = (uint8_t)(raw >> 8);
		out->tee = (uint8_t)(raw >> 16);
		out->snp = (uint8_t)(raw >> 24);
	} else {
		out->bootloader = (uint8_t)raw;
		out->tee = (uint8_t)(raw >> 8);
		out->snp = (uint8_t)(raw >> 48);
	}
	out->microcode = (uint8_t)(raw >> 56);
}

/* ---- certificate table (auxblob / SNP_GET_EXT_REPORT) ----------------------------- */

/* GUIDs of the GHCB certificate table, in RFC 4122 byte order. The kernel passes the
 * host's table through unchanged and hosts differ in byte order, so the mixed-endian
 * (Microsoft GUID) order is accepted too. */
static const struct {
	const char *name;
	uint8_t guid[16];
} g_cert_guids[] = {
	{ "VCEK", { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
		    0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd } },
	{ "VLEK", { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
		    0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1 } },
	{ "ASK", { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
		   0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 } },
	{ "ARK", { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
		   0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae } },
};

static bool guid_known(const uint8_t *g)
{
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_cert_guids); i++) {
		const uint8_t *k = g_cert_guids[i].guid;
		uint8_t mixed[16] = { k[3], k[2], k[1], k[0], k[5], k[4], k[7], k[6] };

		memcpy(mixed + 8, k + 8, 8);
		if (memcmp(g, k, 16) == 0 || memcmp(g, mixed, 16) == 0)
			return true;
	}
	return false;
}

#define SNP_CERT_ENTRY_SIZE 24
#define SNP_CERT_MAX 16

int ev_snp_cert_table_parse(const uint8_t *buf, size_t size, uint8_t ***ders, size_t **sizes,
			    size_t *n, struct kiln_err *err)
{
	uint8_t **d = NULL;
	size_t *s = NULL, count = 0, i;
	int ret = -KILN_EFORMAT;

	*ders = NULL;
	*sizes = NULL;
	*n = 0;
	d = calloc(SNP_CERT_MAX, sizeof(*d));
	s = calloc(SNP_CERT_MAX, sizeof(*s));
	if (!d || !s) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0;; i++) {
		size_t at = i * SNP_CERT_ENTRY_SIZE;
		uint32_t off, len;

		if (at + SNP_CERT_ENTRY_SIZE > size) {
			kiln_err_set(err, ret, "SNP certificate table: entry %zu is cut off "
				     "(no all-zero terminator in %zu bytes)", i, size);
			goto out;
		}
		if (ev__all_zero(buf + at, SNP_CERT_ENTRY_SIZE))
			break;
		if (i >= SNP_CERT_MAX) {
			kiln_err_set(err, ret, "SNP certificate table: more than %d entries",
				     SNP_CERT_MAX);
			goto out;
		}
		off = le32(buf + at + 16);
		len = le32(buf + at + 20);
		if (len == 0 || off > size || len > size - off ||
		    off < (i + 1) * SNP_CERT_ENTRY_SIZE) {
			kiln_err_set(err, ret, "SNP certificate table: entry %zu (offset %u, "
				     "length %u) lies outside the %zu-byte table", i, off, len,
				     size);
			goto out;
		}
		if (!guid_known(buf + at))
			continue; /* other providers' blobs (e.g. a CRL) are not ours to judge */
		d[count] = malloc(len);
		if (!d[count]) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(d[count], buf + off, len);
		s[count++] = len;
	}
	*ders = d;
	*sizes = s;
	*n = count;
	d = NULL;
	s = NULL;
	ret = 0;
out:
	if (d)
		for (i = 0; i < count; i++)
			free(d[i]);
	free(d);
	free(s);
	return ret;
}
