"""The goals of issue 9 (throughput and cost), computed from one run's results: for each
goal, geokv's figure, the peer's or baseline's figure from the same run (or a fixed limit),
their ratio, the target, met / not met / not measured (with the reason), and the command
that reproduces it. main.py stores them in results.json ("goals") and prints a summary;
report.py renders them in report.md."""
from . import report

TITLE = "Goals of issue 9 (throughput and cost)"
MANY_CLIENTS = 64               # the throughput goals' client count (updates-only step)
STORAGE_RATIO_MIN = 0.87        # storage layer / raw WiredTiger, items/s
WIRE_PER_COPY_MAX = 1.5         # transport bytes per eventual update / (payload x (regions - 1))
EMPTY_DATA_DIR_BYTES_MAX = 64 * 2**20
BOUND_RATIO_MAX = 1.05          # strong write p50 / physical bound
STORAGE_MODES = {0: "sync", 1: "write", 2: "none"}  # storage_bench's argument: durability mode


def _goal(gid, what, unit, target_is, target, command, geokv=None, baseline=None, baseline_name=None, why=None):
    """One goal row. target_is: "at_least" or "at_most", on the ratio geokv / baseline.
    `why` (or a missing figure) makes it "not measured"."""
    g = {"id": gid, "goal": what, "unit": unit, "geokv": geokv, "baseline": baseline_name, "baseline_value": baseline,
         "ratio": None, "target_is": target_is, "target_ratio": target,
         "target": ("≥ " if target_is == "at_least" else "≤ ") + f"{target:.3g}x", "command": command}
    if why is None and baseline == 0:
        why = f"{baseline_name}'s figure is 0"
    if why is None and (geokv is None or baseline is None):
        why = "a figure is missing"
    if why is not None:
        g["status"], g["why"] = "not measured", why
        return g
    g["ratio"] = geokv / baseline
    met = g["ratio"] >= target if target_is == "at_least" else g["ratio"] <= target
    g["status"] = "met" if met else "not met"
    return g


def _system_missing(results, system):
    """Why a system has no figures in this run, or None when it ran."""
    s = results["systems"].get(system)
    if s is None:
        return f"{system} did not run ({results.get('peers', {}).get(system, 'not requested')})"
    if "skipped" in s:
        return f"{system} did not start: {s['skipped']}"
    return None


def _run(results, system, kind, mode=None, clients=None):
    """(run, None) or (None, why): the first step of that kind, mode and client count."""
    why = _system_missing(results, system)
    if why:
        return None, why
    for r in results["systems"][system].get("runs", []):
        if r["kind"] == kind and (mode is None or r["mode"] == mode) and (clients is None or r["clients"] == clients):
            if "error" in r["result"]:
                return None, f"step '{r['label']}' failed: {r['result']['error'][:100]}"
            return r, None
    what = f"{kind} step" + (f" ({mode})" if mode else "") + (f" at {clients} client(s)" if clients else "")
    return None, f"no {system} {what} in this run"


def _figure(results, system, kind, mode, clients, get):
    """(value, None) or (None, why); get(run) returns (value, why)."""
    run, why = _run(results, system, kind, mode, clients)
    return (None, why) if run is None else get(run)


def _throughput(run):
    return run["result"].get("ops_per_s"), None


def _update_latency(which):
    def get(run):
        lat = report.op_summary(run, "*", "update").get("latency_ms", {})
        n = lat.get("count", 0)
        if which == "p99" and n < report.P99_SAMPLES_MIN:
            return None, f"a p99 needs {report.P99_SAMPLES_MIN} samples; '{run['label']}' has {n}"
        if n == 0:
            return None, f"no successful update in '{run['label']}'"
        return lat[which], None
    return get


def _server(key, what):
    def get(run):
        v = run["result"].get("server", {}).get(key)
        return (v, None) if v is not None else (None, f"no {what} for '{run['label']}'")
    return get


def _pair(results, gid, what, unit, target_is, target, command, peer, kind, gmode, pmode, clients, get):
    a, why_a = _figure(results, "geokv", kind, gmode, clients, get)
    b, why_b = _figure(results, peer, kind, pmode, clients, get)
    return _goal(gid, what, unit, target_is, target, command, a, b, peer, why_a or why_b)


def _storage_name(name):
    """storage_bench's run name without its option parts: RawPut/0, StorageGet, RawPut/0/threads:16."""
    return "/".join(p for p in name.split("/") if not p.startswith("min_time:") and p != "real_time")


def _storage_goals(results):
    sb = results.get("storage_bench") or {"error": "storage_bench was not run"}
    rows = []
    pairs = [(f"5{chr(ord('a') + m)}", f"storage put items/s, durability {d}", f"Put/{m}", f"Put/{m}/.*real_time$")
             for m, d in STORAGE_MODES.items()]
    pairs.append(("5d", "storage get items/s", "Get", "Get/"))
    bench = {_storage_name(k): v for k, v in sb.get("benchmarks", {}).items()}
    for gid, what, suffix, pattern in pairs:
        command = (f"{sb['command']} --benchmark_filter='^(Raw|Storage){pattern}'"
                   if sb.get("command") else "geokv-bench --storage-bench build/dev/bench/storage/storage_bench")
        ours, raw = bench.get("Storage" + suffix, {}), bench.get("Raw" + suffix, {})
        why = sb.get("error")
        if why is None and (not ours.get("items_per_second") or not raw.get("items_per_second")):
            why = f"storage_bench reported no items/s for Storage{suffix} and Raw{suffix}"
        rows.append(_goal(gid, what, "items/s", "at_least", STORAGE_RATIO_MIN, command, ours.get("items_per_second"),
                          raw.get("items_per_second"), "raw WiredTiger", why))
    return rows


def _wire_goal(results, command):
    copies = len(results["topology"]["regions"]) - 1
    key_bytes = results["settings"].get("key_bytes", {}).get("lww")
    payload = None if key_bytes is None else key_bytes + results["settings"]["value_bytes"]
    per_update, why = _figure(results, "geokv", "writes", "lww", MANY_CLIENTS,
                              _server("transport_bytes_per_op", "geokv_transport_bytes_total (geokvd exports none)"))
    if why is None and copies < 1:
        why = "one region: nothing to send"
    if why is None and payload is None:
        why = "the key length of the run is not recorded"
    return _goal("6", f"transport bytes per eventual (lww) update, {MANY_CLIENTS} clients (sent, all nodes)",
                 "bytes", "at_most", WIRE_PER_COPY_MAX, command, per_update, payload and payload * copies,
                 f"payload ({key_bytes} B key + value) x {copies} other regions", why)


def _bound_goal(results, command):
    run, why = _run(results, "geokv", "latency", "strong")
    worst = None
    if run:
        for region in results["topology"]["regions"]:
            ob = report.op_summary(run, region, "update").get("over_bound", {})
            if ob.get("count") and (worst is None or ob["p50"] > worst[1]):
                worst = (region, ob["p50"])
        if worst is None:
            why = f"no strong update with a bound in '{run['label']}'"
    what = "strong write p50 / physical bound, 1 client per region (worst region" + (f": {worst[0]})" if worst else ")")
    return _goal("9", what, "x", "at_most", BOUND_RATIO_MAX, command, worst[1] if worst else None, 1.0,
                 "the bound", why)


def compute(results):
    """The goal rows of a results dict (results.json's layout); figures a run lacks are
    "not measured" with the reason."""
    base = results.get("command") or "geokv-bench"
    with_etcd, with_redis, alone = base + " --peers etcd", base + " --peers redis", base + " --no-peers"
    n = MANY_CLIENTS
    rows = [
        _pair(results, "1a", f"strong writes/s, {n} clients (updates only)", "ops/s", "at_least", 3, with_etcd,
              "etcd", "writes", "strong", "strong", n, _throughput),
        _pair(results, "1b", "strong writes/s, 1 client (updates only)", "ops/s", "at_least", 1, with_etcd,
              "etcd", "writes", "strong", "strong", 1, _throughput),
        _pair(results, "2", f"strong write p99, {n} clients", "ms", "at_most", 1, with_etcd,
              "etcd", "writes", "strong", "strong", n, _update_latency("p99")),
        _pair(results, "3", f"server CPU s per strong write, all servers, {n} clients", "CPU s", "at_most", 1 / 3,
              with_etcd, "etcd", "writes", "strong", "strong", n, _server("cpu_s_per_op", "server CPU")),
        _pair(results, "4a", f"eventual (lww) writes/s, {n} clients (updates only)", "ops/s", "at_least", 1,
              with_redis, "redis", "writes", "lww", "lww", n, _throughput),
        _pair(results, "4b", "eventual (lww) write p50, 1 client", "ms", "at_most", 1, with_redis,
              "redis", "writes", "lww", "lww", 1, _update_latency("p50")),
    ]
    rows += _storage_goals(results)
    rows.append(_wire_goal(results, alone))
    idle_s = results["settings"].get("idle_s")
    rows.append(_pair(results, "7", f"idle cluster CPU s, all servers, {idle_s or '—'} s without clients", "CPU s", "at_most", 1,
                      with_etcd, "etcd", "idle", None, None, None, _server("cpu_s", "server CPU")))
    fp = results["systems"].get("geokv", {}).get("footprint", {})
    size = fp.get("data_dir_bytes_at_start_max")
    rows.append(_goal("8", "an empty node's data directory (du, right after start)", "bytes", "at_most", 1, alone,
                      size, EMPTY_DATA_DIR_BYTES_MAX, "limit",
                      _system_missing(results, "geokv") or (None if size is not None else "not recorded in this run")))
    rows.append(_bound_goal(results, alone))
    return rows


def counts(rows):
    out = {"met": 0, "not met": 0, "not measured": 0}
    for g in rows:
        out[g["status"]] += 1
    return out


def figure_text(value, unit):
    if value is None:
        return "—"
    if unit == "bytes" and value >= 2**20:
        return f"{value / 2**20:.1f} MiB"
    if unit == "CPU s" and value < 0.01:
        return f"{value * 1e6:.1f} µs"
    if unit == "x":
        return ratio_text(value)
    return f"{report.f1(value)} {unit}"


def ratio_text(r):
    """Three decimals, so that a ratio just past its target does not print as the target."""
    return "n/a" if r is None else f"{r:.3f}x"


def summary(rows):
    """The lines printed at the end of a run."""
    c = counts(rows)
    lines = [f"{TITLE}: {c['met']} met, {c['not met']} not met, {c['not measured']} not measured"]
    for g in rows:
        ratio = "" if g["ratio"] is None else ratio_text(g["ratio"]) + " "
        status = g["status"] + (f" ({g['why']})" if g.get("why") else "")
        lines.append(f"  {g['id']:>2}  {g['goal']}: geokv {figure_text(g['geokv'], g['unit'])}, "
                     f"{g['baseline']} {figure_text(g['baseline_value'], g['unit'])}; {ratio}(target {g['target']}) "
                     f"{status.upper() if g['status'] == 'not met' else status}")
    return lines
