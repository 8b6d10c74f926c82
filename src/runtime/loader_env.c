/* kiln runtime: the environment variables that make the dynamic loader, libc
 * or a library load code or change how code is loaded (see runtime.h). In an
 * attested run they would let whoever starts `kiln run` put code into the
 * process before main (LD_PRELOAD of a memfd, LD_AUDIT, a trojan libc through
 * LD_LIBRARY_PATH, an OpenSSL provider through OPENSSL_CONF), so the launcher
 * drops them (docs/runtime.md "Attested mode and the launcher's environment").
 *
 * The list: every LD_* the loader reads (ld.so(8), and those it ignores today
 * are dropped too, so a new one is covered), glibc's own list of variables
 * unsafe for setuid programs (sysdeps/generic/unsecvars.h: GCONV_PATH,
 * GETCONF_DIR, GLIBC_TUNABLES, HOSTALIASES, LOCALDOMAIN, LOCPATH, MALLOC_*,
 * NIS_PATH, NLSPATH, RESOLV_HOST_CONF, RES_OPTIONS, TMPDIR, TZDIR), and
 * OpenSSL's OPENSSL_CONF/OPENSSL_MODULES/OPENSSL_ENGINES, which name modules
 * it loads. Nothing is lost for the program: under attestation its main()
 * receives the policy's environment, not the launcher's. */
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"

static const char *const loader_prefixes[] = { "LD_", "MALLOC_" };
static const char *const loader_names[] = {
	"GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN",
	"LOCPATH", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR",
	"TZDIR", "OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_ENGINES",
};

bool rt_env_is_loader(const char *name, size_t len)
{
	for (size_t i = 0; i < KILN_ARRAY_SIZE(loader_prefixes); i++) {
		size_t n = strlen(loader_prefixes[i]);

		if (len > n && memcmp(name, loader_prefixes[i], n) == 0)
			return true;
	}
	for (size_t i = 0; i < KILN_ARRAY_SIZE(loader_names); i++)
		if (strlen(loader_names[i]) == len && memcmp(name, loader_names[i], len) == 0)
			return true;
	return false;
}

extern char **environ;

/* Entry i goes: the rest of the block moves down, as glibc's unsetenv does. */
static void env_remove_at(size_t i)
{
	for (size_t j = i; environ[j]; j++)
		environ[j] = environ[j + 1];
}

void rt_env_drop(const char *name)
{
	size_t len = strlen(name), i = 0;

	while (environ && environ[i]) {
		if (strncmp(environ[i], name, len) == 0 &&
		    (environ[i][len] == '=' || environ[i][len] == '\0'))
			env_remove_at(i);
		else
			i++;
	}
}

int rt_env_drop_loader(char *dropped, size_t size)
{
	size_t i = 0;
	int count = 0;

	if (size)
		dropped[0] = '\0';
	while (environ && environ[i]) {
		const char *e = environ[i], *eq = strchr(e, '=');
		size_t len = eq ? (size_t)(eq - e) : strlen(e);
		size_t used = size ? strlen(dropped) : 0;

		if (!rt_env_is_loader(e, len)) {
			i++;
			continue;
		}
		if (size && used + len + 3 < size)
			snprintf(dropped + used, size - used, "%s%.*s", used ? ", " : "", (int)len, e);
		/* Every entry goes, duplicates and entries without '=' included
		 * (unsetenv would need the name alone). */
		env_remove_at(i);
		count++;
	}
	return count;
}
