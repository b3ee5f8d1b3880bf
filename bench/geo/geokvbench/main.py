"""geokv-bench: one command that starts the clusters it needs, runs the workloads, stops
everything it started and writes a results directory (results.json, report.md, plots).

  geokv-bench --quick                      # < 3 min: a short pass over everything
  geokv-bench                              # the default run (< 15 min)
  geokv-bench --topology my-5-regions.toml # any matrix (docs/bench.md has the schema)
  geokv-bench --compare OLD_DIR            # run, then print what got better or worse
  geokv-bench --compare OLD_DIR NEW_DIR    # only compare two results directories
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import compare as compare_mod
from . import goals, procs, report, systems, topology, workloads

SCHEMA_VERSION = 1


class Progress:
    """One line per step; on a terminal, a bar with the estimated time left."""

    def __init__(self, steps):
        self.total_s = sum(s.estimate_s() for s in steps) or 1
        self.done_s = 0.0
        self.n, self.i = len(steps), 0
        self.start = time.monotonic()
        self.tty = sys.stdout.isatty()

    def begin(self, step):
        self.i += 1
        frac = self.done_s / self.total_s
        elapsed = time.monotonic() - self.start
        left = self.total_s - self.done_s
        bar = "#" * int(frac * 24) + "-" * (24 - int(frac * 24))
        print(f"[{bar}] {self.i:3d}/{self.n} {elapsed:5.0f}s elapsed, ~{max(0, left):4.0f}s left  {step.label}",
              flush=True)

    def end(self, step):
        self.done_s += step.estimate_s()


def say(msg):
    print(f"geokv-bench: {msg}", flush=True)


def find_topology(arg, datadir):
    if os.path.exists(arg):
        return arg
    for d in (os.path.join(datadir, "topologies"), os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "topologies")):
        p = os.path.join(d, arg if arg.endswith(".toml") else arg + ".toml")
        if os.path.exists(p):
            return p
    raise topology.TopologyError(f"no topology file or preset named '{arg}' (presets: aws-3, aws-5)")


def server_delta(before, after, ops):
    """The servers' counters over a step (system.counters() before and after), and per
    operation when the step had any."""
    res = {}
    for k in ("cpu_s", "fsyncs", "wire_bytes", "transport_bytes"):
        if before.get(k) is not None and after.get(k) is not None:
            res[k] = after[k] - before[k]
            if ops > 0:
                res[k + "_per_op"] = res[k] / ops
    if before.get("cpu_s_by_server") and after.get("cpu_s_by_server"):
        by = {r: after["cpu_s_by_server"][r] - before["cpu_s_by_server"].get(r, 0) for r in after["cpu_s_by_server"]}
        if ops > 0:
            res["cpu_s_per_op_by_server"] = {r: v / ops for r, v in by.items()}
        else:
            res["cpu_s_by_server"] = by
    return res


def find_storage_bench(arg, bindir):
    """--storage-bench, else storage_bench next to the other binaries, else in the build tree
    that bindir belongs to (build/<preset>/bin -> build/<preset>/bench/storage)."""
    candidates = [arg] if arg else [os.path.join(bindir, "storage_bench"),
                                    os.path.join(bindir, "..", "bench", "storage", "storage_bench")]
    return next((os.path.normpath(c) for c in candidates if os.access(c, os.X_OK) and os.path.isfile(c)), None)


def rerun_command(args):
    """The command line that repeats this run's settings (the goals add their --peers)."""
    argv = ["geokv-bench"] + (["--quick"] if args.quick else []) + ["--topology", args.topology]
    if args.base_port != 27000:
        argv += ["--base-port", str(args.base_port)]
    return " ".join(argv)


class Runner:
    def __init__(self, args, topo, bindir, workdir):
        self.args, self.topo, self.bindir, self.workdir = args, topo, bindir, workdir
        self.loadgen = os.path.join(bindir, "geokv-bench-load")
        self.children = procs.Children()
        self.seq = 0

    # ---- one step through the load generator --------------------------------------------
    def regions_spec(self, system, step, profile):
        t = self.topo
        regions = []
        if step.kind == "sweep":
            per = {r: 0 for r in t.regions}
            for k in range(step.clients):
                per[t.regions[k % len(t.regions)]] += 1
        elif step.kind == "writes":
            per = {r: 0 for r in t.regions}
            per[t.etcd_leader if isinstance(system, systems.Etcd) else t.placement[0]] = step.clients
        else:
            per = {r: step.clients for r in t.regions}
        for r in t.regions:
            entry = {"name": r, "clients": per[r],
                     "one_way_ms": {b: t.one_way_ms(r, b) for b in t.regions if b != r}}
            if isinstance(system, systems.Geokv):
                entry["endpoint"] = system.endpoints()[r]
                entry["write_bound_ms"] = [t.write_bound_ms(r, t.placement[s]) for s in range(t.shards)]
                entry["read_bound_ms"] = [t.read_bound_ms(r, t.placement[s]) for s in range(t.shards)]
            elif isinstance(system, systems.Etcd):
                entry["endpoint"], _ = system.endpoint_for(r)
                entry["write_bound_ms"] = entry["read_bound_ms"] = [system.bound_ms(r)]
            else:
                entry["endpoint"] = system.endpoints()[r]
            if entry["clients"] > 0 or step.kind in ("convergence", "load"):
                regions.append(entry)
        return regions

    def run_loadgen(self, system, step, profile):
        self.seq += 1
        spec = {"backend": system.name, "task": step.kind if step.kind in ("load", "convergence") else "workload",
                "mode": step.mode, "key_prefix": workloads.PREFIX[step.mode] if step.kind != "convergence"
                else workloads.PREFIX[step.mode].replace("y/", "c/"),
                "records": profile.records, "value_bytes": profile.value_bytes, "shards": self.topo.shards,
                "warmup_s": step.warmup_s, "duration_s": step.duration_s, "samples": step.samples,
                "distribution": step.distribution, "scan_length_max": 10,
                "regions": self.regions_spec(system, step, profile)}
        if step.kind in ("latency", "ycsb", "sweep", "writes"):
            spec["mix"] = workloads.YCSB["A" if step.workload == "latency" else step.workload]["mix"]
        spec_path = os.path.join(self.workdir, f"spec-{self.seq}.json")
        out_path = os.path.join(self.workdir, f"out-{self.seq}.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        before = system.counters()
        t0 = time.monotonic()
        limit = step.estimate_s() * 3 + 120
        try:
            p = subprocess.run([self.loadgen, spec_path, out_path], capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return {"error": f"the load generator did not finish within {limit:.0f} s"}
        wall = time.monotonic() - t0
        after = system.counters()
        if p.returncode != 0:
            return {"error": (p.stderr or p.stdout).strip()[-500:] or f"exit {p.returncode}"}
        with open(out_path) as f:
            out = json.load(f)
        ops = out.get("ops_ok", 0) + out.get("ops_failed", 0) + sum(
            o.get("warmup_ops", 0) for reg in out.get("regions", {}).values() for o in reg.values()
            if isinstance(o, dict))
        out["server"] = server_delta(before, after, ops)
        out["ops_total_incl_warmup"] = ops
        out["driver_wall_s"] = wall
        return out

    def run_idle(self, system, step):
        """No clients for the step's duration: what the servers spend on their own
        (heartbeats, leases, timers)."""
        before = system.counters()
        time.sleep(step.duration_s)
        return {"measured_s": step.duration_s, "server": server_delta(before, system.counters(), 0)}

    def run_storage_bench(self, path, quick):
        """storage_bench (bench/storage): geokv's storage layer against raw WiredTiger in the
        same binary. {command, benchmarks {name: {items_per_second, real_time, time_unit}}}
        or {error}."""
        out_path = os.path.join(self.workdir, "storage_bench.json")
        argv = [path, f"--benchmark_out={out_path}", "--benchmark_out_format=json"]
        if quick:
            # Single-threaded puts and the gets: the pairs the goals compare. (Its benchmarks set
            # their own minimum time, which this flag does not shorten in every version.)
            argv += ["--benchmark_filter=real_time$|Get/", "--benchmark_min_time=0.1"]
        res = {"command": path + (" --benchmark_min_time=0.1" if quick else "")}
        try:
            # Its data directories go under TMPDIR: the run's scratch directory, removed at the end.
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=self.workdir,
                               env=dict(os.environ, TMPDIR=self.workdir))
            if p.returncode != 0:
                return dict(res, error=(p.stderr or p.stdout).strip()[-500:] or f"exit {p.returncode}")
            with open(out_path) as f:
                data = json.load(f)
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            return dict(res, error=f"storage_bench failed: {e}")
        res["benchmarks"] = {b["name"]: {"items_per_second": b.get("items_per_second"), "real_time": b["real_time"],
                                         "time_unit": b.get("time_unit")}
                             for b in data.get("benchmarks", []) if not b.get("error_occurred")}
        return res

    # ---- a system's steps ------------------------------------------------------------------
    def run_system(self, system, steps, profile, progress, results):
        sysres = results["systems"].setdefault(system.name, {"runs": [], "footprint": {}})
        say(f"starting {system.name}")
        t_start = time.monotonic()
        try:
            system.start()
            sysres["start_s"] = round(time.monotonic() - t_start, 2)
        except (systems.StartError, OSError) as e:
            say(f"{system.name} did not start: {e}")
            sysres["skipped"] = str(e)
            for s in steps:
                progress.end(s)
            system.stop()
            return
        loaded, inserted = {}, {}  # per key space: records loaded, most records inserted by one step
        try:
            base = system.footprint()
            for step in steps:
                progress.begin(step)
                t_step = time.monotonic()
                out = self.run_idle(system, step) if step.kind == "idle" else self.run_loadgen(system, step, profile)
                progress.end(step)
                entry = {"step_wall_s": round(time.monotonic() - t_step, 2), "kind": step.kind, "mode": step.mode, "workload": step.workload,
                         "distribution": step.distribution, "clients": step.clients,
                         "duration_s": step.duration_s, "warmup_s": step.warmup_s, "label": step.label,
                         "result": out}
                sysres["runs"].append(entry)
                if "error" in out:
                    say(f"  FAILED: {step.label}: {out['error']}")
                    continue
                if step.kind == "load":
                    loaded[step.mode] = profile.records - out.get("load_failures", 0)
                    if out.get("load_failures"):
                        say(f"  {out['load_failures']} of {profile.records} loads failed")
                elif step.kind == "idle":
                    say(f"  {out['server'].get('cpu_s', 0):.2f} CPU s of all servers in {step.duration_s:g} s")
                elif step.kind in ("latency", "ycsb", "sweep", "writes"):
                    failed = out.get("ops_failed", 0)
                    say(f"  {out.get('ops_per_s', 0):9.1f} ops/s, {out.get('ops_ok', 0)} ok, {failed} failed")
                # Every step inserts from record `records` on, so inserts of later steps
                # overwrite those of earlier ones.
                inserted[step.mode] = max(inserted.get(step.mode, 0), out.get("inserted_keys", 0))
            if isinstance(system, systems.Etcd):
                sysres["proxy"] = system.proxy_report()
            end = system.footprint()
        finally:
            say(f"stopping {system.name}")
            system.stop()
        keys = sum(loaded.values()) + sum(inserted.values())
        data, journal = system.disk_after_stop()
        servers = max(1, base["replicas"])
        sysres["footprint"] = {
            "keys": keys, "value_bytes": profile.value_bytes, "replicas": base["replicas"],
            "rss_bytes_at_start": base["rss_bytes"], "rss_bytes_at_end": end["rss_bytes"],
            "data_bytes_after_stop": data, "journal_bytes_after_stop": journal,
            "rss_bytes_per_key_per_replica": (end["rss_bytes"] - base["rss_bytes"]) / servers / keys if keys else None,
            "disk_bytes_per_key_per_replica": data / servers / keys if keys else None,
            "journal_bytes_per_replica": journal / servers,
            "data_dir_bytes_at_start_max": base.get("data_dir_bytes_max"),
        }


def main(argv, bindir, datadir):
    ap = argparse.ArgumentParser(prog="geokv-bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--quick", action="store_true", help="a short pass over everything (< 3 min)")
    ap.add_argument("--topology", default="aws-3", help="a TOML file, or a preset: aws-3 (default), aws-5")
    ap.add_argument("--out", help="results directory (default: geokv-bench-results/<time>-<topology>)")
    ap.add_argument("--base-port", type=int, default=27000, help="first of the 360 ports the run may use (docs/bench.md)")
    ap.add_argument("--peers", default="etcd,redis", help="peers to run beside geokv when installed ('' for none)")
    ap.add_argument("--no-peers", action="store_true", help="geokv only")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument("--storage-bench", metavar="PATH", help="storage_bench binary (default: next to geokv-bench, or "
                    "bench/storage/storage_bench in its build tree); the storage goals need it")
    ap.add_argument("--compare", nargs="+", metavar="DIR", help="OLD: compare this run against OLD; OLD NEW: only compare")
    ap.add_argument("--threshold", type=float, default=0.10, help="--compare: smallest relative change reported")
    args = ap.parse_args(argv)

    if args.compare and len(args.compare) > 2:
        ap.error("--compare takes OLD or OLD NEW")
    if args.compare and len(args.compare) == 2:
        try:
            print(compare_mod.render(compare_mod.compare(args.compare[0], args.compare[1], args.threshold)))
        except (OSError, ValueError, KeyError) as e:
            say(f"cannot compare: {e}")
            return 2
        return 0

    try:
        topo = topology.load(find_topology(args.topology, datadir))
    except topology.TopologyError as e:
        say(str(e))
        return 2
    loadgen = os.path.join(bindir, "geokv-bench-load")
    if not os.access(loadgen, os.X_OK):
        say(f"the load generator is missing ({loadgen}); build the project first")
        return 2

    profile = workloads.QUICK if args.quick else workloads.DEFAULT
    started = datetime.datetime.now(datetime.timezone.utc)
    out_dir = args.out or os.path.join("geokv-bench-results", started.strftime("%Y%m%dT%H%M%SZ") + "-" + topo.name)
    os.makedirs(out_dir, exist_ok=True)

    wanted = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    peer_notes = {}
    run_systems = ["geokv"]
    etcd_bin = systems.Etcd.find() if "etcd" in wanted else None
    redis_bin = systems.Redis.find() if "redis" in wanted else None
    for name, binary, finder in (("etcd", etcd_bin, systems.Etcd), ("redis", redis_bin, systems.Redis)):
        if name not in wanted:
            peer_notes[name] = "not requested"
        elif not binary:
            peer_notes[name] = f"skipped: {name} is not installed (scripts/bootstrap installs it)"
            say(f"{name}: {peer_notes[name]}")
        else:
            v = finder.version(binary)
            peer_notes[name] = f"{binary} {v}"
            run_systems.append(name)

    storage_bench = find_storage_bench(args.storage_bench, bindir)
    if not storage_bench:
        say("storage_bench not found (--storage-bench PATH): the storage goals are not measured")
    steps = workloads.plan(profile, run_systems)
    say(f"{profile.name} run on topology {topo.name} ({len(topo.regions)} regions: {', '.join(topo.regions)}), "
        f"systems: {', '.join(run_systems)}; {len(steps)} steps, about {sum(s.estimate_s() for s in steps) / 60:.1f} min "
        f"of workload; results in {out_dir}")
    results = {
        "schema_version": SCHEMA_VERSION, "profile": profile.name, "started_utc": started.isoformat(),
        "topology": topo.to_dict(), "systems": {}, "peers": peer_notes,
        "machine": {"hostname": platform.node(), "kernel": platform.release(), **procs.machine_load(),
                    "load_at_start": procs.machine_load()},
        "settings": {"records": profile.records, "value_bytes": profile.value_bytes, "warmup_s": profile.warmup_s,
                     "latency_s": profile.latency_s, "ycsb_s": profile.ycsb_s, "ycsb_clients_per_region": profile.ycsb_clients,
                     "sweep_clients": profile.sweep, "sweep_s": profile.sweep_s,
                     "convergence_samples": profile.convergence_samples, "scan_length_max": 10,
                     "writes_clients": profile.writes_clients, "writes_s": profile.writes_s, "idle_s": profile.idle_s,
                     "key_bytes": {m: workloads.key_bytes(m) for m in workloads.PREFIX}},
        "command": rerun_command(args),
    }
    workdir = tempfile.mkdtemp(prefix="geokv-bench-")
    runner = Runner(args, topo, bindir, workdir)
    progress = Progress(steps)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    load_samples = []
    interrupted = False
    try:
        for name in run_systems:
            if name == "geokv":
                system = systems.Geokv(topo, bindir, workdir, args.base_port, runner.children)
            elif name == "etcd":
                system = systems.Etcd(topo, workdir, args.base_port, runner.children, etcd_bin)
            else:
                system = systems.Redis(topo, workdir, args.base_port, runner.children, redis_bin)
            runner.run_system(system, [s for s in steps if s.system == name], profile, progress, results)
            load_samples.append(dict(procs.machine_load(), after=name))
        if storage_bench:
            say(f"running {storage_bench} (geokv's storage layer against raw WiredTiger)")
            results["storage_bench"] = runner.run_storage_bench(storage_bench, args.quick)
            if "error" in results["storage_bench"]:
                say(f"  FAILED: {results['storage_bench']['error']}")
        else:
            results["storage_bench"] = {"error": "storage_bench not found"}
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted; stopping everything this run started")
    finally:
        runner.children.stop()
    results["machine"]["load_samples"] = load_samples
    results["machine"]["load_at_end"] = procs.machine_load()
    results["duration_s"] = time.monotonic() - t0
    results["interrupted"] = interrupted
    results["goals"] = goals.compute(results)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plots = [] if args.no_plots else report.plots(results, out_dir, say)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(report.markdown(results, plots))
    shutil.rmtree(workdir, ignore_errors=True)
    for line in goals.summary(results["goals"]):
        say(line)
    say(f"done in {results['duration_s']:.0f} s: {out_dir}/report.md, results.json, {len(plots)} plots")
    failed = sum(r["result"].get("ops_failed", 0) for s in results["systems"].values() for r in s["runs"])
    broken = [r["label"] for s in results["systems"].values() for r in s["runs"] if "error" in r["result"]]
    if args.compare:
        try:
            print(compare_mod.render(compare_mod.compare(args.compare[0], out_dir, args.threshold)))
        except (OSError, ValueError, KeyError) as e:
            say(f"cannot compare: {e}")
    if interrupted:
        return 130
    if "skipped" in results["systems"].get("geokv", {}) or broken:
        say(f"{len(broken)} step(s) did not run: {', '.join(broken) or 'geokv did not start'}")
        return 1
    if failed:
        say(f"{failed} operation(s) failed (counted in the report by error code)")
    return 0
