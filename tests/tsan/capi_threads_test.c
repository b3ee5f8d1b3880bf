/* Many threads on the C ABI at once, for ThreadSanitizer (label tsan) and as a plain stress
 * test elsewhere:
 *   1. one embedded handle shared by every thread: put, get, delete and prefix iteration;
 *   2. (only when named) a close racing with threads that still call: each call must return
 *      OK or GEOKV_ECLOSED, as geokv.h promises;
 *   3. this process as a one-region cluster node (geokv_open with a [cluster] config: the
 *      server's event loop, client I/O thread and storage threads run here), used by many
 *      threads through its own handle and through geokv_connect handles: strong and lww
 *      puts and gets, counter adds, set adds and member lists.
 * Exit code 0 when every check passes; each failed check prints its line. Every blocking
 * call has a deadline (the handles' timeouts) and an alarm bounds the whole run. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "geokv/geokv.h"

enum { kThreads = 8, kOps = 300, kClusterOps = 60 };
static const unsigned kAlarmS = 170; /* below the ctest TIMEOUT */

static atomic_int failures;

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; errmsg: %s\n", __FILE__, __LINE__, \
              #cond, geokv_errmsg());                                                 \
      atomic_fetch_add(&failures, 1);                                                 \
    }                                                                                 \
  } while (0)

#define K(s) (const uint8_t *)(s), strlen(s)

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- 1 and 2: one embedded handle ---------------------------------------------------- */

struct worker {
  geokv_db_t *db;
  int id;
  int closing; /* part 2: GEOKV_ECLOSED is an expected answer */
};

static int ok_or_closed(int rc, const struct worker *w) {
  return rc == GEOKV_OK || (w->closing && rc == GEOKV_ECLOSED);
}

static void *embedded_worker(void *arg) {
  const struct worker *w = arg;
  char key[64], prefix[32], value[32];
  snprintf(prefix, sizeof prefix, "t%02d/", w->id);
  for (int i = 0; i < kOps; i++) {
    snprintf(key, sizeof key, "t%02d/%03d", w->id, i % 25);
    snprintf(value, sizeof value, "%d", i);
    switch (i % 5) {
      case 0:
      case 1:
        CHECK(ok_or_closed(geokv_put(w->db, K(key), K(value)), w));
        break;
      case 2: {
        uint8_t *v = NULL;
        size_t n = 0;
        int rc = geokv_get(&v, &n, w->db, K(key));
        CHECK(ok_or_closed(rc, w) || rc == GEOKV_ENOTFOUND);
        geokv_free(v);
        break;
      }
      case 3:
        CHECK(ok_or_closed(geokv_delete(w->db, K(key)), w));
        break;
      case 4: {
        geokv_iter_t *it = NULL;
        int rc = geokv_iter_open(&it, w->db, K(prefix));
        CHECK(ok_or_closed(rc, w));
        if (rc != GEOKV_OK) break;
        const uint8_t *k, *v;
        size_t kn, vn;
        while ((rc = geokv_iter_next(it, &k, &kn, &v, &vn)) == GEOKV_OK) {
          CHECK(kn > 4 && memcmp(k, prefix, 4) == 0);
        }
        CHECK(rc == GEOKV_DONE || (w->closing && rc == GEOKV_ECLOSED));
        CHECK(geokv_iter_close(it) == GEOKV_OK);
        break;
      }
    }
  }
  return NULL;
}

static void run_workers(geokv_db_t *db, int closing, void *(*fn)(void *), int close_midway) {
  pthread_t threads[kThreads];
  struct worker workers[kThreads];
  for (int i = 0; i < kThreads; i++) {
    workers[i] = (struct worker){db, i, closing};
    CHECK(pthread_create(&threads[i], NULL, fn, &workers[i]) == 0);
  }
  if (close_midway) {
    sleep_ms(20);
    CHECK(geokv_close(db) == GEOKV_OK);
  }
  for (int i = 0; i < kThreads; i++) pthread_join(threads[i], NULL);
}

static void test_embedded(const char *dir) {
  geokv_options_t options = GEOKV_OPTIONS_INIT;
  options.durability = GEOKV_DURABILITY_WRITE;
  geokv_db_t *db = NULL;
  CHECK(geokv_open(&db, dir, &options) == GEOKV_OK);
  if (db == NULL) return;
  run_workers(db, 0, embedded_worker, 0);
  CHECK(geokv_close(db) == GEOKV_OK);
}

static void test_close_race(const char *dir) {
  geokv_options_t options = GEOKV_OPTIONS_INIT;
  options.durability = GEOKV_DURABILITY_WRITE;
  geokv_db_t *db = NULL;
  CHECK(geokv_open(&db, dir, &options) == GEOKV_OK);
  if (db == NULL) return;
  run_workers(db, 1, embedded_worker, 1);
  CHECK(geokv_close(db) == GEOKV_ECLOSED);
}

/* ---- 3: this process as a cluster node ------------------------------------------------- */

static int port_free(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
  close(s);
  return ok;
}

/* A peer and a client port (base, base + 1), both free now, in 30000..39999 (the other
 * suites pick theirs in 20000..32600 from their PIDs). */
static int pick_base_port(void) {
  for (int attempt = 0; attempt < 200; attempt++) {
    int base = 30000 + (int)((getpid() * 13L + attempt * 97L) % 9990);
    if (port_free(base) && port_free(base + 1)) return base;
  }
  return -1;
}

struct cluster_worker {
  geokv_db_t *db;
  int id;
};

static int transient(int rc) { return rc == GEOKV_EUNAVAILABLE || rc == GEOKV_ETIMEOUT; }

static void *cluster_worker(void *arg) {
  const struct cluster_worker *w = arg;
  char key[64], value[32];
  for (int i = 0; i < kClusterOps; i++) {
    int rc;
    snprintf(value, sizeof value, "%d", i);
    switch (i % 4) {
      case 0:
        snprintf(key, sizeof key, "s/%d/%d", w->id, i % 5);
        rc = geokv_put(w->db, K(key), K(value));
        CHECK(rc == GEOKV_OK || transient(rc));
        break;
      case 1: {
        uint8_t *v = NULL;
        size_t n = 0;
        snprintf(key, sizeof key, "lww/%d", i % 3);
        rc = geokv_put(w->db, K(key), K(value));
        CHECK(rc == GEOKV_OK || transient(rc));
        rc = geokv_get(&v, &n, w->db, K(key));
        CHECK(rc == GEOKV_OK || transient(rc));
        geokv_free(v);
        break;
      }
      case 2: {
        int64_t result = 0;
        rc = geokv_add(&result, w->db, K("cnt/hits"), 1);
        CHECK(rc == GEOKV_OK || transient(rc));
        break;
      }
      case 3: {
        geokv_list_t *members = NULL;
        snprintf(key, sizeof key, "e%d", w->id);
        rc = geokv_set_add(w->db, K("tags/t"), K(key));
        CHECK(rc == GEOKV_OK || transient(rc));
        rc = geokv_set_members(&members, w->db, K("tags/t"));
        CHECK(rc == GEOKV_OK || transient(rc));
        geokv_list_free(members);
        break;
      }
    }
  }
  return NULL;
}

static void test_cluster_node(const char *dir) {
  int base = pick_base_port();
  CHECK(base > 0);
  if (base <= 0) return;
  char cfg[512], data[512], endpoint[64], text[2048];
  snprintf(cfg, sizeof cfg, "%s/node.toml", dir);
  snprintf(data, sizeof data, "%s/node", dir);
  snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", base + 1);
  snprintf(text, sizeof text,
           "data_dir = \"%s\"\n"
           "[node]\nid = 0\n"
           "[cluster]\nshards = 2\n"
           "[[cluster.nodes]]\nid = 0\nregion = \"solo\"\n"
           "peer_endpoint = \"tcp://127.0.0.1:%d\"\nclient_endpoint = \"%s\"\n"
           "[policy]\ndefault = \"strong\"\n"
           "rules = { \"cnt/\" = \"counter\", \"tags/\" = \"set\", \"lww/\" = \"lww\" }\n",
           data, base, endpoint);
  FILE *f = fopen(cfg, "w");
  CHECK(f != NULL);
  if (f == NULL) return;
  fputs(text, f);
  fclose(f);

  geokv_options_t options = GEOKV_OPTIONS_INIT;
  options.config_path = cfg;
  geokv_db_t *node = NULL;
  int rc = geokv_open(&node, NULL, &options);
  CHECK(rc == GEOKV_OK);
  if (rc != GEOKV_OK) return;

  /* Setup, not a check: the shards elect their leader right after start. */
  long long deadline = now_ms() + 30000;
  while ((rc = geokv_put(node, K("warmup"), K("1"))) != GEOKV_OK && transient(rc) &&
         now_ms() < deadline) {
    sleep_ms(50);
  }
  CHECK(rc == GEOKV_OK);

  geokv_connect_options_t copts = GEOKV_CONNECT_OPTIONS_INIT;
  copts.timeout_ms = 10000;
  geokv_db_t *shared = NULL;
  CHECK(geokv_connect(&shared, endpoint, &copts) == GEOKV_OK);

  /* Half the threads share the node's own handle, the others one connected handle; a
   * last pair each opens and closes its own connection meanwhile. */
  pthread_t threads[kThreads];
  struct cluster_worker workers[kThreads];
  for (int i = 0; i < kThreads; i++) {
    workers[i] = (struct cluster_worker){i % 2 == 0 ? node : shared, i};
    CHECK(pthread_create(&threads[i], NULL, cluster_worker, &workers[i]) == 0);
  }
  for (int round = 0; round < 5; round++) {
    geokv_db_t *own = NULL;
    CHECK(geokv_connect(&own, endpoint, &copts) == GEOKV_OK);
    uint8_t *v = NULL;
    size_t n = 0;
    rc = geokv_get(&v, &n, own, K("warmup"));
    CHECK(rc == GEOKV_OK || transient(rc));
    geokv_free(v);
    CHECK(geokv_close(own) == GEOKV_OK);
  }
  for (int i = 0; i < kThreads; i++) pthread_join(threads[i], NULL);

  int64_t hits = -1;
  CHECK(geokv_add(&hits, shared, K("cnt/hits"), 0) == GEOKV_OK);
  CHECK(hits > 0 && hits <= kThreads * kClusterOps / 4);
  CHECK(geokv_close(shared) == GEOKV_OK);
  CHECK(geokv_close(node) == GEOKV_OK);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "capi_threads_test: the run exceeded its time bound\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
  _exit(3);
}

static int remove_tree(const char *path) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  return system(cmd);
}

/* usage: capi_threads_test [PART...]  with PART embedded, close-race or cluster (default:
 * embedded and cluster; close-race only when named: see tests/tsan/CMakeLists.txt). */
static int wanted(int argc, char **argv, const char *part) {
  if (argc < 2) return strcmp(part, "close-race") != 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], part) == 0) return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGALRM, on_alarm);
  alarm(kAlarmS);
  char base[] = "/tmp/geokv-threads-XXXXXX";
  if (mkdtemp(base) == NULL) {
    perror("mkdtemp");
    return 2;
  }
  char dir[600];
  long long start = now_ms();
  if (wanted(argc, argv, "embedded")) {
    snprintf(dir, sizeof dir, "%s/embedded", base);
    test_embedded(dir);
    fprintf(stderr, "capi_threads_test: embedded done after %lld ms\n", now_ms() - start);
  }
  if (wanted(argc, argv, "close-race")) {
    snprintf(dir, sizeof dir, "%s/close-race", base);
    test_close_race(dir);
    fprintf(stderr, "capi_threads_test: close-race done after %lld ms\n", now_ms() - start);
  }
  if (wanted(argc, argv, "cluster")) {
    test_cluster_node(base);
    fprintf(stderr, "capi_threads_test: cluster done after %lld ms\n", now_ms() - start);
  }
  if (getenv("GEOKV_KEEP") == NULL) remove_tree(base);
  int n = atomic_load(&failures);
  if (n != 0) {
    fprintf(stderr, "capi_threads_test: %d check(s) failed\n", n);
    return 1;
  }
  printf("capi_threads_test: ok\n");
  return 0;
}
