// Uses the installed headers and library only.
#include <geokv/geokv.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  geokv::db db(argv[1]);
  db.put("installed", "yes");
  std::printf("consumer: %s\n", db.get("installed").value_or("missing").c_str());
  return geokv_version() == GEOKV_VERSION_NUMBER ? 0 : 1;
}
