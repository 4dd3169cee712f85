"""stats module: kresd's counters, list/get/set, upstreams and frequent queries."""
import dns.flags

from .helpers import Env


def test_counters_after_requests():
    env = Env("stats", "policy")
    st = env.mod("stats")
    env.ask("www.example.cz.", use_edns=0, want_dnssec=True)
    env.ask("nothing.example.cz.")
    env.ask("www.example.cz.", tcp=True)
    env.ask("foo.test.")  # denied by policy
    m = st.list()
    assert m["request.total"] == 4 and m["request.udp"] == 3 and m["request.tcp"] == 1
    assert m["answer.total"] == 4
    assert m["answer.noerror"] == 2 and m["answer.nxdomain"] == 2
    assert m["query.edns"] == 1 and m["query.dnssec"] == 1
    assert m["answer.edns0"] == 1 and m["answer.do"] == 1
    assert m["answer.ra"] == 4 and m["answer.rd"] == 4 and m["answer.aa"] == 1
    assert sum(m[k] for k in ("answer.1ms", "answer.10ms", "answer.50ms", "answer.100ms", "answer.250ms",
                              "answer.500ms", "answer.1000ms", "answer.1500ms", "answer.slow")) == 4
    assert m["answer.cached"] == 0


def test_cached_and_nodata():
    from cache.api import Cache
    env = Env("stats")
    import tempfile
    d = tempfile.mkdtemp()
    env.resolver.cache = Cache(d, 4 * 1024 * 1024)
    env.resolver.cache.open()
    try:
        env.ask("www.example.cz.")
        env.ask("www.example.cz.")
        env.ask("www.example.cz.", "MX")
    finally:
        env.resolver.cache.close()
    st = env.mod("stats")
    assert st.get("answer.cached") == 1 and st.get("answer.nodata") == 1


def test_drop_counts_request_only():
    env = Env("stats", "policy")
    p = env.mod("policy")
    p.add(p.all(p.NO_ANSWER))
    env.ask("www.example.cz.")
    assert env.mod("stats").get("request.total") == 1 and env.mod("stats").get("answer.total") == 0


def test_get_set_list_prefix():
    env = Env("stats")
    st = env.mod("stats")
    st.set("answer.total 5")
    st.set("custom.metric", 7)
    assert st.get("answer.total") == 5 and st.get("custom.metric") == 7
    assert st.lua_set("filter.match", 3) and st.lua_get("filter.match") == 3
    assert set(st.list("custom")) == {"custom.metric"}
    assert all(k.startswith("request.") for k in st.list("request"))
    assert st.get("nope") is None


def test_upstreams_and_frequent():
    env = Env("stats")
    st = env.mod("stats")
    env.ask("www.example.cz.")
    ups = st.upstreams_list()
    # root, cz. and example.cz. servers, once each (cold resolver, no cache)
    assert sorted(ups) == ["1.2.3.4", "193.29.206.1", "198.41.0.4"]
    assert all(len(v) == 1 and isinstance(v[0], int) and v[0] >= 0 for v in ups.values()), ups
    names = {(f["name"], f["type"]) for f in st.frequent()}
    assert ("www.example.cz.", 1) in names
    st.clear_frequent()
    assert st.frequent() == []
    assert set(st.lua_api()) >= {"get", "set", "list", "upstreams", "frequent", "clear_frequent"}


def test_tc_flag_counted():
    env = Env("stats", "policy")
    p = env.mod("policy")
    p.add(p.all(p.TC))
    a = env.ask("www.example.cz.")
    assert a.flags & dns.flags.TC and env.mod("stats").get("answer.tc") == 1
