/* Configuration files for long-running commands (kiln cas serve --config):
 * one "KEY = VALUE" per line, where KEY is a long option of the command
 * without its dashes, so every flag has a key and the file and the command
 * line cannot disagree on names or meanings. The file's options are put
 * before the command line's, so a flag given on the command line wins (and
 * a repeatable one adds). See docs/cas.md, "Configuration file". */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

#define CONF_MAX_SIZE (64u << 10)
#define CONF_MAX_ARGS 256

const char *cli_conf_path(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--config") == 0)
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	return NULL;
}

static const struct option *conf_option(const struct option *opts, const char *key)
{
	for (const struct option *o = opts; o->name; o++)
		if (strcmp(o->name, key) == 0)
			return o;
	return NULL;
}

static bool conf_repeatable(const char *const *repeatable, const char *key)
{
	for (size_t i = 0; repeatable && repeatable[i]; i++)
		if (strcmp(repeatable[i], key) == 0)
			return true;
	return false;
}

/* One line (NUL-terminated, in place): its option as "--key=value" or
 * "--key" added to c, or nothing for a blank line, a comment or a false
 * flag. -1 after saying what is wrong. */
static int conf_line(struct cli_conf *c, const char *path, unsigned ln, char *s,
		     const struct option *opts, const char *const *repeatable,
		     unsigned *seen_line)
{
	const struct option *o;
	char *key, *val, *end, *arg;
	size_t kn;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s || *s == '#')
		return 0;
	key = s;
	kn = strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789-");
	s = key + kn;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!kn || *s != '=') {
		cli_error("%s:%u: expected 'KEY = VALUE' (KEY a long option in lower case)", path,
			  ln);
		return -1;
	}
	key[kn] = '\0';
	val = s + 1;
	while (*val == ' ' || *val == '\t')
		val++;
	if (*val == '"') {
		/* Quoted: as written, '#' included; only a comment may follow. */
		end = strchr(++val, '"');
		if (!end) {
			cli_error("%s:%u: '%s': the quote is not closed", path, ln, key);
			return -1;
		}
		*end++ = '\0';
		end += strspn(end, " \t\r");
		if (*end && *end != '#') {
			cli_error("%s:%u: '%s': text after the quoted value", path, ln, key);
			return -1;
		}
	} else {
		/* A '#' after a blank starts a comment. */
		for (end = val; *end; end++)
			if (*end == '#' && (end == val || end[-1] == ' ' || end[-1] == '\t'))
				break;
		*end = '\0';
		while (end > val && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
	}
	o = conf_option(opts, key);
	if (!o || !strcmp(key, "config") || !strcmp(key, "help")) {
		cli_error("%s:%u: unknown key '%s' (the keys are the command's long options: see "
			  "its --help)", path, ln, key);
		return -1;
	}
	if (!conf_repeatable(repeatable, key)) {
		size_t idx = (size_t)(o - opts);

		if (seen_line[idx]) {
			cli_error("%s:%u: '%s' is already set on line %u (it takes one value)",
				  path, ln, key, seen_line[idx]);
			return -1;
		}
		seen_line[idx] = ln;
	}
	if (o->has_arg == no_argument) {
		if (!strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "1")) {
			val = NULL;
		} else if (!strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "0")) {
			return 0;
		} else {
			cli_error("%s:%u: '%s' is a switch: expected true or false, not '%s'", path,
				  ln, key, val);
			return -1;
		}
	} else if (!*val) {
		cli_error("%s:%u: '%s' needs a value", path, ln, key);
		return -1;
	}
	if (c->n_args == CONF_MAX_ARGS) {
		cli_error("%s:%u: more than %d settings", path, ln, CONF_MAX_ARGS);
		return -1;
	}
	if ((val ? asprintf(&arg, "--%s=%s", key, val) : asprintf(&arg, "--%s", key)) < 0) {
		cli_error("out of memory");
		return -1;
	}
	c->args[c->n_args++] = arg;
	return 0;
}

int cli_conf_load(const char *path, const struct option *opts, const char *const *repeatable,
		  struct cli_conf *c)
{
	size_t n_opts = 0, size = 0;
	unsigned *seen = NULL, ln = 0;
	struct stat st;
	uint8_t *data = NULL;
	char *line;
	int fd = -1, ret = -1, r;

	memset(c, 0, sizeof(*c));
	while (opts[n_opts].name)
		n_opts++;
	/* O_NONBLOCK: a FIFO in its place is refused below, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		cli_error("--config %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONF_MAX_SIZE) {
		cli_error("--config %s: not a regular file of at most %u KiB", path,
			  CONF_MAX_SIZE >> 10);
		goto out;
	}
	/* Who can change it can choose the data directory and the listening
	 * address of the service: as ssh does, refuse a file anybody may edit. */
	if (st.st_mode & S_IWOTH) {
		cli_error("--config %s: writable by every user: refusing it (chmod o-w %s)",
			  path, path);
		goto out;
	}
	c->args = calloc(CONF_MAX_ARGS, sizeof(*c->args));
	seen = calloc(n_opts + 1, sizeof(*seen));
	if (!c->args || !seen) {
		cli_error("out of memory");
		goto out;
	}
	r = kiln_read_fd(fd, CONF_MAX_SIZE, &data, &size);
	if (r < 0) {
		cli_error("--config %s: %s", path, kiln_strerror(r));
		goto out;
	}
	if (memchr(data, '\0', size)) {
		cli_error("--config %s: a NUL byte: not a text file", path);
		goto out;
	}
	for (line = (char *)data; line; ) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		ln++;
		if (conf_line(c, path, ln, line, opts, repeatable, seen) < 0)
			goto out;
		line = nl ? nl + 1 : NULL;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(data);
	free(seen);
	if (ret < 0)
		cli_conf_free(c);
	return ret;
}

void cli_conf_free(struct cli_conf *c)
{
	for (size_t i = 0; c->args && i < c->n_args; i++)
		free(c->args[i]);
	free(c->args);
	memset(c, 0, sizeof(*c));
}

int cli_conf_argv(const struct cli_conf *c, int argc, char **argv, int *out_argc,
		  char ***out_argv)
{
	char **v = calloc((size_t)argc + c->n_args + 1, sizeof(*v));
	int n = 0;

	if (!v)
		return -ENOMEM;
	v[n++] = argv[0];
	for (size_t i = 0; i < c->n_args; i++)
		v[n++] = c->args[i];
	for (int i = 1; i < argc; i++)
		v[n++] = argv[i];
	v[n] = NULL;
	*out_argc = n;
	*out_argv = v;
	return 0;
}
