"""Mixing methods: one file per method behind the interface of `methods/base.py`, selected by name.

The registry maps a method name to its class; `main.py` turns the paper's boolean flags (`--aioli`,
`--skillit`, `--doremi`, `--doge`) into these names. Modules are imported lazily so that a method's
dependencies are only paid for when it runs.
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


def build_method(name, groups, args, total_steps, initial_weights=None):
    return method_class(name)(groups, args, total_steps, initial_weights=initial_weights)
