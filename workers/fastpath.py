"""The cache-hit fast path: UDP answers without a Request.

Owns, for one worker:
  * the packet cache (native.PacketCache, C with a pure twin) and the UDP
    batch (native.UdpBatch): one C call per readable socket receives up to 64
    datagrams (recvmmsg), answers those the packet cache holds (sendmmsg) and
    hands the rest back; no Python object is made per hit;
  * what the packet cache may hold (`remember`): an answer the resolver
    produced for a UDP query from the cache alone (no upstream query) within
    one second of the clock (so every TTL is what the full path would give),
    when every loaded layer consents to the name (Layer.fast_ok) and the
    client is outside every subnet a layer wants to see (Layer.fast_nets);
    the C side keeps only NOERROR/NXDOMAIN answers without EDNS options that
    were not truncated (kresd_native.h kn_pc_insert);
  * when it is emptied: the shared cache generation changed (cache.clear() in
    any fork: cache/generation.py), or the configuration may have changed
    (Settings.epoch, bumped by every console command and Lua event);
  * the second tier, the LMDB positive-RRset answer (native.answer) for a
    query the packet cache of this fork has not seen yet: a hit in one fork
    is a hit in every fork, because the LMDB cache is shared;
  * handing the batch the rate limit a layer offers (`rate_limiter`:
    kresd/modules/rate_limiting.py), which C applies to every datagram first;
  * the counts of what the fast path answered, for the server's and the
    layers' stats (Layer.fast_count gets a native.BatchCounts per batch).
Must not: change what a client gets. The packet cache replays the full
path's own answer with the client's ID and question case and TTLs lowered by
the seconds since (tests/property/test_native_pcache.py checks C against the
twin, tests/property/test_pcache_full_path.py both against the full path,
byte for byte); native.answer answers only what the full path answers the
same way (tests/property/test_native_answer.py). One difference is known and
kept: with reorder_RR() on (kresd's default), the full path renders the
records of an RRset in a new order each time, while a packet-cache hit keeps
the order of the answer it replays until that entry is replaced or expires
(as PowerDNS Recursor's packet cache does).
"""
from __future__ import annotations

import ipaddress

import native

from .fastmiss import FastMiss
from .server import udp_limit

TAG_RRSET = b"E"  # CACHE_KEY_DEF (cache/keys.py)
_VALIDATED_RANK = 16 | 8  # kr_rank AUTH|INSECURE (cache/api.py Rank): the value byte at offset 8
ALL = "all"  # Layer.fast_nets(): this layer must see every query
_ONE_NOERROR = native.BatchCounts(hits=1, noerror=1, rd=1)


def _zero() -> int:
    return 0


class FastPath:
    BATCH_MAX = native.BATCH_MAX  # a batch this full means more may be waiting

    def __init__(self, resolver, settings, clock, pcache: native.PacketCache | None = None):
        self.resolver = resolver
        self.settings = settings
        self.clock = clock
        self.hits = 0  # answered by the LMDB tier (native.answer)
        self.pc_hits = 0  # answered by the packet cache
        self.pc = pcache if pcache is not None else native.PacketCache()
        self.batch = native.UdpBatch(self.pc)
        self.server_stats = None  # set by attach()
        self._epoch = None  # Settings.epoch the consent below was computed for
        self._lookup = True
        self._nets: list = []
        self._gen = _zero  # the shared cache generation's reader (set by sync)
        self.miss = FastMiss(self)  # the cache-miss fast path (workers/fastmiss.py)
        self.miss_pq = None  # the ParsedQuery __call__ found no entry for (the miss's to take)

    # -- consent and invalidation ----------------------------------------------
    def min_rank(self) -> int:
        """kresd get_lowest_rank() for a client without CD: with any trust
        anchor configured, only validated data (INSECURE|AUTH or better) may
        be answered here; names outside every anchor (stored unvalidated)
        then take the full path, which applies the per-name rule."""
        if any(self.settings.trust_anchors.values()):
            return _VALIDATED_RANK
        return 0

    def sync(self) -> None:
        """Empty the packet cache if the shared cache generation or the
        configuration changed since it was filled; refresh the consent data."""
        generation = getattr(self.resolver.cache, "generation", None)
        self._gen = generation.value if generation is not None else _zero
        gen = self._gen()
        epoch = getattr(self.settings, "epoch", 0)
        if epoch != self._epoch:
            self._epoch = epoch
            self._consent()
            self.pc.flush(gen)
        elif gen != self.pc.gen:
            self.pc.flush(gen)
            self.miss.clear_cuts()

    def _consent(self) -> None:
        nets: list = []
        lookup = bool(self.settings.fastpath) and getattr(self.resolver, "cache", None) is not None
        limiter = None  # kresd/modules/rate_limiting.py: checked in C before any answer
        for layer in getattr(self.resolver, "layers", ()):
            limiter = limiter or getattr(layer, "rate_limiter", None)
            layer.fast_source(self.collect)
            want = layer.fast_nets()
            if want == ALL:
                lookup = False
            elif want:
                nets.extend(want)
        if len(nets) > native.NETS_MAX:
            lookup = False
        self._lookup, self._nets = lookup, nets
        self.miss.consent(getattr(self.resolver, "layers", ()), self.settings)
        self.batch.set_nets(nets)
        self.batch.set_limiter(limiter)

    def _client_ok(self, addr) -> bool:
        if not self._nets:
            return True
        if addr is None:
            return False
        try:
            ip = ipaddress.ip_address(str(addr[0]).split("%", 1)[0])
        except ValueError:
            return False
        return not any(ip.version == n.version and ip in n for n in self._nets)

    def stats(self) -> dict:
        """worker.stats().fastpath: answers by tier, and the packet cache."""
        self.collect()
        pc = self.pc
        out = {"packet_hits": self.pc_hits, "lmdb_hits": self.hits, "entries": pc.count,
               "bytes": pc.used, "flushes": pc.flushes, "generation": pc.gen,
               "backend": native.BACKEND, "miss": self.miss.stats()}
        limiter = getattr(self.batch, "limiter", None)
        if limiter is not None:  # the rate_limiting module (this limiter's counts: reset by a reconfig)
            out["ratelimited"], out["ratelimit_tc"], out["ratelimit_dropped"] = limiter.counts()
        return out

    # -- the batch ---------------------------------------------------------------
    def run(self, sock):
        """One batch of a readable UDP socket: (received, [(datagram, address)] misses).
        What the packet cache answered is counted in C until collect()."""
        settings = self.settings
        if settings.epoch != self._epoch or self._gen() != self.pc.gen:
            self.sync()  # (the same test as sync's, without its lookups: this runs per wakeup)
        return self.batch.run(sock, int(self.clock.time()), settings.edns_bufsize,
                              self._lookup and settings.fastpath)

    def attach(self, server_stats, server=None) -> None:
        """The server's counters (workers/server.py ServerStats) that collect()
        adds to, and the server the fast miss answers and hands over through."""
        self.server_stats = server_stats
        if server is not None:
            self.miss.bind(server)
            self._epoch = None  # consent again, now with a server

    def collect(self) -> None:
        """Fold what the packet cache answered since the last call into the
        server's and the layers' counters. Called before any of them is read
        (worker.stats(), the stats module's reads), not per batch."""
        counts, unsent, big = self.batch.take()
        st = self.server_stats
        if st is not None:
            st.dropped += unsent + big
        if not counts.hits:
            return
        self.pc_hits += counts.hits
        if st is not None:
            st.queries += counts.hits
            st.udp += counts.hits
            st.answers[0] += counts.noerror  # NOERROR
            st.answers[3] += counts.nxdomain  # NXDOMAIN
            st.truncated += counts.tc
        for layer in getattr(self.resolver, "layers", ()):
            layer.fast_count(counts)

    def remember(self, query: bytes, answer: bytes, addr, now: int) -> bool:
        """Keep a UDP answer the resolver gave from the cache alone at unix
        second `now` (see the module docstring for which); True if kept."""
        if not self._lookup or int(self.clock.time()) != now or not self._client_ok(addr):
            return False
        try:
            pq = native.parse_query(query)
        except native.ParseError:
            return False
        for layer in self.resolver.layers:
            if not layer.fast_ok(pq):
                return False
        return self.pc.insert(query, answer, now) == 0

    # -- the LMDB tier -------------------------------------------------------------
    def __call__(self, data: bytes, addr=None) -> bytes | None:
        """The answer to a plain positive question straight from the LMDB
        bytes (native.answer), or None: the full path decides."""
        self.miss_pq = None
        cache = self.resolver.cache
        if cache is None or not self.settings.fastpath or not self._lookup or not self._client_ok(addr):
            return None
        try:
            pq = native.parse_query(data)
        except native.ParseError:
            return None
        layers = self.resolver.layers
        for layer in layers:
            if not layer.fast_ok(pq):
                return None
        try:
            value = cache.peek_raw(native.cache_key(pq.qname, TAG_RRSET, pq.qtype))
        except (native.ParseError, ValueError):
            return None
        if value is None:
            self.miss_pq = pq  # the fast miss may ask for it (Server._udp_datagram)
            return None
        if value[8] < self.min_rank():
            return None  # unvalidated data where validation is on: the full path decides
        maxlen = udp_limit(bool(pq.has_opt), pq.udp_size, self.settings.edns_bufsize)
        wire = native.answer(data, pq, value, int(self.clock.time()), self.settings.edns_bufsize, maxlen)
        if wire is None:
            return None
        self.hits += 1
        counts = _ONE_NOERROR._replace(edns=pq.has_opt)
        for layer in layers:
            layer.fast_count(counts)
        return wire
