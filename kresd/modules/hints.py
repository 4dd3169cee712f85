"""hints: kresd 5.6's static hints module (modules/hints/hints.c).

Owns: the forward hints (name -> addresses) and reverse hints (reverse name
-> PTR target, the last one added wins), loading hosts-like files, the hints
TTL (default 5 s) and NODATA synthesis switch (default on), and the root
hints face: `hints.root()` / `hints.root_file()` replace
`settings.root_hints`, which the core's zone-cut code reads (an address that
does not parse is skipped, as kresd does; a set left without any address
means the built-in root hints, workers.zonecut.root_hints).
Must not: resolve anything, or touch the cache; file reads happen only from
configuration calls (never on the request path).

Answers as kresd: a hinted A/AAAA (or PTR under arpa.) gets the hinted data
with QR set and without AA; a hinted name asked for another type gets an
empty NOERROR with AA (NODATA) when use_nodata is on. kresd answers hints in
its `produce` step (after every `begin` layer, and for sub-queries as well);
here the client's own question is answered in `begin`, and `lookup()` offers
the same data to the driver for sub-queries.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

import dns.flags
import dns.name
import dns.rdataclass
import dns.rdatatype as T
import dns.reversename
import dns.rrset

from workers.layer import Layer, State
from workers.request import Outcome, Result

from .policy import lua_items, lua_seq, to_text
from .registry import Module, builtin

log = logging.getLogger("kresd.hints")

HINTS_TTL_DEFAULT = 5
_ARPA = dns.name.from_text("arpa.")


def _addr(text: str) -> str:
    return str(ipaddress.ip_address(text.strip()))


class HintsLayer(Layer):
    name = "hints"
    fast_miss = True  # workers/fastmiss.py: fast_ok only without hinted names: lookup() finds nothing

    def __init__(self, module: "Hints"):
        self.module = module

    def fast_ok(self, pq):
        # Static hints answer before the cache: any hinted name keeps its queries
        # on the normal path (root hints alone do not matter here).
        return not (self.module.forward or self.module.reverse)

    def lookup(self, req, sname, stype):
        """Hinted data for any (sub-)query of the request; the driver asks layers
        before the cache, after every module's begin (so policy can block first)."""
        res = self.module.lookup(req, sname, stype)
        if res is None:
            return None
        if not res.answer:
            res.aa = True  # kresd marks hint NODATA authoritative
        req.vars["cached"] = True  # stats: answered without asking upstream
        log.debug("[%05d] <= answered from hints", req.uid)
        return res


@builtin
class Hints(Module):
    name = "hints"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.forward: dict[dns.name.Name, list[str]] = {}
        self.reverse: dict[dns.name.Name, list[dns.name.Name]] = {}
        self.use_nodata_flag = True
        self.ttl_value = HINTS_TTL_DEFAULT
        self.layer = HintsLayer(self)

    # -- lookups ------------------------------------------------------------

    def lookup(self, req, sname: dns.name.Name, stype: int) -> Result | None:
        """The hinted answer for (sname, stype): ANSWER, NODATA, or None (not hinted)."""
        if not self.use_nodata_flag and stype not in (T.A, T.AAAA, T.PTR):
            return None
        key = sname.canonicalize()
        if key.is_subdomain(_ARPA):
            targets = self.reverse.get(key)
            if not targets:
                return None
            if stype != T.PTR:
                return Result(Outcome.NODATA) if self.use_nodata_flag else None
            rr = dns.rrset.from_text_list(sname, self.ttl_value, "IN", "PTR", [targets[-1].to_text()])
            return Result(Outcome.ANSWER, [rr])
        addrs = self.forward.get(key)
        if not addrs:
            return None
        want = {T.A: 4, T.AAAA: 6}.get(stype)
        data = [a for a in addrs if want and ipaddress.ip_address(a).version == want]
        if not data:
            return Result(Outcome.NODATA) if self.use_nodata_flag else None
        rr = dns.rrset.from_text_list(sname, self.ttl_value, "IN", T.to_text(stype), data)
        return Result(Outcome.ANSWER, [rr])

    # -- data ---------------------------------------------------------------

    def add_pair(self, name: str, addr: str) -> None:
        key = dns.name.from_text(name).canonicalize()
        a = _addr(addr)
        rev = dns.reversename.from_address(a)
        lst = self.forward.setdefault(key, [])
        if a not in lst:
            lst.append(a)
        targets = self.reverse.setdefault(rev, [])
        if key in targets:
            targets.remove(key)
        targets.append(key)

    def del_pair(self, name: str, addr: str | None) -> bool:
        key = dns.name.from_text(name).canonicalize()
        addrs = self.forward.get(key)
        if not addrs:
            return False
        drop = [_addr(addr)] if addr else list(addrs)
        found = False
        for a in drop:
            if a in addrs:
                addrs.remove(a)
                found = True
            rev = self.reverse.get(dns.reversename.from_address(a))
            if rev and key in rev:
                rev.remove(key)
        if not addrs:
            del self.forward[key]
        return found

    def load_hosts(self, path: str) -> int:
        count = 0
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                tokens = line.split("#", 1)[0].split()
                if not tokens:
                    continue
                if len(tokens) < 2:
                    raise ValueError(f"{path}:{lineno}: invalid syntax")
                addr, canonical, aliases = tokens[0], tokens[1], tokens[2:]
                try:
                    for name in aliases + [canonical]:  # canonical last: it wins the PTR
                        self.add_pair(name, addr)
                        count += 1
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: invalid syntax") from None
        return count

    # -- Lua face -----------------------------------------------------------

    def config(self, arg: Any = None) -> Any:
        """Drop all hints, then load a hosts file if given (root hints untouched)."""
        self.forward.clear()
        self.reverse.clear()
        self.use_nodata_flag, self.ttl_value = True, HINTS_TTL_DEFAULT
        if arg:
            return self.add_hosts(arg)
        return {"result": True}

    def add_hosts(self, path: Any = None) -> dict:
        path = to_text(path) if path else "/etc/hosts"
        try:
            n = self.load_hosts(path)
        except (OSError, ValueError) as exc:
            log.error("[hint] reading '%s' failed: %s", path, exc)
            return {"result": False}
        log.info("[hint] loaded %d hints from %s", n, path)
        return {"result": True}

    @staticmethod
    def _pair(args: tuple) -> tuple[str, str | None]:
        if len(args) >= 2 and args[1] is not None:
            return to_text(args[0]), to_text(args[1])
        text = to_text(args[0]).strip() if args and args[0] is not None else ""
        name, _, addr = text.partition(" ")
        return name, (addr.strip() or None)

    def set(self, *args) -> dict:
        name, addr = self._pair(args)
        if not name or not addr:
            return {"result": False}
        try:
            self.add_pair(name, addr)
        except ValueError:
            return {"result": False}
        return {"result": True}

    def delete(self, *args) -> dict:
        name, addr = self._pair(args)
        try:
            return {"result": bool(name) and self.del_pair(name, addr)}
        except ValueError:
            return {"result": False}

    def get(self, name: Any = None):
        if name is None:
            return {k.to_text(): list(v) for k, v in self.forward.items()}
        try:
            key = dns.name.from_text(to_text(name)).canonicalize()
        except Exception:
            return None
        addrs = self.forward.get(key)
        return list(addrs) if addrs else None

    def root(self, hints: Any = None) -> dict:
        """Replace the root hints ({name = addr | {addr, ...}}) and return the set in effect.

        As kresd 5.6's hint_root: the set is emptied, then every address that
        parses is added; the others are skipped (`''`, Deckard's template
        without stub-addr). A set left empty is the built-in one, as after
        kresd's postconfig.lua, so that is what comes back.
        """
        from workers.zonecut import root_hints
        s = self.ctx.settings
        if hints is not None and not (isinstance(hints, str) and hints == ""):
            new: dict[dns.name.Name, list[str]] = {}
            for name, addrs in lua_items(hints):
                key = dns.name.from_text(to_text(name))
                for a in lua_seq(addrs):
                    try:  # kresd skips what does not parse as an address
                        addr = _addr(to_text(a))
                    except ValueError:
                        log.warning("[hint] root hint %s: invalid address %r ignored", key, a)
                        continue
                    lst = new.setdefault(key, [])
                    if addr not in lst:
                        lst.append(addr)
            s.root_hints = new
        return {k.to_text(): list(v) for k, v in root_hints(s).items()}

    def root_file(self, path: Any = None) -> str:
        """Replace the root hints from a zone file (no path: back to the built-in set)."""
        from workers.settings import default_root_hints
        if not path:
            self.ctx.settings.root_hints = default_root_hints()
            return ""
        import dns.zone  # only for a root hints file: not at boot

        z = dns.zone.from_file(to_text(path), origin=dns.name.root, relativize=False, check_origin=False)
        new: dict[dns.name.Name, list[str]] = {}
        ns = z.get_rdataset(dns.name.root, T.NS)
        for rd in ns or []:
            node = z.get_node(rd.target)
            for t in (T.A, T.AAAA):
                rds = node.get_rdataset(dns.rdataclass.IN, t) if node else None
                new.setdefault(rd.target, []).extend(r.address for r in rds or [])
        if not any(new.values()):
            raise ValueError(f"error when opening '{to_text(path)}': no root server addresses")
        self.ctx.settings.root_hints = new
        return ""

    def use_nodata(self, toggle: Any = None) -> dict:
        if not isinstance(toggle, bool):
            return {"result": False}
        self.use_nodata_flag = toggle
        return {"result": True}

    def ttl(self, new_ttl: Any = None) -> int:
        if isinstance(new_ttl, (int, float)) and not isinstance(new_ttl, bool) and new_ttl >= 0:
            if abs(new_ttl - round(new_ttl)) * 64 < 1:
                self.ttl_value = int(round(new_ttl))
        return self.ttl_value

    def lua_api(self) -> dict:
        return {"config": self.config, "add_hosts": self.add_hosts, "set": self.set,
                "del": self.delete, "get": self.get, "root": self.root, "root_file": self.root_file,
                "use_nodata": self.use_nodata, "ttl": self.ttl}

    def lua_set(self, key: Any, value: Any) -> bool:
        """hints['name'] = 'addr' (or a list of addresses)."""
        for a in lua_seq(value):
            if not self.set(to_text(key), to_text(a))["result"]:
                raise ValueError(f"hints: invalid hint {to_text(key)} = {to_text(a)}")
        return True

    def lua_get(self, key: Any) -> Any:
        addrs = self.get(key)
        if addrs is None:
            raise KeyError(key)
        return addrs
