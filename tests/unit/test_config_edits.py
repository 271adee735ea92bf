"""ConfigEdits: the sync model's config edits, applied by the node that serves them."""

from __future__ import annotations

import pytest
import trio

from p2psync.config import Config
from p2psync.config_edits import ConfigEdits
from p2psync.errors import ConfigError


async def test_an_edit_is_applied_by_the_server_and_its_result_returned() -> None:
    edits = ConfigEdits()
    current = [Config(name="before")]

    async def apply(edit):  # the node's change_config: edit, save, apply
        current[0] = edit(current[0])
        return current[0]

    async with trio.open_nursery() as nursery:
        await nursery.start(edits.serve, apply)
        with trio.fail_after(5):
            new = await edits.change(lambda cfg: Config(name=cfg.name + ", after"))
        assert new.name == "before, after" and current[0] is new
        nursery.cancel_scope.cancel()


async def test_an_error_applying_reaches_the_requester_and_serving_goes_on() -> None:
    edits = ConfigEdits()

    async def apply(edit):
        new = edit(Config(name="n"))
        if new.name == "bad":
            raise ConfigError("config.toml is invalid")
        return new

    async with trio.open_nursery() as nursery:
        await nursery.start(edits.serve, apply)
        with trio.fail_after(5):
            with pytest.raises(ConfigError, match="invalid"):
                await edits.change(lambda cfg: Config(name="bad"))
            assert (await edits.change(lambda cfg: Config(name="good"))).name == "good"
        nursery.cancel_scope.cancel()
