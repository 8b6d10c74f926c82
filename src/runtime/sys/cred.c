/* kiln runtime: the calling thread's credentials, which every request about
 * a volume path carries to the volume server: it checks them against the
 * modes and owners pf keeps, as the kernel checks a local file system's
 * (fs/namei.c uses the fsuid, fsgid and supplementary groups of the calling
 * thread). One connection may serve threads with different credentials
 * (setfsuid, a thread that dropped privileges): they travel with each
 * request, not with the connection.
 *
 * Read from the kernel and kept per thread until a set*id, setgroups or
 * capset call of any thread changes them: glibc applies set*id to every
 * thread (each one's own call traps here), and a generation counter tells
 * every thread's copy it is old. Without Syscall User Dispatch those calls
 * are not seen: the credentials are read for every request. */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

static atomic_uint g_cred_gen = 1;
static RT_TLS struct rt_ucred t_cred;
static RT_TLS unsigned t_cred_gen;

static void cred_load(struct rt_ucred *c)
{
	uid_t u[3];
	gid_t g[3];
	long n;

	rt__raw(SYS_getresuid, &u[0], &u[1], &u[2]);
	rt__raw(SYS_getresgid, &g[0], &g[1], &g[2]);
	c->uid = u[0];
	c->gid = g[0];
	/* setfsuid(-1) changes nothing and answers the current one. */
	c->fs.uid = (uid_t)rt__raw(SYS_setfsuid, -1);
	c->fs.gid = (gid_t)rt__raw(SYS_setfsgid, -1);
	n = rt__raw(SYS_getgroups, RT_CRED_GROUPS, c->fs.groups);
	/* More groups than a request carries (EINVAL): the first
	 * RT_CRED_GROUPS only, so a check may deny what the kernel would
	 * allow, never the reverse. */
	if (n == -EINVAL) {
		gid_t *all = (gid_t *)rt__raw(SYS_mmap, NULL, 65536 * sizeof(gid_t),
					      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
					      -1, 0);

		n = 0;
		if ((long)all > 0 && (long)all < -4095L) {
			long k = rt__raw(SYS_getgroups, 65536, all);

			for (long i = 0; i < k && i < RT_CRED_GROUPS; i++)
				c->fs.groups[i] = all[i];
			n = k < 0 ? 0 : (k < RT_CRED_GROUPS ? k : RT_CRED_GROUPS);
			rt__raw(SYS_munmap, all, 65536 * sizeof(gid_t));
		}
	}
	c->fs.ngroups = n < 0 ? 0 : (uint32_t)n;
	/* FNV-1a of the file system ids: answers cached for one thread's
	 * credentials are not given to another's (shield/stat.c). */
	c->key = 1469598103934665603ull;
	for (size_t i = 0; i < 2 + (size_t)c->fs.ngroups; i++) {
		uint32_t v = i == 0 ? c->fs.uid : i == 1 ? c->fs.gid : c->fs.groups[i - 2];

		c->key = (c->key ^ v) * 1099511628211ull;
	}
}

const struct rt_ucred *rt__cred(void)
{
	unsigned gen = atomic_load_explicit(&g_cred_gen, memory_order_acquire);

	if (!g_rt.sud_on || t_cred_gen != gen) {
		cred_load(&t_cred);
		t_cred_gen = gen;
	}
	return &t_cred;
}

/* set*id, setgroups, capset: the call, then every thread's copy is old. */
long rt__sys_setcred(long nr, const long a[6])
{
	long r = rt__raw6(nr, a);

	atomic_fetch_add_explicit(&g_cred_gen, 1, memory_order_acq_rel);
	return r;
}
