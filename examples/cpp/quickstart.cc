// geokv from C++: RAII handles, exceptions with codes, std::optional for absence.
#include <iostream>
#include <string>

#include "geokv/geokv.hpp"

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp/geokv-example-cpp";
  try {
    geokv::db db(dir, geokv::options().durability(GEOKV_DURABILITY_SYNC));
    std::cout << "[c++] opened " << dir << "\n";
    db.put("planet/earth", "3");
    db.put("planet/mars", "4");
    std::cout << "[c++] get planet/mars -> " << db.get("planet/mars").value_or("(absent)") << "\n";
    std::cout << "[c++] get planet/pluto -> " << db.get("planet/pluto").value_or("(absent)") << "\n";
    auto it = db.scan("planet/");
    while (auto entry = it.next()) {
      std::cout << "[c++] scan " << entry->first << " = " << entry->second << "\n";
    }
    try {
      db.put(std::string(5000, 'k'), "v");
    } catch (const geokv::error& e) {
      std::cout << "[c++] oversize key -> " << e.what() << "\n";
    }
  } catch (const geokv::error& e) {
    std::cerr << "geokv: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
