"""edns_keepalive (loaded by default, as in kresd 5.6), beside Debian's kresd
5.6 with the same config: over TCP a query carrying the edns-tcp-keepalive
option gets it back with the idle timeout (10.0 s by default); over UDP, or
without the option, no keepalive option comes back."""
from __future__ import annotations

import dns.edns
import dns.message
import dns.query
import pytest

from tests.conftest import alloc_test_addr

from .resolver import CONFIG, Resolver
from .signed_hierarchy import KRESD56

pytestmark = pytest.mark.e2e


def keepalive(reply):
    return [o.to_wire() for o in reply.options if int(o.otype) == 11]


def test_keepalive_as_kresd56(kresd_bin, hierarchy, tmp_path):
    started = []
    try:
        for name, binary in (("ours", kresd_bin), ("kresd56", KRESD56)):
            r = Resolver(binary, alloc_test_addr(), tmp_path / name, config=CONFIG)
            started.append(r)
            r.start(probe=("www.glue.test.", "A"))
        got = []
        for r in started:
            ask = dns.message.make_query("www.glue.test.", "A", use_edns=0,
                                         options=[dns.edns.GenericOption(11, b"")])
            plain = dns.message.make_query("www.glue.test.", "A", use_edns=0)
            got.append((keepalive(dns.query.tcp(ask, r.addr, timeout=5)),
                        keepalive(dns.query.udp(ask, r.addr, timeout=5)),
                        keepalive(dns.query.tcp(plain, r.addr, timeout=5))))
        assert got[0] == got[1] == ([b"\x00\x64"], [], []), got  # 100 x 100 ms
    finally:
        for r in started:
            r.stop()
