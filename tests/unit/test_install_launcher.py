"""Embedding the argv blob into the launcher (pure byte manipulation)."""

from __future__ import annotations

import pytest

from vpcnet.errors import InstallError
from vpcnet.install.launcher import BLOB_SIZE, MARKER, MAX_PREFIX, embed_argv

# A stand-in for the compiled launcher: ELF magic, code, the blob, more code.
TEMPLATE = b"\x7fELF" + b"\x01" * 100 + MARKER.ljust(BLOB_SIZE, b"\0") + b"\x02" * 50


def blob_of(binary: bytes) -> list[bytes]:
    at = 104
    region = binary[at : at + BLOB_SIZE]
    return region.split(b"\0\0", 1)[0].split(b"\0")


def test_embeds_nul_separated_argv_in_place() -> None:
    out = embed_argv(TEMPLATE, ["/rt/lib/ld.so", "--library-path", "/rt/lib", "-c", "a b"])
    assert len(out) == len(TEMPLATE)
    assert out[:104] == TEMPLATE[:104] and out[-50:] == TEMPLATE[-50:]
    assert blob_of(out) == [b"/rt/lib/ld.so", b"--library-path", b"/rt/lib", b"-c", b"a b"]
    assert MARKER not in out


def test_blob_is_terminated_by_an_empty_string() -> None:
    out = embed_argv(TEMPLATE, ["/x"])
    assert out[104 : 104 + 4] == b"/x\0\0"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        ([], "absolute"),
        (["relative/ld.so"], "absolute"),
        (["/ld.so", ""], "NUL"),
        (["/ld.so", "a\0b"], "NUL"),
        (["/ld.so", "x" * BLOB_SIZE], "blob holds"),
        (["/ld.so"] * (MAX_PREFIX + 1), "at most"),
    ],
)
def test_rejects_bad_argv(argv: list[str], match: str) -> None:
    with pytest.raises(InstallError, match=match):
        embed_argv(TEMPLATE, argv)


def test_rejects_a_binary_without_exactly_one_marker() -> None:
    with pytest.raises(InstallError, match="exactly one"):
        embed_argv(b"\x7fELF" + b"\0" * BLOB_SIZE, ["/x"])
    with pytest.raises(InstallError, match="exactly one"):
        embed_argv(TEMPLATE + MARKER, ["/x"])


def test_rejects_an_already_configured_or_truncated_blob() -> None:
    dirty = TEMPLATE.replace(MARKER + b"\0", MARKER + b"junk", 1)
    with pytest.raises(InstallError, match="empty block"):
        embed_argv(dirty, ["/x"])
    with pytest.raises(InstallError, match="empty block"):
        embed_argv(TEMPLATE[: 104 + 100], ["/x"])
