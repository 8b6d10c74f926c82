/* Error codes and messages. */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

static const char *const g_kiln_errs[] = {
	[KILN_EAUTH - KILN_EBASE] = "authentication failed (data corrupt or tampered)",
	[KILN_EKEY - KILN_EBASE] = "wrong key",
	[KILN_EROLLBACK - KILN_EBASE] = "rolled back to an older state",
	[KILN_EFORMAT - KILN_EBASE] = "malformed input",
	[KILN_ETRUNC - KILN_EBASE] = "input truncated",
	[KILN_ETRAILING - KILN_EBASE] = "unexpected trailing bytes",
	[KILN_ESIG - KILN_EBASE] = "signature does not verify",
	[KILN_ECHAIN - KILN_EBASE] = "certificate chain does not verify",
	[KILN_EROOT - KILN_EBASE] = "untrusted root certificate",
	[KILN_EEXPIRED - KILN_EBASE] = "outside validity period",
	[KILN_EREVOKED - KILN_EBASE] = "certificate revoked",
	[KILN_ETCB - KILN_EBASE] = "TCB level not supported",
	[KILN_EPOLICY - KILN_EBASE] = "refused by policy",
	[KILN_EMEASUREMENT - KILN_EBASE] = "measurement not allowed",
	[KILN_ENONCE - KILN_EBASE] = "nonce unknown, used or expired",
	[KILN_EBINDING - KILN_EBASE] = "evidence not bound to this channel",
	[KILN_ECONFLICT - KILN_EBASE] = "conflicting update (predecessor mismatch)",
	[KILN_EDENIED - KILN_EBASE] = "access denied",
	[KILN_EINSECURE - KILN_EBASE] = "insecure backend not allowed",
	[KILN_ECRYPTO - KILN_EBASE] = "cryptographic library failure",
	[KILN_ECORRUPT - KILN_EBASE] = "inconsistent structure",
	[KILN_EUNMEASURED - KILN_EBASE] = "code that cannot be measured",
	[KILN_EUNSAFE - KILN_EBASE] = "a symbolic link, directory or special file where kiln "
				      "keeps a regular file of its own (planted?): refused",
};

const char *kiln_strerror(int code)
{
	if (code < 0)
		code = -code;
	if (code > KILN_EBASE && code < KILN_ELAST && g_kiln_errs[code - KILN_EBASE])
		return g_kiln_errs[code - KILN_EBASE];
	if (code == 0)
		return "success";
	/* strerror() is not thread-safe in theory; glibc's returns static strings
	 * for known values, which is all we pass. */
	return strerror(code);
}

static const char g_truncated[] = "... (truncated)";

void kiln_mark_truncated(char *buf, size_t size)
{
	if (size > sizeof(g_truncated))
		memcpy(buf + size - sizeof(g_truncated), g_truncated, sizeof(g_truncated));
}

int kiln_err_set(struct kiln_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	/* A message naming hostile input (a 70,000-character path) says it was cut. */
	if (n >= (int)sizeof(e->msg))
		kiln_mark_truncated(e->msg, sizeof(e->msg));
	return code;
}

void kiln_err_prefix(struct kiln_err *e, const char *fmt, ...)
{
	char prefix[256];
	char old[sizeof(e->msg)];
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	if (vsnprintf(prefix, sizeof(prefix), fmt, ap) >= (int)sizeof(prefix))
		kiln_mark_truncated(prefix, sizeof(prefix));
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	if (!old[0])
		snprintf(old, sizeof(old), "%s", kiln_strerror(e->code));
	/* Truncation is acceptable (messages are one line for a human), and said. */
	size_t n = strnlen(prefix, sizeof(e->msg) - 1);
	memcpy(e->msg, prefix, n);
	if (snprintf(e->msg + n, sizeof(e->msg) - n, "%s", old) >= (int)(sizeof(e->msg) - n))
		kiln_mark_truncated(e->msg, sizeof(e->msg));
}

const char *kiln_err_msg(const struct kiln_err *e, int code)
{
	if (e && e->msg[0])
		return e->msg;
	return kiln_strerror(code);
}
