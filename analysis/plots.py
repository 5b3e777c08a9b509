"""PNG figures (matplotlib, Agg backend: no display needed): a run's weights trajectory, its per-group
validation loss curves, Aioli's A matrices, and a law fit against the observed losses."""
from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def plot_weights(run, path, static_too=False):
    """Mixture weights over training steps; each change holds until the next one (a step plot). A static
    mixture is drawn only with static_too (a run's own plots; a report leaves them out)."""
    traj = run.results.get("weights_trajectory") or []
    if not traj or (not static_too and len({tuple(sorted((e.get("weights") or {}).items())) for e in traj}) < 2):
        return None
    plt = _plt()
    groups = run.groups
    end = int(run.results.get("step", traj[-1].get("step", 0)))
    steps = [int(e.get("step", 0)) for e in traj] + [max(end, int(traj[-1].get("step", 0)))]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for g in groups:
        w = [float(e.get("weights", {}).get(g, np.nan)) for e in traj]
        ax.step(steps, w + [w[-1]], where="post", label=g)
    ax.set_xlabel("step")
    ax.set_ylabel("weight")
    ax.set_ylim(0, 1)
    ax.set_title(f"{run.name}: mixture weights", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_val_loss(run, path):
    hist = run.val_history()
    if not hist:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [s for s, _ in hist]
    for g in run.groups:
        ax.plot(steps, [losses.get(g, np.nan) for _, losses in hist], marker=".", label=g)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title(f"{run.name}: per-group validation loss", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_A(run, path, max_panels: int = 6):
    """Heatmaps of Aioli's A at up to `max_panels` rounds spread over the run (rows = evaluated group,
    columns = trained group)."""
    from .fidelity import method_matrices

    if run.method != "aioli" or not os.path.isfile(os.path.join(run.path, "aioli.json")):
        return None
    groups, entries = method_matrices(run)
    if not entries:
        return None
    plt = _plt()
    pick = np.unique(np.linspace(0, len(entries) - 1, min(max_panels, len(entries))).round().astype(int))
    mats = [entries[i] for i in pick]
    vmax = max(float(np.abs(A).max()) for _, A in mats) or 1.0
    fig, axes = plt.subplots(1, len(mats), figsize=(2.6 * len(mats) + 0.8, 2.8), squeeze=False)
    for ax, (step, A) in zip(axes[0], mats):
        im = ax.imshow(A, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"step {step}", fontsize=8)
        ax.set_xticks(range(len(groups)), groups, rotation=90, fontsize=6)
        ax.set_yticks(range(len(groups)), groups, fontsize=6)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8)
    fig.suptitle(f"{run.name}: A (rows = evaluated, columns = trained)", fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # not tight_layout: it fights the shared colorbar
    plt.close(fig)
    return path


def plot_law_fit(table, fits, path, title: str = "static law fit"):
    """Predicted against observed loss, one panel per loss column, with the identity line and R^2."""
    plt = _plt()
    cols = list(fits)
    n = len(cols)
    ncol = min(n, 4)
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 3 * nrow), squeeze=False)
    for ax, name in zip(axes.flat, cols):
        y = table.column(name)
        pred = fits[name]["fit"].predict(table.X)
        lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.scatter(y, pred, s=8)
        r2 = fits[name]["metrics"].get("r2")
        ax.set_title(f"{name}\nR2={r2:.3f}" if r2 is not None else name, fontsize=7)
        ax.set_xlabel("observed", fontsize=7)
        ax.set_ylabel("predicted", fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
