"""The one exception type for user mistakes.

A `GptkitError` says what is wrong and how to fix it; the CLI prints its message
on one line and exits with status 2. Any other exception is a bug in gptkit.
"""


class GptkitError(Exception):
    """A user-facing error: bad input, bad config, missing or corrupt files."""


def require_extra(module: str, extra: str):
    """Import an optional dependency, or fail with the pip command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise GptkitError(
            f"this feature needs the '{module}' package: pip install 'gptkit[{extra}]'"
        ) from e
