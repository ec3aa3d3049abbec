"""The one error type a user can cause; the CLI prints its message on one line and exits 2."""


class JgenError(Exception):
    """Bad input from the user (config, data, checkpoint, paths); the message says how to fix it."""
