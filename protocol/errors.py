"""The one exception tree of the protocol layer.

    ZexError
     └── ProtocolError       a message or value that breaks SPEC.md; carries a Reason
          └── DecodeFailed   bytes that did not decode into a message

Code at a boundary catches ProtocolError and turns it into a Reject with
``err.reason`` and ``str(err)``; nothing below the boundary sees bad input.
"""

from __future__ import annotations

from .reasons import Reason


class ZexError(Exception):
    """Base of every error zex raises on purpose."""


class ProtocolError(ZexError):
    """A message or a value that breaks the protocol; ``reason`` is the code to send back."""

    def __init__(self, reason: Reason, text: str, field: str | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.field = field

    @property
    def text(self) -> str:
        return self.args[0]


class DecodeFailed(ProtocolError):
    """Bytes that did not decode into a known message of a supported version."""
