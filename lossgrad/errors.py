"""The errors lossgrad reports to a user: what is wrong, where, and what would be right.

The CLI prints each as one `error: ` line and exits with status 2; the API raises them (all are ValueErrors).
"""

from __future__ import annotations


class LossgradError(ValueError):
    """Bad usage or bad input."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}" if where else what)
        self.where, self.what = where, what


class OptionError(LossgradError):
    """An option value that cannot be used (unknown name, unsupported combination)."""


class InputError(LossgradError):
    """Data that cannot be used; `where` is the option or file:line:column."""
