// geokv._geokv: the Python face of the C ABI, through geokv.hpp and nothing else.
//
// Every call that can block (disk, locks, the network) releases the GIL, except iterator
// steps: an iterator may be shared by Python threads, and holding the GIL across the C call
// and the copy of its entry serializes them (the entry is only valid until the next step).
// Errors become the exception classes of geokv._errors, chosen by GEOKV_E* code.
//
// Logging: the C library hands records to OnLog (any thread, no GIL), which queues them;
// geokv's pump thread takes them with log_wait and passes them to the logging module.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "geokv/geokv.hpp"

namespace py = pybind11;

namespace {

// An open database (embedded, or a cluster connection from Connect) plus the Python-side
// bookkeeping. Not thread-safe across Python threads beyond what the C ABI gives (the db
// itself is).
class Db {
 public:
  static std::unique_ptr<Db> Connect(const std::string& endpoints, uint32_t timeout_ms,
                                     const std::optional<std::string>& curve_server_key,
                                     const std::optional<std::string>& curve_public_key,
                                     const std::optional<std::string>& curve_secret_key) {
    geokv::connect_options opts;
    opts.timeout_ms(timeout_ms);
    if (curve_server_key || curve_public_key || curve_secret_key) {
      opts.curve(curve_server_key.value_or(""), curve_public_key.value_or(""), curve_secret_key.value_or(""));
    }
    std::unique_ptr<Db> out(new Db());
    py::gil_scoped_release release;
    out->db_ = geokv::db::connect(endpoints, opts);
    return out;
  }

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

  bool Cas(const std::string& key, const std::optional<std::string>& expected, const std::string& value) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    return db.cas(key, expected ? std::optional<std::string_view>(*expected) : std::nullopt, value);
  }

  int64_t Add(const std::string& key, int64_t delta) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    return db.add(key, delta);
  }

  void SetAdd(const std::string& key, const std::string& element) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.set_add(key, element);
  }

  void SetRemove(const std::string& key, const std::string& element) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.set_remove(key, element);
  }

  bool SetContains(const std::string& key, const std::string& element) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    return db.set_contains(key, element);
  }

  py::list SetMembers(const std::string& key) {
    geokv::db& db = Live();
    std::vector<std::string> members;
    {
      py::gil_scoped_release release;
      members = db.set_members(key);
    }
    py::list out;
    for (const auto& m : members) out.append(py::bytes(m));
    return out;
  }

  py::tuple MvGet(const std::string& key) {
    geokv::db& db = Live();
    geokv::db::mv_read read;
    {
      py::gil_scoped_release release;
      read = db.mv_get(key);
    }
    py::list values;
    for (const auto& v : read.values) values.append(py::bytes(v));
    return py::make_tuple(values, py::bytes(read.context));
  }

  void MvPut(const std::string& key, const std::string& value, const std::string& context) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.mv_put(key, value, context);
  }

  void MvDelete(const std::string& key, const std::string& context) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.mv_delete(key, context);
  }

  void PolicySet(const std::string& prefix, const std::string& mode) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.policy_set(prefix, mode);
  }

  void NodeSetState(uint32_t node, const std::string& state) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    db.node_set_state(node, state);
  }

  bool PolicyRemove(const std::string& prefix) {
    geokv::db& db = Live();
    py::gil_scoped_release release;
    return db.policy_remove(prefix);
  }

  py::list PolicyList() {
    geokv::db& db = Live();
    std::vector<std::pair<std::string, std::string>> rules;
    {
      py::gil_scoped_release release;
      rules = db.policy_list();
    }
    py::list out;
    for (const auto& [prefix, mode] : rules) out.append(py::make_tuple(py::bytes(prefix), py::str(mode)));
    return out;
  }

  py::list Status() {
    geokv::db& db = Live();
    std::vector<std::string> lines;
    {
      py::gil_scoped_release release;
      lines = db.status();
    }
    py::list out;
    for (const auto& line : lines) {
      // Lines are for people: never fail on a stray byte.
      PyObject* text = PyUnicode_DecodeUTF8(line.data(), static_cast<Py_ssize_t>(line.size()), "replace");
      if (text == nullptr) throw py::error_already_set();
      out.append(py::reinterpret_steal<py::str>(text));
    }
    return out;
  }

  // Closes the C handle but keeps the wrapper's pointer: a call racing this close on
  // another thread then reaches the C ABI, which answers GEOKV_ECLOSED (it remembers
  // closed handles), instead of reading a pointer being reset. The wrapper's destructor
  // closes again later and gets GEOKV_ECLOSED, which it ignores.
  void Close() {
    if (closed_.exchange(true)) return;
    geokv_db_t* raw = db_.handle();
    py::gil_scoped_release release;
    if (raw != nullptr) geokv::detail::check(geokv_close(raw));
  }

  bool closed() const { return closed_.load() || !db_; }

  // The open db, or GEOKV_ECLOSED.
  geokv::db& Live() {
    if (closed()) throw geokv::error(GEOKV_ECLOSED, "database is closed");
    return db_;
  }

 private:
  Db() = default;

  std::optional<std::string> config_path_;
  geokv::db db_;
  std::atomic<bool> closed_{false};
};

class Iter {
 public:
  Iter(Db& db, const std::string& prefix) {
    geokv::db& live = db.Live();
    py::gil_scoped_release release;
    it_ = live.scan(prefix);
  }
  // The GIL stays held: see the file comment.
  py::tuple Next() {
    auto e = it_.next();
    if (!e) throw py::stop_iteration();
    return py::make_tuple(py::bytes(e->first.data(), e->first.size()), py::bytes(e->second.data(), e->second.size()));
  }

 private:
  geokv::iterator it_;
};

// Records from the C library waiting for the pump thread. Bounded: when Python does not
// keep up, the oldest are dropped and counted.
struct LogQueue {
  static constexpr size_t kRecordsMax = 10000;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<int, std::string>> records;  // guarded by mu
  uint64_t dropped = 0;                             // guarded by mu
  bool stopped = false;                             // guarded by mu
};

LogQueue*& Logs() {
  static LogQueue* queue = new LogQueue();  // never destroyed: C threads may log at exit
  return queue;
}

void OnLog(int level, const char* message, void*) {
  LogQueue* q = Logs();
  std::lock_guard lock(q->mu);
  if (q->stopped) return;
  if (q->records.size() >= LogQueue::kRecordsMax) {
    q->records.pop_front();
    ++q->dropped;
  }
  q->records.emplace_back(level, message);
  q->cv.notify_one();
}

// Waits (GIL released) up to timeout_ms for records; None once stopped.
py::object LogWait(int64_t timeout_ms) {
  LogQueue* q = Logs();
  std::deque<std::pair<int, std::string>> taken;
  uint64_t dropped = 0;
  {
    py::gil_scoped_release release;
    std::unique_lock lock(q->mu);
    q->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return q->stopped || !q->records.empty(); });
    if (q->stopped && q->records.empty()) {
      lock.unlock();
      py::gil_scoped_acquire acquire;
      return py::none();
    }
    taken.swap(q->records);
    dropped = std::exchange(q->dropped, 0);
  }
  py::list out;
  if (dropped != 0) {
    out.append(py::make_tuple(GEOKV_LOG_WARN, "geokv dropped " + std::to_string(dropped) +
                                                  " log records: Python did not keep up"));
  }
  for (auto& [level, text] : taken) {
    PyObject* str = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
    if (str == nullptr) throw py::error_already_set();
    out.append(py::make_tuple(level, py::reinterpret_steal<py::str>(str)));
  }
  return out;
}

void LogStart() {
  {
    LogQueue* q = Logs();
    std::lock_guard lock(q->mu);
    q->stopped = false;
  }
  geokv::detail::check(geokv_log_set_callback(OnLog, nullptr));
}

// Back to stderr, and wake the pump so that it ends.
void LogStop() {
  geokv_log_set_callback(nullptr, nullptr);
  LogQueue* q = Logs();
  std::lock_guard lock(q->mu);
  q->stopped = true;
  q->cv.notify_all();
}

// In a child after fork: the queue's mutex may have been held by a thread that does not
// exist here; start from a fresh queue (the old one is leaked on purpose).
void LogAfterFork() { Logs() = new LogQueue(); }

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

  m.def("log_set_level", [](int level) { geokv::detail::check(geokv_log_set_level(level)); }, py::arg("level"));
  m.def("log_level", [] { return geokv_log_level(); });
  m.def("log_start", &LogStart);
  m.def("log_stop", &LogStop);
  m.def("log_after_fork", &LogAfterFork);
  m.def("log_wait", &LogWait, py::arg("timeout_ms"));
  m.def(
      "repair",
      [](const std::string& path) {
        uint64_t tables = 0, keys = 0;
        {
          py::gil_scoped_release release;
          geokv::detail::check(geokv_repair(&tables, &keys, path.c_str()));
        }
        return py::make_tuple(tables, keys);
      },
      py::arg("path"));

  py::class_<Db>(m, "Db")
      .def(py::init<const std::optional<std::string>&, uint32_t, uint64_t, uint64_t, uint32_t,
                    std::optional<std::string>>(),
           py::arg("path"), py::arg("durability") = 0, py::arg("key_bytes_max") = 0,
           py::arg("value_bytes_max") = 0, py::arg("commit_timeout_ms") = 0,
           py::arg("config_path") = std::nullopt)
      .def("put", &Db::Put, py::arg("key"), py::arg("value"))
      .def("get", &Db::Get, py::arg("key"))
      .def("delete", &Db::Delete, py::arg("key"))
      .def_static("connect", &Db::Connect, py::arg("endpoints"), py::arg("timeout_ms") = 0,
                  py::arg("curve_server_key") = std::nullopt, py::arg("curve_public_key") = std::nullopt,
                  py::arg("curve_secret_key") = std::nullopt)
      .def("cas", &Db::Cas, py::arg("key"), py::arg("expected"), py::arg("value"))
      .def("add", &Db::Add, py::arg("key"), py::arg("delta"))
      .def("set_add", &Db::SetAdd, py::arg("key"), py::arg("element"))
      .def("set_remove", &Db::SetRemove, py::arg("key"), py::arg("element"))
      .def("set_contains", &Db::SetContains, py::arg("key"), py::arg("element"))
      .def("set_members", &Db::SetMembers, py::arg("key"))
      .def("mv_get", &Db::MvGet, py::arg("key"))
      .def("mv_put", &Db::MvPut, py::arg("key"), py::arg("value"), py::arg("context"))
      .def("mv_delete", &Db::MvDelete, py::arg("key"), py::arg("context"))
      .def("policy_set", &Db::PolicySet, py::arg("prefix"), py::arg("mode"))
      .def("policy_remove", &Db::PolicyRemove, py::arg("prefix"))
      .def("node_set_state", &Db::NodeSetState, py::arg("node"), py::arg("state"))
      .def("policy_list", &Db::PolicyList)
      .def("status", &Db::Status)
      .def("close", &Db::Close)
      .def_property_readonly("closed", &Db::closed);

  py::class_<Iter>(m, "Iter")
      .def(py::init<Db&, const std::string&>(), py::arg("db"), py::arg("prefix"), py::keep_alive<1, 2>())
      .def("__iter__", [](Iter& self) -> Iter& { return self; })
      .def("__next__", &Iter::Next);
}
