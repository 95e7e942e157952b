"""Errors the command line turns into a clear message and a non-zero exit, without a traceback."""


class UserError(Exception):
    """Bad input or configuration: the message tells the user what to change."""
