"""One source of config defaults: the schema's ``default:`` (gdyn.settings).

These tests fail when a default is written a second time: in a settings object that does
not take it from the schema, in a ``.get(key, literal)`` or a keyword default of a module,
or in a rule file's fallback.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.utils import validate

from gdyn import settings as gs
from gdyn.errors import InputError
from gdyn.koopman.settings import KoopmanSettings
from gdyn.train.settings import API_ALL_SEEDS_DEAD, WORKFLOW_KEYS, TrainSettings

ROOT = Path(__file__).resolve().parents[1]

# Names that are also schema keys with a default but name another setting, with the value
# written where they are: each says why it is not a copy of the schema's default.
NOT_A_COPY = {
    ("graph/store.py", "frame_stride"): "the graph store's file format (meta.json of stores "
                                        "made before the key existed) and its API: every frame",
    ("train/data.py", "frame_stride"): "a graph store's meta.json, as graph/store.py",
    ("toy/calibrate.py", "seed"): "the calibration's bootstrap seed, not train.seed",
    ("train/seeds.py", "seed"): "the dead-seed null's shuffle seed, not train.seed",
    ("toy/sites.py", "start"): "a window of the toy's site labels (the API's), not a split",
    ("toy/sites.py", "stop"): "as start",
}


def _flat(tree: dict[str, Any], out: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """{key: [schema defaults of every key of that name]} (nested sections flattened)."""
    for key, value in tree.items():
        if isinstance(value, dict):
            _flat(value, out)
        else:
            out.setdefault(key, []).append(value)
    return out


DEFAULTS = _flat(gs.defaults(), {})


def _is_copy(value: Any, key: str) -> bool:
    # True == 1 in Python: a bool matches only a bool default
    return any((type(value) is type(d) and value == d)
               or (type(value) in (int, float) and type(d) in (int, float) and value == d)
               for d in DEFAULTS[key])


def _literal_defaults(path: Path) -> list[tuple[int, str, Any]]:
    """(line, key, value) of the literal defaults one module writes for schema keys:
    ``x.get("key", literal)``, ``def f(key=literal)`` and dataclass fields ``key: T = literal``
    whose value is the schema's default of a key of that name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        pairs: list[tuple[str, ast.AST]] = []
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get" and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            pairs.append((node.args[0].value, node.args[1]))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            pos = a.posonlyargs + a.args
            pairs += [(arg.arg, d) for arg, d in zip(pos[len(pos) - len(a.defaults):], a.defaults,
                                                       strict=True)]
            pairs += [(arg.arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
                      if d is not None]
        elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
              and node.value is not None):
            pairs.append((node.target.id, node.value))
        for key, value_node in pairs:
            if key not in DEFAULTS:
                continue
            try:
                value = ast.literal_eval(value_node)
            except ValueError:
                continue  # not a literal: e.g. default("graph", "prune")
            if _is_copy(value, key):
                found.append((value_node.lineno, key, value))
    return found


def test_no_module_writes_a_schema_default_again() -> None:
    src = ROOT / "src" / "gdyn"
    copies = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        copies += [f"src/gdyn/{rel}:{line}: {key} = {value!r}"
                   for line, key, value in _literal_defaults(path)
                   if (rel, key) not in NOT_A_COPY]
    assert not copies, ("defaults written again (use gdyn.settings.default(...) or the "
                        "section's settings object):\n" + "\n".join(copies))


def test_no_rule_file_falls_back_to_a_default() -> None:
    # Snakemake's validate fills the schema's defaults in (the Snakefile): a rule reads
    # config["section"]["key"], or the section's settings object where the section may be
    # absent (execution).
    get = re.compile(r"""\.get\(\s*["'](\w+)["']\s*,""")
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    found = [f"{f.relative_to(ROOT)}:{i}: {line.strip()}"
             for f in files for i, line in enumerate(f.read_text().splitlines(), 1)
             for m in get.finditer(line) if m.group(1) in DEFAULTS]
    assert not found, "\n".join(found)


def test_the_scan_finds_a_copy(tmp_path: Path) -> None:
    # The scan above would flag each form it looks for.
    path = tmp_path / "m.py"
    path.write_text("from dataclasses import dataclass\n"
                    "def f(block, cache_mb=1024):\n"
                    "    return block.get('msd_window', 0.5), block.get('stride', 2)\n"
                    "@dataclass\nclass S:\n    prune: bool = True\n    store: bool = 1\n")
    assert sorted(_literal_defaults(path)) == [(2, "cache_mb", 1024), (3, "msd_window", 0.5),
                                               (6, "prune", True)]


SETTINGS_OBJECTS = [
    (gs.GraphSettings, ("graph",)),
    (gs.RdfSettings, ("structure", "rdf")),
    (gs.ProfileSettings, ("structure", "profile")),
    (gs.Q3Settings, ("structure", "q3")),
    (gs.ConductionSettings, ("conduction",)),
    (gs.ExecutionSettings, ("execution",)),
    (TrainSettings, ("train",)),
    (KoopmanSettings, ("koopman",)),
]
# Keys of a section that its settings object leaves to the workflow (not one run's).
NOT_FIELDS = {TrainSettings: WORKFLOW_KEYS}


def _schema_properties(*section: str) -> dict[str, Any]:
    schema = yaml.safe_load(gs.SCHEMA_PATH.read_text())
    node = schema["definitions"]["system"] if section[0] != "execution" else schema
    for key in section:
        node = node["properties"][key]
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node["properties"]


@pytest.mark.parametrize(("cls", "section"), SETTINGS_OBJECTS,
                         ids=[c.__name__ for c, _ in SETTINGS_OBJECTS])
def test_a_settings_object_is_its_schema_section(cls: type, section: tuple[str, ...]) -> None:
    props = _schema_properties(*section)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    # the same keys, so that a key added to the schema is added here too
    assert set(fields) == set(props) - NOT_FIELDS.get(cls, set())
    for name, field in fields.items():
        if "default" in props[name]:
            want = props[name]["default"]
            # a list default is a tuple in a frozen object
            assert field.default == (tuple(want) if isinstance(want, list) else want), name
        else:  # no schema default: the config must give it, or None means "not given"
            assert field.default in (dataclasses.MISSING, None), name


def test_train_koopman_and_toy_defaults_are_the_schemas() -> None:
    from gdyn.koopman.uncertainty import parse_ci
    from gdyn.toy import ToySettings
    from gdyn.train import GDyNet
    from gdyn.train.settings import WORKFLOW_KEYS

    schema = gs.default("train")
    train = TrainSettings().to_dict()
    assert train.pop("seeds") is None
    # per_temperature selects the workflow's jobs: not a setting of one training run
    assert schema.pop("per_temperature") is False and "per_temperature" in WORKFLOW_KEYS
    assert train == schema
    # The API keeps a model whose every seed is dead (flagged); the workflow fails.
    assert API_ALL_SEEDS_DEAD == "keep" and schema["all_seeds_dead"] == "fail"
    assert GDyNet(2, 1.0).settings == TrainSettings(all_seeds_dead="keep")
    assert GDyNet(2, 1.0, settings=TrainSettings()).settings.all_seeds_dead == "fail"
    koopman = dataclasses.asdict(KoopmanSettings())
    assert KoopmanSettings().ci == parse_ci(gs.default("koopman", "ci"))
    assert {k: koopman[k] for k in gs.default("koopman") if k != "ci"} == \
        {k: v for k, v in gs.default("koopman").items() if k != "ci"}
    toy = ToySettings()
    for key, value in gs.default("simulate").items():
        assert getattr(toy, key) == value, key


def test_with_defaults_fills_as_snakemake_validate() -> None:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["systems"]["toy"]["structure"]["q3"] = {"n_bins": 30}
    config["systems"]["toy"]["koopman"].pop("ci")
    config["systems"]["toy"]["split"]["train"] = [{"stop": 0.4}]
    system = yaml.safe_load(yaml.safe_dump(config["systems"]["toy"]))
    validate(config, str(gs.SCHEMA_PATH))
    filled = config["systems"]["toy"]
    for section in ("simulate", "split", "graph", "train", "koopman", "structure", "conduction"):
        assert gs.with_defaults(section, system[section]) == filled[section], section
    # Neither creates a mapping the config does not have (a block switches its analysis on).
    assert "ci" not in filled["koopman"] and "profile" not in filled["structure"]


def test_from_config_names_the_bad_key() -> None:
    with pytest.raises(InputError, match="'structure/rdf/bins': unknown"):
        gs.from_config(gs.RdfSettings, {"elements": ["S"], "bins": 3}, "structure/rdf")
    with pytest.raises(InputError, match="'structure/rdf/elements': missing"):
        gs.from_config(gs.RdfSettings, {}, "structure/rdf")
    s = gs.from_config(gs.RdfSettings, {"elements": ["S"]}, "structure/rdf")
    assert (s.r_max_A, s.n_bins, s.stride) == (8.0, 160, 1)


def test_typed_sections_check_their_values() -> None:
    # Unknown keys and bad values raise with the key path; replace() checks again.
    with pytest.raises(InputError, match="'epoch': unknown training setting"):
        TrainSettings.from_mapping({"epoch": 3})
    with pytest.raises(InputError, match=r"--settings: key 'batch_size': expected an integer "
                                         r">= 2, got 1"):
        dataclasses.replace(TrainSettings(), batch_size=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainSettings().epochs = 3  # type: ignore[misc]
    s = TrainSettings.from_mapping({"lags_ps": [1], "models": {"gdynet": [2]}, "seeds": [3, 1],
                                    "vampnet_hidden": [8]})
    assert s.seed_list == [3, 1] and s.vampnet_hidden == (8,)
    assert s.to_dict()["seeds"] == [3, 1] and s.to_dict()["vampnet_hidden"] == [8]
    with pytest.raises(InputError, match="koopman settings key 'ck_step': unknown"):
        KoopmanSettings.from_mapping({"ck_step": 3})
    with pytest.raises(InputError, match=r"koopman settings key 'ck_alpha': expected a number "
                                         r"in \[1e-06, 0.5\], got 0.7"):
        KoopmanSettings.from_mapping({"ck_alpha": 0.7})
    with pytest.raises(InputError, match="'no_valid_result': expected one of fail, keep"):
        dataclasses.replace(KoopmanSettings(), no_valid_result="ignore")
    with pytest.raises(InputError, match="koopman settings: expected a JSON object, got list"):
        KoopmanSettings.from_mapping([1])  # type: ignore[arg-type]
    k = KoopmanSettings.from_mapping({"n_states": 2, "tau_star_ps": 2, "min_samples": 5,
                                      "ci": {"method": "chunks", "n": 3}})
    assert k.ci.method == "chunks" and k.ci.n == 3 and k.min_samples == 5.0
    assert k.tau_star_on([1.0, 2.0000000001]) == 2.0000000001
    with pytest.raises(InputError, match=r"'tau_star_ps': expected one of the lag grid 1ps, "
                                         r"3ps \(a model must exist there\), got 2"):
        k.tau_star_on([1.0, 3.0])


@pytest.mark.slow
def test_a_wheel_carries_the_schema(tmp_path: Path) -> None:
    """A non-editable install (a wheel: no workflow/ beside the package) reads the same
    defaults: the schema ships inside the package, and the workflow's copy is a link to it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    link = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert link.is_symlink() and link.resolve() == gs.SCHEMA_PATH
    # Built from a copy: pip builds in the source tree (build/), not in the checkout.
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(src)],
                   check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("gdyn-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import gdyn.settings as s; "
            "print(s.SCHEMA_PATH); print(s.default('train', 'epochs'))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=tmp_path, env={"PYTHONPATH": str(site)}).stdout
    path, epochs = out.split()
    assert Path(path) == site / "gdyn" / "config.schema.yaml"
    assert int(epochs) == gs.default("train", "epochs")
