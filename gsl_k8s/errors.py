"""The one error type every failure a user must hear about derives from.

`gsl` prints a `GSLError` as one line, `gsl: error: <message>`, and exits with its
`exit_code`; the operator retries a transient one later and marks the experiment `Failed`
with the error's `reason` and message otherwise. Transient means it may go away by itself
(a dropped connection, a throttled request); any other error needs the user (a wrong spec,
a missing bucket, denied credentials).
"""

from __future__ import annotations

import signal

EXIT_FAILURE = 1
EXIT_USAGE = 2  # a mistake in the command line or the spec, as argparse exits
EXIT_TEMPORARY = 75  # EX_TEMPFAIL of sysexits.h: try again later
EXIT_SIGTERM = 128 + signal.SIGTERM  # as a shell reports a process that SIGTERM ended


class GSLError(Exception):
    """A failure with a one-line message; see the module docstring."""

    reason = "Error"  # the operator's `Failed` condition reason (CamelCase)
    usage = False  # the user's mistake in how gsl was called or configured

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient

    @property
    def exit_code(self) -> int:
        """75 for a transient error, 2 for a usage error, else 1."""
        if self.transient:
            return EXIT_TEMPORARY
        return EXIT_USAGE if self.usage else EXIT_FAILURE
