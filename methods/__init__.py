"""Mixing methods: one file per method behind the interface of `methods/base.py`, selected by name.

The registry maps a method name to its class; `main.py` turns the paper's boolean flags (`--aioli`,
`--skillit`, `--doremi`, `--doge`, `--odm`, `--ado`) into these names. A method's flags are the fields of its
`Options` dataclass, declared in its own file; the command line is generated from them (`trainer/args.py`), so
adding a method is one file plus one line here.
"""
import importlib

from errors import UsageError

# name -> "module:Class"
REGISTRY = {
    "static": "methods.base:MixingMethod",
    "aioli": "methods.aioli:AioliMethod",
    "skillit": "methods.skillit:SkillitMethod",
    "doremi": "methods.doremi:DoremiMethod",
    "doge": "methods.doge:DogeMethod",
    "odm": "methods.odm:OdmMethod",
    "ado": "methods.ado:AdoMethod",
}


def method_class(name: str):
    if name not in REGISTRY:
        raise UsageError(f"--method: unknown method {name!r}; choose one of {', '.join(REGISTRY)}")
    module_name, cls_name = REGISTRY[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise UsageError(f"--method {name}: not available in this version") from None
        raise
    return getattr(module, cls_name)


def method_classes() -> dict:
    """{name: class} of every registered method, in registry order (imports them all)."""
    return {name: method_class(name) for name in REGISTRY}


def build_method(name, groups, options, total_steps, run, initial_weights=None):
    """The method `name` with its Options instance and the run's RunFacts."""
    return method_class(name)(groups, options, total_steps, run, initial_weights=initial_weights)
