# gdyn: Graph Dynamical Networks as a Snakemake workflow. Thin by design: every rule calls
# one `gdyn` subcommand; the science lives in src/gdyn. See README.md and DESIGN.md.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from gdyn import config as gdyn_config
from gdyn import files as gdyn_files
from gdyn import layout as gdyn_layout
from gdyn.errors import InputError

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
include: "workflow/rules/structure.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        all_targets(),
    default_target: True
