/* Structured logging for main() and daemons (library code never logs).
 *
 * Every message is rate-limited by its text (the `msg` value, per level), the
 * way the Linux kernel's printk_ratelimit does it: at most g_burst lines of one
 * message per window of g_window_s seconds. A daemon under attack logs the same
 * few lines at whatever rate the attacker chooses (10.1 million accept()
 * warnings in 45 s were seen); beyond the burst, lines are counted, not written,
 * and the count comes out as one line `msg="suppressed N similar lines"
 * similar="<msg>"` once the window is over (at the next line of any message,
 * or at kiln_log_flush()). Distinct messages never suppress each other (up to
 * LOG_KEYS tracked at once). */
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOG_KEYS 64
#define LOG_MSG_KEY 64

struct log_key {
	char msg[LOG_MSG_KEY];   /* the message (truncated), "" = free slot */
	enum kiln_log_level level;
	uint64_t window_ns;      /* start of the current window */
	unsigned written;        /* lines written in it */
	uint64_t suppressed;     /* lines not written since the last summary */
	uint64_t used_ns;        /* last time a line of it came (written or not) */
};

/* Atomic: a daemon changes it at run time (kiln cas serve on SIGHUP). */
static _Atomic unsigned g_log_level = KILN_LOG_INFO;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
/* All below: under g_log_lock. */
static struct log_key g_keys[LOG_KEYS];
static unsigned g_burst = 50, g_window_s = 5;
static uint64_t g_last_flush_ns;

void kiln_log_set_level(enum kiln_log_level level)
{
	g_log_level = level;
}

void kiln_log_set_rate(unsigned burst, unsigned window_s)
{
	pthread_mutex_lock(&g_log_lock);
	g_burst = burst;
	g_window_s = window_s;
	memset(g_keys, 0, sizeof(g_keys));
	pthread_mutex_unlock(&g_log_lock);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t kiln_escape_text(char *out, size_t out_size, const char *in, size_t in_len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	if (!out_size)
		return 0;
	for (size_t i = 0; i < in_len;) {
		size_t len = utf8_len(s + i, in_len - i);
		char esc[4];
		size_t elen = 0;

		if (len == 1 && (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')) {
			if (s[i] == '\\') {
				esc[elen++] = '\\';
				esc[elen++] = '\\';
			} else {
				esc[elen++] = '\\';
				esc[elen++] = 'x';
				esc[elen++] = hex[s[i] >> 4];
				esc[elen++] = hex[s[i] & 15];
			}
			len = 1;
		} else if (len == 0) {
			esc[elen++] = '\\';
			esc[elen++] = 'x';
			esc[elen++] = hex[s[i] >> 4];
			esc[elen++] = hex[s[i] & 15];
			len = 1;
		}
		if (elen) {
			if (o + elen >= out_size)
				break;
			memcpy(out + o, esc, elen);
		} else {
			if (o + len >= out_size)
				break;
			memcpy(out + o, s + i, len);
			elen = len;
		}
		o += elen;
		i += len;
	}
	out[o] = '\0';
	return o;
}

static void log_quoted(FILE *f, const char *s)
{
	char buf[1024];
	size_t n = strlen(s);

	fputc('"', f);
	while (n) {
		/* Pieces end at a character boundary (a UTF-8 sequence is never
		 * cut into bytes that would be escaped). */
		size_t piece = n < 200 ? n : 200;

		while (piece < n && piece > 1 && ((unsigned char)s[piece] & 0xc0) == 0x80)
			piece--;

		kiln_escape_text(buf, sizeof(buf), s, piece);
		for (const char *p = buf; *p; p++) {
			if (*p == '"')
				fputc('\\', f);
			fputc(*p, f);
		}
		s += piece;
		n -= piece;
	}
	fputc('"', f);
}

static const char *const g_level_names[] = { "debug", "info", "warn", "error" };

const char *kiln_log_level_name(enum kiln_log_level level)
{
	return (unsigned)level < KILN_ARRAY_SIZE(g_level_names) ? g_level_names[level] : "?";
}

int kiln_log_level_parse(const char *s, enum kiln_log_level *out)
{
	for (size_t i = 0; i < KILN_ARRAY_SIZE(g_level_names); i++) {
		if (!strcmp(s, g_level_names[i])) {
			*out = (enum kiln_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void log_head(enum kiln_log_level level)
{
	char ts[32];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "ts=%s.%03ldZ level=%s msg=", ts, now.tv_nsec / 1000000,
		g_level_names[level]);
}

/* The summary line of a key's suppressed lines (g_log_lock held). */
static void log_summary(struct log_key *k)
{
	char msg[64];

	if (!k->suppressed)
		return;
	snprintf(msg, sizeof(msg), "suppressed %llu similar lines",
		 (unsigned long long)k->suppressed);
	log_head(k->level);
	log_quoted(stderr, msg);
	fputs(" similar=", stderr);
	log_quoted(stderr, k->msg);
	fputc('\n', stderr);
	fflush(stderr);
	k->suppressed = 0;
}

static uint64_t window_ns(void)
{
	return (uint64_t)g_window_s * 1000000000ull;
}

/* Summaries of the keys whose window is over (g_log_lock held); looked at once
 * a second at most, or for all keys at once. */
static void log_flush_over(uint64_t now_ns, bool all)
{
	if (!all && now_ns - g_last_flush_ns < 1000000000ull)
		return;
	g_last_flush_ns = now_ns;
	for (size_t i = 0; i < LOG_KEYS; i++)
		if (g_keys[i].suppressed && (all || now_ns - g_keys[i].window_ns >= window_ns()))
			log_summary(&g_keys[i]);
}

/* The key of (level, msg), made (or recycled, least recently used) when new
 * (g_log_lock held). */
static struct log_key *log_key_of(enum kiln_log_level level, const char *msg, uint64_t now_ns)
{
	struct log_key *lru = &g_keys[0];

	for (size_t i = 0; i < LOG_KEYS; i++) {
		struct log_key *k = &g_keys[i];

		if (k->msg[0] && k->level == level && !strncmp(k->msg, msg, LOG_MSG_KEY - 1))
			return k;
		if (!k->msg[0] || (lru->msg[0] && k->used_ns < lru->used_ns))
			lru = k;
	}
	log_summary(lru);
	memset(lru, 0, sizeof(*lru));
	snprintf(lru->msg, sizeof(lru->msg), "%s", msg[0] ? msg : "-");
	lru->level = level;
	lru->window_ns = now_ns;
	return lru;
}

/* May a line of this message be written now? (g_log_lock held) */
static bool log_admit(enum kiln_log_level level, const char *msg, uint64_t now_ns)
{
	struct log_key *k;

	if (!g_burst)
		return true;
	k = log_key_of(level, msg, now_ns);
	k->used_ns = now_ns;
	if (now_ns - k->window_ns >= window_ns()) {
		log_summary(k);
		k->window_ns = now_ns;
		k->written = 0;
	}
	if (k->written >= g_burst) {
		k->suppressed++;
		return false;
	}
	k->written++;
	return true;
}

void kiln_log(enum kiln_log_level level, const char *msg, const char *kvfmt, ...)
{
	uint64_t now_ns;
	va_list ap;

	if (level < g_log_level)
		return;
	now_ns = kiln_now_ns();
	pthread_mutex_lock(&g_log_lock);
	log_flush_over(now_ns, false);
	if (!log_admit(level, msg, now_ns)) {
		pthread_mutex_unlock(&g_log_lock);
		return;
	}
	log_head(level);
	log_quoted(stderr, msg);
	if (kvfmt && kvfmt[0]) {
		fputc(' ', stderr);
		va_start(ap, kvfmt);
		vfprintf(stderr, kvfmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&g_log_lock);
}

void kiln_log_flush(void)
{
	pthread_mutex_lock(&g_log_lock);
	log_flush_over(kiln_now_ns(), true);
	fflush(stderr);
	pthread_mutex_unlock(&g_log_lock);
}
