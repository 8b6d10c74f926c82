/* Shared by the static test programs (static_files.c, static_threads.c):
 * read up to size - 1 bytes of a file into buf, NUL-terminated. The length,
 * or -1 with errno. Only libc. */
#ifndef KILN_TESTS_STATIC_READ_H
#define KILN_TESTS_STATIC_READ_H

#include <fcntl.h>
#include <unistd.h>

static ssize_t read_some(const char *p, char *buf, size_t size)
{
	int fd = open(p, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

#endif
