"""The rules end to end (issue 26): an edited setting reruns what it changes, paths are data.

* Every settings key of every analysis rule (``structure`` and ``conduction`` in
  workflow/schemas/config.schema.yaml, walked here, not listed by hand) and of the figure
  rules (``data_label``): after one finished run on the tiny config with every analysis
  switched on, an edit to that key alone makes its rule out of date, and nothing but that
  rule and what depends on it (its descendants in Snakemake's rule graph).
* A local trajectory whose path holds spaces, quotes, ``;``, ``$(...)`` and unicode, and a
  download URL with shell characters: copied / fetched as given, no command injected.
"""

from __future__ import annotations

import copy
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest
import yaml
from _data_http_server import Site, serve

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Which rule reads each analysis section of the schema: the structure block of that name,
# snapshot_frame for snapshot, the conduction section for conduction.
RULE_OF_BLOCK = {"snapshot_frame": "snapshot"}
FIGURE_RULES = ("figure_fig2", "figure_supp_fig1")  # the tiny config's figures


def _env() -> dict[str, str]:
    env = dict(os.environ)  # the rules call this interpreter's `gdyn`
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake(work: Path, config: Path, *args: str,
              timeout: int = 900) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
           "--configfile", str(config), "-d", str(work), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(),
                          cwd=work)


def planned(work: Path, config: Path, *targets: str) -> set[str]:
    """Rules a dry run would run (default rerun triggers: mtime, params, input, code...)."""
    proc = snakemake(work, config, *targets, "-n", "--quiet", "rules", "--nolock",
                     timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", text, re.M)} - {"total", "all"}


# ----------------------------------------------------------------------------- the schema


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"].removeprefix("#/definitions/")
        node = {**SCHEMA["definitions"][ref], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _leaves(node: dict[str, Any], path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Key paths of the settings under a schema node (objects with fixed keys walked down;
    a free-form mapping such as `charges` is one setting)."""
    node = _resolve(node)
    if node.get("type") == "object" and "properties" in node:
        return [leaf for key, sub in node["properties"].items()
                for leaf in _leaves(sub, (*path, key))]
    return [path]


def _schema_at(path: tuple[str, ...]) -> dict[str, Any]:
    node = _resolve(SCHEMA["definitions"][path[0]])
    for key in path[1:]:
        node = _resolve(node["properties"][key])
    return node


def analysis_settings() -> list[tuple[str, ...]]:
    """Every settings key of every analysis rule, from the schema."""
    return _leaves(SCHEMA["definitions"]["structure"], ("structure",)) + _leaves(
        SCHEMA["definitions"]["conduction"], ("conduction",))


def rule_of(path: tuple[str, ...]) -> str:
    if path[0] == "conduction":
        return "conduction"
    return RULE_OF_BLOCK.get(path[1], path[1])


def edited(value: Any, node: dict[str, Any]) -> Any:
    """Another valid value of a setting (its schema node), different from ``value``."""
    if "enum" in node:
        return next(v for v in node["enum"] if v != value)
    kind = node.get("type")
    if kind == "integer":
        return (value if value is not None else node.get("minimum", 1)) + 1
    if kind == "number" or "exclusiveMinimum" in node:
        if value is None:
            return 0.7 if node.get("exclusiveMaximum") == 1 else 1234.5
        return round(value * 1.1, 6) if node.get("exclusiveMaximum") != 1 else value * 0.9
    if kind == "array":  # elements
        return [*value, "Li"] if "Li" not in value else [e for e in value if e != "Li"]
    if kind == "object":  # element -> charge
        return {k: v + 1 for k, v in value.items()}
    if kind == "string":  # an element
        return "Li" if value != "Li" else "S"
    raise AssertionError(f"no edit for schema node {node}")


# ----------------------------------------------------------------------------- the run


def tiny_with_every_analysis() -> dict[str, Any]:
    """tests/e2e/tiny.yaml with every analysis on and every analysis setting given but
    volume_A3 (left out: the edit then adds it)."""
    cfg = yaml.safe_load((ROOT / "tests" / "e2e" / "tiny.yaml").read_text())
    toy = cfg["systems"]["toy"]
    toy["structure"] = {
        "rdf": {"elements": ["S", "Li"], "r_max_A": 4.5, "n_bins": 90, "stride": 1},
        "charge": {"center": "S", "charges": {"Li": 1, "S": -0.5}, "reference": "Li",
                   "r_star_A": 3.0},
        "profile": {"axis": "z", "n_bins": 20},
        "snapshot_frame": 0,
        "representative": {"shell_radius_A": 2.5},
        "q3": {"element": "Li", "n_neighbors": 4, "n_bins": 20, "stride": 1},
    }
    toy["conduction"] = {"temperature_K": 64.0, "charges": {"Li": 1}, "msd_window": 0.5,
                         "msd_points": 5}
    return cfg


REPRESENTATIVE = "results/structure/toy/representative.extxyz"  # made when a figure asks


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], set]:
    """A finished run, its config and the rule graph's edges."""
    work = tmp_path_factory.mktemp("rerun")
    cfg = tiny_with_every_analysis()
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake(work, work / "config.yaml", "--cores", "2", "all", REPRESENTATIVE)
    assert run.returncode == 0, run.stderr[-5000:]
    assert planned(work, work / "config.yaml", "all", REPRESENTATIVE) == set()
    graph = snakemake(work, work / "config.yaml", "all", REPRESENTATIVE, "--rulegraph",
                      "--nolock")
    assert graph.returncode == 0, graph.stderr[-3000:]
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', graph.stdout, re.M))
    edges = {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", graph.stdout,
                                                         re.M)}
    return work, cfg, edges


def dependants(rules: set[str], edges: set[tuple[str, str]]) -> set[str]:
    """The rules and every rule downstream of them in the rule graph."""
    out = set(rules)
    while True:
        more = {b for a, b in edges if a in out} - out
        if not more:
            return out
        out |= more


def _edit(cfg: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    new = copy.deepcopy(cfg)
    node = new["systems"]["toy"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return new


def _get(cfg: dict[str, Any], path: tuple[str, ...]) -> Any:
    node = cfg["systems"]["toy"]
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def test_the_schema_walk_finds_every_analysis_setting() -> None:
    keys = {"/".join(p) for p in analysis_settings()}
    # A spot check of the walk itself (it must reach leaves, free-form mappings whole).
    assert {"structure/rdf/n_bins", "structure/snapshot_frame", "structure/charge/charges",
            "conduction/temperature_K", "conduction/charges", "conduction/volume_A3"} <= keys
    assert {rule_of(p) for p in analysis_settings()} == {
        "rdf", "charge", "profile", "snapshot", "representative", "q3", "conduction"}


@pytest.mark.parametrize("path", analysis_settings(), ids=lambda p: "/".join(p))
def test_an_analysis_setting_edit_reruns_its_rule_and_only_its_dependants(
        finished: tuple[Path, dict[str, Any], set], path: tuple[str, ...], tmp_path: Path) -> None:
    work, cfg, edges = finished
    before = _get(cfg, path)
    after = edited(before, _schema_at(path))
    assert after != before
    config = tmp_path / "edited.yaml"
    config.write_text(yaml.safe_dump(_edit(cfg, path, after)))
    rule = rule_of(path)
    plan = planned(work, config, "all", REPRESENTATIVE)
    assert rule in plan, f"{'/'.join(path)}: {before!r} -> {after!r} left {rule} up to date"
    assert plan <= dependants({rule}, edges), (path, plan - dependants({rule}, edges))


def test_a_data_label_edit_reruns_the_figures_and_the_comparison_only(
        finished: tuple[Path, dict[str, Any], set], tmp_path: Path) -> None:
    work, cfg, _edges = finished
    config = tmp_path / "edited.yaml"
    config.write_text(yaml.safe_dump(_edit(cfg, ("data_label",), "another label")))
    plan = planned(work, config, "all", REPRESENTATIVE)
    # The figures print it in their footer, the comparison names each system's data.
    assert plan == {*FIGURE_RULES, "paper_comparison"}


def test_a_description_edit_reruns_the_comparison_only(
        finished: tuple[Path, dict[str, Any], set], tmp_path: Path) -> None:
    # The comparison reads each system's description (gdyn.compare.comparison_settings);
    # no analysis or figure does.
    work, cfg, _ = finished
    config = tmp_path / "edited.yaml"
    config.write_text(yaml.safe_dump(_edit(cfg, ("description",), "edited description")))
    assert planned(work, config, "all", REPRESENTATIVE) == {"paper_comparison"}


# ----------------------------------------------------------------------------- paths as data

# Every character a shell would read: spaces, both quotes, `;`, `$(...)`, backquotes, `#`,
# and unicode.
NASTY = "run 1 'a' \"b\"; touch PWNED_SHELL; $(touch PWNED_SUB) `touch PWNED_TICK` #é°Å"


def _toy_npz(n_frames: int = 200) -> bytes:
    rng = np.random.default_rng(0)
    a = 6.5
    cell = np.array([[0.25, 0.25, 0.25], [0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    coords = (cell * a)[None] + rng.normal(0, 0.05, (n_frames, 5, 3))
    buf = io.BytesIO()
    np.savez(buf, traj_coords=(coords % a).astype(np.float32),
             lattices=np.repeat((np.eye(3) * a)[None], n_frames, 0).astype(np.float32),
             atom_types=np.array([3, 16, 16, 16, 16]), target_index=np.array([0]),
             frame_interval_ps=np.float64(0.1))
    return buf.getvalue()


def _one_file_system(entry: dict[str, Any], source: str) -> dict[str, Any]:
    toy = yaml.safe_load((ROOT / "tests" / "e2e" / "tiny.yaml").read_text())["systems"]["toy"]
    split = {p: [{"trajectories": ["t"], "start": a, "stop": b}]
             for p, a, b in (("train", 0, 0.5), ("val", 0.5, 0.75), ("test", 0.75, 1))}
    return {"systems": {"mine": {
        "source": source, "data_label": f"label with 'quotes'; $(touch PWNED_LABEL) {NASTY}",
        "frame_interval_ps": 0.1, "files": {"t": entry}, "split": split,
        "graph": toy["graph"], "train": toy["train"],
        "koopman": {"model": "gdynet", "n_states": 2, "tau_star_ps": 1, "ck_steps": 2}}}}


def _no_injection(work: Path, out: str) -> None:
    pwned = [p for p in work.rglob("PWNED*")]
    assert pwned == [], (pwned, out[-3000:])


def test_a_local_path_with_shell_characters_is_copied_as_given(tmp_path: Path) -> None:
    work = tmp_path / "w"
    data = work / f"my data ü/{NASTY}"
    data.mkdir(parents=True)
    (data / f"{NASTY}.npz").write_bytes(_toy_npz())
    cfg = _one_file_system({"path": str(data / f"{NASTY}.npz")}, "local")
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    raw = "results/raw/mine/t.npz"
    run = snakemake(work, work / "config.yaml", "--cores", "1", raw,
                    "results/split/mine/test/t.npz")
    out = run.stdout + run.stderr
    _no_injection(work, out)
    assert run.returncode == 0, out[-3000:]
    with np.load(work / raw) as z, np.load(data / f"{NASTY}.npz") as src:
        np.testing.assert_array_equal(z["traj_coords"], src["traj_coords"])


def test_a_url_with_shell_characters_is_fetched_as_given(tmp_path: Path) -> None:
    site = Site(files={"/t.npz": _toy_npz()})
    work = tmp_path / "w"
    work.mkdir()
    with serve(site) as base:
        url = f"{base}/t.npz?x='a';touch%20PWNED_Q;$(touch%20PWNED_SUB)&y=\"b\"`touch%20PWNED_T`"
        cfg = _one_file_system({"url": url, "md5": None}, "download")
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        run = snakemake(work, work / "config.yaml", "--cores", "1", "results/raw/mine/t.npz")
    out = run.stdout + run.stderr
    _no_injection(work, out)
    assert run.returncode == 0, out[-3000:]
    # The server saw the URL's query as configured (the HTTP client percent-encodes the
    # backquote, nothing else changed it).
    seen = next(p for p, _ in site.requests if p.startswith("/t.npz"))
    assert unquote(seen) == unquote(url[len(base):])
