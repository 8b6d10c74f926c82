/* Unit tests for src/common: encodings, errors, files, descriptor passing,
 * logging. (src/crypto: test_crypto.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/common.h"

static void test_hex_round_trip(void **state)
{
	const uint8_t data[] = { 0x00, 0x01, 0xab, 0xff };
	char hex[9];
	uint8_t back[4];
	size_t len;

	kiln_hex_encode(data, sizeof(data), hex);
	assert_string_equal(hex, "0001abff");
	assert_int_equal(kiln_hex_decode("0001ABFF", back, sizeof(back), NULL), 0);
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(kiln_hex_decode("0001ab", back, sizeof(back), NULL), -KILN_EFORMAT);
	assert_int_equal(kiln_hex_decode("0001ab", back, sizeof(back), &len), 0);
	assert_int_equal(len, 3);
	assert_int_equal(kiln_hex_decode("0g", back, 1, NULL), -KILN_EFORMAT);
	assert_int_equal(kiln_hex_decode("abc", back, 2, &len), -KILN_EFORMAT);
}

static void test_b64(void **state)
{
	uint8_t *out;
	size_t size;
	char *enc = kiln_b64_encode("hello", 5);

	assert_string_equal(enc, "aGVsbG8=");
	free(enc);
	assert_int_equal(kiln_b64_decode("aGVs\nbG8=", &out, &size), 0);
	assert_int_equal(size, 5);
	assert_memory_equal(out, "hello", 5);
	free(out);
	assert_int_equal(kiln_b64_decode("aGVsbG8", &out, &size), -KILN_EFORMAT);
	assert_null(out);
	assert_int_equal(kiln_b64_decode("a*==", &out, &size), -KILN_EFORMAT);
}

static void test_parse_u64(void **state)
{
	uint64_t v;

	assert_int_equal(kiln_parse_u64("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(kiln_parse_u64("-1", &v), -EINVAL);
	assert_int_equal(kiln_parse_u64("12k", &v), -EINVAL);
	assert_int_equal(kiln_parse_u64("", &v), -EINVAL);
	assert_int_equal(kiln_parse_u64("99999999999999999999999", &v), -EINVAL);
}

static void test_errors(void **state)
{
	struct kiln_err e = { 0 };

	assert_string_equal(kiln_strerror(-KILN_EROLLBACK), "rolled back to an older state");
	assert_string_equal(kiln_strerror(-ENOENT), strerror(ENOENT));
	assert_int_equal(kiln_err_set(&e, -KILN_EAUTH, "chunk %d", 3), -KILN_EAUTH);
	kiln_err_prefix(&e, "file %s: ", "a.db");
	assert_string_equal(kiln_err_msg(&e, e.code), "file a.db: chunk 3");
	assert_int_equal(kiln_err_set(NULL, -EIO, "x"), -EIO);
}

static void test_files(void **state)
{
	char dir[] = "/tmp/kiln-test-XXXXXX", path[256];
	uint8_t *data;
	size_t size;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(kiln_mkdir_p(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/a/file", dir);
	assert_int_equal(kiln_write_file_atomic(path, "abc", 3, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(kiln_read_file(path, 3, &data, &size), 0);
	assert_int_equal(size, 3);
	assert_memory_equal(data, "abc", 3);
	free(data);
	assert_int_equal(kiln_read_file(path, 2, &data, &size), -EFBIG);
	assert_null(data);
	assert_int_equal(kiln_write_file_atomic(path, "xy", 2, 0644), 0);
	assert_int_equal(kiln_read_file(path, 100, &data, &size), 0);
	assert_int_equal(size, 2);
	free(data);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(kiln_read_file(path, 10, &data, &size), -ENOENT);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* kiln_send_fd_deadline / kiln_recv_fd_deadline: one descriptor with the first
 * byte; peeking takes it and leaves the bytes; two descriptors are refused. */
static void test_sock_fd(void **state)
{
	uint64_t deadline = kiln_now_ns() + 5000000000ull;
	char buf[8] = { 0 }, cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = buf, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int sp[2], pipefd[2], got = -1, two[2];
	struct stat a, b;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	assert_int_equal(kiln_send_fd_deadline(sp[0], "hello", 5, pipefd[0], deadline), 0);
	assert_int_equal(kiln_recv_fd_deadline(sp[1], buf, 1, MSG_PEEK, deadline, &got), 1);
	assert_true(got >= 0);
	assert_int_equal(fstat(got, &a), 0);
	assert_int_equal(fstat(pipefd[0], &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	assert_int_equal(fcntl(got, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(got);
	/* The bytes are still there; a plain read drops the descriptor. */
	assert_int_equal(read(sp[1], buf, 5), 5);
	assert_memory_equal(buf, "hello", 5);
	/* No descriptor: -1. */
	assert_int_equal(kiln_send_all_deadline(sp[0], "x", 1, deadline), 0);
	assert_int_equal(kiln_recv_fd_deadline(sp[1], buf, 1, 0, deadline, &got), 1);
	assert_int_equal(got, -1);
	/* Two descriptors: -EPROTO, none kept. */
	two[0] = pipefd[0];
	two[1] = pipefd[1];
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(two));
	memcpy(CMSG_DATA(c), two, sizeof(two));
	buf[0] = 'y';
	assert_int_equal(sendmsg(sp[0], &mh, 0), 1);
	assert_int_equal(kiln_recv_fd_deadline(sp[1], buf, 1, 0, deadline, &got), -EPROTO);
	assert_int_equal(got, -1);
	/* Nothing to read: the deadline. */
	assert_int_equal(kiln_recv_fd_deadline(sp[1], buf, 1, 0, kiln_now_ns() + 20000000,
					       &got), -ETIMEDOUT);
	close(sp[0]);
	assert_int_equal(kiln_recv_fd_deadline(sp[1], buf, 1, 0, deadline, &got), 0);
	close(sp[1]);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* Run fn with stderr captured; returns the text (static buffer). */
static const char *capture_stderr(void (*fn)(void))
{
	static char buf[8192];
	char path[] = "/tmp/kiln-test-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void log_flood(void)
{
	kiln_log_set_rate(3, 1);
	for (int i = 0; i < 1000; i++)
		kiln_log(KILN_LOG_WARN, "flood", "i=%d", i);
	kiln_log(KILN_LOG_WARN, "other", "x=1");
	kiln_log_flush();
	kiln_log_set_rate(50, 5);
}

static void escaped_is(const char *in, size_t in_len, const char *want)
{
	char out[64];

	assert_int_equal(kiln_escape_text(out, sizeof(out), in, in_len), strlen(want));
	assert_string_equal(out, want);
}

static void test_escape_text(void **state)
{
	char small[6];

	escaped_is("plain /a/b.txt", 14, "plain /a/b.txt");
	escaped_is("caf\xc3\xa9", 5, "caf\xc3\xa9");            /* valid UTF-8 kept */
	escaped_is("tab\tnl\n", 7, "tab\\x09nl\\x0a");
	escaped_is("a\xff\xfe", 3, "a\\xff\\xfe");               /* not UTF-8 */
	escaped_is("\xc3", 1, "\\xc3");                             /* cut sequence */
	escaped_is("\xc0\xaf", 2, "\\xc0\\xaf");                  /* overlong '/' */
	escaped_is("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");       /* a surrogate */
	escaped_is("x\\y", 3, "x\\\\y");                         /* backslash doubled */
	escaped_is("\x7f", 1, "\\x7f");
	escaped_is("nul\0in", 6, "nul\\x00in");
	/* Cut at a whole character: never half an escape. */
	assert_int_equal(kiln_escape_text(small, sizeof(small), "ab\x01" "cd", 5), 2);
	assert_string_equal(small, "ab");
}

static void test_log_repeated_lines_rate_limited_with_summary(void **state)
{
	const char *out = capture_stderr(log_flood);

	/* the burst of 3, then one summary of the 997 others; another message is
	 * not held back by the flood */
	assert_int_equal(count(out, "msg=\"flood\""), 3);
	assert_non_null(strstr(out, "i=2\n"));
	assert_null(strstr(out, "i=3\n"));
	assert_int_equal(count(out, "msg=\"other\" x=1"), 1);
	assert_int_equal(count(out, "level=warn msg=\"suppressed 997 similar lines\" "
			       "similar=\"flood\""), 1);
}

static void test_private_key_file_refuses_open_modes_and_fifos(void **state)
{
	char dir[] = "/tmp/kiln-test-key-XXXXXX", path[64], fifo[64];
	struct kiln_err err = { 0 };
	uint8_t *data;
	size_t size;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0 && write(fd, "k", 1) == 1);
	close(fd);
	chmod(path, 0644);
	assert_int_equal(kiln_read_private_file(path, 64, &data, &size, &err), -EACCES);
	assert_non_null(strstr(err.msg, "is accessible by group or others (mode 0644)"));
	chmod(path, 0600);
	assert_int_equal(kiln_read_private_file(path, 64, &data, &size, &err), 0);
	assert_int_equal(size, 1);
	free(data);
	/* no writer: must not block */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(kiln_read_private_file(fifo, 64, &data, &size, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "is not a regular file"));
	unlink(fifo);
	unlink(path);
	rmdir(dir);
}

static void test_error_messages_say_when_truncated(void **state)
{
	static char big[70001];
	struct kiln_err err = { 0 };

	memset(big, 'x', sizeof(big) - 1);
	kiln_err_set(&err, -EINVAL, "'%s': invalid volume path", big);
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
	assert_string_equal(err.msg + strlen(err.msg) - 15, "... (truncated)");
	kiln_err_set(&err, -EINVAL, "short");
	kiln_err_prefix(&err, "%.200s: ", big);
	assert_string_equal(err.msg + 200, ": short");
	kiln_err_prefix(&err, "%.200s: ", big);
	kiln_err_prefix(&err, "%.200s: ", big);
	assert_string_equal(err.msg + strlen(err.msg) - 15, "... (truncated)");
}

/* kiln's own files in storage someone else controls: a regular file opens; a
 * symlink (also dangling, also with O_CREAT), a FIFO (without blocking), a
 * directory are -KILN_EUNSAFE; nothing is created or changed through them. */
static void test_open_own(void **state)
{
	char dir[] = "/tmp/kiln-own-XXXXXX", target[128];
	uint8_t *data = NULL;
	size_t size = 0;
	int dfd, fd;

	assert_non_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	snprintf(target, sizeof(target), "%s/target", dir);
	fd = open(target, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);

	fd = kiln_open_own(dfd, "file", O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlinkat(target, dfd, "link"), 0);
	assert_int_equal(kiln_open_own(dfd, "link", O_RDWR | O_TRUNC, 0), -KILN_EUNSAFE);
	assert_int_equal(kiln_open_own(dfd, "link", O_RDONLY, 0), -KILN_EUNSAFE);
	assert_int_equal(symlinkat("target-new", dfd, "dangling"), 0);
	assert_int_equal(kiln_open_own(dfd, "dangling", O_RDWR | O_CREAT, 0600), -KILN_EUNSAFE);
	assert_int_equal(faccessat(dfd, "target-new", F_OK, 0), -1);
	assert_int_equal(mkfifoat(dfd, "fifo", 0600), 0);
	assert_int_equal(kiln_open_own(dfd, "fifo", O_RDONLY, 0), -KILN_EUNSAFE);
	assert_int_equal(kiln_open_own(dfd, "fifo", O_RDWR, 0), -KILN_EUNSAFE);
	assert_int_equal(mkdirat(dfd, "dir", 0700), 0);
	assert_int_equal(kiln_open_own(dfd, "dir", O_RDONLY, 0), -KILN_EUNSAFE);
	assert_int_equal(kiln_open_own(dfd, "dir", O_RDWR, 0), -KILN_EUNSAFE);
	assert_string_equal(kiln_strerror(-KILN_EUNSAFE), "a symbolic link, directory or "
			    "special file where kiln keeps a regular file of its own (planted?): "
			    "refused");
	/* Directories: a real one opens (and is made), a symlink or file is refused. */
	fd = kiln_open_own_dir(dfd, "store", true, 0700);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlinkat(dir, dfd, "store-link"), 0);
	assert_int_equal(kiln_open_own_dir(dfd, "store-link", false, 0), -KILN_EUNSAFE);
	assert_int_equal(kiln_open_own_dir(dfd, "store-link", true, 0700), -KILN_EUNSAFE);
	assert_int_equal(kiln_open_own_dir(dfd, "file", false, 0), -KILN_EUNSAFE);
	/* The target is as it was. */
	assert_int_equal(kiln_read_file(target, 64, &data, &size), 0);
	assert_int_equal(size, 4);
	assert_memory_equal(data, "keep", 4);
	free(data);
	close(dfd);
	{
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_sock_fd),
		cmocka_unit_test(test_escape_text),
		cmocka_unit_test(test_log_repeated_lines_rate_limited_with_summary),
		cmocka_unit_test(test_private_key_file_refuses_open_modes_and_fifos),
		cmocka_unit_test(test_error_messages_say_when_truncated),
		cmocka_unit_test(test_open_own),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
