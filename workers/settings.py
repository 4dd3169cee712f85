"""Resolver settings: the one declarative object that configures a worker.

Owns: every tunable the core, cache and server read (root hints, query flags,
glue mode, limits, listen endpoints, cache size and TTL clamps).
Must not: parse Lua or CLI text (kresd/cli.py and, later, the Lua engine fill
it), or hold runtime state.

The Lua bindings (issue 3) will write the same fields that tests and the CLI
set today, so the core is configured one way only.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dns.name

# IANA root servers (root hints), as kresd's built-in lib/root-hints.inc.
IANA_ROOT_HINTS: dict[str, tuple[str, str]] = {
    "a.root-servers.net.": ("198.41.0.4", "2001:503:ba3e::2:30"),
    "b.root-servers.net.": ("170.247.170.2", "2801:1b8:10::b"),
    "c.root-servers.net.": ("192.33.4.12", "2001:500:2::c"),
    "d.root-servers.net.": ("199.7.91.13", "2001:500:2d::d"),
    "e.root-servers.net.": ("192.203.230.10", "2001:500:a8::e"),
    "f.root-servers.net.": ("192.5.5.241", "2001:500:2f::f"),
    "g.root-servers.net.": ("192.112.36.4", "2001:500:12::d0d"),
    "h.root-servers.net.": ("198.97.190.53", "2001:500:1::53"),
    "i.root-servers.net.": ("192.36.148.17", "2001:7fe::53"),
    "j.root-servers.net.": ("192.58.128.30", "2001:503:c27::2:30"),
    "k.root-servers.net.": ("193.0.14.129", "2001:7fd::1"),
    "l.root-servers.net.": ("199.7.83.42", "2001:500:9f::42"),
    "m.root-servers.net.": ("202.12.27.33", "2001:dc3::35"),
}


def default_root_hints() -> dict[dns.name.Name, list[str]]:
    return {dns.name.from_text(n): list(a) for n, a in IANA_ROOT_HINTS.items()}


class GlueMode(enum.IntEnum):
    """kresd's mode(): how much out-of-bailiwick glue is accepted."""

    STRICT = 0  # only glue within the delegated zone
    NORMAL = 1  # glue within the zone being queried (bailiwick of the server)
    PERMISSIVE = 2  # any glue in the additional section


@dataclass
class Endpoint:
    """One listening address: kind 'dns' (UDP+TCP), 'dns-udp', 'dns-tcp'."""

    addr: str
    port: int = 53
    kind: str = "dns"
    fd: int | None = None  # inherited socket (activation, -S)


@dataclass
class Settings:
    # server
    listen: list[Endpoint] = field(default_factory=list)
    edns_bufsize: int = 1232  # advertised to clients and upstreams
    tcp_idle_timeout: float = 10.0  # net.tcp_in_idle (s): a client connection without a completed
    #   query or answer for this long is closed; also how long its unread answers may stay over
    #   tcp_write_buffer before it is aborted (workers/tcp.py)
    tcp_max_clients: int = 512  # net.tcp_max_clients (kresd-py): open client TCP connections per worker
    tcp_pipeline: int = 100  # queries in flight per TCP connection
    tcp_write_buffer: int = 64 * 1024  # bytes of unsent answers over which a connection stops reading
    tcp_write_cap: int = 1024 * 1024  # bytes of unsent answers over which a connection is aborted
    fastpath: bool = True  # answer fresh cache hits straight from the cache bytes (workers/fastpath.py)
    reorder_rr: bool = True  # reorder_RR(): records of an RRset in a new order in each rendered
    #   answer (kresd 5.6 default: true); packet-cache hits keep the order of the answer they replay
    epoch: int = 0  # bumped after Lua may have changed the configuration (console, events): the
    #   fast path then re-reads the layers' consent and empties its packet cache

    # resolution
    root_hints: dict[dns.name.Name, list[str]] = field(default_factory=default_root_hints)
    no_minimize: bool = False  # option('NO_MINIMIZE')
    serve_stale: int = 0  # serve_stale module: seconds past expiry cached data may be served (0: off)
    allow_local: bool = False  # option('ALLOW_LOCAL'): upstreams on loopback/private nets
    no_edns: bool = False
    no_0x20: bool = False  # option("NO_0X20"): 0x20 is on by default, as in kresd 5.6 (measured)
    ipv4: bool = True  # net.ipv4: use IPv4 upstreams
    ipv6: bool = True  # net.ipv6: use IPv6 upstreams
    outgoing_v4: str | None = None  # source address for upstream queries
    outgoing_v6: str | None = None
    glue_mode: GlueMode = GlueMode.NORMAL
    priming: bool = True  # kresd's `priming` module: ask ". NS" before first use of the hints
    ns_refresh: bool = False  # module ns_refresh (kresd-py): the child's NS addresses in the background
    max_upstream_queries: int = 100  # per request (kresd KR_ITER_LIMIT)
    max_cname_chain: int = 13  # kresd KR_CNAME_CHAIN_LIMIT
    resolve_time_limit: float = 10.0  # seconds per request (KR_RESOLVE_TIME_LIMIT)
    upstream_timeout: float = 0.8  # seconds before retrying another server
    max_depth: int = 12  # nested NS address sub-queries

    # cache
    cache_size: int = 100 * 1024 * 1024  # bytes (kresd default 100 MB)
    cache_min_ttl: int = 5  # kresd default min_ttl
    cache_max_ttl: int = 24 * 3600  # kresd 5.6 default max_ttl: 1 day (cache.max_ttl() answers 86400)

    verbose: bool = False

    # DNSSEC trust anchors (filled by the Lua `trust_anchors` bindings,
    # kresd/bindings/trust_anchors.py; enforced by the validator).
    trust_anchors: dict = field(default_factory=dict)  # dns.name.Name -> [DS/DNSKEY rdata]
    negative_trust_anchors: list = field(default_factory=list)  # [dns.name.Name]: insecure subtrees
