"""The workloads of a run: YCSB core workloads A-F, the per-region latency workload, the
throughput sweep, convergence, and the plan (what runs, in which order, for how long) of
--quick and of the default run."""
import dataclasses

# YCSB core workloads (Cooper et al., SoCC 2010; the workloads/ files of YCSB). E's scans are
# at most scan_length_max records (YCSB's default is 100; shortened to keep the run short).
YCSB = {
    "A": {"mix": {"read": 0.5, "update": 0.5}, "distribution": "zipfian", "what": "update heavy"},
    "B": {"mix": {"read": 0.95, "update": 0.05}, "distribution": "zipfian", "what": "read mostly"},
    "C": {"mix": {"read": 1.0}, "distribution": "zipfian", "what": "read only"},
    "D": {"mix": {"read": 0.95, "insert": 0.05}, "distribution": "latest", "what": "read latest"},
    "E": {"mix": {"scan": 0.95, "insert": 0.05}, "distribution": "zipfian", "what": "short ranges"},
    "F": {"mix": {"read": 0.5, "rmw": 0.5}, "distribution": "zipfian", "what": "read-modify-write"},
}

# "U": updates only (the per-write costs: CPU, fsyncs and WAN bytes of one write).
YCSB["U"] = {"mix": {"update": 1.0}, "distribution": "uniform", "what": "updates only"}

# Key prefixes select the mode through the policy geokv-bench configures.
PREFIX = {"strong": "y/", "lww": "lww/y/", "mvreg": "mv/y/", "counter": "counter/y/", "set": "set/y/"}


def key_bytes(mode):
    """Length of a workload key: the prefix, then "user" and 16 hex digits (loadgen.cc, KeyName)."""
    return len(PREFIX[mode]) + len("user") + 16
CRDT_MODES = ["lww", "mvreg", "counter", "set"]


@dataclasses.dataclass
class Step:
    system: str            # geokv | etcd | redis
    kind: str              # load | idle | latency | ycsb | sweep | writes | convergence
    mode: str              # strong | lww | mvreg | counter | set
    workload: str          # A..F, or "latency" (A's mix, uniform keys, 1 client per region)
    distribution: str
    clients: int           # per region (latency, ycsb), in total (sweep), in the leader's region (writes)
    duration_s: float
    warmup_s: float
    samples: int = 0       # convergence

    @property
    def label(self):
        if self.kind == "load":
            return f"{self.system} {self.mode}: load"
        if self.kind == "idle":
            return f"{self.system}: idle {self.duration_s:g} s, no clients"
        if self.kind == "convergence":
            return f"{self.system} {self.mode}: convergence, {self.samples} writes"
        if self.kind == "sweep":
            return f"{self.system} {self.mode}: YCSB-{self.workload} {self.clients} clients"
        if self.kind == "writes":
            return (f"{self.system} {self.mode}: updates only, {self.clients} client{'s' if self.clients != 1 else ''} "
                    "in the leader's region")
        if self.kind == "latency":
            return f"{self.system} {self.mode}: latency, 1 client per region"
        return f"{self.system} {self.mode}: YCSB-{self.workload} {self.distribution}, {self.clients} clients/region"

    def estimate_s(self):
        if self.kind == "load":
            return 4
        if self.kind == "convergence":
            return self.samples * 0.5
        if self.kind == "idle":
            return self.duration_s
        return self.warmup_s + self.duration_s + 1


@dataclasses.dataclass
class Profile:
    name: str
    records: int
    value_bytes: int
    warmup_s: float
    latency_s: float            # strong latency workload
    crdt_latency_s: float
    ycsb_s: float
    ycsb_clients: int           # per region
    strong_workloads: list
    crdt_workloads: list
    uniform_workloads: list
    sweep: list
    sweep_s: float
    convergence_samples: int
    writes_s: float             # updates only, from the leader's region: cost per write
    writes_clients: list        # closed-loop writers of the "writes" step, one step each
    idle_s: float               # the idle step: no clients, server CPU only
    redis_modes: list
    crdt_latency_modes: list


QUICK = Profile("quick", records=1000, value_bytes=100, warmup_s=1, latency_s=5, crdt_latency_s=2.5, ycsb_s=2,
                ycsb_clients=4, strong_workloads=["A", "C"], crdt_workloads=["A"], uniform_workloads=[],
                sweep=[1, 64], sweep_s=2, convergence_samples=10, writes_s=4, writes_clients=[1, 64], idle_s=5,
                redis_modes=["lww"], crdt_latency_modes=["lww"])
DEFAULT = Profile("default", records=5000, value_bytes=100, warmup_s=2, latency_s=36, crdt_latency_s=8, ycsb_s=10,
                  ycsb_clients=8, strong_workloads=list("ABCDEF"), crdt_workloads=["A", "B"],
                  uniform_workloads=["A"], sweep=[1, 4, 16, 64, 256], sweep_s=6, convergence_samples=30, writes_s=5,
                  writes_clients=[1, 64], idle_s=20,
                  redis_modes=["lww", "counter", "set"], crdt_latency_modes=CRDT_MODES)


def plan(profile, systems):
    """The steps of a run, grouped by system (one system runs at a time)."""
    p = profile
    steps = []
    if "geokv" in systems:
        for mode in ["strong"] + CRDT_MODES:
            steps.append(Step("geokv", "load", mode, "", "", 0, 0, 0))
        steps.append(Step("geokv", "idle", "", "", "", 0, p.idle_s, 0))
        steps.append(Step("geokv", "latency", "strong", "latency", "uniform", 1, p.latency_s, p.warmup_s))
        for mode in p.crdt_latency_modes:
            steps.append(Step("geokv", "latency", mode, "latency", "uniform", 1, p.crdt_latency_s, p.warmup_s))
        for w in p.strong_workloads:
            steps.append(Step("geokv", "ycsb", "strong", w, YCSB[w]["distribution"], p.ycsb_clients, p.ycsb_s, p.warmup_s))
        for w in p.uniform_workloads:
            steps.append(Step("geokv", "ycsb", "strong", w, "uniform", p.ycsb_clients, p.ycsb_s, p.warmup_s))
        for mode in CRDT_MODES:
            for w in p.crdt_workloads:
                steps.append(Step("geokv", "ycsb", mode, w, YCSB[w]["distribution"], p.ycsb_clients, p.ycsb_s, p.warmup_s))
        for mode in ["strong", "lww"]:
            for n in p.sweep:
                steps.append(Step("geokv", "sweep", mode, "A", "zipfian", n, p.sweep_s, p.warmup_s))
        for mode in ["strong", "lww"]:
            for n in p.writes_clients:
                steps.append(Step("geokv", "writes", mode, "U", "uniform", n, p.writes_s, p.warmup_s))
        for mode in ["lww", "counter"]:
            steps.append(Step("geokv", "convergence", mode, "", "", 1, 0, 0, p.convergence_samples))
    if "etcd" in systems:
        steps.append(Step("etcd", "load", "strong", "", "", 0, 0, 0))
        steps.append(Step("etcd", "idle", "", "", "", 0, p.idle_s, 0))
        steps.append(Step("etcd", "latency", "strong", "latency", "uniform", 1, p.latency_s, p.warmup_s))
        for w in p.strong_workloads:
            steps.append(Step("etcd", "ycsb", "strong", w, YCSB[w]["distribution"], p.ycsb_clients, p.ycsb_s, p.warmup_s))
        for n in p.sweep:
            steps.append(Step("etcd", "sweep", "strong", "A", "zipfian", n, p.sweep_s, p.warmup_s))
        for n in p.writes_clients:
            steps.append(Step("etcd", "writes", "strong", "U", "uniform", n, p.writes_s, p.warmup_s))
        steps.append(Step("etcd", "convergence", "strong", "", "", 1, 0, 0, p.convergence_samples))
    if "redis" in systems:
        for mode in p.redis_modes:
            steps.append(Step("redis", "load", mode, "", "", 0, 0, 0))
        for mode in p.redis_modes:
            steps.append(Step("redis", "latency", mode, "latency", "uniform", 1, p.crdt_latency_s, p.warmup_s))
        for mode in p.redis_modes:
            for w in p.crdt_workloads:
                steps.append(Step("redis", "ycsb", mode, w, YCSB[w]["distribution"], p.ycsb_clients, p.ycsb_s, p.warmup_s))
        for n in p.sweep:
            steps.append(Step("redis", "sweep", "lww", "A", "zipfian", n, p.sweep_s, p.warmup_s))
        for n in p.writes_clients:
            steps.append(Step("redis", "writes", "lww", "U", "uniform", n, p.writes_s, p.warmup_s))
    return steps
