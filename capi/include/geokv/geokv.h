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
 *  - Thread-safety: a geokv_db_t may be used from many threads at once, geokv_close
 *    included: calls in flight on other threads finish (or fail with GEOKV_ECLOSED) before
 *    the store closes, and later calls fail with GEOKV_ECLOSED. Calls from several threads
 *    run concurrently: on a connected handle (geokv_connect) each thread's request is in
 *    flight at the same time as the others' (up to 256 at once, each with its own session;
 *    more wait for a free one), so a thread pool needs one handle, not one per thread.
 *    A geokv_iter_t belongs to
 *    one thread at a time; concurrent calls on one iterator are serialized (never a crash),
 *    but the entry a call returns is only valid until the next call on that iterator.
 *  - Fork: a handle belongs to the process that opened it. In a child of fork(), every call
 *    on an inherited handle (db or iterator) fails with GEOKV_EFORKED: open a new handle in
 *    the child (the parent's handle may still hold the data directory: close it in the
 *    parent first, or fork before opening). geokv_close on an inherited handle releases it
 *    in the child without touching the parent's store and returns GEOKV_OK.
 *  - Logging: geokv never writes to stdout. Records at warning level and above go to stderr
 *    unless the host sets another level (geokv_log_set_level) or installs a callback
 *    (geokv_log_set_callback).
 *  - Options structs are versioned: initialise them with GEOKV_OPTIONS_INIT (or
 *    GEOKV_CONNECT_OPTIONS_INIT); fields are only ever appended.
 *  - A geokv_db_t is either an embedded store (geokv_open: plain keys, put/get/delete and
 *    prefix iteration) or a connection to a cluster (geokv_connect: every key has a
 *    replication mode chosen by the cluster's policy, and the operations of each mode).
 *    geokv_open with a config file that has a [cluster] section makes this process one
 *    node of that cluster (it serves its region like a geokvd) and returns a connected
 *    handle to it.
 *    Cluster-only operations on an embedded handle, and iteration on a connected handle,
 *    return GEOKV_EWRONGMODE.
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
#define GEOKV_VERSION_MINOR 2
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
#define GEOKV_EINVAL (-2)      /* invalid argument: NULL pointer, empty key, bad endpoint */
#define GEOKV_EKEYSIZE (-3)    /* key longer than key_bytes_max */
#define GEOKV_EVALSIZE (-4)    /* value longer than value_bytes_max */
#define GEOKV_EWRONGMODE (-5)  /* operation does not fit the key's replication mode */
#define GEOKV_EIO (-6)         /* storage or filesystem failure */
#define GEOKV_ECORRUPT (-7)    /* data or message failed verification; a damaged store: the
                                  message names the file; see geokv_repair */
#define GEOKV_EBUSY (-8)       /* data dir already open (by this or another process) */
#define GEOKV_ECLOSED (-9)     /* handle used after close, or closed twice */
#define GEOKV_EPANIC (-10)     /* storage engine stopped; close and reopen (recovery runs at
                                  open; if open answers GEOKV_ECORRUPT, geokv_repair) */
#define GEOKV_EUNAVAILABLE (-11) /* no quorum reachable */
#define GEOKV_ETIMEOUT (-12)   /* deadline passed; the outcome of a write is unknown */
#define GEOKV_ECONFIG (-13)    /* configuration file or value invalid */
#define GEOKV_EVERSION (-14)   /* unknown options version */
#define GEOKV_ECONFLICT (-15)  /* compare-and-set lost */
#define GEOKV_ENOMEM (-16)     /* out of memory */
#define GEOKV_EINTERNAL (-17)  /* a bug in geokv; the message says where */
#define GEOKV_EFORKED (-18)    /* handle inherited through fork(): open a new one in the child */
#define GEOKV_EPERM (-19)      /* the caller's identity may not do this (admin operation) */

/* Message of the calling thread's last error ("" after success). Valid until the thread's
 * next geokv call. Never NULL. */
GEOKV_EXPORT const char *geokv_errmsg(void);
/* Fixed name of a code ("GEOKV_ENOTFOUND", ...); static storage. Never NULL. */
GEOKV_EXPORT const char *geokv_strerror(int code);

/* ---- Logging ------------------------------------------------------------------------ */

#define GEOKV_LOG_TRACE 0
#define GEOKV_LOG_DEBUG 1
#define GEOKV_LOG_INFO 2
#define GEOKV_LOG_WARN 3 /* the default */
#define GEOKV_LOG_ERROR 4
#define GEOKV_LOG_CRITICAL 5
#define GEOKV_LOG_OFF 6

/* Sets the process-wide level of geokv's log (records below it are dropped). The level
 * belongs to the host: geokv_open never changes it (a config file's [log] level is for
 * geokvd).
 * Errors: GEOKV_EINVAL (level outside GEOKV_LOG_TRACE..GEOKV_LOG_OFF). Thread-safe. */
GEOKV_EXPORT int geokv_log_set_level(int level);

/* The current level (GEOKV_LOG_*). */
GEOKV_EXPORT int geokv_log_level(void);

/* Receives one log record: its level (GEOKV_LOG_*), its text (NUL-terminated, no newline,
 * valid during the call only) and the payload given to geokv_log_set_callback. It may be
 * called from any thread, including geokv's and the storage engine's own threads, one
 * record at a time; it must not call geokv. */
typedef void (*geokv_log_fn)(int level, const char *message, void *payload);

/* Sends every log record to fn instead of stderr; fn NULL goes back to stderr. When this
 * returns, the previous callback is no longer running and will not be called again, so its
 * payload may be freed. Always GEOKV_OK. Thread-safe. */
GEOKV_EXPORT int geokv_log_set_callback(geokv_log_fn fn, void *payload);

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
 * A directory is identified by its canonical path and locked (flock on <dir>/geokv.lock)
 * for the life of the handle: a second open under any spelling (a trailing '/', "/.", a
 * relative path, a symlink), in this process or another, is GEOKV_EBUSY naming the holder.
 * An empty store takes a few MB of disk (journal files of 2 MiB, not preallocated).
 * Errors: GEOKV_EINVAL (NULL db, no path, path is not a directory), GEOKV_EVERSION
 * (options->version unknown), GEOKV_ECONFIG (bad config file, or an option out of range:
 * unknown durability, key_bytes_max above 65536, value_bytes_max above 64 MiB...),
 * GEOKV_EBUSY (already open), GEOKV_EIO (cannot create or write the directory),
 * GEOKV_ECORRUPT (the store is damaged: the message names the file; nothing was changed;
 * run geokv_repair). Damage inside the journal (a record with changed bytes, or an
 * unreadable stretch with committed writes after it) is found before recovery runs and is
 * GEOKV_ECORRUPT naming the journal file; the torn tail of a crash (writes that were never
 * synced) is not damage and opens. */
GEOKV_EXPORT int geokv_open(geokv_db_t **db, const char *path, const geokv_options_t *options);

/* Repairs a damaged store in directory `path`, which must not be open: drops the damaged
 * records of its journal (so that recovery replays every readable write after them),
 * salvages WiredTiger's metadata, verifies every table and rebuilds the damaged ones from
 * the pages that can still be read (entries on unreadable pages are lost). On GEOKV_OK,
 * *tables_salvaged (may be NULL) is the number of damaged files repaired: tables rebuilt
 * plus journal files whose damaged records were dropped (0: nothing was damaged); each
 * dropped journal stretch is logged at warning level (file, bytes, why). *keys_kept (may be
 * NULL) is the number of keys readable afterwards; compare it with what you expect to learn
 * what was lost. Errors: GEOKV_EINVAL (NULL path, not a geokv store),
 * GEOKV_EBUSY (open by a handle), GEOKV_ECORRUPT (beyond repair), GEOKV_EIO. */
GEOKV_EXPORT int geokv_repair(uint64_t *tables_salvaged, uint64_t *keys_kept, const char *path);

/* Flushes and closes the node (or drops the cluster connection) and frees the handle. NULL
 * is a no-op (GEOKV_OK). Safe while other threads are inside calls on the same handle: it
 * refuses new calls, waits for those in flight (each bounded by its own deadline), then
 * closes. A second close of the same handle returns GEOKV_ECLOSED. */
GEOKV_EXPORT int geokv_close(geokv_db_t *db);

/* Stores value under key, durably per the durability option, before returning.
 * Errors: GEOKV_EINVAL (NULL db, NULL key, empty key, NULL value with value_len > 0),
 * GEOKV_EKEYSIZE, GEOKV_EVALSIZE, GEOKV_ECLOSED, GEOKV_EIO, GEOKV_EPANIC, GEOKV_ETIMEOUT.
 * On a connected handle: the key must be strong or lww (else GEOKV_EWRONGMODE); a strong
 * put is linearizable; an lww put is acknowledged once durable in the region that took it.
 * Also GEOKV_EUNAVAILABLE (no node answered, or no quorum for the key's shard) and
 * GEOKV_ETIMEOUT (no answer within timeout_ms: the write may or may not have happened). */
GEOKV_EXPORT int geokv_put(geokv_db_t *db, const uint8_t *key, size_t key_len,
                           const uint8_t *value, size_t value_len);

/* Reads key. On GEOKV_OK, *value (release with geokv_free) and *value_len hold the value;
 * an empty value gives a non-NULL *value and *value_len 0. GEOKV_ENOTFOUND when absent.
 * Errors as geokv_put. On a connected handle: strong keys read linearizably; lww and
 * mvreg keys read the answering region's replica (mvreg: one of the concurrent values); a
 * counter key reads as its value in decimal ("0" when never added to); a set key is
 * GEOKV_EWRONGMODE (use geokv_set_members). */
GEOKV_EXPORT int geokv_get(uint8_t **value, size_t *value_len, geokv_db_t *db,
                           const uint8_t *key, size_t key_len);

/* Deletes key; deleting an absent key is GEOKV_OK. Errors as geokv_put (connected: strong,
 * lww and mvreg keys). */
GEOKV_EXPORT int geokv_delete(geokv_db_t *db, const uint8_t *key, size_t key_len);

/* Releases bytes returned by geokv. NULL is a no-op. */
GEOKV_EXPORT void geokv_free(void *bytes);

/* ---- Prefix iteration --------------------------------------------------------------- */

typedef struct geokv_iter geokv_iter_t;

/* Starts an iteration over the keys that begin with prefix (prefix_len 0: every key), in
 * key order. Errors: GEOKV_EINVAL (NULL iter, NULL prefix with prefix_len > 0),
 * GEOKV_EKEYSIZE (prefix longer than key_bytes_max; checked before anything is copied),
 * GEOKV_ECLOSED, GEOKV_EFORKED. The iterator reads in pages, so it sees writes made while it runs in later
 * pages; it never blocks writers. Release with geokv_iter_close.
 * Embedded handles only: a connected handle gives GEOKV_EWRONGMODE (a cluster spreads keys
 * over shards and regions and offers no ordered scan). */
GEOKV_EXPORT int geokv_iter_open(geokv_iter_t **iter, geokv_db_t *db, const uint8_t *prefix,
                                 size_t prefix_len);

/* Advances to the next entry: GEOKV_OK with *key and *value pointing into memory owned by the
 * iterator (valid until the next call on it), GEOKV_DONE after the last entry, or an error
 * (GEOKV_EINVAL, GEOKV_ECLOSED when the iterator or its database was closed, GEOKV_EIO). */
GEOKV_EXPORT int geokv_iter_next(geokv_iter_t *iter, const uint8_t **key, size_t *key_len,
                                 const uint8_t **value, size_t *value_len);

/* Frees the iterator. NULL is a no-op; a second close returns GEOKV_ECLOSED. */
GEOKV_EXPORT int geokv_iter_close(geokv_iter_t *iter);

/* ---- Cluster connection --------------------------------------------------------------- */

#define GEOKV_CONNECT_OPTIONS_VERSION 1

/* Options of geokv_connect. Zero / NULL means the default. The strings are read during
 * geokv_connect only; the caller keeps ownership. */
typedef struct geokv_connect_options {
  uint32_t version;                /* GEOKV_CONNECT_OPTIONS_VERSION */
  uint32_t timeout_ms;             /* deadline of each request; default 5000 */
  /* CURVE (all three, or none for plain TCP): the nodes' public key in Z85 (40
   * characters; or one per endpoint, comma-separated, in endpoint order), and this
   * client's key pair in Z85 (geokv-keygen prints both). */
  const char *curve_server_key;
  const char *curve_public_key;
  const char *curve_secret_key;
} geokv_connect_options_t;

#define GEOKV_CONNECT_OPTIONS_INIT {GEOKV_CONNECT_OPTIONS_VERSION, 0, NULL, NULL, NULL}

/* Connects to a geokv cluster: `endpoints` lists the client endpoints of one or more nodes,
 * comma-separated ("tcp://10.0.0.1:7200,tcp://10.0.0.2:7200"; at most 64). Any node serves
 * any key (a node forwards strong operations to the shard leader); reads and refused
 * requests move on to the next endpoint when a node does not answer. A keyed operation goes
 * first to the node that holds its key's shard in the handle's region, by the cluster map
 * the handle fetches from its endpoints on first use (docs/placement.md, "Routing"); a
 * node reached with a stale map serves the request all the same. `options` may be NULL
 * for all defaults. On success *db is a new handle of the same type geokv_open returns;
 * close it with geokv_close.
 * geokv_connect does not wait for a node: ZeroMQ connects in the background, and the first
 * operation fails with GEOKV_ETIMEOUT or GEOKV_EUNAVAILABLE when no node answers in time.
 * Every endpoint is checked at once: the scheme (tcp://host:port or ipc://path), the port
 * (1..65535) and the host (it must resolve).
 * Errors: GEOKV_EINVAL (NULL db or endpoints, an empty or malformed endpoint, a port out of
 * range, a host that does not resolve, too many endpoints, incomplete or malformed CURVE
 * keys), GEOKV_EVERSION (options->version unknown), GEOKV_ECONFIG (timeout_ms above
 * 3600000).
 * Retries: a handle carries a session (a random client id, and a sequence number per
 * write). A request that gets no answer within timeout_ms fails with GEOKV_ETIMEOUT (a
 * write may or may not have happened), and the handle moves on to the next endpoint for
 * its next request. A request refused before taking effect (GEOKV_EUNAVAILABLE: nothing
 * was applied) moves on to the next endpoint at once. A write is re-sent to another
 * endpoint only under its own session (the cluster applies it once) and only when that is
 * safe for every mode; otherwise the caller sees GEOKV_ETIMEOUT and decides. EINTR is
 * retried, never reported. */
GEOKV_EXPORT int geokv_connect(geokv_db_t **db, const char *endpoints,
                               const geokv_connect_options_t *options);

/* ---- Lists ---------------------------------------------------------------------------- */

/* A list of byte strings returned by geokv (set members, policy rules, status lines). The
 * whole list is one allocation owned by the caller: release it with geokv_list_free, never
 * free(). items[i] points to lengths[i] bytes followed by a NUL that lengths[i] does not
 * count, so text items can be printed directly. Read-only for the caller; geokv may append
 * fields at the end in later versions (it allocates the struct). */
typedef struct geokv_list {
  size_t count;
  const uint8_t *const *items;
  const size_t *lengths;
} geokv_list_t;

/* Releases a list returned by geokv. NULL is a no-op. */
GEOKV_EXPORT void geokv_list_free(geokv_list_t *list);

/* ---- Operations of the replication modes (connected handles) -------------------------- *
 *
 * The cluster's policy maps key prefixes to modes (strong, lww, mvreg, counter, set; the
 * longest matching prefix wins). An operation that does not fit the key's mode returns
 * GEOKV_EWRONGMODE. On an embedded handle (geokv_open) every function of this section
 * returns GEOKV_EWRONGMODE with the message "an embedded store holds plain keys; connect to
 * a cluster for modes". Keys are validated as for geokv_put (GEOKV_EINVAL for NULL or
 * empty, GEOKV_EKEYSIZE beyond the cluster's key_bytes_max). Every function also returns
 * GEOKV_ECLOSED, GEOKV_EUNAVAILABLE and GEOKV_ETIMEOUT as geokv_put does.
 * Thread-safety: as every geokv_db_t call (concurrent calls on one handle run concurrently). */

/* Compare-and-set on a strong key: stores value when the key currently holds `expected`
 * (expected_len bytes), or, when expected is NULL, when the key is absent. GEOKV_OK when it
 * stored the value, GEOKV_ECONFLICT when the current value differs (nothing written; read
 * the key again to retry). Errors: GEOKV_EINVAL (NULL expected with expected_len > 0, NULL
 * value with value_len > 0), GEOKV_EVALSIZE, GEOKV_EWRONGMODE (not a strong key). */
GEOKV_EXPORT int geokv_cas(geokv_db_t *db, const uint8_t *key, size_t key_len,
                           const uint8_t *expected, size_t expected_len, const uint8_t *value,
                           size_t value_len);

/* Adds delta (may be negative) to a counter. On a strong key the value is a decimal
 * integer (absent counts as 0; GEOKV_EINVAL when the key holds something else) and
 * *result is the new value, linearizably. On a counter key (a CRDT) the add is
 * acknowledged by one region and *result is that region's value after it, which may not
 * yet include concurrent adds from other regions. Errors: GEOKV_EINVAL (NULL result),
 * GEOKV_EWRONGMODE (neither strong nor counter). */
GEOKV_EXPORT int geokv_add(int64_t *result, geokv_db_t *db, const uint8_t *key, size_t key_len,
                           int64_t delta);

/* Adds element (element_len bytes, may be 0) to the set at key (add wins over a concurrent
 * remove). Acknowledged once durable in the region that took it. Errors: GEOKV_EINVAL
 * (NULL element with element_len > 0), GEOKV_EVALSIZE, GEOKV_EWRONGMODE (not a set key). */
GEOKV_EXPORT int geokv_set_add(geokv_db_t *db, const uint8_t *key, size_t key_len,
                               const uint8_t *element, size_t element_len);

/* Removes element from the set at key (the adds this region has seen). Removing an
 * absent element is GEOKV_OK. Errors as geokv_set_add. */
GEOKV_EXPORT int geokv_set_remove(geokv_db_t *db, const uint8_t *key, size_t key_len,
                                  const uint8_t *element, size_t element_len);

/* *present = 1 when the answering region's replica of the set contains element, else 0.
 * Errors as geokv_set_add, and GEOKV_EINVAL for a NULL present. */
GEOKV_EXPORT int geokv_set_contains(int *present, geokv_db_t *db, const uint8_t *key,
                                    size_t key_len, const uint8_t *element, size_t element_len);

/* The members of the set at key in the answering region's replica, in byte order (an
 * absent set is empty: count 0). *members is released with geokv_list_free. Errors as
 * geokv_set_add, and GEOKV_EINVAL for a NULL members. */
GEOKV_EXPORT int geokv_set_members(geokv_list_t **members, geokv_db_t *db, const uint8_t *key,
                                   size_t key_len);

/* Reads the multi-value register at key in the answering region: *values holds the
 * concurrent values in byte order (count 0 when absent or deleted; release with
 * geokv_list_free), and *context / *context_len an opaque causal context (release with
 * geokv_free; non-NULL even when 0 bytes) to pass to the next geokv_mv_put or
 * geokv_mv_delete, so that write replaces exactly the values read. Errors: GEOKV_EINVAL
 * (a NULL out-pointer), GEOKV_EWRONGMODE (not an mvreg key). */
GEOKV_EXPORT int geokv_mv_get(geokv_list_t **values, uint8_t **context, size_t *context_len,
                              geokv_db_t *db, const uint8_t *key, size_t key_len);

/* Writes value to the multi-value register at key, replacing the values that `context`
 * (from geokv_mv_get; NULL/0 for none) covers; values written concurrently elsewhere stay
 * as siblings until a later write covers them. Acknowledged once durable in the region
 * that took it. Errors: GEOKV_EINVAL (NULL value or context with a length > 0, a context
 * that does not decode), GEOKV_EVALSIZE, GEOKV_EWRONGMODE (not an mvreg key). */
GEOKV_EXPORT int geokv_mv_put(geokv_db_t *db, const uint8_t *key, size_t key_len,
                              const uint8_t *value, size_t value_len, const uint8_t *context,
                              size_t context_len);

/* Removes the values of the multi-value register at key that `context` covers. Errors as
 * geokv_mv_put. */
GEOKV_EXPORT int geokv_mv_delete(geokv_db_t *db, const uint8_t *key, size_t key_len,
                                 const uint8_t *context, size_t context_len);

/* ---- Policy and status (connected handles) -------------------------------------------- */

/* Keys that begin with prefix use `mode`: "strong", "lww", "mvreg", "counter" or "set"
 * (NUL-terminated). prefix_len 0 sets the default mode of keys no rule matches. The
 * policy is strongly consistent: once this returns, every node routes by it. Errors:
 * GEOKV_EINVAL (NULL mode, an unknown mode, NULL prefix with prefix_len > 0, a prefix
 * that holds data in another mode: a key's mode never changes under its data; the
 * message names the key), GEOKV_EKEYSIZE, GEOKV_EWRONGMODE (embedded handle). */
GEOKV_EXPORT int geokv_policy_set(geokv_db_t *db, const uint8_t *prefix, size_t prefix_len,
                                  const char *mode);

/* Removes the rule for exactly prefix. GEOKV_ENOTFOUND when there is none; GEOKV_EINVAL
 * when keys under it hold data that would change mode. Errors as geokv_policy_set. */
GEOKV_EXPORT int geokv_policy_remove(geokv_db_t *db, const uint8_t *prefix, size_t prefix_len);

/* The policy, as two lists of the same length: prefixes->items[i] uses mode
 * modes->items[i]. The first entry has the empty prefix and the default mode; the rules
 * follow in prefix order. Release both with geokv_list_free. Errors: GEOKV_EINVAL (NULL
 * prefixes or modes), GEOKV_EWRONGMODE (embedded handle). */
GEOKV_EXPORT int geokv_policy_list(geokv_list_t **prefixes, geokv_list_t **modes,
                                   geokv_db_t *db);

/* The answering node's view of the cluster as human-readable lines (its region, the shard
 * leaders, commit and apply indexes, CRDT replication). The format is for people and may
 * change. Release with geokv_list_free. Errors: GEOKV_EINVAL (NULL lines),
 * GEOKV_EWRONGMODE (embedded handle). */
GEOKV_EXPORT int geokv_status(geokv_list_t **lines, geokv_db_t *db);

/* Admin: sets node `node`'s state in the cluster map (docs/operations.md): "draining" (it
 * hands every leadership it holds to other regions, e.g. before a restart), "up" (undrain),
 * "down" (declare it dead) or "removed" (for good; only a draining or down node that holds no
 * replica). Idempotent: setting the state a node has succeeds and changes nothing.
 * Errors: GEOKV_EINVAL (NULL state, a state that is not one of these four, a transition the
 * map forbids such as removing an up node), GEOKV_ENOTFOUND (no such node), GEOKV_ECONFLICT
 * (removing a node that still holds replicas), GEOKV_EPERM (not an admin identity),
 * GEOKV_ETIMEOUT (outcome unknown: repeat it), GEOKV_EWRONGMODE (embedded handle). */
GEOKV_EXPORT int geokv_node_set_state(geokv_db_t *db, uint32_t node, const char *state);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_H_ */
