"""report.md and the PNG plots of a results directory (results.json, docs/bench.md)."""
import os

from . import goals as goals_mod

P99_SAMPLES_MIN = 1000
WRITERS_NOTE = "closed-loop clients in the region of the (first shard's) leader"
OPS = ["read", "update", "insert", "scan", "rmw"]


def f1(x, unit=""):
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}{unit}"
    if abs(x) >= 10:
        return f"{x:.1f}{unit}"
    return f"{x:.2f}{unit}"


def per_op(server, key, scale=1):
    """A per-operation server figure (server CPU, fsyncs, bytes), scaled; n/a when not measured."""
    x = server.get(key)
    return f1(None if x is None else x * scale)


def p99_cell(summary):
    """p99 only with enough samples behind it; otherwise the column says what it is."""
    n = summary.get("count", 0)
    if n == 0:
        return "—"
    if n >= P99_SAMPLES_MIN:
        return f1(summary["p99"])
    return f"max of {n}: {f1(summary['max'])}"


def runs(results, system, kind=None, mode=None):
    s = results["systems"].get(system, {})
    return [r for r in s.get("runs", []) if (kind is None or r["kind"] == kind) and (mode is None or r["mode"] == mode)
            and "error" not in r["result"]]


def writes_run(results, system, mode):
    """The updates-only step with the most clients: the cost of one write under load."""
    return max(runs(results, system, "writes", mode), key=lambda r: r["clients"], default=None)


def op_summary(run, region="*", op=None):
    regs = run["result"].get("regions", {})
    return regs.get(region, {}).get(op, {}) if op else regs.get(region, {})


def errors_of(run):
    out = {}
    for region, ops in run["result"].get("regions", {}).items():
        if region == "*":
            continue
        if run["kind"] == "convergence":
            if ops.get("not_seen_within_10s"):
                out["NOT_SEEN_WITHIN_10S"] = out.get("NOT_SEEN_WITHIN_10S", 0) + ops["not_seen_within_10s"]
            continue
        for op, o in ops.items():
            for code, n in o.get("errors", {}).items():
                out[code] = out.get(code, 0) + n
    return out


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines) + "\n"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fr(x):
    return "n/a" if x is None else f"{x:.3g}x"


def markdown(results, plots):
    t = results["topology"]
    m = results["machine"]
    s = results["settings"]
    out = []
    w = out.append
    w(f"# geokv-bench report: {results['profile']} run, topology {t['name']}\n")
    w(f"Started {results['started_utc']}, took {results['duration_s']:.0f} s"
      f"{' (INTERRUPTED: figures are partial)' if results.get('interrupted') else ''}. "
      f"Machine: {m['cpus']} CPUs, kernel {m['kernel']}; load average (1 min) {m['load_at_start']['loadavg_1m']:.2f} at start, "
      + "".join(f"{x['loadavg_1m']:.2f} after {x.get('after', 'a system')}, " for x in m.get("load_samples", []))
      + f"{m['load_at_end']['loadavg_1m']:.2f} at the end"
      + (" — the machine was shared and busy: treat absolute throughput and CPU figures as lower bounds of what an idle "
         "machine gives." if max([m["load_at_start"]["loadavg_1m"]] + [x["loadavg_1m"] for x in m.get("load_samples", [])])
         > m["cpus"] else ".") + "\n")
    w("**Method.** Closed-loop clients (one connection each; the next operation starts when the previous one answered), "
      "latency measured on the client around the whole call. "
      f"The first {s['warmup_s']:g} s of every workload is warm-up: its operations are counted apart and excluded from "
      f"every figure. A p99 needs at least {P99_SAMPLES_MIN} samples; with fewer, the column shows \"max of N\". "
      "Failed operations are counted by error code (section 8), never dropped; their latency is not in the percentiles. "
      "Latencies in ms. One system runs at a time, on the same emulated WAN.\n")
    w("**Peers.** " + "; ".join(f"{k}: {v}" for k, v in results["peers"].items()) + "\n")
    for name, sysres in results["systems"].items():
        if "skipped" in sysres:
            w(f"**{name} skipped**: {sysres['skipped']}\n")

    # ---- goals ---------------------------------------------------------------------------------
    w(f"## {goals_mod.TITLE}\n")
    if "goals" in results:
        c = goals_mod.counts(results["goals"])
        w(f"{c['met']} met, {c['not met']} not met, {c['not measured']} not measured. Ratio = geokv / the other "
          "figure, both from this run on this machine (a busy or shared machine moves them; the command repeats the "
          "measurement). Goals 1-4, 6: the updates-only step at that client count, clients in the leader's region "
          "(section 6 has every count; at 1 client, background traffic such as heartbeats is spread over few "
          "writes).\n")
        rows = [[f"{g['id']}. {g['goal']}", goals_mod.figure_text(g["geokv"], g["unit"]),
                 f"{g['baseline']}: {goals_mod.figure_text(g['baseline_value'], g['unit'])}",
                 goals_mod.ratio_text(g["ratio"]), g["target"],
                 g["status"] + (f": {g['why']}" if g.get("why") else ""),
                 # A pipe inside a table cell, even in code, needs its backslash (GitHub markdown).
                 "`" + g["command"].replace("|", "\\|") + "`"]
                for g in results["goals"]]
        w(table(["goal", "geokv", "peer or baseline", "ratio", "target", "status", "command"], rows))
    else:
        w("Not computed: these results come from a version of the suite without goals.\n")

    # ---- topology and bounds -------------------------------------------------------------
    regions = t["regions"]
    w("## 1. Topology and physical bounds\n")
    w("Round trips the emulation applies (ms; each direction is delayed by round(rtt/2) whole ms, "
      "jitter uniform in [0, jitter] on top):\n")
    rows = []
    for a in regions:
        rows.append([a] + [("0" if a == b else f"{t['applied_one_way_ms'][a][b] + t['applied_one_way_ms'][b][a]}"
                            f" (±{t['jitter_ms'][a][b]})") for b in regions])
    w(table(["from \\ to"] + regions, rows))
    lead = t["leader_placement"]
    w(f"{t['shards']} strong shards; preferred leader per shard: {', '.join(lead)}. etcd members in "
      f"{', '.join(t['etcd']['members'])}, leader moved to {t['etcd']['leader']}.\n")
    w("Bound of a strong write = client→leader round trip + leader→nearest majority round trip; of a strong (lease) read = "
      "client→leader round trip; computed per key from its shard's leader. A client in the leader's region has a read "
      "bound of 0 (loopback), so no ratio is given there. etcd: a write and a linearizable read (ReadIndex) are bounded "
      "by client→member + member→leader + leader→nearest majority of its three members; clients of a region without a "
      "member reach the nearest member through the delay proxy.\n")

    # ---- latency per region ----------------------------------------------------------------
    w("## 2. Latency per region (1 client per region, A's mix: 50% read, 50% update, uniform keys)\n")
    for system in results["systems"]:
        for run in runs(results, system, "latency"):
            w(f"**{system} {run['mode']}** ({run['duration_s']:g} s measured)\n")
            rows = []
            for region in regions:
                for op in ("read", "update"):
                    o = op_summary(run, region, op)
                    lat = o.get("latency_ms", {})
                    if not lat.get("count"):
                        continue
                    ob = o.get("over_bound", {})
                    rows.append([region, op, lat["count"], f1(lat["p50"]), f1(lat["p95"]), p99_cell(lat), f1(lat["max"]),
                                 f1(ob.get("p50")) + "x" if ob.get("count") else "—",
                                 (p99_cell(ob) + ("x" if ob.get("count", 0) >= P99_SAMPLES_MIN else "")) if ob.get("count") else "—",
                                 sum(o.get("errors", {}).values())])
            w(table(["region", "op", "n", "p50", "p95", "p99", "max", "p50/bound", "p99/bound", "errors"], rows))

    # ---- YCSB ----------------------------------------------------------------------------------
    w("## 3. YCSB workloads\n")
    w(f"{s['ycsb_clients_per_region']} clients per region, {s['ycsb_s']:g} s measured each, {s['records']} records of "
      f"{s['value_bytes']} bytes per mode. Mapping of YCSB operations per mode: strong and lww read = get, update/insert = "
      "put; mvreg update = get then put with the context read (a blind put would add a sibling); counter update = add 1; "
      "set update = add an element, read = contains; E's scan = up to 10 consecutive records (etcd: one range request; "
      "geokv and Redis have no range read, so one get per record); F's rmw = read then write. CPU, fsyncs and bytes are "
      "per operation over all servers, warm-up operations included.\n")
    rows = []
    for system in results["systems"]:
        for run in runs(results, system, "ycsb"):
            r = run["result"]
            cells = [system, run["mode"], f"{run['workload']} {run['distribution']}", f1(r.get("ops_per_s"))]
            for op in ("read", "update", "insert", "scan", "rmw"):
                lat = op_summary(run, "*", op).get("latency_ms", {})
                cells.append(f"{f1(lat['p50'])} / {p99_cell(lat)}" if lat.get("count") else "—")
            srv = r.get("server", {})
            cells += [per_op(srv, "cpu_s_per_op", 1000), per_op(srv, "fsyncs_per_op"), per_op(srv, "wire_bytes_per_op"),
                      r.get("ops_failed", 0)]
            rows.append(cells)
    w(table(["system", "mode", "workload", "ops/s", "read p50 / p99", "update p50 / p99", "insert p50 / p99",
             "scan p50 / p99", "rmw p50 / p99", "CPU ms/op", "fsyncs/op", "WAN bytes/op", "failed"], rows))

    # ---- sweep -------------------------------------------------------------------------------
    w("## 4. Throughput against clients (YCSB-A zipfian; clients spread round-robin over the regions)\n")
    sweep = sweep_table(results)
    if sweep:
        series = list(sweep.keys())
        counts = sorted({n for v in sweep.values() for n in v})
        rows = []
        for n in counts:
            row = [n]
            for k in series:
                x = sweep[k].get(n)
                row.append(f"{f1(x['ops_per_s'])} ({p99_cell(x['lat'])})" if x else "—")
            rows.append(row)
        w("ops/s (p99 or max of all operations, ms):\n")
        w(table(["clients"] + series, rows))

    # ---- convergence -----------------------------------------------------------------------
    w("## 5. Convergence lag (write in the first region, poll in each other region until visible)\n")
    rows = []
    for system in results["systems"]:
        for run in runs(results, system, "convergence"):
            for region, o in run["result"].get("regions", {}).items():
                lag = o.get("lag_ms", {})
                ow = o.get("over_one_way", {})
                rows.append([system, run["mode"], f"{run['result'].get('from')} → {region}", o.get("one_way_ms", "—"),
                             lag.get("count", 0), f1(lag.get("p50")), p99_cell(lag) if lag.get("count") else "—",
                             (f1(ow.get("p50")) + "x") if ow.get("count") else "—", o.get("not_seen_within_10s", 0)])
    w(table(["system", "mode", "link", "one-way ms", "n", "lag p50", "lag p99", "lag p50 / one-way", "not seen in 10 s"], rows))
    w("etcd's figure is the time until a linearizable read in the other region returns the write (its reads go through "
      "the leader), not replication lag proper.\n")

    # ---- resources -----------------------------------------------------------------------------
    w("## 6. Resources\n")
    w(f"**Cost of one write**: updates only, uniform keys, {WRITERS_NOTE}; per write, over every server "
      "(warm-up writes included, since the servers did that work too). Transport bytes: geokvd's own count of "
      "peer message payloads (geokv_transport_bytes_total, sent, all nodes).\n")
    rows = []
    for system in results["systems"]:
        for run in runs(results, system, "writes"):
            r = run["result"]
            lat = op_summary(run, "*", "update").get("latency_ms", {})
            srv = r.get("server", {})
            rows.append([system, run["mode"], run["clients"], f1(r.get("ops_per_s")), f1(lat.get("p50")),
                         p99_cell(lat) if lat.get("count") else "—",
                         per_op(srv, "cpu_s_per_op", 1e6), per_op(srv, "fsyncs_per_op"),
                         per_op(srv, "wire_bytes_per_op"), per_op(srv, "transport_bytes_per_op"),
                         r.get("ops_failed", 0)])
    w(table(["system", "mode", "clients", "writes/s", "p50", "p99", "CPU µs/write (all servers)", "fsyncs/write",
             "WAN bytes/write", "transport bytes/write", "failed"], rows))
    rows = []
    for system in results["systems"]:
        for run in runs(results, system, "idle"):
            srv = run["result"].get("server", {})
            rows.append([system, f"{run['duration_s']:g}", f1(srv.get("cpu_s")),
                         ", ".join(f"{r} {v:.2f}" for r, v in srv.get("cpu_s_by_server", {}).items())])
    if rows:
        w("**Idle**: after the load, no clients; CPU seconds of the servers over the window.\n")
        w(table(["system", "seconds", "CPU s (all servers)", "CPU s per server"], rows))
    w("**Footprint**:\n")
    rows = []
    for system, sysres in results["systems"].items():
        fp = sysres.get("footprint", {})
        if not fp:
            continue
        rows.append([system, fp.get("keys", "—"), fp.get("replicas", "—"),
                     f1(fp.get("rss_bytes_per_key_per_replica")), f1(fp.get("disk_bytes_per_key_per_replica")),
                     f1(fp["journal_bytes_per_replica"] / 2**20) if fp.get("journal_bytes_per_replica") is not None else "n/a"])
    w(table(["system", "keys at the end", "servers", "RSS bytes/key/server", "disk bytes/key/server",
             "journal MiB/server"], rows))
    w(f"Keys: every key space loaded ({s['records']} records of {s['value_bytes']} bytes each) plus the inserts of "
      "D and E. RSS per key is the growth of the servers' RSS from start to the end of the system's workloads, per key "
      "and server (caches included: with few keys it overstates). Disk per key is measured after a clean stop: "
      "geokv's WiredTiger tables (checkpointed on close), etcd's bbolt db, Redis's append-only file; the journals "
      "(WiredTiger log files, etcd's WAL with its 64 MB preallocation) are given apart, per server. Redis is "
      "unreplicated (one server per region, no WAN traffic); it exports no fsync count. WAN bytes are the bytes sent "
      "on the peer links (TCP payload, both directions).\n")
    ep = results["systems"].get("etcd", {}).get("proxy")
    if ep:
        w(f"etcd's peer links went through the delay proxy: {ep.get('bytes', 0)} bytes, "
          f"{ep.get('connections', 0)} connections ({ep.get('unidentified', 0)} without a sender, not delayed); "
          f"delivery was late against the configured delay by {ep['late_ms_mean']:.2f} ms on average "
          f"(at most {ep.get('late_ms_max', 0):.1f} ms) — etcd's figures carry that much extra delay.\n")

    # ---- ratios ------------------------------------------------------------------------------
    w("## 7. geokv beside each peer (ratio = geokv / peer; below 1 is better for geokv on latency, CPU, bytes, "
      "above 1 on throughput)\n")
    rows = peer_ratios(results)
    if rows:
        w(table(["figure", "geokv", "peer", "peer value", "geokv / peer"], rows))
    else:
        w("No peer ran.\n")

    # ---- errors ----------------------------------------------------------------------------
    w("## 8. Errors by code\n")
    rows = []
    for system, sysres in results["systems"].items():
        for run in sysres.get("runs", []):
            if "error" in run["result"]:
                rows.append([system, run["label"], "STEP FAILED", run["result"]["error"][:120]])
                continue
            for code, n in sorted(errors_of(run).items()):
                rows.append([system, run["label"], code, n])
            if run["result"].get("load_failures"):
                rows.append([system, run["label"], "load failures", run["result"]["load_failures"]])
            if run["result"].get("write_errors"):
                for code, n in run["result"]["write_errors"].items():
                    rows.append([system, run["label"], code, n])
    w(table(["system", "step", "code", "count"], rows) if rows else "No operation failed.\n")

    # ---- capacity ----------------------------------------------------------------------------
    w("## 9. Capacity figures (docs/capacity.md explains how to size a deployment from them)\n")
    rows = capacity_rows(results)
    w(table(["figure", "value", "from"], rows) if rows else "Not enough steps ran for capacity figures.\n")

    if plots:
        w("## Plots\n")
        for p in plots:
            w(f"![{p}]({p})\n")
    return "\n".join(out)


def sweep_table(results):
    out = {}
    for system in results["systems"]:
        for run in runs(results, system, "sweep"):
            k = f"{system} {run['mode']}"
            lat_all = {}
            ops = op_summary(run, "*")
            # p99 over all ops: the larger of read's and update's (a conservative figure).
            best = None
            for op, o in ops.items():
                lat = o.get("latency_ms", {})
                if lat.get("count") and (best is None or lat.get("p99", 0) > best.get("p99", 0)):
                    best = lat
            lat_all = best or {}
            out.setdefault(k, {})[run["clients"]] = {"ops_per_s": run["result"].get("ops_per_s", 0), "lat": lat_all}
    return out


def peer_ratios(results):
    rows = []
    pairs = [("etcd", "strong", "strong"), ("redis", "lww", "lww")]
    g = results["systems"].get("geokv")
    if not g:
        return rows
    for peer, gmode, pmode in pairs:
        if peer not in results["systems"] or "skipped" in results["systems"][peer]:
            continue
        # Latency per region and op.
        gl = next(iter(runs(results, "geokv", "latency", gmode)), None)
        pl = next(iter(runs(results, peer, "latency", pmode)), None)
        if gl and pl:
            for region in results["topology"]["regions"]:
                for op in ("read", "update"):
                    a = op_summary(gl, region, op).get("latency_ms", {})
                    b = op_summary(pl, region, op).get("latency_ms", {})
                    if a.get("count") and b.get("count"):
                        rows.append([f"{region} {op} p50 ms (1 client)", f1(a["p50"]), peer, f1(b["p50"]),
                                     fr(ratio(a["p50"], b["p50"]))])
        # YCSB throughput and per-op costs.
        for grun in runs(results, "geokv", "ycsb", gmode):
            prun = next((r for r in runs(results, peer, "ycsb", pmode)
                         if r["workload"] == grun["workload"] and r["distribution"] == grun["distribution"]), None)
            if not prun:
                continue
            lab = f"YCSB-{grun['workload']} {grun['distribution']}"
            ga, pa = grun["result"], prun["result"]
            rows.append([f"{lab} ops/s", f1(ga.get("ops_per_s")), peer, f1(pa.get("ops_per_s")),
                         fr(ratio(ga.get("ops_per_s"), pa.get("ops_per_s")))])
            for op in OPS:
                a = op_summary(grun, "*", op).get("latency_ms", {})
                b = op_summary(prun, "*", op).get("latency_ms", {})
                if a.get("count") and b.get("count"):
                    rows.append([f"{lab} {op} p50 ms", f1(a["p50"]), peer, f1(b["p50"]), fr(ratio(a["p50"], b["p50"]))])
            for key, name, scale in (("cpu_s_per_op", "CPU µs/op", 1e6), ("fsyncs_per_op", "fsyncs/op", 1),
                                     ("wire_bytes_per_op", "WAN bytes/op", 1)):
                a, b = ga.get("server", {}).get(key), pa.get("server", {}).get(key)
                if a is not None and b is not None:
                    rows.append([f"{lab} {name}", f1(a * scale), peer, f1(b * scale), fr(ratio(a, b))])
        # One write, at each client count both ran.
        for gw in runs(results, "geokv", "writes", gmode):
            pw = next((r for r in runs(results, peer, "writes", pmode) if r["clients"] == gw["clients"]), None)
            if not pw:
                continue
            ga, pa = gw["result"], pw["result"]
            lab = f"updates only, {gw['clients']} clients:"
            rows.append([f"{lab} writes/s", f1(ga.get("ops_per_s")), peer, f1(pa.get("ops_per_s")),
                         fr(ratio(ga.get("ops_per_s"), pa.get("ops_per_s")))])
            for key, name, scale in (("cpu_s_per_op", "CPU µs/write", 1e6), ("fsyncs_per_op", "fsyncs/write", 1),
                                     ("wire_bytes_per_op", "WAN bytes/write", 1)):
                a, b = ga.get("server", {}).get(key), pa.get("server", {}).get(key)
                if a is not None and b is not None:
                    rows.append([f"{lab} {name}", f1(a * scale), peer, f1(b * scale), fr(ratio(a, b))])
        # Sweep.
        sw = sweep_table(results)
        gk, pk = f"geokv {gmode}", f"{peer} {pmode}"
        for n in sorted(set(sw.get(gk, {})) & set(sw.get(pk, {}))):
            a, b = sw[gk][n]["ops_per_s"], sw[pk][n]["ops_per_s"]
            rows.append([f"YCSB-A ops/s, {n} clients", f1(a), peer, f1(b), fr(ratio(a, b))])
        # Footprint.
        gf, pf = g.get("footprint", {}), results["systems"][peer].get("footprint", {})
        for key, name in (("rss_bytes_per_key_per_replica", "RSS bytes/key/server"),
                          ("disk_bytes_per_key_per_replica", "disk bytes/key/server")):
            if gf.get(key) is not None and pf.get(key) is not None:
                rows.append([name, f1(gf[key]), peer, f1(pf[key]), fr(ratio(gf[key], pf[key]))])
    return rows


# ---- plots -----------------------------------------------------------------------------------
def plots(results, out_dir, say):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("plots skipped: matplotlib is not installed (scripts/bootstrap installs python3-matplotlib)")
        return []
    made = []
    regions = results["topology"]["regions"]

    # Latency CDF per region: one panel per op, a line per region (solid geokv, dashed etcd).
    lat_runs = [(s, r) for s in results["systems"] for r in runs(results, s, "latency", "strong")]
    if lat_runs:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, op in zip(axes, ("read", "update")):
            for i, region in enumerate(regions):
                for system, run in lat_runs:
                    lat = op_summary(run, region, op).get("latency_ms", {})
                    if lat.get("quantiles"):
                        ax.plot(lat["quantiles"], [q / 100 for q in range(101)], color=f"C{i}",
                                linestyle="-" if system == "geokv" else "--", label=f"{system} {region}")
            ax.set_xlabel(f"strong {op} latency (ms)")
            ax.set_ylabel("fraction of operations")
            ax.set_title(f"strong {op}, 1 client per region")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "latency_cdf.png"), dpi=110)
        plt.close(fig)
        made.append("latency_cdf.png")

    sw = sweep_table(results)
    if sw:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for k, v in sw.items():
            xs = sorted(v)
            ax.plot(xs, [v[x]["ops_per_s"] for x in xs], marker="o", label=k)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("closed-loop clients (all regions)")
        ax.set_ylabel("operations per second (log scale)")
        ax.set_title("YCSB-A throughput against clients")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "throughput_vs_clients.png"), dpi=110)
        plt.close(fig)
        made.append("throughput_vs_clients.png")

    gl = next(iter(runs(results, "geokv", "latency", "strong")), None)
    if gl:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        labels, p50, p99 = [], [], []
        for region in regions:
            for op in ("read", "update"):
                ob = op_summary(gl, region, op).get("over_bound", {})
                if ob.get("count"):
                    labels.append(f"{region}\n{op}")
                    p50.append(ob["p50"])
                    p99.append(ob["p99"] if ob["count"] >= P99_SAMPLES_MIN else ob["max"])
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50 / bound")
        ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99 / bound (max when < 1000 samples)")
        ax.axhline(1.0, color="k", linewidth=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("latency / physical bound")
        ax.set_title("geokv strong: latency over the physical bound")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "ratio_to_bound.png"), dpi=110)
        plt.close(fig)
        made.append("ratio_to_bound.png")

    for peer in ("etcd", "redis"):
        rows = [r for r in peer_ratios(results) if r[2] == peer and r[4] != "n/a"]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(8, max(3, 0.28 * len(rows) + 1)))
        vals = [float(r[4].rstrip("x")) for r in rows]
        # Green where geokv does better: a higher throughput, a lower everything else.
        good = [(v >= 1) if ("ops/s" in r[0] or "writes/s" in r[0]) else (v <= 1) for v, r in zip(vals, rows)]
        ax.barh(range(len(rows)), vals, color=["C2" if g else "C3" for g in good])
        ax.axvline(1.0, color="k", linewidth=0.8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r[0] for r in rows], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(f"geokv / {peer} (log scale; green: geokv better, red: {peer} better)")
        ax.set_title(f"geokv against {peer}")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"geokv_vs_{peer}.png"), dpi=110)
        plt.close(fig)
        made.append(f"geokv_vs_{peer}.png")
    return made


def capacity_rows(results):
    """Per-core rates, WAN bytes per update, fsyncs, disk and memory per key, for geokv."""
    rows = []
    for mode, what in (("strong", "strong write"), ("lww", "eventual (lww) write")):
        run = writes_run(results, "geokv", mode)
        if not run:
            continue
        srv = run["result"].get("server", {})
        by = srv.get("cpu_s_per_op_by_server") or {}
        if "cpu_s_per_op" in srv and srv["cpu_s_per_op"] > 0:
            rows.append([f"{what}: CPU µs per write, all servers", f1(srv["cpu_s_per_op"] * 1e6), run["label"]])
        if by:
            region, busiest = max(by.items(), key=lambda kv: kv[1])
            if busiest > 0:
                rows.append([f"{what}: writes/s per core of the busiest server ({region})", f1(1 / busiest), run["label"]])
        if "wire_bytes_per_op" in srv:
            rows.append([f"{what}: WAN bytes per write (all links, both directions)", f1(srv["wire_bytes_per_op"]),
                         run["label"]])
        if "fsyncs_per_op" in srv:
            rows.append([f"{what}: fsyncs per write (all servers)", f1(srv["fsyncs_per_op"]), run["label"]])
    c = next((r for r in runs(results, "geokv", "ycsb", "strong") if r["workload"] == "C"), None)
    if c:
        by = c["result"].get("server", {}).get("cpu_s_per_op_by_server") or {}
        if by:
            region, busiest = max(by.items(), key=lambda kv: kv[1])
            if busiest > 0:
                rows.append([f"strong read: reads/s per core of the busiest server ({region})", f1(1 / busiest), c["label"]])
    fp = results["systems"].get("geokv", {}).get("footprint", {})
    if fp.get("disk_bytes_per_key_per_replica") is not None:
        rows.append(["disk bytes per key per replica (tables, after a clean stop)",
                     f1(fp["disk_bytes_per_key_per_replica"]), f"{fp['keys']} keys of {fp['value_bytes']} B"])
        rows.append(["journal MiB per replica", f1(fp["journal_bytes_per_replica"] / 2**20), "WiredTiger log files"])
    if fp.get("rss_bytes_per_key_per_replica") is not None:
        rows.append(["RSS growth bytes per key per replica", f1(fp["rss_bytes_per_key_per_replica"]),
                     f"{fp['keys']} keys; caches included"])
        rows.append(["RSS per replica at start (MiB)", f1(fp["rss_bytes_at_start"] / max(1, fp["replicas"]) / 2**20),
                     "before any key"])
    return rows
