"""The one exception type for bad user input (files, config, arguments)."""


class InputError(ValueError):
    """Bad input: the message names the file, key/field, expected and actual value.

    The CLI turns it into a one-line message on stderr and exit status 2.
    """
