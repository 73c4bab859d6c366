"""The exit codes of `secretctl`, one map for the server's answers and the operator's errors.

Scripts tell failures apart by these codes (README "Exit codes"): an HTTP status maps to one, and
an error the operator commands meet at the machine maps through the status the API would answer
for it, so the same failure exits the same way whether it came over HTTP or not.
"""

from __future__ import annotations

import enum

import click


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # the command ran and reports a failure: a broken chain, entries that failed
    USAGE = 2  # click's own code for a bad command line
    NOT_FOUND = 3
    NOT_ALLOWED = 4
    CONFLICT = 5
    INVALID = 6
    UNAVAILABLE = 7


EXIT_BY_STATUS: dict[int, ExitCode] = {
    400: ExitCode.INVALID,
    401: ExitCode.NOT_ALLOWED,
    403: ExitCode.NOT_ALLOWED,
    404: ExitCode.NOT_FOUND,
    409: ExitCode.CONFLICT,
    410: ExitCode.NOT_FOUND,  # the secret expired: no value to give
    412: ExitCode.CONFLICT,
    413: ExitCode.INVALID,
    415: ExitCode.INVALID,
    422: ExitCode.INVALID,
    428: ExitCode.CONFLICT,
    429: ExitCode.UNAVAILABLE,
}


def exit_code_for_status(status: int) -> ExitCode:
    if status >= 500:
        return ExitCode.UNAVAILABLE
    return EXIT_BY_STATUS.get(status, ExitCode.FAILED)


class CommandError(click.ClickException):
    """A failure printed as one line (`Error: …`) on standard error, exiting with `code`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.exit_code = int(code)
