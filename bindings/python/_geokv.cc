// geokv._geokv: the Python face of the C ABI, through geokv.hpp and nothing else.
//
// Every call that can block (disk, locks) releases the GIL. Errors become the exception
// classes of geokv._errors, chosen by GEOKV_E* code.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "geokv/geokv.hpp"

namespace py = pybind11;

namespace {

// An open database plus the Python-side bookkeeping. Not thread-safe across Python
// threads beyond what the C ABI gives (the db itself is).
class Db {
 public:
  Db(const std::optional<std::string>& path, uint32_t durability, uint64_t key_bytes_max, uint64_t value_bytes_max,
     uint32_t commit_timeout_ms, std::optional<std::string> config_path)
      : config_path_(std::move(config_path)) {
    geokv::options opts;
    opts.durability(durability)
        .key_bytes_max(key_bytes_max)
        .value_bytes_max(value_bytes_max)
        .commit_timeout_ms(commit_timeout_ms);
    if (config_path_) opts.config_path(config_path_->c_str());
    py::gil_scoped_release release;
    db_ = geokv::db(path ? path->c_str() : nullptr, opts);
  }

  void Put(const std::string& key, const std::string& value) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.put(key, value);
  }

  std::optional<py::bytes> Get(const std::string& key) {
    geokv::db& db = Live();
    std::optional<std::string> value;
    {
      py::gil_scoped_release release;
      value = db.get(key);
    }
    if (!value) return std::nullopt;
    return py::bytes(*value);
  }

  void Delete(const std::string& key) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.erase(key);
  }

  void Close() {
    py::gil_scoped_release release;
    if (db_) db_.close();
  }

  bool closed() const { return !db_; }

  // The open db, or GEOKV_ECLOSED (the C++ wrapper's handle is null after close()).
  geokv::db& Live() {
    if (!db_) throw geokv::error(GEOKV_ECLOSED, "database is closed");
    return db_;
  }

 private:
  std::optional<std::string> config_path_;
  geokv::db db_;
};

class Iter {
 public:
  Iter(Db& db, const std::string& prefix) {
    geokv::db& live = db.Live();
    py::gil_scoped_release release;
    it_ = live.scan(prefix);
  }
  py::tuple Next() {
    std::optional<std::pair<std::string, std::string>> entry;
    {
      py::gil_scoped_release release;
      auto e = it_.next();
      if (e) entry.emplace(std::string(e->first), std::string(e->second));
    }
    if (!entry) throw py::stop_iteration();
    return py::make_tuple(py::bytes(entry->first), py::bytes(entry->second));
  }

 private:
  geokv::iterator it_;
};

}  // namespace

PYBIND11_MODULE(_geokv, m) {
  m.doc() = "Private extension module of geokv; use the geokv package instead.";

  // geokv._errors defines the exception hierarchy; map codes onto it.
  // Held for the life of the interpreter (translators must be plain functions).
  static py::object* from_code =
      new py::object(py::module_::import("geokv._errors").attr("from_code"));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const geokv::error& e) {
      py::object exc = (*from_code)(e.code(), e.what());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });

  m.attr("VERSION") = geokv_version_string();
  m.attr("DURABILITY_DEFAULT") = GEOKV_DURABILITY_DEFAULT;
  m.attr("DURABILITY_SYNC") = GEOKV_DURABILITY_SYNC;
  m.attr("DURABILITY_WRITE") = GEOKV_DURABILITY_WRITE;
  m.attr("DURABILITY_NONE") = GEOKV_DURABILITY_NONE;

  py::class_<Db>(m, "Db")
      .def(py::init<const std::optional<std::string>&, uint32_t, uint64_t, uint64_t, uint32_t,
                    std::optional<std::string>>(),
           py::arg("path"), py::arg("durability") = 0, py::arg("key_bytes_max") = 0,
           py::arg("value_bytes_max") = 0, py::arg("commit_timeout_ms") = 0,
           py::arg("config_path") = std::nullopt)
      .def("put", &Db::Put, py::arg("key"), py::arg("value"))
      .def("get", &Db::Get, py::arg("key"))
      .def("delete", &Db::Delete, py::arg("key"))
      .def("close", &Db::Close)
      .def_property_readonly("closed", &Db::closed);

  py::class_<Iter>(m, "Iter")
      .def(py::init<Db&, const std::string&>(), py::arg("db"), py::arg("prefix"), py::keep_alive<1, 2>())
      .def("__iter__", [](Iter& self) -> Iter& { return self; })
      .def("__next__", &Iter::Next);
}
