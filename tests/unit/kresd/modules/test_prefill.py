"""kresd/modules/prefill.py: configuration (file://, errors as kresd's), the
zone import into a real LMDB cache (ranks, TTL from the file's mtime,
validation against a trust anchor), and the refresh timer's decisions."""
import os
import time

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdatatype as T
import pytest

from cache.api import Cache, Rank
from kresd.bindings.bridge import LuaUsage
from kresd.errors import ConfigError
from kresd.modules import prefill as pf
from kresd.modules.registry import ModuleContext
from workers.settings import Settings

from ...workers import signedzones as sz

ROOT_ZONE = """$ORIGIN .
$TTL 86400
@                    86400 IN SOA a.root-servers.net. hostmaster. 1 3600 900 604800 900
@                    518400 IN NS a.root-servers.net.
a.root-servers.net.  3600  IN A   198.41.0.4
test.                172800 IN NS ns.test.
ns.test.             172800 IN A   192.0.2.1
"""
N = dns.name.from_text


@pytest.fixture
def cache(tmp_path):
    c = Cache(str(tmp_path / "cache"), 20 << 20)
    c.open()
    yield c
    c.close()


def write(tmp_path, text, age=0, name="root.zone"):
    path = tmp_path / name
    path.write_text(text)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


# -- configuration -------------------------------------------------------------------

def test_zone_path_file_url_and_key():
    assert pf.zone_path({"url": "file:///srv/root%20zone"}) == "/srv/root zone"
    assert pf.zone_path({"url": "file://localhost/srv/root.zone"}) == "/srv/root.zone"
    assert pf.zone_path({"file": "/srv/root.zone"}) == "/srv/root.zone"


@pytest.mark.parametrize("cfg,msg", [
    ({"url": "https://www.internic.net/domain/root.zone"}, "HTTPS is not available in kresd-py"),
    ({"url": "http://example.net/root.zone"}, "HTTP is not available in kresd-py"),
    ({"url": "ftp://example.net/root.zone"}, "must contain a file:// URL"),
    ({}, "must contain a file:// URL"),
    ({"url": "file://host/x"}, "with a host"),
    ({"url": "file:///a", "file": "/b"}, "either url or file"),
    ("x", "must be in table"),
])
def test_zone_path_errors(cfg, msg):
    with pytest.raises(LuaUsage, match=msg):
        pf.zone_path(cfg)


def test_config_errors_as_kresd(tmp_path):
    m = pf.Prefill(ModuleContext(Settings()))
    with pytest.raises(LuaUsage, match=r"^\[prefil\] only root zone can be imported at the moment$"):
        m.config({"example.": {"file": "/x"}})
    with pytest.raises(LuaUsage, match="requires configuration for root zone"):
        m.config({})
    with pytest.raises(LuaUsage, match="refresh interval 60 s is too short, minimal interval is 3600 s"):
        m.config({".": {"file": "/x", "interval": 60}})
    assert m.config(None) is None and m.path is None
    m.config({".": {"url": f"file://{tmp_path}/root.zone", "interval": 7200, "ca_file": "/ca"}})
    assert (m.path, m.interval) == (str(tmp_path / "root.zone"), 7200)


def test_lua_errors_through_the_engine():
    engine = pytest.importorskip("kresd.engine")
    e = engine.Engine(Settings())
    e.load_config_text("modules.load('prefill')\n")
    with pytest.raises(ConfigError, match="HTTPS is not available in kresd-py"):
        e.load_config_text("prefill.config({['.'] = {url = 'https://www.internic.net/domain/root.zone'}})\n")
    with pytest.raises(ConfigError, match="only root zone can be imported"):
        e.load_config_text("prefill.config({['cz.'] = {url = 'file:///x'}})\n")


# -- parsing and import --------------------------------------------------------------

def test_import_unsigned_ranks_and_ttls(tmp_path, cache):
    zone = pf.parse_zone(str(write(tmp_path, ROOT_ZONE)))
    stamp = int(time.time()) - 100
    done = pf.import_zone(cache, zone, Settings(), stamp)  # no trust anchor: insecure
    assert (done.rrsets, done.records, done.secure) == (5, 5, False)
    ns = cache.peek_rrset(dns.name.root, T.NS)
    assert ns.rank == Rank.AUTH | Rank.INSECURE
    assert 86400 - 102 <= ns.ttl <= 86400 - 100  # clamped by max_ttl, aged from the mtime
    a = cache.peek_rrset(N("a.root-servers.net."), T.A)
    assert a.rank == Rank.AUTH | Rank.INSECURE and 3600 - 102 <= a.ttl <= 3500
    deleg = cache.peek_rrset(N("test."), T.NS)
    glue = cache.peek_rrset(N("ns.test."), T.A)
    assert deleg.rank == Rank.OMIT and glue.rank == Rank.OMIT  # non-authoritative
    assert [rd.to_text() for rd in glue.rrset] == ["192.0.2.1"]


def test_old_file_gives_expired_records(tmp_path, cache):
    zone = pf.parse_zone(str(write(tmp_path, ROOT_ZONE)))
    pf.import_zone(cache, zone, Settings(), int(time.time()) - 4000)
    assert cache.peek_rrset(N("a.root-servers.net."), T.A) is None  # 3600 s TTL, 4000 s old
    assert cache.peek_rrset(dns.name.root, T.NS) is not None


@pytest.mark.parametrize("text,msg", [
    ("", "doesn't contain SOA"),
    ("@ 3600 IN NS a.root-servers.net.\n", "doesn't contain SOA"),
    ("$INCLUDE /etc/hostname\n", "error parsing"),
    (ROOT_ZONE + "bad line here\n", "error parsing"),
])
def test_parse_errors(tmp_path, text, msg):
    with pytest.raises(pf.PrefillError, match=msg):
        pf.parse_zone(str(write(tmp_path, text)))


def test_missing_file(tmp_path):
    with pytest.raises(pf.PrefillError, match="error opening zone file"):
        pf.parse_zone(str(tmp_path / "nope"))


def _signed_root(tamper=False):
    z = sz.sign_zone(".", ROOT_ZONE.replace("$ORIGIN .\n", ""))
    _, dnskey = sz._zone_keypair(".")
    ds = dns.dnssec.make_ds(".", dnskey, "SHA256")
    if tamper:
        rds = z.find_rdataset(N("a.root-servers.net."), T.A)
        rds.clear()
        rds.add(dns.rdata.from_text("IN", "A", "192.0.2.66"), 3600)
    settings = Settings()
    settings.trust_anchors = {dns.name.root: [ds]}
    return z, settings


def test_import_validated(tmp_path, cache):
    zone, settings = _signed_root()
    path = write(tmp_path, zone.to_text(relativize=False))
    done = pf.import_zone(cache, pf.parse_zone(str(path)), settings, int(time.time()))
    assert done.secure
    a = cache.peek_rrset(N("a.root-servers.net."), T.A)
    assert a.rank == Rank.AUTH | Rank.SECURE and a.rrsigs is not None
    assert cache.peek_rrset(N("test."), T.NS).rank == Rank.OMIT
    assert cache.peek_nsec(dns.name.root, N("test.")) is not None  # validated NSEC indexed


def test_validation_failure_writes_nothing(tmp_path, cache):
    zone, settings = _signed_root(tamper=True)
    path = write(tmp_path, zone.to_text(relativize=False))
    with pytest.raises(pf.PrefillError, match="validation failed for a.root-servers.net. A"):
        pf.import_zone(cache, pf.parse_zone(str(path)), settings, int(time.time()))
    assert cache.count() == 0


def test_trust_anchor_but_unsigned_zone(tmp_path, cache):
    _, settings = _signed_root()
    with pytest.raises(pf.PrefillError, match="no DNSKEY found"):
        pf.import_zone(cache, pf.parse_zone(str(write(tmp_path, ROOT_ZONE))), settings, int(time.time()))


# -- the module's timer -------------------------------------------------------------

class Sched:
    def __init__(self):
        self.armed = []

    def call_later(self, delay, fn):
        self.armed.append(delay)
        return len(self.armed)

    def cancel(self, h):
        pass


def _module(cache, worker_id=0):
    ctx = ModuleContext(Settings(), cache=cache, scheduler=Sched(),
                        worker={"id": worker_id, "count": 2, "pid": 1})
    return pf.Prefill(ctx)


def _tick(m):
    """One timer tick, and the poll ticks of a parse started in its thread."""
    m.tick()
    while m._job is not None:
        assert m.ctx.scheduler.armed[-1] == pf.POLL  # the loop polls, it does not wait
        m._job.thread.join(10)
        m.tick()


def test_tick_imports_once_per_mtime_and_bumps_generation(tmp_path, cache):
    path = write(tmp_path, ROOT_ZONE, age=10)
    m = _module(cache)
    m.config({".": {"url": f"file://{path}", "interval": 7200}})
    assert m.ctx.scheduler.armed == [0]
    gen = cache.generation.value()
    _tick(m)
    assert m.imported.records == 5 and cache.generation.value() == gen + 1
    assert m.ctx.scheduler.armed[-1] == 7200
    _tick(m)  # unchanged file: not imported again
    assert cache.generation.value() == gen + 1
    write(tmp_path, ROOT_ZONE + "new. 3600 IN NS ns.new.\n", age=0)
    _tick(m)
    assert m.imported.records == 6 and cache.generation.value() == gen + 2
    assert cache.peek_rrset(N("new."), T.NS).rank == Rank.OMIT


def test_tick_only_in_worker_0(tmp_path, cache):
    m = _module(cache, worker_id=1)
    m.config({".": {"file": str(write(tmp_path, ROOT_ZONE))}})
    m.tick()
    assert m.imported is None and cache.count() == 0 and m.ctx.scheduler.armed == [0]


def test_tick_failure_retries(tmp_path, cache):
    m = _module(cache)
    m.config({".": {"file": str(tmp_path / "missing.zone")}})
    _tick(m)
    _tick(m)
    assert m.ctx.scheduler.armed == [0, pf.FIRST_RETRY, pf.ERROR_INTERVAL]  # (a stat failure: no thread)
    write(tmp_path, ROOT_ZONE, name="missing.zone")
    _tick(m)
    assert m.imported is not None and m.ctx.scheduler.armed[-1] == pf.DEFAULT_INTERVAL


def test_tick_bad_zone_fails_in_the_thread(tmp_path, cache):
    path = write(tmp_path, "this is not a zone file\n")
    m = _module(cache)
    m.config({".": {"file": str(path)}})
    _tick(m)
    assert m.imported is None and m.failures == 1 and m.ctx.scheduler.armed[-1] == pf.FIRST_RETRY
    assert cache.count() == 0
