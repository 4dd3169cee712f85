"""kresd/modules/edns_keepalive.py: the option comes back over TCP only, when asked."""
import dns.edns
import dns.message

from kresd.modules.edns_keepalive import EdnsKeepalive
from kresd.modules.registry import ModuleContext
from workers.settings import Settings


class Req:
    def __init__(self, options, tcp):
        self.query = dns.message.make_query("a.", "A", use_edns=0, options=options)
        self.answer = dns.message.make_response(self.query)
        self.tcp = tcp


def keepalive(req):
    return [o.to_wire() for o in req.answer.options if int(o.otype) == 11]


def test_tcp_with_option_only():
    settings = Settings()
    settings.tcp_idle_timeout = 12.5
    layer = EdnsKeepalive(ModuleContext(settings)).layer
    asked = [dns.edns.GenericOption(11, b"")]
    cases = {(True, True): [b"\x00\x7d"], (True, False): [], (False, True): [], (False, False): []}
    for (tcp, ask), expected in cases.items():
        req = Req(asked if ask else [], tcp)
        layer.answer_finalize(req)
        assert keepalive(req) == expected, (tcp, ask)
