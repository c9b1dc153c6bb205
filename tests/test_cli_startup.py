"""Short jobs do not pay for stages they do not run: ``gdyn split`` (and every other
non-analysis command) does not import the analysis registry (issue 24)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gdyn.cli import build_parser

PROBE = """
import json, sys
from gdyn.cli import build_parser
parser = build_parser({argv!r})
print(json.dumps(sorted(parser._subparsers._group_actions[0].choices)))
print("gdyn.analysis" in sys.modules, "yaml" in sys.modules)
"""


def _probe(argv: list[str]) -> tuple[set[str], bool, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    analysis, yaml = (x == "True" for x in out[1].split())
    return set(json.loads(out[0])), analysis, yaml


def test_a_non_analysis_command_skips_the_analysis_registry() -> None:
    commands, analysis, yaml = _probe(["split", "a.npz", "b.npz", "--start", "0", "--stop", "1"])
    assert "split" in commands and "rdf" not in commands
    assert not analysis and not yaml


@pytest.mark.parametrize("argv", [["rdf", "--help"], ["--help"], [], ["no-such-command"]])
def test_analysis_commands_and_help_still_see_every_command(argv: list[str]) -> None:
    commands, analysis, _ = _probe(argv)
    assert {"split", "train", "rdf", "conduction", "figure"} <= commands
    assert analysis


def test_the_parse_of_a_command_is_unchanged() -> None:
    argv = ["split", "a.npz", "b.npz", "--start", "0.1", "--stop", "0.5"]
    assert vars(build_parser(argv).parse_args(argv)) == vars(build_parser().parse_args(argv))
