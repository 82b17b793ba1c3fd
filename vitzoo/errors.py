"""Errors a user can cause. The CLI prints their message as one line; anything else is a bug."""


class VitzooError(Exception):
    """Base class of user-facing errors."""


class ConfigError(VitzooError, ValueError):
    """An invalid option or argument (bad size, class count, ...)."""


class CheckpointError(VitzooError):
    """A weight file that cannot be read, or whose contents do not fit the model."""


def first_line(error: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message (at most 300 characters)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
