/* kiln console records: the wire format of the console shield (docs/runtime.md,
 * "Console shield"). The one header of src/console/, used by libkiln (which
 * writes a protected program's stdout and stderr as records and reads its
 * stdin from records) and by `kiln console read|attach` (which do the
 * opposite for an authorized reader). Pure library over common and crypto: no
 * I/O, no logging.
 *
 * A process writes one *stream* per run of its image: a random 16-byte stream
 * id and, per channel (0 stdin, 1 stdout, 2 stderr), records numbered from 0.
 * Every record is
 *
 *   offset size
 *   0      4    magic "KCR1"
 *   4      1    type: 'H' stream header (seq 0), 'D' data, 'E' end of the channel
 *   5      1    channel
 *   6      2    payload size n, big-endian, at most CON_MAX_PAYLOAD
 *   8      16   stream id
 *   24     8    sequence number, big-endian
 *   32     n    payload, AES-256-GCM
 *   32+n   16   tag
 *
 * under the stream key HKDF-SHA256(console key, salt = stream id, info =
 * "kiln console v1"), nonce = channel (4 bytes, big-endian) || sequence number,
 * and the 32 header bytes as additional data. So a record cannot be moved to
 * another stream, channel or position, changed or cut without the reader
 * noticing; a dropped, repeated or reordered record is seen from the numbers.
 * A whole record is at most CON_MAX_RECORD bytes (below PIPE_BUF, so one write
 * of it to a pipe is atomic even when several processes share the pipe).
 *
 * stdin flows the other way (kiln console attach -> program): its records
 * carry the *program's* stream id (the attacher reads it from the program's
 * stdout header first), so input captured for one run is refused by any other. */
#ifndef KILN_CONSOLE_H
#define KILN_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define CON_KEY_SIZE 32
#define CON_ID_SIZE 16
#define CON_HDR_SIZE 32
#define CON_TAG_SIZE 16
#define CON_MAX_PAYLOAD 4000
#define CON_MAX_RECORD (CON_HDR_SIZE + CON_MAX_PAYLOAD + CON_TAG_SIZE)

enum con_type { CON_T_HEADER = 'H', CON_T_DATA = 'D', CON_T_END = 'E' };
enum { CON_STDIN = 0, CON_STDOUT = 1, CON_STDERR = 2 };

struct con_hdr {
	uint8_t type;
	uint8_t channel;
	uint16_t size;            /* payload bytes */
	uint8_t id[CON_ID_SIZE];
	uint64_t seq;
};

/* The key of one stream; owned by whoever made it (con_stream_free wipes it). */
struct con_stream;

/* Derive the key of stream id under the console key. *out owned by the caller. */
int con_stream_new(const uint8_t key[static CON_KEY_SIZE], const uint8_t id[static CON_ID_SIZE],
		   struct con_stream **out);
void con_stream_free(struct con_stream *s);
/* The stream's id. */
const uint8_t *con_stream_id(const struct con_stream *s);

/* Seal one record of size bytes (at most CON_MAX_PAYLOAD) into out, which
 * holds CON_HDR_SIZE + size + CON_TAG_SIZE bytes (its size is returned). */
int con_seal(struct con_stream *s, uint8_t type, uint8_t channel, uint64_t seq,
	     const void *payload, size_t size, uint8_t *out);

/* Parse the header at buf (avail bytes). 0; -EAGAIN when fewer than
 * CON_HDR_SIZE bytes are there; -KILN_EFORMAT when it is no record header
 * (bad magic, type or size). */
int con_parse_hdr(const uint8_t *buf, size_t avail, struct con_hdr *h);
/* Open the record at rec (header h, CON_HDR_SIZE + h->size + CON_TAG_SIZE
 * bytes) into out (h->size bytes). -KILN_EAUTH when it does not authenticate
 * (out is wiped). */
int con_open(struct con_stream *s, const uint8_t *rec, const struct con_hdr *h, uint8_t *out);

/* The payload of a stream header record: who wrote the stream. */
struct con_info {
	uint32_t pid;
	uint64_t start_ns;        /* CLOCK_REALTIME at the stream's start */
	char program[64];         /* NUL-terminated, may be cut */
};
#define CON_INFO_SIZE (4 + 8 + 64)
void con_info_encode(const struct con_info *in, uint8_t out[static CON_INFO_SIZE]);
int con_info_decode(const uint8_t *p, size_t size, struct con_info *out);

/* ---- the reader (reader.c) --------------------------------------------------
 * Takes a captured or live byte stream in pieces of any size and reports, in
 * order, what it finds: data, new streams and their ends, and every problem by
 * record number. Used by `kiln console read|attach`; fuzzed. */
enum con_event_kind {
	CON_EV_STREAM,   /* a stream header: ev->info */
	CON_EV_DATA,     /* plaintext of a data record: ev->data, ev->size */
	CON_EV_END,      /* a channel's end record (ev->status: the exit status, or -1) */
	CON_EV_GAP,      /* records seq..seq2 are missing (so far: they may come late) */
	CON_EV_DROPPED,  /* at the end of input: records seq..seq2 never came */
	CON_EV_LATE,     /* record seq arrived after later ones (reordered); data follows */
	CON_EV_REPLAY,   /* record seq was seen before: dropped */
	CON_EV_AUTH,     /* record claiming seq does not authenticate: modified (or, for
			  * a stream header, written under another console key): dropped */
	CON_EV_GARBAGE,  /* ev->size bytes at ev->offset are no record: skipped */
	CON_EV_PREAMBLE, /* ev->size bytes at the start of the input, before its first
			  * record, are no record: skipped, not a problem (kiln's own
			  * lines before the attestation, e.g. sim's INSECURE warning;
			  * nothing of them is shown). Input with no record at all is
			  * CON_EV_GARBAGE. */
	CON_EV_AFTER_END,/* a record after the channel's end record: dropped */
	CON_EV_TRUNCATED,/* at the end of input: a channel without its end record, or
			  * a record cut short (ev->offset) */
	CON_EV_LIMIT,    /* too many streams: records of ev->id are dropped */
};

struct con_event {
	enum con_event_kind kind;
	uint8_t id[CON_ID_SIZE];
	uint8_t channel;
	uint64_t seq, seq2;
	const uint8_t *data;      /* CON_EV_DATA */
	size_t size;
	uint64_t offset;          /* byte offset in the input of the record */
	int status;               /* CON_EV_END */
	const struct con_info *info; /* CON_EV_STREAM */
};

typedef void (*con_event_cb)(void *ctx, const struct con_event *ev);

struct con_reader;
/* cb is called for every event, from con_reader_feed and _finish. The reader
 * copies the key; *out owned by the caller (con_reader_free). */
int con_reader_new(const uint8_t key[static CON_KEY_SIZE], con_event_cb cb, void *ctx,
		   struct con_reader **out);
/* Feed size more bytes. -ENOMEM only. */
int con_reader_feed(struct con_reader *r, const void *data, size_t size);
/* End of input: report what is missing. */
void con_reader_finish(struct con_reader *r);
/* How many problems (every event but STREAM, DATA and END) were reported. */
uint64_t con_reader_problems(const struct con_reader *r);
/* The id of the first stream seen with a header (for attach), or NULL. */
const uint8_t *con_reader_first_stream(const struct con_reader *r);
void con_reader_free(struct con_reader *r);

/* ---- live streams (frame.c) ---------------------------------------------------
 * Cut the bytes at buf (len of them) at the first record boundary:
 * CON_FRAME_RECORD when a whole record starts there (*n: its size),
 * CON_FRAME_OTHER when the first *n bytes are no record (up to where one could
 * start; at_end: the rest of a record cut short too), -EAGAIN when more bytes
 * are needed to tell (never when at_end and len > 0). */
enum { CON_FRAME_OTHER = 0, CON_FRAME_RECORD = 1 };
int con_frame(const uint8_t *buf, size_t len, bool at_end, size_t *n);

/* A console relay (kiln run --console-listen) greets each client with one
 * line: CON_HELLO_OK, then records both ways; or CON_HELLO_BUSY (another
 * client is attached) and the end of the connection. con_hello_parse: 0 for
 * OK, -EBUSY for BUSY (*used: the line's size), -EAGAIN when buf is a prefix
 * of one, -KILN_EFORMAT otherwise (not a console relay). */
#define CON_HELLO_OK "kiln-console 1 ok\n"
#define CON_HELLO_BUSY "kiln-console 1 busy\n"
int con_hello_parse(const uint8_t *buf, size_t len, size_t *used);

#endif
