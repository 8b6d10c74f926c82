/* kiln runtime: the launcher -> runtime configuration text (see runtime.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#define CONFIG_MAGIC "kiln-runtime-config-v1"

int rt_freshness_parse(const char *s, enum rt_freshness *out)
{
	if (strcmp(s, "every-fsync") == 0)
		*out = RT_FRESH_EVERY_FSYNC;
	else if (strcmp(s, "on-close") == 0)
		*out = RT_FRESH_ON_CLOSE;
	else if (strcmp(s, "on-exit") == 0)
		*out = RT_FRESH_ON_EXIT;
	else
		return -EINVAL;
	return 0;
}

int rt_file_cache_parse(const char *s, uint64_t *files, uint64_t *mib)
{
	const char *colon = strchr(s, ':');
	size_t len = colon ? (size_t)(colon - s) : strlen(s);
	char head[32];
	uint64_t f, m = *mib;

	if (len >= sizeof(head))
		return -EINVAL;
	memcpy(head, s, len);
	head[len] = '\0';
	if (kiln_parse_u64(head, &f) || (colon && kiln_parse_u64(colon + 1, &m)) ||
	    m > (UINT64_MAX >> 20))
		return -EINVAL;
	*files = f;
	*mib = m;
	return 0;
}

const char *rt_freshness_name(enum rt_freshness f)
{
	switch (f) {
	case RT_FRESH_EVERY_FSYNC:
		return "every-fsync";
	case RT_FRESH_ON_CLOSE:
		return "on-close";
	default:
		return "on-exit";
	}
}

/* Copy the next space-separated word of line into out; NULL at end. */
static const char *next_word(const char *p, char *out, size_t out_size)
{
	size_t n = 0;

	while (*p == ' ')
		p++;
	if (!*p)
		return NULL;
	while (*p && *p != ' ') {
		if (n + 1 >= out_size)
			return NULL;
		out[n++] = *p++;
	}
	out[n] = '\0';
	return p;
}

struct rt_volume_cfg *rt_config_add_volume(struct rt_config *cfg)
{
	struct rt_volume_cfg *v;

	if (cfg->n_volumes >= RT_MAX_VOLUMES)
		return NULL;
	v = &cfg->volumes[cfg->n_volumes];
	memset(v, 0, sizeof(*v));
	return v;
}

static int parse_line(struct rt_config *cfg, const char *line, bool *end)
{
	char word[4096], key_hex[80];
	const char *p;

	if (strcmp(line, "end") == 0) {
		*end = true;
		return 0;
	}
	if (strcmp(line, "mode dev") == 0) {
		cfg->dev = true;
		return 0;
	}
	if (strcmp(line, "sud on") == 0 || strcmp(line, "sud off") == 0) {
		cfg->sud = line[5] == 'n';
		return 0;
	}
	static const struct {
		const char *key;
		size_t off, size;
	} words[] = {
		{ "cas ", offsetof(struct rt_config, cas), sizeof(cfg->cas) },
		{ "cas-ca ", offsetof(struct rt_config, cas_ca), sizeof(cfg->cas_ca) },
		{ "cas-fingerprint ", offsetof(struct rt_config, cas_fingerprint),
		  sizeof(cfg->cas_fingerprint) },
		{ "cas-key ", offsetof(struct rt_config, cas_key), sizeof(cfg->cas_key) },
		{ "session ", offsetof(struct rt_config, session), sizeof(cfg->session) },
		{ "service ", offsetof(struct rt_config, service), sizeof(cfg->service) },
		{ "tee ", offsetof(struct rt_config, tee), sizeof(cfg->tee) },
		{ "las-socket ", offsetof(struct rt_config, las_socket), sizeof(cfg->las_socket) },
		{ "kiln ", offsetof(struct rt_config, kiln), sizeof(cfg->kiln) },
	};

	for (size_t i = 0; i < KILN_ARRAY_SIZE(words); i++) {
		size_t n = strlen(words[i].key);

		if (strncmp(line, words[i].key, n) == 0) {
			const char *v = line + n;

			if (!v[0] || strchr(v, ' ') || strlen(v) >= words[i].size)
				return -KILN_EFORMAT;
			memcpy((char *)cfg + words[i].off, v, strlen(v) + 1);
			return 0;
		}
	}
	if (strncmp(line, "host-env ", 9) == 0) {
		p = line + 9;
		if (!p[0] || strpbrk(p, "= ") || strlen(p) >= sizeof(cfg->host_env[0]) ||
		    cfg->n_host_env >= RT_MAX_HOST_ENV)
			return -KILN_EFORMAT;
		strcpy(cfg->host_env[cfg->n_host_env++], p);
		return 0;
	}
	if (strncmp(line, "volume-dir ", 11) == 0) {
		p = next_word(line + 11, word, sizeof(word));
		if (!p || *p != ' ' || strlen(word) >= sizeof(cfg->volume_dirs[0].name) ||
		    cfg->n_volume_dirs >= RT_MAX_VOLUMES || p[1] != '/')
			return -KILN_EFORMAT;
		memset(&cfg->volume_dirs[cfg->n_volume_dirs], 0, sizeof(cfg->volume_dirs[0]));
		if (rt_path_normalize(NULL, p + 1, cfg->volume_dirs[cfg->n_volume_dirs].dir,
				      sizeof(cfg->volume_dirs[0].dir)))
			return -KILN_EFORMAT;
		strcpy(cfg->volume_dirs[cfg->n_volume_dirs++].name, word);
		return 0;
	}
	if (strncmp(line, "fd ", 3) == 0) {
		uint64_t n[4];

		p = line + 3;
		for (int i = 0; i < 4; i++) {
			p = next_word(p, word, sizeof(word));
			if (!p || kiln_parse_u64(word, &n[i]))
				return -KILN_EFORMAT;
		}
		if (*p || n[0] >= RT_FD_MAX || n[1] >= RT_MAX_VOLUMES ||
		    cfg->n_fds >= RT_MAX_INHERITED_FDS)
			return -KILN_EFORMAT;
		cfg->fds[cfg->n_fds].fd = (int)n[0];
		cfg->fds[cfg->n_fds].vol = (int)n[1];
		cfg->fds[cfg->n_fds].id = n[2];
		cfg->fds[cfg->n_fds++].ino = n[3];
		return 0;
	}
	if (strncmp(line, "cwd /", 5) == 0)
		return rt_path_normalize(NULL, line + 4, cfg->cwd, sizeof(cfg->cwd)) ? -KILN_EFORMAT
										: 0;
	if (strncmp(line, "freshness ", 10) == 0)
		return rt_freshness_parse(line + 10, &cfg->freshness) ? -KILN_EFORMAT : 0;
	if (strncmp(line, "volume ", 7) == 0) {
		struct rt_volume_cfg *v;
		int ret = -KILN_EFORMAT;

		if (!(v = rt_config_add_volume(cfg)))
			return -E2BIG;
		p = next_word(line + 7, word, sizeof(word));
		if (!p || word[0] != '/' ||
		    rt_path_normalize(NULL, word, v->mount, sizeof(v->mount)))
			return -KILN_EFORMAT;
		p = next_word(p, word, sizeof(word));
		if (!p || word[0] != '/' || rt_path_normalize(NULL, word, v->dir, sizeof(v->dir)))
			return -KILN_EFORMAT;
		p = next_word(p, key_hex, sizeof(key_hex));
		if (p && kiln_hex_decode(key_hex, v->key, sizeof(v->key), NULL) == 0) {
			const char *q = next_word(p, word, sizeof(word));

			if (*p == '\0' || (q && *q == '\0' && word[0] == '/' &&
					    !rt_path_normalize(NULL, word, v->tag_file,
							       sizeof(v->tag_file)))) {
				cfg->n_volumes++;
				ret = 0;
			}
		}
		kiln_wipe(key_hex, sizeof(key_hex));
		return ret;
	}
	return -KILN_EFORMAT;
}

int rt_config_parse(const char *text, size_t size, struct rt_config *cfg, struct kiln_err *err)
{
	char line[8400];
	size_t pos = 0;
	unsigned lineno = 0;
	bool end = false;
	int ret = 0;

	/* The fields before the tables, and the tables' counts: an entry is
	 * zeroed when it is taken (rt_config_add_volume). Not the whole
	 * struct (290 KB): that was 71 pages of every process's start, a tenth
	 * of the CPU of starting /bin/true under kiln run on this VM. */
	memset(cfg, 0, offsetof(struct rt_config, host_env));
	cfg->n_volume_dirs = 0;
	cfg->n_volumes = 0;
	cfg->n_fds = 0;
	cfg->sud = true;
	cfg->freshness = RT_FRESH_ON_CLOSE;
	while (pos < size && !end) {
		size_t n = 0;

		lineno++;
		while (pos < size && text[pos] != '\n') {
			if (n + 1 >= sizeof(line)) {
				ret = kiln_err_set(err, -KILN_EFORMAT, "config line %u: too long",
						   lineno);
				goto out;
			}
			line[n++] = text[pos++];
		}
		line[n] = '\0';
		pos++;
		if (lineno == 1) {
			if (strcmp(line, CONFIG_MAGIC) != 0) {
				ret = kiln_err_set(err, -KILN_EFORMAT,
						   "config: first line is not '%s'", CONFIG_MAGIC);
				goto out;
			}
			continue;
		}
		ret = parse_line(cfg, line, &end);
		if (ret) {
			/* Never echo the line: it may hold a key. */
			ret = kiln_err_set(err, ret, "config line %u: malformed", lineno);
			goto out;
		}
	}
	if (!end)
		ret = kiln_err_set(err, -KILN_ETRUNC, "config: missing 'end' line");
out:
	kiln_wipe(line, sizeof(line));
	if (ret)
		rt_config_wipe(cfg);
	return ret;
}

int rt_config_serialize(const struct rt_config *cfg, char **out, size_t *out_size)
{
	size_t cap = 20000 + cfg->n_volumes * (3 * 4096 + 96) + cfg->n_volume_dirs * 4300 +
		     cfg->n_host_env * 150;
	char *buf = malloc(cap);
	size_t len = 0;
	int n;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	n = snprintf(buf, cap, "%s\n%ssud %s\nfreshness %s\n", CONFIG_MAGIC,
		     cfg->dev ? "mode dev\n" : "", cfg->sud ? "on" : "off",
		     rt_freshness_name(cfg->freshness));
	len = (size_t)n;
	for (size_t i = 0; i < cfg->n_volumes; i++) {
		char hex[65];

		kiln_hex_encode(cfg->volumes[i].key, sizeof(cfg->volumes[i].key), hex);
		n = snprintf(buf + len, cap - len, "volume %s %s %s%s%s\n", cfg->volumes[i].mount,
			     cfg->volumes[i].dir, hex, cfg->volumes[i].tag_file[0] ? " " : "",
			     cfg->volumes[i].tag_file);
		kiln_wipe(hex, sizeof(hex));
		len += (size_t)n;
	}
	if (cfg->cwd[0]) {
		n = snprintf(buf + len, cap - len, "cwd %s\n", cfg->cwd);
		len += (size_t)n;
	}
	if (cfg->cas[0]) {
		n = snprintf(buf + len, cap - len, "cas %s\nsession %s\nservice %s\ntee %s\n",
			     cfg->cas, cfg->session, cfg->service, cfg->tee);
		len += (size_t)n;
		if (cfg->cas_ca[0]) {
			n = snprintf(buf + len, cap - len, "cas-ca %s\n", cfg->cas_ca);
			len += (size_t)n;
		}
		if (cfg->cas_fingerprint[0]) {
			n = snprintf(buf + len, cap - len, "cas-fingerprint %s\n",
				     cfg->cas_fingerprint);
			len += (size_t)n;
		}
		if (cfg->cas_key[0]) {
			n = snprintf(buf + len, cap - len, "cas-key %s\n", cfg->cas_key);
			len += (size_t)n;
		}
		if (cfg->las_socket[0]) {
			n = snprintf(buf + len, cap - len, "las-socket %s\n", cfg->las_socket);
			len += (size_t)n;
		}
		if (cfg->kiln[0]) {
			n = snprintf(buf + len, cap - len, "kiln %s\n", cfg->kiln);
			len += (size_t)n;
		}
		for (size_t i = 0; i < cfg->n_host_env; i++) {
			n = snprintf(buf + len, cap - len, "host-env %s\n", cfg->host_env[i]);
			len += (size_t)n;
		}
		for (size_t i = 0; i < cfg->n_volume_dirs; i++) {
			n = snprintf(buf + len, cap - len, "volume-dir %s %s\n",
				     cfg->volume_dirs[i].name, cfg->volume_dirs[i].dir);
			len += (size_t)n;
		}
	}
	n = snprintf(buf + len, cap - len, "end\n");
	len += (size_t)n;
	*out = buf;
	*out_size = len;
	return 0;
}

/* The fields before the tables and each table's entries in use: the rest
 * was never written (rt_config_parse and rt_config_add_volume zero an entry
 * when they take it; the launcher's struct is calloc'd). Wiping all 290 KB
 * made the launcher fault in 71 untouched pages just before its exec. */
void rt_config_wipe(struct rt_config *cfg)
{
	/* The counts first: n_host_env lies among the fields wiped first. */
	size_t env = cfg->n_host_env < RT_MAX_HOST_ENV ? cfg->n_host_env : RT_MAX_HOST_ENV;
	size_t dirs = cfg->n_volume_dirs < RT_MAX_VOLUMES ? cfg->n_volume_dirs : RT_MAX_VOLUMES;
	/* and the entry after the last: a caller fills it (a key first) before
	 * it counts it, and may fail in between (rt_config_add_volume). */
	size_t vols = cfg->n_volumes < RT_MAX_VOLUMES ? cfg->n_volumes + 1 : RT_MAX_VOLUMES;
	size_t fds = cfg->n_fds < RT_MAX_INHERITED_FDS ? cfg->n_fds : RT_MAX_INHERITED_FDS;

	kiln_wipe(cfg, offsetof(struct rt_config, host_env));
	kiln_wipe(cfg->host_env, env * sizeof(cfg->host_env[0]));
	kiln_wipe(cfg->volume_dirs, dirs * sizeof(cfg->volume_dirs[0]));
	kiln_wipe(cfg->volumes, vols * sizeof(cfg->volumes[0]));
	kiln_wipe(cfg->fds, fds * sizeof(cfg->fds[0]));
	cfg->n_volume_dirs = cfg->n_volumes = cfg->n_fds = 0;
}
