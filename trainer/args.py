"""The command line of `main.py`: every flag of the paper's parser (same names, types, defaults and
meanings; where we differ: docs/deviations.md), plus what a user expects.

The parser is generated from the option dataclasses of the components that use the flags (data, model,
training, optimisation, mixture, each method's `Options`, outputs), so each flag is declared once, next
to its use. Validation that needs more than argparse lives in `trainer/config.py` and the methods.
"""
import argparse
import dataclasses

from data.instructions import InstructionOptions
from errors import OneLineArgumentParser
from methods import method_classes
from options import add_options
from trainer.data_setup import DataOptions
from trainer.loop import TrainOptions
from trainer.mixture import MixtureOptions
from trainer.models import ModelOptions
from trainer.optim import OptimOptions
from trainer.run_dir import OutputOptions

METHOD_FLAGS = ("aioli", "skillit", "doremi", "doge", "odm", "ado")
# (title, options class) of the general sections, in --help order; the methods' sections follow "mixture"
SECTIONS = (("data", DataOptions), ("instruction tasks", InstructionOptions), ("model", ModelOptions),
            ("training", TrainOptions), ("optimisation", OptimOptions), ("mixture", MixtureOptions))


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog="main.py",
        description="Train a causal LM on a mixture of data groups chosen by a data-mixing method "
        "(stratified, static proportions, Aioli, Skill-it, DoReMi, DoGE, ODM, ADO). With no data flags it "
        "trains a tiny model on the embedded demo corpus.",
        allow_abbrev=True,  # the paper's scripts pass --model for --model_name
    )
    seen = {}  # flag -> its declaration: options shared by two methods are added once
    for title, cls in SECTIONS:
        group = p.add_argument_group(title, cls.__doc__)
        add_options(group, cls, seen)
        if cls is MixtureOptions:
            for flag in METHOD_FLAGS:
                group.add_argument(f"--{flag}", action="store_true", help=f"same as --method {flag}")
    for name, cls in method_classes().items():
        if dataclasses.fields(cls.Options):
            add_options(p.add_argument_group(f"--{name}", cls.Options.__doc__), cls.Options, seen)
    add_options(p.add_argument_group("outputs, checkpoints and resume", OutputOptions.__doc__), OutputOptions, seen)
    return p
