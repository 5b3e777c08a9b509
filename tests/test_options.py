"""options.py: typed flags declared as dataclass fields become argparse options and come back typed."""
import argparse
from dataclasses import dataclass
from typing import Optional

import pytest

from methods.aioli import AioliOptions
from methods.doge import DogeOptions
from options import add_options, from_namespace, non_defaults, option
from trainer.args import build_parser


@dataclass(frozen=True)
class Shared:
    rounds: Optional[int] = option(None, "rounds")


@dataclass(frozen=True)
class First(Shared):
    rate: float = option(0.5, "a rate", choices=(0.5, 1.0))
    prior: Optional[tuple[float, ...]] = option(None, "a mixture")
    fast: bool = option(False, "a switch")
    name: str = option("x", "a name")


@dataclass(frozen=True)
class Second(Shared):
    depth: int = option(3, "a depth")


def parser():
    p = argparse.ArgumentParser()
    seen = {}
    add_options(p.add_argument_group("first"), First, seen)
    add_options(p.add_argument_group("second"), Second, seen)  # --rounds comes from the shared base: once
    return p


def test_types_defaults_and_round_trip():
    ns = parser().parse_args(["--rounds", "4", "--rate", "1.0", "--prior", "1", "2", "--fast", "--depth", "5"])
    first, second = from_namespace(First, ns), from_namespace(Second, ns)
    assert first == First(rounds=4, rate=1.0, prior=(1.0, 2.0), fast=True, name="x")
    assert second == Second(rounds=4, depth=5)
    assert non_defaults(first) == {"rounds": 4, "rate": 1.0, "prior": (1.0, 2.0), "fast": True}
    assert from_namespace(First, parser().parse_args([])) == First()
    with pytest.raises(SystemExit):
        parser().parse_args(["--rate", "0.7"])  # not one of the declared choices


def test_a_flag_declared_twice_is_refused():
    @dataclass(frozen=True)
    class Other:
        depth: int = option(4, "another depth")

    p, seen = argparse.ArgumentParser(), {}
    add_options(p, Second, seen)
    with pytest.raises(TypeError, match="--depth"):
        add_options(p, Other, seen)


def test_every_method_flag_is_declared_once_and_parses():
    args = build_parser().parse_args(["--aioli", "--aioli_prior", "1", "3", "--prior_steps", "5", "--doge_mu", "0.2"])
    assert from_namespace(AioliOptions, args).aioli_prior == (1.0, 3.0)
    assert from_namespace(DogeOptions, args).doge_mu == 0.2
