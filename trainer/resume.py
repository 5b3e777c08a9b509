"""What --resume may change: the new command line is compared with the run's config.json. A flag that
defines what the run computes (model, groups, method and its flags, seed, context, batch, data,
optimizer, schedule, ...) must be the same, or the resume is refused with one line naming each
difference; the flags in MAY_CHANGE (how long, how often it evaluates and logs, where it reports, on
what hardware) may change, and each change is recorded in config.json with the step it took effect at.
The table is in docs/reliability.md.
"""
import json

from errors import UsageError
from trainer.args import METHOD_FLAGS

# flag -> what changing it on resume does (docs/reliability.md repeats this table)
MAY_CHANGE = {
    "max_steps": "extends (or shortens) the run; the learning-rate schedule is re-spanned over the new length",
    "num_ckpts": "evaluation (and default checkpoint) frequency from the resumed step on",
    "checkpoint_every": "checkpoint frequency", "keep_checkpoints": "checkpoints kept on disk",
    "eval_batch_size": "evaluation batch size (the same windows are evaluated)",
    "log_every": "metrics.jsonl frequency", "no_progress": "progress bar",
    "wandb_project": "wandb logging", "wandb_entity": "wandb logging", "wandb_mode": "wandb logging",
    "num_threads": "CPU threads", "device": "the device the run continues on", "num_proc": "preparation workers",
    "compile": "torch.compile of the training step (a speed setting)", "peak_tflops": "the MFU figure only",
    "fsdp": "sharded (FSDP) or replicated (DDP / one process) model; either checkpoint layout loads into either",
    "world_size": "the number of torchrun processes (the global batch and its windows stay the same)",
    "save_model": "whether model/ is written at the end", "break_steps": "where a parent run stops",
    "output_dir": "where the run folder is looked for", "run_name": "which run folder",
    "custom_name": "part of an automatic name only", "instruction_cache_dir": "cache folder",
    "resume": "", "overwrite": "", "use_saved_model": "",
}
# entries of config.json that are not flags, or are derived from flags compared elsewhere
# (the method booleans --aioli ... are compared as "method")
_NOT_COMPARED = {"identity", "versions", "run_name", "demo", "parent", "total_steps", "resumes", *METHOD_FLAGS}
_DATA_KEYS = {"train_dir": "--train_data_dir", "val_dir": "--val_data_dir", "vocab_size": "--tokenizer"}
_DERIVED = {"groups": "--slice_list", "initial_weights": "the initial mixture (--proportions / --proportions_file)"}


def _plain(value):
    """The value as config.json stores it (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def differences(stored: dict, current: dict) -> list:
    """[(label, flag or None, stored value, current value)] for every entry of config.json that the
    current command line would change; `flag` is the flag's name when it is one."""
    found = []
    for key, value in current.items():
        if key in _NOT_COMPARED or key not in stored:
            continue  # a key that an older version did not write is not a difference
        if key == "data":
            for sub, label in _DATA_KEYS.items():
                old, new = (stored.get("data") or {}).get(sub), (value or {}).get(sub)
                if old != _plain(new):
                    found.append((f"{label} (data {sub})", None, old, new))
            continue
        if stored[key] != _plain(value):
            found.append((_DERIVED.get(key, f"--{key}"), None if key in _DERIVED else key, stored[key], value))
    return found


def check(stored: dict, current: dict, run_path: str) -> dict:
    """{flag: (old, new)} of the allowed changes; UsageError naming every refused one."""
    refused, allowed = [], {}
    for label, flag, old, new in differences(stored, current):
        if flag in MAY_CHANGE:
            allowed[flag] = (old, _plain(new))
        else:
            refused.append(f"{label} {_show(old)} -> {_show(new)}")
    if refused:
        raise UsageError(f"--resume: {run_path} was started with other settings that cannot change on resume: "
                         f"{'; '.join(refused)}; resume with the run's own flags, or start a new run (another "
                         "--run_name, or without --resume)")
    return allowed


def record(stored: dict, current: dict, allowed: dict, step: int) -> dict:
    """config.json after a resume at `step`: the allowed changes applied, and listed under "resumes"."""
    config = dict(stored)
    for flag, (_, new) in allowed.items():
        config[flag] = new
    config["total_steps"] = current["total_steps"]
    changes = {flag: {"from": old, "to": new} for flag, (old, new) in allowed.items()
               if flag not in ("resume", "overwrite")}
    config["resumes"] = list(stored.get("resumes", [])) + [{"step": step, "changed": changes}]
    return config


def _show(value) -> str:
    text = json.dumps(_plain(value))
    return text if len(text) <= 60 else text[:57] + "..."
