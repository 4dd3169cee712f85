"""kresd/modules/nsid.py: the identifier setter and the answer_finalize hook."""
import dns.edns
import dns.message
import pytest

from kresd.bindings.bridge import LuaUsage
from kresd.modules.nsid import Nsid
from kresd.modules.registry import ModuleContext
from workers.settings import Settings


class Req:
    def __init__(self, query):
        self.query = query
        self.answer = dns.message.make_response(query)


def module():
    return Nsid(ModuleContext(Settings()))


def test_name_set_and_read():
    m = module()
    assert m.name_fn() is None
    assert m.name_fn("a b") == "a b"
    with pytest.raises(LuaUsage):
        m.name_fn("x" * 600)


def test_only_nsid_queries_get_it():
    m = module()
    m.name_fn("id1")
    asked = Req(dns.message.make_query("a.", "A", use_edns=0, options=[dns.edns.GenericOption(3, b"")]))
    plain = Req(dns.message.make_query("a.", "A", use_edns=0))
    for req in (asked, plain):
        m.layer.answer_finalize(req)
    assert [o.to_wire() for o in asked.answer.options if int(o.otype) == 3] == [b"id1"]
    assert not plain.answer.options


def test_no_name_no_option():
    m = module()
    req = Req(dns.message.make_query("a.", "A", use_edns=0, options=[dns.edns.GenericOption(3, b"")]))
    m.layer.answer_finalize(req)
    assert not req.answer.options
