"""--compare: what got better or worse between two results directories.

Figures are flattened to named values with a direction (higher or lower is better); a
change is reported when it moves by more than the threshold (relative). Figures present in
only one run are listed as such, so that a step that stopped running does not go unseen.
"""
import json
import os

from . import report


def load(path):
    p = os.path.join(path, "results.json") if os.path.isdir(path) else path
    with open(p) as f:
        r = json.load(f)
    if r.get("schema_version") != 1:
        raise ValueError(f"{p}: schema_version {r.get('schema_version')} is not 1")
    return r


def figures(results):
    """{name: (value, better)} where better is 'higher' or 'lower'."""
    out = {}
    for system, sysres in results["systems"].items():
        for run in sysres.get("runs", []):
            res = run["result"]
            if "error" in res or run["kind"] == "load":
                continue
            if run["kind"] == "idle":
                if "cpu_s" in res.get("server", {}):
                    out[f"{system} idle CPU s"] = (res["server"]["cpu_s"], "lower")
                continue
            base = f"{system} {run['mode']} {run['kind']}"
            if run["kind"] in ("ycsb", "sweep"):
                base += f" {run['workload']} {run['distribution']} c={run['clients']}"
            elif run["kind"] == "writes":
                base += f" c={run['clients']}"
            if run["kind"] == "convergence":
                for region, o in res.get("regions", {}).items():
                    lag = o.get("lag_ms", {})
                    if lag.get("count"):
                        out[f"{base} {region} lag p50 ms"] = (lag["p50"], "lower")
                continue
            out[f"{base} ops/s"] = (res.get("ops_per_s", 0), "higher")
            out[f"{base} failed ops"] = (res.get("ops_failed", 0), "lower")
            for key, name in (("cpu_s_per_op", "CPU s/op"), ("fsyncs_per_op", "fsyncs/op"),
                              ("wire_bytes_per_op", "WAN bytes/op"), ("transport_bytes_per_op", "transport bytes/op")):
                if key in res.get("server", {}):
                    out[f"{base} {name}"] = (res["server"][key], "lower")
            for region, ops in res.get("regions", {}).items():
                if run["kind"] != "latency" and region != "*":
                    continue
                for op, o in ops.items():
                    lat = o.get("latency_ms", {})
                    if not lat.get("count"):
                        continue
                    out[f"{base} {region} {op} p50 ms"] = (lat["p50"], "lower")
                    if lat["count"] >= report.P99_SAMPLES_MIN:
                        out[f"{base} {region} {op} p99 ms"] = (lat["p99"], "lower")
        fp = sysres.get("footprint", {})
        for key in ("rss_bytes_per_key_per_replica", "disk_bytes_per_key_per_replica"):
            if fp.get(key) is not None:
                out[f"{system} {key}"] = (fp[key], "lower")
    return out


def compare(old_dir, new_dir, threshold=0.10):
    old, new = figures(load(old_dir)), figures(load(new_dir))
    better, worse, same = [], [], 0
    for name in sorted(set(old) & set(new)):
        a, direction = old[name]
        b, _ = new[name]
        if a == b:
            same += 1
            continue
        change = (b - a) / abs(a) if a else float("inf")
        if abs(change) <= threshold:
            same += 1
            continue
        improved = (b > a) == (direction == "higher")
        (better if improved else worse).append((name, a, b, change))
    return {"old": old_dir, "new": new_dir, "threshold": threshold, "better": better, "worse": worse,
            "unchanged": same, "only_old": sorted(set(old) - set(new)), "only_new": sorted(set(new) - set(old))}


def render(c):
    lines = [f"geokv-bench --compare: {c['old']} -> {c['new']} (changes beyond {c['threshold'] * 100:.0f}%)"]
    for title, rows in (("WORSE", c["worse"]), ("BETTER", c["better"])):
        lines.append(f"{title} ({len(rows)}):")
        for name, a, b, change in sorted(rows, key=lambda r: -abs(r[3]) if r[3] != float("inf") else -1e18):
            pct = "new" if change == float("inf") else f"{change * 100:+.0f}%"
            lines.append(f"  {name}: {a:.4g} -> {b:.4g} ({pct})")
    lines.append(f"unchanged within the threshold: {c['unchanged']}")
    if c["only_old"]:
        lines.append(f"only in the old run ({len(c['only_old'])}): " + "; ".join(c["only_old"][:20]))
    if c["only_new"]:
        lines.append(f"only in the new run ({len(c['only_new'])}): " + "; ".join(c["only_new"][:20]))
    return "\n".join(lines)
