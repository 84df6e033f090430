"""What a viewer who joins now needs first: the fragments since the latest keyframe.

Pure and bounded: a group of pictures larger than ``max_bytes`` is not kept (a viewer who joins
during it waits for the next keyframe instead), so memory never grows with the keyframe interval.
"""

from __future__ import annotations


class GopCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._fragments: list[bytes] = []
        self.bytes_held = 0

    @property
    def fragments(self) -> tuple[bytes, ...]:
        """Oldest first; the first one starts with a keyframe (empty while there is none)."""
        return tuple(self._fragments)

    def clear(self) -> None:
        self._fragments = []
        self.bytes_held = 0

    def add(self, data: bytes, start_point: bool) -> None:
        """Keep a fragment; ``start_point`` (a keyframe) begins a new group."""
        if start_point:
            self.clear()
        elif not self._fragments:
            return  # no keyframe to decode it from
        if self.bytes_held + len(data) > self.max_bytes:
            self.clear()
            return
        self._fragments.append(data)
        self.bytes_held += len(data)
