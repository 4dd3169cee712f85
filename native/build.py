"""cffi build script for native._native (API mode, out-of-line).

Owns: how the C sources in native/ become the extension module `native._native`:
the cdef (read from the CDEF-BEGIN/CDEF-END section of kresd_native.h), the
sources (pkt.c, key.c, answer.c, fastpath.c, ratelimit.c, reply.c) and the compiler flags.
Must not: contain C logic, or be imported at run time (only setuptools'
`cffi_modules=["native/build.py:ffibuilder"]` and developers run it).

Development build in place (writes native/_native*.so next to this file):

    .venv/bin/python native/build.py
"""
from __future__ import annotations

import os
import re
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = "kresd_native.h"
SOURCES = ("pkt.c", "key.c", "answer.c", "fastpath.c", "ratelimit.c", "reply.c")
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra"]


def read_cdef(header_path: str = os.path.join(HERE, HEADER)) -> str:
    """The cffi-parsable part of kresd_native.h."""
    with open(header_path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"/\* CDEF-BEGIN \*/(.*)/\* CDEF-END \*/", text, re.S)
    if m is None:
        raise RuntimeError(f"{header_path}: no CDEF-BEGIN/CDEF-END section")
    return m.group(1)


def _rel(name: str) -> str:
    # setuptools wants source paths relative to the project root (the cwd of
    # `pip install` / `pip wheel`, also in an isolated build); an absolute
    # path would work too but ends up in the build's SOURCES metadata.
    path = os.path.join(HERE, name)
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


def make_builder(absolute: bool = False) -> cffi.FFI:
    """A configured FFI builder; absolute=True for ffi.compile(), which chdirs."""
    ffi = cffi.FFI()
    ffi.cdef(read_cdef())
    where = (lambda n: os.path.join(HERE, n)) if absolute else _rel
    ffi.set_source(
        "native._native",
        '#include "kresd_native.h"\n',
        sources=[where(s) for s in SOURCES],
        include_dirs=[HERE],
        extra_compile_args=CFLAGS,
        depends=[os.path.join(HERE, HEADER), os.path.join(HERE, "wire.h")],
    )
    return ffi


ffibuilder = make_builder()


def build_in_place() -> str:
    """Compile native/_native*.so next to this file; returns its path."""
    tmpdir = os.path.join(HERE, "build", "cffi")
    os.makedirs(tmpdir, exist_ok=True)
    # compile() names the output after the module ("native._native"): with
    # tmpdir = <tmp>, it lands in <tmp>/native/_native*.so, so build in a
    # scratch dir and move the .so into place.
    so_path = make_builder(absolute=True).compile(tmpdir=tmpdir, verbose=False)
    target = os.path.join(HERE, os.path.basename(so_path))
    os.replace(so_path, target)
    return target


if __name__ == "__main__":
    sys.stdout.write(build_in_place() + "\n")
