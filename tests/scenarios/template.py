"""Rendering kresd.j2 for one scenario run, as Deckard does.

Owns: the Jinja2 variables Deckard derives from a scenario header (its
`parse_config`: lower-case "true"/"false" strings, FEATURES dict/lists,
TRUST_ANCHOR_FILES paths, SELF_ADDR, WORKING_DIR), writing the trust-anchor
files (`WORKING_DIR/ta/<domain>.key`, one per domain, holding that domain's
`trust-anchor` lines) and the rendered `WORKING_DIR/config`.
Must not: start processes, touch the network, or interpret the rendered Lua
(the engine or the binary does).

Both runners use this module: the binary runner hands the file to `kresd -n`,
the in-process runner loads the same text through kresd.engine.Engine, so a
scenario means the same thing in both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import dns.name
import jinja2

from tests import shared_data

from .config import DEFAULT_ROOT_NAME, Context

TA_SUBDIR = "ta"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def trust_anchor_groups(ctx: Context) -> dict:
    """{canonical domain text: [trust-anchor lines]} in order of first appearance."""
    groups: dict[str, list] = {}
    for line in ctx.trust_anchors:
        text = line.strip().strip("\"'")
        domain = dns.name.from_text(text.split()[0]).canonicalize().to_text()
        groups.setdefault(domain, []).append(text)
    return groups


def write_trust_anchors(ctx: Context, workdir: Path) -> list:
    """Write one file per domain under workdir/ta; absolute paths, in order."""
    paths = []
    for domain, lines in trust_anchor_groups(ctx).items():
        path = (Path(workdir) / TA_SUBDIR / f"{domain}.key").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        paths.append(str(path))
    return paths


def variables(ctx: Context, qmin: bool, workdir: Path, ta_files: list) -> dict:
    """The template context Deckard builds (absent stub-addr: ROOT_ADDR undefined)."""
    out = {
        "DO_NOT_QUERY_LOCALHOST": _bool(ctx.do_not_query_localhost),
        "NEGATIVE_TRUST_ANCHORS": list(ctx.negative_trust_anchors),
        "FEATURES": ctx.features,
        "HARDEN_GLUE": _bool(ctx.harden_glue),
        "INSTALL_DIR": str(workdir),
        "QMIN": _bool(qmin),
        "TRUST_ANCHORS": list(ctx.trust_anchors),
        "TRUST_ANCHOR_FILES": list(ta_files),
        "FORWARD_ADDR": ctx.forward_addr,
        "DO_IP6": _bool(ctx.do_ip6),
        "DO_IP4": _bool(ctx.do_ip4),
        # Deckard's default has no trailing dot; a stub-name header is used verbatim
        "ROOT_NAME": "k.root-servers.net" if ctx.root_name == DEFAULT_ROOT_NAME else ctx.root_name,
        "SELF_ADDR": ctx.self_addr,
        "WORKING_DIR": str(workdir),
    }
    if ctx.root_addr:
        out["ROOT_ADDR"] = ctx.root_addr
    return out


def render_text(ctx: Context, qmin: bool, workdir: Path, ta_files: list,
                template_path: Optional[Path] = None) -> str:
    """The rendered config; the template is shared_data.template_path() unless given."""
    template_path = Path(template_path or shared_data.template_path())
    if not template_path.is_file():
        raise FileNotFoundError(shared_data.missing_reason(template_path))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_path.parent)),
                             keep_trailing_newline=True)
    return env.get_template(template_path.name).render(**variables(ctx, qmin, workdir, ta_files))


def render(ctx: Context, qmin: bool, workdir: Path, template_path: Optional[Path] = None) -> str:
    """Write trust anchors and WORKING_DIR/config; returns the config text."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ta_files = write_trust_anchors(ctx, workdir)
    text = render_text(ctx, qmin, workdir, ta_files, template_path)
    (workdir / "config").write_text(text, encoding="utf-8")
    return text
