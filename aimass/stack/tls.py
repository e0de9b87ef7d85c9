"""A private CA and certificates signed by it, made with ``openssl`` (and ``keytool`` for Java
stores): what the stack's TLS endpoints use when no other certificates are given.

Every private file (keys, stores, passwords) is created owner-only before anything is written
into it, in a folder that is owner-only too.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from aimass.stack.childenv import child_env
from aimass.stack.procs import StackError, private_dir


def tool(name: str, why: str) -> str:
    """Path of ``openssl`` or ``keytool``, or a StackError saying how to get it and what needs it."""
    found = shutil.which(name)
    if not found:
        package = "openssl" if name == "openssl" else "openjdk-17-jdk-headless"
        raise StackError(f"{name} not found on PATH; {why} generates its certificates with it: install it "
                         f"(apt-get install {package})")
    return found


def run(argv: list[str], cwd: Path, what: str) -> None:
    """Run one generation step in ``cwd``; a failure names the step and the folder."""
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60,  # noqa: S603
                          check=False, env=child_env("tool"))
    if done.returncode != 0:
        raise StackError(f"{Path(argv[0]).name} {argv[1]} failed generating {what} in {cwd}:\n{done.stderr}")


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to a file readable by its owner only (never readable by others, not even briefly)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)


def subject_alt_names(hosts: Iterable[str]) -> str:
    """``subjectAltName`` naming ``127.0.0.1``, ``localhost`` and ``hosts`` (IP or DNS entries)."""
    names = ["IP:127.0.0.1", "DNS:localhost"]
    for host in hosts:
        try:
            name = f"IP:{ipaddress.ip_address(host)}"
        except ValueError:
            name = f"DNS:{host}"
        if host and name not in names:
            names.append(name)
    return ",".join(names)


def make_ca(folder: Path, common_name: str, openssl: str) -> None:
    """``ca.pem`` and its key ``ca.key`` in ``folder`` (kept if there)."""
    if (folder / "ca.pem").exists() and (folder / "ca.key").exists():
        return
    private_dir(folder)
    run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "3650", "-subj", f"/CN={common_name}", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], folder, "a CA")
    (folder / "ca.key").chmod(0o600)


def make_certificate(folder: Path, stem: str, hosts: Iterable[str], openssl: str,
                     usage: str = "serverAuth,clientAuth") -> None:
    """``<stem>.key`` (unencrypted PKCS#8, owner-only) and ``<stem>.crt``, signed by ``folder``'s CA,
    naming ``hosts``, for the extended key ``usage`` given."""
    ext = folder / f"{stem}.ext"
    ext.write_text(
        f"subjectAltName={subject_alt_names(hosts)}\nbasicConstraints=critical,CA:FALSE\n"
        f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
         "-subj", f"/CN={stem}"], folder, f"the {stem} certificate")
    (folder / f"{stem}.key").chmod(0o600)
    run([openssl, "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", str(secrets.randbits(63)), "-days", "825", "-extfile", ext.name, "-out", f"{stem}.crt"],
        folder, f"the {stem} certificate")
    (folder / f"{stem}.csr").unlink()


def password(path: Path) -> str:
    """The password kept in ``path``, made (owner-only) the first time."""
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()
