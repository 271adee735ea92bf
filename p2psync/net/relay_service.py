"""The relays a node is joined to: one :class:`RelayMember` per configured relay URL.

The node's wiring builds it; the connection manager serves it: ``update`` follows config
changes (members start and stop without a restart), ``dial`` reaches a device through a
relay, and every accepted invitation is passed to ``serve``'s ``on_session`` with the
relay it came through. The relays we are joined to are announced through discovery as
``joined_urls``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..errors import ConfigError
from ..identity import DeviceID, Identity
from ..protocol.relay import RelayURL, SessionInvitation, parse_relay_url
from .relay import RelayMember, RelayStatus, dial_through_relay, make_relay_context

log = logging.getLogger("p2psync.net.relay")

SessionHandler = Callable[[trio.abc.Stream, SessionInvitation, RelayURL], Awaitable[None]]


@dataclass
class _Running:
    member: RelayMember
    scope: trio.CancelScope


class RelayService:
    def __init__(
        self,
        identity: Identity,
        get_relays: Callable[[], tuple[str, ...]],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.context = make_relay_context(identity)
        self.get_relays = get_relays
        self.on_change = on_change  # joined or left a relay (discovery announces again)
        self._running: dict[RelayURL, _Running] = {}
        self._nursery: trio.Nursery | None = None
        self._on_session: SessionHandler | None = None  # given to ``serve``

    async def serve(
        self,
        on_session: SessionHandler,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Join the configured relays until cancelled; each accepted invitation goes to
        ``on_session`` (the connection manager, which runs this service)."""
        self._on_session = on_session
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.update()
            task_status.started()
            await trio.sleep_forever()

    def update(self) -> None:
        """Join the configured relays that are not joined yet, leave the others."""
        if self._nursery is None:
            return
        wanted: list[RelayURL] = []
        for text in self.get_relays():
            try:
                wanted.append(parse_relay_url(text))
            except ConfigError as exc:  # config validation refuses these; be safe anyway
                log.warning("ignoring relay %r: %s", text, exc)
        for url in set(self._running) - set(wanted):
            self._running.pop(url).scope.cancel()
            self.on_change()
        for url in wanted:
            if url not in self._running:
                member = RelayMember(
                    url,
                    self.context,
                    self._session_handler(url),
                    self._nursery,
                    on_change=lambda: self.on_change(),
                )
                running = _Running(member, trio.CancelScope())
                self._running[url] = running
                self._nursery.start_soon(self._run_member, running)

    async def _run_member(self, running: _Running) -> None:
        with running.scope:
            await running.member.run()

    def _session_handler(
        self, url: RelayURL
    ) -> Callable[[trio.abc.Stream, SessionInvitation], Awaitable[None]]:
        async def handle(stream: trio.abc.Stream, invitation: SessionInvitation) -> None:
            assert self._on_session is not None  # members run only while ``serve`` does
            await self._on_session(stream, invitation, url)

        return handle

    def statuses(self) -> list[RelayStatus]:
        return [r.member.status for r in self._running.values()]

    def joined_urls(self) -> list[str]:
        """Our relay addresses, as announced through discovery."""
        return [str(s.url) for s in self.statuses() if s.joined]

    async def dial(self, url: RelayURL, device: DeviceID) -> trio.abc.Stream:
        """A relayed stream to ``device`` through ``url`` (we are the TLS client in it)."""
        stream, _invitation = await dial_through_relay(url, device, self.context)
        return stream
