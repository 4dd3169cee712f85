"""Zone cuts: the nameservers of the closest known enclosing zone.

Owns: `ZoneCut` (zone name, NS names and their known addresses), the root
hints in effect (`root_hints`: an empty set means the built-in one), building
a cut from them, and filtering addresses by family and ALLOW_LOCAL.
Must not: send queries (the iterator resolves missing NS addresses) or read
packets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import dns.name

from .selection.iterate import is_local_addr
from .settings import Settings, default_root_hints


@dataclass
class ZoneCut:
    name: dns.name.Name
    ns: dict[dns.name.Name, list[str]] = field(default_factory=dict)  # NS name -> addresses
    from_hints: bool = False
    from_cache: bool = False  # built from cached NS (possibly stale), not a fresh referral
    child_addrs: bool = False  # some NS addresses are the child zone's own (not the parent's glue)
    # chain of trust (workers/layers/validate.py): the DS (or trust-anchor)
    # rdatas that name the zone's keys, the validated DNSKEY RRset, and the
    # zone's status (None = not known yet; dnssec.Status otherwise)
    ds: list | None = None
    keys: object = None
    trust: object = None

    def addresses(self, opts) -> list[str]:
        out: list[str] = []
        for addrs in self.ns.values():
            # Configured hints and forwarders are trusted as given, as kresd does:
            # the ALLOW_LOCAL filter is for addresses learnt from the network.
            for a in usable_addresses(addrs, opts, local_ok=self.from_hints):
                if a not in out:
                    out.append(a)
        return out

    def unresolved(self) -> list[dns.name.Name]:
        return [n for n, a in self.ns.items() if not a]


def usable_addresses(addrs, opts, local_ok: bool = False) -> list[str]:
    """Addresses allowed by the request options (workers.request.Options):
    address family (NO_IPV4/NO_IPV6) and loopback (ALLOW_LOCAL)."""
    out = []
    for a in addrs:
        host = a.split("#", 1)[0]
        v6 = ":" in host
        if v6 and opts.NO_IPV6 or not v6 and opts.NO_IPV4:
            continue
        if not (opts.ALLOW_LOCAL or local_ok) and is_local_addr(host):
            continue
        out.append(a)
    return out


def root_hints(settings: Settings) -> dict[dns.name.Name, list[str]]:
    """The root hints in effect: `settings.root_hints`, or the built-in set when
    that holds no address at all.

    kresd 5.6: `hints.root{...}` empties the set and adds only the addresses
    that parse, so `hints.root({['k.root-servers.net'] = ''})` (Deckard's
    template without stub-addr) leaves it empty; after the config,
    daemon/lua/postconfig.lua loads the built-in root hints into an empty set
    (`if kr_zonecut_is_empty(root_hints) then _hint_root_file() end`).
    Applied where the hints are read, "empty means built-in" gives the same
    set as that post-config step for every config (only a console command
    emptying the set at run time differs: kresd then has no root hints).
    """
    if any(settings.root_hints.values()):
        return settings.root_hints
    return default_root_hints()


def root_cut_from_hints(settings: Settings) -> ZoneCut:
    cut = ZoneCut(dns.name.root, from_hints=True)
    for name, addrs in root_hints(settings).items():
        if addrs:
            cut.ns[name] = list(addrs)
    return cut
