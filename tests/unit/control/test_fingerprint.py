"""The control schema's fingerprint, as documented in schemas/README.md."""

from __future__ import annotations

from aimass.control.commands import ControlCodec
from aimass.settings import PROJECT_ROOT


def test_the_control_fingerprint_is_the_documented_one() -> None:
    fp = ControlCodec().header[2:]
    assert fp == bytes.fromhex("d43aeec07ce342e3")
    assert " ".join(f"{b:02x}" for b in fp) in (PROJECT_ROOT / "schemas" / "README.md").read_text()
