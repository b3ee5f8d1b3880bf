/*
 * geokv.h: the stable C ABI of geokv, a geo-replicated key-value store.
 *
 * Conventions (they never change):
 *  - Every fallible function returns int: GEOKV_OK (0), a positive status such as
 *    GEOKV_DONE, or a negative GEOKV_E* code. Codes are never renumbered.
 *  - Out-parameters come first. On error they are left untouched.
 *  - geokv_errmsg() returns a message for the last error of the calling thread.
 *  - Keys and values are byte strings: (const uint8_t *, size_t). A key is 1..key_bytes_max
 *    bytes (default 4096); a value is 0..value_bytes_max bytes (default 1 MiB).
 *  - Bytes returned to the caller are owned by the caller and released with geokv_free(),
 *    never with free().
 *  - Handles are opaque. Every constructor has its destructor; destroying NULL is a no-op.
 *    Using a handle after it was closed returns GEOKV_ECLOSED, never a crash (geokv keeps
 *    the memory of recently closed handles so that stale pointers stay detectable).
 *  - Thread-safety: a geokv_db_t may be used from many threads at once. A geokv_iter_t
 *    belongs to one thread at a time.
 *  - Options structs are versioned: initialise them with GEOKV_OPTIONS_INIT; fields are
 *    only ever appended.
 */
#ifndef GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_H_
#define GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_H_

#include <stddef.h>
#include <stdint.h>

#include "geokv/geokv_export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ------------------------------------------------------------------------ */

#define GEOKV_VERSION_MAJOR 0
#define GEOKV_VERSION_MINOR 1
#define GEOKV_VERSION_PATCH 0
/* major * 10000 + minor * 100 + patch */
#define GEOKV_VERSION_NUMBER \
  (GEOKV_VERSION_MAJOR * 10000 + GEOKV_VERSION_MINOR * 100 + GEOKV_VERSION_PATCH)

/* The GEOKV_VERSION_NUMBER the library was built with. A program checks that the header
 * it compiled against matches the library it runs with:
 *   geokv_version() / 100 == GEOKV_VERSION_NUMBER / 100   (same major and minor). */
GEOKV_EXPORT int geokv_version(void);
/* "major.minor.patch"; static storage, never freed. */
GEOKV_EXPORT const char *geokv_version_string(void);

/* ---- Return codes (fixed forever) --------------------------------------------------- */

#define GEOKV_OK 0
#define GEOKV_DONE 1           /* an iterator has no more entries */
#define GEOKV_ENOTFOUND (-1)   /* the key does not exist (expected absence) */
#define GEOKV_EINVAL (-2)      /* invalid argument: NULL pointer, empty key, bad option */
#define GEOKV_EKEYSIZE (-3)    /* key longer than key_bytes_max */
#define GEOKV_EVALSIZE (-4)    /* value longer than value_bytes_max */
#define GEOKV_EWRONGMODE (-5)  /* operation does not fit the key's replication mode */
#define GEOKV_EIO (-6)         /* storage or filesystem failure */
#define GEOKV_ECORRUPT (-7)    /* data or message failed verification */
#define GEOKV_EBUSY (-8)       /* data dir already open (by this or another process) */
#define GEOKV_ECLOSED (-9)     /* handle used after close, or closed twice */
#define GEOKV_EPANIC (-10)     /* storage engine panicked; reopen to recover */
#define GEOKV_EUNAVAILABLE (-11) /* no quorum reachable */
#define GEOKV_ETIMEOUT (-12)   /* deadline passed; the outcome of a write is unknown */
#define GEOKV_ECONFIG (-13)    /* configuration file or value invalid */
#define GEOKV_EVERSION (-14)   /* unknown options version */
#define GEOKV_ECONFLICT (-15)  /* compare-and-set lost */
#define GEOKV_ENOMEM (-16)     /* out of memory */
#define GEOKV_EINTERNAL (-17)  /* a bug in geokv; the message says where */

/* Message of the calling thread's last error ("" after success). Valid until the thread's
 * next geokv call. Never NULL. */
GEOKV_EXPORT const char *geokv_errmsg(void);
/* Fixed name of a code ("GEOKV_ENOTFOUND", ...); static storage. Never NULL. */
GEOKV_EXPORT const char *geokv_strerror(int code);

/* ---- Options ------------------------------------------------------------------------ */

#define GEOKV_OPTIONS_VERSION 1

#define GEOKV_DURABILITY_DEFAULT 0 /* from the config file, else SYNC */
#define GEOKV_DURABILITY_SYNC 1    /* fsync before acknowledging (group-committed) */
#define GEOKV_DURABILITY_WRITE 2   /* written to the OS: survives a process crash */
#define GEOKV_DURABILITY_NONE 3    /* in memory: a crash may lose the last writes */

/* Options of geokv_open. Zero means "the config file's value, else the default". */
typedef struct geokv_options {
  uint32_t version;            /* GEOKV_OPTIONS_VERSION */
  uint32_t durability;         /* GEOKV_DURABILITY_* */
  uint64_t key_bytes_max;      /* default 4096 */
  uint64_t value_bytes_max;    /* default 1 MiB */
  uint32_t commit_timeout_ms;  /* deadline of one write; default 30000 */
  const char *config_path;     /* optional TOML config file (README.md, "Configuration") */
} geokv_options_t;

#define GEOKV_OPTIONS_INIT {GEOKV_OPTIONS_VERSION, 0, 0, 0, 0, NULL}

/* ---- Database handle ---------------------------------------------------------------- */

typedef struct geokv_db geokv_db_t;

/* Opens (creating when missing) an embedded node whose data lives in directory `path`.
 * `path` may be NULL when options->config_path names a data_dir. `options` may be NULL
 * for all defaults. On success *db is a new handle; close it with geokv_close.
 * Errors: GEOKV_EINVAL (NULL db, no path, path is not a directory), GEOKV_EVERSION
 * (options->version unknown), GEOKV_ECONFIG (bad config file or option), GEOKV_EBUSY
 * (already open), GEOKV_EIO (cannot create or write the directory). */
GEOKV_EXPORT int geokv_open(geokv_db_t **db, const char *path, const geokv_options_t *options);

/* Flushes and closes the node and frees the handle. NULL is a no-op (GEOKV_OK). A second
 * close of the same handle returns GEOKV_ECLOSED. */
GEOKV_EXPORT int geokv_close(geokv_db_t *db);

/* Stores value under key, durably per the durability option, before returning.
 * Errors: GEOKV_EINVAL (NULL db, NULL key, empty key, NULL value with value_len > 0),
 * GEOKV_EKEYSIZE, GEOKV_EVALSIZE, GEOKV_ECLOSED, GEOKV_EIO, GEOKV_EPANIC, GEOKV_ETIMEOUT. */
GEOKV_EXPORT int geokv_put(geokv_db_t *db, const uint8_t *key, size_t key_len,
                           const uint8_t *value, size_t value_len);

/* Reads key. On GEOKV_OK, *value (release with geokv_free) and *value_len hold the value;
 * an empty value gives a non-NULL *value and *value_len 0. GEOKV_ENOTFOUND when absent.
 * Errors as geokv_put. */
GEOKV_EXPORT int geokv_get(uint8_t **value, size_t *value_len, geokv_db_t *db,
                           const uint8_t *key, size_t key_len);

/* Deletes key; deleting an absent key is GEOKV_OK. Errors as geokv_put. */
GEOKV_EXPORT int geokv_delete(geokv_db_t *db, const uint8_t *key, size_t key_len);

/* Releases bytes returned by geokv. NULL is a no-op. */
GEOKV_EXPORT void geokv_free(void *bytes);

/* ---- Prefix iteration --------------------------------------------------------------- */

typedef struct geokv_iter geokv_iter_t;

/* Starts an iteration over the keys that begin with prefix (prefix_len 0: every key), in
 * key order. The iterator reads in pages, so it sees writes made while it runs in later
 * pages; it never blocks writers. Release with geokv_iter_close. */
GEOKV_EXPORT int geokv_iter_open(geokv_iter_t **iter, geokv_db_t *db, const uint8_t *prefix,
                                 size_t prefix_len);

/* Advances to the next entry: GEOKV_OK with *key and *value pointing into memory owned by the
 * iterator (valid until the next call on it), GEOKV_DONE after the last entry, or an error
 * (GEOKV_EINVAL, GEOKV_ECLOSED when the iterator or its database was closed, GEOKV_EIO). */
GEOKV_EXPORT int geokv_iter_next(geokv_iter_t *iter, const uint8_t **key, size_t *key_len,
                                 const uint8_t **value, size_t *value_len);

/* Frees the iterator. NULL is a no-op; a second close returns GEOKV_ECLOSED. */
GEOKV_EXPORT int geokv_iter_close(geokv_iter_t *iter);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_H_ */
