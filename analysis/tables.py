"""A `Table` of observed mixtures and losses, read from CSV files or from run directories.

CSV input is either one file holding mixture and loss columns, or two files (RegMix's layout:
mixtures in one, losses in the other) joined on a key column (`--join index`). Columns are chosen by
glob patterns. Mixture rows are renormalized to sum 1.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from errors import UsageError

from .common import match_columns, normalize_rows
from .runs import common_groups


@dataclass
class Table:
    mixture_columns: list
    X: np.ndarray          # (n, k) mixtures, rows sum to 1
    loss_columns: list
    Y: np.ndarray          # (n, m) losses
    row_ids: list
    source: str

    def column(self, name: str) -> np.ndarray:
        return self.Y[:, self.loss_columns.index(name)]


def read_csv(path: str, flag: str):
    """(header, rows as lists of strings)."""
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as err:
        raise UsageError(f"{flag} {path} is not UTF-8 text (byte {err.start}: {err.reason}); save it as a UTF-8 "
                         "CSV") from None
    except (OSError, csv.Error) as err:
        raise UsageError(f"{flag} {path}: cannot read it as CSV ({err})") from None
    if len(rows) < 2:
        raise UsageError(f"{flag} {path} has no data rows")
    header = [h.strip() for h in rows[0]]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise UsageError(f"{flag} {path} line {i}: {len(r)} fields, header has {len(header)}")
    return header, rows[1:]


def _numbers(path, header, rows, columns, flag) -> np.ndarray:
    idx = [header.index(c) for c in columns]
    out = np.empty((len(rows), len(idx)))
    for i, r in enumerate(rows):
        for j, c in enumerate(idx):
            try:
                out[i, j] = float(r[c])
            except ValueError:
                raise UsageError(f"{flag} {path} line {i + 2}, column {columns[j]}: "
                                 f"'{r[c]}' is not a number") from None
    return out


def _keys(path, header, rows, join, flag) -> list:
    if join not in header:
        raise UsageError(f"--join {join}: no such column in {path} (columns: {', '.join(header[:6])} ...)")
    keys = [r[header.index(join)].strip() for r in rows]
    if len(set(keys)) != len(keys):
        raise UsageError(f"--join {join}: key values repeat in {path}; the join needs unique keys")
    return keys


def table_from_csv(files, join=None, mixture_patterns=None, loss_patterns=None, flag="--csv") -> Table:
    """One file (mixture and loss columns, both patterns required) or two files joined on `join`."""
    if len(files) not in (1, 2):
        raise UsageError(f"{flag} takes one CSV (mixtures and losses) or two (mixtures, losses)")
    if len(files) == 1:
        if not mixture_patterns or not loss_patterns:
            raise UsageError(f"{flag} with one file needs --mixture_columns and --loss_columns patterns")
        header, rows = read_csv(files[0], flag)
        exclude = (join,) if join else ()
        mcols = match_columns(header, mixture_patterns, "--mixture_columns", files[0], exclude)
        lcols = match_columns(header, loss_patterns, "--loss_columns", files[0], exclude + tuple(mcols))
        ids = _keys(files[0], header, rows, join, flag) if join else [str(i) for i in range(len(rows))]
        X = _numbers(files[0], header, rows, mcols, flag)
        Y = _numbers(files[0], header, rows, lcols, flag)
        source = files[0]
    else:
        if not join:
            raise UsageError(f"{flag} with two files needs --join KEY, the column that pairs their rows")
        mh, mrows = read_csv(files[0], flag)
        lh, lrows = read_csv(files[1], flag)
        mkeys, lkeys = _keys(files[0], mh, mrows, join, flag), _keys(files[1], lh, lrows, join, flag)
        if set(mkeys) != set(lkeys):
            only_m, only_l = sorted(set(mkeys) - set(lkeys)), sorted(set(lkeys) - set(mkeys))
            raise UsageError(f"--join {join}: the files' keys differ ({len(only_m)} only in {files[0]}, e.g. "
                             f"{only_m[:3]}; {len(only_l)} only in {files[1]}, e.g. {only_l[:3]}); "
                             f"pass matching files")
        mcols = match_columns(mh, mixture_patterns or ["*"], "--mixture_columns", files[0], (join,))
        lcols = match_columns(lh, loss_patterns or ["*"], "--loss_columns", files[1], (join,))
        X = _numbers(files[0], mh, mrows, mcols, flag)
        order = {k: i for i, k in enumerate(lkeys)}
        Y = _numbers(files[1], lh, lrows, lcols, flag)[[order[k] for k in mkeys]]
        ids = mkeys
        source = f"{files[0]} + {files[1]}"
    if not np.all(np.isfinite(Y)):
        raise UsageError(f"{source}: a loss is missing or not finite; remove that row")
    return Table(mcols, normalize_rows(X, ids, source), lcols, Y, ids, source)


def table_from_runs(runs, split="val", mixture_patterns=None, loss_patterns=None) -> Table:
    """Rows = runs; mixture = config initial_weights, losses = results `<split>_loss`, columns = groups."""
    if not runs:
        raise UsageError("--run_dir: no usable static run found")
    groups = common_groups(runs)
    mcols = match_columns(groups, mixture_patterns or ["*"], "--mixture_columns", "the runs' groups")
    lcols = match_columns(groups, loss_patterns or ["*"], "--loss_columns", "the runs' groups")
    # runs may list the same groups in another order: everything is keyed by group name
    X = np.array([[r.mixture()[r.groups.index(c)] for c in mcols] for r in runs])
    Y = np.array([r.loss_vector(split, lcols) for r in runs])
    ids = [r.name for r in runs]
    return Table(mcols, normalize_rows(X, ids, "--run_dir"), lcols, Y, ids, "run directories")


def align_eval(table: Table, files, join=None) -> Table:
    """A held-out table with the same mixture and loss columns as `table` (for --eval_csv)."""
    import glob

    ev = table_from_csv(files, join, [glob.escape(c) for c in table.mixture_columns],
                        [glob.escape(c) for c in table.loss_columns], flag="--eval_csv")
    missing = [c for c in table.mixture_columns if c not in ev.mixture_columns]
    missing += [c for c in table.loss_columns if c not in ev.loss_columns]
    if missing:
        raise UsageError(f"--eval_csv lacks column(s) {', '.join(missing[:5])} of the training data")
    X = ev.X[:, [ev.mixture_columns.index(c) for c in table.mixture_columns]]
    Y = ev.Y[:, [ev.loss_columns.index(c) for c in table.loss_columns]]
    return Table(list(table.mixture_columns), X, list(table.loss_columns), Y, ev.row_ids, ev.source)
