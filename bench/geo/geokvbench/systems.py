"""The systems a run measures: a geokv cluster (one geokvd per region, WAN emulated inside
geokvd's transport), etcd 3.4 (three members behind the delay proxy) and Redis 7 (one
unreplicated server per region, appendfsync always). Each starts on its own ports, waits
until it serves, reports its server pids, data directories and counters, and stops."""
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from . import procs


class StartError(RuntimeError):
    pass


def port_free(port):
    """Whether nothing listens on the port. (A bind test would also refuse ports that only
    have connections in TIME_WAIT, which the servers here bind to without trouble.)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def check_ports(ports, what):
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise StartError(f"{what}: port(s) {', '.join(map(str, busy))} in use (choose another --base-port)")


class Geokv:
    name = "geokv"

    def __init__(self, topo, bindir, workdir, base_port, children, log_level="warn"):
        self.topo, self.bindir, self.dir, self.base = topo, bindir, os.path.join(workdir, "geokv"), base_port
        self.children = children
        self.log_level = log_level
        self.procs = []
        n = len(topo.regions)
        self.peer_ports = [base_port + i for i in range(n)]
        self.client_ports = [base_port + 100 + i for i in range(n)]
        self.metrics_ports = [base_port + 200 + i for i in range(n)]

    def endpoints(self):
        return {r: f"tcp://127.0.0.1:{p}" for r, p in zip(self.topo.regions, self.client_ports)}

    def config(self, i):
        t = self.topo
        lines = [f'data_dir = "{self.dir}/{t.regions[i]}"', "[log]", f'level = "{self.log_level}"', "[node]",
                 f"id = {i}", f'metrics_endpoint = "127.0.0.1:{self.metrics_ports[i]}"', "[cluster]",
                 f"shards = {t.shards}", "request_timeout_ms = 5000",
                 "preferred_leader = [" + ", ".join(f'"{p}"' for p in t.placement) + "]"]
        for j, r in enumerate(t.regions):
            lines += ["[[cluster.nodes]]", f"id = {j}", f'region = "{r}"',
                      f'peer_endpoint = "tcp://127.0.0.1:{self.peer_ports[j]}"',
                      f'client_endpoint = "tcp://127.0.0.1:{self.client_ports[j]}"']
        lines += ["[policy]", 'default = "strong"',
                  'rules = { "lww/" = "lww", "mv/" = "mvreg", "counter/" = "counter", "set/" = "set" }',
                  "[wan]", "enabled = true", f"seed = {i + 1}"]
        links = []
        for r in t.regions:
            if r == t.regions[i]:
                continue
            link = t.links[(t.regions[i], r)]
            links.append(f'"{r}" = {{ delay_ms = {link.delay_ms}, jitter_ms = {link.jitter_ms}, loss = {float(link.loss)} }}')
        lines.append("links = { " + ", ".join(links) + " }")
        return "\n".join(lines) + "\n"

    def start(self):
        geokvd = os.path.join(self.bindir, "geokvd")
        if not os.access(geokvd, os.X_OK):
            raise StartError(f"geokvd not found next to geokv-bench ({geokvd})")
        check_ports(self.peer_ports + self.client_ports + self.metrics_ports, "geokv")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        for i, r in enumerate(self.topo.regions):
            path = os.path.join(self.dir, f"{r}.toml")
            with open(path, "w") as f:
                f.write(self.config(i))
            # Fresh directories of a new cluster: they take part at once (geokvd --new-cluster).
            self.procs.append(self.children.start([geokvd, "--config", path, "--new-cluster"],
                                                  os.path.join(self.dir, f"{r}.log")))
        self.wait_ready()

    def status(self, endpoint):
        try:
            out = subprocess.run([os.path.join(self.bindir, "geokv"), "-e", endpoint, "-t", "1000", "status"],
                                 capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return None
        return out.stdout if out.returncode == 0 else None

    def wait_ready(self, timeout_s=60):
        """Every node answers, and every shard is led by its preferred region."""
        want = {s: self.topo.regions.index(self.topo.placement[s]) for s in range(self.topo.shards)}
        deadline = time.monotonic() + timeout_s
        for r, e in self.endpoints().items():
            while True:
                for p, region in zip(self.procs, self.topo.regions):
                    if p.poll() is not None:
                        raise StartError(f"geokvd for {region} exited; see {self.dir}/{region}.log")
                text = self.status(e) or ""
                leaders = {}
                for line in text.splitlines():
                    if line.startswith("shard ") and "leader=" in line:
                        s = int(line.split()[1].rstrip(":"))
                        leaders[s] = int(line.split("leader=")[1].split()[0])
                if text and "leader=-1" not in text and all(leaders.get(s) == l for s, l in want.items()):
                    break
                if time.monotonic() > deadline:
                    raise StartError(f"geokv: {r} found no leader for every shard within {timeout_s} s "
                                     f"(status: {text.strip()!r})")
                time.sleep(0.1)

    def pids(self):
        return [p.pid for p in self.procs]

    def counters(self):
        """Cumulative counters of all servers: CPU, fsyncs, bytes between regions, errors."""
        m = [procs.scrape(f"http://127.0.0.1:{p}/metrics") for p in self.metrics_ports]
        return {
            "cpu_s": sum(procs.cpu_seconds(p) for p in self.pids()),
            "cpu_s_by_server": {r: procs.cpu_seconds(p) for r, p in zip(self.topo.regions, self.pids())},
            "fsyncs": sum(procs.metric_sum(x, "geokv_storage_syncs_total") for x in m),
            "wire_bytes": procs.tcp_bytes_sent(set(self.peer_ports)),
            # What the transport itself counts (peer message payloads, frame headers excluded);
            # None when a node does not export it.
            "transport_bytes": (sum(x['geokv_transport_bytes_total{dir="sent"}'] for x in m)
                                if all('geokv_transport_bytes_total{dir="sent"}' in x for x in m) else None),
            "server_errors": sum(procs.metric_sum(x, "geokv_request_errors_total") for x in m),
            "metrics_ok": all(m),
        }

    def footprint(self):
        """RSS of all servers, and the largest node's data directory (what du counts)."""
        return {"rss_bytes": sum(procs.rss_bytes(p) for p in self.pids()), "replicas": len(self.procs),
                "data_dir_bytes_max": max(procs.disk_bytes(os.path.join(self.dir, r)) for r in self.topo.regions)}

    def disk_after_stop(self):
        """(table bytes, journal bytes) of every node once stopped (WiredTiger checkpoints on
        a clean close, so the tables then hold every key)."""
        total = [0, 0]
        for r in self.topo.regions:
            d, j = procs.disk_bytes(os.path.join(self.dir, r), journal=lambda f: os.path.basename(f).startswith(
                ("WiredTigerLog", "WiredTigerPreplog", "WiredTigerTmplog")))
            total[0] += d
            total[1] += j
        return tuple(total)

    def stop(self):
        self.children.stop(self.procs)
        self.procs = []


def etcd_member_id(peer_urls, token):
    """etcd's member id (etcdserver/api/membership NewMember, no timestamp)."""
    b = "".join(sorted(peer_urls)).encode() + token.encode()
    return int.from_bytes(hashlib.sha1(b).digest()[:8], "big")


class Etcd:
    name = "etcd"
    token = "geokv-bench"

    def __init__(self, topo, workdir, base_port, children, etcd_bin):
        self.topo, self.dir, self.children, self.bin = topo, os.path.join(workdir, "etcd"), children, etcd_bin
        self.members = topo.etcd_members
        k = len(self.members)
        self.client_ports = [base_port + 300 + i for i in range(k)]
        self.peer_ports = [base_port + 310 + i for i in range(k)]
        self.proxy_ports = [base_port + 320 + i for i in range(k)]
        # Client links from regions without a member, through the proxy (delayed).
        self.remote = [r for r in topo.regions if r not in self.members]
        self.remote_ports = {r: base_port + 340 + i for i, r in enumerate(self.remote)}
        self.procs = []
        self.proxy = None
        self.ids = {}

    @staticmethod
    def find():
        return shutil.which("etcd") or (os.path.exists("/usr/bin/etcd") and "/usr/bin/etcd") or None

    @staticmethod
    def version(binary):
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
            return out.split("\n")[0].split(":")[-1].strip()
        except (OSError, subprocess.TimeoutExpired):
            return None

    def nearest_member(self, region):
        if region in self.members:
            return self.members.index(region)
        return min(range(len(self.members)), key=lambda j: self.topo.applied_rtt_ms(region, self.members[j]))

    def endpoint_for(self, region):
        """Clients in a region talk to the member there, else to the nearest member through
        the delay proxy (so that they pay the WAN round trip to it)."""
        i = self.nearest_member(region)
        if region in self.members:
            return f"http://127.0.0.1:{self.client_ports[i]}", self.members[i]
        return f"http://127.0.0.1:{self.remote_ports[region]}", self.members[i]

    def bound_ms(self, region):
        """A write or a linearizable read (ReadIndex) from `region`: to its member, from the
        member to the leader, and the leader's round to the nearest majority."""
        t, member, leader = self.topo, self.members[self.nearest_member(region)], self.topo.etcd_leader
        return (t.applied_rtt_ms(region, member) + t.applied_rtt_ms(member, leader) +
                t.quorum_rtt_ms(leader, self.members))

    def post(self, port, path, body, timeout_s=5):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return json.loads(r.read() or b"{}")

    def start(self):
        check_ports(self.client_ports + self.peer_ports + self.proxy_ports + list(self.remote_ports.values()), "etcd")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        urls = {f"m{i}": f"http://127.0.0.1:{self.proxy_ports[i]}" for i in range(len(self.members))}
        self.ids = {f"{etcd_member_id([urls[f'm{i}']], self.token):x}": r for i, r in enumerate(self.members)}
        listeners = [{"port": self.proxy_ports[i], "target_port": self.peer_ports[i], "region": r}
                     for i, r in enumerate(self.members)]
        for r, port in self.remote_ports.items():
            i = self.nearest_member(r)
            listeners.append({"port": port, "target_port": self.client_ports[i], "region": self.members[i], "src": r})
        regions = self.topo.regions
        cfg = {"listeners": listeners,
               "members": self.ids,
               "one_way_ms": {a: {b: self.topo.one_way_ms(a, b) for b in regions} for a in regions},
               "jitter_ms": {a: {b: (self.topo.links[(a, b)].jitter_ms if a != b else 0) for b in regions}
                             for a in regions}}
        with open(os.path.join(self.dir, "proxy.json"), "w") as f:
            json.dump(cfg, f)
        self.proxy_stats = os.path.join(self.dir, "proxy-stats.json")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.proxy = self.children.start([sys.executable, "-m", "geokvbench.proxy", os.path.join(self.dir, "proxy.json"),
                                          self.proxy_stats], os.path.join(self.dir, "proxy.log"), env=env)
        deadline = time.monotonic() + 10
        while not all(not port_free(p) for p in self.proxy_ports + list(self.remote_ports.values())):
            if self.proxy.poll() is not None or time.monotonic() > deadline:
                raise StartError(f"etcd: the delay proxy did not start; see {self.dir}/proxy.log")
            time.sleep(0.05)
        initial = ",".join(f"{n}={u}" for n, u in urls.items())
        for i, r in enumerate(self.members):
            argv = [self.bin, "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}"),
                    "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                    "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                    "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                    "--initial-advertise-peer-urls", urls[f"m{i}"],
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", self.token,
                    # Election timing for WAN round trips (etcd's tuning guide: heartbeat about
                    # the largest RTT, election timeout 10x).
                    "--heartbeat-interval", str(max(100, int(max(self.topo.applied_rtt_ms(a, b) for a in self.members
                                                                     for b in self.members)))),
                    "--election-timeout", str(max(1000, 10 * int(max(self.topo.applied_rtt_ms(a, b)
                                                                     for a in self.members for b in self.members)))),
                    "--logger", "zap", "--log-outputs", "stderr"]
            self.procs.append(self.children.start(argv, os.path.join(self.dir, f"m{i}.log")))
        self.wait_ready()

    def status(self, i):
        try:
            return self.post(self.client_ports[i], "/v3/maintenance/status", {}, timeout_s=2)
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        want = self.members.index(self.topo.etcd_leader)
        while True:
            for p, r in zip(self.procs, self.members):
                if p.poll() is not None:
                    raise StartError(f"etcd member in {r} exited; see {self.dir}")
            st = [self.status(i) for i in range(len(self.members))]
            if all(s and s.get("leader") not in (None, "0") for s in st):
                leader_id = int(st[0]["leader"])
                ids = {int(s["header"]["member_id"]): i for i, s in enumerate(st)}
                computed = {int(k, 16) for k in self.ids}
                if set(ids) != computed:
                    raise StartError("etcd: member ids differ from the ones the delay proxy expects "
                                     f"({sorted(ids)} vs {sorted(computed)})")
                if ids.get(leader_id) == want:
                    # A write confirms the cluster serves (the gateway answers before that).
                    self.post(self.client_ports[want], "/v3/kv/put",
                              {"key": base64.b64encode(b"ready").decode(), "value": ""}, timeout_s=10)
                    return
                target = [m for m, i in ids.items() if i == want][0]
                try:
                    self.post(self.client_ports[ids[leader_id]], "/v3/maintenance/transfer-leadership",
                              {"targetID": str(target)}, timeout_s=10)
                except (OSError, ValueError):
                    pass
            if time.monotonic() > deadline:
                raise StartError(f"etcd: no leader in {self.topo.etcd_leader} within {timeout_s} s; see {self.dir}")
            time.sleep(0.2)

    def pids(self):
        return [p.pid for p in self.procs]

    def counters(self):
        m = [procs.scrape(f"http://127.0.0.1:{p}/metrics") for p in self.client_ports]
        return {
            "cpu_s": sum(procs.cpu_seconds(p) for p in self.pids()),
            "cpu_s_by_server": {r: procs.cpu_seconds(p) for r, p in zip(self.members, self.pids())},
            # The WAL fsync and the backend (bbolt) commit each sync the disk.
            "fsyncs": sum(procs.metric_sum(x, "etcd_disk_wal_fsync_duration_seconds_count") +
                          procs.metric_sum(x, "etcd_disk_backend_commit_duration_seconds_count") for x in m),
            "wire_bytes": procs.tcp_bytes_sent(set(self.peer_ports)),
            "server_errors": None,
            "metrics_ok": all(m),
        }

    def proxy_report(self):
        try:
            with open(self.proxy_stats) as f:
                s = json.load(f)
        except (OSError, ValueError, AttributeError):
            return None
        s["late_ms_mean"] = s["late_ms_sum"] / s["chunks"] if s.get("chunks") else 0.0
        return s

    def footprint(self):
        return {"rss_bytes": sum(procs.rss_bytes(p) for p in self.pids()), "replicas": len(self.procs)}

    def disk_after_stop(self):
        """(bbolt db bytes, WAL and snapshot bytes) of the members."""
        total = [0, 0]
        for i in range(len(self.members)):
            d, j = procs.disk_bytes(os.path.join(self.dir, f"m{i}"), journal=lambda f: not f.endswith(os.sep + "db"))
            total[0] += d
            total[1] += j
        return tuple(total)

    def stop(self):
        self.children.stop(self.procs + ([self.proxy] if self.proxy else []))
        self.procs, self.proxy = [], None


class Redis:
    name = "redis"

    def __init__(self, topo, workdir, base_port, children, redis_bin):
        self.topo, self.dir, self.children, self.bin = topo, os.path.join(workdir, "redis"), children, redis_bin
        self.ports = [base_port + 330 + i for i in range(len(topo.regions))]
        self.procs = []

    @staticmethod
    def find():
        return shutil.which("redis-server") or (os.path.exists("/usr/bin/redis-server") and "/usr/bin/redis-server") or None

    @staticmethod
    def version(binary):
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
            return out.split("v=")[1].split()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    def endpoints(self):
        return {r: f"127.0.0.1:{p}" for r, p in zip(self.topo.regions, self.ports)}

    def start(self):
        check_ports(self.ports, "redis")
        shutil.rmtree(self.dir, ignore_errors=True)
        for i, r in enumerate(self.topo.regions):
            d = os.path.join(self.dir, r)
            os.makedirs(d)
            argv = [self.bin, "--port", str(self.ports[i]), "--bind", "127.0.0.1", "--dir", d,
                    "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                    "--protected-mode", "no", "--logfile", ""]
            self.procs.append(self.children.start(argv, os.path.join(self.dir, f"{r}.log")))
        deadline = time.monotonic() + 20
        for i, port in enumerate(self.ports):
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(64).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if self.procs[i].poll() is not None or time.monotonic() > deadline:
                    raise StartError(f"redis in {self.topo.regions[i]} did not start; see {self.dir}")
                time.sleep(0.05)

    def pids(self):
        return [p.pid for p in self.procs]

    def counters(self):
        return {"cpu_s": sum(procs.cpu_seconds(p) for p in self.pids()),
                "cpu_s_by_server": {r: procs.cpu_seconds(p) for r, p in zip(self.topo.regions, self.pids())},
                "fsyncs": None,
                "wire_bytes": None, "server_errors": None, "metrics_ok": True}

    def footprint(self):
        return {"rss_bytes": sum(procs.rss_bytes(p) for p in self.pids()), "replicas": len(self.procs)}

    def disk_after_stop(self):
        """(append-only file bytes, 0): Redis's AOF is both its data and its journal."""
        return sum(procs.disk_bytes(os.path.join(self.dir, r)) for r in self.topo.regions), 0

    def stop(self):
        self.children.stop(self.procs)
        self.procs = []
