import base64
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2psync.errors import DeviceIDError, IdentityError
from p2psync.identity import (
    DeviceID,
    generate_identity,
    load_identity,
    load_or_create_identity,
    luhn32,
)

VECTORS = [
    (
        "MFZWI3DBONSGYYLTMRWGC43ENRQXGZDMMFZWI3DBONSGYYLTMRWA",
        "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD",
    ),
    (
        "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ",
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
    ),
]


def raw_of(b32: str) -> bytes:
    return base64.b32decode(b32 + "====")


@pytest.mark.parametrize(("b32", "formatted"), VECTORS)
def test_format_matches_syncthing(b32: str, formatted: str) -> None:
    assert str(DeviceID(raw_of(b32))) == formatted


@pytest.mark.parametrize(("b32", "formatted"), VECTORS)
def test_parse_round_trip(b32: str, formatted: str) -> None:
    assert DeviceID.parse(formatted).raw == raw_of(b32)


def test_second_vector_raw_bytes() -> None:
    expected = "7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205"
    assert DeviceID.parse(VECTORS[1][1]).raw.hex() == expected


@pytest.mark.parametrize(
    "variant",
    [
        "p56ioi7-mzjnu2y-iqgdrey-dm2mgti-mgl3bxn-pq6w5bm-tbbz4tj-xzwicq2",  # lower case
        "P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ2",  # no dashes
        " P56IOI7 MZJNU2Y IQGDREY DM2MGTI MGL3BXN PQ6W5BM TBBZ4TJ XZWICQ2 ",  # spaces
        "P56I0I7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",  # 0 for O
        "P56IO17-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",  # 1 for I
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-T8BZ4TJ-XZWICQ2",  # 8 for B
        "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ",  # 52 chars, no checks
    ],
)
def test_lenient_parsing(variant: str) -> None:
    assert str(DeviceID.parse(variant)) == VECTORS[1][1]


def test_wrong_check_character_is_a_clear_error() -> None:
    bad = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ3"
    with pytest.raises(
        DeviceIDError, match="check character at the end of group 8: a typo in group 7 or 8"
    ):
        DeviceID.parse(bad)


@pytest.mark.parametrize("bad", ["", "ABC", "P56IOI7-MZJNU2Y-" * 5, "!" * 56])
def test_malformed_ids_rejected(bad: str) -> None:
    with pytest.raises(DeviceIDError):
        DeviceID.parse(bad)


def test_luhn_known_groups() -> None:
    assert luhn32("MFZWI3DBONSGY") == "C"
    assert luhn32("P56IOI7MZJNU2") == "Y"


def test_short_id_is_first_eight_bytes_big_endian() -> None:
    d = DeviceID.parse(VECTORS[1][1])
    assert d.short_id == 0x7F7C8723ECCA5B4D
    assert d.short_str() == "P56IOI7"


def test_generated_identity_is_p384_and_id_matches_cert(tmp_path) -> None:
    ident = generate_identity()
    assert ident.private_key().curve.name == "secp384r1"
    assert DeviceID.from_cert_der(ident.cert_der) == ident.device_id
    loaded, created = load_or_create_identity(tmp_path)
    assert created
    assert load_identity(tmp_path).device_id == loaded.device_id
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    again, created = load_or_create_identity(tmp_path)
    assert not created and again.device_id == loaded.device_id


def test_a_new_home_is_private_and_an_existing_one_keeps_its_mode(tmp_path) -> None:
    os.umask(old := os.umask(0o022))
    home = tmp_path / "new" / "home"
    load_or_create_identity(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    shared = tmp_path / "chosen"
    shared.mkdir(mode=0o750)
    load_or_create_identity(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750 & ~old


def test_missing_or_mismatched_identity(tmp_path) -> None:
    with pytest.raises(IdentityError, match="p2psync init"):
        load_identity(tmp_path)
    a, b = generate_identity(), generate_identity()
    (tmp_path / "cert.pem").write_bytes(a.cert_pem)
    (tmp_path / "key.pem").write_bytes(b.key_pem)
    with pytest.raises(IdentityError, match="do not belong together"):
        load_identity(tmp_path)


def _luhn32_reference(group: str) -> str:
    """The check character computed the long way (Syncthing's luhn.go, in words)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    factor, total = 1, 0
    for ch in group:
        addend = factor * alphabet.index(ch)
        factor = 2 if factor == 1 else 1
        total += addend // 32 + addend % 32
    return alphabet[(32 - total % 32) % 32]


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", max_size=20))
def test_luhn32_tables_match_the_long_way(group: str) -> None:
    assert luhn32(group) == _luhn32_reference(group)


@given(st.binary(min_size=32, max_size=32))
def test_parse_reads_back_every_id_with_and_without_checks(raw: bytes) -> None:
    device = DeviceID(raw)
    assert DeviceID.parse(str(device)) == device
    plain = base64.b32encode(raw).decode().rstrip("=")
    assert DeviceID.parse(plain.lower()) == device  # 52 characters, no check characters


def test_luhn32_refuses_a_character_outside_base32() -> None:
    with pytest.raises(ValueError, match="'1' is not a base32 character"):
        luhn32("AB1")
