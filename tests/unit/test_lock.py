"""The hashed lock files agree with the pins people edit (requirements*.txt) and with each other.

requirements*.txt hold the direct pins; `make lock` (pip-tools' pip-compile --generate-hashes)
writes requirements*.lock from them: every package, transitive ones included, pinned with its
hashes, which is what `make setup`, the bench install and the image install (pip's
--require-hashes mode). A pin bumped without `make lock`, a package dropped from a
requirements file but left in the lock, a hand-edited entry without hashes, or two locks that
disagree on a shared package fails here. Reads files only (no network, no pip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from aimass.settings import PROJECT_ROOT

# Each lock and the requirements files it is compiled from (the Makefile's `lock` target).
LOCKS: dict[str, tuple[str, ...]] = {
    "requirements.lock": ("requirements.txt",),
    "requirements-dev.lock": ("requirements-dev.txt", "requirements-pip.txt"),
    "requirements-bench.lock": ("requirements-dev.txt", "requirements-bench.txt", "requirements-pip.txt"),
    "requirements-pip.lock": ("requirements-pip.txt",),
}
# Installed one on top of the other into the same venv (or the image's, for requirements.lock):
# each smaller lock is a subset of the larger one, at the same versions and hashes.
NESTED = (
    ("requirements.lock", "requirements-dev.lock"),
    ("requirements-pip.lock", "requirements-dev.lock"),
    ("requirements-dev.lock", "requirements-bench.lock"),
)

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_pins(filename: str, _seen: frozenset[str] = frozenset()) -> dict[str, str]:
    """The `name==version` lines of a requirements file and the files it includes with -r."""
    assert filename not in _seen, f"-r cycle through {filename}"
    pins: dict[str, str] = {}
    for raw in (PROJECT_ROOT / filename).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-c"):
            continue
        if line.startswith("-r"):
            pins.update(direct_pins(line[2:].strip(), _seen | {filename}))
            continue
        match = _PIN.match(line)
        assert match, f"{filename}: {raw!r} is not pinned with =="
        pins[_canonical(match.group(1))] = match.group(3)
    return pins


def included_files(filename: str) -> list[str]:
    """A requirements file and those it includes with -r, transitively."""
    files = [filename]
    for raw in (PROJECT_ROOT / filename).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r"):
            files += [f for f in included_files(line[2:].strip()) if f not in files]
    return files


@dataclass(frozen=True)
class Entry:
    version: str
    hashes: frozenset[str]
    via: tuple[str, ...]  # the annotation's sources: package names and "-r FILE" / "-c FILE"


def read_lock(filename: str) -> tuple[str, dict[str, Entry]]:
    return parse_lock((PROJECT_ROOT / filename).read_text(), filename)


def parse_lock(text: str, filename: str) -> tuple[str, dict[str, Entry]]:
    """A pip-compile output file: its header and its entries (an entry's hashes and annotations below it)."""
    lines = text.splitlines()
    header = "\n".join(line for line in lines[:8] if line.startswith("#"))
    entries: dict[str, Entry] = {}
    name = ""
    for line in lines:
        if not line.strip():
            continue
        if line.startswith("#"):  # the header and section comments
            continue
        if line.startswith("    #"):  # "# via ..." annotations belong to the entry above
            assert name, f"{filename}: annotation before any entry: {line!r}"
            source = line.strip().lstrip("#").strip()
            source = source.removeprefix("via").strip()
            if source:
                entry = entries[name]
                entries[name] = Entry(entry.version, entry.hashes, (*entry.via, source))
            continue
        if line.startswith(" "):  # a continuation: hashes of the entry above
            assert name, f"{filename}: continuation before any entry: {line!r}"
            found = _HASH.findall(line)
            assert found, f"{filename}: {line.strip()!r} under {name} is neither a sha256 hash nor a comment"
            entry = entries[name]
            entries[name] = Entry(entry.version, entry.hashes | set(found), entry.via)
            continue
        assert not line.startswith("-"), f"{filename}: option or editable line {line!r} (locks hold pins only)"
        match = _PIN.match(line)
        assert match, f"{filename}: {line!r} is not pinned with =="
        name = _canonical(match.group(1))
        assert name not in entries, f"{filename}: {name} twice"
        entries[name] = Entry(match.group(3), frozenset(_HASH.findall(line)), ())
    return header, entries


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_is_generated_and_every_entry_is_hashed(lock: str) -> None:
    header, entries = read_lock(lock)
    assert "pip-compile" in header and "make lock" in header, f"{lock}: header does not say how it was made"
    assert entries
    unhashed = sorted(name for name, entry in entries.items() if not entry.hashes)
    assert not unhashed, f"{lock}: entries without --hash=sha256: {unhashed} (run `make lock`)"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_direct_pin_is_in_the_lock_at_its_version(lock: str) -> None:
    _, entries = read_lock(lock)
    for source in LOCKS[lock]:
        for name, version in direct_pins(source).items():
            assert name in entries, f"{name}=={version} ({source}) is missing from {lock}: run `make lock`"
            assert entries[name].version == version, (
                f"{name}: {source} pins {version}, {lock} has {entries[name].version}: run `make lock`"
            )


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_has_no_direct_pin_that_its_sources_dropped(lock: str) -> None:
    # pip-compile annotates a direct requirement with "-r FILE": one whose file no longer pins it
    # (removed, or a lock left from an older requirements file) is stale.
    _, entries = read_lock(lock)
    pins = {file: direct_pins(file) for source in LOCKS[lock] for file in included_files(source)}
    for name, entry in entries.items():
        for via in entry.via:
            if not via.startswith("-r "):
                continue
            source = via.removeprefix("-r ").strip()
            assert source in pins, f"{lock}: {name} comes from {source}, which is not one of its sources"
            assert name in pins[source], f"{lock}: {name} is no longer pinned in {source}: run `make lock`"


@pytest.mark.parametrize(("smaller", "larger"), NESTED)
def test_locks_installed_into_one_venv_agree(smaller: str, larger: str) -> None:
    _, small = read_lock(smaller)
    _, large = read_lock(larger)
    missing = sorted(set(small) - set(large))
    assert not missing, f"{missing} are in {smaller} but not in {larger}"
    for name, entry in small.items():
        assert entry.version == large[name].version, (
            f"{name}: {smaller} has {entry.version}, {larger} has {large[name].version}"
        )
        assert entry.hashes == large[name].hashes, f"{name}: {smaller} and {larger} list different hashes"


def test_the_installs_use_the_locks_in_hash_checking_mode() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for lock in ("requirements-pip.lock", "requirements-dev.lock", "requirements-bench.lock"):
        assert re.search(rf"pip install .*--require-hashes .*-r {re.escape(lock)}", makefile), lock
    for line in makefile.splitlines():
        if re.search(r"\$\(BIN\)/(pip|python -m pip) install", line):
            assert "--require-hashes" in line or "--no-deps" in line, f"unhashed install: {line.strip()}"
    dockerfile = (PROJECT_ROOT / "docker" / "flink" / "Dockerfile").read_text()
    assert re.search(r"pip install .*--require-hashes .*-r \S*requirements\.lock", dockerfile)
    ignore = (PROJECT_ROOT / "docker" / "flink" / "Dockerfile.dockerignore").read_text().split()
    assert "!requirements.lock" in ignore and "!requirements-pip.lock" in ignore


def test_the_reader_catches_a_hand_edited_lock() -> None:
    # The checks above are only as good as the reader: an entry whose hashes were dropped, or a
    # pin without ==, must not pass for a hashed one.
    good = "pkg==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r requirements.txt\n"
    _, entries = parse_lock(good, "x.lock")
    assert entries == {"pkg": Entry("1.0", frozenset({"a" * 64}), ("-r requirements.txt",))}
    _, entries = parse_lock("pkg==1.1\n    # via -r requirements.txt\n", "x.lock")
    assert not entries["pkg"].hashes
    for bad in ("pkg>=1.0 \\\n    --hash=sha256:" + "a" * 64, "-e .", "pkg==1.0 \\\n    --hash=md5:abc"):
        with pytest.raises(AssertionError):
            parse_lock(bad + "\n", "x.lock")


def test_lock_sources_exist() -> None:
    for lock, sources in LOCKS.items():
        assert (PROJECT_ROOT / lock).is_file(), f"{lock} is missing: run `make lock`"
        for source in sources:
            assert Path(PROJECT_ROOT / source).is_file(), source
