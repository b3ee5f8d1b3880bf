/* The embedded store against what real programs do to it, from plain C99 (issue 10): the
 * same directory under other spellings, close racing calls on other threads, fork, damaged
 * files and repair, logging that stays off stdout, disk use, option and endpoint edges.
 * Exit code 0 when every check passes; each failed check prints its line. Asserts
 * behaviour only, never timings. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "geokv/geokv.h"

static int failures = 0;

/* LeakSanitizer (asan preset): a WiredTiger connection that panicked on a damaged file
 * cannot be freed (its close fails after the panic), so the damage tests leak its cache by
 * design. Only allocations made inside libwiredtiger are suppressed. */
const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void) { return "leak:libwiredtiger.so\n"; }

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; errmsg: %s\n", __FILE__, \
              __LINE__, #cond, geokv_errmsg());                           \
      failures++;                                                         \
    }                                                                     \
  } while (0)

#define K(s) (const uint8_t *)(s), strlen(s)

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static int contains(const char *haystack, const char *needle) { return strstr(haystack, needle) != NULL; }

/* ---- 1. One directory, many spellings --------------------------------------------------- */

static void test_same_dir_other_spellings(const char *base) {
  char dir[512], spelled[600], link[600], cwd[512];
  geokv_db_t *db = NULL, *other = NULL;
  uint8_t *value = NULL;
  size_t len = 0;
  snprintf(dir, sizeof dir, "%s/spell", base);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_put(db, K("k"), K("v")) == GEOKV_OK);

  snprintf(spelled, sizeof spelled, "%s/", dir);
  CHECK(geokv_open(&other, spelled, NULL) == GEOKV_EBUSY);
  CHECK(contains(geokv_errmsg(), "this process"));
  snprintf(spelled, sizeof spelled, "%s/.", dir);
  CHECK(geokv_open(&other, spelled, NULL) == GEOKV_EBUSY);
  snprintf(spelled, sizeof spelled, "%s//./", dir);
  CHECK(geokv_open(&other, spelled, NULL) == GEOKV_EBUSY);
  snprintf(link, sizeof link, "%s/spell-link", base);
  CHECK(symlink(dir, link) == 0);
  CHECK(geokv_open(&other, link, NULL) == GEOKV_EBUSY);
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(base) == 0);
  CHECK(geokv_open(&other, "spell", NULL) == GEOKV_EBUSY);
  CHECK(geokv_open(&other, "./spell-link/", NULL) == GEOKV_EBUSY);
  CHECK(chdir(cwd) == 0);
  CHECK(other == NULL);

  /* Nothing was damaged: after close, any spelling opens it with the data intact. */
  CHECK(geokv_close(db) == GEOKV_OK);
  CHECK(geokv_open(&db, link, NULL) == GEOKV_OK);
  CHECK(geokv_get(&value, &len, db, K("k")) == GEOKV_OK);
  CHECK(len == 1 && value != NULL && value[0] == 'v');
  geokv_free(value);
  CHECK(geokv_close(db) == GEOKV_OK);
}

/* ---- 2. Close while other threads are inside calls -------------------------------------- */

struct racer {
  geokv_db_t *db;
  int id;
  int bad; /* a result other than OK / NOTFOUND / ECLOSED */
  int closed_seen;
};

static void *race_calls(void *arg) {
  struct racer *r = (struct racer *)arg;
  char key[32];
  int i;
  for (i = 0; i < 200000; ++i) {
    uint8_t *value = NULL;
    size_t len = 0;
    int rc;
    snprintf(key, sizeof key, "t%d/%d", r->id, i % 64);
    switch (i % 4) {
      case 0: rc = geokv_put(r->db, K(key), K("value")); break;
      case 1: rc = geokv_get(&value, &len, r->db, K(key)); break;
      case 2: rc = geokv_delete(r->db, K(key)); break;
      default: {
        geokv_iter_t *it = NULL;
        rc = geokv_iter_open(&it, r->db, K("t"));
        if (rc == GEOKV_OK) {
          const uint8_t *k, *v;
          size_t kl, vl;
          int n = 0;
          while (n++ < 8 && (rc = geokv_iter_next(it, &k, &kl, &v, &vl)) == GEOKV_OK) {
          }
          if (rc == GEOKV_DONE) rc = GEOKV_OK;
          if (geokv_iter_close(it) != GEOKV_OK) r->bad++;
        }
      }
    }
    if (rc == GEOKV_OK) geokv_free(value);
    if (rc == GEOKV_ECLOSED) {
      r->closed_seen = 1;
      break;
    }
    if (rc != GEOKV_OK && rc != GEOKV_ENOTFOUND) {
      fprintf(stderr, "racer %d: unexpected %s: %s\n", r->id, geokv_strerror(rc), geokv_errmsg());
      r->bad++;
      break;
    }
  }
  return NULL;
}

static void test_close_races_calls(const char *base) {
  enum { kThreads = 6, kRounds = 12 };
  int round;
  for (round = 0; round < kRounds; ++round) {
    char dir[512];
    geokv_db_t *db = NULL;
    pthread_t threads[kThreads];
    struct racer racers[kThreads];
    int i;
    snprintf(dir, sizeof dir, "%s/race%d", base, round);
    CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
    for (i = 0; i < kThreads; ++i) {
      racers[i].db = db;
      racers[i].id = i;
      racers[i].bad = 0;
      racers[i].closed_seen = 0;
      CHECK(pthread_create(&threads[i], NULL, race_calls, &racers[i]) == 0);
    }
    sleep_ms(5 + round * 3); /* let the calls get going; any moment will do */
    CHECK(geokv_close(db) == GEOKV_OK);
    for (i = 0; i < kThreads; ++i) {
      CHECK(pthread_join(threads[i], NULL) == 0);
      CHECK(racers[i].bad == 0);
      CHECK(racers[i].closed_seen == 1);
    }
    CHECK(geokv_put(db, K("after"), K("close")) == GEOKV_ECLOSED);
    CHECK(geokv_close(db) == GEOKV_ECLOSED);
  }
}

/* One iterator shared by several threads: serialized, never a crash or a torn page. */
struct shared_iter {
  geokv_iter_t *it;
  pthread_mutex_t mu;
  int seen;
  int bad;
};

static void *drain_shared(void *arg) {
  struct shared_iter *s = (struct shared_iter *)arg;
  for (;;) {
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc = geokv_iter_next(s->it, &k, &kl, &v, &vl);
    if (rc == GEOKV_DONE || rc == GEOKV_ECLOSED) break;
    if (rc != GEOKV_OK) {
      pthread_mutex_lock(&s->mu);
      s->bad++;
      pthread_mutex_unlock(&s->mu);
      break;
    }
    pthread_mutex_lock(&s->mu);
    s->seen++;
    pthread_mutex_unlock(&s->mu);
  }
  return NULL;
}

static void test_shared_iterator(const char *base) {
  enum { kThreads = 4, kKeys = 3000 };
  char dir[512], key[32];
  geokv_db_t *db = NULL;
  struct shared_iter s;
  pthread_t threads[kThreads];
  int i;
  snprintf(dir, sizeof dir, "%s/shared-iter", base);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  for (i = 0; i < kKeys; ++i) {
    snprintf(key, sizeof key, "k%06d", i);
    CHECK(geokv_put(db, K(key), K("v")) == GEOKV_OK);
  }
  s.seen = 0;
  s.bad = 0;
  pthread_mutex_init(&s.mu, NULL);
  CHECK(geokv_iter_open(&s.it, db, NULL, 0) == GEOKV_OK);
  for (i = 0; i < kThreads; ++i) CHECK(pthread_create(&threads[i], NULL, drain_shared, &s) == 0);
  for (i = 0; i < kThreads; ++i) CHECK(pthread_join(threads[i], NULL) == 0);
  CHECK(s.bad == 0);
  CHECK(s.seen == kKeys); /* each entry handed out exactly once */
  CHECK(geokv_iter_close(s.it) == GEOKV_OK);
  pthread_mutex_destroy(&s.mu);

  /* An iterator whose db was closed stops, even with entries already fetched. */
  {
    geokv_iter_t *it = NULL;
    const uint8_t *k, *v;
    size_t kl, vl;
    CHECK(geokv_iter_open(&it, db, K("k")) == GEOKV_OK);
    CHECK(geokv_iter_next(it, &k, &kl, &v, &vl) == GEOKV_OK); /* the first page is cached now */
    CHECK(geokv_close(db) == GEOKV_OK);
    CHECK(geokv_iter_next(it, &k, &kl, &v, &vl) == GEOKV_ECLOSED);
    CHECK(geokv_iter_close(it) == GEOKV_OK);
  }
}

/* ---- 3. Fork ------------------------------------------------------------------------------ */

static void test_fork(const char *base) {
  char dir[512];
  geokv_db_t *db = NULL;
  geokv_iter_t *it = NULL;
  pid_t child;
  int status = 0;
  uint8_t *value = NULL;
  size_t len = 0;
  snprintf(dir, sizeof dir, "%s/fork", base);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_put(db, K("parent"), K("1")) == GEOKV_OK);
  CHECK(geokv_iter_open(&it, db, NULL, 0) == GEOKV_OK);
  fflush(stderr);
  child = fork();
  if (child == 0) {
    /* The child: every call on the inherited handle fails loudly, none is lost silently. */
    int bad = 0;
    const uint8_t *k, *v;
    size_t kl, vl;
    geokv_db_t *mine = NULL;
    if (geokv_put(db, K("child"), K("2")) != GEOKV_EFORKED) bad |= 1;
    if (!contains(geokv_errmsg(), "fork")) bad |= 2;
    if (geokv_get(&value, &len, db, K("parent")) != GEOKV_EFORKED) bad |= 4;
    if (geokv_delete(db, K("parent")) != GEOKV_EFORKED) bad |= 8;
    if (geokv_iter_next(it, &k, &kl, &v, &vl) != GEOKV_EFORKED) bad |= 16;
    if (geokv_iter_close(it) != GEOKV_OK) bad |= 32;
    if (geokv_close(db) != GEOKV_OK) bad |= 64; /* releases it here, leaves the parent's store alone */
    if (geokv_open(&mine, dir, NULL) != GEOKV_EBUSY) bad |= 128; /* the parent still holds it */
    _exit(bad);
  }
  CHECK(child > 0);
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) fprintf(stderr, "fork child bits: %d\n", WEXITSTATUS(status));
  /* The parent's handle works on, and the child's write is nowhere. */
  CHECK(geokv_put(db, K("parent2"), K("3")) == GEOKV_OK);
  CHECK(geokv_get(&value, &len, db, K("child")) == GEOKV_ENOTFOUND);
  CHECK(geokv_iter_close(it) == GEOKV_OK);
  CHECK(geokv_close(db) == GEOKV_OK);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_get(&value, &len, db, K("parent2")) == GEOKV_OK);
  geokv_free(value);
  CHECK(geokv_close(db) == GEOKV_OK);
}

/* ---- 5. Damaged files, repair ---------------------------------------------------------- */

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Overwrites bytes [from, size - keep_tail) of path with garbage. */
static void scribble(const char *path, long from, long keep_tail) {
  long size = file_size(path), at;
  int fd = open(path, O_WRONLY);
  CHECK(fd >= 0 && size > from + keep_tail);
  for (at = from; at < size - keep_tail; ++at) {
    unsigned char junk = (unsigned char)(0xA5 ^ (at * 31));
    CHECK(pwrite(fd, &junk, 1, at) == 1);
  }
  close(fd);
}

static int g_log_records = 0;
static int g_log_errors = 0;
static void count_log(int level, const char *message, void *payload) {
  (void)message;
  *(int *)payload += 1;
  if (level >= GEOKV_LOG_ERROR) g_log_errors++;
}

static void test_damage_and_repair(const char *base) {
  char dir[512], file[600];
  geokv_db_t *db = NULL;
  uint64_t salvaged = 99, kept = 0;
  char key[32];
  int i;
  snprintf(dir, sizeof dir, "%s/damaged", base);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  for (i = 0; i < 200; ++i) {
    snprintf(key, sizeof key, "key%04d", i);
    CHECK(geokv_put(db, K(key), K("some value that takes a little room")) == GEOKV_OK);
  }
  CHECK(geokv_close(db) == GEOKV_OK);

  /* A sound store: repair finds nothing to do. */
  CHECK(geokv_repair(&salvaged, &kept, dir) == GEOKV_OK);
  CHECK(salvaged == 0 && kept == 200);

  /* Damage the data file past its descriptor block. */
  snprintf(file, sizeof file, "%s/data.wt", dir);
  scribble(file, 4096, 0);
  g_log_records = 0;
  g_log_errors = 0;
  CHECK(geokv_log_set_callback(count_log, &g_log_records) == GEOKV_OK);
  db = NULL;
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_ECORRUPT); /* never OK-then-EIO */
  CHECK(db == NULL);
  CHECK(contains(geokv_errmsg(), "data.wt"));
  CHECK(contains(geokv_errmsg(), "repair"));
  CHECK(g_log_errors > 0); /* the storage engine's own words went to the callback */
  CHECK(geokv_log_set_callback(NULL, NULL) == GEOKV_OK);

  /* Repair while open elsewhere is refused; the store stays as it is. */
  CHECK(geokv_repair(NULL, NULL, NULL) == GEOKV_EINVAL);
  CHECK(geokv_repair(NULL, NULL, base) == GEOKV_EINVAL); /* not a store */

  CHECK(geokv_repair(&salvaged, &kept, dir) == GEOKV_OK);
  CHECK(salvaged == 1);
  CHECK(kept <= 200);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_put(db, K("after-repair"), K("ok")) == GEOKV_OK);
  {
    uint8_t *value = NULL;
    size_t len = 0;
    CHECK(geokv_get(&value, &len, db, K("after-repair")) == GEOKV_OK);
    geokv_free(value);
  }
  CHECK(geokv_close(db) == GEOKV_OK);
}

/* The newest journal file in dir (its name into out); 0 when there is none. */
static int newest_journal(const char *dir, char *out, size_t out_size) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char best[256] = "";
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "WiredTigerLog.", 14) == 0 && strcmp(e->d_name, best) > 0) {
      snprintf(best, sizeof best, "%s", e->d_name);
    }
  }
  closedir(d);
  snprintf(out, out_size, "%s", best);
  return best[0] != 0;
}

/* One past the last non-zero byte of path. */
static long data_end(const char *path) {
  FILE *f = fopen(path, "rb");
  long at = 0, end = 0;
  int c;
  if (f == NULL) return -1;
  while ((c = fgetc(f)) != EOF) {
    ++at;
    if (c != 0) end = at;
  }
  fclose(f);
  return end;
}

/* A child writes n keys (durability SYNC: each acknowledged once synced) and is killed
 * with SIGKILL: the writes live only in the journal, as after a crash. */
static void write_then_crash(const char *dir, int n) {
  int fds[2];
  char done = 0;
  pid_t pid;
  int status = 0;
  CHECK(pipe(fds) == 0);
  pid = fork();
  if (pid == 0) {
    geokv_db_t *db = NULL;
    char key[32];
    int i;
    close(fds[0]);
    if (geokv_open(&db, dir, NULL) != GEOKV_OK) _exit(2);
    for (i = 0; i < n; ++i) {
      snprintf(key, sizeof key, "key%05d", i);
      if (geokv_put(db, K(key), K("value")) != GEOKV_OK) _exit(3);
    }
    if (write(fds[1], "x", 1) != 1) _exit(4);
    pause();
    _exit(0);
  }
  close(fds[1]);
  CHECK(read(fds[0], &done, 1) == 1);
  close(fds[0]);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
}

/* Issue 10: damage inside the journal after a crash. WiredTiger alone would open without
 * every write after the damage (2000 keys: 760 left); open answers GEOKV_ECORRUPT naming
 * the journal file, and repair loses only the damaged record. */
static void test_journal_damage_and_repair(const char *base) {
  char dir[512], log[256], path[800], key[32];
  geokv_db_t *db = NULL;
  uint64_t salvaged = 99, kept = 0;
  uint8_t *value = NULL;
  size_t len = 0;
  long end;
  int fd;
  unsigned char byte = 0;

  /* A crash without damage opens with every key. */
  snprintf(dir, sizeof dir, "%s/journal-sound", base);
  write_then_crash(dir, 300);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_get(&value, &len, db, K("key00299")) == GEOKV_OK);
  geokv_free(value);
  CHECK(geokv_close(db) == GEOKV_OK);

  snprintf(dir, sizeof dir, "%s/journal-damaged", base);
  write_then_crash(dir, 1000);
  CHECK(newest_journal(dir, log, sizeof log));
  snprintf(path, sizeof path, "%s/%s", dir, log);
  end = data_end(path);
  CHECK(end > 4096);
  fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  CHECK(pread(fd, &byte, 1, end / 2) == 1);
  byte ^= 0x5a;
  CHECK(pwrite(fd, &byte, 1, end / 2) == 1);
  close(fd);

  db = NULL;
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_ECORRUPT);
  CHECK(db == NULL);
  CHECK(contains(geokv_errmsg(), log));
  CHECK(contains(geokv_errmsg(), "repair"));
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_ECORRUPT); /* refusing changed nothing */

  CHECK(geokv_repair(&salvaged, &kept, dir) == GEOKV_OK);
  CHECK(salvaged == 1); /* the journal file */
  CHECK(kept == 999);   /* the damaged record held one key; every write after it is kept */
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  snprintf(key, sizeof key, "key%05d", 999);
  CHECK(geokv_get(&value, &len, db, K(key)) == GEOKV_OK);
  geokv_free(value);
  CHECK(geokv_close(db) == GEOKV_OK);
}

static void test_repair_of_open_store_is_busy(const char *base) {
  char dir[512];
  geokv_db_t *db = NULL;
  snprintf(dir, sizeof dir, "%s/repair-busy", base);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_repair(NULL, NULL, dir) == GEOKV_EBUSY);
  CHECK(geokv_close(db) == GEOKV_OK);
}

/* ---- 7. Logging ----------------------------------------------------------------------- */

static void test_log_controls(void) {
  int records = 0;
  CHECK(geokv_log_level() == GEOKV_LOG_WARN); /* the default */
  CHECK(geokv_log_set_level(GEOKV_LOG_OFF + 1) == GEOKV_EINVAL);
  CHECK(geokv_log_set_level(GEOKV_LOG_TRACE - 1) == GEOKV_EINVAL);
  CHECK(geokv_log_level() == GEOKV_LOG_WARN);
  CHECK(geokv_log_set_level(GEOKV_LOG_OFF) == GEOKV_OK);
  CHECK(geokv_log_level() == GEOKV_LOG_OFF);
  CHECK(geokv_log_set_level(GEOKV_LOG_TRACE) == GEOKV_OK);
  CHECK(geokv_log_set_callback(count_log, &records) == GEOKV_OK);
  {
    geokv_db_t *db = NULL;
    char dir[] = "/tmp/geokv-logXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK); /* logs at debug level */
    CHECK(geokv_close(db) == GEOKV_OK);
  }
  CHECK(records > 0);
  CHECK(geokv_log_set_callback(NULL, NULL) == GEOKV_OK);
  CHECK(geokv_log_set_level(GEOKV_LOG_WARN) == GEOKV_OK);
}

/* stdout stays the host's: run a noisy session with stdout pointed at a file. */
static void test_nothing_on_stdout(const char *base) {
  char out[512], dir[512], file[600];
  int saved = dup(STDOUT_FILENO), fd;
  geokv_db_t *db = NULL;
  snprintf(out, sizeof out, "%s/stdout.txt", base);
  snprintf(dir, sizeof dir, "%s/noisy", base);
  fflush(stdout);
  fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0 && dup2(fd, STDOUT_FILENO) == STDOUT_FILENO);
  close(fd);
  CHECK(geokv_log_set_level(GEOKV_LOG_TRACE) == GEOKV_OK);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_put(db, K("k"), K("v")) == GEOKV_OK);
  CHECK(geokv_close(db) == GEOKV_OK);
  snprintf(file, sizeof file, "%s/data.wt", dir);
  scribble(file, 4096, 0);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_ECORRUPT); /* WiredTiger complains, with hex dumps */
  CHECK(geokv_log_set_level(GEOKV_LOG_WARN) == GEOKV_OK);
  fflush(stdout);
  CHECK(dup2(saved, STDOUT_FILENO) == STDOUT_FILENO);
  close(saved);
  CHECK(file_size(out) == 0);
}

/* ---- 8. Disk use ---------------------------------------------------------------------- */

static long dir_bytes(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  long total = 0;
  char path[1024];
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) total += (long)st.st_blocks * 512;
  }
  closedir(d);
  return total;
}

static void test_small_store_is_small(const char *base) {
  char dir[512], key[16];
  geokv_db_t *db = NULL;
  long open_bytes, closed_bytes;
  int i;
  snprintf(dir, sizeof dir, "%s/ten-keys", base);
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  for (i = 0; i < 10; ++i) {
    snprintf(key, sizeof key, "key%d", i);
    CHECK(geokv_put(db, K(key), K("value")) == GEOKV_OK);
  }
  open_bytes = dir_bytes(dir);
  CHECK(geokv_close(db) == GEOKV_OK);
  closed_bytes = dir_bytes(dir);
  printf("disk of an embedded store with 10 keys: %ld bytes open, %ld bytes closed\n", open_bytes, closed_bytes);
  CHECK(open_bytes > 0 && open_bytes <= 8L * 1024 * 1024);
  CHECK(closed_bytes > 0 && closed_bytes <= 8L * 1024 * 1024);
}

/* ---- 6. Options and endpoints at their edges ------------------------------------------- */

static void test_option_edges(const char *base) {
  char dir[512];
  geokv_db_t *db = NULL;
  geokv_options_t o = GEOKV_OPTIONS_INIT;
  snprintf(dir, sizeof dir, "%s/options", base);
  o.durability = 4;
  CHECK(geokv_open(&db, dir, &o) == GEOKV_ECONFIG);
  o.durability = GEOKV_DURABILITY_NONE;
  o.key_bytes_max = 65537;
  CHECK(geokv_open(&db, dir, &o) == GEOKV_ECONFIG);
  o.key_bytes_max = 65536;
  o.value_bytes_max = 64u * 1024 * 1024 + 1;
  CHECK(geokv_open(&db, dir, &o) == GEOKV_ECONFIG);
  o.value_bytes_max = 64u * 1024 * 1024;
  o.commit_timeout_ms = 3600001;
  CHECK(geokv_open(&db, dir, &o) == GEOKV_ECONFIG);
  o.commit_timeout_ms = 3600000;
  CHECK(geokv_open(&db, dir, &o) == GEOKV_OK); /* every option at its ceiling */
  CHECK(geokv_close(db) == GEOKV_OK);

  /* iter_open checks the prefix length before reading it: a huge length over a small
   * buffer is refused without touching the bytes. */
  {
    static const uint8_t small[16] = {0};
    geokv_iter_t *it = NULL;
    geokv_options_t k = GEOKV_OPTIONS_INIT;
    k.key_bytes_max = 16;
    CHECK(geokv_open(&db, dir, &k) == GEOKV_OK);
    CHECK(geokv_iter_open(&it, db, small, (size_t)1 << 30) == GEOKV_EKEYSIZE);
    CHECK(geokv_iter_open(&it, db, small, 17) == GEOKV_EKEYSIZE);
    CHECK(geokv_iter_open(&it, db, small, 16) == GEOKV_OK);
    CHECK(geokv_iter_close(it) == GEOKV_OK);
    CHECK(geokv_close(db) == GEOKV_OK);
  }
}

static void test_endpoint_edges(void) {
  geokv_db_t *db = NULL;
  geokv_connect_options_t o = GEOKV_CONNECT_OPTIONS_INIT;
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:99999", NULL) == GEOKV_EINVAL);
  CHECK(contains(geokv_errmsg(), "port"));
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:65536", NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:0", NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:", NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "tcp://127.0.0.1", NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:7x", NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "tcp://no-such-host.invalid:7200", NULL) == GEOKV_EINVAL);
  CHECK(contains(geokv_errmsg(), "resolve"));
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:7200,tcp://127.0.0.1:99999", NULL) == GEOKV_EINVAL);
  CHECK(contains(geokv_errmsg(), "endpoint 2"));
  CHECK(geokv_connect(&db, "udp://127.0.0.1:7200", NULL) == GEOKV_EINVAL);
  /* Messages quote bytes escaped: one line, never a raw control byte. */
  CHECK(geokv_connect(&db, "tcp://bad\001host\n:7200", NULL) == GEOKV_EINVAL);
  CHECK(contains(geokv_errmsg(), "\\x01") && contains(geokv_errmsg(), "\\x0a"));
  CHECK(strchr(geokv_errmsg(), '\001') == NULL && strchr(geokv_errmsg(), '\n') == NULL);
  o.timeout_ms = 3600001;
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:7200", &o) == GEOKV_ECONFIG);
  CHECK(db == NULL);
  o.timeout_ms = 3600000;
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:65535,tcp://localhost:1", &o) == GEOKV_OK);
  CHECK(geokv_close(db) == GEOKV_OK);
  CHECK(strcmp(geokv_strerror(GEOKV_EFORKED), "GEOKV_EFORKED") == 0);
}

int main(void) {
  char base[] = "/tmp/geokv-robustXXXXXX";
  if (mkdtemp(base) == NULL) {
    perror("mkdtemp");
    return 2;
  }
  test_log_controls();
  test_nothing_on_stdout(base);
  test_same_dir_other_spellings(base);
  test_close_races_calls(base);
  test_shared_iterator(base);
  test_fork(base);
  test_damage_and_repair(base);
  test_journal_damage_and_repair(base);
  test_repair_of_open_store_is_busy(base);
  test_small_store_is_small(base);
  test_option_edges(base);
  test_endpoint_edges();
  {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
  }
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("c_robust_test: all checks passed\n");
  return 0;
}
