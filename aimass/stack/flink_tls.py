"""Flink's SSL with mutual authentication (``flink.ssl``): the files, the cluster configuration,
and the client side every REST call of ``aimass`` uses.

On first start ``aimass up`` makes, in ``<state_dir>/flink/tls/`` (owner-only): a CA of the
cluster (``ca.pem``, ``ca.key``), one certificate for the cluster's processes and its clients
(``node.crt``, ``node.key``: server and client authentication, naming ``127.0.0.1``,
``localhost`` and ``flink.host``), the Java stores Flink reads (``keystore.p12``: that key and
certificate; ``truststore.p12``: the CA) and their password (``store.password``). Flink then
speaks TLS on the REST API, answering only clients that present a certificate of the CA
(``security.ssl.rest.authentication-enabled``), and on every RPC, blob and data connection
between its processes (``security.ssl.internal.*``, always mutual). Files put there by hand
(from another CA) are used as they are; on several hosts, the certificate must name each of
them, and every host (and every client) needs the folder.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.settings import Settings
from aimass.stack import tls
from aimass.stack.procs import StackError, private_dir

WHY = "Flink's SSL (AIMASS_FLINK_SSL)"


@dataclass(frozen=True)
class FlinkTls:
    """The TLS files of one cluster and what is made of them."""

    settings: Settings

    @property
    def folder(self) -> Path:
        """``<state_dir>/flink/tls``."""
        return self.settings.paths.state_dir / "flink" / "tls"

    def ensure(self) -> None:
        """Make whatever of the CA, certificate, stores and password is missing.

        Raises:
            StackError: ``openssl`` or ``keytool`` is missing, or a step failed.
        """
        folder = self.folder
        wanted = ("ca.pem", "node.crt", "node.key", "keystore.p12", "truststore.p12", "store.password")
        if all((folder / name).exists() for name in wanted):
            return
        openssl, keytool = tls.tool("openssl", WHY), tls.tool("keytool", WHY)
        private_dir(folder)
        tls.make_ca(folder, "AI Mass Flink CA", openssl)
        if not (folder / "node.crt").exists() or not (folder / "node.key").exists():
            tls.make_certificate(folder, "node", [self.settings.flink.host], openssl)
        tls.password(folder / "store.password")
        for name in ("keystore.p12", "truststore.p12"):
            (folder / name).unlink(missing_ok=True)
        # Passwords from the file, never on a command line (readable in /proc).
        tls.run([openssl, "pkcs12", "-export", "-in", "node.crt", "-inkey", "node.key", "-certfile", "ca.pem",
                 "-name", "flink", "-out", "keystore.p12", "-passout", "file:store.password"],
                folder, "Flink's keystore")
        tls.run([keytool, "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-keystore",
                 "truststore.p12", "-storetype", "PKCS12", "-storepass:file", "store.password"],
                folder, "Flink's truststore")
        for name in ("keystore.p12", "truststore.p12"):
            (folder / name).chmod(0o600)

    def flink_config(self) -> dict[str, Any]:
        """``security.ssl.*`` of the cluster (making the files first if needed); empty without ``flink.ssl``."""
        if not self.settings.flink.ssl:
            return {}
        self.ensure()
        secret = (self.folder / "store.password").read_text().strip()
        config: dict[str, Any] = {
            "security.ssl.internal.enabled": True,
            "security.ssl.rest.enabled": True,
            "security.ssl.rest.authentication-enabled": True,  # mutual: no client certificate, no answer
        }
        for side in ("internal", "rest"):
            config.update({
                f"security.ssl.{side}.keystore": str(self.folder / "keystore.p12"),
                f"security.ssl.{side}.keystore-type": "PKCS12",
                f"security.ssl.{side}.keystore-password": secret,
                f"security.ssl.{side}.key-password": secret,
                f"security.ssl.{side}.truststore": str(self.folder / "truststore.p12"),
                f"security.ssl.{side}.truststore-type": "PKCS12",
                f"security.ssl.{side}.truststore-password": secret,
            })
        return config

    def client_context(self) -> ssl.SSLContext:
        """The TLS context of a REST client: trusts the cluster's CA and presents its certificate.

        Raises:
            StackError: the files are not there (this host did not start the cluster).
        """
        ca, cert, key = (self.folder / name for name in ("ca.pem", "node.crt", "node.key"))
        missing = [p.name for p in (ca, cert, key) if not p.exists()]
        if missing:
            raise StackError(
                f"AIMASS_FLINK_SSL is on but {', '.join(missing)} is missing in {self.folder}: start the cluster "
                "here with `aimass up`, or copy that folder from the host that did (owner-only)"
            )
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
        return context


def rest_context(settings: Settings) -> ssl.SSLContext | None:
    """What every REST call of ``aimass`` opens its connection with: None over plain HTTP."""
    return FlinkTls(settings).client_context() if settings.flink.ssl else None
