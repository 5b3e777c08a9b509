"""The exceptions that end a command with one line instead of a traceback.

Every command-line entry point catches them (`exit_on_usage_error`), prints the message as one line
(prefixed with `error:`) and exits: status 2 for a `UsageError` (anything the user can fix: a bad flag,
a missing file, inconsistent settings; the message names the flag or file and the fix), status 3 for
`TrainingDiverged` (the run itself failed; the input was valid).
"""


class UsageError(Exception):
    """A mistake in the user's input; the message says which flag or file, and how to fix it."""

    exit_code = 2


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite. Not a user mistake: the run stops, keeps its last good
    checkpoint, and the message suggests what to change."""

    exit_code = 3


class OneLineArgumentParser(__import__("argparse").ArgumentParser):
    """argparse mistakes (unknown flag, bad value) become a UsageError, so they too are one line and
    exit code 2 under `exit_on_usage_error` instead of a usage dump."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see --help)")


def exit_on_usage_error(fn):
    """Decorator for CLI `main()` functions: UsageError -> one line on stderr, exit code 2 (3 for
    TrainingDiverged). Warnings
    are printed as one `warning: ...` line too (Python's default adds the source line)."""
    import functools
    import os
    import sys
    import warnings

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.formatwarning = lambda message, category, *rest, **kw: f"warning: {message}\n"
        try:
            return fn(*args, **kwargs)
        except (UsageError, TrainingDiverged) as err:
            # under torchrun every rank meets the same error: rank 0 alone says it, all exit with its code
            if os.environ.get("RANK", "0") == "0":
                print(f"error: {err}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None

    return wrapper
