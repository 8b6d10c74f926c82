/* kiln runtime: what the static loader attests (`kiln run --static=loader
 * --cas`, docs/runtime.md "The static loader", "Measurement").
 *
 * libkiln's constructor opens the program once (rt__sload_open). That one
 * descriptor is measured (its exe line only: a static program maps no other
 * file, so `kiln measure -- STATIC` and a pinned policy give the same value
 * as under the supervisor), passed to kiln-las for host, compared with the
 * policy's command, and mapped by kiln_sload_main: the file is never opened
 * by path again, so nothing can swap it in between.
 *
 * The rest of the process is the runtime, which that measurement does not
 * cover, so it is checked here as the supervisor checks itself before it
 * receives a secret (rt__sload_measure): no loader variable in kiln-sload's
 * environment but the LD_PRELOAD of libkiln itself; no memfd, anonymous code,
 * written code page or tracer (ev_workload_measure_pid); and every loaded
 * object is kiln-sload, libkiln, the vdso, or a shared object one of them
 * needs (libc, ld.so, and what they need), by DT_NEEDED from kiln-sload and
 * libkiln; every executable file mapping lies in one of those objects. An
 * LD_PRELOAD or LD_AUDIT library is needed by none, and is refused by name.
 *
 * Compiled into both libkiln builds (start.c calls it), run by glibc's only:
 * kiln-sload is a glibc program. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence/evidence.h"
#include "runtime/sload.h"

int g_rt_sload_fd = -1;
int g_rt_sload_errno;

/* kiln-sload PROGRAM ARGV0 ...: PROGRAM from this process's command line (the
 * constructor runs before main has its argv). */
void rt__sload_open(void)
{
	char buf[2 * 4096 + 64];
	/* One read gives the whole command line (the kernel copies up to the
	 * size asked); a longer one fills buf and is refused below. */
	ssize_t n = kiln_read_proc(getpid(), "cmdline", buf, sizeof(buf));
	size_t len = n > 0 ? (size_t)n : 0;
	const char *prog;

	g_rt_sload_errno = ENOENT;
	if (n <= 0)
		return;
	prog = buf + strlen(buf) + 1;
	/* No PROGRAM: kiln_sload_main says how it is used. A command line
	 * longer than buf (never from kiln run) is refused rather than cut. */
	if (prog >= buf + len || prog + strlen(prog) >= buf + len) {
		g_rt_sload_errno = prog >= buf + len ? ENOENT : ENAMETOOLONG;
		return;
	}
	/* Absolute: an exec of /proc/self/exe (busybox's applets) means this
	 * program, whatever the working directory is by then. */
	if (!realpath(prog, g_rt_sload_path)) {
		g_rt_sload_errno = errno;
		return;
	}
	g_rt_sload_fd = open(g_rt_sload_path, O_RDONLY | O_CLOEXEC);
	g_rt_sload_errno = g_rt_sload_fd < 0 ? errno : 0;
}

/* Launched as kiln run launches it: the only loader variable is LD_PRELOAD
 * naming libkiln alone (kiln run drops every other, docs/runtime.md). */
static int check_env(struct kiln_err *err)
{
	extern char **environ;
	struct stat lib, st;

	if (stat(g_rt.lib_path, &lib))
		return kiln_err_set(err, -errno, "%s: %s", g_rt.lib_path, kiln_strerror(errno));
	for (char **e = environ; e && *e; e++) {
		size_t len = strcspn(*e, "=");

		if (!rt_env_is_loader(*e, len))
			continue;
		if (len == 10 && strncmp(*e, "LD_PRELOAD", 10) == 0 && (*e)[10] == '=' &&
		    !strpbrk(*e + 11, ": \t") && stat(*e + 11, &st) == 0 &&
		    st.st_dev == lib.st_dev && st.st_ino == lib.st_ino)
			continue;
		return kiln_err_set(err, -KILN_EUNMEASURED, "kiln-sload was started with %.*s in "
				    "its environment (beside libkiln, it could load code that is "
				    "not checked; kiln run never passes it): refused", (int)len, *e);
	}
	return 0;
}

#define MAX_OBJS 64
#define MAX_NEEDED 32

struct obj {
	const char *name, *soname;
	const char *needed[MAX_NEEDED];
	size_t n_needed;
	uintptr_t lo, hi;
	bool ok;
};

struct objs {
	struct obj o[MAX_OBJS];
	size_t n;
	bool too_many;
};

static bool in_obj(const struct obj *o, uintptr_t p)
{
	return p >= o->lo && p < o->hi;
}

/* A DT_ address of the object: relocated by ld.so or not (glibc adjusts some
 * dynamic sections in place), whichever lies in the object. 0 when neither. */
static uintptr_t dyn_addr(const struct obj *o, uintptr_t base, uintptr_t v)
{
	if (in_obj(o, v))
		return v;
	if (in_obj(o, v + base))
		return v + base;
	return 0;
}

static int collect(struct dl_phdr_info *info, size_t size, void *ctx)
{
	struct objs *s = ctx;
	struct obj *o;
	const ElfW(Dyn) *dyn = NULL;
	uintptr_t strtab = 0;

	(void)size;
	if (s->n == MAX_OBJS) {
		s->too_many = true;
		return 1;
	}
	o = &s->o[s->n++];
	memset(o, 0, sizeof(*o));
	o->name = info->dlpi_name ? info->dlpi_name : "";
	o->lo = UINTPTR_MAX;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];

		if (p->p_type == PT_LOAD) {
			if (info->dlpi_addr + p->p_vaddr < o->lo)
				o->lo = info->dlpi_addr + p->p_vaddr;
			if (info->dlpi_addr + p->p_vaddr + p->p_memsz > o->hi)
				o->hi = info->dlpi_addr + p->p_vaddr + p->p_memsz;
		} else if (p->p_type == PT_DYNAMIC) {
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + p->p_vaddr);
		}
	}
	for (const ElfW(Dyn) *d = dyn; d && d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_STRTAB)
			strtab = dyn_addr(o, info->dlpi_addr, d->d_un.d_ptr);
	for (const ElfW(Dyn) *d = dyn; d && strtab && d->d_tag != DT_NULL; d++) {
		const char *str = (const char *)(strtab + d->d_un.d_val);

		if (!in_obj(o, (uintptr_t)str))
			continue;
		if (d->d_tag == DT_SONAME)
			o->soname = str;
		else if (d->d_tag == DT_NEEDED && o->n_needed < MAX_NEEDED)
			o->needed[o->n_needed++] = str;
	}
	/* Whole pages, as /proc/self/maps shows them. */
	o->lo &= ~(uintptr_t)4095;
	o->hi = (o->hi + 4095) & ~(uintptr_t)4095;
	if (!o->soname) {
		const char *slash = strrchr(o->name, '/');

		o->soname = slash ? slash + 1 : o->name;
	}
	return 0;
}

/* ok: kiln-sload (the first object), libkiln (this code), the vdso, and by
 * DT_NEEDED what those need, transitively. */
static void mark_needed(struct objs *s)
{
	uintptr_t self = (uintptr_t)&rt__sload_measure;
	uintptr_t vdso = getauxval(AT_SYSINFO_EHDR);
	bool more = true;

	for (size_t i = 0; i < s->n; i++)
		s->o[i].ok = i == 0 || in_obj(&s->o[i], self) || (vdso && in_obj(&s->o[i], vdso));
	while (more) {
		more = false;
		for (size_t i = 0; i < s->n; i++)
			for (size_t k = 0; s->o[i].ok && k < s->o[i].n_needed; k++)
				for (size_t j = 0; j < s->n; j++)
					if (!s->o[j].ok && strcmp(s->o[j].soname, s->o[i].needed[k]) == 0)
						s->o[j].ok = more = true;
	}
}

/* Every executable mapping of a file lies in an ok object (other names were
 * refused or accepted by ev_workload_measure_pid: [vdso], [vsyscall]). */
static int check_maps(const struct objs *s, struct kiln_err *err)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096 + 128];
	int ret = 0;

	if (!f)
		return kiln_err_set(err, -errno, "/proc/self/maps: %s", kiln_strerror(errno));
	while (!ret && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8], *path = strchr(line, '/');
		bool known = false;

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || !strchr(perms, 'x') ||
		    !path)
			continue;
		path[strcspn(path, "\n")] = '\0';
		for (size_t i = 0; i < s->n && !known; i++)
			known = s->o[i].ok && lo >= s->o[i].lo && hi <= s->o[i].hi;
		if (!known)
			ret = kiln_err_set(err, -KILN_EUNMEASURED, "executable mapping %lx-%lx '%s' "
					   "is not kiln-sload, libkiln or a library they need: "
					   "refused", lo, hi, path);
	}
	fclose(f);
	return ret;
}

static int check_objects(struct kiln_err *err)
{
	struct objs *s = calloc(1, sizeof(*s));
	int ret = 0;

	if (!s)
		return kiln_err_set(err, -ENOMEM, "out of memory");
	dl_iterate_phdr(collect, s);
	if (s->too_many) {
		ret = kiln_err_set(err, -E2BIG, "more than %d loaded objects", MAX_OBJS);
		goto out;
	}
	mark_needed(s);
	for (size_t i = 0; i < s->n; i++)
		if (!s->o[i].ok) {
			ret = kiln_err_set(err, -KILN_EUNMEASURED, "%s is loaded, which neither "
					   "kiln-sload nor libkiln needs (an LD_PRELOAD or LD_AUDIT "
					   "library?): refused", s->o[i].name);
			goto out;
		}
	ret = check_maps(s, err);
out:
	free(s);
	return ret;
}

int rt__sload_measure(uint8_t wm[EV_WM_SIZE], struct kiln_err *err)
{
	uint8_t self_wm[EV_WM_SIZE], exe_sha[32];
	int ret;

	if (g_rt_sload_fd < 0)
		return kiln_err_set(err, -g_rt_sload_errno, "attestation: cannot open the "
				    "program: %s", kiln_strerror(g_rt_sload_errno));
	ret = check_env(err);
	if (!ret)
		ret = ev_workload_measure_pid(0, self_wm, NULL, err);
	if (!ret)
		ret = check_objects(err);
	if (ret) {
		kiln_err_prefix(err, "attestation: the static loader (kiln-sload) itself: ");
		return ret;
	}
	ret = ev_workload_measure_static_fd(g_rt_sload_fd, NULL, wm, NULL, exe_sha, err);
	if (ret)
		kiln_err_prefix(err, "attestation: workload measurement of %s: ", g_rt_sload_path);
	return ret;
}
