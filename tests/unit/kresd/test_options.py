"""kresd/options.py: getopt_long-style parsing of kresd's command line (through
kresd/cli.py's option table) and the usage errors."""
from __future__ import annotations

import pytest

from kresd import cli
from kresd.options import Opt, UsageError, at_least, convert, help_text, split
from kresd.sockets import FdSpec
from workers.settings import Endpoint

OPTS = (
    Opt("a", "addr", "addrs", "ADDR", multiple=True),
    Opt("f", "forks", "forks", "N", convert=at_least(1), default=1),
    Opt("n", "noninteractive", "noninteractive"),
    Opt("q", "quiet", "quiet"),
    Opt(None, "worker-id", "worker_id", "N", convert=at_least(0), hidden=True),
)


def parse(*argv):
    raw, positional = split(argv, OPTS)
    return convert(raw, OPTS), positional


def test_defaults_when_nothing_is_given():
    assert parse() == ({"addrs": (), "forks": 1, "noninteractive": False, "quiet": False, "worker_id": None},
                       [])


@pytest.mark.parametrize("argv", [
    ("-nq", "-a", "x", "-a", "y", "-f", "2", "rd"),
    ("-qn", "-ax", "--addr=y", "-f2", "rd"),
    ("rd", "--noninteractive", "--quiet", "--addr", "x", "-ay", "--forks", "2"),  # options after the rundir
    ("-n", "-q", "-f", "3", "-f", "2", "-a", "x", "-a", "y", "--", "rd"),  # the last -f wins
])
def test_spellings_of_the_same_command_line(argv):
    values, positional = parse(*argv)
    assert values == {"addrs": ("x", "y"), "forks": 2, "noninteractive": True, "quiet": True, "worker_id": None}
    assert positional == ["rd"]


def test_a_value_may_start_with_a_dash_and_double_dash_ends_options():
    assert parse("-a", "-", "--", "-n")[0]["addrs"] == ("-",)
    assert parse("-a", "-", "--", "-n")[1] == ["-n"]
    assert parse("-a", "--quiet")[0]["addrs"] == ("--quiet",)  # the next word is the value, as getopt


@pytest.mark.parametrize("argv, message", [
    (("--bogus",), "No such option '--bogus'."),
    (("-x",), "No such option '-x'."),
    (("-nx",), "No such option '-x'."),
    (("-a",), "Option '-a' requires an argument."),
    (("--addr",), "Option '--addr' requires an argument."),
    (("--quiet=1",), "Option '--quiet' does not take a value."),
    (("a", "b"), "Got unexpected extra argument (b)"),
    (("-f", "0"), "Invalid value for '-f' / '--forks': 0 is not in the range x>=1."),
    (("-f", "two"), "Invalid value for '-f' / '--forks': 'two' is not a valid integer."),
    (("--worker-id", "-1"), "Invalid value for '--worker-id': -1 is not in the range x>=0."),
])
def test_usage_errors(argv, message):
    with pytest.raises(UsageError) as e:
        parse(*argv)
    assert str(e.value) == message


def test_help_lists_visible_options_wrapped():
    text = help_text("prog", "[x]", "About.\n", OPTS)
    assert text.startswith("Usage: prog [x]\n\n  About.\n\nOptions:\n")
    assert "  -a, --addr ADDR" in text and "--noninteractive" in text and "--worker-id" not in text
    assert max(len(line) for line in text.splitlines()) <= 79


def test_kresd_table_builds_args():
    args = cli.parse_args(["-a", "127.0.0.1@5353", "-S", "3:dns", "-c", "-", "-f", "2", "--cpu-map", "off",
                           "-k", "root.key", "-v", "rd"])
    assert args.addrs == (Endpoint("127.0.0.1", 5353),)
    assert args.fds == (FdSpec(3, "dns"),)
    assert args.configs == ("-",) and args.keyfiles == ("root.key",)
    assert args.forks == 2 and args.noninteractive  # -f 2 implies -n
    assert args.cpu_map is False and args.cpu_map_text == "off"
    assert args.verbose and not args.quiet and args.rundir == "rd"
    assert cli.parse_args([]) == cli.Args()


def test_kresd_usage_error_goes_to_stderr_with_code_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse_args(["-a", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: kresd [parameters] [RUNDIR]\nTry 'kresd -h' for help.\n")
    assert "Error: Invalid value for '-a' / '--addr': 'nope' is not an IP address" in err
