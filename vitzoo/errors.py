"""Errors a user can cause. The CLI prints their message as one line; anything else is a bug."""


class VitzooError(Exception):
    """Base class of user-facing errors."""


class ConfigError(VitzooError, ValueError):
    """An invalid option or argument (bad size, class count, ...)."""
