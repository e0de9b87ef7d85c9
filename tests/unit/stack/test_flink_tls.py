"""Flink's SSL setting: the generated files (owner-only, passwords never on a command line), the
cluster configuration (REST mutual, internal on), and the REST client's certificate."""

from __future__ import annotations

import shutil
import ssl
import stat
from pathlib import Path

import pytest

from aimass.settings import Settings
from aimass.stack import tls
from aimass.stack.flink import FlinkCluster
from aimass.stack.flink_tls import FlinkTls, rest_context
from aimass.stack.procs import StackError

pytestmark = pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("keytool")),
                                reason="needs openssl and keytool (apt-get install openssl openjdk-17-jdk-headless)")


@pytest.fixture(scope="module")
def ssl_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("ssl") / "state"
    return Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(state), "AIMASS_FLINK_SSL": "true",
                              "AIMASS_FLINK_HOST": "10.3.4.5"})


@pytest.fixture(scope="module")
def config(ssl_settings: Settings) -> dict[str, object]:
    return FlinkCluster(ssl_settings).config()


def test_rest_is_mutual_tls_and_internal_connections_are_tls(config: dict[str, object]) -> None:
    assert config["security.ssl.rest.enabled"] is True
    assert config["security.ssl.rest.authentication-enabled"] is True
    assert config["security.ssl.internal.enabled"] is True
    for side in ("rest", "internal"):
        assert Path(str(config[f"security.ssl.{side}.keystore"])).is_file()
        assert Path(str(config[f"security.ssl.{side}.truststore"])).is_file()
        assert config[f"security.ssl.{side}.keystore-type"] == "PKCS12"


def test_the_rest_url_is_https_and_the_origin_follows_it(ssl_settings: Settings, config: dict[str, object]) -> None:
    assert ssl_settings.flink.rest_url == "https://10.3.4.5:8081"
    assert config["web.access-control-allow-origin"] == "https://10.3.4.5:8081"


def test_every_private_file_is_owner_only(ssl_settings: Settings, config: dict[str, object]) -> None:
    folder = FlinkTls(ssl_settings).folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("ca.key", "node.key", "keystore.p12", "truststore.p12", "store.password"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


def test_the_certificate_names_the_host_and_serves_both_ends(ssl_settings: Settings, config: dict[str, object]) -> None:
    decoded = ssl._ssl._test_decode_cert(str(FlinkTls(ssl_settings).folder / "node.crt"))  # type: ignore[attr-defined]
    names = {value for _, value in decoded["subjectAltName"]}
    assert {"127.0.0.1", "localhost", "10.3.4.5"} <= names


def test_the_rest_client_presents_the_certificate_and_trusts_the_ca(
    ssl_settings: Settings, config: dict[str, object]
) -> None:
    context = rest_context(ssl_settings)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert rest_context(Settings()) is None


def test_no_password_is_on_a_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real = tls.run

    def recording(argv: list[str], cwd: Path, what: str) -> None:
        seen.append(argv)
        real(argv, cwd, what)

    monkeypatch.setattr(tls, "run", recording)
    settings = Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_FLINK_SSL": "true"})
    FlinkTls(settings).ensure()
    secret = (FlinkTls(settings).folder / "store.password").read_text().strip()
    assert seen and not [argv for argv in seen if any(secret in arg for arg in argv)]


def test_a_client_without_the_files_is_told_where_they_come_from(tmp_path: Path) -> None:
    settings = Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_FLINK_SSL": "true"})
    with pytest.raises(StackError, match="copy that folder"):
        rest_context(settings)


def test_without_ssl_nothing_is_generated(tmp_path: Path) -> None:
    config = FlinkCluster(Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path)})).config()
    assert not [key for key in config if key.startswith("security.ssl")]
    assert not (tmp_path / "flink" / "tls").exists()
