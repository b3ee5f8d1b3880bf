"""Process bookkeeping: start children in their own process groups, stop exactly those,
and read what the kernel knows about them (CPU, RSS, socket bytes)."""
import os
import re
import signal
import socket
import struct
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Children:
    """Every process the suite starts, so that all of them stop however the run ends."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log_path, env=None, cwd=None):
        log = open(log_path, "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=cwd, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def stop(self, procs=None, grace_s=10.0):
        targets = [p for p in (procs if procs is not None else self.procs) if p.poll() is None]
        for p in targets:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        for p in targets:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if procs is None:
            self.procs = []
        else:
            self.procs = [p for p in self.procs if p not in procs]


def cpu_seconds(pid):
    """utime + stime of a process (its threads included), or 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def disk_bytes(path, journal=None):
    """Bytes allocated on disk under path (what du counts). With `journal` (a predicate on
    a file's path), returns (data bytes, journal bytes) instead."""
    data = log = 0
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                n = os.lstat(full).st_blocks * 512
            except OSError:
                continue
            if journal is not None and journal(full):
                log += n
            else:
                data += n
    return (data, log) if journal is not None else data + log


_BYTES_SENT = re.compile(r"bytes_sent:(\d+)")


def tcp_bytes_sent(ports):
    """Bytes sent by every established loopback TCP socket with an end on one of `ports`
    (ss's tcp_info). Counting the sender side of each socket counts each direction once."""
    try:
        out = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    total = 0
    lines = out.splitlines()
    current = None
    for line in lines:
        if not line.startswith((" ", "\t")):
            parts = line.split()
            ends = [p for p in parts if ":" in p][:2]
            current = set()
            for e in ends:
                try:
                    current.add(int(e.rsplit(":", 1)[1]))
                except ValueError:
                    pass
            m = _BYTES_SENT.search(line)
        else:
            m = _BYTES_SENT.search(line)
        if m and current is not None and current & ports:
            total += int(m.group(1))
            current = None
    return total


def http_get(host, port, path, timeout_s=3):
    """The body of a GET, or None. The server closes first (HTTP/1.0); the connection is then
    reset rather than closed, so that the server's port is not left in TIME_WAIT: a server
    that binds without SO_REUSEADDR (geokvd's metrics endpoint) could not be started on it
    again for a minute, and neither could the next run."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        return None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        return None
    return body.decode("utf-8", "replace")


def scrape(url, timeout_s=3):
    """A Prometheus text page (http://host:port/path) as {name{labels}: value}; {} when
    unreachable."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    text = http_get(host, int(port), "/" + path, timeout_s)
    if text is None:
        return {}
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        except ValueError:
            continue
    return out


def metric_sum(samples, name):
    """Sum of a metric over its labels."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def machine_load():
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return {"loadavg_1m": float(one), "loadavg_5m": float(five), "loadavg_15m": float(fifteen),
            "cpus": os.cpu_count()}
