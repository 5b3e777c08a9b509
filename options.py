"""Typed flags: a component declares its command-line options as a frozen dataclass whose fields carry
their help text (`option(...)`), so a flag's name, type, default and meaning are written once, next to
the code that uses it. The parser is generated from these classes (`add_options`), and the component
receives an instance built from the parsed command line (`from_namespace`), never the Namespace.

Types map to argparse as: bool -> store_true (default False); int, float, str -> that type;
Optional[X] -> X with default None; tuple[X, ...] -> nargs "+" of X.
"""
import dataclasses
import typing

from errors import UsageError

_NONE = type(None)


def option(default, help: str, *, choices=None, aliases=()):
    """A dataclass field that is also a command-line flag `--<field name>` (and `--<alias>` for each alias)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "aliases": tuple(aliases)})


def _argparse_kwargs(name: str, hint, f: dataclasses.Field) -> dict:
    """argparse keywords for one field, from its type hint."""
    meta = f.metadata
    kwargs = {"help": meta.get("help"), "default": f.default, "dest": name}
    if hint is bool:
        if f.default is not False:
            raise TypeError(f"boolean option {name} must default to False (a store_true flag)")
        return {**kwargs, "action": "store_true"}
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and _NONE in args:  # Optional[X]
        hint = next(a for a in args if a is not _NONE)
    if typing.get_origin(hint) is tuple:
        kwargs.update(nargs="+", type=typing.get_args(hint)[0])
    else:
        kwargs["type"] = hint
    if meta.get("choices") is not None:
        kwargs["choices"] = list(meta["choices"])
    return kwargs


def add_options(group, cls, seen: dict) -> None:
    """Add the fields of dataclass `cls` to an argparse group. `seen` maps a flag already added to its
    field: a field that two configurations share through a common base class is added once; two
    different declarations of one flag are a programming error."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in seen:
            if seen[f.name] is not f:
                raise TypeError(f"--{f.name} is declared twice ({cls.__name__}); share it through a base class")
            continue
        seen[f.name] = f
        names = [f"--{f.name}", *(f"--{alias}" for alias in f.metadata.get("aliases", ()))]
        group.add_argument(*names, **_argparse_kwargs(f.name, hints[f.name], f))


def from_namespace(cls, namespace):
    """An instance of `cls` from a parsed command line (fields missing from it keep their defaults);
    lists become tuples so that the configuration stays immutable."""
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(namespace, f.name, f.default)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def non_defaults(config) -> dict:
    """{flag: value} of the fields that differ from their declared defaults."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != f.default}


def require_positive(config, *names) -> None:
    """UsageError naming the first of the `names` fields of `config` that is given (not None) and not > 0."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name}: must be a positive integer, got {value}")
