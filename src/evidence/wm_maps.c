/* The workload measurement's view of a process's memory: which executable
 * mappings are files it can hash, which are the kernel's own code, and which
 * cannot be measured at all -- and whether the measured pages are still the
 * file's pages (docs/measurement.md "What is refused").
 *
 * The rule is closed: an executable mapping is a file that exists (hashed),
 * [vdso] or [vsyscall] (the kernel's; no process can give a mapping those
 * names: PR_SET_VMA_ANON_NAME makes "[anon:NAME]"), or the measurement fails
 * naming it. Anything a process could use to run code that no file on disk
 * holds -- a memfd, an unlinked file, shared or named anonymous memory, an
 * executable heap or stack, a page of a library written after it was mapped,
 * a tracer that can do the same at any moment -- is a refusal, never a skip.
 *
 * Runs inside arbitrary processes (libkiln's constructor) like workload.c: no
 * stdio streams, errno-style returns, O_CLOEXEC. */
#include "evidence/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WM_DELETED " (deleted)"
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61) /* file page or shared anonymous: not a private copy */
#define PM_BATCH 512         /* pagemap entries read at a time */

static unsigned long parse_hex(const char **p, bool *ok)
{
	char *end;
	unsigned long v;

	if (**p == '-' || **p == '+' || **p == ' ')
		*ok = false;
	errno = 0;
	v = strtoul(*p, &end, 16);
	if (end == *p || errno)
		*ok = false;
	*p = end;
	return v;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Why an executable mapping with this name cannot be measured, or NULL when
 * it is a file to hash. Order matters: memfds, shared anonymous memory and
 * SysV segments also end in " (deleted)". */
static const char *unmeasurable(const char *name)
{
	if (!name[0])
		return "anonymous memory: code made or loaded at run time";
	if (name[0] == '[') {
		if (starts_with(name, "[anon"))
			return "anonymous memory named by the process";
		if (strcmp(name, "[heap]") == 0 || starts_with(name, "[stack"))
			return "executable heap or stack";
		return "memory that is not a file";
	}
	if (name[0] != '/')
		return "memory that is not a file";
	if (starts_with(name, "/memfd:"))
		return "a memfd: a file in memory that no path names and whose content can "
		       "still change";
	if (strcmp(name, "/dev/zero" WM_DELETED) == 0)
		return "shared anonymous memory";
	if (starts_with(name, "/SYSV"))
		return "SysV shared memory";
	if (ends_with(name, WM_DELETED))
		return "a deleted file: removed or replaced after it was mapped (restart the "
		       "program if it was upgraded)";
	return NULL;
}

int ev__map_parse(char *line, struct ev__map *m, struct kiln_err *err)
{
	const char *p = line;
	bool ok = true;
	char *end;

	memset(m, 0, sizeof(*m));
	m->start = parse_hex(&p, &ok);
	if (!ok || *p++ != '-')
		goto bad;
	m->end = parse_hex(&p, &ok);
	if (!ok || *p++ != ' ' || m->end <= m->start)
		goto bad;
	if (strlen(p) < 5 || p[4] != ' ')
		goto bad;
	memcpy(m->perms, p, 4);
	m->perms[4] = '\0';
	p += 5;
	parse_hex(&p, &ok); /* offset */
	if (!ok || *p++ != ' ')
		goto bad;
	m->dev_major = parse_hex(&p, &ok);
	if (!ok || *p++ != ':')
		goto bad;
	m->dev_minor = parse_hex(&p, &ok);
	if (!ok || *p++ != ' ')
		goto bad;
	if (*p < '0' || *p > '9')
		goto bad;
	errno = 0;
	m->ino = strtoul(p, &end, 10);
	if (end == p || errno || (*end != ' ' && *end != '\0'))
		goto bad;
	p = end;
	while (*p == ' ')
		p++;
	m->name = p;
	if (m->perms[2] != 'x')
		return EV__MAP_DATA;
	if (strcmp(p, "[vdso]") == 0 || strcmp(p, "[vsyscall]") == 0)
		return EV__MAP_KERNEL;
	m->why = unmeasurable(p);
	return m->why ? EV__MAP_REFUSED : EV__MAP_FILE;
bad:
	return kiln_err_set(err, -KILN_EFORMAT, "cannot parse /proc maps line '%.80s'", line);
}

/* Copy a mapping's name for a message: at most ~160 bytes, and nothing a log
 * reader could mistake for structure (quotes, backslashes, control bytes are
 * written \xNN: a memfd's name is chosen by the process). */
static void quote_name(const char *name, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *name && n + 5 < size && n < 160; name++) {
		unsigned char c = (unsigned char)*name;

		if (c < 0x20 || c >= 0x7f || c == '\'' || c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else {
			out[n++] = (char)c;
		}
	}
	if (*name && n + 4 < size) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

int ev__map_refuse(const struct ev__map *m, const char *why, struct kiln_err *err)
{
	char name[200];

	if (!m->name || !m->name[0])
		return kiln_err_set(err, -KILN_EUNMEASURED,
				    "executable mapping %lx-%lx (%s) cannot be measured: refused",
				    m->start, m->end, why);
	quote_name(m->name, name, sizeof(name));
	return kiln_err_set(err, -KILN_EUNMEASURED,
			    "executable mapping %lx-%lx '%s' (%s) cannot be measured: refused",
			    m->start, m->end, name, why);
}

int ev__map_check_pages(int pagemap_fd, const struct ev__map *m, struct kiln_err *err)
{
	const unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	uint64_t buf[PM_BATCH];
	unsigned long first = m->start / page, count = (m->end - m->start) / page;

	for (unsigned long done = 0; done < count;) {
		size_t want = count - done < PM_BATCH ? count - done : PM_BATCH;
		ssize_t n = pread(pagemap_fd, buf, want * sizeof(buf[0]),
				  (off_t)((first + done) * sizeof(buf[0])));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kiln_err_set(err, -errno, "cannot read the page map of mapping "
					    "%lx-%lx: %s", m->start, m->end, kiln_strerror(errno));
		if ((size_t)n != want * sizeof(buf[0]))
			return kiln_err_set(err, -EIO, "short read of the page map of mapping "
					    "%lx-%lx", m->start, m->end);
		for (size_t i = 0; i < want; i++) {
			/* A private copy of a page (present but not the file's, or
			 * swapped out, which file pages never are) was written after
			 * the mapping was made: a debugger's breakpoint, a write to
			 * /proc/PID/mem, mprotect + memcpy, or text relocations. */
			if (((buf[i] & PM_PRESENT) && !(buf[i] & PM_FILE)) ||
			    (buf[i] & PM_SWAPPED)) {
				char what[96];

				snprintf(what, sizeof(what), "its page at %lx was written after it "
					 "was mapped", (first + done + i) * page);
				return ev__map_refuse(m, what, err);
			}
		}
		done += want;
	}
	return 0;
}

int ev__check_tracer(const char *proc, struct kiln_err *err)
{
	char path[64], buf[4096], *p;
	long tracer;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/status", proc);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kiln_err_set(err, -errno, "cannot open %s: %s", path, kiln_strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return kiln_err_set(err, n < 0 ? -errno : -EIO, "cannot read %s", path);
	buf[n] = '\0';
	p = strstr(buf, "\nTracerPid:");
	if (!p)
		return kiln_err_set(err, -KILN_EFORMAT, "%s has no TracerPid line", path);
	tracer = strtol(p + 11, NULL, 10);
	if (tracer != 0)
		return kiln_err_set(err, -KILN_EUNMEASURED,
				    "the process is traced (ptrace) by pid %ld: a tracer can change "
				    "its code and read its memory at any time: refused", tracer);
	return 0;
}
