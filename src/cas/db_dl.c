/* The SQL drivers' client libraries (libsqlite3, libpq), loaded when a store
 * is first opened rather than linked: every command of the kiln binary,
 * `kiln run` first, would otherwise map them (libpq brings Kerberos, LDAP and
 * GnuTLS, whose constructors run at every start) before main.
 * docs/runtime.md ("Start-up cost of kiln run"). */
#include "cas/db_driver.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

static pthread_mutex_t g_dl_lock = PTHREAD_MUTEX_INITIALIZER;

int cas__db_dl_bind(const char *soname, const char *const *names, void **fns, size_t n,
		    bool *bound, struct kiln_err *err)
{
	void *h;
	int ret = 0;

	pthread_mutex_lock(&g_dl_lock);
	if (*bound)
		goto out;
	h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();

		ret = kiln_err_set(err, -ENOENT, "cannot load %s (%s): install it", soname,
				   why ? why : "not found");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		fns[i] = dlsym(h, names[i]);
		if (!fns[i]) {
			ret = kiln_err_set(err, -ENOENT, "%s has no %s: a library too old", soname,
					   names[i]);
			/* The handle stays: some pointers may be filled already. */
			goto out;
		}
	}
	*bound = true;
out:
	pthread_mutex_unlock(&g_dl_lock);
	return ret;
}
