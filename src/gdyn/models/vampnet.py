"""The global VAMPnet baseline's torch module (paper Fig. 2, Supplementary Note 2)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class VAMPNetModule(nn.Module):
    """Global baseline: fully connected net on wrapped fractional target positions (Fig. 2).

    The fractional coordinates enter as (cos 2 pi f, sin 2 pi f): the same information, but
    continuous across the cell boundary. Raw f in [0, 1) would cut every site on a cell face
    (three of the toy's four octahedral sites) into disjoint corners, and the baseline would
    fail to learn the global site-to-site dynamics the paper compares against.
    """

    def __init__(self, n_states: int, n_inputs: int, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        width = 2 * n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ELU()]
            width = h
        layers.append(nn.Linear(width, n_states))
        self.net = nn.Sequential(*layers)

    def forward(self, frac: torch.Tensor) -> torch.Tensor:
        """(n_sets, 3k) fractional coordinates -> (n_sets, n_states) probabilities."""
        angle = (2 * math.pi) * frac
        return torch.softmax(self.net(torch.cat([torch.cos(angle), torch.sin(angle)], -1)), -1)

    @classmethod
    def from_settings(
        cls, n_states: int, settings: Mapping[str, Any], dims: Mapping[str, Any]
    ) -> VAMPNetModule:
        """A fresh model from training settings and :meth:`dims_from_data` dimensions."""
        return cls(n_states, int(dims["n_inputs"]), tuple(settings["vampnet_hidden"]))

    @staticmethod
    def dims_from_data(data: Mapping[str, Any]) -> dict[str, Any]:
        """Dimensions from the training data: 3 fractional coordinates per set atom."""
        return {"n_inputs": 3 * int(data["set_size"])}
