"""Kafka client properties (``AIMASS_KAFKA_CLIENT_PROPERTIES``) for the job and the Python clients.

One setting, two kinds of client:

* :func:`job_client_properties`: the Java clients of the Flink job. The job loads Kafka through
  ``flink-sql-connector-kafka``, which shades kafka-clients under :data:`SHADED_PREFIX`, so a
  class named in a property (the login module of ``sasl.jaas.config``, ``*.class`` handlers)
  must carry the shaded name. Users write the standard name; it is rewritten here.
* :func:`python_client_config`: kafka-python keyword arguments for the client library, the
  gateway, the autoscaler and the traffic helpers. kafka-python reads PEM files only and knows
  no JAAS: the security properties are translated, and what it cannot honour is refused with
  the fix, rather than silently connecting with less security than configured.

No Flink import: unit-tested in tests/unit/test_kafka_config.py.
"""

from __future__ import annotations

import re
from typing import Any

from aimass.settings import KafkaSettings, SettingsError

#: Package prefix of kafka-clients inside flink-sql-connector-kafka.
SHADED_PREFIX = "org.apache.flink.kafka.shaded."

_VAR = "AIMASS_KAFKA_CLIENT_PROPERTIES"
#: A Kafka class name not already shaded (not preceded by a dot or a name character).
_KAFKA_CLASS = re.compile(r"(?<![\w.$])org\.apache\.kafka\.")
#: ``key=value`` options of a JAAS entry; values quoted (with backslash escapes) or bare.
_JAAS_OPTION = re.compile(r'([\w.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s";]+))')
_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
_MECHANISMS = {"PLAIN": "PlainLoginModule", "SCRAM-SHA-256": "ScramLoginModule", "SCRAM-SHA-512": "ScramLoginModule"}
#: Security properties with no kafka-python counterpart that only tune the JVM's TLS or login
#: machinery; the Python clients use Python's own secure defaults instead.
_JVM_ONLY = frozenset({
    "ssl.protocol", "ssl.enabled.protocols", "ssl.cipher.suites", "ssl.provider", "ssl.secure.random.implementation",
    "ssl.keymanager.algorithm", "ssl.trustmanager.algorithm", "ssl.truststore.password",
})
_JVM_ONLY_PREFIXES = ("sasl.login.refresh.", "sasl.login.retry.", "sasl.login.connect.", "sasl.login.read.")


def _is_class_property(key: str) -> bool:
    return key == "sasl.jaas.config" or key.endswith((".class", ".classes"))


def job_client_properties(kafka: KafkaSettings) -> list[tuple[str, str]]:
    """``client_properties`` as the Flink job's Kafka connector needs them.

    Class names under ``org.apache.kafka.`` in ``sasl.jaas.config`` and ``*.class(es)``
    properties get the connector's shaded prefix (already shaded ones are left alone), and a
    JAAS configuration gets back the terminating ``;`` that the entry separator took.

    Raises:
        SettingsError: a malformed entry (see :meth:`KafkaSettings.client_property_pairs`).
    """
    out = []
    for key, value in kafka.client_property_pairs():
        if _is_class_property(key):
            # Outside double quotes only: a JAAS option value (a password) is not a class name.
            parts = value.split('"')
            parts[::2] = [_KAFKA_CLASS.sub(SHADED_PREFIX + "org.apache.kafka.", part) for part in parts[::2]]
            value = '"'.join(parts)
        if key == "sasl.jaas.config" and not value.endswith(";"):
            value += ";"
        out.append((key, value))
    return out


def python_client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python keyword arguments for ``client_properties`` (empty when there are none).

    Mapped: ``security.protocol``, ``sasl.mechanism`` (PLAIN, SCRAM-SHA-256/512) with the
    username and password of ``sasl.jaas.config``, a PEM truststore file (``ssl_cafile``), a PEM
    keystore file with key and certificate chain (``ssl_certfile``/``ssl_keyfile``, its key
    password from ``ssl.key.password``) and ``ssl.endpoint.identification.algorithm``
    (``ssl_check_hostname``). Properties outside ``security.``/``ssl.``/``sasl.`` tune the
    job's Java clients and are ignored here.

    Raises:
        SettingsError: a security property kafka-python cannot honour, with the fix.
    """
    props = dict(kafka.client_property_pairs())
    config: dict[str, Any] = {}
    protocol = props.pop("security.protocol", "PLAINTEXT").upper()
    if protocol not in _PROTOCOLS:
        raise SettingsError(f"{_VAR}: security.protocol={protocol!r}: expected one of {', '.join(sorted(_PROTOCOLS))}")
    if protocol != "PLAINTEXT":
        config["security_protocol"] = protocol
    mechanism = props.pop("sasl.mechanism", "GSSAPI").upper()
    jaas = props.pop("sasl.jaas.config", None)
    if protocol.startswith("SASL_"):
        config.update(_sasl(mechanism, jaas))
    if protocol.endswith("SSL"):
        config.update(_ssl(props))
    # Like the Java client, ignore what the protocol does not use (sasl.* without SASL, ...).
    used = ("security.", *(("sasl.",) if protocol.startswith("SASL_") else ()),
            *(("ssl.",) if protocol.endswith("SSL") else ()))
    for key in props:
        if key.startswith(used) and key not in _JVM_ONLY and not key.startswith(_JVM_ONLY_PREFIXES):
            raise SettingsError(
                f"{_VAR}: {key} has no kafka-python counterpart, so the Python clients (client library, "
                "gateway, autoscaler) cannot honour it; remove it or see docs/SECURITY.md for what they support"
            )
    return config


def _sasl(mechanism: str, jaas: str | None) -> dict[str, Any]:
    module = _MECHANISMS.get(mechanism)
    if module is None:
        raise SettingsError(
            f"{_VAR}: sasl.mechanism={mechanism} (GSSAPI when unset) is not supported by the Python clients "
            "(kafka-python reads no JAAS login modules: Kerberos and OAuth need code there): set "
            "sasl.mechanism=PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with a matching sasl.jaas.config"
        )
    if not jaas:
        raise SettingsError(
            f"{_VAR}: sasl.mechanism={mechanism} needs sasl.jaas.config=org.apache.kafka.common.security."
            f"{'plain' if module == 'PlainLoginModule' else 'scram'}.{module} required "
            'username="..." password="..."'
        )
    login_class = jaas.split(None, 1)[0]
    if login_class.rsplit(".", 1)[-1] != module:
        raise SettingsError(
            f"{_VAR}: sasl.jaas.config uses {login_class}, but sasl.mechanism={mechanism} needs the {module}"
        )
    options = {m.group(1): _unescape(m.group(2)) if m.group(2) is not None else m.group(3)
               for m in _JAAS_OPTION.finditer(jaas)}
    if not options.get("username") or "password" not in options:
        raise SettingsError(f'{_VAR}: sasl.jaas.config needs username="..." and password="..."')
    return {"sasl_mechanism": mechanism, "sasl_plain_username": options["username"],
            "sasl_plain_password": options["password"]}


def _unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted)


def _ssl(props: dict[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    algorithm = props.pop("ssl.endpoint.identification.algorithm", "https").strip().lower()
    if algorithm not in ("https", ""):
        raise SettingsError(f"{_VAR}: ssl.endpoint.identification.algorithm={algorithm!r}: expected https or empty")
    config["ssl_check_hostname"] = algorithm == "https"
    trust_type = props.pop("ssl.truststore.type", "JKS").upper()
    trust_file = props.pop("ssl.truststore.location", None)
    if props.pop("ssl.truststore.certificates", None) is not None:
        raise SettingsError(
            f"{_VAR}: ssl.truststore.certificates (inline PEM) is not supported: put the CA certificates in a "
            "file and set ssl.truststore.type=PEM;ssl.truststore.location=<file>"
        )
    if trust_file is not None:
        if trust_type != "PEM":
            raise SettingsError(
                f"{_VAR}: ssl.truststore.type={trust_type} (JKS when unset): the Python clients read PEM only. "
                "Convert the truststore: keytool -exportcert -rfc -alias <alias> -keystore <truststore> "
                "-file ca.pem (or openssl pkcs12 -in truststore.p12 -nokeys -out ca.pem), then set "
                "ssl.truststore.type=PEM;ssl.truststore.location=ca.pem"
            )
        config["ssl_cafile"] = trust_file
    key_type = props.pop("ssl.keystore.type", "JKS").upper()
    key_file = props.pop("ssl.keystore.location", None)
    key_password = props.pop("ssl.key.password", None)
    props.pop("ssl.keystore.password", None)  # not used by PEM keystores
    for inline in ("ssl.keystore.key", "ssl.keystore.certificate.chain"):
        if props.pop(inline, None) is not None:
            raise SettingsError(
                f"{_VAR}: {inline} (inline PEM) is not supported: put the private key and its certificate chain "
                "in one file and set ssl.keystore.type=PEM;ssl.keystore.location=<file>"
            )
    if key_file is not None:
        if key_type != "PEM":
            raise SettingsError(
                f"{_VAR}: ssl.keystore.type={key_type} (JKS when unset): the Python clients read PEM only. "
                "Convert the keystore: keytool -importkeystore -srckeystore <keystore> -destkeystore ks.p12 "
                "-deststoretype PKCS12, then openssl pkcs12 -in ks.p12 -out client.pem (key and "
                "certificates in one file), and set ssl.keystore.type=PEM;ssl.keystore.location=client.pem"
            )
        config["ssl_certfile"] = config["ssl_keyfile"] = key_file
        if key_password is not None:
            config["ssl_password"] = key_password
    return config
