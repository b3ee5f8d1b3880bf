/* The C ABI from plain C99: every entry point, every bad input the ABI promises to survive.
 * Exit code 0 when every check passes; each failed check prints its line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void test_version(void) {
  CHECK(geokv_version() == GEOKV_VERSION_NUMBER);
  {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", GEOKV_VERSION_MAJOR, GEOKV_VERSION_MINOR, GEOKV_VERSION_PATCH);
    CHECK(strcmp(geokv_version_string(), expected) == 0);
  }
  CHECK(strcmp(geokv_strerror(GEOKV_ENOTFOUND), "GEOKV_ENOTFOUND") == 0);
  CHECK(geokv_strerror(-999) != NULL);
}

static void test_basic(const char *dir) {
  geokv_db_t *db = NULL;
  uint8_t *value = NULL;
  size_t len = 0;
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(db != NULL);
  CHECK(geokv_put(db, K("fruit/apple"), K("red")) == GEOKV_OK);
  CHECK(geokv_put(db, K("fruit/banana"), K("yellow")) == GEOKV_OK);
  CHECK(geokv_put(db, K("veg/leek"), K("green")) == GEOKV_OK);
  CHECK(geokv_put(db, K("empty"), NULL, 0) == GEOKV_OK);

  CHECK(geokv_get(&value, &len, db, K("fruit/apple")) == GEOKV_OK);
  CHECK(len == 3 && memcmp(value, "red", 3) == 0);
  geokv_free(value);
  value = NULL;
  CHECK(geokv_get(&value, &len, db, K("empty")) == GEOKV_OK);
  CHECK(value != NULL && len == 0);
  geokv_free(value);
  value = NULL;

  CHECK(geokv_get(&value, &len, db, K("missing")) == GEOKV_ENOTFOUND);
  CHECK(value == NULL);
  CHECK(geokv_delete(db, K("fruit/apple")) == GEOKV_OK);
  CHECK(geokv_get(&value, &len, db, K("fruit/apple")) == GEOKV_ENOTFOUND);
  CHECK(geokv_delete(db, K("fruit/apple")) == GEOKV_OK);

  /* Prefix iteration. */
  {
    geokv_iter_t *it = NULL;
    const uint8_t *k, *v;
    size_t kl, vl;
    int n = 0;
    CHECK(geokv_iter_open(&it, db, K("fruit/")) == GEOKV_OK);
    while (geokv_iter_next(it, &k, &kl, &v, &vl) == GEOKV_OK) {
      CHECK(kl > 6 && memcmp(k, "fruit/", 6) == 0);
      n++;
    }
    CHECK(n == 1);
    CHECK(geokv_iter_next(it, &k, &kl, &v, &vl) == GEOKV_DONE);
    CHECK(geokv_iter_close(it) == GEOKV_OK);
    CHECK(geokv_iter_close(it) == GEOKV_ECLOSED);
    CHECK(geokv_iter_next(it, &k, &kl, &v, &vl) == GEOKV_ECLOSED);
    CHECK(geokv_iter_close(NULL) == GEOKV_OK);
  }
  /* Many keys: the iterator pages through them all, in order. */
  {
    char key[32];
    int i, n = 0;
    geokv_iter_t *it = NULL;
    const uint8_t *k, *v;
    size_t kl, vl;
    char last[32] = "";
    for (i = 0; i < 1000; i++) {
      snprintf(key, sizeof key, "many/%04d", i);
      CHECK(geokv_put(db, K(key), K("v")) == GEOKV_OK);
    }
    CHECK(geokv_iter_open(&it, db, K("many/")) == GEOKV_OK);
    while (geokv_iter_next(it, &k, &kl, &v, &vl) == GEOKV_OK) {
      CHECK(kl < sizeof last);
      CHECK(strncmp((const char *)k, last, kl) > 0 || last[0] == '\0');
      memcpy(last, k, kl);
      last[kl] = '\0';
      n++;
    }
    CHECK(n == 1000);
    geokv_iter_close(it);
  }
  CHECK(geokv_close(db) == GEOKV_OK);

  /* Reopen: the data is durable. */
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  CHECK(geokv_get(&value, &len, db, K("veg/leek")) == GEOKV_OK);
  CHECK(len == 5 && memcmp(value, "green", 5) == 0);
  geokv_free(value);
  CHECK(geokv_close(db) == GEOKV_OK);
}

static void test_bad_input(const char *dir, const char *file_path) {
  geokv_db_t *db = NULL, *second = NULL;
  uint8_t *value = NULL;
  size_t len = 0;
  geokv_options_t options = GEOKV_OPTIONS_INIT;
  char *big;

  /* NULL handles and pointers. */
  CHECK(geokv_open(NULL, dir, NULL) == GEOKV_EINVAL);
  CHECK(geokv_open(&db, NULL, NULL) == GEOKV_EINVAL);
  CHECK(geokv_put(NULL, K("k"), K("v")) == GEOKV_EINVAL);
  CHECK(geokv_get(&value, &len, NULL, K("k")) == GEOKV_EINVAL);
  CHECK(geokv_delete(NULL, K("k")) == GEOKV_EINVAL);
  CHECK(geokv_close(NULL) == GEOKV_OK);
  geokv_free(NULL);

  /* A data dir that is a file. */
  CHECK(geokv_open(&db, file_path, NULL) == GEOKV_EINVAL);
  CHECK(strstr(geokv_errmsg(), "not a directory") != NULL);
  /* An unwritable data dir. */
  CHECK(geokv_open(&db, "/proc/geokv-nope", NULL) == GEOKV_EIO);

  /* Unknown options version. */
  options.version = 99;
  CHECK(geokv_open(&db, dir, &options) == GEOKV_EVERSION);
  options.version = GEOKV_OPTIONS_VERSION;
  options.durability = 42;
  CHECK(geokv_open(&db, dir, &options) == GEOKV_ECONFIG);

  /* Configurable limits. */
  options.durability = GEOKV_DURABILITY_SYNC;
  options.key_bytes_max = 8;
  options.value_bytes_max = 16;
  CHECK(geokv_open(&db, dir, &options) == GEOKV_OK);
  CHECK(geokv_put(db, K("kept"), K("safe")) == GEOKV_OK);
  CHECK(geokv_put(db, NULL, 0, K("v")) == GEOKV_EINVAL);
  CHECK(geokv_put(db, (const uint8_t *)"", 0, K("v")) == GEOKV_EINVAL);
  CHECK(geokv_put(db, NULL, 3, K("v")) == GEOKV_EINVAL);
  CHECK(geokv_put(db, K("k"), NULL, 3) == GEOKV_EINVAL);
  CHECK(geokv_put(db, K("123456789"), K("v")) == GEOKV_EKEYSIZE);
  CHECK(geokv_put(db, K("k"), K("12345678901234567")) == GEOKV_EVALSIZE);
  CHECK(geokv_get(NULL, &len, db, K("k")) == GEOKV_EINVAL);
  CHECK(geokv_get(&value, NULL, db, K("k")) == GEOKV_EINVAL);

  /* A second open of an open data dir: a clear error, and the first is untouched. */
  CHECK(geokv_open(&second, dir, NULL) == GEOKV_EBUSY);
  CHECK(second == NULL);
  CHECK(geokv_get(&value, &len, db, K("kept")) == GEOKV_OK);
  CHECK(len == 4 && memcmp(value, "safe", 4) == 0);
  geokv_free(value);
  CHECK(geokv_close(db) == GEOKV_OK);

  /* Default limits: 4096-byte keys, 1 MiB values. */
  CHECK(geokv_open(&db, dir, NULL) == GEOKV_OK);
  big = malloc((1 << 20) + 2);
  memset(big, 'x', (1 << 20) + 2);
  CHECK(geokv_put(db, (const uint8_t *)big, 4096, K("v")) == GEOKV_OK);
  CHECK(geokv_put(db, (const uint8_t *)big, 4097, K("v")) == GEOKV_EKEYSIZE);
  CHECK(geokv_put(db, K("big"), (const uint8_t *)big, 1 << 20) == GEOKV_OK);
  CHECK(geokv_put(db, K("big"), (const uint8_t *)big, (1 << 20) + 1) == GEOKV_EVALSIZE);
  free(big);

  /* Use after close and double close. */
  CHECK(geokv_close(db) == GEOKV_OK);
  CHECK(geokv_put(db, K("k"), K("v")) == GEOKV_ECLOSED);
  CHECK(geokv_get(&value, &len, db, K("k")) == GEOKV_ECLOSED);
  CHECK(geokv_close(db) == GEOKV_ECLOSED);
  CHECK(strstr(geokv_errmsg(), "closed") != NULL);

  /* A pointer that was never a handle. */
  {
    int not_a_handle = 0;
    CHECK(geokv_put((geokv_db_t *)&not_a_handle, K("k"), K("v")) == GEOKV_EINVAL);
  }
}

static void test_config_file(const char *base) {
  char dir[512], cfg[512];
  FILE *f;
  geokv_db_t *db = NULL;
  geokv_options_t options = GEOKV_OPTIONS_INIT;

  snprintf(dir, sizeof dir, "%s/from-config", base);
  snprintf(cfg, sizeof cfg, "%s/good.toml", base);
  f = fopen(cfg, "w");
  fprintf(f, "data_dir = \"%s\"\n[limits]\nkey_bytes_max = 4\n", dir);
  fclose(f);
  options.config_path = cfg;
  CHECK(geokv_open(&db, NULL, &options) == GEOKV_OK);
  CHECK(geokv_put(db, K("12345"), K("v")) == GEOKV_EKEYSIZE);
  CHECK(geokv_close(db) == GEOKV_OK);

  snprintf(cfg, sizeof cfg, "%s/bad.toml", base);
  f = fopen(cfg, "w");
  fprintf(f, "[limits\nkey_bytes_max = \xff\xfe\n");
  fclose(f);
  options.config_path = cfg;
  CHECK(geokv_open(&db, NULL, &options) == GEOKV_ECONFIG);
  CHECK(strstr(geokv_errmsg(), "bad.toml") != NULL);
}

int main(void) {
  char base[] = "/tmp/geokv-c-test-XXXXXX";
  char dir[600], file_path[600], cmd[700];
  FILE *f;
  if (mkdtemp(base) == NULL) return 2;
  snprintf(dir, sizeof dir, "%s/db", base);
  snprintf(file_path, sizeof file_path, "%s/a-file", base);
  f = fopen(file_path, "w");
  fputs("x", f);
  fclose(f);

  test_version();
  test_basic(dir);
  snprintf(dir, sizeof dir, "%s/db2", base);
  test_bad_input(dir, file_path);
  test_config_file(base);

  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
