"""Tests of geokv-bench's parsing and reporting (no cluster): topologies, bounds, etcd's
member ids, the report's sample-count rule, and --compare on two fixture directories."""
import os
import tempfile
import unittest

from geokvbench import compare, report, systems, topology

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


class CompareTest(unittest.TestCase):
    def test_fixture_dirs(self):
        c = compare.compare(os.path.join(FIXTURES, "old"), os.path.join(FIXTURES, "new"), 0.10)
        worse = {n for n, *_ in c["worse"]}
        better = {n for n, *_ in c["better"]}
        self.assertIn("geokv strong ycsb A zipfian c=4 ops/s", worse)         # 1000 -> 500
        self.assertIn("geokv strong ycsb A zipfian c=4 * read p50 ms", better)  # 1.0 -> 0.5
        self.assertIn("geokv strong writes ops/s", worse)                       # 200 -> 150
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
