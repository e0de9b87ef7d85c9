"""The layout says what runs where: the contract and the client import no ONNX Runtime, no
Flink and no demo tools; the README's layout table lists the package's folders."""

from __future__ import annotations

import subprocess
import sys

from aimass.settings import PROJECT_ROOT

HEAVY = ("onnxruntime", "pyflink", "aimass.tools", "aimass.serving.sessions", "aimass.serving.engine")


def test_the_contract_and_the_client_import_neither_onnx_runtime_nor_flink_nor_tools() -> None:
    code = ("import sys, aimass.contract.codec, aimass.contract.rules, aimass.client, aimass.serving.fit\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_readme_layout_table_names_every_package_folder() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    packages = (PROJECT_ROOT / "aimass").glob("*/__init__.py")
    folders = sorted(p.parent.relative_to(PROJECT_ROOT).as_posix() for p in packages if "_gen" not in p.parts)
    missing = [f for f in folders if f"`{f}/`" not in readme]
    assert not missing, f"README.md's layout table lacks {missing}"
