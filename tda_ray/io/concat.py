"""One read-only, seekable binary file over several parts (an upload sent in pieces), read in place."""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ConcatenatedFile"]


class ConcatenatedFile(io.RawIOBase):
    """The parts, in order, as one file: ``parts`` are ``(open, size)`` pairs, ``open()`` giving a seekable
    binary file of ``size`` bytes (opened on first use, kept open until :meth:`close`)."""

    def __init__(self, parts: Sequence[tuple[Callable[[], Any], int]]) -> None:
        super().__init__()
        self._openers = [p[0] for p in parts]
        self._starts: list[int] = []
        total = 0
        for _, size in parts:
            self._starts.append(total)
            total += int(size)
        self._size = total
        self._files: dict[int, Any] = {}
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _part(self, i: int) -> Any:
        f = self._files.get(i)
        if f is None:
            f = self._files[i] = self._openers[i]()
        return f

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            end = self._starts[i + 1] if i + 1 < len(self._starts) else self._size
            want = min(len(view) - done, end - self._pos)
            f = self._part(i)
            f.seek(self._pos - self._starts[i])
            chunk = f.read(want)
            if not chunk:
                raise OSError(f"part {i} ended early (expected {end - self._starts[i]} bytes)")
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
            self._pos += len(chunk)
        return done

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        super().close()
