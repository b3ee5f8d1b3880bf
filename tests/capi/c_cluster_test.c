/* The C ABI against a real cluster, from plain C99: starts `geokv local` (three regions on
 * loopback), drives every cluster function end to end from different regions' endpoints,
 * and stops the cluster on every exit path (normal, failed check, alarm).
 *
 * usage: c_cluster_test GEOKV_BIN [EXAMPLE_BIN]
 * Exit code 0 when every check passes; each failed check prints its line. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "geokv/geokv.h"

static int failures = 0;

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; errmsg: %s\n", __FILE__, \
              __LINE__, #cond, geokv_errmsg());                           \
      failures++;                                                         \
    }                                                                     \
  } while (0)

#define K(s) (const uint8_t *)(s), strlen(s)

enum { kRegions = 3 };
/* Bounds of every wait (a hung cluster fails the test; it never hangs it). */
static const int kReadyWaitMs = 60000;
static const int kConvergeWaitMs = 20000;
static const int kStopWaitMs = 20000;
static const unsigned kAlarmS = 105; /* below the ctest TIMEOUT of 120 s */

static volatile pid_t cluster_pid = -1;
static char dir[256];

static void sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGINT (geokv local stops its nodes), a bounded wait, then SIGKILL to the whole process
 * group. Async-signal-safe: also called from the alarm handler. */
static void stop_cluster(void) {
  pid_t pid = cluster_pid;
  int waited_ms = 0;
  if (pid <= 0) return;
  cluster_pid = -1;
  kill(pid, SIGINT);
  while (waited_ms < kStopWaitMs) {
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      kill(-pid, SIGKILL); /* any geokvd left behind in the group */
      return;
    }
    sleep_ms(50);
    waited_ms += 50;
  }
  kill(-pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void on_alarm(int sig) {
  static const char msg[] = "c_cluster_test: out of time; stopping the cluster\n";
  (void)sig;
  if (write(2, msg, sizeof msg - 1) < 0) {
  }
  stop_cluster();
  _exit(2);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void print_log(void) {
  char path[320], line[512];
  FILE *f;
  snprintf(path, sizeof path, "%s/cluster.log", dir);
  f = fopen(path, "r");
  if (f == NULL) return;
  fprintf(stderr, "---- %s ----\n", path);
  while (fgets(line, sizeof line, f) != NULL) fputs(line, stderr);
  fclose(f);
}

static int finish(int code) {
  stop_cluster();
  if (code != 0) print_log();
  if (dir[0] != '\0') nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  return code;
}

static int port_free(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
  if (fd < 0) return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* A base port in 20000..29999 derived from the PID whose peer (+i), client (+100+i) and
 * metrics (+200+i) ports are all free now. */
static int pick_base_port(void) {
  int attempt, i;
  for (attempt = 0; attempt < 200; ++attempt) {
    int base = 20000 + (int)(((unsigned)getpid() * 7u + (unsigned)attempt * 131u) % 9700u);
    int ok = 1;
    for (i = 0; i < kRegions && ok; ++i) {
      ok = port_free(base + i) && port_free(base + 100 + i) && port_free(base + 200 + i);
    }
    if (ok) return base;
  }
  return -1;
}

static int start_cluster(const char *geokv_bin, int base) {
  char base_text[16], data[300], ready[300], logpath[300];
  long long deadline;
  pid_t pid;
  snprintf(base_text, sizeof base_text, "%d", base);
  snprintf(data, sizeof data, "%s/data", dir);
  snprintf(ready, sizeof ready, "%s/ready", dir);
  snprintf(logpath, sizeof logpath, "%s/cluster.log", dir);
  pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    setpgid(0, 0);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGINT); /* this test killed outright: the cluster still stops */
#endif
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execl(geokv_bin, geokv_bin, "local", "--regions", "a,b,c", "--base-port", base_text, "--dir", data,
          "--ready-file", ready, (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid);
  cluster_pid = pid;
  deadline = now_ms() + kReadyWaitMs;
  while (now_ms() < deadline) {
    struct stat st;
    if (stat(ready, &st) == 0 && st.st_size > 0) return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      cluster_pid = -1;
      fprintf(stderr, "geokv local exited before it was ready\n");
      return -1;
    }
    sleep_ms(100);
  }
  fprintf(stderr, "geokv local was not ready within %d ms\n", kReadyWaitMs);
  return -1;
}

/* ---- helpers over the ABI ------------------------------------------------------------- */

/* 1 when key reads as exactly text at db. */
static int reads_as(geokv_db_t *db, const char *key, const char *text) {
  uint8_t *v = NULL;
  size_t n = 0;
  int same;
  if (geokv_get(&v, &n, db, K(key)) != GEOKV_OK) return 0;
  same = n == strlen(text) && memcmp(v, text, n) == 0;
  geokv_free(v);
  return same;
}

/* 1 when the set at key holds exactly the NULL-terminated members, in byte order. */
static int members_are(geokv_db_t *db, const char *key, const char *const *want) {
  geokv_list_t *list = NULL;
  size_t i, n = 0;
  int same;
  if (geokv_set_members(&list, db, K(key)) != GEOKV_OK) return 0;
  while (want[n] != NULL) n++;
  same = list->count == n;
  for (i = 0; same && i < n; ++i) {
    same = list->lengths[i] == strlen(want[i]) && memcmp(list->items[i], want[i], list->lengths[i]) == 0 &&
           list->items[i][list->lengths[i]] == '\0';
  }
  geokv_list_free(list);
  return same;
}

/* Polls every region until key reads as text everywhere; 1 on success within the bound. */
static int converge_value(geokv_db_t **dbs, const char *key, const char *text) {
  long long deadline = now_ms() + kConvergeWaitMs;
  for (;;) {
    int r, all = 1;
    for (r = 0; r < kRegions; ++r) all = all && reads_as(dbs[r], key, text);
    if (all) return 1;
    if (now_ms() > deadline) return 0;
    sleep_ms(50);
  }
}

static int converge_members(geokv_db_t **dbs, const char *key, const char *const *want) {
  long long deadline = now_ms() + kConvergeWaitMs;
  for (;;) {
    int r, all = 1;
    for (r = 0; r < kRegions; ++r) all = all && members_are(dbs[r], key, want);
    if (all) return 1;
    if (now_ms() > deadline) return 0;
    sleep_ms(50);
  }
}

/* 1 when the multi-value register at key holds exactly the NULL-terminated values. */
static int mv_values_are(geokv_db_t *db, const char *key, const char *const *want) {
  geokv_list_t *list = NULL;
  uint8_t *ctx = NULL;
  size_t i, n = 0, ctx_len = 0;
  int same;
  if (geokv_mv_get(&list, &ctx, &ctx_len, db, K(key)) != GEOKV_OK) return 0;
  while (want[n] != NULL) n++;
  same = list->count == n && ctx != NULL;
  for (i = 0; same && i < n; ++i) {
    same = list->lengths[i] == strlen(want[i]) && memcmp(list->items[i], want[i], list->lengths[i]) == 0;
  }
  geokv_list_free(list);
  geokv_free(ctx);
  return same;
}

static int converge_mv(geokv_db_t **dbs, const char *key, const char *const *want) {
  long long deadline = now_ms() + kConvergeWaitMs;
  for (;;) {
    int r, all = 1;
    for (r = 0; r < kRegions; ++r) all = all && mv_values_are(dbs[r], key, want);
    if (all) return 1;
    if (now_ms() > deadline) return 0;
    sleep_ms(50);
  }
}

enum probe_mode { kProbeCounter, kProbeSet, kProbeMvReg };

/* Waits until every region routes `probe` (absent) by its new mode: a counter reads as
 * "0", a set's members and a register's values read as empty (a strong key would give
 * ENOTFOUND / EWRONGMODE). Reads only, so a region still on the old policy creates no
 * data. */
static int policy_reached_every_region(geokv_db_t **dbs, const char *probe, enum probe_mode mode) {
  static const char *const none[] = {NULL};
  long long deadline = now_ms() + kConvergeWaitMs;
  for (;;) {
    int r, all = 1;
    for (r = 0; r < kRegions; ++r) {
      all = all && (mode == kProbeSet     ? members_are(dbs[r], probe, none)
                    : mode == kProbeMvReg ? mv_values_are(dbs[r], probe, none)
                                          : reads_as(dbs[r], probe, "0"));
    }
    if (all) return 1;
    if (now_ms() > deadline) return 0;
    sleep_ms(50);
  }
}

/* ---- the checks ----------------------------------------------------------------------- */

static void test_connect_bad_input(const char *endpoint) {
  geokv_db_t *db = NULL;
  geokv_connect_options_t o = GEOKV_CONNECT_OPTIONS_INIT;
  CHECK(geokv_connect(NULL, endpoint, NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, NULL, NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "", NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "127.0.0.1:7200", NULL) == GEOKV_EINVAL);
  CHECK(strstr(geokv_errmsg(), "127.0.0.1:7200") != NULL);
  CHECK(geokv_connect(&db, "tcp://127.0.0.1:1,", NULL) == GEOKV_EINVAL);
  CHECK(geokv_connect(&db, "tcp://", NULL) == GEOKV_EINVAL);
  o.version = 99;
  CHECK(geokv_connect(&db, endpoint, &o) == GEOKV_EVERSION);
  o.version = 0;
  CHECK(geokv_connect(&db, endpoint, &o) == GEOKV_EVERSION);
  o.version = GEOKV_CONNECT_OPTIONS_VERSION;
  o.curve_server_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  CHECK(geokv_connect(&db, endpoint, &o) == GEOKV_EINVAL); /* no client key pair */
  o.curve_public_key = "short";
  o.curve_secret_key = "short";
  CHECK(geokv_connect(&db, endpoint, &o) == GEOKV_EINVAL);
  CHECK(db == NULL); /* out-params untouched on error */
}

static void test_embedded_handle(void) {
  char path[300];
  geokv_db_t *db = NULL;
  geokv_list_t *list = NULL, *list2 = NULL;
  int64_t n = 0;
  int present = 0;
  snprintf(path, sizeof path, "%s/embedded", dir);
  if (mkdir(path, 0755) != 0 || geokv_open(&db, path, NULL) != GEOKV_OK) {
    CHECK(!"cannot open an embedded store");
    return;
  }
  CHECK(geokv_cas(db, K("k"), NULL, 0, K("v")) == GEOKV_EWRONGMODE);
  CHECK(strstr(geokv_errmsg(), "connect to a cluster") != NULL);
  CHECK(geokv_add(&n, db, K("k"), 1) == GEOKV_EWRONGMODE);
  CHECK(geokv_set_add(db, K("s"), K("x")) == GEOKV_EWRONGMODE);
  CHECK(geokv_set_remove(db, K("s"), K("x")) == GEOKV_EWRONGMODE);
  CHECK(geokv_set_contains(&present, db, K("s"), K("x")) == GEOKV_EWRONGMODE);
  CHECK(geokv_set_members(&list, db, K("s")) == GEOKV_EWRONGMODE);
  CHECK(geokv_policy_set(db, K("p/"), "counter") == GEOKV_EWRONGMODE);
  CHECK(geokv_policy_remove(db, K("p/")) == GEOKV_EWRONGMODE);
  CHECK(geokv_policy_list(&list, &list2, db) == GEOKV_EWRONGMODE);
  CHECK(geokv_status(&list, db) == GEOKV_EWRONGMODE);
  CHECK(geokv_node_set_state(db, 0, "draining") == GEOKV_EWRONGMODE);
  CHECK(geokv_mv_put(db, K("m"), K("v"), NULL, 0) == GEOKV_EWRONGMODE);
  CHECK(geokv_mv_delete(db, K("m"), NULL, 0) == GEOKV_EWRONGMODE);
  {
    uint8_t *ctx = NULL;
    size_t ctx_len = 0;
    CHECK(geokv_mv_get(&list, &ctx, &ctx_len, db, K("m")) == GEOKV_EWRONGMODE);
    CHECK(ctx == NULL);
  }
  CHECK(list == NULL && list2 == NULL && n == 0);
  CHECK(geokv_put(db, K("k"), K("v")) == GEOKV_OK); /* the plain store still works */
  CHECK(geokv_close(db) == GEOKV_OK);
}

static void test_strong(geokv_db_t **dbs) {
  int64_t n = 0;
  uint8_t *v = NULL;
  size_t len = 0;
  /* put in a, read in b and c: linearizable, so visible at once. */
  CHECK(geokv_put(dbs[0], K("strong/x"), K("one")) == GEOKV_OK);
  CHECK(reads_as(dbs[1], "strong/x", "one"));
  CHECK(reads_as(dbs[2], "strong/x", "one"));
  CHECK(geokv_put(dbs[1], K("strong/empty"), NULL, 0) == GEOKV_OK);
  CHECK(geokv_get(&v, &len, dbs[2], K("strong/empty")) == GEOKV_OK);
  CHECK(v != NULL && len == 0);
  geokv_free(v);
  v = NULL;

  /* cas: absent -> v1 from a; a second "absent" cas from b loses; then v1 -> v2 from b. */
  CHECK(geokv_cas(dbs[0], K("strong/c"), NULL, 0, K("v1")) == GEOKV_OK);
  CHECK(geokv_cas(dbs[1], K("strong/c"), NULL, 0, K("other")) == GEOKV_ECONFLICT);
  CHECK(geokv_cas(dbs[1], K("strong/c"), K("wrong"), K("other")) == GEOKV_ECONFLICT);
  CHECK(geokv_cas(dbs[1], K("strong/c"), K("v1"), K("v2")) == GEOKV_OK);
  CHECK(reads_as(dbs[2], "strong/c", "v2"));
  /* An empty expected value is not "absent". */
  CHECK(geokv_cas(dbs[2], K("strong/empty"), (const uint8_t *)"", 0, K("filled")) == GEOKV_OK);
  CHECK(reads_as(dbs[0], "strong/empty", "filled"));

  /* add: linearizable across regions. */
  CHECK(geokv_add(&n, dbs[0], K("strong/n"), 5) == GEOKV_OK && n == 5);
  CHECK(geokv_add(&n, dbs[1], K("strong/n"), 3) == GEOKV_OK && n == 8);
  CHECK(geokv_add(&n, dbs[2], K("strong/n"), -10) == GEOKV_OK && n == -2);
  CHECK(reads_as(dbs[0], "strong/n", "-2"));
  n = 77;
  CHECK(geokv_add(&n, dbs[0], K("strong/x"), 1) == GEOKV_EINVAL); /* "one" is no integer */
  CHECK(n == 77);

  CHECK(geokv_delete(dbs[1], K("strong/x")) == GEOKV_OK);
  CHECK(geokv_get(&v, &len, dbs[0], K("strong/x")) == GEOKV_ENOTFOUND);
  CHECK(v == NULL);
  CHECK(geokv_delete(dbs[2], K("strong/x")) == GEOKV_OK); /* absent: still OK */
}

/* A node-state change, repeated while its outcome is unknown or no leader answers (draining
 * the metadata leader moves that leadership too): as an operator does; it is idempotent. */
static int node_state(geokv_db_t *db, uint32_t node, const char *state) {
  int rc = GEOKV_ETIMEOUT;
  for (int i = 0; i < 100 && (rc == GEOKV_ETIMEOUT || rc == GEOKV_EUNAVAILABLE); ++i) {
    if (i > 0) sleep_ms(100);
    rc = geokv_node_set_state(db, node, state);
  }
  return rc;
}

/* Operator node states (loopback clients are admins): each refusal has its code and changes
 * nothing; drain and undrain are idempotent. */
static void test_node_state(geokv_db_t **dbs) {
  CHECK(geokv_node_set_state(dbs[0], 1, NULL) == GEOKV_EINVAL);
  CHECK(geokv_node_set_state(dbs[0], 1, "suspect") == GEOKV_EINVAL);
  CHECK(geokv_node_set_state(dbs[0], 1, "sleepy") == GEOKV_EINVAL);
  CHECK(node_state(dbs[0], 99, "draining") == GEOKV_ENOTFOUND);
  CHECK(node_state(dbs[1], 2, "removed") == GEOKV_EINVAL); /* up: drain it first */
  CHECK(node_state(dbs[1], 2, "draining") == GEOKV_OK);
  CHECK(node_state(dbs[2], 2, "draining") == GEOKV_OK);
  CHECK(node_state(dbs[0], 2, "removed") == GEOKV_ECONFLICT); /* holds replicas */
  CHECK(strstr(geokv_errmsg(), "replicas") != NULL);
  CHECK(node_state(dbs[0], 2, "up") == GEOKV_OK);
}

static void test_policy(geokv_db_t **dbs) {
  geokv_list_t *prefixes = NULL, *modes = NULL;
  size_t i;
  int saw_cnt = 0, saw_tags = 0;
  CHECK(geokv_policy_set(dbs[0], K("cnt/"), "counter") == GEOKV_OK);
  CHECK(geokv_policy_set(dbs[1], K("tags/"), "set") == GEOKV_OK);
  CHECK(geokv_policy_set(dbs[2], K("tags/"), "set") == GEOKV_OK); /* the same again */
  CHECK(geokv_policy_list(&prefixes, &modes, dbs[2]) == GEOKV_OK);
  if (prefixes != NULL && modes != NULL) {
    CHECK(prefixes->count == modes->count && prefixes->count >= 3);
    CHECK(prefixes->lengths[0] == 0 && strcmp((const char *)modes->items[0], "strong") == 0);
    for (i = 0; i < prefixes->count; ++i) {
      const char *p = (const char *)prefixes->items[i], *m = (const char *)modes->items[i];
      if (strcmp(p, "cnt/") == 0) saw_cnt = strcmp(m, "counter") == 0;
      if (strcmp(p, "tags/") == 0) saw_tags = strcmp(m, "set") == 0;
    }
  }
  CHECK(saw_cnt && saw_tags);
  geokv_list_free(prefixes);
  geokv_list_free(modes);
  CHECK(geokv_policy_set(dbs[2], K("mvr/"), "mvreg") == GEOKV_OK);
  CHECK(policy_reached_every_region(dbs, "cnt/probe", kProbeCounter));
  CHECK(policy_reached_every_region(dbs, "tags/probe", kProbeSet));
  CHECK(policy_reached_every_region(dbs, "mvr/probe", kProbeMvReg));

  CHECK(geokv_policy_set(dbs[0], K("p/"), "eventual") == GEOKV_EINVAL);
  CHECK(geokv_policy_set(dbs[0], K("p/"), NULL) == GEOKV_EINVAL);
  CHECK(geokv_policy_set(dbs[0], NULL, 2, "set") == GEOKV_EINVAL);
  /* strong/ holds strong data (test_strong ran first): its mode cannot change. */
  CHECK(geokv_policy_set(dbs[0], K("strong/"), "counter") == GEOKV_EINVAL);
  CHECK(strstr(geokv_errmsg(), "strong/") != NULL);
  CHECK(geokv_policy_remove(dbs[1], K("never-set/")) == GEOKV_ENOTFOUND);
  CHECK(geokv_policy_set(dbs[1], K("tmp/"), "lww") == GEOKV_OK);
  CHECK(geokv_policy_remove(dbs[2], K("tmp/")) == GEOKV_OK);
}

static void test_counter_and_set(geokv_db_t **dbs) {
  static const char *const xy[] = {"x", "y", NULL};
  static const char *const y[] = {"y", NULL};
  int64_t n = 0;
  int present = -1;
  /* Adds in three regions; each is acknowledged locally, all converge to the sum. */
  CHECK(geokv_add(&n, dbs[0], K("cnt/hits"), 2) == GEOKV_OK && n >= 2);
  CHECK(geokv_add(&n, dbs[1], K("cnt/hits"), 3) == GEOKV_OK && n >= 3);
  CHECK(geokv_add(&n, dbs[2], K("cnt/hits"), 5) == GEOKV_OK && n >= 5);
  CHECK(converge_value(dbs, "cnt/hits", "10"));

  /* Elements added in two regions; a remove in a third after it saw them. */
  CHECK(geokv_set_add(dbs[0], K("tags/t"), K("x")) == GEOKV_OK);
  CHECK(geokv_set_add(dbs[1], K("tags/t"), K("y")) == GEOKV_OK);
  CHECK(converge_members(dbs, "tags/t", xy));
  CHECK(geokv_set_remove(dbs[2], K("tags/t"), K("x")) == GEOKV_OK);
  CHECK(geokv_set_remove(dbs[2], K("tags/t"), K("never")) == GEOKV_OK);
  CHECK(converge_members(dbs, "tags/t", y));
  CHECK(geokv_set_contains(&present, dbs[0], K("tags/t"), K("y")) == GEOKV_OK && present == 1);
  CHECK(geokv_set_contains(&present, dbs[1], K("tags/t"), K("x")) == GEOKV_OK && present == 0);
}

static void test_mvreg(geokv_db_t **dbs) {
  static const char *const xy[] = {"x", "y", NULL};
  static const char *const z[] = {"z", NULL};
  static const char *const none[] = {NULL};
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  geokv_list_t *values = NULL;
  uint8_t *ctx = NULL;
  size_t ctx_len = 0;
  /* Two writes with no context, in two regions: both survive as siblings. */
  CHECK(geokv_mv_put(dbs[0], K("mvr/k"), K("x"), NULL, 0) == GEOKV_OK);
  CHECK(geokv_mv_put(dbs[1], K("mvr/k"), K("y"), NULL, 0) == GEOKV_OK);
  CHECK(converge_mv(dbs, "mvr/k", xy));
  /* A write with the context that read both replaces both, everywhere. */
  CHECK(geokv_mv_get(&values, &ctx, &ctx_len, dbs[2], K("mvr/k")) == GEOKV_OK);
  CHECK(values != NULL && values->count == 2 && ctx != NULL && ctx_len > 0);
  CHECK(geokv_mv_put(dbs[2], K("mvr/k"), K("z"), ctx, ctx_len) == GEOKV_OK);
  geokv_list_free(values);
  geokv_free(ctx);
  CHECK(converge_mv(dbs, "mvr/k", z));
  CHECK(reads_as(dbs[0], "mvr/k", "z")); /* geokv_get reads a register too */
  /* A delete with the context that read z removes it everywhere. */
  values = NULL;
  ctx = NULL;
  CHECK(geokv_mv_get(&values, &ctx, &ctx_len, dbs[0], K("mvr/k")) == GEOKV_OK);
  CHECK(geokv_mv_delete(dbs[0], K("mvr/k"), ctx, ctx_len) == GEOKV_OK);
  geokv_list_free(values);
  geokv_free(ctx);
  CHECK(converge_mv(dbs, "mvr/k", none));
  CHECK(geokv_mv_put(dbs[0], K("mvr/k"), K("w"), garbage, sizeof garbage) == GEOKV_EINVAL);
  CHECK(geokv_mv_put(dbs[0], K("mvr/k"), K("w"), NULL, 4) == GEOKV_EINVAL);
  CHECK(geokv_mv_get(NULL, &ctx, &ctx_len, dbs[0], K("mvr/k")) == GEOKV_EINVAL);
}

static void test_wrong_mode(geokv_db_t **dbs) {
  uint8_t *v = NULL;
  size_t len = 0;
  int64_t n = 0;
  int present = 0;
  geokv_list_t *list = NULL;
  geokv_iter_t *it = NULL;
  CHECK(geokv_put(dbs[0], K("cnt/hits"), K("7")) == GEOKV_EWRONGMODE);
  CHECK(strstr(geokv_errmsg(), "counter") != NULL);
  CHECK(geokv_cas(dbs[1], K("cnt/hits"), NULL, 0, K("1")) == GEOKV_EWRONGMODE);
  CHECK(geokv_get(&v, &len, dbs[2], K("tags/t")) == GEOKV_EWRONGMODE);
  CHECK(geokv_add(&n, dbs[0], K("tags/t"), 1) == GEOKV_EWRONGMODE);
  CHECK(geokv_set_add(dbs[1], K("strong/c"), K("x")) == GEOKV_EWRONGMODE);
  CHECK(geokv_set_contains(&present, dbs[2], K("cnt/hits"), K("x")) == GEOKV_EWRONGMODE);
  CHECK(geokv_set_members(&list, dbs[0], K("strong/c")) == GEOKV_EWRONGMODE);
  CHECK(geokv_put(dbs[1], K("mvr/k"), K("v")) == GEOKV_EWRONGMODE);
  CHECK(geokv_mv_put(dbs[2], K("strong/c"), K("v"), NULL, 0) == GEOKV_EWRONGMODE);
  CHECK(geokv_iter_open(&it, dbs[0], NULL, 0) == GEOKV_EWRONGMODE);
  CHECK(v == NULL && list == NULL && it == NULL);
  CHECK(reads_as(dbs[1], "strong/c", "v2")); /* nothing was written by those */
}

static void test_bad_input(geokv_db_t *db) {
  static uint8_t big[5000];
  uint8_t *v = NULL;
  size_t len = 0;
  int64_t n = 0;
  int present = 0;
  geokv_list_t *list = NULL, *list2 = NULL;
  memset(big, 'k', sizeof big);
  CHECK(geokv_put(NULL, K("k"), K("v")) == GEOKV_EINVAL);
  CHECK(geokv_put(db, K(""), K("v")) == GEOKV_EINVAL);
  CHECK(geokv_put(db, NULL, 3, K("v")) == GEOKV_EINVAL);
  CHECK(geokv_put(db, K("k"), NULL, 3) == GEOKV_EINVAL);
  CHECK(geokv_put(db, big, sizeof big, K("v")) == GEOKV_EKEYSIZE); /* the node's limit: 4096 */
  CHECK(geokv_get(NULL, &len, db, K("k")) == GEOKV_EINVAL);
  CHECK(geokv_get(&v, &len, db, big, sizeof big) == GEOKV_EKEYSIZE);
  CHECK(geokv_cas(db, K("strong/c"), NULL, 2, K("v")) == GEOKV_EINVAL);
  CHECK(geokv_cas(db, K(""), NULL, 0, K("v")) == GEOKV_EINVAL);
  CHECK(geokv_add(NULL, db, K("strong/n"), 1) == GEOKV_EINVAL);
  CHECK(geokv_add(&n, NULL, K("strong/n"), 1) == GEOKV_EINVAL);
  CHECK(geokv_set_add(db, K("tags/t"), NULL, 1) == GEOKV_EINVAL);
  CHECK(geokv_set_contains(NULL, db, K("tags/t"), K("x")) == GEOKV_EINVAL);
  CHECK(geokv_set_members(NULL, db, K("tags/t")) == GEOKV_EINVAL);
  CHECK(geokv_policy_list(&list, NULL, db) == GEOKV_EINVAL);
  CHECK(geokv_status(NULL, db) == GEOKV_EINVAL);
  {
    /* 2 MiB: beyond the node's value_bytes_max (1 MiB); 9 MiB: beyond any client message. */
    size_t mib = (size_t)1 << 20;
    uint8_t *huge = calloc(9 * mib, 1);
    CHECK(huge != NULL);
    if (huge != NULL) {
      CHECK(geokv_put(db, K("strong/huge"), huge, 2 * mib) == GEOKV_EVALSIZE);
      CHECK(geokv_put(db, K("strong/huge"), huge, 9 * mib) == GEOKV_EVALSIZE);
      CHECK(geokv_cas(db, K("strong/huge"), huge, 5 * mib, huge, 5 * mib) == GEOKV_EVALSIZE);
      CHECK(geokv_set_add(db, K("tags/t"), huge, 9 * mib) == GEOKV_EVALSIZE);
      free(huge);
    }
  }
  CHECK(v == NULL && list == NULL && list2 == NULL && present == 0 && n == 0);
  geokv_list_free(NULL);
}

static void test_status(geokv_db_t *db) {
  geokv_list_t *lines = NULL;
  CHECK(geokv_status(&lines, db) == GEOKV_OK);
  if (lines != NULL) {
    CHECK(lines->count > 1);
    CHECK(strstr((const char *)lines->items[0], "regions") != NULL);
    geokv_list_free(lines);
  }
}

static void test_close(const char *endpoint) {
  geokv_db_t *db = NULL;
  uint8_t *v = NULL;
  size_t len = 0;
  CHECK(geokv_connect(&db, endpoint, NULL) == GEOKV_OK);
  CHECK(geokv_close(db) == GEOKV_OK);
  CHECK(geokv_get(&v, &len, db, K("strong/c")) == GEOKV_ECLOSED);
  CHECK(geokv_close(db) == GEOKV_ECLOSED);
  CHECK(geokv_close(NULL) == GEOKV_OK);
}

static void test_example(const char *example_bin, const char *endpoints, geokv_db_t **dbs) {
  pid_t pid;
  int status = 0;
  /* The example sets this policy itself; set it first and let it reach every region so
   * the example's add never meets a region on the old policy. */
  CHECK(geokv_policy_set(dbs[0], K("example/visits"), "counter") == GEOKV_OK);
  CHECK(policy_reached_every_region(dbs, "example/visits", kProbeCounter));
  pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    execl(example_bin, example_bin, endpoints, (char *)NULL);
    _exit(127);
  }
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(reads_as(dbs[1], "example/owner", "grace"));
}

int main(int argc, char **argv) {
  char endpoint[kRegions][64], all[kRegions * 64];
  geokv_db_t *dbs[kRegions] = {NULL, NULL, NULL}, *db_all = NULL;
  geokv_connect_options_t options = GEOKV_CONNECT_OPTIONS_INIT;
  int base, r;
  long long deadline;
  if (argc < 2) {
    fprintf(stderr, "usage: %s GEOKV_BIN [EXAMPLE_BIN]\n", argv[0]);
    return 2;
  }
  signal(SIGALRM, on_alarm);
  alarm(kAlarmS);
  snprintf(dir, sizeof dir, "/tmp/geokv-c-cluster-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    dir[0] = '\0';
    return 2;
  }
  base = pick_base_port();
  if (base < 0 || start_cluster(argv[1], base) != 0) {
    fprintf(stderr, "cannot start a local cluster (base port %d)\n", base);
    return finish(1);
  }
  all[0] = '\0';
  options.timeout_ms = 5000;
  for (r = 0; r < kRegions; ++r) {
    snprintf(endpoint[r], sizeof endpoint[r], "tcp://127.0.0.1:%d", base + 100 + r);
    strcat(all, r == 0 ? "" : ",");
    strcat(all, endpoint[r]);
    CHECK(geokv_connect(&dbs[r], endpoint[r], &options) == GEOKV_OK);
  }
  CHECK(geokv_connect(&db_all, all, &options) == GEOKV_OK);
  if (failures > 0) return finish(1);

  /* Setup, not a check: strong shards elect their leaders right after the nodes start, so
   * the first strong write may be refused with UNAVAILABLE for a moment. */
  deadline = now_ms() + kConvergeWaitMs;
  for (r = 0; r < 16; ++r) { /* keys over every shard (4 in geokv local) */
    char key[32];
    snprintf(key, sizeof key, "warmup/%d", r);
    while (geokv_put(db_all, K(key), K("1")) != GEOKV_OK && now_ms() < deadline) sleep_ms(100);
  }

  test_connect_bad_input(endpoint[0]);
  test_embedded_handle();
  test_strong(dbs);
  test_policy(dbs);
  test_node_state(dbs);
  test_counter_and_set(dbs);
  test_mvreg(dbs);
  test_wrong_mode(dbs);
  test_bad_input(db_all);
  test_status(db_all);
  test_close(endpoint[2]);
  if (argc > 2 && argv[2][0] != '\0') test_example(argv[2], all, dbs);

  for (r = 0; r < kRegions; ++r) CHECK(geokv_close(dbs[r]) == GEOKV_OK);
  CHECK(geokv_close(db_all) == GEOKV_OK);
  if (failures > 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return finish(1);
  }
  printf("c_cluster_test: all checks passed\n");
  return finish(0);
}
