"""The error a cross-field check of the site model raises, naming the field it found wrong."""

from __future__ import annotations

FieldLocation = tuple[str | int, ...]


class FieldError(ValueError):
    """A check across fields found one of them wrong.

    location: the path of that field below the model whose validator raised it, e.g.
    ``("approaches", 1, "lanes", 0, "signal_group")``; the loader appends it to the model's own
    location so the message names the field instead of "(top level)".
    """

    def __init__(self, location: FieldLocation, message: str) -> None:
        super().__init__(message)
        self.location = location
