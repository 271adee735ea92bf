"""Validation errors in config.toml name the line (config_lines.line_of + load_config)."""

from __future__ import annotations

import pytest

from p2psync.config import load_config
from p2psync.config_lines import line_of
from p2psync.errors import ConfigError

TEXT = """\
name = "n"
listen = ["tcp://127.0.0.1:0"]

[discovery]
mdns = false

[[devices]]
id = "A"

[[devices]]
id = "B"
addresses = ["dynamic", "bad"]

[[folders]]
id = "one"
path = "/tmp/one"

[folders.versioning]
type = "simple"

[[folders]]
id = "two"
path = "/tmp/two"
type = "bogus"

[folders.versioning]
type = "weird"
"""


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("name", 1),
        ("listen[0]", 2),
        ("discovery.mdns", 5),
        ("devices[0].id", 8),
        ("devices[1].addresses[1]", 12),
        ("folders[1].type", 24),
        ("folders[0].versioning.type", 19),
        ("folders[1].versioning.type", 27),
        ("folders[1].label", 21),  # missing: the table's header
        ("nothing", None),
        ("folders[7].id", None),
    ],
)
def test_line_of(where: str, line: int | None) -> None:
    assert line_of(TEXT, where) == line


def test_load_config_names_the_line_of_a_validation_error(tmp_path) -> None:
    (tmp_path / "config.toml").write_text(
        'name = "n"\n\n[[folders]]\nid = "x"\npath = "/tmp/x"\ntype = "bogus"\n'
    )
    with pytest.raises(ConfigError, match=r"config.toml line 6: folders\[0\].type: must be one"):
        load_config(tmp_path)


def test_load_config_names_the_line_of_a_syntax_error(tmp_path) -> None:
    (tmp_path / "config.toml").write_text('name = "n"\nlisten = [1,, 2]\n')
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_config(tmp_path)
