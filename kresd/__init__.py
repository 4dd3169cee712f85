"""kresd-py's daemon package; importing it prepares a short boot path.

Owns: three import-time measures that keep the time from exec to the first
answer short (it bounds how long a restart leaves clients unanswered):
- In the kresd program itself (the console script, `python -m kresd`; not a
  test or tool that imports the package), the cyclic garbage collector is
  paused for the boot (~5 ms of collections over objects that nearly all live as
  long as the process: modules, classes, the config) and `boot_done()`, called
  by the worker once its sockets serve, freezes what the boot made (later
  collections never scan it again) and turns collection back on.
- `dns.dnssec` (and through it `cryptography`, ~25 ms) is registered as a lazy
  module: every `import dns.dnssec` binds it at once and it executes on the
  first attribute access, i.e. on the first validation, key tag or NSEC3 hash,
  not at boot. Trust anchors are still parsed and installed by the config
  before any answer is served; only the crypto import moves later.
- dnspython's optional-feature checks (`dns._features.have`) are answered
  without `importlib.metadata` (~20 ms of imports) where a required package
  is plainly not importable, or its module reports its version; otherwise
  dnspython checks as it always does. `importlib.metadata` itself is
  registered lazily so that dnspython's `import importlib.metadata` is free.
Must not: change what any feature check or module would answer, or import
anything heavy itself.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
import types

_gc_paused = False  # paused by prepare_boot, resumed by boot_done


class _Deferred(types.ModuleType):
    """Stands in sys.modules for a module not executed yet; the first attribute
    it lacks imports the real one, which then takes its place everywhere it
    can (sys.modules, the parent package) and lends it its attributes for the
    references taken before. (importlib.util.LazyLoader does not help here:
    on Python 3.11 every `import` statement reads `__spec__`, which loads.)"""

    def __getattr__(self, attr):
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, real)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def lazy_module(name: str) -> None:
    """Register `name` in sys.modules as a module that executes on first use."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    module = _Deferred(name)
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__loader__ = spec.loader
    module.__package__ = spec.parent
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)  # what `import a.b` would have bound


def _version_tuple(text: str) -> tuple:
    out = []
    for part in text.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def _feature_without_metadata(requirements: list[str]) -> bool | None:
    """dnspython's answer for these `pkg>=version` requirements, or None if
    only the package metadata can tell."""
    for req in requirements:
        package, sep, minimum = req.partition(">=")
        if not sep:
            return None
        modname = package.strip().replace("-", "_")
        try:
            spec = importlib.util.find_spec(modname)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return False  # not installed: dnspython could not use it either
    for req in requirements:  # all present: compare versions the modules report
        package, _, minimum = req.partition(">=")
        name = package.strip().replace("-", "_")
        module = sys.modules.get(name)
        if module is None:  # installed, not imported yet (e.g. idna, which dns.name imports anyway)
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - its metadata decides, as dnspython does
                return None
        version = getattr(module, "__version__", None)
        if not isinstance(version, str):
            return None
        if _version_tuple(version) < _version_tuple(minimum):
            return False
    return True


def prime_dnspython_features() -> None:
    """Answer dnspython's feature checks before `dns.name` asks them."""
    if "dns._features" in sys.modules:
        return
    lazy_module("importlib.metadata")
    import dns._features as features
    requirements = getattr(features, "_requirements", None)
    if not isinstance(requirements, dict) or not hasattr(features, "force"):
        return
    for feature, reqs in requirements.items():
        if feature == "dnssec":
            import cryptography  # small: the version only, not the primitives
        answer = _feature_without_metadata(list(reqs))
        if answer is not None:
            features.force(feature, answer)


def is_daemon() -> bool:
    """This process runs the kresd program (`.venv/bin/kresd`, `python -m kresd`)."""
    argv = getattr(sys, "orig_argv", [])
    return os.path.basename(sys.argv[0] or "") == "kresd" or argv[1:3] == ["-m", "kresd"]


_early_stops: list[int] = []  # SIGTERM/SIGINT received before the serving loop's handlers


def catch_early_stop() -> None:
    """From the first line of the kresd program until the worker's loop (or the
    leader's signal queue) takes over, SIGTERM/SIGINT are remembered instead of
    killing the process, so a stop at any moment of the boot ends as a clean
    stop (exit 0, control socket removed), not as death by signal (143)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember_stop)


def _remember_stop(signum, frame) -> None:
    _early_stops.append(signum)


def take_early_stops() -> list[int]:
    """The stop signals remembered during the boot (emptied by the call)."""
    taken = list(_early_stops)
    _early_stops.clear()
    return taken


def boot_done() -> None:
    """The worker serves: freeze the boot's objects, collect from now on.
    (A no-op when collection was not paused, as in tests.)

    What gets frozen (measured with the start-up benchmark's config): ~40,000
    tracked objects, nearly all of them live as long as the process (modules,
    classes, functions, the Lua bindings, the config's settings); a frozen
    object that loses its last reference is still freed by reference counting.
    Among them are ~200 unreachable cycles the standard library leaves while it
    imports (throw-away classes of enum/functools/ssl, ~60 KiB): frozen, they
    are never collected. That is a fixed cost once per process, not a growing
    leak, and collecting them first would cost ~7 ms (a full collection) at the
    moment a restart should start answering; so they are kept."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def prepare_boot() -> None:
    global _gc_paused
    if is_daemon():
        catch_early_stop()
    if is_daemon() and gc.isenabled():
        gc.disable()
        _gc_paused = True
    try:
        prime_dnspython_features()
    except Exception:  # pragma: no cover - dnspython internals changed: keep its own checks
        pass
    import dns  # noqa: F401 (the package, cheap; dns.dnssec is bound on it)
    lazy_module("dns.dnssec")


prepare_boot()
