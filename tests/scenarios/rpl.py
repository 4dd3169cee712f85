"""Parser of the replay (.rpl) scenario format (Unbound testbound / Deckard).

Owns: turning a .rpl file into plain data (`Scenario`: header pairs, ranges,
steps, entries with their dns.message.Message templates), and the format's
text rules: comments, quoting, booleans, header keys, record syntax.
Must not: know about the resolver, Settings, the fake network or the clock
(tests/scenarios/replay.py and config.py do), or decide what a MATCH means
(tests/scenarios/match.py does).

Format notes (see scenarios/README.md of the shared data, tests/shared_data.py):
- header up to CONFIG_END: `key: value`; `;` starts a comment line, `#` a
  comment anywhere; values may be quoted; unknown keys are an error;
- body: `;` starts a comment (outside double quotes);
- records: `owner [ttl] [class] type rdata`, names relative to the root,
  default TTL 3600 and class IN, as Deckard builds them;
- every entry's message carries EDNS0 with a 4096-byte buffer unless an
  `EDNS` line says otherwise (`EDNS [version] [bufsize] [nsid[=hex]]`,
  bufsize 0 = no EDNS; Deckard's Entry.set_edns).
"""
from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

DEFAULT_TTL = 3600
DEFAULT_PAYLOAD = 4096

HEADER_KEYS = frozenset({
    "stub-addr", "stub-name", "query-minimization", "harden-glue",
    "do-not-query-localhost", "trust-anchor", "domain-insecure",
    "val-override-date", "val-override-timestamp", "do-ip4", "do-ip6",
    "forward-addr", "force-ipv6", "features", "feature-list",
})
MATCH_ELEMENTS = frozenset({
    "opcode", "qtype", "qname", "qcase", "subdomain", "flags", "rcode",
    "question", "answer", "authority", "additional", "edns", "nsid", "all",
    "answertypes", "answerrrsigs", "TCP", "ttl",
})
MATCH_ALL = ("opcode", "qtype", "qname", "flags", "rcode", "answer", "authority", "additional")
ADJUST_ELEMENTS = frozenset({"copy_id", "copy_query", "raw_id", "do_not_answer"})
HEADER_FLAGS = ("QR", "AA", "TC", "RD", "RA", "AD", "CD")
SECTIONS = ("QUESTION", "ANSWER", "AUTHORITY", "ADDITIONAL")
STEP_TYPES = ("QUERY", "CHECK_ANSWER", "CHECK_OUT_QUERY", "REPLY", "TIME_PASSES")
ENTRY_KEYWORDS = frozenset({
    "MATCH", "ADJUST", "REPLY", "FLAGS", "MANDATORY", "TSIG", "SECTION", "RAW",
    "EDNS", "ENTRY_END",
})
_CLASS_RE = re.compile(r"^(IN|CH|HS|NONE|ANY|CLASS\d+)$", re.IGNORECASE)


class RplError(Exception):
    """A scenario file that does not follow the format (file, line, message)."""

    def __init__(self, path: str, line: int, msg: str):
        super().__init__(f"{path}:{line}: {msg}")
        self.path, self.line, self.msg = path, line, msg


def str2bool(value: str) -> bool:
    """README: yes/true/on/1 (any case) are true, anything else is false."""
    return value.strip().lower() in ("yes", "true", "on", "1")


@dataclass
class Entry:
    """One ENTRY_BEGIN..ENTRY_END block."""

    line: int  # line of ENTRY_BEGIN, for messages
    match: frozenset = frozenset()  # expanded MATCH elements (all/question expanded)
    has_match: bool = False  # a MATCH line was present
    adjust: frozenset = frozenset()
    reply_words: tuple = ()  # the REPLY/FLAGS words as written
    mandatory: bool = False
    tsig: Optional[tuple] = None  # (keyname, secret); parsed, not applied
    raw: Optional[bytes] = None
    sections_seen: tuple = ()
    rcode: Optional[int] = None  # from the REPLY line; applied after EDNS
    message: dns.message.Message = field(default_factory=dns.message.Message)

    @property
    def do_bit(self) -> bool:
        return bool(self.message.ednsflags & dns.flags.DO)

    def describe(self) -> str:
        q = self.message.question
        what = f"{q[0].name} {dns.rdatatype.to_text(q[0].rdtype)}" if q else "<no question>"
        return f"entry at line {self.line} ({what})"


@dataclass
class Range:
    first: int
    last: int
    line: int
    addresses: list = field(default_factory=list)
    entries: list = field(default_factory=list)

    def covers(self, step_id: int) -> bool:
        return self.first <= step_id <= self.last


@dataclass
class Step:
    id: int
    type: str  # one of STEP_TYPES
    line: int
    elapse: int = 0  # TIME_PASSES ELAPSE seconds
    args: tuple = ()  # extra words after the type (ignored, as Deckard does)
    entry: Optional[Entry] = None


@dataclass
class Scenario:
    path: str
    name: str  # file stem
    title: str = ""
    header: list = field(default_factory=list)  # [(key, value)] in file order
    ranges: list = field(default_factory=list)
    steps: list = field(default_factory=list)

    def header_values(self, key: str) -> list:
        return [v for k, v in self.header if k == key]

    def header_value(self, key: str) -> Optional[str]:
        values = self.header_values(key)
        return values[-1] if values else None


# ---------------------------------------------------------------- lines

def strip_body_comment(line: str) -> str:
    """Cut a `;` comment that is not inside double quotes."""
    quoted = escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
            continue
        if char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return line[:i]
    return line


class _Lines:
    """Cursor over the meaningful (comment-stripped, non-empty) body lines."""

    def __init__(self, path: str, lines: list, start: int):
        self.path = path
        self._items = []
        for no, raw in enumerate(lines[start:], start + 1):
            text = strip_body_comment(raw).strip()
            if text:
                self._items.append((no, text))
        self._pos = 0

    def peek(self) -> Optional[tuple]:
        return self._items[self._pos] if self._pos < len(self._items) else None

    def next(self, what: str) -> tuple:
        item = self.peek()
        if item is None:
            raise RplError(self.path, self.last_line(), f"unexpected end of file, expected {what}")
        self._pos += 1
        return item

    def last_line(self) -> int:
        return self._items[-1][0] if self._items else 0

    def error(self, line: int, msg: str) -> RplError:
        return RplError(self.path, line, msg)


# ---------------------------------------------------------------- header

def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_header(path: str, lines: list) -> tuple:
    """Return ([(key, value)], index of the line after CONFIG_END)."""
    pairs = []
    for index, raw in enumerate(lines):
        text = raw.strip()
        if text.startswith("CONFIG_END"):
            return pairs, index + 1
        if text.startswith("SCENARIO_BEGIN"):  # no header at all
            return pairs, index
        if not text or text.startswith(";"):
            continue
        text = text.split("#", 1)[0].strip()
        if not text:
            continue
        if ":" not in text:
            raise RplError(path, index + 1, f"header line without 'key: value': {text!r}")
        key, value = (part.strip() for part in text.split(":", 1))
        if key not in HEADER_KEYS:
            raise RplError(path, index + 1, f"unknown header key {key!r}")
        pairs.append((key, _unquote(value)))
    raise RplError(path, len(lines), "no CONFIG_END")


# ---------------------------------------------------------------- records

def _split_first(text: str) -> tuple:
    parts = text.split(None, 1)
    return (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")


def _owner(text: str) -> dns.name.Name:
    if text == "@":
        return dns.name.root
    return dns.name.from_text(text, origin=dns.name.root)


def parse_record(text: str, question: bool) -> tuple:
    """`owner [ttl] [class] type [rdata]` -> (name, ttl, rdclass, rdtype, rdata|None).

    TTL and class may come in either order (zone-file syntax); rdata names are
    relative to the root. Question records have no TTL and no rdata.
    """
    owner_text, rest = _split_first(text)
    ttl, rdclass = DEFAULT_TTL, dns.rdataclass.IN
    seen_ttl = seen_class = False
    token, rest = _split_first(rest)
    while token:
        if token.isdigit() and not seen_ttl and not question:
            ttl, seen_ttl = int(token), True
        elif _CLASS_RE.match(token) and not seen_class:
            rdclass, seen_class = dns.rdataclass.from_text(token), True
        else:
            break
        token, rest = _split_first(rest)
    if not token:
        raise ValueError(f"record without a type: {text!r}")
    rdtype = dns.rdatatype.from_text(token)
    name = _owner(owner_text)
    if question:
        if rest.strip():
            raise ValueError(f"question record with data: {text!r}")
        return name, ttl, rdclass, rdtype, None
    if not rest.strip():
        raise ValueError(f"record without rdata: {text!r}")
    rdata = dns.rdata.from_text(rdclass, rdtype, rest.strip(), origin=dns.name.root,
                                relativize=False)
    return name, ttl, rdclass, rdtype, rdata


def _join_parens(first: str, lines: _Lines) -> str:
    """Records may continue over lines inside ( ... ) as in zone files."""
    text = first
    while text.count("(") > text.count(")"):
        _, more = lines.next("closing parenthesis")
        text += " " + more
    return text


def _add_record(entry: Entry, section: str, text: str) -> None:
    name, ttl, rdclass, rdtype, rdata = parse_record(text, section == "QUESTION")
    msg = entry.message
    if section == "QUESTION":
        msg.question.append(dns.rrset.RRset(name, rdclass, rdtype))
        return
    covers = rdata.covers() if rdtype == dns.rdatatype.RRSIG else dns.rdatatype.NONE
    rrset = dns.rrset.RRset(name, rdclass, rdtype, covers)
    rrset.add(rdata, ttl)
    # one record per RRset, file order kept (Deckard's one_rr_per_rrset)
    {"ANSWER": msg.answer, "AUTHORITY": msg.authority, "ADDITIONAL": msg.additional}[section].append(rrset)


# ---------------------------------------------------------------- entries

def _apply_reply_words(entry: Entry, words: list, lines: _Lines, line: int) -> None:
    flags, rcode, opcode = 0, None, None
    for word in words:
        upper = word.upper()
        if upper in HEADER_FLAGS:
            flags |= dns.flags.from_text(upper)
        elif upper == "DO":
            entry.message.ednsflags |= dns.flags.DO
        elif _is_rcode(upper):
            if rcode is not None:
                raise lines.error(line, "more than one rcode")
            rcode = dns.rcode.from_text(upper)
        elif _is_opcode(upper):
            opcode = dns.opcode.from_text(upper)
        else:
            raise lines.error(line, f"unknown REPLY/FLAGS word {word!r}")
    entry.reply_words = tuple(words)
    entry.message.flags = flags
    if opcode is not None:
        entry.message.set_opcode(opcode)
    entry.rcode = rcode


def _is_rcode(word: str) -> bool:
    try:
        dns.rcode.from_text(word)
    except dns.rcode.UnknownRcode:
        return False
    return not word.isdigit()


def _is_opcode(word: str) -> bool:
    try:
        dns.opcode.from_text(word)
    except dns.opcode.UnknownOpcode:
        return False
    return not word.isdigit()


def _apply_edns(entry: Entry, words: list) -> None:
    """EDNS [version] [bufsize] [nsid[=hex]] (Deckard Entry.set_edns)."""
    version, bufsize = 0, DEFAULT_PAYLOAD
    words = list(words)
    if words and words[0].isdigit():
        version = int(words.pop(0))
    if words and words[0].isdigit():
        bufsize = int(words.pop(0))
    if bufsize == 0:
        entry.message.use_edns(False)
        return
    options = []
    for word in words:
        key, _, value = word.partition("=")
        if key.lower() == "nsid":
            options.append(dns.edns.GenericOption(dns.edns.NSID, binascii.unhexlify(value)))
    ednsflags = entry.message.ednsflags
    entry.message.use_edns(version, ednsflags, bufsize, options=options)


def _expand_match(words: list) -> set:
    out = set()
    for word in words:
        if word == "all":
            out.update(MATCH_ALL)
        elif word == "question":
            out.update(("qtype", "qname"))
        else:
            out.add(word)
    return out


def _entry_line(entry: Entry, keyword: str, words: list, line: int, lines: _Lines,
                state: dict) -> None:
    if keyword == "MATCH":
        bad = [w for w in words if w not in MATCH_ELEMENTS]
        if bad or not words:
            raise lines.error(line, f"unknown MATCH element(s) {bad or words}")
        entry.match = frozenset(entry.match | _expand_match(words))
        entry.has_match = True
    elif keyword == "ADJUST":
        bad = [w for w in words if w not in ADJUST_ELEMENTS]
        if bad:
            raise lines.error(line, f"unknown ADJUST element(s) {bad}")
        entry.adjust = frozenset(entry.adjust | set(words))
    elif keyword in ("REPLY", "FLAGS"):
        _apply_reply_words(entry, words, lines, line)
    elif keyword == "MANDATORY":
        entry.mandatory = True
    elif keyword == "TSIG":
        entry.tsig = tuple(words)
    elif keyword == "EDNS":
        _apply_edns(entry, words)
    elif keyword == "SECTION":
        if len(words) != 1 or words[0].upper() not in SECTIONS:
            raise lines.error(line, f"bad SECTION line {words}")
        state["section"] = words[0].upper()
        entry.sections_seen += (state["section"],)
    elif keyword == "RAW":
        hex_line, hex_text = lines.next("RAW hex data")
        try:
            entry.raw = binascii.unhexlify("".join(hex_text.split()))
        except (binascii.Error, ValueError) as exc:
            raise lines.error(hex_line, f"bad RAW hex: {exc}") from None


def parse_entry(lines: _Lines, begin_line: int) -> Entry:
    entry = Entry(line=begin_line)
    entry.message.use_edns(0, 0, DEFAULT_PAYLOAD)
    state = {"section": None}
    while True:
        line, text = lines.next("ENTRY_END")
        keyword, rest = _split_first(text)
        if keyword == "ENTRY_END":
            break
        if keyword in ENTRY_KEYWORDS:
            _entry_line(entry, keyword, rest.split(), line, lines, state)
            continue
        if state["section"] is None:
            raise lines.error(line, f"unexpected line in entry: {text!r}")
        try:
            _add_record(entry, state["section"], _join_parens(text, lines))
        except (ValueError, KeyError, dns.exception.DNSException) as exc:
            raise lines.error(line, f"bad record {text!r}: {exc}") from None
    if entry.rcode is not None:
        entry.message.set_rcode(entry.rcode)  # after EDNS: extended rcodes
    return entry


# ---------------------------------------------------------------- body

def _parse_range(lines: _Lines, line: int, words: list) -> Range:
    if len(words) < 2 or not all(w.isdigit() for w in words[:2]):
        raise lines.error(line, "RANGE_BEGIN needs <first-step> <last-step>")
    rng = Range(first=int(words[0]), last=int(words[1]), line=line)
    rng.addresses.extend(words[2:3])
    while True:
        no, text = lines.next("RANGE_END")
        keyword, rest = _split_first(text)
        if keyword == "RANGE_END":
            return rng
        if keyword == "ADDRESS":
            rng.addresses.extend(rest.split())
        elif keyword == "ENTRY_BEGIN":
            rng.entries.append(parse_entry(lines, no))
        else:
            raise lines.error(no, f"unexpected line in RANGE: {text!r}")


def _parse_step(lines: _Lines, line: int, words: list) -> Step:
    if len(words) < 2 or not words[0].isdigit():
        raise lines.error(line, "STEP needs <id> <type>")
    step = Step(id=int(words[0]), type=words[1], line=line, args=tuple(words[2:]))
    if step.type not in STEP_TYPES:
        raise lines.error(line, f"unknown STEP type {step.type!r}")
    if step.type == "TIME_PASSES":
        if len(words) < 4 or words[2] != "ELAPSE" or not words[3].isdigit():
            raise lines.error(line, "TIME_PASSES needs ELAPSE <seconds>")
        step.elapse, step.args = int(words[3]), ()
    nxt = lines.peek()
    if nxt is not None and nxt[1].split()[0] == "ENTRY_BEGIN":
        lines.next("ENTRY_BEGIN")
        step.entry = parse_entry(lines, nxt[0])
    if step.type in ("QUERY", "CHECK_ANSWER", "REPLY") and step.entry is None:
        raise lines.error(line, f"STEP {step.type} needs an ENTRY")
    return step


def _parse_body(scn: Scenario, lines: _Lines) -> None:
    line, text = lines.next("SCENARIO_BEGIN")
    keyword, title = _split_first(text)
    if keyword != "SCENARIO_BEGIN":
        raise lines.error(line, f"expected SCENARIO_BEGIN, got {text!r}")
    scn.title = title
    while True:
        line, text = lines.next("SCENARIO_END")
        keyword, rest = _split_first(text)
        if keyword == "SCENARIO_END":
            break
        if keyword == "RANGE_BEGIN":
            scn.ranges.append(_parse_range(lines, line, rest.split()))
        elif keyword == "STEP":
            scn.steps.append(_parse_step(lines, line, rest.split()))
        else:
            raise lines.error(line, f"unexpected line: {text!r}")
    ids = [s.id for s in scn.steps]
    if ids != sorted(ids):
        raise lines.error(line, "STEP ids are not increasing")


def parse_text(text: str, path: str = "<string>") -> Scenario:
    lines = text.splitlines()
    scn = Scenario(path=path, name=Path(path).stem)
    scn.header, start = parse_header(path, lines)
    _parse_body(scn, _Lines(path, lines, start))
    return scn


def parse_file(path) -> Scenario:
    path = str(path)
    with open(path, encoding="utf-8") as handle:
        return parse_text(handle.read(), path)


def scenario_files(folder, pattern: str = "*.rpl") -> Iterator[Path]:
    return iter(sorted(Path(folder).glob(pattern)))
