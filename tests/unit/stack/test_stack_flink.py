"""The local Flink cluster's generated files: log4j configuration and capped ``.out`` files.

The last test runs the generated log4j configuration in a JVM (log4j from the PyFlink wheel,
no Flink cluster): log4j ignores what it cannot parse, so a test of the text alone would pass
on a filter log4j never applies.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from aimass.settings import FlinkSettings, Settings, SettingsError
from aimass.stack.flink import FlinkCluster, log4j_console_properties, pyflink_home

#: The warning Flink 2.2 logs at every checkpoint, once per transactional sink, as it was read
#: in a TaskManager's log (the part the layout adds before the message left out).
PENDING_COMMITTABLES = (
    "Name collision: Group already contains a Metric with the name 'pendingCommittables'. Metric will not be "
    "reported.[127.0.0.1, taskmanager, 127.0.0.1:36200-932e82, aimass-inference-b, results[5]: Committer, 0]"
)
#: A collision logged once per start (not per checkpoint): it must stay visible.
OTHER_COLLISION = (
    "Name collision: Group already contains a Metric with the name 'currentSendTime'. Metric will not be "
    "reported.[127.0.0.1, taskmanager, 127.0.0.1:36200-932e82, aimass-inference-b, results[5]: Writer, 0]"
)


def properties(text: str) -> dict[str, str]:
    """``key = value`` lines of a properties file (no continuation lines in ours)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def flink_settings(**overrides: int) -> FlinkSettings:
    return Settings.load(env={f"AIMASS_FLINK_{k.upper()}": str(v) for k, v in overrides.items()}).flink


def test_log_file_rolls_over_by_size_and_keeps_a_bounded_number_of_files() -> None:
    props = properties(log4j_console_properties(flink_settings(log_file_bytes=5 * 2**20, log_backups=3)))
    assert props["rootLogger.appenderRef.rolling.ref"] == props["appender.rolling.name"]
    assert props["appender.rolling.type"] == "RollingFile"
    assert props["appender.rolling.filePattern"] == "${sys:log.file}.%i"
    assert props["appender.rolling.policies.size.type"] == "SizeBasedTriggeringPolicy"
    assert props["appender.rolling.policies.size.size"] == str(5 * 2**20)
    assert props["appender.rolling.strategy.type"] == "DefaultRolloverStrategy"
    assert props["appender.rolling.strategy.max"] == "3"


def test_stdout_takes_warnings_and_errors_only() -> None:
    props = properties(log4j_console_properties(FlinkSettings()))
    assert props["rootLogger.appenderRef.console.ref"] == props["appender.console.name"]
    assert props["appender.console.filter.threshold.type"] == "ThresholdFilter"
    # flink-console.sh sets console.log.level=OFF when it redirects stdout itself.
    assert props["appender.console.filter.threshold.level"] == "${sys:console.log.level:-WARN}"


def test_only_the_per_checkpoint_collision_warning_is_filtered_not_its_logger() -> None:
    props = properties(log4j_console_properties(FlinkSettings()))
    prefix = "logger.pending_committables."
    assert props[prefix + "name"] == "org.apache.flink.metrics.MetricGroup"
    assert props[prefix + "level"] == props["rootLogger.level"]  # the logger is not turned down
    assert props[prefix + "filter.collision.type"] == "RegexFilter"
    assert props[prefix + "filter.collision.onMatch"] == "DENY"
    assert props[prefix + "filter.collision.onMismatch"] == "NEUTRAL"
    # RegexFilter matches the whole formatted message (Matcher.matches); same syntax in Python here.
    regex = re.compile(props[prefix + "filter.collision.regex"])
    assert regex.fullmatch(PENDING_COMMITTABLES)
    assert not regex.fullmatch(OTHER_COLLISION)


def test_log_sizes_below_a_sane_minimum_are_refused() -> None:
    with pytest.raises(SettingsError, match="AIMASS_FLINK_LOG_FILE_BYTES"):
        flink_settings(log_file_bytes=1000)
    with pytest.raises(SettingsError, match="AIMASS_FLINK_LOG_BACKUPS"):
        flink_settings(log_backups=0)


def test_conf_dir_gets_the_generated_log4j_file_and_processes_cap_their_out_file(tmp_path: Path) -> None:
    jars = tmp_path / "jars"
    (jars / "flink").mkdir(parents=True)
    (jars / "flink" / "flink-sql-connector-kafka-0.0.0.jar").write_bytes(b"")
    env = {"AIMASS_PATHS_STATE_DIR": str(tmp_path / "state"), "AIMASS_PATHS_JARS_DIR": str(jars),
           "AIMASS_FLINK_LOG_FILE_BYTES": str(2**21), "AIMASS_FLINK_LOG_BACKUPS": "2"}
    cluster = FlinkCluster(Settings.load(env=env))
    cluster.write_files()
    written = (cluster.conf_dir / "log4j-console.properties").read_text()
    assert written == log4j_console_properties(cluster.settings.flink)
    for name in ("log4j-cli.properties", "log4j.properties", "config.yaml"):
        assert (cluster.conf_dir / name).exists()
    for proc in (cluster.jobmanager, cluster.taskmanager(0), cluster.taskmanager(3)):
        assert (proc.out_max_bytes, proc.out_backups) == (2**21, 2)


LOG4J_PROBE = """
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

public class Probe {
    public static void main(String[] args) {
        Logger metrics = LogManager.getLogger("org.apache.flink.metrics.MetricGroup");
        metrics.warn(args[0]);
        metrics.warn(args[1]);
        Logger other = LogManager.getLogger("org.apache.flink.runtime.Probe");
        String line = "x".repeat(1000);
        for (int i = 0; i < Integer.parseInt(args[2]); i++) {
            other.info(line);
        }
        other.warn("the last warning");
        LogManager.shutdown();
    }
}
"""


def test_log4j_applies_the_filter_the_threshold_and_the_rolling_policy(tmp_path: Path) -> None:
    jars = [*(pyflink_home() / "lib").glob("log4j-api-*.jar"), *(pyflink_home() / "lib").glob("log4j-core-*.jar")]
    assert len(jars) == 2, jars
    cap = 2**20
    config = tmp_path / "log4j-console.properties"
    config.write_text(log4j_console_properties(flink_settings(log_file_bytes=cap, log_backups=2)))
    (tmp_path / "Probe.java").write_text(LOG4J_PROBE)
    log = tmp_path / "probe.log"
    lines = 4 * cap // 1000  # four files' worth: two must be deleted
    done = subprocess.run(
        ["java", "-cp", ":".join(map(str, jars)), f"-Dlog.file={log}", f"-Dlog4j.configurationFile={config}",
         str(tmp_path / "Probe.java"), PENDING_COMMITTABLES, OTHER_COLLISION, str(lines)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(p.name for p in tmp_path.glob("probe.log*"))
    assert files == ["probe.log", "probe.log.1", "probe.log.2"]
    for path in tmp_path.glob("probe.log*"):
        assert path.stat().st_size <= cap + 2000  # rolls over after the event that crosses the size
        assert "'pendingCommittables'" not in path.read_text()
    assert "the last warning" in log.read_text()
    # stdout (the .out file): warnings only, without the filtered one; the other collision is kept.
    assert "'currentSendTime'" in done.stdout and "the last warning" in done.stdout
    assert "'pendingCommittables'" not in done.stdout
    assert " INFO " not in done.stdout
    assert "ERROR StatusLogger" not in done.stderr  # log4j's own complaints about the configuration


def test_rocksdb_works_under_the_state_folder(tmp_path: Path) -> None:
    settings = Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path / "state")})
    config = FlinkCluster(settings).config()
    assert config["state.backend.rocksdb.localdir"] == str(tmp_path / "state" / "rocksdb")
