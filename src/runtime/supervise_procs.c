/* kiln run, supervised mode: what the supervisor learns about the program's
 * processes from /proc (supervise_int.h): a thread's credentials, and which
 * processes still refer to a protected file's memfd (an fd, a dup of it, a
 * forked child's inherited copy, a mapping kept after close). The supervisor
 * holds a file at its server while any of them does: the memfd must stay
 * whole (never evicted) for as long as the program can read it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "runtime/supervise_int.h"

/* "Uid:\t1 2 3 4": the n-th number (0-based) after key, or -1. */
static long field(const char *buf, const char *key, int n, int base)
{
	const char *p = strstr(buf, key);
	char *end;
	long v = -1;

	if (!p)
		return -1;
	p += strlen(key);
	for (int i = 0; i <= n; i++) {
		v = strtol(p, &end, base);
		if (end == p)
			return -1;
		p = end;
	}
	return v;
}

int sv_cred_of(pid_t tid, struct sv_cred *out)
{
	char buf[4096];
	const char *g;
	ssize_t n = kiln_read_proc(tid, "status", buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	if (n == 0)
		return -ESRCH;
	memset(out, 0, sizeof(*out));
	out->tgid = (pid_t)field(buf, "\nTgid:", 0, 10);
	out->umask = (mode_t)field(buf, "\nUmask:", 0, 8);
	out->ruid = (uid_t)field(buf, "\nUid:", 0, 10);
	out->fs.uid = (uid_t)field(buf, "\nUid:", 3, 10);
	out->rgid = (gid_t)field(buf, "\nGid:", 0, 10);
	out->fs.gid = (gid_t)field(buf, "\nGid:", 3, 10);
	if (out->tgid <= 0 || out->fs.uid == (uid_t)-1 || out->fs.gid == (gid_t)-1)
		return -ESRCH;
	if (out->umask == (mode_t)-1)
		out->umask = 022;
	g = strstr(buf, "\nGroups:");
	if (g) {
		char *end;

		g += 8;
		while (out->fs.ngroups < RT_CRED_GROUPS) {
			long v = strtol(g, &end, 10);

			if (end == g)
				break;
			out->fs.groups[out->fs.ngroups++] = (gid_t)v;
			g = end;
		}
	}
	return 0;
}

uint64_t sv_cred_key(const struct sv_cred *c)
{
	uint32_t v[3] = { c->fs.uid, c->fs.gid, c->fs.ngroups };

	return kiln_fnv1a(kiln_fnv1a(KILN_FNV1A_INIT, v, sizeof(v)), c->fs.groups,
			  c->fs.ngroups * sizeof(gid_t));
}

/* The program's processes: root and its descendants (the children of each
 * of their threads). At most max; their count. */
static size_t program_pids(pid_t root, pid_t *out, size_t max)
{
	size_t n = 0;

	out[n++] = root;
	for (size_t i = 0; i < n; i++) {
		char path[64];
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)out[i]);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			char cpath[320];
			FILE *f;
			long pid;

			if (de->d_name[0] == '.')
				continue;
			snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)out[i],
				 de->d_name);
			f = fopen(cpath, "re");
			if (!f)
				continue;
			while (n < max && fscanf(f, "%ld", &pid) == 1)
				out[n++] = (pid_t)pid;
			fclose(f);
		}
		closedir(d);
	}
	return n;
}

static size_t fd_refs(pid_t pid, dev_t dev, ino_t ino, struct sv_ref *out, size_t max)
{
	char path[64];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (n < max && (de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && st.st_dev == dev &&
		    st.st_ino == ino)
			out[n++] = (struct sv_ref){ .pid = pid, .fd = atoi(de->d_name) };
	}
	closedir(d);
	return n;
}

static bool mapped(pid_t pid, dev_t dev, ino_t ino)
{
	char path[64], line[512];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		unsigned long long lino;

		if (sscanf(line, "%*x-%*x %*s %*x %x:%x %llu", &maj, &min, &lino) == 3)
			found = lino == (unsigned long long)ino && makedev(maj, min) == dev;
		/* A line longer than the buffer: skip its rest. */
		while (!strchr(line, '\n') && fgets(line, sizeof(line), f))
			;
	}
	fclose(f);
	return found;
}

size_t sv_refs(pid_t root, dev_t dev, ino_t ino, struct sv_ref *out, size_t max)
{
	enum { MAX_PIDS = 4096 };
	pid_t *pids = malloc(MAX_PIDS * sizeof(*pids));
	size_t np, n = 0;

	if (!pids) {
		/* Cannot look: say it is held (kept, never released wrongly). */
		if (max)
			out[0] = (struct sv_ref){ .pid = root, .fd = -1 };
		return max ? 1 : 0;
	}
	np = program_pids(root, pids, MAX_PIDS);
	for (size_t i = 0; i < np && n < max; i++) {
		size_t k = fd_refs(pids[i], dev, ino, out + n, max - n);

		n += k;
		if (!k && n < max && mapped(pids[i], dev, ino))
			out[n++] = (struct sv_ref){ .pid = pids[i], .fd = -1 };
	}
	free(pids);
	return n;
}

bool sv_fd_is(pid_t tgid, int fd, dev_t dev, ino_t ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)tgid, fd);
	return stat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}
