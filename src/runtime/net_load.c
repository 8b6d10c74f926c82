/* kiln runtime: the network and console shields' code, loaded only by the
 * processes whose grant configures one (docs/runtime.md, "Where the network
 * shield's code lives").
 *
 * libkiln-net.so is installed next to libkiln.so, on a disk the host owns, so
 * it is never loaded by its path as it is: the file is copied into a memfd,
 * the memfd is sealed (no write, shrink or grow, no seal removed), the sealed
 * bytes are hashed and compared with the SHA-256 this libkiln was built with
 * (net_digest.h, generated from the very object by the build), and ld.so maps
 * that memfd through /proc/self/fd/N: what runs is what was hashed, whatever
 * the file does after the copy. A mismatch refuses the program before main
 * with one line naming the file and both digests.
 *
 * It is loaded after the grant (rt__attest_apply_late): the workload
 * measurement and kiln-las's view of the process's mappings were taken
 * before, so neither sees the memfd (both refuse code in one, rightly, for
 * code they cannot name); the digest pins it to libkiln as libkiln's own
 * version line pins libkiln. libkiln-musl.so links the shields in
 * (RT_NET_BUILTIN). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "runtime/net_load.h"
#ifndef RT_NET_BUILTIN
#include "net_digest.h"
#endif

#ifndef RT_NET_NAME
#define RT_NET_NAME "libkiln-net.so"
#endif

bool g_rt_net_on;
const struct rt_net_ops *g_rt_net;

bool rt__shield_on(void)
{
	return g_rt.shield_on;
}

#ifdef RT_NET_BUILTIN
static const struct rt_net_ops *load_shields(struct kiln_err *err)
{
	(void)err;
	return &rt__net_ops;
}
#else
static const struct rt_net_host g_host = {
	.abi = RT_NET_ABI,
	.lent = &rt__lent,
	.dispatch = rt__dispatch,
	.enter = rt__enter,
	.leave = rt__leave,
	.thread = rt__thread,
	.thread_peek = rt__thread_peek,
	.runtime_thread = rt__runtime_thread,
	.sig_can_defer = rt__sig_can_defer,
	.shield_on = rt__shield_on,
	.fd_kind = rt_fd_kind,
	.fd_get = rt_fd_get,
	.fd_set = rt_fd_set,
	.fd_clear = rt_fd_clear,
	.fd_in_range = rt_fd_in_range,
	.json_get = rt_json_get,
	.json_str = rt_json_str,
};

/* A sealed memfd holding the bytes of the file at path (the caller closes
 * it), or a negative errno with err set. */
static int sealed_copy(const char *path, struct kiln_err *err)
{
	const unsigned seals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	int src = -1, mfd = -1, ret;
	char *buf = NULL;           /* owned */
	const size_t buf_size = 1 << 16;

	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		ret = kiln_err_set(err, -errno, "%s: %s", path, kiln_strerror(errno));
		goto out;
	}
	mfd = memfd_create(RT_NET_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	buf = malloc(buf_size);
	if (mfd < 0 || !buf) {
		ret = kiln_err_set(err, mfd < 0 ? -errno : -ENOMEM, "%s: no memory to copy it "
				   "into: %s", path, kiln_strerror(mfd < 0 ? errno : ENOMEM));
		goto out;
	}
	for (;;) {
		ssize_t n = read(src, buf, buf_size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = kiln_err_set(err, -errno, "%s: %s", path, kiln_strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		ret = kiln_write_all(mfd, buf, (size_t)n);
		if (ret < 0) {
			kiln_err_set(err, ret, "%s: copying it: %s", path, kiln_strerror(-ret));
			goto out;
		}
	}
	if (fcntl(mfd, F_ADD_SEALS, seals) < 0) {
		ret = kiln_err_set(err, -errno, "%s: sealing its copy: %s", path,
				   kiln_strerror(errno));
		goto out;
	}
	ret = mfd;
	mfd = -1;
out:
	free(buf);
	if (src >= 0)
		close(src);
	if (mfd >= 0)
		close(mfd);
	return ret;
}

/* SHA-256 of the sealed memfd's bytes, as lowercase hex. */
static int sealed_digest(int mfd, const char *path, char hex[2 * KC_SHA256_SIZE + 1],
			 struct kiln_err *err)
{
	uint8_t digest[KC_SHA256_SIZE];
	struct stat st;
	void *map;
	int ret;

	if (fstat(mfd, &st) < 0 || st.st_size <= 0)
		return kiln_err_set(err, -EINVAL, "%s: empty or unreadable", path);
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, mfd, 0);
	if (map == MAP_FAILED)
		return kiln_err_set(err, -errno, "%s: %s", path, kiln_strerror(errno));
	ret = kc_sha256(map, (size_t)st.st_size, digest);
	munmap(map, (size_t)st.st_size);
	if (ret < 0)
		return kiln_err_set(err, ret, "%s: cannot hash it", path);
	kiln_hex_encode(digest, sizeof(digest), hex);
	hex[2 * KC_SHA256_SIZE] = '\0';
	return 0;
}

static const struct rt_net_ops *load_shields(struct kiln_err *err)
{
	char path[sizeof(g_rt.lib_path) + sizeof(RT_NET_NAME)], fdpath[32];
	char hex[2 * KC_SHA256_SIZE + 1];
	const struct rt_net_ops *ops = NULL;
	const char *slash = strrchr(g_rt.lib_path, '/');
	rt_net_entry_fn entry;
	void *handle;
	int mfd;

	if (!slash) {
		kiln_err_set(err, -ENOENT, "cannot find " RT_NET_NAME ": the path of "
			     RT_LIBKILN_NAME " is unknown");
		return NULL;
	}
	snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - g_rt.lib_path), g_rt.lib_path,
		 RT_NET_NAME);
	mfd = sealed_copy(path, err);
	if (mfd < 0)
		return NULL;
	if (sealed_digest(mfd, path, hex, err) < 0)
		goto out;
	if (strcmp(hex, RT_NET_SHA256) != 0) {
		kiln_err_set(err, -KILN_EDENIED, "%s: SHA-256 %s is not %s, the one this "
			     RT_LIBKILN_NAME " was built with: refusing to load it (a changed "
			     "or foreign file; reinstall kiln)", path, hex, RT_NET_SHA256);
		goto out;
	}
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", mfd);
	handle = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!handle) {
		kiln_err_set(err, -ENOEXEC, "%s: cannot load it: %s", path, dlerror());
		goto out;
	}
	entry = (rt_net_entry_fn)dlsym(handle, RT_NET_ENTRY);
	ops = entry ? entry(&g_host) : NULL;
	if (!ops || ops->abi != RT_NET_ABI)
		kiln_err_set(err, -ENOEXEC, "%s: not the shields of this " RT_LIBKILN_NAME
			     " (no " RT_NET_ENTRY " or another interface)", path);
out:
	close(mfd);
	return ops && ops->abi == RT_NET_ABI ? ops : NULL;
}
#endif

int rt__net_load(const struct rt_json *grant, struct kiln_err *err)
{
	const struct rt_json *net = rt_json_get(grant, "network");
	const struct rt_json *con = rt_json_get(grant, "console");
	const struct rt_net_ops *ops;
	int ret;

	if (!net && !con)
		return 0;
	/* Calls that bypass libc's exported functions (stdio's internal writes,
	 * direct system calls) must reach the shields too. */
	if (!g_rt.cfg.sud)
		return kiln_err_set(err, -ENOTSUP, "the policy's %s shield needs Syscall User "
				    "Dispatch: run without --sud off", net ? "network" : "console");
	ops = load_shields(err);
	if (!ops) {
		kiln_err_prefix(err, net ? "network shield: " : "console shield: ");
		return err->code ? err->code : -ENOEXEC;
	}
	ret = ops->init(grant, err);
	if (ret < 0)
		return ret;
	g_rt_net = ops;
	g_rt_net_on = true;
	return 0;
}
