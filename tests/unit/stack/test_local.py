"""The local stack's start-up, before any process: the state folder is the user's alone."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from aimass.settings import Settings
from aimass.stack.kafka import KafkaBroker
from aimass.stack.local import LocalStack
from aimass.stack.procs import StackError


def no_java(self: KafkaBroker) -> str:
    raise StackError("stop here")


@pytest.mark.parametrize("existing", [False, True])
def test_up_makes_the_state_folder_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    state = tmp_path / "state"
    if existing:  # made before, under umask 022
        state.mkdir(mode=0o755)
        state.chmod(0o755)
    monkeypatch.setattr(KafkaBroker, "java", no_java)  # nothing past the preflight's first checks
    with pytest.raises(StackError, match="stop here"):
        LocalStack(Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(state)}), say=lambda _: None).up()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
