"""A user-space WAN delay proxy for etcd's peer links (the kernel here has no netem).

One listening port per etcd member stands in front of its real peer port. A connection's
sender is found from the X-Server-From header etcd's rafthttp puts on every peer request
(its member id); both directions of that connection are then delayed by the topology's
one-way delay between the sender's and the member's regions (plus jitter, order kept).
Connections without the header (etcd's prober) get no delay and are counted. Clients in a
region without a member reach the nearest member through a listener with a fixed source
region ("src"), delayed the same way.

  python3 -m geokvbench.proxy CONFIG.json STATS.json
CONFIG: {"listeners": [{"port", "target_port", "region", "src"?}], "members": {id_hex: region},
         "one_way_ms": {a: {b: ms}}, "jitter_ms": {a: {b: ms}}}
STATS (rewritten every second): bytes per direction, identified and unidentified
connections, and how late delivery was against its due time (the proxy's own error).
"""
import asyncio
import json
import random
import re
import signal
import sys
import time

_FROM = re.compile(rb"\r\nX-Server-From: ([0-9a-fA-F]+)\r\n", re.IGNORECASE)

stats = {"bytes": 0, "connections": 0, "unidentified": 0, "late_ms_sum": 0.0, "late_ms_max": 0.0, "chunks": 0}


async def pump(reader, writer, delay_s, jitter_s, first=b""):
    queue = asyncio.Queue()
    last_due = 0.0

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            late = max(0.0, time.monotonic() - due) * 1000
            stats["late_ms_sum"] += late
            stats["late_ms_max"] = max(stats["late_ms_max"], late)
            stats["chunks"] += 1
            stats["bytes"] += len(data)
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                break
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass

    task = asyncio.ensure_future(deliver())
    data = first
    try:
        while True:
            if data:
                due = time.monotonic() + delay_s + (random.uniform(0, jitter_s) if jitter_s > 0 else 0)
                last_due = due = max(due, last_due)  # a TCP stream keeps its order
                queue.put_nowait((due, data))
            data = await reader.read(65536)
            if not data:
                break
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    await task


async def handle(cfg, listener, client_reader, client_writer):
    stats["connections"] += 1
    head = b""
    deadline = time.monotonic() + (0 if "src" in listener else 2)
    try:
        while b"\r\n\r\n" not in head and len(head) < 16384 and time.monotonic() < deadline:
            chunk = await asyncio.wait_for(client_reader.read(16384), timeout=max(0.01, deadline - time.monotonic()))
            if not chunk:
                break
            head += chunk
    except asyncio.TimeoutError:
        pass
    if "src" in listener:
        src = listener["src"]  # a client link: the region its clients are in
    else:
        m = _FROM.search(head)
        src = cfg["members"].get(m.group(1).decode().lower()) if m else None
    dst = listener["region"]
    if src is None:
        stats["unidentified"] += 1
        first = head.split(b"\r\n", 1)[0][:80].decode("latin-1")
        paths = stats.setdefault("unidentified_requests", {})
        if first in paths or len(paths) < 20:
            paths[first] = paths.get(first, 0) + 1
        fwd = back = 0.0
        jf = jb = 0.0
    else:
        fwd = cfg["one_way_ms"][src][dst] / 1000
        back = cfg["one_way_ms"][dst][src] / 1000
        jf = cfg["jitter_ms"][src][dst] / 1000
        jb = cfg["jitter_ms"][dst][src] / 1000
    try:
        target_reader, target_writer = await asyncio.open_connection("127.0.0.1", listener["target_port"])
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, target_writer, fwd, jf, head),
                         pump(target_reader, client_writer, back, jb))


async def main(config_path, stats_path):
    with open(config_path) as f:
        cfg = json.load(f)
    servers = []
    for listener in cfg["listeners"]:
        servers.append(await asyncio.start_server(
            lambda r, w, listener=listener: handle(cfg, listener, r, w), "127.0.0.1", listener["port"]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    while not stop.is_set():
        with open(stats_path + ".tmp", "w") as f:
            json.dump(stats, f)
        import os
        os.replace(stats_path + ".tmp", stats_path)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1)
        except asyncio.TimeoutError:
            pass
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
