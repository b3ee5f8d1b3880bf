/* A preload library for the fail-stop test: once the file named by GEOKV_FAIL_SYNC_FILE
 * exists, every fsync and fdatasync of the process fails with EIO, as on a disk that died.
 * Everything else passes through to libc. (Exported explicitly: the build hides symbols by
 * default.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int Failing(void) {
  const char *trigger = getenv("GEOKV_FAIL_SYNC_FILE");
  return trigger != NULL && access(trigger, F_OK) == 0;
}

__attribute__((visibility("default"))) int fsync(int fd) {
  static int (*real)(int);
  if (Failing()) {
    errno = EIO;
    return -1;
  }
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return real(fd);
}

__attribute__((visibility("default"))) int fdatasync(int fd) {
  static int (*real)(int);
  if (Failing()) {
    errno = EIO;
    return -1;
  }
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return real(fd);
}
