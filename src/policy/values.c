/* Validators of single values in a policy: names, hashes, identities, paths,
 * DNS names, IP addresses, measurements, advisory ids. */
#include "policy/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_char(char ch, const char *extra)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr(extra, ch);
}

bool pol_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 128 || !name_char(s[0], "") || s[len - 1] == '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i], "._-/") || (s[i] == '/' && s[i + 1] == '/'))
			return false;
	return !strstr(s, "/.") && !strstr(s, "./");
}

int pol__check_policy_name(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (!pol_name_valid(n->str))
		return pol__fail(c, n, "%s: '%s' is not a valid policy name (letters, digits, '.', "
				 "'_', '-', '/'; at most 128)", what, n->str);
	return 0;
}

bool pol__ident_valid(const char *s, const char *extra)
{
	if (!s[0] || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!name_char(*s, extra))
			return false;
	return true;
}

int pol__check_item_name(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (!pol__ident_valid(n->str, "_-"))
		return pol__fail(c, n, "%s: '%s' is not a valid name (letters, digits, '_', '-'; "
				 "at most 64)", what, n->str);
	return 0;
}

int pol__check_env_name(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (!pol__ident_valid(n->str, "_") || (n->str[0] >= '0' && n->str[0] <= '9'))
		return pol__fail(c, n, "%s: '%s' is not a valid environment variable name", what,
				 n->str);
	return 0;
}

bool pol_hash_valid(const char *s)
{
	if (strncmp(s, "sha256:", 7) || strlen(s) != 7 + 64)
		return false;
	for (s += 7; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int pol__check_hash(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (!pol_hash_valid(n->str))
		return pol__fail(c, n,
				 "%s: expected 'sha256:' and 64 lowercase hex digits, found '%s'",
				 what, n->str);
	return 0;
}

int pol__check_identity(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (strcmp(n->str, "owner") && !pol_hash_valid(n->str))
		return pol__fail(c, n, "%s: expected 'owner' or an identity 'sha256:<64 hex>', "
				 "found '%s'", what, n->str);
	return 0;
}

int pol__check_abs_path(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (n->str[0] != '/' || strlen(n->str) > 4096)
		return pol__fail(c, n, "%s: expected an absolute path, found '%s'", what, n->str);
	return 0;
}

int pol__check_dns(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	size_t len = strlen(n->str);

	if (!len || len > 253 ||
	    strspn(n->str, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*") !=
		    len)
		return pol__fail(c, n, "%s: '%s' is not a DNS name", what, n->str);
	return 0;
}

int pol__check_ip(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	uint8_t buf[16];

	if (inet_pton(AF_INET, n->str, buf) != 1 && inet_pton(AF_INET6, n->str, buf) != 1)
		return pol__fail(c, n, "%s: '%s' is not an IP address", what, n->str);
	return 0;
}

int pol__check_measurement(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	size_t len = strlen(n->str);

	if (!strcmp(n->str, "any"))
		return 0;
	if ((len != 64 && len != 96) || strspn(n->str, "0123456789abcdefABCDEF") != len)
		return pol__fail(c, n, "%s: expected 'any' or a measurement (64 or 96 hex digits), "
				 "found '%s'", what, n->str);
	return 0;
}

int pol__check_advisory(struct pol__ctx *c, const struct ynode *n, const char *what)
{
	if (!pol__ident_valid(n->str, "-_."))
		return pol__fail(c, n, "%s: '%s' is not an advisory id", what, n->str);
	return 0;
}
