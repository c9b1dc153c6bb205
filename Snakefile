# gdyn: Graph Dynamical Networks as a Snakemake workflow. Thin by design: every rule calls
# one `gdyn` subcommand; the science lives in src/gdyn. See README.md and DESIGN.md.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from gdyn import config as gdyn_config
from gdyn import files as gdyn_files
from gdyn import layout as gdyn_layout
from gdyn.errors import InputError
from gdyn.graph.store import discard_store, store_damage

min_version("9.0")


# The default config is used only when none is given on the command line, so that
# `--configfile config/paper.yaml` replaces the toy system instead of merging with it.
# The path is anchored at this file so that `-d WORKDIR` runs work too.
if not config:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")

# The config's meaning, before any job (`snakemake -n` shows it): lags on the frame grid and
# inside the test windows, split windows, analysed elements and state counts (gdyn.config).
try:
    gdyn_config.check(config)
except InputError as exc:
    raise WorkflowError(f"config: {exc}") from None

# A read-only results/ (directory or file system) stops the run here in one line, not in a
# traceback when Snakemake first removes or creates an output (issue 26).
_unwritable = gdyn_files.unwritable_dir(gdyn_layout.RESULTS)
if _unwritable:
    raise WorkflowError(_unwritable)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/toy.smk"
include: "workflow/rules/graphs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/koopman.smk"
include: "workflow/rules/temperature.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/structure.smk"
include: "workflow/rules/figures.smk"


# Graph stores verified at DAG build (issue 26). Snakemake takes a store directory that
# exists for up to date whatever is inside it; a damaged one (a file missing, short or at
# odds with meta.json) is removed here, so the store is rebuilt as soon as a job reads it
# (at once when that job is out of date, as after a settings edit). Its file names say
# what a store holds: a directory with anything else in it is never removed. Only the main
# process (not each cluster job's) checks, before any job runs.
if workflow.is_main_process:
    for _system in SYSTEMS:
        for _store in graph_dirs(_system) if graph_store(_system) else []:
            _damage = store_damage(_store)
            if _damage and discard_store(_store):
                print(f"{_store}: damaged graph store ({_damage}): removed it (also by a "
                      "dry run); it is rebuilt when a job needs it", file=sys.stderr)
            elif _damage:
                raise WorkflowError(f"{_store}: damaged graph store ({_damage}) with other "
                                    "files in it: delete it by hand")


rule all:
    input:
        all_targets(),
    default_target: True
