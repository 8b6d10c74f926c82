/* kiln runtime: build without the protected-files library. Volumes cannot be
 * mounted; every call passes through. Used only until src/pf/ is built. */
#include <errno.h>

#include "runtime/rt_int.h"

int rt_own_fd(int fd)
{
	return fd;
}

void rt_own_close(int fd)
{
}

int rt_shield_init(struct kiln_err *err)
{
	return kiln_err_set(err, -ENOTSUP, "this libkiln was built without src/pf: "
			    "volumes are not available");
}

bool rt_shield_touches(long nr, const struct rt_syscall *s, const long a[6])
{
	return false;
}

long rt_shield_call(long nr, const long a[6])
{
	return -ENOTSUP;
}

void rt_shield_describe(long nr, const struct rt_syscall *s, const long a[6], char *out,
			size_t out_size)
{
	out[0] = '\0';
}

void rt_shield_exit(void)
{
}

void rt_shield_after_fork(void)
{
}

void rt_shield_before_fork(void)
{
}

void rt_shield_parent_after_fork(void)
{
}

bool rt_vcwd_on(void)
{
	return false;
}

int rt_vcwd_abs(const char *path, char *out, size_t out_size)
{
	return -EINVAL;
}

void rt_vcwd_get(char *out, size_t out_size)
{
	out[0] = '\0';
}

int rt_shield_add_file(const char *path, const void *data, size_t size, mode_t mode)
{
	return -ENOTSUP;
}
