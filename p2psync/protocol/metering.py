"""What a frame decodes into, counted: the receiver's metered unpack and the sender's
matching count over the value it is about to pack (limits.py explains the costs).

Both charge every array ``DECODED_ARRAY_COST`` plus ``DECODED_ENTRY_COST`` per entry and
every map ``DECODED_MAP_COST`` plus ``DECODED_MAP_KEY_COST + DECODED_ENTRY_COST`` per key,
so a sender refuses exactly the frames a receiver would.
"""

from __future__ import annotations

from typing import Any

import msgpack

from . import limits as L
from .messages import MessageType

ARRAY, ENTRY = L.DECODED_ARRAY_COST, L.DECODED_ENTRY_COST
MAP, KEY = L.DECODED_MAP_COST, L.DECODED_MAP_KEY_COST + L.DECODED_ENTRY_COST


class OverBudget(Exception):
    """The decoded value passed MAX_DECODED_COST (raised from inside msgpack's hooks)."""


def metered_unpackb(payload: bytes | memoryview, **options: Any) -> tuple[Any, int]:
    """``msgpack.unpackb`` that adds up the cost of every array and map as msgpack
    finishes it (bottom-up, so the check runs while the value is being built) and raises
    OverBudget at MAX_DECODED_COST: the half-built value is freed with the exception.
    Returns the value and its cost."""
    cost = 0
    budget = L.MAX_DECODED_COST

    def on_array(items: tuple[Any, ...]) -> tuple[Any, ...]:
        nonlocal cost
        cost += ARRAY + ENTRY * len(items)
        if cost > budget:
            raise OverBudget
        return items

    def on_map(fields: dict[str, Any]) -> dict[str, Any]:
        nonlocal cost
        cost += MAP + KEY * len(fields)
        if cost > budget:
            raise OverBudget
        return fields

    value = msgpack.unpackb(payload, list_hook=on_array, object_hook=on_map, **options)
    return value, cost


def plain_cost(mtype: MessageType, plain: Any) -> int:
    """What ``metered_unpackb`` charges for ``plain`` once packed: by formula for the
    files of an Index (O(files), not O(blocks)), by walking the value otherwise."""
    if mtype in (MessageType.INDEX, MessageType.INDEX_UPDATE):
        files = plain["files"]
        rest = {key: value for key, value in plain.items() if key != "files"}
        return value_cost(rest) + KEY + ARRAY + ENTRY * len(files) + sum(map(_file_cost, files))
    return value_cost(plain)


def _file_cost(file: dict[str, Any]) -> int:
    """A FileInfo as file_info_to_plain builds it: scalars, one array of [id, value]
    counters and one array of [offset, size, hash] blocks."""
    counters, blocks = len(file["version"]), len(file["blocks"])
    return (
        MAP
        + KEY * len(file)
        + ARRAY
        + counters * (ENTRY + ARRAY + 2 * ENTRY)
        + ARRAY
        + blocks * (ENTRY + ARRAY + 3 * ENTRY)
    )


def value_cost(value: Any) -> int:
    """The cost of any plain value (dicts, lists and tuples, scalars cost nothing)."""
    if isinstance(value, dict):
        return MAP + KEY * len(value) + sum(map(value_cost, value.values()))
    if isinstance(value, list | tuple):
        return ARRAY + ENTRY * len(value) + sum(map(value_cost, value))
    return 0
