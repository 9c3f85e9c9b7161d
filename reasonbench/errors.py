"""User-facing errors: the CLI prints them as one line on stderr and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (a name, an option, a file). Never a bug in reasonbench."""


class UnknownNameError(UserError, KeyError):
    """A model or task name that no installed plugin provides."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
