"""The connection manager over real TLS on loopback: trust, pending devices, MITM,
simultaneous dials and reconnects."""

import trio
from nodes import Cluster, make_home, wait_for

from p2psync.config import DeviceConfig, save_config
from p2psync.identity import load_identity
from p2psync.wiring import serve_node


async def test_unknown_device_is_refused_and_listed_as_pending(tmp_path) -> None:
    async with trio.open_nursery() as nursery:
        home_a, home_b = make_home(tmp_path, "a"), make_home(tmp_path, "b")
        a = await nursery.start(serve_node, home_a)
        b = await nursery.start(serve_node, home_b)
        # a trusts b; b does not know a
        cfg = a.config.with_device(
            DeviceConfig(id=b.device_id, addresses=tuple(b.connections.listen_addresses))
        )
        save_config(cfg, home_a)
        await a.apply_config(cfg)
        await wait_for(lambda: b.pending.devices(), what="pending device on b")
        entry = b.pending.devices()[0]
        assert entry.device_id == str(a.device_id) and entry.name == "a"
        assert entry.address.startswith("tcp://127.0.0.1:")
        assert not b.connections.is_connected(a.device_id)
        assert not b.model.connections
        # b records the stranger before its Close reaches a: a sees the refusal a moment later
        await wait_for(
            lambda: not a.connections.is_connected(b.device_id), what="a to see the refusal"
        )
        nursery.cancel_scope.cancel()


async def test_wrong_certificate_at_the_address_is_refused(tmp_path, caplog) -> None:
    """a believes b lives at c's address: c's certificate does not hash to b's ID."""
    async with trio.open_nursery() as nursery:
        homes = {n: make_home(tmp_path, n) for n in "abc"}
        nodes = {n: await nursery.start(serve_node, homes[n]) for n in "abc"}
        b_id = load_identity(homes["b"]).device_id
        cfg = nodes["a"].config.with_device(
            DeviceConfig(id=b_id, addresses=tuple(nodes["c"].connections.listen_addresses))
        )
        save_config(cfg, homes["a"])
        await nodes["a"].apply_config(cfg)
        await wait_for(
            lambda: any("man in the middle" in r.getMessage() for r in caplog.records),
            what="refusal logged",
        )
        assert not nodes["a"].connections.is_connected(b_id)
        assert not nodes["a"].model.connections
        nursery.cancel_scope.cancel()


async def test_simultaneous_dial_yields_one_connection_and_reconnects(tmp_path) -> None:
    c = Cluster(tmp_path, ["a", "b"])
    async with trio.open_nursery() as nursery:
        await c.start_all(nursery)  # both know each other's address: both dial
        await wait_for(lambda: c.connected("a", "b") and c.connected("b", "a"), what="connection")
        a, b = c.nodes["a"], c.nodes["b"]

        def agreed() -> bool:
            ca = a.connections.active.get(b.device_id)
            cb = b.connections.active.get(a.device_id)
            return bool(
                ca
                and cb
                and not ca.peer.closed
                and not cb.peer.closed
                and ca.initiated_by_us != cb.initiated_by_us
            )

        await wait_for(agreed, what="one agreed connection")

        def model_uses_it(x, y) -> bool:  # type: ignore[no-untyped-def]
            active = x.connections.active.get(y.device_id)
            return (
                len(x.model.connections) == 1
                and active is not None
                and x.model.connections.get(y.device_id) is active.peer
            )

        # The sync model takes a connection once our ClusterConfig is on its way; until
        # the loser of the simultaneous dial is replaced it may briefly hold that one.
        await wait_for(
            lambda: model_uses_it(a, b) and model_uses_it(b, a),
            what="the model uses the one agreed connection",
        )
        # the peer goes away and comes back: detected and re-dialled
        await c.stop("b")
        await wait_for(
            lambda: not a.connections.is_connected(b.device_id), what="disconnect detected"
        )
        await c.start(nursery, "b")
        await wait_for(lambda: c.connected("a", "b"), what="reconnect after restart")
        nursery.cancel_scope.cancel()
