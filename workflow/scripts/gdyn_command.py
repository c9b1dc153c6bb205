"""Run one `gdyn` command from a rule's `params.argv`, a list of arguments, with no shell.

Rules that pass a path or URL from the user's config use this (`script:`), so that no
character of it (space, quote, `;`, `$(...)`) is ever read by a shell: it reaches
`gdyn.cli.main` as one argument (issue 26). stdout and stderr go to the rule's log.
"""

import os
import sys

from gdyn.cli import main

snakemake = globals()["snakemake"]  # set by Snakemake's script directive

with open(snakemake.log[0], "w") as log:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.exit(main([str(a) for a in snakemake.params.argv]))
