"""Topologies: regions, the round-trip matrix, jitter and loss per link, leader placement.

A topology is read from TOML (schema in docs/bench.md, presets in bench/geo/topologies/).
The physical bound of an operation is computed from the delays the emulation applies:
each direction of a link is delayed by round(rtt / 2) whole milliseconds (geokvd's WAN
emulator takes integer delays), and jitter only ever adds to that, so the bound is a
floor no run can beat.
"""
import dataclasses
import math
import tomllib


class TopologyError(ValueError):
    pass


@dataclasses.dataclass
class Link:
    delay_ms: int       # one way, each direction
    jitter_ms: int      # uniform in [0, jitter_ms], added to each message
    loss: float         # probability a message is dropped


@dataclasses.dataclass
class Topology:
    name: str
    regions: list
    rtt_ms: list                 # as given (row i, column j)
    links: dict                  # (a, b) -> Link, for every ordered pair a != b
    shards: int
    placement: list              # preferred leader region of each shard (len == shards)
    etcd_members: list           # the regions of etcd's three members
    etcd_leader: str

    # ---- delays the emulation applies -------------------------------------------------
    def one_way_ms(self, a, b):
        return 0 if a == b else self.links[(a, b)].delay_ms

    def applied_rtt_ms(self, a, b):
        return self.one_way_ms(a, b) + self.one_way_ms(b, a)

    def quorum_rtt_ms(self, leader, members=None):
        """Round trip from the leader to the nearest majority of `members` (itself included)."""
        members = list(members or self.regions)
        majority = len(members) // 2 + 1
        others = sorted(self.applied_rtt_ms(leader, m) for m in members if m != leader)
        need = majority - 1
        return 0 if need <= 0 else others[need - 1]

    def write_bound_ms(self, client, leader, members=None):
        """Client to leader, plus leader to the nearest quorum."""
        return self.applied_rtt_ms(client, leader) + self.quorum_rtt_ms(leader, members)

    def read_bound_ms(self, client, leader):
        """Client to leader (a lease read needs no quorum round)."""
        return self.applied_rtt_ms(client, leader)

    def to_dict(self):
        return {
            "name": self.name, "regions": self.regions, "rtt_ms": self.rtt_ms,
            "shards": self.shards, "leader_placement": self.placement,
            "applied_one_way_ms": {a: {b: self.one_way_ms(a, b) for b in self.regions if b != a}
                                   for a in self.regions},
            "jitter_ms": {a: {b: self.links[(a, b)].jitter_ms for b in self.regions if b != a}
                          for a in self.regions},
            "loss": {a: {b: self.links[(a, b)].loss for b in self.regions if b != a} for a in self.regions},
            "etcd": {"members": self.etcd_members, "leader": self.etcd_leader},
        }


def _number(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TopologyError(f"{what} must be a number")
    return float(v)


def parse(text, source="topology"):
    try:
        t = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TopologyError(f"{source}: not TOML: {e}") from None
    known = {"name", "regions", "rtt_ms", "jitter_ms", "loss", "links", "leaders", "etcd"}
    for k in t:
        if k not in known:
            raise TopologyError(f"{source}: unknown key '{k}' (known: {', '.join(sorted(known))})")
    regions = t.get("regions")
    if not isinstance(regions, list) or not regions or not all(isinstance(r, str) and r for r in regions):
        raise TopologyError(f"{source}: regions must be a non-empty list of names")
    if len(set(regions)) != len(regions):
        raise TopologyError(f"{source}: regions repeat a name")
    if len(regions) > 16:
        raise TopologyError(f"{source}: at most 16 regions")
    n = len(regions)
    rtt = t.get("rtt_ms")
    if not isinstance(rtt, list) or len(rtt) != n or not all(isinstance(row, list) and len(row) == n for row in rtt):
        raise TopologyError(f"{source}: rtt_ms must be a {n}x{n} matrix (one row per region)")
    for i in range(n):
        for j in range(n):
            v = _number(rtt[i][j], f"{source}: rtt_ms[{i}][{j}]")
            if i == j and v != 0:
                raise TopologyError(f"{source}: rtt_ms[{i}][{i}] must be 0 (a region to itself)")
            if v < 0 or v > 60000:
                raise TopologyError(f"{source}: rtt_ms[{i}][{j}] must be in [0, 60000]")
    jitter = _number(t.get("jitter_ms", 0), f"{source}: jitter_ms")
    loss = _number(t.get("loss", 0.0), f"{source}: loss")
    links = {}
    for i, a in enumerate(regions):
        for j, b in enumerate(regions):
            if i != j:
                links[(a, b)] = Link(int(math.floor(rtt[i][j] / 2 + 0.5)), int(round(jitter)), loss)
    for k, override in enumerate(t.get("links", [])):
        between = override.get("between")
        if not (isinstance(between, list) and len(between) == 2 and all(r in regions for r in between)
                and between[0] != between[1]):
            raise TopologyError(f"{source}: links[{k}].between must name two different regions")
        for extra in override:
            if extra not in ("between", "jitter_ms", "loss"):
                raise TopologyError(f"{source}: links[{k}]: unknown key '{extra}'")
        for a, b in ((between[0], between[1]), (between[1], between[0])):
            if "jitter_ms" in override:
                links[(a, b)].jitter_ms = int(round(_number(override["jitter_ms"], f"{source}: links[{k}].jitter_ms")))
            if "loss" in override:
                links[(a, b)].loss = _number(override["loss"], f"{source}: links[{k}].loss")
    for (a, b), link in links.items():
        if not 0 <= link.jitter_ms <= 60000:
            raise TopologyError(f"{source}: jitter between {a} and {b} must be in [0, 60000] ms")
        if not 0 <= link.loss <= 1:
            raise TopologyError(f"{source}: loss between {a} and {b} must be in [0, 1]")
    leaders = t.get("leaders", {})
    shards = leaders.get("shards", 4)
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 256:
        raise TopologyError(f"{source}: leaders.shards must be an integer in [1, 256]")
    placement = leaders.get("placement", regions)
    if not isinstance(placement, list) or not placement or any(p not in regions for p in placement):
        raise TopologyError(f"{source}: leaders.placement must list regions of this topology")
    placement = [placement[s % len(placement)] for s in range(shards)]
    etcd = t.get("etcd", {})
    members = etcd.get("members", regions[:3])
    if not isinstance(members, list) or any(m not in regions for m in members) or len(set(members)) != len(members):
        raise TopologyError(f"{source}: etcd.members must list distinct regions of this topology")
    etcd_leader = etcd.get("leader", placement[0] if placement[0] in members else members[0])
    if etcd_leader not in members:
        raise TopologyError(f"{source}: etcd.leader must be one of etcd.members")
    return Topology(t.get("name", source), list(regions), rtt, links, shards, placement, list(members), etcd_leader)


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TopologyError(f"{path}: not UTF-8") from None
    return parse(text, source=str(path))


def dumps(topo):
    """TOML text that parses back to the same topology."""
    def num(v):
        return repr(float(v))
    lines = [f'name = "{topo.name}"', "regions = [" + ", ".join(f'"{r}"' for r in topo.regions) + "]", "rtt_ms = ["]
    for row in topo.rtt_ms:
        lines.append("  [" + ", ".join(num(v) for v in row) + "],")
    lines.append("]")
    lines.append("jitter_ms = 0")
    lines.append("loss = 0.0")
    for i, a in enumerate(topo.regions):
        for b in topo.regions[i + 1:]:
            link = topo.links[(a, b)]
            lines += ["[[links]]", f'between = ["{a}", "{b}"]', f"jitter_ms = {link.jitter_ms}", f"loss = {num(link.loss)}"]
    lines += ["[leaders]", f"shards = {topo.shards}", "placement = [" + ", ".join(f'"{p}"' for p in topo.placement) + "]"]
    lines += ["[etcd]", "members = [" + ", ".join(f'"{m}"' for m in topo.etcd_members) + "]", f'leader = "{topo.etcd_leader}"']
    return "\n".join(lines) + "\n"
