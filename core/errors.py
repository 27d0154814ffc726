"""Errors a person can act on. Their message is shown as is: what is wrong, where, and what to do."""


class StudioError(Exception):
    """Base for every error whose message is meant for the user."""


class DataError(StudioError, ValueError):
    """The data (a file, row or entry) cannot be used as given."""


class ModelError(StudioError, ValueError):
    """A backbone or checkpoint cannot be loaded as asked."""


class RunError(StudioError, RuntimeError):
    """A run cannot be started, resumed or read."""


class ConfigError(StudioError, ValueError):
    """A config value a person has to change; the message says which and why."""
