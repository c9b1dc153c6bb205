# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # GDyNet from Python: the toy system in a notebook
#
# This tutorial drives gdyn's Python API (`import gdyn`) on a small simulation of the
# paper's toy system: one Li in a frozen face-centred cubic lattice of S, hopping between
# **tetrahedral** and **octahedral** sites (Xie et al., *Nat. Commun.* **10**, 2667 (2019),
# Fig. 2; `docs/toy.md`). We
#
# 1. simulate a few Li with OpenMM and store each as a trajectory in the Materials Cloud
#    `.npz` format;
# 2. train a GDyNet, the graph dynamical network that maps the local environment of each
#    target atom to the probabilities of a few slow states by maximising the VAMP-2 score;
# 3. build the Koopman model of those states, its implied timescales and its
#    Chapman-Kolmogorov (CK) test, the panels of Fig. 2;
# 4. look at the structure of the learned states with the state-weighted radial
#    distribution function (Eq. 12), and check them against the simulator's site labels,
#    which the network never saw.
#
# It is sized to run in about a minute on two CPU cores; CI executes it as a notebook
# (`tests/test_tutorial.py`). The workflow's rules call the same objects, so a number
# computed here is computed the same way in `results/`.
#
# Open it as a notebook with `jupytext --to ipynb docs/tutorial.py` (or let Jupyter open
# the `.py` with the jupytext extension), or run it as a script. torch uses every core by
# default; on a shared machine, `torch.set_num_threads(1)` first.

# %%
import json
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import gdyn
from gdyn import toy
from gdyn.files import save_npz

workdir = Path(tempfile.mkdtemp(prefix="gdyn-tutorial-"))
print("gdyn", gdyn.__version__, "working in", workdir)

# %% [markdown]
# ## 1. A small toy run
#
# The toy potential is a purely repulsive Born-Mayer wall between Li and S; the Li is
# thermostatted at 64 K, where it rattles in an octahedral site for tens of ps, hops through
# a triangular S face into a tetrahedral site and back. The paper's run is one Li for
# 200 ns stored every 0.1 ps; here 40 independent Li for 2 ns each (2 fs steps, which give
# the same statistics as 1 fs, `docs/toy.md`), stored every 1 ps (the workflow, too, trains
# on every 10th frame of the toy: `frame_stride: 10`).
#
# `toy.simulate` returns the Li positions of one OpenMM job; `toy.li_cell` stores each Li as
# its own periodic 5-atom cell (1 Li + 4 S), with the geometric site label of every frame
# (0 octahedral, 1 tetrahedral) as an extra array: the ground truth we compare with at the
# end.

# %%
N_LI = 40
DT_PS = 1.0  # time between stored frames
settings = toy.ToySettings(
    n_li=N_LI, duration_ps=2000.0, equilibration_ps=50.0, timestep_fs=2.0, seed=11
)
job = toy.simulate(settings, list(range(N_LI)), frame_interval_ps=DT_PS, progress=False)
paths = []
for li in range(N_LI):
    path = workdir / f"li{li:03d}.npz"
    save_npz(path, **toy.li_cell(job, li, settings.lattice_A))
    paths.append(path)
truth = toy.site_statistics(job["site_label"], frame_interval_ps=DT_PS, lag_ps=10.0)
print(f"{truth['li_ns']:.0f} Li-ns, {truth['transitions']} tet<->oct transitions, "
      f"tetrahedral fraction {truth['tet_fraction']:.3f}")

# %% [markdown]
# ## 2. Load the trajectories and split them in time
#
# `gdyn.load_trajectory` memory-maps the `.npz` (`traj_coords` (F, N, 3) in Angstrom,
# `lattices`, `atom_types`, `target_index`); `traj[a:b]` is a view of frames a..b-1. As in
# the paper, each trajectory is cut into a training, a validation and a test window: the
# first 40 % to train, the next 20 % to pick the best epoch, the last 40 % for everything
# that follows.

# %%
trajs = [gdyn.load_trajectory(p) for p in paths]
traj = trajs[0]
print(traj.n_frames, "frames of", traj.frame_interval_ps, "ps; target sets",
      traj.target_sets.tolist(), "; atom types", traj.atom_types.tolist())
n = traj.n_frames
train = [t[: int(0.4 * n)] for t in trajs]
val = [t[int(0.4 * n) : int(0.6 * n)] for t in trajs]
test = [t[int(0.6 * n) :] for t in trajs]

# %% [markdown]
# ## 3. Train a GDyNet
#
# GDyNet represents each frame as a periodic graph: every atom is a node connected to its
# M = 12 nearest neighbours, edges carry Gaussian-expanded distances. Three graph
# convolutions build an atom's feature vector from its local environment; a softmax turns
# the target atom's vector into the probabilities of `n_states` states. The network is
# trained to maximise the VAMP-2 score of the state probabilities at the lag time tau: the
# states it finds are the ones whose dynamics are slowest, with no labels given.
#
# The settings are close to the workflow's budget settings for the toy system
# (`config/config.yaml`: Adam with learning rate 1e-3, 1 ps between training frames), with
# smaller batches (64 lag pairs, 12,800 random pairs per epoch, 12 epochs) so that this small
# run gets enough optimiser steps for crisp states. The validation window picks the best epoch.
# Graphs are built as needed; the estimator returns a fitted model, and its `metrics` the
# VAMP-2 score of every epoch (2 is the most two states can reach).

# %%
LAG_PS = 10.0
estimator = gdyn.GDyNet(
    n_states=2, lag_ps=LAG_PS, n_neighbors=12,
    learning_rate=1e-3, batch_size=64, epochs=12, max_pairs_per_epoch=12_800, seed=0,
)
model = estimator.fit(train, val=val)
print(model)
model.metrics

# %% [markdown]
# `transform` gives the state probabilities of every frame of a trajectory,
# shape (frames, target sets, states); rows sum to one.

# %%
probs = [model.transform(t) for t in test]
print(probs[0].shape, probs[0][:3, 0])

# %% [markdown]
# A fitted model saves to a directory with the layout of the workflow's model directories
# (`model.pt`, `config.json`, `metrics.csv`), and `gdyn.GDyNetModel.load` reads either: a
# model trained by `snakemake` (`results/models/{system}/gdynet-s2-lag10ps/`) is used in a
# notebook the same way.

# %%
model.save(workdir / "gdynet-s2-lag10ps")
reloaded = gdyn.GDyNetModel.load(workdir / "gdynet-s2-lag10ps")
assert np.array_equal(reloaded.transform(test[0]), probs[0])
reloaded

# %% [markdown]
# ## 4. The Koopman model, its implied timescales and the CK test
#
# The dynamics of the states are a linear Koopman model, `p(t + tau) = K(tau)^T p(t)`,
# estimated from the test probabilities pooled over the Li (`K = C00^+ C01`). Its
# eigenvalues give the relaxation timescales `t_i = -tau / ln|lambda_i|`. If the states are
# Markovian, the timescales do not depend on the lag: the implied-timescale plot flattens
# above some lag, and the paper picks tau there. `implied_timescales` takes one model's
# probabilities analysed at several lags (as here) or a dict `{lag_ps: probs}` of models
# trained at each lag (as the workflow does). The 95 % confidence intervals come from the
# uncertainty engine the workflow uses (`koopman.ci` in the config, `docs/koopman.md`): a
# block bootstrap of the test data (500 resamples of blocks of frames as long as the slowest
# timescale, every Li of a frame kept together), percentile intervals, probabilities within
# [0, 1]. The paper's intervals over time chunks of the test data stay an option with the
# same interface: `CI = {"method": "chunks", "n": 4}`.

# %%
CI = {"method": "bootstrap", "n": 500, "seed": 0}
its = gdyn.implied_timescales(probs, frame_interval_ps=DT_PS, lags_ps=[1, 2, 5, 10, 20], ci=CI)
its.plot(title="GDyNet, toy system")
its.to_frame("gdynet")

# %% [markdown]
# At tau = 10 ps (the paper's choice for this system) the Koopman model has two states,
# ordered by decreasing stationary population (state 0 is the most populated). The paper's
# GDyNet found a relaxation time of 42.3 ps on its 200 ns trajectory; the calibrated
# simulator's site labels give 42.8 +- 1.2 ps at this lag from 512 Li-ns (`docs/toy.md`). A
# run as short as this one has a statistical error of 10-20 %: the fair reference is the
# site labels of the same frames (section 6). Good states give a slightly *longer*
# timescale than the geometric labels at the same lag: the labels count every quick
# recrossing of the site boundary as a hop, and the variational principle says that the
# better the states, the longer (closer to the true) the timescale.

# %%
km = gdyn.KoopmanModel.estimate(probs, lag_ps=LAG_PS, frame_interval_ps=DT_PS, ci=CI)
print(km)
print("K(tau) =", km.koopman_matrix.round(4).tolist())
print("stationary distribution", km.stationary_distribution.round(4))
print(f"relaxation timescale {km.timescales_ps[0]:.1f} ps")

# %% [markdown]
# The Chapman-Kolmogorov test compares the model's prediction `K(tau)^n` with `K(n tau)`
# estimated directly from the data: a Markovian model's line runs through the estimates.
# Both are recomputed on every bootstrap resample (the model's `ci`), and the verdict tests
# their difference with a family-wise error of 5 % over every element and step
# (`docs/koopman.md` gives its measured false-FAIL rate and power).

# %%
ck = km.ck_test(probs, steps=5)
ck.plot(title="GDyNet")
print(f"CK {'PASS' if ck.passed else 'FAIL'} ({ck.verdict.reason}); "
      f"largest |predicted - estimated| over 5 steps: {ck.max_deviation:.3f}")

# %% [markdown]
# ## 5. What are the states? The state-weighted RDF
#
# Eq. 12 of the paper weights the radial distribution function of the target atom by its
# state probabilities: `g_i(r)` is the environment of the Li when it is in state i, and the
# coordination number `n_i(r)` counts its S neighbours. The centre of an octahedral site has
# 6 S at a/2 = 3.25 Angstrom, that of a tetrahedral site 4 S at 2.81 Angstrom. The
# probabilities are put in the Koopman model's state order first (`km.state_order`);
# `r_first_min_A` is the first minimum of g after its first peak and `n_first_shell` the
# coordination number there.

# %%
ordered = [p[..., km.state_order] for p in probs]
rdf = gdyn.state_weighted_rdf(test, ordered, ["S"], r_max_A=5.5, n_bins=220)
fig, ax = plt.subplots(figsize=(4, 3))
for state, curve in rdf.groupby("state"):
    ax.plot(curve["r_A"], curve["g"], label=f"state {state}")
ax.set_xlabel("r (Angstrom)")
ax.set_ylabel("g(r), Li-S")
ax.legend()
shells = rdf.groupby("state")[["r_first_min_A", "n_first_shell"]].first()
shells

# %% [markdown]
# State 0 is octahedral: 6 S, in a broad shell from 2.5 to 4.4 Angstrom (the first minimum)
# because the hard-wall octahedron is large and flat-bottomed, so the Li rattles far from
# its centre, mostly close to one of its faces (the peak at 2.7 Angstrom). State 1 is
# tetrahedral: a sharp shell of 4 S at 2.8 Angstrom, plus a trace of the octahedral shell.
# That trace is how soft states look when one of them is rare: the tetrahedral site holds
# about 7 % of these frames, so the small probability that the network leaves on state 1 in
# octahedral frames is a visible share of state 1's total weight, and its coordination
# number at the first minimum comes out between 4 and 5. The same RDF weighted by the
# simulator's site labels instead (next section) has 6 and 4. The range reaches 5.5
# Angstrom, past the octahedral shell's end, so that both shells close.

# %% [markdown]
# ## 6. Check against the simulator's site labels
#
# The toy simulator labels every frame geometrically (`site_label`: the S polyhedron the Li
# is in). The network never saw these labels. If GDyNet found the tet/oct states, the most
# probable state of each test frame is the site label: state 0 (the populated one)
# octahedral, state 1 tetrahedral. The two-state Markov model of the labels themselves gives
# the reference timescale on the same test frames, and the RDF weighted by the labels the
# reference shells.

# %%
labels = [np.asarray(t.extras["site_label"])[:, 0] for t in test]
assigned = [p[:, 0].argmax(axis=1) for p in ordered]
agreement = float(np.mean(np.concatenate(assigned) == np.concatenate(labels)))
reference = toy.site_statistics(labels, frame_interval_ps=DT_PS, lag_ps=LAG_PS)
one_hot = [np.eye(2)[lab][:, None, :] for lab in labels]  # (frames, 1, 2): oct, tet
label_rdf = gdyn.state_weighted_rdf(test, one_hot, ["S"], r_max_A=5.5, n_bins=220)
label_shells = label_rdf.groupby("state")["n_first_shell"].first()
print(f"state assignment agrees with the site labels on {100 * agreement:.2f} % of test frames")
print(f"relaxation timescale at tau = {LAG_PS:g} ps: GDyNet {km.timescales_ps[0]:.1f} ps, "
      f"site labels {reference['relaxation_ps']:.1f} ps")
print(f"tetrahedral population: GDyNet {km.stationary_distribution[1]:.4f}, "
      f"site labels {reference['msm_tet_population']:.4f}")
print("S neighbours in the first shell: GDyNet states", shells["n_first_shell"].round(2).tolist(),
      "; oct / tet labels", label_shells.round(2).tolist())

# %% [markdown]
# The numbers the tutorial checks (and `tests/test_tutorial.py` asserts):

# %%
summary = {
    "agreement": agreement,
    "timescale_ps": float(km.timescales_ps[0]),
    "reference_timescale_ps": float(reference["relaxation_ps"]),
    "tet_population": float(km.stationary_distribution[1]),
    "reference_tet_population": float(reference["msm_tet_population"]),
    "its_timescales_ps": its.timescales_ps[:, 0].tolist(),
    "its_lags_ps": its.lags_ps.tolist(),
    "ck_max_deviation": ck.max_deviation,
    "ck_pass": bool(ck.passed),
    "population_ci": km.populations_frame()[["ci_low", "ci_high"]].to_numpy().tolist(),
    "r_first_min_A": shells["r_first_min_A"].tolist(),
    "n_first_shell": shells["n_first_shell"].tolist(),
    "label_n_first_shell": label_shells.tolist(),
    "transitions": int(truth["transitions"]),
}
print(json.dumps(summary, indent=1))
shutil.rmtree(workdir)
