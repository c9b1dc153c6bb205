"""gdyn: Graph Dynamical Networks (Xie et al., Nat. Commun. 2019) as a reproducible workflow.

One module per stage of the paper's pipeline; pure functions on arrays at the core,
I/O at the edges (see ``DESIGN.md``).
"""

from gdyn.errors import InputError

__all__ = ["InputError", "__version__"]
__version__ = "0.1.0"
