"""Checkpoint storage without a store: the S3 plugin's cluster keys, the plugins folder the
cluster gets, what ``aimass status`` says about failing checkpoints, the preflight's words."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aimass.settings import Settings
from aimass.stack import storage
from aimass.stack.cli import checkpoint_line
from aimass.stack.flink import FlinkCluster
from aimass.stack.procs import StackError

S3_ENV = {"AIMASS_STORAGE_URI": "s3://ckpt/job", "AIMASS_STORAGE_S3_ENDPOINT": "http://10.0.0.5:8333"}


def _cluster(tmp_path: Path, env: dict[str, str], s3_jar: bool = True) -> FlinkCluster:
    jars = tmp_path / "jars"
    (jars / "flink").mkdir(parents=True)
    (jars / "flink" / "flink-sql-connector-kafka-0.0.0.jar").write_bytes(b"")
    if s3_jar:
        (jars / "flink-plugins" / "s3-fs-hadoop").mkdir(parents=True)
        (jars / "flink-plugins" / "s3-fs-hadoop" / "flink-s3-fs-hadoop-0.0.0.jar").write_bytes(b"")
    return FlinkCluster(Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path / "state"),
                                           "AIMASS_PATHS_JARS_DIR": str(jars), **env}))


def test_file_storage_needs_no_plugin_and_no_s3_keys(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, {}, s3_jar=False)
    cluster.write_files()
    config = yaml.safe_load((cluster.conf_dir / "config.yaml").read_text())
    assert not [key for key in config if key.startswith("s3.")]
    assert config["execution.checkpointing.dir"] == (tmp_path / "state" / "checkpoints").as_uri()
    assert not (cluster.plugins_dir / "s3-fs-hadoop").exists()
    assert (cluster.plugins_dir / "metrics-prometheus").is_dir()  # the wheel's plugins stay


def test_s3_storage_gets_the_plugin_as_a_real_folder_and_path_style_keys(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, S3_ENV)
    cluster.write_files()
    config = yaml.safe_load((cluster.conf_dir / "config.yaml").read_text())
    assert config["s3.endpoint"] == "http://10.0.0.5:8333"
    assert config["s3.path.style.access"] == "true"
    assert config["execution.checkpointing.dir"] == "s3://ckpt/job/checkpoints"
    assert config["execution.checkpointing.savepoint-dir"] == "s3://ckpt/job/savepoints"
    plugin = cluster.plugins_dir / "s3-fs-hadoop"
    assert plugin.is_dir() and not plugin.is_symlink()  # Flink's plugin finder skips a linked folder
    assert [p.name for p in plugin.iterdir()] == ["flink-s3-fs-hadoop-0.0.0.jar"]
    assert cluster.env()["FLINK_PLUGINS_DIR"] == str(cluster.plugins_dir)
    assert "AWS_SECRET_ACCESS_KEY" not in (cluster.conf_dir / "config.yaml").read_text()


def test_aws_s3_gets_virtual_host_addressing(tmp_path: Path) -> None:
    config = storage.flink_config(Settings.load(env={"AIMASS_STORAGE_URI": "s3://ckpt"}).storage)
    assert "s3.endpoint" not in config and "s3.path.style.access" not in config
    assert config["s3.endpoint.region"] == "us-east-1"


def test_a_missing_s3_plugin_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="S3 file system plugin is missing .*make jars"):
        _cluster(tmp_path, S3_ENV, s3_jar=False).write_files()


def test_preflight_without_credentials_names_the_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(StackError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        storage.preflight(Settings.load(env=S3_ENV))


def test_status_says_when_checkpoints_are_failing() -> None:
    healthy = {"counts": {"completed": 40, "failed": 2, "in_progress": 0},
               "latest": {"completed": {"latest_ack_timestamp": 2000}, "failed": {"failure_timestamp": 1000}}}
    assert checkpoint_line(healthy) == "checkpoints: 40 completed, 2 failed, 0 in progress"
    failing = {"counts": {"completed": 40, "failed": 5, "in_progress": 1},
               "latest": {"completed": {"latest_ack_timestamp": 2000},
                          "failed": {"failure_timestamp": 3000, "failure_message": "Connection refused\nat ..."}}}
    line = checkpoint_line(failing)
    assert line.startswith("checkpoints: 40 completed, 5 failed, 1 in progress; FAILING")
    assert "Connection refused" in line and "at ..." not in line


def test_the_local_store_listens_on_its_ten_ports_only_and_keeps_the_secret_in_a_0600_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimass.stack.objectstore import ObjectStore

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-1")
    settings = Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_STORAGE_LOCAL_PORT": "27300",
                                  "AIMASS_STORAGE_URI": "s3://aimass-x/state",
                                  "AIMASS_STORAGE_S3_ENDPOINT": "http://127.0.0.1:27300"})
    store = ObjectStore(settings)
    assert sorted(store.ports().values()) == list(range(27300, 27310))
    identity = store._write_identity()
    assert identity.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr("aimass.stack.objectstore.WEED_BIN", tmp_path / "weed")
    (tmp_path / "weed").write_bytes(b"")
    argv = store.argv(identity)
    assert "-ip.bind=127.0.0.1" in argv and "-bucket=aimass-x" in argv and "-s3.port=27300" in argv
    assert not [a for a in argv if "secret-1" in a]  # the secret stays in the file
    assert store.endpoint == settings.storage.s3_endpoint


def test_the_local_store_needs_credentials_to_give_its_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimass.stack.objectstore import ObjectStore

    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    settings = Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_STORAGE_LOCAL_PORT": "27300",
                                  "AIMASS_STORAGE_URI": "s3://b", "AIMASS_STORAGE_S3_ENDPOINT": "http://127.0.0.1:27300"})
    with pytest.raises(StackError, match="set both"):
        ObjectStore(settings).start()
