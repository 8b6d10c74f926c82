/* Attestation decisions over normalized evidence claims: a service's own
 * (pol_decide) and an exporter's, for a secret it exports (pol_decide_export).
 * Access decisions are in access.c. */
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include "policy/internal.h"

int pol__refuse(char *reason, size_t reason_size, const char **label, const char *lab,
		int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (reason && reason_size)
		vsnprintf(reason, reason_size, fmt, ap);
	va_end(ap);
	if (label)
		*label = lab;
	return code;
}

static void tee_list(unsigned bits, char *out, size_t size)
{
	out[0] = '\0';
	for (unsigned i = 0; i < 5; i++) {
		if (!(bits & (1u << i)))
			continue;
		if (out[0])
			strncat(out, ", ", size - strlen(out) - 1);
		strncat(out, pol__tee_name(i), size - strlen(out) - 1);
	}
}

int pol_decide_security(const struct pol_policy *p, const json_t *claims, int64_t now,
			char *reason, size_t reason_size, const char **label)
{
	const char *tee = json_string_value(json_object_get(claims, "tee"));
	const struct pol_tolerance *used;
	unsigned tee_bit = 0;
	bool insecure, debug;
	char list[64];

	if (label)
		*label = NULL;
	if (reason && reason_size)
		reason[0] = '\0';
	if (!tee)
		return pol__refuse(reason, reason_size, label, "bad_claims", -KILN_EPOLICY,
				   "claims lack 'tee'");
	for (unsigned i = 0; i < 5; i++)
		if (!strcmp(pol__tee_name(i), tee))
			tee_bit = 1u << i;
	tee_list(p->tee, list, sizeof(list));
	if (!(p->tee & tee_bit))
		return pol__refuse(reason, reason_size, label, "tee_not_allowed", -KILN_EPOLICY,
				   "tee \"%s\" not in security.tee [%s]", tee, list);
	insecure = json_is_true(json_object_get(claims, "insecure")) || tee_bit == POL_TEE_SIM;
	if (insecure && !p->allow_insecure_sim)
		return pol__refuse(reason, reason_size, label, "sim_not_allowed", -KILN_EINSECURE,
				   "insecure tee \"%s\" (sim) not allowed: "
				   "security.allow_insecure_sim is false", tee);
	/* sim is debuggable by construction; opting into it covers that. */
	debug = json_is_true(json_object_get(claims, "debug"));
	if (debug && !insecure && !(p->tolerate & POL_TOL_DEBUG))
		return pol__refuse(reason, reason_size, label, "debug_not_tolerated", -KILN_EPOLICY,
				   "claims.debug is true and security.tolerate lacks 'debug'");
	return pol__decide_tcb(p, claims, now, &used, reason, reason_size, label);
}

/* The claims' workload measurement (or, when the backend carries none, the
 * platform measurement) must be in list; `what` names the list in the reason. */
static int match_measurement(char *const *list, size_t n, const json_t *claims,
			     const char *what, char *reason, size_t reason_size,
			     const char **label)
{
	const char *which = "workload_measurement";
	const char *meas = json_string_value(json_object_get(claims, which));

	if (!meas) {
		which = "platform_measurement";
		meas = json_string_value(json_object_get(claims, which));
	}
	if (!meas)
		return pol__refuse(reason, reason_size, label, "wrong_measurement",
				   -KILN_EMEASUREMENT, "claims carry no workload_measurement or "
				   "platform_measurement");
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(list[i], meas))
			return 0;
	return pol__refuse(reason, reason_size, label, "wrong_measurement",
			   -KILN_EMEASUREMENT, "claims.%s %.96s not in %s", which, meas, what);
}

/* With measurement [any], any build of the service's program may run, but only
 * that program: when the claims name the executable (host evidence: the path
 * kiln-las read from /proc/PID/exe), it must be command[0]. The runtime checks
 * it too, but a workload that attests is not to be trusted with the check. */
static int check_program(const struct pol_service *svc, const json_t *claims, char *reason,
			 size_t reason_size, const char **label)
{
	const char *exe = json_string_value(json_object_get(claims, "exe"));
	const char *cmd = svc->n_command ? svc->command[0] : "";

	if (!exe)
		return 0; /* the backend does not name the program (sim, sgx, tdx, snp) */
	if (strstr(cmd, "{{"))
		return pol__refuse(reason, reason_size, label, "wrong_program",
				   -KILN_EMEASUREMENT, "service '%s' command[0] is a template, "
				   "so the program claims.exe %.200s cannot be checked: write the "
				   "path, or pin measurements", svc->name, exe);
	if (strcmp(exe, cmd))
		return pol__refuse(reason, reason_size, label, "wrong_program",
				   -KILN_EMEASUREMENT, "claims.exe %.200s is not service '%s' "
				   "command[0] %.200s (measurement [any] admits any build of that "
				   "program, not another one)", exe, svc->name, cmd);
	return 0;
}

int pol_decide(const struct pol_policy *p, const struct pol_service *svc, const json_t *claims,
	       int64_t now, char *reason, size_t reason_size, const char **label)
{
	char what[120];
	int ret;

	ret = pol_decide_security(p, claims, now, reason, reason_size, label);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < svc->n_measurement; i++)
		if (!strcmp(svc->measurement[i], "any"))
			return check_program(svc, claims, reason, reason_size, label);
	snprintf(what, sizeof(what), "service '%s' measurement", svc->name);
	return match_measurement(svc->measurement, svc->n_measurement, claims, what, reason,
				 reason_size, label);
}

int pol_decide_export(const struct pol_policy *exporter, const struct pol_export *ex,
		      const json_t *claims, int64_t now, char *reason, size_t reason_size,
		      const char **label)
{
	char sub[400], what[200];
	int ret;

	ret = pol_decide_security(exporter, claims, now, sub, sizeof(sub), label);
	if (ret == 0 && ex->n_measurement) {
		snprintf(what, sizeof(what), "the measurement of its export to '%s'",
			 ex->session);
		ret = match_measurement(ex->measurement, ex->n_measurement, claims, what, sub,
					sizeof(sub), label);
	}
	if (ret < 0) {
		if (label)
			*label = "export_refused";
		pol__refuse(reason, reason_size, NULL, NULL, ret,
			    "exporting policy '%s' refuses: %s", exporter->name, sub);
	}
	return ret;
}
