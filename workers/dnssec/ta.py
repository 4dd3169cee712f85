"""Trust anchors, negative trust anchors and RFC 5011 automated updates.

Owns (kresd 5.6 lib/dnssec/ta.c, daemon/lua/trust_anchors.lua,
modules/ta_update):
  * the built-in root anchors (DS of KSK-2017 and KSK-2024);
  * parsing key files and strings (zone-file DS/DNSKEY lines, kresd's
    `; State:timer` comments, the Deckard one-file-per-domain form) into
    `Keyset`s of `Anchor`s, with file:line errors;
  * the per-process `Store` of keysets (kept on the settings object as
    `settings.ta_store`) and publishing its trusted keys to the two fields the
    validator reads: `settings.trust_anchors` (dns.name.Name -> [DS/DNSKEY
    rdata], only keys in state Valid or Missing) and
    `settings.negative_trust_anchors` ([dns.name.Name]);
  * the queries over those fields the validator uses (`closest_ta`, `anchors`,
    `is_negative`);
  * RFC 5011 for writable ("managed") key files: key states, hold-down timers,
    revocation, the atomic rewrite of the file in kresd's format, and the
    refresh interval (`refresh_due`, `refresh_failed`).
Must not: do DNS I/O or read the clock: every function that needs the time
takes `now` (seconds since the epoch, the resolver clock), so tests run under a
fake clock. The only file I/O is reading key files at configuration time and
rewriting a managed key file from `observe_dnskey`.

RFC 5011 wiring (the validator and the worker call these):
  * `observe_dnskey(settings, zone, rrset, now, sigs=None)`: call it with the
    DNSKEY RRset of a zone that has a trust anchor, each time that RRset has
    been validated (not when it is served from the cache unvalidated). With
    `sigs` (its RRSIGs) a revoked key must also sign the set (RFC 5011 2.1);
    without them the validated set is trusted as it is.
  * `refresh_due(settings, zone, now)` / `refresh_zones(settings, now)`: zones
    whose DNSKEY should be asked again (bypassing the cache, as kresd's
    ta_update uses NO_CACHE); the first refresh is due at once, then every
    `refresh_interval` (RFC 5011 2.3: max(1 h, min(15 days, TTL/2)), or
    `trust_anchors.refresh_time`). A failed refresh: `refresh_failed`
    (retry after max(1 h, min(1 day, TTL/10))).
"""
from __future__ import annotations

import base64
import enum
import logging
import os
import re
from dataclasses import dataclass, field

import dns.dnssec
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype as T
import dns.rdtypes.ANY.DS
import dns.rdata
import dns.rrset

from .verify import ds_matches

log = logging.getLogger("kresd.ta")
log_upd = logging.getLogger("kresd.taupd")

# The root's anchors, as in IANA's https://data.iana.org/root-anchors/root-anchors.xml
# (KeyDigest "Klajeyz", validFrom 2017-02-02, and "Kmyv6jo", validFrom 2024-07-18),
# the same digests as BIND's bind.keys (`. initial-ds 38696 8 2 683D2D0A...`) and
# Debian's dns-root-data /usr/share/dns/root.ds; tests check them against the DNSKEYs.
ROOT_ANCHORS = (
    ". 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",  # KSK-2017
    ". 172800 IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",  # KSK-2024
)

SECOND = 1000  # kresd's Lua time constants are in milliseconds
HOUR = 3600 * SECOND
DAY = 24 * HOUR
DEFAULT_HOLD_DOWN_MS = 30 * DAY  # RFC 5011 2.4.1 add hold-down
DEFAULT_TTL = 3600  # kresd's key files without a TTL
REVOKE = 0x0080  # DNSKEY flag bit (RFC 5011 7)
SEP = 0x0001


class TrustAnchorError(ValueError):
    """A key file or anchor string cannot be used; the message names where."""


class KeyState(str, enum.Enum):
    """RFC 5011 4 key states; the values are the words kresd writes in key files."""

    START = "Start"
    ADDPEND = "AddPend"
    VALID = "Valid"
    MISSING = "Missing"
    REVOKED = "Revoked"
    REMOVED = "Removed"


TRUSTED = (KeyState.VALID, KeyState.MISSING)  # RFC 5011 4.2: only these are anchors


@dataclass
class Anchor:
    owner: dns.name.Name
    rdata: object  # DS or DNSKEY rdata
    ttl: int = DEFAULT_TTL
    state: KeyState = KeyState.VALID
    timer: int | None = None  # seconds since the epoch (kresd writes the same)

    @property
    def rdtype(self) -> int:
        return self.rdata.rdtype

    @property
    def key_tag(self) -> int:
        return self.rdata.key_tag if self.rdtype == T.DS else dns.dnssec.key_id(self.rdata)


@dataclass
class Keyset:
    owner: dns.name.Name
    anchors: list[Anchor]
    filename: str | None = None
    managed: bool = False  # RFC 5011 updates rewrite `filename`
    tracked: bool = False  # refreshed periodically (add_file; not add())
    next_refresh: float | None = None  # None: due now
    written: str | None = None  # the text last written to (or read from) filename
    warned: frozenset = frozenset()  # unmanaged: what was last reported upstream


@dataclass
class Store:
    keysets: dict = field(default_factory=dict)  # dns.name.Name -> Keyset
    insecure: list = field(default_factory=list)  # NTA texts as the config gave them
    hold_down_time: int = DEFAULT_HOLD_DOWN_MS  # ms, trust_anchors.hold_down_time
    refresh_time: int | None = None  # ms, trust_anchors.refresh_time (None: from TTLs)
    keep_removed: int = 0  # Removed keys kept in the file
    rename: object = os.replace  # seam for tests (a crash between write and rename)


def store(settings) -> Store:
    """The settings' trust-anchor store (created empty on first use)."""
    st = getattr(settings, "ta_store", None)
    if st is None:
        st = Store()
        settings.ta_store = st
    return st


# -- queries for the validator -------------------------------------------------------

def closest_ta(settings, name: dns.name.Name, rtype: int | None = None) -> dns.name.Name | None:
    """kresd kr_ta_closest(): the nearest name at or above `name` (for DS: above
    it, DS being parent-side data) with a trust anchor; None when a negative
    trust anchor is met first or no anchor covers the name."""
    tas, ntas = settings.trust_anchors, settings.negative_trust_anchors
    if not tas:
        return None  # validation off (trust_anchors.remove('.')): no walk up the name
    if not ntas and len(tas) == 1 and tas.get(dns.name.root):
        return dns.name.root  # the usual case: only the root's anchor covers everything
    if rtype == T.DS and name != dns.name.root:
        name = name.parent()
    while True:
        if tas.get(name):
            return name
        if name in ntas or name == dns.name.root:
            return None
        name = name.parent()


def is_negative(settings, name: dns.name.Name) -> bool:
    """Is `name` at or below a negative trust anchor (RFC 7646)?"""
    return any(name.is_subdomain(n) for n in settings.negative_trust_anchors)


def anchors(settings, name: dns.name.Name) -> list[dns.rrset.RRset]:
    """The trusted anchors at exactly `name`: a DS RRset and/or a DNSKEY RRset."""
    rds = settings.trust_anchors.get(name) or []
    ks = getattr(settings, "ta_store", None)
    ks = ks.keysets.get(name) if ks is not None else None
    ttl = min((a.ttl for a in ks.anchors), default=DEFAULT_TTL) if ks else DEFAULT_TTL
    out = []
    for rdtype in (T.DS, T.DNSKEY):
        sel = [rd for rd in rds if rd.rdtype == rdtype]
        if sel:
            out.append(dns.rrset.from_rdata_list(name, ttl, sel))
    return out


# -- parsing ---------------------------------------------------------------------------

_STATE_RE = re.compile(r"^\s*([A-Za-z]+):(\d*)")


def _lenient_ds(text: str):
    """A DS whose digest length does not fit its digest type, kept as written
    (kresd loads it; it never matches a key). None if `text` is no such DS."""
    toks = text.split()
    upper = [t.upper() for t in toks]
    if "DS" not in upper:
        return None
    i = upper.index("DS")
    try:
        tag, alg, dtype = int(toks[i + 1]), toks[i + 2], int(toks[i + 3])
        alg = int(alg) if alg.isdigit() else int(dns.dnssec.algorithm_from_text(alg))
        digest = bytes.fromhex("".join(toks[i + 4:]))
        rd = dns.rdtypes.ANY.DS.DS(dns.rdataclass.IN, T.DS, tag, alg, 255, digest)
    except (ValueError, IndexError, dns.exception.DNSException):
        return None
    object.__setattr__(rd, "digest_type", dns.dnssec.DSDigest.make(dtype))  # dnspython checks lengths
    fixed = " ".join(toks[:i + 1] + ["0", "0", "255", "00"])
    return fixed, rd


def _parse_record(text: str, origin, ttl: int):
    """[(owner, ttl, rdata, comment)] of one logical zone-file record."""
    import dns.zonefile  # on the first anchor text: the built-in ones are read without it (boot)

    try:
        rrsets = dns.zonefile.read_rrsets(text, origin=origin, relativize=False, rdclass=None,
                                          default_ttl=ttl)
    except (dns.exception.DNSException, ValueError) as e:
        lenient = _lenient_ds(text.split(";", 1)[0]) if "digest length" in str(e) else None
        if lenient is None:
            msg = str(e).split(": ", 1)[-1] if str(e).startswith("<input>") else str(e)
            raise TrustAnchorError(msg) from None
        fixed, rd = lenient
        comment = text.split(";", 1)[1] if ";" in text else None
        owner, rttl, _ = _parse_record(fixed, origin, ttl)[0][:3]
        return [(owner, rttl, rd, comment)]
    return [(rr.name, rr.ttl, rd, rd.rdcomment) for rr in rrsets for rd in rr]


def _logical_lines(text: str):
    """(line number, text) of each record, joining parentheses across lines;
    a line starting with blanks gets the previous owner (zone-file rule)."""
    buf, start, depth, owner = "", 0, 0, None
    for no, line in enumerate(text.splitlines(), 1):
        body = line.split(";", 1)[0]
        if not buf:
            start = no
            if line[:1] in (" ", "\t") and body.strip() and owner is not None:
                line = owner + " " + line.lstrip()
                body = line.split(";", 1)[0]
        buf = f"{buf} {line}" if buf else line
        depth += body.count("(") - body.count(")")
        if depth <= 0:
            record = buf.split(";", 1)[0]
            if record.strip() and not record.lstrip().startswith("$"):
                owner = record.split()[0]
            yield start, buf
            buf, depth = "", 0
    if buf:
        yield start, buf


def parse(text: str, where: str = "<string>", default_state: KeyState = KeyState.VALID) -> list[Anchor]:
    """Anchors in zone-file text. Records take their state from a kresd comment
    (`; Valid:`, `; AddPend:1700000000`); lines commented out as `; <record> ;
    <State>:<timer>` (kresd's untrusted keys) are read too. Errors name
    `where:line`."""
    out: list[Anchor] = []
    origin, ttl = dns.name.root, DEFAULT_TTL
    for no, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(";"):
            a = _commented(stripped, origin, ttl)
            if a is not None:
                out.append(a)
            continue
        if stripped.startswith("$"):
            origin, ttl = _directive(stripped, origin, ttl, f"{where}:{no}")
            continue
        try:
            recs = _parse_record(stripped, origin, ttl)
        except TrustAnchorError as e:
            raise TrustAnchorError(f"{where}:{no}: cannot parse trust anchor: {e}") from None
        for owner, rttl, rd, comment in recs:
            if rd.rdtype not in (T.DS, T.DNSKEY):
                raise TrustAnchorError(f"{where}:{no}: {owner} {T.to_text(rd.rdtype)}: "
                                       "a trust anchor is a DS or DNSKEY record")
            state, timer = _state(comment, default_state)
            out.append(Anchor(owner, _strip_comment(rd), rttl, state, timer))
    return out


def _directive(line: str, origin, ttl, where):
    toks = line.split(";", 1)[0].split()
    try:
        if toks[0].upper() == "$TTL" and len(toks) == 2:
            return origin, int(toks[1])
        if toks[0].upper() == "$ORIGIN" and len(toks) == 2:
            return dns.name.from_text(toks[1], origin), ttl
    except (ValueError, dns.exception.DNSException) as e:
        raise TrustAnchorError(f"{where}: {e}") from None
    raise TrustAnchorError(f"{where}: unsupported directive '{toks[0]}'")


def _commented(line: str, origin, ttl) -> Anchor | None:
    """kresd writes keys that are not trusted as `; <record> ; <State>:<timer>`."""
    if not line.startswith("; "):
        return None
    try:
        recs = _parse_record(line[2:], origin, ttl)
    except TrustAnchorError:
        return None
    if len(recs) != 1 or recs[0][2].rdtype not in (T.DS, T.DNSKEY):
        return None
    owner, rttl, rd, comment = recs[0]
    state, timer = _state(comment, None)
    return None if state is None else Anchor(owner, _strip_comment(rd), rttl, state, timer)


def _state(comment, default):
    m = _STATE_RE.match(comment or "")
    if m is None:
        return default, None
    try:
        state = KeyState(m.group(1))
    except ValueError:
        return default, int(m.group(2)) if m.group(2) else None
    return state, int(m.group(2)) if m.group(2) else None


def _strip_comment(rd):
    if getattr(rd, "rdcomment", None) is not None:
        object.__setattr__(rd, "rdcomment", None)
    return rd


def read_keyset(anchors_: list[Anchor], where: str) -> Keyset:
    """One keyset from parsed anchors: one owner only, at least one record."""
    if not anchors_:
        raise TrustAnchorError(f"{where}: no trust anchors (DS or DNSKEY records) found")
    owner = anchors_[0].owner
    for a in anchors_:
        if a.owner != owner:
            raise TrustAnchorError(f"{where}: do not mix {a.owner} and {owner} trust anchors in one "
                                   "file or string")
    return Keyset(owner, anchors_)


# -- configuration ---------------------------------------------------------------------

def publish(settings, ks: Keyset) -> int:
    """Make the keyset's trusted keys (Valid, Missing) the anchors of its owner;
    the number published. Without any, the owner has no anchor (as kresd, with
    an error in the log)."""
    trusted = []
    for a in ks.anchors:
        if a.state in TRUSTED and a.rdata not in trusted:
            trusted.append(a.rdata)
    if trusted:
        settings.trust_anchors[ks.owner] = trusted
    else:
        settings.trust_anchors.pop(ks.owner, None)
        log.error("ERROR: no anchors are trusted for %s !", ks.owner)
    return len(trusted)


def _install(settings, ks: Keyset) -> None:
    st = store(settings)
    if ks.owner in st.keysets or settings.trust_anchors.get(ks.owner):
        log.warning("warning: overriding previously set trust anchors for %s", ks.owner)
    st.keysets[ks.owner] = ks
    if publish(settings, ks):
        log.info("installed trust anchors for domain %s are:\n%s", ks.owner,
                 summary(settings, ks.owner).rstrip("\n"))


def builtin_anchors() -> list[Anchor]:
    """ROOT_ANCHORS as parse() reads them, without the zone-file parser
    (dns.zonefile is not imported at boot: every start installs these)."""
    out = []
    for line in ROOT_ANCHORS:
        owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
        out.append(Anchor(dns.name.from_text(owner), dns.rdata.from_text(rdclass, rdtype, rdata), int(ttl)))
    return out


def install_builtin(settings) -> None:
    """The root's built-in anchors (unmanaged, refreshed only to warn, as
    Debian's kresd loads /usr/share/dns/root.key read-only)."""
    ks = read_keyset(builtin_anchors(), "built-in root anchors")
    ks.tracked = True
    store(settings).keysets[ks.owner] = ks
    publish(settings, ks)


def add(settings, text: str, where: str = "trust_anchors.add") -> Keyset:
    """trust_anchors.add(rr): unmanaged anchors of one owner. As kresd 5.6, they
    replace what the owner had (kresd logs 'extending' but publishes only the
    new set); a managed (5011) owner cannot take unmanaged anchors."""
    ks = read_keyset(parse(text, where), where)
    old = store(settings).keysets.get(ks.owner)
    if old is not None and old.managed:
        raise TrustAnchorError(f"{where}: it is impossible to add an unmanaged trust anchor for zone "
                               f"{ks.owner} which already has a managed one")
    _install(settings, ks)
    return ks


def add_file(settings, path: str, readonly: bool = False) -> Keyset:
    """trust_anchors.add_file(path[, readonly]): one owner's anchors from a file;
    a writable file is managed by RFC 5011 (rewritten as keys change)."""
    managed = not readonly
    if managed:
        _check_writable(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise TrustAnchorError(_missing(path, managed)) from None
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or e
        raise TrustAnchorError(f"cannot read trust anchor file '{path}': {why}; provide a readable "
                               "file with DS or DNSKEY records") from None
    ks = read_keyset(parse(text, path), path)
    ks.filename, ks.managed, ks.tracked, ks.written = path, managed, True, text
    if not any(a.state in TRUSTED for a in ks.anchors):
        raise TrustAnchorError(f"{path}: no trusted key (state Valid or Missing) for {ks.owner}")
    _install(settings, ks)
    return ks


def _missing(path: str, managed: bool) -> str:
    hint = ("kresd would bootstrap the root anchors over HTTPS, which kresd-py does not do: "
            if managed else "")
    return (f"trust anchor file '{path}' does not exist; {hint}provide the file (for the root, "
            "e.g. a copy of the distribution's root key, /usr/share/dns/root.key on Debian), "
            "or load a file that must not be rewritten with trust_anchors.add_file(path, true)")


def _check_writable(path: str) -> None:
    """kresd checks that it may create `<path>.lock` (the rewrite needs the directory)."""
    lock = path + ".lock"
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as e:
        raise TrustAnchorError(
            f"write access needed to the directory of trust anchor file '{path}' (RFC 5011 updates "
            f"rewrite it): {e.strerror or e}; or use trust_anchors.add_file(path, true) for a "
            "read-only file") from None
    os.close(fd)
    try:
        os.unlink(lock)
    except OSError:
        pass


def remove(settings, zone: dns.name.Name) -> bool:
    """trust_anchors.remove(zone): drop the zone's anchors (and their updates)."""
    st = store(settings)
    had = st.keysets.pop(zone, None) is not None
    had = settings.trust_anchors.pop(zone, None) is not None or had
    return had


def set_insecure(settings, names: list[str]) -> None:
    """Replace the negative trust anchors (RFC 7646); a name that is a trust
    anchor is refused, as kresd."""
    st = store(settings)
    parsed = []
    for text in names:
        try:
            n = dns.name.from_text(text)
        except dns.exception.DNSException as e:
            raise TrustAnchorError(f"invalid name '{text}': {e}") from None
        if n in st.keysets or settings.trust_anchors.get(n):
            raise TrustAnchorError(f"cannot add NTA {text} because it is TA. "
                                   "Use trust_anchors.remove() instead")
        parsed.append(n)
    settings.negative_trust_anchors[:] = parsed
    st.insecure = list(names)


# -- text ------------------------------------------------------------------------------

def rdata_text(rd) -> str:
    """Presentation of a DS/DNSKEY rdata as kresd (libknot) prints it."""
    if rd.rdtype == T.DS:
        return f"{rd.key_tag} {int(rd.algorithm)} {rd.digest_type} {rd.digest.hex().upper()}"
    return f"{rd.flags} {rd.protocol} {int(rd.algorithm)} {base64.b64encode(rd.key).decode()}"


def anchor_line(a: Anchor) -> str:
    """One key-file line as kresd writes it (state and timer in the comment;
    keys that are not trusted are commented out for older readers)."""
    owner = a.owner.to_text()
    line = (f"{owner:<20}\t{a.ttl}\t{T.to_text(a.rdtype)}\t{rdata_text(a.rdata)} ; "
            f"{a.state.value}:{'' if a.timer is None else a.timer} ; KeyTag:{a.key_tag}\n")
    return line if a.state in TRUSTED else "; " + line


def keyset_text(ks: Keyset) -> str:
    return "".join(anchor_line(a) for a in ks.anchors)


def summary(settings, owner: dns.name.Name | None = None) -> str:
    """trust_anchors.summary([owner]): kresd's text (NTAs first, then each keyset)."""
    st = store(settings)
    if owner is not None:
        return _ta_str(settings, owner)
    out, seen, count = [], set(), 0
    for nta in settings.negative_trust_anchors:
        seen.add(nta)
        out.append(_ta_str(settings, nta))
    names = list(st.keysets) + [n for n, v in settings.trust_anchors.items() if v and n not in st.keysets]
    for name in names:
        if name not in seen:
            count += 1
            out.append(_ta_str(settings, name))
    if count == 0:
        out.append("No valid trust anchors, DNSSEC validation is disabled\n")
    return "".join(out)


def _ta_str(settings, owner) -> str:
    st = store(settings)
    msg = f"{owner} is negative trust anchor\n" if owner in settings.negative_trust_anchors else ""
    ks = st.keysets.get(owner)
    if ks is None and settings.trust_anchors.get(owner):  # set directly in settings
        ks = Keyset(owner, [Anchor(owner, rd) for rd in settings.trust_anchors[owner]])
    if ks is None:
        return msg or f"{owner} has no explicit trust anchors\n"
    if msg:
        msg += "WARNING! negative trust anchor also has an explicit TA\n"
    return msg + keyset_text(ks)


# -- RFC 5011 --------------------------------------------------------------------------

def _unrevoked(key):
    if not key.flags & REVOKE:
        return key
    return key.replace(flags=key.flags & ~REVOKE)


def _matches(owner, a_rd, rd) -> bool:
    """kresd ta_find: the same key (DNSKEYs compared without their flags, so a
    revoked key is still itself), a DS and the key it names."""
    if a_rd.rdtype == T.DNSKEY and rd.rdtype == T.DNSKEY:
        return (a_rd.algorithm, a_rd.protocol, a_rd.key) == (rd.algorithm, rd.protocol, rd.key)
    if a_rd.rdtype == T.DS and rd.rdtype == T.DS:
        return a_rd == rd
    ds, key = (a_rd, rd) if a_rd.rdtype == T.DS else (rd, a_rd)
    key = _unrevoked(key)
    if ds_matches(owner, key, ds):
        return True
    # a digest we cannot compute (unknown or malformed): kresd matches by key tag
    return ds.key_tag == dns.dnssec.key_id(key) and ds.algorithm == key.algorithm and \
        ds.digest_type not in (1, 2, 4)


def _find(ks: Keyset, rd) -> Anchor | None:
    for a in ks.anchors:
        if _matches(ks.owner, a.rdata, rd):
            if a.rdtype == T.DS and rd.rdtype == T.DNSKEY:
                a.rdata = _unrevoked(rd)  # the DNSKEY supersedes its DS (kresd does the same)
            return a
    return None


def _self_signed(zone, rrset, key, sigs, now) -> bool:
    """RFC 5011 2.1: a revoked key counts only when it signs the DNSKEY RRset."""
    if sigs is None:
        return True
    tag = dns.dnssec.key_id(key)
    keys = {zone: dns.rrset.from_rdata_list(zone, rrset.ttl, [key])}
    for sig in sigs:
        if sig.key_tag != tag or sig.algorithm != key.algorithm:
            continue
        try:
            dns.dnssec.validate_rrsig(rrset, sig, keys, now=now, policy=dns.dnssec.allow_all_policy)
            return True
        except Exception:  # a bad or unsupported signature does not revoke
            continue
    return False


def _present(ks: Keyset, rd, rrset, sigs, now: int, hold: int) -> None:
    """RFC 5011 4.1 events for a KSK in the new set (kresd ta_present)."""
    if not rd.flags & SEP:
        return
    revoked = bool(rd.flags & REVOKE) and _self_signed(ks.owner, rrset, rd, sigs, now)
    if rd.flags & REVOKE and not revoked:
        return  # a REVOKE bit without the key's own signature is ignored
    a = _find(ks, rd)
    if a is None:
        if not revoked:  # NewKey
            ks.anchors.append(Anchor(ks.owner, rd, rrset.ttl, KeyState.ADDPEND, now + hold))
            log_upd.info("key: %d state: %s", dns.dnssec.key_id(rd), KeyState.ADDPEND.value)
        return
    a.ttl = rrset.ttl
    if a.state is KeyState.MISSING:  # KeyPres
        a.state, a.timer = KeyState.VALID, None
    if a.state in TRUSTED and revoked:  # RevBit
        a.state, a.timer = KeyState.REVOKED, now + hold
    if a.state is KeyState.REVOKED and a.timer is not None and a.timer <= now:  # RemTime
        a.state, a.timer = KeyState.REMOVED, None
    if a.state is KeyState.ADDPEND and a.timer is not None and a.timer <= now:  # AddTime
        a.state, a.timer = KeyState.VALID, None
        log_upd.info("key: %d state: %s", a.key_tag, a.state.value)


def _missing_key(a: Anchor, now: int, hold: int) -> bool:
    """KeyRem for an anchor absent from the new set; False: drop it (kresd ta_missing)."""
    if a.state is KeyState.VALID:
        a.state, a.timer = KeyState.MISSING, now + hold
    elif a.state is KeyState.MISSING and a.timer is not None and a.timer <= now:
        a.state = KeyState.REMOVED
        log_upd.info("key: %d removed because missing for too long", a.key_tag)
        return False
    elif a.state is KeyState.ADDPEND:
        log_upd.info("key: %d purging", a.key_tag)
        return False
    return True


def update(ks: Keyset, rrset, now: int, hold_ms: int, keep_removed: int, sigs=None) -> None:
    """One RFC 5011 step of a managed keyset against a validated DNSKEY RRset."""
    hold = hold_ms // SECOND
    keep = []
    for a in ks.anchors:
        kept = True
        if not any(_matches(ks.owner, a.rdata, rd) for rd in rrset):
            # kresd ad hoc: a Missing key (RFC 5011 keeps it forever) goes after 4 hold-downs
            kept = _missing_key(a, now, hold * 4)
        if a.state is KeyState.REMOVED:
            if keep_removed > 0:
                keep_removed -= 1
            else:
                kept = False
        if kept:
            keep.append(a)
    ks.anchors = keep
    for rd in rrset:
        _present(ks, rd, rrset, sigs, now, hold)


def _unmanaged_check(ks: Keyset, rrset) -> None:
    """kresd check_upstream: warn that a read-only key file is getting stale."""
    news = set()
    for rd in rrset:
        if not rd.flags & SEP:
            continue
        found = any(_matches(ks.owner, a.rdata, rd) for a in ks.anchors)
        if found == bool(rd.flags & REVOKE):
            news.add(("revoked" if found else "new", dns.dnssec.key_id(rd)))
    for a in ks.anchors:
        if not any(_matches(ks.owner, a.rdata, rd) for rd in rrset):
            news.add(("missing", a.key_tag))
    news = frozenset(news)
    if news and news != ks.warned:
        where = ks.filename or "the built-in anchors"
        log_upd.warning("you need to update package with trust anchors in \"%s\" before it "
                        "breaks (%s)", where, ", ".join(f"{w} key {t}" for w, t in sorted(news)))
    ks.warned = news


def observe_dnskey(settings, zone: dns.name.Name, rrset, now: float, sigs=None) -> None:
    """RFC 5011 hook: the validator saw this validated DNSKEY RRset of `zone`.
    A managed keyset moves its key states and rewrites its file when that
    changed the file's text; an unmanaged one only warns. Both reschedule their
    refresh."""
    st = getattr(settings, "ta_store", None)
    ks = st.keysets.get(zone) if st is not None else None
    if ks is None:
        return
    now = int(now)
    if not ks.managed:
        _unmanaged_check(ks, rrset)
        ks.next_refresh = now + refresh_interval(st, ks, ok=True)
        return
    update(ks, rrset, now, st.hold_down_time, st.keep_removed, sigs)
    text = keyset_text(ks)
    if text != ks.written:
        if write_atomic(ks.filename, text, st.rename):
            ks.written = text
    publish(settings, ks)
    ks.next_refresh = now + refresh_interval(st, ks, ok=True)


def write_atomic(path: str, text: str, rename=os.replace) -> bool:
    """Write `text` to a temporary file beside `path`, fsync it, rename it over
    `path` (so a crash leaves the old file or the new one, never half of
    one). False (logged) when that fails; the old file stays."""
    tmp = f"{path}.lock.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        rename(tmp, path)
    except OSError as e:
        log_upd.error("cannot rewrite trust anchor file '%s': %s", path, e.strerror or e)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    try:  # make the rename itself durable
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return True


# -- refresh timing (RFC 5011 2.3) ---------------------------------------------------

def refresh_interval(st: Store, ks: Keyset, ok: bool = True) -> float:
    """Seconds to the next DNSKEY refresh: trust_anchors.refresh_time if set;
    else after a good refresh max(1 h, min(15 days, TTL/2)), after a failed one
    max(1 h, min(1 day, TTL/10)) (kresd ta_update active_refresh)."""
    if st.refresh_time is not None:
        return st.refresh_time / SECOND
    cap, frac = (15 * DAY / SECOND, 0.5) if ok else (DAY / SECOND, 0.1)
    low = min([cap] + [frac * a.ttl for a in ks.anchors])
    return max(HOUR / SECOND, low)


def refresh_due(settings, zone: dns.name.Name, now: float) -> bool:
    """Should the DNSKEY of `zone` be asked again now? (first time: at once).
    Only zones loaded with add_file (and the built-in root) that still have a
    published anchor are refreshed: without one the answer cannot be validated."""
    st = getattr(settings, "ta_store", None)
    ks = st.keysets.get(zone) if st is not None else None
    if ks is None or not ks.tracked or not settings.trust_anchors.get(zone):
        return False
    return ks.next_refresh is None or now >= ks.next_refresh


def refresh_zones(settings, now: float) -> list[dns.name.Name]:
    """The tracked zones whose refresh is due."""
    st = getattr(settings, "ta_store", None)
    return [] if st is None else [z for z in st.keysets if refresh_due(settings, z, now)]


def refresh_failed(settings, zone: dns.name.Name, now: float) -> None:
    """The refresh query failed (no answer, bogus): retry sooner."""
    st = getattr(settings, "ta_store", None)
    ks = st.keysets.get(zone) if st is not None else None
    if ks is not None:
        ks.next_refresh = now + refresh_interval(st, ks, ok=False)
