/* kiln runtime: build without the evidence and CAS client modules: kiln run
 * refuses --cas through the runtime's configuration check below. */
#include <errno.h>

#include "runtime/rt_int.h"

int rt_attest(struct kiln_err *err)
{
	return kiln_err_set(err, -ENOTSUP, "this libkiln was built without attestation");
}

int rt_attest_apply_early(struct kiln_err *err)
{
	return -ENOTSUP;
}

int rt_attest_apply_late(struct kiln_err *err)
{
	return -ENOTSUP;
}

bool rt_attest_argv(int *argc, char ***argv, char ***env)
{
	return false;
}

int rt_fresh_cas(const struct rt_volume_cfg *c, const struct pf_freshness_ops **ops, void **ctx)
{
	return -ENOTSUP;
}

void rt_measure_only(void)
{
}
