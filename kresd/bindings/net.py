"""`net` namespace: listen, close, list, interfaces, net.<iface>, bufsize,
outgoing_v4/v6, ipv4/ipv6 (assignable), tcp_pipeline, tcp_in_idle;
`net = {'addr'}` sugar; and `net.tcp_max_clients([n])`, a kresd-py setting
(kresd 5.6 has no limit on client TCP connections).

Owns: recording listen endpoints in settings.listen (the daemon binds them
after the config, before serving), kresd's net.list() shape, interface
addresses (psutil).
Must not: bind or close sockets (kresd/cli.py and workers/ do).
"""
from __future__ import annotations

import ipaddress
import socket

from workers.settings import Endpoint

from .bridge import LuaUsage

KINDS = ("dns",)  # tls, doh2, doh_legacy, webmgmt, xdp: not implemented
LISTEN_USAGE = "net.listen(addr|{addr, ...}|iface, [port = 53], [{kind = 'dns', freebind = false}])"


def interfaces() -> dict:
    import psutil

    out: dict = {}
    for name, addrs in psutil.net_if_addrs().items():
        entry: dict = {"addr": []}
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                entry["addr"].append(a.address.split("%", 1)[0])
            elif getattr(psutil, "AF_LINK", None) == a.family:
                entry["mac"] = a.address
        out[name] = entry
    return out


def _addresses(spec) -> list[str]:
    if isinstance(spec, list):
        out = []
        for x in spec:
            out.extend(_addresses(x))
        return out
    if isinstance(spec, dict):  # net.eth0 style {addr = {...}} or {1: ...}
        if "addr" in spec:
            return _addresses(spec["addr"])
        raise LuaUsage(LISTEN_USAGE)
    if not isinstance(spec, str):
        raise LuaUsage(LISTEN_USAGE)
    try:
        return [str(ipaddress.ip_address(spec.split("%", 1)[0]))]
    except ValueError:
        ifaces = interfaces()
        if spec in ifaces:
            return list(ifaces[spec]["addr"])
        raise LuaUsage(f"net.listen: '{spec}' is neither an IP address nor an interface") from None


def listen(engine, addr=None, port=None, opts=None):
    if addr is None:
        raise LuaUsage(LISTEN_USAGE)
    if port is None:
        port = 53
    if isinstance(port, dict) and opts is None:
        port, opts = 53, port
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise LuaUsage(LISTEN_USAGE + ": bad port")
    opts = opts or {}
    if not isinstance(opts, dict):
        raise LuaUsage(LISTEN_USAGE)
    if "tls" in opts and opts["tls"]:
        opts = dict(opts, kind="tls")
    kind = opts.get("kind", "dns")
    unknown = set(opts) - {"kind", "freebind", "tls"}
    if unknown:
        raise LuaUsage(f"net.listen: unknown option(s) {', '.join(sorted(map(str, unknown)))}")
    if kind == "webmgmt":  # kresd 5.6: the http module's listeners
        http = engine.registry.get("http")
        if http is None:
            raise LuaUsage("net.listen: kind 'webmgmt' needs modules.load('http') first")
        for a in _addresses(addr):
            http.add_listener(a, port)
        return True
    if kind not in KINDS:
        raise LuaUsage(f"net.listen: kind '{kind}' is not implemented in kresd-py (only 'dns' and 'webmgmt')")
    for a in _addresses(addr):
        ep = Endpoint(a, port, kind)
        if not any(e.addr == a and e.port == port for e in engine.settings.listen):
            engine.settings.listen.append(ep)
    engine.listen_configured = True
    return True


def close(engine, addr=None, port=None, kind=None):
    if not isinstance(addr, str):
        raise LuaUsage("net.close(addr, [port])")
    try:
        a = str(ipaddress.ip_address(addr))
    except ValueError:
        raise LuaUsage(f"net.close: '{addr}' is not an IP address") from None
    before = len(engine.settings.listen)
    engine.settings.listen[:] = [e for e in engine.settings.listen
                                 if not (e.addr == a and (port is None or e.port == port))]
    return len(engine.settings.listen) != before


def list_(engine):
    if engine.listen_sockets is not None:  # serving: the sockets themselves (+ the control socket)
        from kresd.sockets import describe

        out = [describe(ls) for ls in engine.listen_sockets]
        if engine.control is not None:
            out.append(engine.control.describe())
        return out
    out = []
    for e in engine.settings.listen:
        family = "inet6" if ":" in e.addr else "inet4"
        protos = {"dns": ("udp", "tcp"), "dns-udp": ("udp",), "dns-tcp": ("tcp",)}.get(e.kind, ("tcp",))
        for proto in protos:
            out.append({"kind": "dns" if e.kind.startswith("dns") else e.kind, "freebind": False,
                        "transport": {"family": family, "ip": e.addr, "port": e.port,
                                      "protocol": proto}})
    return out


def bufsize(engine, down=None, up=None):
    if down is None:
        return engine.settings.edns_bufsize
    for v in (down, up):
        if v is not None and (not isinstance(v, int) or not 512 <= v <= 65535):
            raise LuaUsage("net.bufsize(udp_downstream, [udp_upstream]): sizes within 512..65535")
    engine.settings.edns_bufsize = down
    return True


def _outgoing(engine, family, addr=None):
    field = "outgoing_v4" if family == 4 else "outgoing_v6"
    if addr is None:
        return getattr(engine.settings, field)
    if not isinstance(addr, str):
        raise LuaUsage(f"net.{field}(addr)")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise LuaUsage(f"net.{field}: '{addr}' is not an IP address") from None
    if ip.version != family:
        raise LuaUsage(f"net.{field}: '{addr}' is not an IPv{family} address")
    setattr(engine.settings, field, None if ip.is_unspecified else str(ip))
    return True


def tcp_pipeline(engine, n=None):
    if n is not None:
        if not isinstance(n, int) or n < 1:
            raise LuaUsage("net.tcp_pipeline(n >= 1)")
        engine.settings.tcp_pipeline = n
    return engine.settings.tcp_pipeline


def tcp_in_idle(engine, ms=None):
    """kresd's net.tcp_in_idle([ms]): get (ms, an integer) or set (returns true)."""
    if ms is None:
        return int(round(engine.settings.tcp_idle_timeout * 1000))
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 1:
        raise LuaUsage("net.tcp_in_idle([ms]): the parameter has to be a positive number")
    engine.settings.tcp_idle_timeout = int(ms) / 1000.0
    return True


def tcp_max_clients(engine, n=None):
    """kresd-py: open client TCP connections per worker; more are closed at once."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise LuaUsage("net.tcp_max_clients([n >= 1])")
        engine.settings.tcp_max_clients = n
    return engine.settings.tcp_max_clients


def install(engine) -> None:
    from . import namespace

    s = engine.settings

    def getter(key):
        if key in ("ipv4", "ipv6"):
            return getattr(s, key)
        if isinstance(key, str):
            ifaces = interfaces()
            if key in ifaces:
                return ifaces[key]
        return None

    def setter(key, value):
        if key in ("ipv4", "ipv6"):
            if not isinstance(value, bool):
                raise LuaUsage(f"net.{key} = true|false")
            setattr(s, key, value)
            return None
        if isinstance(key, int):  # net = {'addr', ...}
            return listen(engine, value)
        raise LuaUsage(f"net.{key}: no such net property")

    namespace(engine, "net", {
        "listen": lambda *a: listen(engine, *a),
        "close": lambda *a: close(engine, *a),
        "list": lambda: list_(engine),
        "interfaces": interfaces,
        "bufsize": lambda *a: bufsize(engine, *a),
        "outgoing_v4": lambda *a: _outgoing(engine, 4, *a),
        "outgoing_v6": lambda *a: _outgoing(engine, 6, *a),
        "tcp_pipeline": lambda *a: tcp_pipeline(engine, *a),
        "tcp_in_idle": lambda *a: tcp_in_idle(engine, *a),
        "tcp_max_clients": lambda *a: tcp_max_clients(engine, *a),
    }, getter=getter, setter=setter)
