"""The bytes a connection has received and not parsed yet, as a list of chunks.

A bytearray that is appended to and cut from the front copies every received byte into
itself and, as it grows, again on every reallocation; a 1 MiB block then moved through
it several times before msgpack copied it out once more. Here each received chunk is
kept as it came: waiting for the rest of a big frame costs nothing, and ``copy`` takes
any range out (a block's data, a frame's payload) with exactly one copy, whatever
chunks it spans. Parsers that need the whole buffer as one piece (the Hello, BEP
frames) get it from ``contiguous``, which merges the chunks into a bytearray that later
chunks are appended to (amortised, as the plain bytearray was).
"""

from __future__ import annotations

from collections import deque


class ReceiveBuffer:
    __slots__ = ("_chunks", "_offset", "_size")

    def __init__(self) -> None:
        self._chunks: deque[bytes | bytearray] = deque()
        self._offset = 0  # bytes of the first chunk already consumed
        self._size = 0  # bytes buffered and not consumed

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer ``data`` (kept as is when it is ``bytes``; anything else is copied,
        since the caller may change it)."""
        if not data:
            return
        chunk = data if type(data) is bytes else bytes(data)
        self._chunks.append(chunk)
        self._size += len(chunk)

    def copy(self, start: int, size: int) -> bytes:
        """Bytes ``start`` to ``start + size`` of what is buffered (fewer if fewer are
        there), as one new ``bytes``: one copy, or none when the range is exactly one
        received chunk."""
        size = max(0, min(size, self._size - start))
        if size == 0:
            return b""
        pos = self._offset + start
        parts: list[memoryview] = []
        for chunk in self._chunks:
            n = len(chunk)
            if pos >= n:
                pos -= n
                continue
            if not parts and pos + size <= n:  # within one chunk
                if pos == 0 and size == n and type(chunk) is bytes:
                    return chunk
                return bytes(memoryview(chunk)[pos : pos + size])
            take = min(n - pos, size)
            parts.append(memoryview(chunk)[pos : pos + take])
            size -= take
            pos = 0
            if size == 0:
                break
        try:
            return b"".join(parts)
        finally:
            for part in parts:
                part.release()

    def consume(self, size: int) -> None:
        """Drop the first ``size`` bytes."""
        if size > self._size:
            raise ValueError(f"cannot consume {size} of {self._size} buffered bytes")
        self._size -= size
        size += self._offset
        chunks = self._chunks
        while chunks and size >= len(chunks[0]):
            size -= len(chunks.popleft())
        self._offset = size
        if not chunks:
            self._offset = 0

    def contiguous(self) -> bytes | bytearray:
        """Everything buffered as one object (valid until the next change)."""
        chunks = self._chunks
        if not chunks:
            return b""
        first = chunks[0]
        if len(chunks) == 1 and self._offset == 0:
            return first
        if type(first) is bytearray:
            del first[: self._offset]  # cheap: CPython moves a bytearray's start
            merged = first
            chunks.popleft()
        else:
            merged = bytearray(memoryview(chunks.popleft())[self._offset :])
        while chunks:
            merged += chunks.popleft()
        chunks.append(merged)
        self._offset = 0
        return merged
