/* geokv from C: open a store, write, read, scan a prefix, handle errors. */
#include <stdio.h>
#include <string.h>

#include "geokv/geokv.h"

#define K(s) (const uint8_t *)(s), strlen(s)

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp/geokv-example-c";
  geokv_db_t *db = NULL;
  uint8_t *value = NULL;
  size_t len = 0;
  geokv_iter_t *it = NULL;
  const uint8_t *k, *v;
  size_t kl, vl;
  int rc;

  if (geokv_version() / 100 != GEOKV_VERSION_NUMBER / 100) {
    fprintf(stderr, "header and library versions differ\n");
    return 1;
  }
  if ((rc = geokv_open(&db, dir, NULL)) != GEOKV_OK) {
    fprintf(stderr, "open %s: %s: %s\n", dir, geokv_strerror(rc), geokv_errmsg());
    return 1;
  }
  printf("[c] opened %s (geokv %s)\n", dir, geokv_version_string());

  geokv_put(db, K("city/lisbon"), K("portugal"));
  geokv_put(db, K("city/osaka"), K("japan"));
  geokv_put(db, K("city/quito"), K("ecuador"));
  printf("[c] put 3 keys\n");

  if (geokv_get(&value, &len, db, K("city/osaka")) == GEOKV_OK) {
    printf("[c] get city/osaka -> %.*s\n", (int)len, (const char *)value);
    geokv_free(value);
  }
  rc = geokv_get(&value, &len, db, K("city/atlantis"));
  printf("[c] get city/atlantis -> %s\n", geokv_strerror(rc));

  geokv_iter_open(&it, db, K("city/"));
  while (geokv_iter_next(it, &k, &kl, &v, &vl) == GEOKV_OK) {
    printf("[c] scan %.*s = %.*s\n", (int)kl, (const char *)k, (int)vl, (const char *)v);
  }
  geokv_iter_close(it);

  rc = geokv_put(db, (const uint8_t *)"", 0, K("v"));
  printf("[c] put with an empty key -> %s (%s)\n", geokv_strerror(rc), geokv_errmsg());

  return geokv_close(db) == GEOKV_OK ? 0 : 1;
}
