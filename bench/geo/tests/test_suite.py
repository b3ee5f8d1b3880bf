"""Tests of geokv-bench's parsing and reporting (no cluster): topologies, bounds, etcd's
member ids, the report's sample-count rule, the goals of issue 9 on synthetic results, and
--compare on two fixture directories."""
import copy
import os
import tempfile
import unittest

from geokvbench import compare, goals, report, systems, topology

HERE = os.path.dirname(os.path.abspath(__file__))
PRESETS = os.path.join(HERE, "..", "topologies")
FIXTURES = os.path.join(HERE, "fixtures")


class TopologyTest(unittest.TestCase):
    def test_presets_round_trip(self):
        for name in ("aws-3", "aws-5"):
            t = topology.load(os.path.join(PRESETS, name + ".toml"))
            self.assertEqual(topology.parse(topology.dumps(t)), t, name)

    def test_applied_delays_are_half_rtt_rounded(self):
        t = topology.load(os.path.join(PRESETS, "aws-3.toml"))
        self.assertEqual(t.one_way_ms("us-east", "eu-west"), 40)       # 80.6 / 2 = 40.3
        self.assertEqual(t.one_way_ms("eu-west", "ap-northeast"), 106)  # 212.4 / 2 = 106.2
        self.assertEqual(t.applied_rtt_ms("us-east", "ap-northeast"), 146)  # 2 * round(72.65)
        self.assertEqual(t.one_way_ms("us-east", "us-east"), 0)

    def test_bounds_three_regions(self):
        t = topology.load(os.path.join(PRESETS, "aws-3.toml"))
        # Leader us-east; nearest majority (itself + eu-west) is one 80 ms round trip away.
        self.assertEqual(t.write_bound_ms("us-east", "us-east"), 80)
        self.assertEqual(t.write_bound_ms("eu-west", "us-east"), 160)
        self.assertEqual(t.write_bound_ms("ap-northeast", "us-east"), 146 + 80)
        self.assertEqual(t.read_bound_ms("ap-northeast", "us-east"), 146)
        self.assertEqual(t.read_bound_ms("us-east", "us-east"), 0)

    def test_bounds_five_regions_need_two_acks(self):
        t = topology.load(os.path.join(PRESETS, "aws-5.toml"))
        # From us-east: us-west 72, eu-west 80, us-west-2 88, ap-northeast 146: a majority of
        # five is three, so the second nearest (80) decides.
        self.assertEqual(t.quorum_rtt_ms("us-east"), 80)
        self.assertEqual(t.write_bound_ms("us-west-2", "us-east"), 88 + 80)
        # etcd's three members: us-east, us-west, eu-west: one ack, the nearest.
        self.assertEqual(t.quorum_rtt_ms("us-east", t.etcd_members), 72)

    def test_user_matrix_with_link_overrides(self):
        text = """
regions = ["a", "b", "c", "d", "e"]
rtt_ms = [[0, 10, 20, 30, 40], [10, 0, 15, 25, 35], [20, 15, 0, 5, 45], [30, 25, 5, 0, 50], [40, 35, 45, 50, 0]]
jitter_ms = 2
[[links]]
between = ["a", "e"]
jitter_ms = 7
loss = 0.01
[leaders]
shards = 3
placement = ["c", "a"]
"""
        t = topology.parse(text)
        self.assertEqual(t.links[("e", "a")].jitter_ms, 7)
        self.assertEqual(t.links[("a", "e")].loss, 0.01)
        self.assertEqual(t.links[("a", "b")].jitter_ms, 2)
        self.assertEqual(t.placement, ["c", "a", "c"])
        self.assertEqual(t.etcd_members, ["a", "b", "c"])
        self.assertEqual(t.write_bound_ms("e", "c"), 46 + 16)  # c's majority: c, d (6), b (16)
        self.assertEqual(topology.parse(topology.dumps(t)), t)

    def test_bad_topologies_say_what_is_wrong(self):
        cases = {
            'regions = ["a", "b"]\nrtt_ms = [[0, 1]]': "2x2 matrix",
            'regions = ["a", "b"]\nrtt_ms = [[1, 1], [1, 0]]': "must be 0",
            'regions = ["a", "b"]\nrtt_ms = [[0, -1], [1, 0]]': "[0, 60000]",
            'regions = ["a", "a"]\nrtt_ms = [[0, 1], [1, 0]]': "repeat",
            'regions = ["a", "b"]\nrtt_ms = [[0, 1], [1, 0]]\nloss = 2.0': "loss",
            'regions = ["a", "b"]\nrtt_ms = [[0, 1], [1, 0]]\nspeed = 1': "unknown key 'speed'",
            'regions = ["a", "b"]\nrtt_ms = [[0, 1], [1, 0]]\n[leaders]\nplacement = ["z"]': "placement",
            'regions = ["a", "b"]\nrtt_ms = [[0, "x"], [1, 0]]': "number",
            'regions = [': "not TOML",
        }
        for text, message in cases.items():
            with self.assertRaises(topology.TopologyError, msg=text) as cm:
                topology.parse(text)
            self.assertIn(message, str(cm.exception), text)


class EtcdTest(unittest.TestCase):
    def test_member_id_follows_etcds_rule(self):
        # sha1 over the sorted peer URLs and the cluster token, first 8 bytes big-endian.
        import hashlib
        want = int.from_bytes(hashlib.sha1(b"http://127.0.0.1:1http://127.0.0.1:2tok").digest()[:8], "big")
        self.assertEqual(systems.etcd_member_id(["http://127.0.0.1:2", "http://127.0.0.1:1"], "tok"), want)
        self.assertNotEqual(systems.etcd_member_id(["http://127.0.0.1:1"], "tok"),
                            systems.etcd_member_id(["http://127.0.0.1:1"], "other"))


class ReportTest(unittest.TestCase):
    def test_p99_needs_a_thousand_samples(self):
        self.assertEqual(report.p99_cell({"count": 999, "p99": 5.0, "max": 7.0}), "max of 999: 7.00")
        self.assertEqual(report.p99_cell({"count": 1000, "p99": 5.0, "max": 7.0}), "5.00")
        self.assertEqual(report.p99_cell({"count": 0}), "—")

    def test_markdown_of_a_fixture(self):
        r = compare.load(os.path.join(FIXTURES, "old"))
        md = report.markdown(r, [])
        self.assertIn("max of 999: 300", md)   # update: too few samples for a p99
        self.assertIn("| TIMEOUT | 2 |", md)     # errors are counted by code
        self.assertIn("warm-up", md)
        self.assertIn("a → b", md)               # convergence row
        # Capacity: the busiest server spends 400 µs per strong write: 2500 writes/s per core.
        self.assertIn("| strong write: writes/s per core of the busiest server (a) | 2500 |", md)
        self.assertIn("| strong write: WAN bytes per write (all links, both directions) | 700 |", md)


def writes(mode, clients, ops_per_s, p50=10.0, p99=50.0, count=2000, **server):
    return {"kind": "writes", "mode": mode, "clients": clients, "label": f"{mode} writes {clients}",
            "result": {"ops_per_s": ops_per_s, "server": server,
                       "regions": {"*": {"update": {"latency_ms": {"count": count, "p50": p50, "p99": p99}}}}}}


def idle(cpu_s):
    return {"kind": "idle", "mode": "", "clients": 0, "label": "idle", "result": {"server": {"cpu_s": cpu_s}}}


def synthetic_results():
    """Every figure the goals read, with known ratios (docs/bench.md, results.json)."""
    latency = {"kind": "latency", "mode": "strong", "clients": 1, "label": "strong latency", "result": {"regions": {
        "a": {"update": {"over_bound": {"count": 50, "p50": 1.02}}},
        "b": {"update": {"over_bound": {"count": 50, "p50": 1.10}}}}}}
    return {
        "topology": {"regions": ["a", "b", "c"]},
        "settings": {"value_bytes": 100, "key_bytes": {"lww": 26, "strong": 22}, "idle_s": 5},
        "peers": {"etcd": "/usr/bin/etcd 3.4", "redis": "/usr/bin/redis-server 7"},
        "command": "geokv-bench --quick --topology aws-3",
        "systems": {
            "geokv": {"footprint": {"data_dir_bytes_at_start_max": 50 * 2**20}, "runs": [
                idle(0.5), latency,
                writes("strong", 1, 10.0, cpu_s_per_op=1e-3),
                writes("strong", 64, 3000.0, p99=80.0, count=999, cpu_s_per_op=1e-4),
                writes("lww", 1, 900.0, p50=1.0),
                writes("lww", 64, 5000.0, transport_bytes_per_op=300.0)]},
            "etcd": {"runs": [idle(0.4), writes("strong", 1, 12.0), writes("strong", 64, 900.0, p99=90.0,
                                                                            cpu_s_per_op=4e-4)]},
            "redis": {"runs": [writes("lww", 1, 1000.0, p50=1.2), writes("lww", 64, 4000.0)]},
        },
        "storage_bench": {"command": "storage_bench", "benchmarks": {
            "RawPut/0/min_time:1.000/real_time": {"items_per_second": 287.0},
            "StoragePut/0/min_time:1.000/real_time": {"items_per_second": 290.0},
            "RawPut/1/min_time:1.000/real_time": {"items_per_second": 125000.0},
            "StoragePut/1/min_time:1.000/real_time": {"items_per_second": 84000.0},
            "RawPut/2/min_time:1.000/real_time": {"items_per_second": 200000.0},
            "StoragePut/2/min_time:1.000/real_time": {"items_per_second": 180000.0},
            "RawPut/0/min_time:1.000/real_time/threads:16": {"items_per_second": 1.0},
            "RawGet/min_time:1.000": {"items_per_second": 2e6},
            "StorageGet/min_time:1.000": {"items_per_second": 1.3e6}}},
    }


class GoalsTest(unittest.TestCase):
    def by_id(self, results):
        return {g["id"]: g for g in goals.compute(results)}

    def test_met_and_not_met_from_the_figures(self):
        g = self.by_id(synthetic_results())
        want = {"1a": "met",          # 3000 / 900 = 3.33 >= 3
                "1b": "not met",      # 10 / 12 < 1
                "3": "met",           # 1e-4 / 4e-4 = 0.25 <= 1/3
                "4a": "met",          # 5000 / 4000
                "4b": "met",          # p50 1.0 / 1.2
                "5a": "met",          # 290 / 287
                "5b": "not met",      # 84000 / 125000 = 0.67 < 0.87
                "5c": "met",          # 0.9
                "5d": "not met",      # 0.65
                "6": "met",           # 300 / ((26 + 100) x 2) = 1.19 <= 1.5
                "7": "not met",       # 0.5 / 0.4
                "8": "met",           # 50 MiB <= 64 MiB
                "9": "not met"}       # the worst region, b: 1.10 > 1.05
        self.assertEqual({k: g[k]["status"] for k in want}, want)
        self.assertAlmostEqual(g["1a"]["ratio"], 3000 / 900)
        self.assertEqual(g["6"]["baseline_value"], 252)
        self.assertAlmostEqual(g["9"]["geokv"], 1.10)
        self.assertIn("b", g["9"]["goal"])
        self.assertEqual(goals.ratio_text(1.0512), "1.051x")  # just past 1.05: not printed as 1.05
        self.assertEqual(g["1a"]["command"], "geokv-bench --quick --topology aws-3 --peers etcd")
        self.assertIn("--benchmark_filter='^(Raw|Storage)Put/1/", g["5b"]["command"])

    def test_a_p99_of_too_few_samples_is_not_measured(self):
        g = self.by_id(synthetic_results())["2"]
        self.assertEqual(g["status"], "not measured")
        self.assertIn("999", g["why"])
        self.assertIsNone(g["ratio"])

    def test_missing_data_is_not_measured_with_the_reason(self):
        r = synthetic_results()
        r["storage_bench"] = {"error": "storage_bench not found"}
        r["systems"]["redis"] = {"skipped": "port in use", "runs": []}
        del r["systems"]["etcd"]
        r["peers"]["etcd"] = "not requested"
        r["systems"]["geokv"]["runs"] = [x for x in r["systems"]["geokv"]["runs"]
                                         if not (x["kind"] == "writes" and x["mode"] == "lww" and x["clients"] == 64)]
        g = self.by_id(r)
        for gid in ("5a", "5b", "5c", "5d"):
            self.assertEqual(g[gid]["status"], "not measured")
            self.assertEqual(g[gid]["why"], "storage_bench not found")
        self.assertIn("etcd did not run (not requested)", g["1a"]["why"])
        self.assertIn("redis did not start: port in use", g["4b"]["why"])
        self.assertIn("no geokv writes step (lww) at 64", g["6"]["why"])
        self.assertEqual(g["8"]["status"], "met")   # geokv-only goals still count
        self.assertTrue(all(x["ratio"] is None for x in g.values() if x["status"] == "not measured"))

    def test_a_failed_step_or_a_zero_baseline_is_not_measured(self):
        r = synthetic_results()
        r["systems"]["geokv"]["runs"][0]["result"] = {"error": "the load generator did not finish"}
        r["systems"]["geokv"]["runs"].append(idle(0.1))  # the first idle step counts, not a later one
        r["systems"]["etcd"]["runs"][1]["result"]["ops_per_s"] = 0
        del r["systems"]["geokv"]["runs"][5]["result"]["server"]["transport_bytes_per_op"]
        g = self.by_id(r)
        self.assertIn("failed: the load generator", g["7"]["why"])
        self.assertEqual(g["1b"]["why"], "etcd's figure is 0")
        self.assertIn("geokv_transport_bytes_total", g["6"]["why"])

    def test_report_and_summary_show_every_goal(self):
        r = synthetic_results()
        r["goals"] = goals.compute(r)
        lines = goals.summary(r["goals"])
        self.assertIn("8 met, 5 not met, 1 not measured", lines[0])
        self.assertEqual(len(lines), 1 + len(r["goals"]))
        self.assertTrue(any("NOT MET" in x and x.lstrip().startswith("1b") for x in lines))
        fixture = compare.load(os.path.join(FIXTURES, "old"))
        md = report.markdown(dict(copy.deepcopy(fixture), goals=r["goals"]), [])
        self.assertIn("## " + goals.TITLE, md)
        self.assertIn("| 1a. strong writes/s, 64 clients (updates only) | 3000 ops/s | etcd: 900 ops/s | 3.333x | ≥ 3x "
                      "| met | `geokv-bench --quick --topology aws-3 --peers etcd` |", md)
        self.assertIn("Not computed", report.markdown(fixture, []))


class CompareTest(unittest.TestCase):
    def test_fixture_dirs(self):
        c = compare.compare(os.path.join(FIXTURES, "old"), os.path.join(FIXTURES, "new"), 0.10)
        worse = {n for n, *_ in c["worse"]}
        better = {n for n, *_ in c["better"]}
        self.assertIn("geokv strong ycsb A zipfian c=4 ops/s", worse)         # 1000 -> 500
        self.assertIn("geokv strong ycsb A zipfian c=4 * read p50 ms", better)  # 1.0 -> 0.5
        self.assertIn("geokv strong writes c=16 ops/s", worse)                  # 200 -> 150
        # The update p99 has 999 samples in the old run: not a figure there, so only new.
        self.assertIn("geokv strong ycsb A zipfian c=4 * update p99 ms", c["only_new"])
        self.assertTrue(any("convergence" in n for n in c["only_old"]))
        self.assertNotIn("geokv strong ycsb A zipfian c=4 CPU s/op", worse | better)  # unchanged
        text = compare.render(c)
        self.assertIn("WORSE (", text)
        self.assertIn("-50%", text)

    def test_a_directory_without_results_fails(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(OSError):
                compare.compare(d, os.path.join(FIXTURES, "new"))


if __name__ == "__main__":
    unittest.main()
