"""The registry entry of a state-weighted analysis (:class:`AnalysisSpec`) and its pieces.

Kept free of argparse and of heavy imports: the Snakefile imports :mod:`gdyn.analysis` to
list the outputs, and ``gdyn --help`` builds every subcommand from these entries. The
contract is described in the :mod:`gdyn.analysis` docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gdyn.errors import InputError

# run(analysis, settings, outputs, extra_inputs): analysis is a gdyn.analysis.inputs.Analysis
# (None when the entry does not read the standard inputs); Any avoids an import cycle.
RunFunction = Callable[[Any, dict[str, Any], list[Path], dict[str, Any]], None]


@dataclass(frozen=True)
class Option:
    """One extra command-line option of an analysis (the CLI turns it into argparse).

    ``kind``: ``"path"`` (a file path), ``"int"`` or ``"json"`` (a JSON object, parsed by
    the CLI's one JSON parser). ``from_output`` / ``from_config`` say where the workflow
    takes the value: another analysis' output file (passed when that analysis is
    enabled for the system) or a config section of the system. Its value reaches ``run`` as ``extra_inputs[dest]``, dest
    being the flag without dashes, ``-`` -> ``_`` (``--koopman-settings`` ->
    ``koopman_settings``).
    """

    flag: str
    kind: Literal["path", "int", "json"]
    default: Any = None
    metavar: str | None = None
    help: str | None = None
    # Where the workflow takes the value from (the generated rules of
    # workflow/rules/structure.smk read these two fields; None: the option is not passed).
    from_output: str | None = None  # another analysis' output file, when it is enabled
    from_config: str | None = None  # the system's config section of that name, as JSON

    @property
    def dest(self) -> str:
        """The key of this option's value in ``extra_inputs``."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class AnalysisSpec:
    """How one analysis is switched on, what it writes, and how it runs.

    Attributes
    ----------
    name : str
        Subcommand (``gdyn <name>``) and rule name.
    section : str
        The system's config section the rule passes as ``--settings`` (``structure``,
        ``conduction``).
    config_key : str or None
        ``/``-separated key path in the system's config whose presence switches the
        analysis on (``structure/rdf``, ``conduction``); None: not switched on by the
        config (built when a figure asks for it, as ``positions``).
    outputs : tuple of str
        File names under ``gdyn.layout.structure_dir(system)``, in the order ``run`` gets
        them; ``{model_name}`` stands for ``gdyn.layout.model_name(model, n_states)``
        (``positions``). The CLI takes each as a positional argument unless
        ``output_flags`` names its option.
    requires : tuple of str
        Outputs of other analyses this one reads (``charge``: ``rdf.csv``): positional
        arguments before the outputs, in ``extra_inputs`` under the file name.
    run : callable
        ``run(analysis, settings, outputs, extra_inputs) -> None``: the science and the
        atomic writes of every output.
    options : tuple of Option
        Extra command-line options (``--charge``, ``--koopman-settings``, ``--max-rows``).
    output_flags : mapping
        Output file name -> option flag for outputs given as options (``--png``).
    standard_inputs : bool
        Whether it reads ``--test/--probs/--summary`` (the test pieces with their tau*
        probabilities); False for ``charge``, which reads ``rdf.csv`` only.
    help : str
        One line for ``gdyn --help``.
    """

    name: str
    section: str
    config_key: str | None
    outputs: tuple[str, ...]
    run: RunFunction
    requires: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    output_flags: Mapping[str, str] = field(default_factory=dict)
    standard_inputs: bool = True
    help: str = ""

    def enabled(self, system: Mapping[str, Any]) -> bool:
        """Whether a system's config switches this analysis on (its ``config_key``)."""
        if self.config_key is None:
            return False
        node: Any = system
        for key in self.config_key.split("/"):
            if not isinstance(node, Mapping) or key not in node:
                return False
            node = node[key]
        return True


def settings_block(settings: dict[str, Any], key: str) -> dict[str, Any]:
    """``settings[key]`` of the ``structure`` section, which must be a mapping."""
    block = settings.get(key)
    if not isinstance(block, dict):
        raise InputError(f"--settings: key 'structure/{key}': missing or not a mapping")
    return block
