"""The run's starting mixture: its flags and the JSON mixture files that --proportions_file reads."""
import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from errors import UsageError
from methods.base import normalize_weights
from options import option


@dataclass(frozen=True)
class MixtureOptions:
    """Which method chooses the mixture (also --aioli, --skillit, --doremi, --doge, --odm, --ado) and the static
    mixture."""

    method: Optional[str] = option(None, "static, aioli, skillit, doremi, doge, odm, ado (same as the boolean flags)")
    sample_rule: Optional[str] = option(None, "stratified (uniform) or mixture (--proportions / "
                                        "--proportions_file)", choices=("stratified", "mixture"))
    k: Optional[int] = option(None, "number of groups (checked against --slice_list)")
    proportions: Optional[tuple[float, ...]] = option(None, "static mixture, normalized")
    proportions_file: Optional[str] = option(None, "JSON mixture: a list, {group: weight}, or any learned-weights "
                                             "file of this project")

    def check(self):
        if self.proportions is not None and self.proportions_file is not None:
            raise UsageError("--proportions and --proportions_file: give only one")


_WEIGHT_KEYS = ("proportions", "weights", "average_weights", "optimal_mixture", "final_weights")


def load_proportions_file(path, groups):
    """A mixture from JSON: a list in group order, {group: weight}, or a learned-weights file."""
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except OSError as err:
        raise UsageError(f"--proportions_file {path}: cannot read it ({err.strerror})") from None
    except ValueError as err:
        raise UsageError(f"--proportions_file {path}: not valid JSON ({err})") from None
    if isinstance(obj, dict):
        for key in _WEIGHT_KEYS:
            if key in obj:
                obj = obj[key]
                break
    if isinstance(obj, dict):
        missing = [g for g in groups if g not in obj]
        if missing:
            raise UsageError(f"--proportions_file {path}: no weight for group(s) {', '.join(missing)}; it has "
                             f"{', '.join(map(str, obj))}")
        obj = [obj[g] for g in groups]
    if not isinstance(obj, list):
        raise UsageError(f"--proportions_file {path}: expected a list of weights or {{group: weight}}")
    return normalize_weights(obj, len(groups), f"--proportions_file {path}")


def initial_weights(options: MixtureOptions, groups):
    """The run's starting mixture: --proportions_file, --proportions (with --sample_rule mixture), else
    uniform."""
    if options.proportions_file:
        return load_proportions_file(options.proportions_file, groups)
    if options.sample_rule == "mixture" and options.proportions is not None:
        return normalize_weights(options.proportions, len(groups), "--proportions")
    return np.full(len(groups), 1.0 / len(groups))
