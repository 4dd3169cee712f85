"""The real resolver binary, started the way a user starts it.

Owns: writing a kresd-style config, running
``<kresd_bin> -n -a ADDR@53 -c CONF RUNDIR`` in its own session, waiting until it
answers (bounded), killing (SIGKILL) or stopping (SIGTERM) it, and its log.
Must not: import the project packages (the e2e tests only see the installed binary).

The config is valid for real kresd 5.6 too:
``option('ALLOW_LOCAL', true)`` (loopback upstreams), ``hints.root({...})``
(root hint -> our knotd root), ``modules.load('hints > iterate')``,
``trust_anchors.remove('.')`` (the hierarchy is unsigned) and a policy PASS for
``test.``, which kresd's special-use rules otherwise answer NXDOMAIN (as the
Deckard template does). One statement per line.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dns.exception

from .hierarchy import ROOT_ADDR, query

CONFIG = f"""modules.load('hints > iterate')
policy.add(policy.suffix(policy.PASS, {{todname('test.')}}))
trust_anchors.remove('.')
option('ALLOW_LOCAL', true)
hints.root({{['a.root-servers.net.'] = '{ROOT_ADDR}'}})
"""


class Resolver:
    """One kresd process serving addr@port with the given rundir (cache lives there)."""

    READY_TIMEOUT = 10.0

    def __init__(self, kresd_bin: Path, addr: str, rundir: Path, port: int = 53,
                 config: str = CONFIG, conf_file: Path | None = None):
        """config: text written next to the rundir; or conf_file: an existing config whose
        own net.listen() must cover addr@port (then no -a flag is passed)."""
        self.bin, self.addr, self.port = Path(kresd_bin), addr, port
        self.rundir = Path(rundir)
        self.own_conf = conf_file is None
        self.conf = self.rundir.parent / f"{self.rundir.name}.conf" if conf_file is None \
            else Path(conf_file).resolve()
        self.log = self.rundir.parent / f"{self.rundir.name}.log"
        self.config = config
        self.proc: subprocess.Popen | None = None

    @property
    def argv(self) -> list[str]:
        listen = ["-a", f"{self.addr}@{self.port}"] if self.own_conf else []
        return [str(self.bin), "-n", *listen, "-c", str(self.conf), str(self.rundir)]

    def start(self, probe: tuple[str, str] = (".", "NS")) -> "Resolver":
        """Start and wait until a UDP query for probe gets any reply (or fail with the log)."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        if self.own_conf:
            self.conf.write_text(self.config)
        with open(self.log, "ab") as log:
            log.write(f"=== {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, cwd=self.rundir.parent, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.wait_ready(probe)
        return self

    def wait_ready(self, probe: tuple[str, str]) -> None:
        deadline = time.monotonic() + self.READY_TIMEOUT
        while True:
            if not self.alive():
                raise RuntimeError(f"kresd exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                query(self.addr, probe[0], probe[1], port=self.port, timeout=0.5)
                return
            except (OSError, dns.exception.DNSException):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"kresd did not answer within {self.READY_TIMEOUT}s\n"
                                   + self.log_tail())
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal_group(self, sig: int) -> None:
        # Our own child's session (pgid == its pid): reaches forks (-f N) too.
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill9(self) -> None:
        """SIGKILL, no chance to clean up (the cache must survive this)."""
        if self.proc is not None:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL after 5 s; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "[no kresd log]"
        return f"--- {self.log} ---\n" + "\n".join(text.splitlines()[-lines:])
