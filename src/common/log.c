/* Structured logging for main() and daemons (library code never logs). */
#include "common/common.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum kiln_log_level g_log_level = KILN_LOG_INFO;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;

void kiln_log_set_level(enum kiln_log_level level)
{
	g_log_level = level;
}

static void log_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fputc(' ', f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

void kiln_log(enum kiln_log_level level, const char *msg, const char *kvfmt, ...)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (level < g_log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	pthread_mutex_lock(&g_log_lock);
	fprintf(stderr, "ts=%s.%03ldZ level=%s msg=", ts, now.tv_nsec / 1000000, names[level]);
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
