/* kiln console: read the protected console of a service (docs/runtime.md,
 * "Console shield"). The console key comes from the CAS (POST /v1/console),
 * which gives it only to identities the policy lists as the service's console
 * readers; everything else happens here: records are opened and checked, and
 * every dropped, reordered, repeated or modified record is reported by number.
 *
 *   kiln console read   --session S --service N [CAS OPTIONS] [FILE]
 *   kiln console attach --session S --service N [CAS OPTIONS] -- COMMAND [ARGS...]
 *   kiln console attach --session S --service N [CAS OPTIONS] --connect ADDR
 *
 * attach runs COMMAND (typically `kiln run ...` of the service) with its
 * stdin, stdout and stderr on pipes: its output is shown as it comes, and what
 * is typed on attach's stdin goes to the program as records bound to the
 * program's stream (so it is refused by any other run). With --connect it
 * joins a program under `kiln run --console-listen ADDR` instead
 * (console_relay.h), which it may leave and rejoin. */
#include "cli/cas_verify.h"
#include "cli/console_relay.h"
#include "cli/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cas/cas.h"
#include "casclient/casclient.h"
#include "console/console.h"
#include "crypto/crypto.h"

static void console_usage(FILE *f)
{
	fprintf(f, "Usage: kiln console read   --session S --service N [CAS OPTIONS] [-v] [FILE]\n"
		   "       kiln console attach --session S --service N [CAS OPTIONS] [-v]\n"
		   "                           -- COMMAND [ARGS...]\n"
		   "       kiln console attach --session S --service N [CAS OPTIONS] [-v]\n"
		   "                           --connect unix:PATH|tcp:HOST:PORT\n\n"
		   "read    decrypt a captured console (FILE, or stdin): the program's stdout\n"
		   "        to stdout, its stderr to stderr; every dropped, reordered, repeated,\n"
		   "        modified or cut record is reported on stderr by number\n"
		   "attach  run COMMAND (e.g. kiln run ... -- PROG) with its stdin, stdout and\n"
		   "        stderr on pipes: show its output as it comes and send what is typed\n"
		   "        here to it, encrypted for that run only\n"
		   "--connect ADDR\n"
		   "        attach to a program running under 'kiln run --console-listen ADDR'\n"
		   "        instead (one client at a time): its output as it comes, records\n"
		   "        missed before this attach reported by number; the end of input\n"
		   "        ends the program's stdin; interrupt to detach (it keeps running)\n"
		   "-v      also name each stream (process) as it starts\n\n"
		   "The console key comes from the CAS, which gives it only to the identities\n"
		   "listed in the service's 'console: {readers: [...]}' (403 otherwise).\n"
		   "Exit status: read: 0 when every record was there and authentic, 1 otherwise;\n"
		   "attach: COMMAND's status, or 1 when a record was missing or not authentic;\n"
		   "attach --connect: 0, or 1 when a record was missing or not authentic.\n\n"
		   "CAS OPTIONS (defaults from the environment variable in brackets):\n"
		   "  --cas URL               https://HOST:PORT of kiln-cas [KILN_CAS]\n"
		   "  --identity FILE         your identity [KILN_IDENTITY]\n"
		   "  --cas-ca FILE           CA certificate to pin [KILN_CAS_CA]\n"
		   "  --cas-fingerprint HEX   or the CA's SHA-256 fingerprint\n"
		   "                          [KILN_CAS_FINGERPRINT]\n");
}

struct console_args {
	struct policy_args cas; /* the CAS OPTIONS (cli/policy.h) */
	const char *session, *service;
	bool verbose;
	const char *connect;         /* attach --connect ADDR, as given */
	struct cli_con_addr addr;
};

static int parse_args(int argc, char **argv, struct console_args *a)
{
	static const struct option opts[] = {
		{ "cas", required_argument, NULL, 'c' },
		{ "identity", required_argument, NULL, 'i' },
		{ "cas-ca", required_argument, NULL, 'a' },
		{ "cas-fingerprint", required_argument, NULL, 'f' },
		{ "session", required_argument, NULL, 's' },
		{ "service", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "connect", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	cli_cas_opts_init(&a->cas);
	optind = 1;
	/* "+": stop at the first operand (attach's COMMAND keeps its options). */
	while ((c = getopt_long(argc, argv, "+c:i:a:f:s:n:vh", opts, NULL)) != -1) {
		if (cli_cas_opt(&a->cas, c, optarg))
			continue;
		switch (c) {
		case 's':
			a->session = optarg;
			break;
		case 'n':
			a->service = optarg;
			break;
		case 'v':
			a->verbose = true;
			break;
		case 'C':
			if (strcmp(argv[0], "attach")) {
				cli_error("console %s: --connect is an option of attach", argv[0]);
				return -1;
			}
			if (cli_con_addr_parse("--connect", optarg, &a->addr) < 0)
				return -1;
			a->connect = optarg;
			break;
		case 'h':
			console_usage(stdout);
			return 1;
		default:
			console_usage(stderr);
			return -1;
		}
	}
	if (!a->session || !a->service) {
		cli_error("console %s: --session and --service are required", argv[0]);
		return -1;
	}
	if (!a->cas.client.url || !a->cas.identity ||
	    (!a->cas.client.ca_file && !a->cas.client.fingerprint)) {
		cli_error("console %s: needs a CAS (--cas), an identity (--identity) and a CA pin "
			  "(--cas-ca or --cas-fingerprint)", argv[0]);
		return -1;
	}
	return 0;
}

/* The console key from the CAS; the caller wipes it. */
static int fetch_key(struct console_args *a, const char *cmd, uint8_t key[CON_KEY_SIZE])
{
	struct cc_response resp = { 0 };
	struct kiln_err err = { 0 };
	json_t *req = json_pack("{s:s,s:s}", "session", a->session, "service", a->service);
	json_t *j = NULL;
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	char expect_key[72], what[64];
	const char *hex;
	int ret;

	json_decref(req);
	if (!body) {
		cli_error("console %s: out of memory", cmd);
		return CLI_EXIT_FAIL;
	}
	/* KILN_CAS_EXPECT: the CAS proves what it is before the key is asked for. */
	snprintf(what, sizeof(what), "console %s", cmd);
	if (cli_cas_expect_env(&a->cas.client, what, expect_key) < 0) {
		free(body);
		return CLI_EXIT_FAIL;
	}
	ret = cas_identity_load(a->cas.identity, &a->cas.client.key, &a->cas.client.cert, &err);
	if (ret == 0)
		ret = cc_request(&a->cas.client, "POST", "/v1/console", "application/json", body,
				 strlen(body), &resp, &err);
	EVP_PKEY_free(a->cas.client.key);
	X509_free(a->cas.client.cert);
	a->cas.client.key = NULL;
	a->cas.client.cert = NULL;
	a->cas.client.server_key = NULL; /* expect_key goes out of scope */
	free(body);
	if (ret < 0) {
		cli_error("console %s: %s", cmd, kiln_err_msg(&err, ret));
		return CLI_EXIT_FAIL;
	}
	j = json_loadb(resp.body, resp.body_size, 0, NULL);
	if (resp.status != 200) {
		const char *msg = json_string_value(json_object_get(j, "error"));

		cli_error("console %s: CAS answered %d: %s", cmd, resp.status,
			  msg ? msg : "(no message)");
		ret = -KILN_EDENIED;
	} else if (!(hex = json_string_value(json_object_get(j, "key"))) ||
		   kiln_hex_decode(hex, key, CON_KEY_SIZE, NULL) < 0) {
		cli_error("console %s: the CAS answer has no console key", cmd);
		ret = -KILN_EFORMAT;
	}
	json_decref(j);
	cc_response_free(&resp);
	return ret < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- reporting ---- */
struct out {
	bool verbose;
	int fd_out, fd_err; /* where stdout and stderr of the program go */
	bool failed_write;
	bool live;          /* attach --connect: joined a running program */
	bool shown[3];      /* a data record of the channel was shown */
};

static const char *chan_name(uint8_t ch)
{
	return ch == CON_STDIN ? "stdin" : ch == CON_STDOUT ? "stdout" : "stderr";
}

static void on_event(void *ctx, const struct con_event *ev)
{
	struct out *o = ctx;
	char id[17];
	const char *ch = chan_name(ev->channel);

	kiln_hex_encode(ev->id, 8, id);
	switch (ev->kind) {
	case CON_EV_STREAM:
		if (o->verbose && ev->channel == CON_STDOUT) {
			time_t t = (time_t)(ev->info->start_ns / 1000000000ull);
			char when[32] = "?";
			struct tm tm;

			if (gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			fprintf(stderr, "kiln: console: stream %s: pid %u (%s), started %s\n", id,
				ev->info->pid, ev->info->program, when);
		}
		break;
	case CON_EV_DATA:
		o->shown[ev->channel] = true;
		if (kiln_write_all(ev->channel == CON_STDERR ? o->fd_err : o->fd_out, ev->data,
				   ev->size) < 0)
			o->failed_write = true;
		break;
	case CON_EV_END:
		if (o->verbose)
			fprintf(stderr, "kiln: console: stream %s: %s ended (exit status %d)\n",
				id, ch, ev->status);
		break;
	case CON_EV_GAP:
		fprintf(stderr, "kiln: console: stream %s %s: record%s %llu%s%.0llu missing%s\n",
			id, ch, ev->seq == ev->seq2 ? "" : "s", (unsigned long long)ev->seq,
			ev->seq == ev->seq2 ? "" : "-", ev->seq == ev->seq2 ? 0ull :
			(unsigned long long)ev->seq2, o->live && !o->shown[ev->channel] ?
			" (before this attach: shown to an earlier one, or dropped while none "
			"was attached)" : "");
		break;
	case CON_EV_DROPPED:
		fprintf(stderr, "kiln: console: stream %s %s: record%s %llu%s%.0llu never came "
			"(dropped)\n", id, ch, ev->seq == ev->seq2 ? "" : "s",
			(unsigned long long)ev->seq, ev->seq == ev->seq2 ? "" : "-",
			ev->seq == ev->seq2 ? 0ull : (unsigned long long)ev->seq2);
		break;
	case CON_EV_LATE:
		fprintf(stderr, "kiln: console: stream %s %s: record %llu came after later "
			"ones (reordered)\n", id, ch, (unsigned long long)ev->seq);
		break;
	case CON_EV_REPLAY:
		fprintf(stderr, "kiln: console: stream %s %s: record %llu came again (replayed): "
			"dropped\n", id, ch, (unsigned long long)ev->seq);
		break;
	case CON_EV_AUTH:
		fprintf(stderr, "kiln: console: stream %s %s: record %llu (byte %llu) does not "
			"authenticate (modified, or written under another console key): dropped\n",
			id, ch, (unsigned long long)ev->seq, (unsigned long long)ev->offset);
		break;
	case CON_EV_GARBAGE:
		fprintf(stderr, "kiln: console: bytes %llu-%llu are not console records: "
			"skipped\n", (unsigned long long)ev->offset,
			(unsigned long long)(ev->offset + ev->size - 1));
		break;
	case CON_EV_PREAMBLE:
		fprintf(stderr, "kiln: console: bytes 0-%llu before the first record are not "
			"console records (kiln's own lines before the attestation, such as the "
			"INSECURE warning of sim): skipped\n",
			(unsigned long long)(ev->size - 1));
		break;
	case CON_EV_AFTER_END:
		fprintf(stderr, "kiln: console: stream %s %s: record %llu after the end record: "
			"dropped\n", id, ch, (unsigned long long)ev->seq);
		break;
	case CON_EV_TRUNCATED:
		if (ev->offset)
			fprintf(stderr, "kiln: console: the input ends inside a record (byte "
				"%llu)\n", (unsigned long long)ev->offset);
		else
			fprintf(stderr, "kiln: console: stream %s %s: ends after record %llu "
				"without its end record (cut off, or the program was killed)\n",
				id, ch, (unsigned long long)(ev->seq ? ev->seq - 1 : 0));
		break;
	case CON_EV_LIMIT:
		fprintf(stderr, "kiln: console: too many streams: records of stream %s and "
			"later new streams are not read\n", id);
		break;
	}
}

static int read_main(int argc, char **argv)
{
	struct console_args a;
	uint8_t key[CON_KEY_SIZE], buf[65536];
	struct out o = { .fd_out = 1, .fd_err = 2 };
	struct con_reader *r = NULL;
	int fd = 0, ret = parse_args(argc, argv, &a);

	if (ret)
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	if (optind + 1 < argc) {
		cli_error("console read: at most one FILE");
		return CLI_EXIT_USAGE;
	}
	if (optind < argc && strcmp(argv[optind], "-")) {
		fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			cli_error("console read: %s: %s", argv[optind], strerror(errno));
			return CLI_EXIT_FAIL;
		}
	}
	o.verbose = a.verbose;
	ret = fetch_key(&a, "read", key);
	if (ret == CLI_EXIT_OK && con_reader_new(key, on_event, &o, &r) < 0)
		ret = CLI_EXIT_FAIL;
	OPENSSL_cleanse(key, sizeof(key));
	while (ret == CLI_EXIT_OK) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_error("console read: %s", strerror(errno));
			ret = CLI_EXIT_FAIL;
			break;
		}
		if (n == 0)
			break;
		if (con_reader_feed(r, buf, (size_t)n) < 0) {
			cli_error("console read: out of memory");
			ret = CLI_EXIT_FAIL;
		}
	}
	if (r) {
		con_reader_finish(r);
		if (ret == CLI_EXIT_OK && con_reader_problems(r)) {
			fprintf(stderr, "kiln: console read: %llu problem%s found: this is not the "
				"whole, authentic console\n",
				(unsigned long long)con_reader_problems(r),
				con_reader_problems(r) == 1 ? "" : "s");
			ret = CLI_EXIT_FAIL;
		}
		if (o.failed_write)
			ret = CLI_EXIT_FAIL;
	}
	con_reader_free(r);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (fd > 0)
		close(fd);
	return ret;
}

/* ---- attach ---- */
struct attach_in {
	struct con_stream *s;     /* once the program's stream id is known */
	uint64_t seq;
	uint8_t pending[65536];   /* typed before the stream was known */
	size_t n_pending;
	int fd;                   /* the program's stdin pipe (--connect: a dup of
				   * the socket), -1 once closed */
	bool eof;                 /* attach's own input ended */
};

/* Send size bytes of input as records (blocking: input is small). */
static int send_input(struct attach_in *in, const uint8_t *p, size_t size, uint8_t type)
{
	uint8_t rec[CON_MAX_RECORD];

	do {
		size_t n = size < CON_MAX_PAYLOAD ? size : CON_MAX_PAYLOAD;
		int len = con_seal(in->s, type, CON_STDIN, in->seq++, p, n, rec);

		if (len < 0 || kiln_write_all(in->fd, rec, (size_t)len) < 0)
			return -EPIPE;
		p += n;
		size -= n;
	} while (size);
	return 0;
}

static int attach_bind(struct attach_in *in, const uint8_t *key, const uint8_t *id)
{
	struct con_info info = { .pid = (uint32_t)getpid() };
	uint8_t p[CON_INFO_SIZE];
	struct timespec ts;

	if (con_stream_new(key, id, &in->s) < 0)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &ts);
	info.start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	snprintf(info.program, sizeof(info.program), "kiln console attach");
	con_info_encode(&info, p);
	if (send_input(in, p, sizeof(p), CON_T_HEADER) < 0)
		return -EPIPE;
	if (in->n_pending && send_input(in, in->pending, in->n_pending, CON_T_DATA) < 0)
		return -EPIPE;
	in->n_pending = 0;
	if (in->eof) {
		send_input(in, NULL, 0, CON_T_END);
		close(in->fd);
		in->fd = -1;
	}
	return 0;
}

/* Bind the input to the program's stream as soon as r has seen it. */
static void attach_bind_once(struct attach_in *in, const uint8_t *key,
			     const struct con_reader *r)
{
	const uint8_t *id;

	if (!in->s && in->fd >= 0 && (id = con_reader_first_stream(r)) &&
	    attach_bind(in, key, id) < 0) {
		close(in->fd);
		in->fd = -1;
	}
}

/* What is typed (on *user_in): records to the program once bound, else kept. */
static void attach_input(struct attach_in *in, int *user_in, uint8_t *buf, size_t size)
{
	ssize_t n = read(*user_in, buf, size);

	if (n > 0 && in->s) {
		if (send_input(in, buf, (size_t)n, CON_T_DATA) < 0) {
			close(in->fd);
			in->fd = -1;
		}
	} else if (n > 0 && in->n_pending + (size_t)n <= sizeof(in->pending)) {
		memcpy(in->pending + in->n_pending, buf, (size_t)n);
		in->n_pending += (size_t)n;
	} else if (n > 0) {
		cli_error("console attach: the program has not started its console yet: "
			  "input dropped");
	} else if (n == 0 || errno != EINTR) {
		/* End of input: an end record, so the program sees EOF (and
		 * knows nothing was cut). */
		in->eof = true;
		if (in->s) {
			send_input(in, NULL, 0, CON_T_END);
			close(in->fd);
			in->fd = -1;
		}
		*user_in = -1;
	}
}

/* Read the relay's greeting from fd (it may come with records after it,
 * which go to r): 0, or -1 after telling. */
static int attach_greeting(int fd, const char *addr, struct con_reader *r)
{
	uint8_t buf[64];
	size_t len = 0, used;

	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		int ret;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cli_error("console attach: --connect %s: %s", addr,
				  n ? strerror(errno) : "closed before its greeting (not a "
				  "kiln console, or it refused us)");
			return -1;
		}
		len += (size_t)n;
		ret = con_hello_parse(buf, len, &used);
		if (ret == -EAGAIN && len < sizeof(buf))
			continue;
		if (ret == -EBUSY) {
			cli_error("console attach: --connect %s: another client is attached to "
				  "this console (one at a time): refused", addr);
			return -1;
		}
		if (ret < 0) {
			cli_error("console attach: --connect %s: not a kiln console "
				  "(kiln run --console-listen)", addr);
			return -1;
		}
		return con_reader_feed(r, buf + used, len - used) < 0 ? -1 : 0;
	}
}

/* attach --connect: to a program under kiln run --console-listen. Input is
 * numbered from this machine's clock in nanoseconds: each attach's numbers
 * (so nonces) start past those of every earlier one, and the runtime takes a
 * new header record only ahead of what it has read. */
static int attach_connect(struct console_args *a, struct out *o, const uint8_t *key)
{
	struct con_reader *r = NULL;
	struct attach_in *in = calloc(1, sizeof(*in));
	uint8_t buf[16384];
	struct timespec ts;
	int fd = -1, ret = CLI_EXIT_FAIL, user_in = 0;

	o->live = true;
	if (!in || con_reader_new(key, on_event, o, &r) < 0) {
		cli_error("console attach: out of memory");
		goto out;
	}
	in->fd = -1;
	fd = cli_con_connect("--connect", &a->addr);
	if (fd < 0 || attach_greeting(fd, a->connect, r) < 0)
		goto out;
	in->fd = dup(fd);
	clock_gettime(CLOCK_REALTIME, &ts);
	in->seq = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct pollfd pf[2] = { { fd, POLLIN, 0 },
					{ in->fd >= 0 && user_in >= 0 ? user_in : -1, POLLIN, 0 } };
		ssize_t n;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break; /* the program ended (or the relay went away) */
			if (con_reader_feed(r, buf, (size_t)n) < 0)
				break;
		}
		attach_bind_once(in, key, r);
		if (pf[1].revents && in->fd >= 0)
			attach_input(in, &user_in, buf, sizeof(buf));
	}
	con_reader_finish(r);
	if (con_reader_problems(r)) {
		fprintf(stderr, "kiln: console attach: problems found: this was not the whole, "
			"authentic console\n");
		ret = CLI_EXIT_FAIL;
	} else {
		ret = o->failed_write ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	}
out:
	if (fd >= 0)
		close(fd);
	if (in) {
		if (in->fd >= 0)
			close(in->fd);
		con_stream_free(in->s);
		OPENSSL_cleanse(in, sizeof(*in));
		free(in);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	con_reader_free(r);
	return ret;
}

static int attach_main(int argc, char **argv)
{
	struct console_args a;
	uint8_t key[CON_KEY_SIZE], buf[16384];
	struct out o = { .fd_out = 1, .fd_err = 2 };
	struct con_reader *r_out = NULL, *r_err = NULL;
	struct attach_in *in = NULL;
	int p_in[2] = { -1, -1 }, p_out[2] = { -1, -1 }, p_err[2] = { -1, -1 };
	int ret = parse_args(argc, argv, &a), status = 0, user_in = 0;
	pid_t pid = -1;

	if (ret)
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	if (a.connect && optind < argc) {
		cli_error("console attach: --connect or a COMMAND, not both");
		return CLI_EXIT_USAGE;
	}
	if (a.connect) {
		o.verbose = a.verbose;
		ret = fetch_key(&a, "attach", key);
		if (ret == CLI_EXIT_OK)
			ret = attach_connect(&a, &o, key);
		OPENSSL_cleanse(key, sizeof(key));
		return ret;
	}
	if (optind >= argc) {
		cli_error("console attach: no COMMAND (kiln console attach ... -- COMMAND ...) "
			  "or --connect ADDR");
		return CLI_EXIT_USAGE;
	}
	o.verbose = a.verbose;
	in = calloc(1, sizeof(*in));
	ret = in ? fetch_key(&a, "attach", key) : CLI_EXIT_FAIL;
	if (ret != CLI_EXIT_OK)
		goto out;
	if (con_reader_new(key, on_event, &o, &r_out) < 0 ||
	    con_reader_new(key, on_event, &o, &r_err) < 0 || pipe2(p_in, O_CLOEXEC) ||
	    pipe2(p_out, O_CLOEXEC) || pipe2(p_err, O_CLOEXEC)) {
		cli_error("console attach: %s", strerror(errno ? errno : ENOMEM));
		ret = CLI_EXIT_FAIL;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		cli_error("console attach: fork: %s", strerror(errno));
		ret = CLI_EXIT_FAIL;
		goto out;
	}
	if (pid == 0) {
		OPENSSL_cleanse(key, sizeof(key));
		if (dup2(p_in[0], 0) < 0 || dup2(p_out[1], 1) < 0 || dup2(p_err[1], 2) < 0)
			_exit(127);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "kiln: console attach: %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	close(p_in[0]);
	close(p_out[1]);
	close(p_err[1]);
	p_in[0] = p_out[1] = p_err[1] = -1;
	in->fd = p_in[1];
	signal(SIGPIPE, SIG_IGN);
	/* Until both output pipes end: output as it comes, input once bound. */
	while (p_out[0] >= 0 || p_err[0] >= 0) {
		struct pollfd pf[3] = { { p_out[0], POLLIN, 0 }, { p_err[0], POLLIN, 0 },
					{ in->fd >= 0 && user_in >= 0 ? user_in : -1, POLLIN, 0 } };

		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i ? &p_err[0] : &p_out[0];
			ssize_t n;

			if (*fd < 0 || !pf[i].revents)
				continue;
			n = read(*fd, buf, sizeof(buf));
			if (n > 0) {
				con_reader_feed(i ? r_err : r_out, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(*fd);
				*fd = -1;
			}
		}
		attach_bind_once(in, key, r_out);
		if (pf[2].revents && in->fd >= 0)
			attach_input(in, &user_in, buf, sizeof(buf));
	}
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	con_reader_finish(r_out);
	con_reader_finish(r_err);
	if (con_reader_problems(r_out) + con_reader_problems(r_err)) {
		fprintf(stderr, "kiln: console attach: problems found: this was not the whole, "
			"authentic console\n");
		ret = CLI_EXIT_FAIL;
	} else {
		ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(buf, sizeof(buf));
	for (int i = 0; i < 2; i++) {
		if (p_in[i] >= 0)
			close(p_in[i]);
		if (p_out[i] >= 0)
			close(p_out[i]);
		if (p_err[i] >= 0)
			close(p_err[i]);
	}
	if (in) {
		con_stream_free(in->s);
		OPENSSL_cleanse(in, sizeof(*in));
		free(in);
	}
	con_reader_free(r_out);
	con_reader_free(r_err);
	return ret;
}

int console_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		console_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "read"))
		return read_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "attach"))
		return attach_main(argc - 1, argv + 1);
	cli_error("console: unknown subcommand '%s' (read, attach)", argv[1]);
	return CLI_EXIT_USAGE;
}
