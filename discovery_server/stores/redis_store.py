"""A store in Redis, so several server instances share one view.

The server runs on trio and redis-py's async client is asyncio-only, so this uses the
synchronous client (thread-safe connection pool) in ``trio.to_thread.run_sync`` behind a
CapacityLimiter: simple, bounded, no second event loop in the process. Multi-step updates
are Lua scripts, so they are atomic across instances.

Keys (``PREFIX`` defaults to ``p2psync-disco:``)::

    PREFIX dev:<device ID>     hash: "seen" -> Unix time; "a:<address>" -> "<expires> <pos>"
                               key TTL = until its last address expires
    PREFIX devices             sorted set: device ID scored by its last address expiry
    PREFIX replay:<device ID>  last accepted announcement timestamp, with EX
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
import trio

from p2psync.identity import DeviceID

from .base import MAX_ADDRESSES_PER_DEVICE, Record, StoreUnavailableError

T = TypeVar("T")
DEFAULT_PREFIX = "p2psync-disco:"

_PUT = """
local now = tonumber(ARGV[2])
local expires = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'seen', ARGV[2])
for i = 5, #ARGV do
  redis.call('HSET', KEYS[1], 'a:' .. ARGV[i], ARGV[3] .. ' ' .. tostring(i - 5))
end
local fields = redis.call('HGETALL', KEYS[1])
local latest = expires
local live = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'a:' then
    local exp, pos = string.match(fields[i + 1], '^(%S+) (%S+)$')
    exp, pos = tonumber(exp), tonumber(pos)
    if exp <= now then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      table.insert(live, {exp, pos, fields[i]})
      if exp > latest then latest = exp end
    end
  end
end
local cap = tonumber(ARGV[4])
if #live > cap then
  table.sort(live, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for i = cap + 1, #live do redis.call('HDEL', KEYS[1], live[i][3]) end
end
redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(latest - now)))
redis.call('ZADD', KEYS[2], latest, ARGV[1])
return 1
"""

_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


class RedisStore:
    """Announcements in Redis; expiry by Redis TTLs plus the caller's ``now`` on reads."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._limiter = limiter or trio.CapacityLimiter(8)
        self._put_script = client.register_script(_PUT)
        self._claim_script = client.register_script(_CLAIM)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisStore:
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )
        return cls(client, prefix=prefix)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await trio.to_thread.run_sync(
                functools.partial(fn, *args, **kwargs), limiter=self._limiter
            )
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"Redis store: {exc}") from exc

    def _dev_key(self, device: DeviceID) -> str:
        return f"{self._prefix}dev:{device}"

    async def ping(self) -> None:
        await self._call(self._client.ping)

    async def put(self, device: DeviceID, addresses: list[str], now: float, ttl: float) -> None:
        await self._call(
            self._put_script,
            keys=[self._dev_key(device), f"{self._prefix}devices"],
            args=[
                str(device),
                repr(float(now)),
                repr(float(now + ttl)),
                MAX_ADDRESSES_PER_DEVICE,
                *addresses,
            ],
        )

    async def get(self, device: DeviceID, now: float) -> Record | None:
        fields = cast(dict[str, str], await self._call(self._client.hgetall, self._dev_key(device)))
        live: list[tuple[float, int, str]] = []
        for name, value in fields.items():
            if name.startswith("a:"):
                expires_text, _, position = value.partition(" ")
                if float(expires_text) > now:
                    live.append((-float(expires_text), int(position or 0), name[2:]))
        if not live or "seen" not in fields:
            return None
        return Record.of([a for _, _, a in sorted(live)], float(fields["seen"]))

    async def size(self, now: float) -> int:
        return int(
            await self._call(self._client.zcount, f"{self._prefix}devices", f"({now}", "+inf")
        )

    async def claim_timestamp(
        self, device: DeviceID, timestamp: int, now: float, keep: float
    ) -> bool:
        result = await self._call(
            self._claim_script,
            keys=[f"{self._prefix}replay:{device}"],
            args=[int(timestamp), max(1, math.ceil(keep))],
        )
        return bool(int(result))

    async def expire(self, now: float) -> int:
        removed = await self._call(
            self._client.zremrangebyscore, f"{self._prefix}devices", "-inf", now
        )
        return int(removed)

    async def aclose(self) -> None:
        await self._call(self._client.close)
