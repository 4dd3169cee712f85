"""Top-down tree of a py-spy collapsed-stack file (`py-spy record --format raw`).

Owns: reading the file and printing, under the frames matching a pattern, the
call tree down to a share threshold (a developer tool for the miss profile).
Must not: be imported by the resolver.

    tools/spytree.py FILE [--root PATTERN] [--min 0.5] [--depth 6]
"""
from __future__ import annotations

import argparse
import collections


def _frame(f: str) -> str:
    name, _, loc = f.partition(" (")
    return f"{name} {loc.rsplit('/', 1)[-1].split(':')[0].rstrip(')')}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--root", default="Handle._run")
    ap.add_argument("--min", type=float, default=0.5)
    ap.add_argument("--depth", type=int, default=6)
    a = ap.parse_args()
    tree: dict = {}
    total = 0
    for line in open(a.file):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(n)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        idx = next((i for i, f in enumerate(frames) if a.root in f), None)
        if idx is None:
            continue
        node = tree
        for f in frames[idx:idx + a.depth + 1]:
            ent = node.setdefault(f, [0, {}])
            ent[0] += n
            node = ent[1]

    def show(node, indent):
        for f, (n, kids) in sorted(node.items(), key=lambda kv: -kv[1][0]):
            if 100 * n / total < a.min:
                continue
            print(f"{'  ' * indent}{100 * n / total:5.1f} {f}")
            show(kids, indent + 1)

    print(f"{total} samples")
    show(tree, 0)


if __name__ == "__main__":
    main()
