/* Connecting to a geokv cluster from C: a strong key (compare-and-set, linearizable) and a
 * counter key (a CRDT: every region takes adds locally, and the regions converge).
 *
 * Start a local 3-region cluster, then point this program at it:
 *   build/dev/bin/geokv local --regions us-east,eu-west,ap-northeast --base-port 7100
 *   build/dev/examples/example_c_cluster tcp://127.0.0.1:7200,tcp://127.0.0.1:7201
 *
 * Exit code 0 when every step worked; otherwise the failing call and its message. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <geokv/geokv.h>

#define K(s) (const uint8_t *)(s), strlen(s)

static int failed(const char *what, int rc) {
  fprintf(stderr, "%s: %s (%s)\n", what, geokv_strerror(rc), geokv_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  const char *endpoints = argc > 1 ? argv[1] : "tcp://127.0.0.1:7200";
  geokv_connect_options_t options = GEOKV_CONNECT_OPTIONS_INIT;
  geokv_db_t *db = NULL;
  uint8_t *value = NULL;
  size_t len = 0;
  int64_t visits = 0;
  int rc;

  options.timeout_ms = 5000;
  rc = geokv_connect(&db, endpoints, &options);
  if (rc != GEOKV_OK) return failed("geokv_connect", rc);

  /* Keys under "example/visits" are counters; every other key here stays strong (the
   * default). Setting the mode a prefix already has is harmless. */
  rc = geokv_policy_set(db, K("example/visits"), "counter");
  if (rc != GEOKV_OK) return failed("geokv_policy_set", rc);

  /* A strong key: put, then compare-and-set from the value we know. */
  rc = geokv_put(db, K("example/owner"), K("ada"));
  if (rc != GEOKV_OK) return failed("geokv_put", rc);
  rc = geokv_cas(db, K("example/owner"), K("ada"), K("grace"));
  if (rc != GEOKV_OK) return failed("geokv_cas", rc);
  rc = geokv_cas(db, K("example/owner"), K("ada"), K("edsger"));
  printf("cas from a stale value -> %s\n", geokv_strerror(rc)); /* GEOKV_ECONFLICT */
  rc = geokv_get(&value, &len, db, K("example/owner"));
  if (rc != GEOKV_OK) return failed("geokv_get", rc);
  printf("example/owner = %.*s\n", (int)len, (const char *)value);
  geokv_free(value);

  /* A counter: the add is acknowledged by the region that took it. */
  rc = geokv_add(&visits, db, K("example/visits"), 1);
  if (rc != GEOKV_OK) return failed("geokv_add", rc);
  printf("example/visits = %" PRId64 " (as this region sees it)\n", visits);

  /* A counter refuses a put: its mode does not fit. */
  rc = geokv_put(db, K("example/visits"), K("7"));
  printf("put on a counter -> %s\n", geokv_strerror(rc)); /* GEOKV_EWRONGMODE */

  rc = geokv_close(db);
  if (rc != GEOKV_OK) return failed("geokv_close", rc);
  return 0;
}
