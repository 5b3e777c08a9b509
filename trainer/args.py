"""The command line of `main.py`: every flag of the paper's parser (same names, types, defaults and
meanings; where we differ: docs/deviations.md), plus what a user expects.

Flags are grouped by concern; each method's flags are generated from the `Options` dataclass in its own
file (methods/). Validation that needs more than argparse lives in `trainer/config.py` and the methods.
"""
import argparse
import dataclasses

from data.instructions import InstructionOptions
from errors import OneLineArgumentParser
from methods import method_classes
from options import add_options

METHOD_FLAGS = ("aioli", "skillit", "doremi", "doge")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog="main.py",
        description="Train a causal LM on a mixture of data groups chosen by a data-mixing method "
        "(stratified, static proportions, Aioli, Skill-it, DoReMi, DoGE). With no data flags it "
        "trains a tiny model on the embedded demo corpus.",
        allow_abbrev=True,  # the paper's scripts pass --model for --model_name
    )
    data = p.add_argument_group("data")
    data.add_argument("--task_name", type=str, default="slimpj", choices=["slimpj", "instruction"],
                      help="slimpj: token shards of text groups; instruction: Natural Instructions tasks")
    data.add_argument("--train_data_dir", type=str, default=None,
                      help="prepared shards (meta.json or the paper's <group>/train.bin layout) or raw "
                      "data (SlimPajama jsonl.zst tree, .jsonl files, a saved HF dataset), prepared once "
                      "into a cache. Default: the embedded demo corpus")
    data.add_argument("--val_data_dir", type=str, nargs="+", default=None,
                      help="where <group>/val.bin and test.bin live (default: --train_data_dir); only "
                      "the first value is used, as in the paper")
    data.add_argument("--slice_list", type=str, nargs="+", default=None,
                      help="groups to mix (default: every group of the data, in its order)")
    data.add_argument("--tokenizer", type=str, default=None,
                      help="tokenizer name or path used when raw data must be prepared (default: the "
                      "model's own; the bundled demo tokenizer for the tiny configs)")
    data.add_argument("--context_length", type=int, default=None,
                      help="tokens per training window (paper scripts: 2048; default 1024, or 256 for the demo)")
    data.add_argument("--sampling", choices=["exact", "multinomial"], default="exact",
                      help="batch composition: exact largest-remainder counts (default) or i.i.d. "
                      "multinomial draws as in the paper's code")
    data.add_argument("--max_eval_samples", type=int, default=None,
                      help="validation: N windows per group spread evenly over its val split (fixed for the "
                      "run, the same for every method; default: all)")
    data.add_argument("--max_test_samples", type=int, default=None,
                      help="final test metric: N windows per group spread over the test split (default: the "
                      "whole split)")
    data.add_argument("--num_proc", type=int, default=None, help="processes for data preparation")

    add_options(p.add_argument_group("instruction tasks", InstructionOptions.__doc__), InstructionOptions, {})

    model = p.add_argument_group("model")
    model.add_argument("--model_name", "--model", dest="model_name", type=str, default=None,
                       help="HF model id or local path, or a bundled config: tiny, mini, "
                       "EleutherAI/pythia-{14m,31m,70m,160m,410m} (default: EleutherAI/pythia-160m, "
                       "or tiny for the demo)")
    model.add_argument("--checkpoint", type=int, default=None,
                       help="0: fresh model from the config (from scratch); N: Pythia revision stepN; "
                       "omitted: pretrained weights from a local path or the HF cache")
    model.add_argument("--use_flash_attention", action="store_true",
                       help="FlashAttention-2 when importable on CUDA, else SDPA (one warning); implies "
                       "bf16 precision unless --precision is given")
    model.add_argument("--precision", choices=["fp32", "bf16-autocast", "bf16-pure"], default=None,
                       help="fp32 (CPU default), bf16-autocast with fp32 master weights (GPU default with "
                       "--use_flash_attention), or bf16-pure weights as in the paper")

    train = p.add_argument_group("training")
    train.add_argument("--selection_seed", type=int, default=0, help="seed of everything in the run")
    train.add_argument("--max_steps", type=int, default=-1, help="optimizer updates (required, or the demo's default)")
    train.add_argument("--n_epochs", type=int, default=1, help="multiplies the total steps (as in the paper)")
    train.add_argument("--batch_size", type=int, default=None, help="sequences per optimizer update (default 4; demo 8)")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1,
                       help="micro-batches per update; the batch is split, the update is the same")
    train.add_argument("--eval_batch_size", type=int, default=None, help="default: --batch_size")
    train.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    train.add_argument("--lr_scheduler", type=str, default="linear",
                       help="linear_warmup_cosine (the paper's), cosine, or any transformers scheduler name")
    train.add_argument("--warmup_steps", type=int, default=50)
    train.add_argument("--end_lr", type=float, default=None,
                       help="final lr of the cosine schedules (default: 1e-4 for linear_warmup_cosine, "
                       "the paper's effective value; 0 for cosine)")
    train.add_argument("--num_ckpts", type=int, default=1,
                       help="evaluate val every max_steps/num_ckpts steps (and at steps 0 and the end)")
    train.add_argument("--num_threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--device", type=str, default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")

    mix = p.add_argument_group("mixture")
    mix.add_argument("--method", type=str, default=None,
                     help="static, aioli, skillit, doremi, doge (same as the boolean flags)")
    mix.add_argument("--sample_rule", type=str, default=None, choices=["stratified", "mixture"],
                     help="stratified (uniform) or mixture (--proportions / --proportions_file)")
    mix.add_argument("--k", type=int, default=None, help="number of groups (checked against --slice_list)")
    mix.add_argument("--proportions", type=float, nargs="+", default=None, help="static mixture, normalized")
    mix.add_argument("--proportions_file", type=str, default=None,
                     help="JSON mixture: a list, {group: weight}, or any learned-weights file of this project")
    for flag in METHOD_FLAGS:
        mix.add_argument(f"--{flag}", action="store_true", help=f"same as --method {flag}")
    seen = {}  # flag -> its declaration: options shared by two methods are added once
    for name, cls in method_classes().items():
        if dataclasses.fields(cls.Options):
            add_options(p.add_argument_group(f"--{name}", cls.Options.__doc__), cls.Options, seen)

    run = p.add_argument_group("outputs, checkpoints and resume")
    run.add_argument("--output_dir", type=str, default="./output/")
    run.add_argument("--run_name", type=str, default=None, help="default: a readable name from the config")
    run.add_argument("--custom_name", type=str, default=None, help="suffix of the run name (paper)")
    run.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    run.add_argument("--checkpoint_every", type=int, default=None,
                     help="steps between checkpoints (default: every evaluation)")
    run.add_argument("--keep_checkpoints", type=int, default=2, help="checkpoints kept on disk")
    run.add_argument("--save_model", action="store_true", help="save the final model to <run>/model/")
    run.add_argument("--use_saved_model", action="store_true",
                     help="if <run>/model/ exists, skip training and evaluate it")
    run.add_argument("--break_steps", type=int, default=None,
                     help="at this step: evaluate val, save the full state, stop (parent of a dynamic sweep)")
    run.add_argument("--resume_model_path", type=str, default=None,
                     help="start from a parent's --break_steps state (run dir or checkpoint dir) with this run's mixture")
    run.add_argument("--remaining_steps", type=int, default=None, help="steps to train after --resume_model_path")
    run.add_argument("--log_every", type=int, default=10, help="steps between metrics.jsonl lines")
    run.add_argument("--wandb_project", type=str, default=None, help="log to wandb (off unless given)")
    run.add_argument("--wandb_entity", type=str, default=None)
    run.add_argument("--wandb_mode", choices=["online", "offline", "disabled"], default=None)
    run.add_argument("--no_progress", action="store_true", help="no tqdm progress bar")
    return p
