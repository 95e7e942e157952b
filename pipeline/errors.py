"""Errors the command line turns into a clear message and a non-zero exit, without a traceback."""


class UserError(Exception):
    """Bad input or configuration: the message tells the user what to change."""


class StorageFullError(UserError):
    """The run folder's disk (or quota) is full; finished parts are kept and a rerun resumes."""
