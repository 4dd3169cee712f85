"""Wiring of a worker's server selection to the state shared by the rundir.

Owns: `attach(selection, cache_dir, ...)`: map `<cache_dir>/upstreams.tbl`
(workers/selection/table.py) under the worker's Selection and start the
Prober of dead servers on the loop; what it returns stops the prober.
Must not: fail the worker: a table that cannot be opened (read-only
directory, no space) leaves the selection process-local, with a warning.
"""
from __future__ import annotations

import logging
import os

from .iterate import Selection
from .prober import Prober
from .table import FILE_NAME, open_shared

log = logging.getLogger("kresd.select")


def attach(selection: Selection, cache_dir: str, transport, loop, *, outgoing_v4=None,
           outgoing_v6=None, probe: bool = True) -> Prober | None:
    try:
        selection.attach(open_shared(cache_dir))
    except (OSError, ValueError) as e:
        log.warning("[select] cannot map %s: %s (server selection stays per process)",
                    os.path.join(cache_dir, FILE_NAME), e)
    if not probe or transport is None:
        return None
    prober = Prober(selection, transport, outgoing_v4=outgoing_v4, outgoing_v6=outgoing_v6)
    prober.start(loop)
    return prober
