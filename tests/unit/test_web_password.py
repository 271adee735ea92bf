"""The web interface's optional password: scrypt hash, verification, the file's mode."""

from __future__ import annotations

import pytest

from p2psync.errors import UsageError
from p2psync.web.password import check_password, hash_password, set_password, verify_password


def test_hash_and_verify() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("correct horse", "garbage")
    assert hash_password("correct horse") != stored  # salted
    with pytest.raises(UsageError):
        hash_password("short")


def test_set_check_and_clear(tmp_path) -> None:
    assert not check_password(tmp_path, "anything at all")
    set_password(tmp_path, "correct horse")
    assert (tmp_path / "web.password").stat().st_mode & 0o777 == 0o600
    assert check_password(tmp_path, "correct horse")
    assert not check_password(tmp_path, "") and not check_password(tmp_path, "wrong one")
    set_password(tmp_path, None)
    assert not check_password(tmp_path, "correct horse")
