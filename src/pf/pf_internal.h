/* Internal to src/pf/ (and its unit tests and fuzz targets): on-disk formats.
 * Layouts are documented byte by byte in docs/fs.md. */
#ifndef KILN_PF_INTERNAL_H
#define KILN_PF_INTERNAL_H

#include "pf/pf.h"

#define PF_HDR_SIZE 64
#define PF_HDR_MAGIC "KILNPF01"
#define PF_FORMAT_VERSION 1
#define PF_FILE_ID_SIZE 16
#define PF_BACKING_ID_SIZE 16 /* random; its 32 hex digits name the backing file */
#define PF_NONCE_SIZE 12
#define PF_TAG_SIZE 16
#define PF_SLOT_META (PF_NONCE_SIZE + PF_TAG_SIZE) /* per chunk: nonce, tag, data */
#define PF_ROOT_SIZE 32
#define PF_MAX_FILE_SIZE (1ull << 50)

#define PF_META_MAGIC "KILNMETA"
#define PF_META_HDR_SIZE 64
#define PF_META_MAX_SIZE (256u * 1024 * 1024)
#define PF_KCV_SIZE 16

#define PF_JOURNAL_MAGIC "KILNPFJ1"
#define PF_JOURNAL_HDR_SIZE 72

struct pf_header {
	uint32_t version;
	uint32_t kind;
	uint32_t chunk_size;
	uint8_t file_id[PF_FILE_ID_SIZE];
};

void pf_header_encode(const struct pf_header *h, uint8_t out[static PF_HDR_SIZE]);
/* -KILN_ETRUNC short, -KILN_EFORMAT bad magic/version/fields. */
int pf_header_decode(const uint8_t *buf, size_t size, struct pf_header *h);

/* Decoded metadata body. Strings are malloc'd, owned by the struct
 * (pf_meta_clear frees them and wipes the keys). */
struct pf_meta_region {
	char *prefix;
	uint32_t kind;
};
struct pf_meta_dir {
	char *path;
	uint32_t mode;
	int64_t mtime_ns;
};
struct pf_meta_file {
	char *path;
	uint32_t kind;
	uint32_t mode;
	int64_t mtime_ns;
	uint64_t size;
	uint8_t key[PF_KEY_SIZE];
	uint8_t file_id[PF_FILE_ID_SIZE];
	uint8_t root[PF_ROOT_SIZE];
	uint8_t backing[PF_BACKING_ID_SIZE];
};
struct pf_meta {
	uint32_t chunk_size;
	struct pf_meta_region *regions;
	size_t regions_len;
	struct pf_meta_dir *dirs;
	size_t dirs_len;
	struct pf_meta_file *files;
	size_t files_len;
};

/* Parse a decrypted body into m (zeroed first). -KILN_EFORMAT / -KILN_ETRUNC /
 * -KILN_ETRAILING with a message in err; m is cleared on failure. */
int pf_meta_parse(const uint8_t *body, size_t size, struct pf_meta *m, struct kiln_err *err);
void pf_meta_clear(struct pf_meta *m);
/* Checks a volume path: returns 0 and writes the normalized form (no leading
 * '/') to out[PF_MAX_PATH], or -EINVAL / -ENAMETOOLONG. */
int pf_path_normalize(const char *path, char *out);

/* Metadata envelope. Keys derived from the volume key with HKDF-SHA256. */
struct pf_meta_keys {
	uint8_t enc[PF_KEY_SIZE];
	uint8_t kcv[PF_KCV_SIZE];
};
int pf_meta_keys_derive(const uint8_t key[static PF_KEY_SIZE], struct pf_meta_keys *k);
/* Seal body into a malloc'd envelope (*out owned by the caller). */
int pf_meta_seal(const struct pf_meta_keys *k, uint64_t tag, const uint8_t *body, size_t size,
		 uint8_t **out, size_t *out_size);
/* Open an envelope: *body malloc'd (caller wipes+frees). -KILN_EFORMAT not a
 * metadata file, -KILN_EKEY wrong key, -KILN_EAUTH corrupt, -KILN_ETRUNC. */
int pf_meta_unseal(const struct pf_meta_keys *k, const uint8_t *buf, size_t size,
		   uint64_t *tag, uint8_t **body, size_t *body_size, struct kiln_err *err);

/* Little-endian helpers. */
static inline void pf_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void pf_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t pf_get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t pf_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
