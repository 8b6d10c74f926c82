/* kiln runtime: a small JSON reader and string writer for the attestation
 * answers (CAS, kiln-las).
 *
 * libkiln cannot use jansson: Debian ships no position-independent
 * libjansson.a, and linking libjansson.so would map one more library into every
 * program, changing its workload measurement compared with the same program
 * without kiln (docs/measurement.md). The answers are small and come over an
 * authenticated channel, but are still parsed strictly: RFC 8259 syntax, depth
 * and size limits, no NUL in strings, duplicate keys refused. Strings are wiped
 * when the tree is freed (they hold secrets). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#define JSON_MAX_DEPTH 32
#define JSON_MAX_ITEMS (1u << 20)

struct parser {
	const char *p, *end;
	int depth;
};

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string at ps->p (after the opening quote); *out malloc'd, NUL-terminated. */
static int parse_string(struct parser *ps, char **out, size_t *out_len)
{
	const char *s = ps->p;
	size_t n = 0, cap;
	char *buf;

	/* The decoded text is never longer than the encoded one. */
	while (s < ps->end && *s != '"') {
		if (*s == '\\')
			s++;
		s++;
	}
	if (s >= ps->end)
		return -KILN_EFORMAT;
	cap = (size_t)(s - ps->p) + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	while (ps->p < ps->end && *ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p++;

		if (c < 0x20)
			goto bad;
		if (c != '\\') {
			buf[n++] = (char)c;
			continue;
		}
		if (ps->p >= ps->end)
			goto bad;
		c = (unsigned char)*ps->p++;
		switch (c) {
		case '"': case '\\': case '/':
			buf[n++] = (char)c;
			break;
		case 'b': buf[n++] = '\b'; break;
		case 'f': buf[n++] = '\f'; break;
		case 'n': buf[n++] = '\n'; break;
		case 'r': buf[n++] = '\r'; break;
		case 't': buf[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;

			if (ps->end - ps->p < 4 || hex4(ps->p, &cp))
				goto bad;
			ps->p += 4;
			if (cp >= 0xdc00 && cp < 0xe000)
				goto bad;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
				    hex4(ps->p + 2, &lo) || lo < 0xdc00 || lo >= 0xe000)
					goto bad;
				ps->p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				goto bad; /* no NUL inside C strings */
			n += put_utf8(buf + n, cp);
			break;
		}
		default:
			goto bad;
		}
	}
	if (ps->p >= ps->end)
		goto bad;
	ps->p++; /* closing quote */
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return 0;
bad:
	kiln_free_secret(buf, cap);
	return -KILN_EFORMAT;
}

static int parse_value(struct parser *ps, struct rt_json **out);

static int add_item(struct rt_json *j, struct rt_json *item, char *key, size_t *cap)
{
	if (j->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct rt_json **items;
		char **keys = NULL;

		if (nc > JSON_MAX_ITEMS)
			return -E2BIG;
		items = realloc(j->items, nc * sizeof(*items));
		if (!items)
			return -ENOMEM;
		j->items = items;
		if (j->type == RT_JSON_OBJECT) {
			keys = realloc(j->keys, nc * sizeof(*keys));
			if (!keys)
				return -ENOMEM;
			j->keys = keys;
		}
		*cap = nc;
	}
	j->items[j->n] = item;
	if (key)
		j->keys[j->n] = key;
	j->n++;
	return 0;
}

static int parse_container(struct parser *ps, struct rt_json *j, char close)
{
	size_t cap = 0;
	int ret;

	if (++ps->depth > JSON_MAX_DEPTH)
		return -KILN_EFORMAT;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		ps->depth--;
		return 0;
	}
	for (;;) {
		struct rt_json *item = NULL;
		char *key = NULL;
		size_t klen;

		skip_ws(ps);
		if (close == '}') {
			if (ps->p >= ps->end || *ps->p != '"')
				return -KILN_EFORMAT;
			ps->p++;
			ret = parse_string(ps, &key, &klen);
			if (ret)
				return ret;
			if (rt_json_get(j, key)) {
				free(key);
				return -KILN_EFORMAT; /* duplicate key */
			}
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				return -KILN_EFORMAT;
			}
			ps->p++;
		}
		ret = parse_value(ps, &item);
		if (ret == 0)
			ret = add_item(j, item, key, &cap);
		if (ret) {
			free(key);
			rt_json_free(item);
			return ret;
		}
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			ps->depth--;
			return 0;
		}
		return -KILN_EFORMAT;
	}
}

static int parse_number(struct parser *ps, struct rt_json *j)
{
	const char *s = ps->p;
	bool neg = false, is_int = true;
	long long v = 0;

	if (s < ps->end && *s == '-') {
		neg = true;
		s++;
	}
	if (s >= ps->end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < ps->end &&
						      s[1] >= '0' && s[1] <= '9'))
		return -KILN_EFORMAT;
	while (s < ps->end && *s >= '0' && *s <= '9') {
		if (v > (9223372036854775807LL - (*s - '0')) / 10)
			is_int = false;
		else
			v = v * 10 + (*s - '0');
		s++;
	}
	if (s < ps->end && *s == '.') {
		is_int = false;
		s++;
		if (s >= ps->end || *s < '0' || *s > '9')
			return -KILN_EFORMAT;
		while (s < ps->end && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < ps->end && (*s == 'e' || *s == 'E')) {
		is_int = false;
		s++;
		if (s < ps->end && (*s == '+' || *s == '-'))
			s++;
		if (s >= ps->end || *s < '0' || *s > '9')
			return -KILN_EFORMAT;
		while (s < ps->end && *s >= '0' && *s <= '9')
			s++;
	}
	j->type = RT_JSON_NUMBER;
	j->is_int = is_int;
	j->num = neg ? -v : v;
	ps->p = s;
	return 0;
}

static bool literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
		return false;
	ps->p += n;
	return true;
}

static int parse_value(struct parser *ps, struct rt_json **out)
{
	struct rt_json *j = calloc(1, sizeof(*j));
	int ret = -KILN_EFORMAT;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	skip_ws(ps);
	if (ps->p >= ps->end)
		goto fail;
	switch (*ps->p) {
	case '{':
	case '[':
		j->type = *ps->p == '{' ? RT_JSON_OBJECT : RT_JSON_ARRAY;
		ps->p++;
		ret = parse_container(ps, j, j->type == RT_JSON_OBJECT ? '}' : ']');
		break;
	case '"':
		j->type = RT_JSON_STRING;
		ps->p++;
		ret = parse_string(ps, &j->str, &j->str_len);
		break;
	case 't':
	case 'f':
		j->type = RT_JSON_BOOL;
		j->boolean = *ps->p == 't';
		ret = literal(ps, j->boolean ? "true" : "false") ? 0 : -KILN_EFORMAT;
		break;
	case 'n':
		j->type = RT_JSON_NULL;
		ret = literal(ps, "null") ? 0 : -KILN_EFORMAT;
		break;
	default:
		ret = parse_number(ps, j);
		break;
	}
	if (ret)
		goto fail;
	*out = j;
	return 0;
fail:
	rt_json_free(j);
	return ret;
}

int rt_json_parse(const char *text, size_t size, struct rt_json **out)
{
	struct parser ps = { text, text + size, 0 };
	int ret;

	*out = NULL;
	ret = parse_value(&ps, out);
	if (ret)
		return ret;
	skip_ws(&ps);
	if (ps.p != ps.end) {
		rt_json_free(*out);
		*out = NULL;
		return -KILN_EFORMAT;
	}
	return 0;
}

void rt_json_free(struct rt_json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		rt_json_free(j->items[i]);
		if (j->keys)
			kiln_free_secret(j->keys[i], strlen(j->keys[i]) + 1);
	}
	free(j->items);
	free(j->keys);
	if (j->str)
		kiln_free_secret(j->str, j->str_len + 1);
	free(j);
}

const struct rt_json *rt_json_get(const struct rt_json *obj, const char *key)
{
	if (!obj || obj->type != RT_JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

const char *rt_json_str(const struct rt_json *j)
{
	return j && j->type == RT_JSON_STRING ? j->str : NULL;
}

int rt_json_quote(const char *s, char **out)
{
	size_t n = 0, len = strlen(s);
	char *buf = malloc(6 * len + 3);

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	buf[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)*p;
		} else if (*p < 0x20) {
			n += (size_t)snprintf(buf + n, 7, "\\u%04x", *p);
		} else {
			buf[n++] = (char)*p;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
	*out = buf;
	return 0;
}
