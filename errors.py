"""The one exception type for user mistakes.

Every command-line entry point catches `UsageError`, prints its message as one line (prefixed with
`error:`) and exits with status 2, without a traceback. Raise it for anything the user can fix: a bad
flag, a missing file, inconsistent settings. Messages name the flag or file and say how to fix it.
"""


class UsageError(Exception):
    """A mistake in the user's input; the message says which flag or file, and how to fix it."""


class OneLineArgumentParser(__import__("argparse").ArgumentParser):
    """argparse mistakes (unknown flag, bad value) become a UsageError, so they too are one line and
    exit code 2 under `exit_on_usage_error` instead of a usage dump."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see --help)")


def exit_on_usage_error(fn):
    """Decorator for CLI `main()` functions: UsageError -> one line on stderr, exit code 2. Warnings
    are printed as one `warning: ...` line too (Python's default adds the source line)."""
    import functools
    import sys
    import warnings

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.formatwarning = lambda message, category, *rest, **kw: f"warning: {message}\n"
        try:
            return fn(*args, **kwargs)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
