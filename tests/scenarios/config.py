"""Scenario header -> Settings, the way Deckard's kresd.j2 configures kresd.

Owns: the header defaults (README table), the QMIN modes a scenario runs in,
the harness/resolver addresses, the clock start, and the table of template
variables with how each one maps onto `workers.settings.Settings`.
Must not: run anything, import the resolution core, or silently drop a
header key or feature the template would turn into configuration: anything
Settings cannot express yet is reported as "unsupported: <feature>" so the
runner fails the scenario instead of testing something else.

Every real run renders kresd.j2 (template.py) and loads it through
kresd.engine.Engine, exactly as `kresd -n` does (replay.real_core() has no
fallback). `apply()` and `APPLIERS` serve only the harness's own unit tests
with fake cores (tests/scenarios/test_rpl.py); there a feature is supported by
replacing its `None` in `APPLIERS` with `(settings, value) -> None`. What they
do set follows the template line by line, with kresd's meaning.
"""
from __future__ import annotations

import calendar
import ipaddress
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import dns.name

from .rpl import Scenario, str2bool

DEFAULT_START = 1700000000.0  # 2023-11-14T22:13:20Z: fixed, Deckard would use "now"
DEFAULT_ROOT_NAME = "k.root-servers.net."
ADDRESSES = {  # (harness client, resolver SELF_ADDR) per family: README 127.127/16, fd00:dec::/32
    4: ("127.127.0.1", "127.127.0.2"),
    6: ("fd00:dec::1", "fd00:dec::2"),
}
MB = 1024 * 1024


@dataclass
class Context:
    """The template variables of kresd.j2, with Deckard's defaults."""

    root_addr: Optional[str] = None  # ROOT_ADDR
    root_name: str = DEFAULT_ROOT_NAME  # ROOT_NAME
    qmin: Optional[bool] = None  # QMIN; None = header absent: run both modes
    harden_glue: bool = True  # HARDEN_GLUE
    do_not_query_localhost: bool = True  # DO_NOT_QUERY_LOCALHOST
    trust_anchors: list = field(default_factory=list)  # TRUST_ANCHOR_FILES (lines)
    negative_trust_anchors: list = field(default_factory=list)  # NEGATIVE_TRUST_ANCHORS
    start_time: float = DEFAULT_START  # val-override-date / -timestamp
    do_ip4: bool = True  # DO_IP4
    do_ip6: bool = True  # DO_IP6
    forward_addr: Optional[str] = None  # FORWARD_ADDR
    force_ipv6: bool = False
    features: dict = field(default_factory=dict)  # FEATURES (str values; lists for feature-list)

    @property
    def family(self) -> int:
        if self.force_ipv6:
            return 6
        if self.root_addr and ipaddress.ip_address(self.root_addr).version == 6:
            return 6  # Deckard picks the socket family of the stub address
        return 4

    @property
    def client_addr(self) -> str:
        return ADDRESSES[self.family][0]

    @property
    def self_addr(self) -> str:
        return ADDRESSES[self.family][1]


# ---------------------------------------------------------------- header keys

def _set(attr: str, convert: Callable = str):
    def handler(ctx: Context, value: str) -> None:
        setattr(ctx, attr, convert(value))
    return handler


def _append(attr: str):
    def handler(ctx: Context, value: str) -> None:
        getattr(ctx, attr).append(value.strip())
    return handler


def _override_date(ctx: Context, value: str) -> None:
    ctx.start_time = float(calendar.timegm(time.strptime(value.strip(), "%Y%m%d%H%M%S")))


def _override_timestamp(ctx: Context, value: str) -> None:
    ctx.start_time = float(int(value.strip()))


def _features(ctx: Context, value: str) -> None:
    """`k=v;k2=v2` (Deckard: a part without '=' becomes a key with value '')."""
    for item in value.split(";"):
        key, _, val = item.partition("=")
        ctx.features[key.strip()] = val.strip()


def _feature_list(ctx: Context, value: str) -> None:
    key, _, val = value.partition("=")
    ctx.features.setdefault(key.strip(), []).append(val.strip())


HEADER_HANDLERS: dict[str, Callable[[Context, str], None]] = {
    "stub-addr": _set("root_addr", str.strip),
    "stub-name": _set("root_name", str.strip),
    "query-minimization": _set("qmin", str2bool),
    "harden-glue": _set("harden_glue", str2bool),
    "do-not-query-localhost": _set("do_not_query_localhost", str2bool),
    "trust-anchor": _append("trust_anchors"),
    "domain-insecure": _append("negative_trust_anchors"),
    "val-override-date": _override_date,
    "val-override-timestamp": _override_timestamp,
    "do-ip4": _set("do_ip4", str2bool),
    "do-ip6": _set("do_ip6", str2bool),
    "forward-addr": _set("forward_addr", str.strip),
    "force-ipv6": _set("force_ipv6", str2bool),
    "features": _features,
    "feature-list": _feature_list,
}


def context(scn: Scenario) -> Context:
    ctx = Context()
    for key, value in scn.header:
        HEADER_HANDLERS[key](ctx, value)  # rpl.py already rejected unknown keys
    return ctx


def qmin_modes(ctx: Context) -> tuple:
    """README: with the key absent the scenario runs with QMIN on and off."""
    return (True, False) if ctx.qmin is None else (ctx.qmin,)


# ---------------------------------------------------------------- template -> Settings

def _root_hints(settings, ctx: Context) -> None:
    """hints.root({['ROOT_NAME'] = 'ROOT_ADDR'}) as kresd 5.6 reads it.

    Without stub-addr the template renders the address as '': kresd skips an
    address that does not parse, and a root hints set left empty is the
    built-in one after the config (workers.zonecut.root_hints; the hints
    module does the same for the engine), so both runners start from the
    built-in root servers.
    """
    from workers.zonecut import root_hints  # lazy: keeps this module importable alone
    try:
        addrs = [str(ipaddress.ip_address(ctx.root_addr or ""))]
    except ValueError:
        addrs = []
    settings.root_hints = {dns.name.from_text(ctx.root_name): addrs} if addrs else {}
    settings.root_hints = root_hints(settings)


def _constants(settings, ctx: Context) -> None:
    """Lines kresd.j2 always renders."""
    if ctx.family == 6:
        settings.outgoing_v6 = ctx.self_addr  # net.outgoing_v6(SELF_ADDR)
    else:
        settings.outgoing_v4 = ctx.self_addr  # net.outgoing_v4(SELF_ADDR)
    settings.edns_bufsize = 4096  # net.bufsize(4096)
    settings.cache_size = 2 * MB  # cache.size = 2*MB
    # refuse_nord stays on: kresd loads it by default and the template does not unload it
    settings.no_0x20 = False  # kresd 5.6 default: 0x20 on (module workarounds turns it off per zone)
    settings.priming = False  # modules.unload('priming'): RFC 8109 priming off


def _variables(settings, ctx: Context) -> None:
    """One line per template variable that Settings can express."""
    from workers.settings import GlueMode  # lazy: keeps this module importable alone
    settings.no_minimize = not ctx.qmin  # option('NO_MINIMIZE', QMIN == false)
    settings.allow_local = not ctx.do_not_query_localhost  # option('ALLOW_LOCAL', ...)
    settings.glue_mode = GlueMode.NORMAL if ctx.harden_glue else GlueMode.PERMISSIVE
    settings.ipv4 = ctx.do_ip4  # net.ipv4
    settings.ipv6 = ctx.do_ip6  # net.ipv6


def _min_ttl(settings, value) -> None:
    settings.cache_min_ttl = int(value)  # cache.min_ttl(...)


def _max_ttl(settings, value) -> None:
    settings.cache_max_ttl = int(value)  # cache.max_ttl(...)


# feature -> applier(settings, value), or None while Settings cannot express it.
# Note for trust anchors: kresd.j2 also runs trust_anchors.remove('.'), so the
# applier must replace any built-in root anchor, not add to it.
APPLIERS: dict[str, Optional[Callable]] = {
    "trust-anchor": None,  # trust_anchors.add_file (DNSSEC)
    "domain-insecure": None,  # trust_anchors.set_insecure (DNSSEC)
    "forward-addr": None,  # policy.FORWARD for everything
    "features.min_ttl": _min_ttl,
    "features.max_ttl": _max_ttl,
    "features.dns64_prefix": None,  # module dns64
    "features.static_hint": None,  # hints[name] = addr
    "features.renumber": None,  # module renumber
    "features.policy": None,  # policy:add(...) Lua lines
    "features.view": None,  # module view Lua lines
    "features.workarounds": None,  # module workarounds (NO_0X20 off etc.)
}


def requested_features(ctx: Context) -> list:
    """[(feature, value)] the template would render for this context, in table order."""
    feats = ctx.features
    wanted = {
        "trust-anchor": ctx.trust_anchors or None,
        "domain-insecure": ctx.negative_trust_anchors or None,
        "forward-addr": ctx.forward_addr,
        "features.min_ttl": feats.get("min_ttl"),
        "features.max_ttl": feats.get("max_ttl"),
        "features.dns64_prefix": feats.get("dns64_prefix"),
        "features.static_hint": _pair(feats, "static_hint_name", "static_hint_addr"),
        "features.renumber": _pair(feats, "renumber_src", "renumber_dst"),
        "features.policy": feats.get("policy") or None,
        "features.view": feats.get("view") or None,
        "features.workarounds": feats.get("workarounds"),
    }
    return [(name, value) for name, value in wanted.items() if value is not None]


def _pair(feats: dict, first: str, second: str):
    if first in feats and second in feats:  # the template needs both
        return (feats[first], feats[second])
    return None


def unsupported(ctx: Context) -> list:
    return [name for name, _ in requested_features(ctx) if APPLIERS[name] is None]


def apply(settings, ctx: Context, qmin: bool) -> None:
    """Configure `settings` for one run; call only when unsupported(ctx) is empty."""
    ctx_qmin = replace(ctx, qmin=qmin)
    _constants(settings, ctx_qmin)
    _root_hints(settings, ctx_qmin)
    _variables(settings, ctx_qmin)
    for name, value in requested_features(ctx_qmin):
        applier = APPLIERS[name]
        if applier is None:
            raise ValueError(f"unsupported: {name}")
        applier(settings, value)
