/* kiln CLI: the socket of a live protected console (docs/runtime.md, "The
 * console shield"). `kiln run --console-listen ADDR` runs the program with its
 * stdio on pipes and relays console records (ciphertext only) between them and
 * one `kiln console attach --connect ADDR` client at a time, keeping the
 * program's output in a bounded buffer while none is attached. The relay runs
 * on the host and is not trusted: records are sealed end to end, and whatever
 * it drops, repeats or changes the attach client reports by number. */
#ifndef KILN_CLI_CONSOLE_RELAY_H
#define KILN_CLI_CONSOLE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Output records kept while no client is attached (beyond: the oldest go). */
#define CLI_CON_BUFFER (256 * 1024)

/* unix:PATH or tcp:HOST:PORT (HOST a name, an IPv4 address or [IPv6]). */
struct cli_con_addr {
	bool unix_socket;
	char path[108];           /* unix */
	char host[256], port[8];  /* tcp */
};

/* Parse arg, the value of option opt ("--console-listen"): 0, or -1 after
 * telling the user what is wrong with it. */
int cli_con_addr_parse(const char *opt, const char *arg, struct cli_con_addr *a);

/* A listening socket on a; a unix socket is made mode 0600 in a directory that
 * is yours or root's, not writable by others (unless sticky), and not reached
 * through a symlink someone else owns; an existing PATH is refused. The fd, or
 * -1 after telling the user. *dirfd (unix: the directory, to remove the
 * socket at the end; else -1) is the caller's. */
int cli_con_listen(const char *opt, const struct cli_con_addr *a, int *dirfd);

/* Connect to a console relay: the fd (blocking), or -1 after telling. */
int cli_con_connect(const char *opt, const struct cli_con_addr *a);

/* Relay between the listening socket lfd and the program child, whose stdin
 * is the pipe prog_in (write end) and whose stdout and stderr both are the
 * pipe prog_out (read end): until prog_out ends (the program and every
 * process it started have closed it). Bytes of prog_out that are not records
 * (kiln's own lines before the attestation) go to this process's stderr.
 * Removes the unix socket (a->path in dirfd) at the end. Returns the exit
 * status for kiln run: the program's. Takes ownership of the fds. */
int cli_con_relay(int lfd, int dirfd, const struct cli_con_addr *a, int prog_in, int prog_out,
		  pid_t child);

#endif
