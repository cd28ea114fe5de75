"""Exceptions with messages meant for end users (CLI and app print them as they are)."""


class SBCoreError(Exception):
    """Base class for errors a user can act on."""


class CheckpointError(SBCoreError, ValueError):
    """A checkpoint or state dict cannot be used: the message names the exact problem."""


class UnknownModelError(SBCoreError, KeyError):
    """No registered model or pretrained tag has this name."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0])


class DatasetNotFoundError(SBCoreError, FileNotFoundError):
    """A dataset is not on disk; the message says how to install it or where to point."""


class OfflineError(SBCoreError, RuntimeError):
    """Something needed the network, which is not reachable."""
