"""AIMASS_KAFKA_CLIENT_PROPERTIES for the job (shaded class names) and kafka-python (mapped or refused)."""

from __future__ import annotations

import pytest

from aimass.kafka_config import SHADED_PREFIX, job_client_properties, python_client_config
from aimass.settings import KafkaSettings, SettingsError

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
SECURE = (
    f'security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config={PLAIN} required username="app" '
    'password="s3cret=x";ssl.truststore.type=PEM;ssl.truststore.location=/etc/kafka/ca.pem'
)


def kafka(properties: str) -> KafkaSettings:
    return KafkaSettings(client_properties=properties)


# -- the job -----------------------------------------------------------------------------------


def test_job_properties_shade_the_login_module_and_end_the_jaas_config() -> None:
    props = dict(job_client_properties(kafka(SECURE)))
    assert props["sasl.jaas.config"] == (
        f'{SHADED_PREFIX}{PLAIN} required username="app" password="s3cret=x";'
    )
    assert props["security.protocol"] == "SASL_SSL"
    assert props["ssl.truststore.location"] == "/etc/kafka/ca.pem"


def test_job_properties_leave_an_already_shaded_class_alone() -> None:
    shaded = f"{SHADED_PREFIX}{PLAIN} required username=\"a\" password=\"b\""
    props = dict(job_client_properties(kafka(f"sasl.jaas.config={shaded}")))
    assert props["sasl.jaas.config"] == shaded + ";"


def test_job_properties_shade_kafka_class_properties_only() -> None:
    handler = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
    props = dict(job_client_properties(kafka(
        f"sasl.login.callback.handler.class={handler};sasl.client.callback.handler.class=com.example.Handler;"
        "interceptor.classes=org.apache.kafka.clients.A,com.example.B;client.id=org.apache.kafka.not-a-class"
    )))
    assert props["sasl.login.callback.handler.class"] == SHADED_PREFIX + handler
    assert props["sasl.client.callback.handler.class"] == "com.example.Handler"
    assert props["interceptor.classes"] == f"{SHADED_PREFIX}org.apache.kafka.clients.A,com.example.B"
    assert props["client.id"] == "org.apache.kafka.not-a-class"


def test_job_properties_keep_order_and_plain_values() -> None:
    assert job_client_properties(kafka("security.protocol=SSL;ssl.truststore.location=/t.pem")) == [
        ("security.protocol", "SSL"), ("ssl.truststore.location", "/t.pem"),
    ]
    assert job_client_properties(kafka("")) == []


def test_quotes_stay_refused_since_values_go_into_sql_strings() -> None:
    with pytest.raises(SettingsError, match="no quotes"):
        job_client_properties(kafka(f"sasl.jaas.config={PLAIN} required username='a' password='b'"))


# -- kafka-python ------------------------------------------------------------------------------


def test_no_properties_map_to_no_arguments() -> None:
    assert python_client_config(kafka("")) == {}
    assert python_client_config(kafka("security.protocol=PLAINTEXT;linger.ms=10")) == {}


def test_sasl_ssl_plain_maps_to_kafka_python_arguments() -> None:
    assert python_client_config(kafka(SECURE)) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "app",
        "sasl_plain_password": "s3cret=x",
        "ssl_check_hostname": True,
        "ssl_cafile": "/etc/kafka/ca.pem",
    }


def test_shaded_scram_with_escapes_and_no_hostname_check() -> None:
    raw = (
        f"security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512;sasl.jaas.config={SHADED_PREFIX}{SCRAM} "
        r'required username=svc password="a\"b c";ssl.endpoint.identification.algorithm='
    )
    config = python_client_config(kafka(raw))
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("svc", 'a"b c')
    assert config["ssl_check_hostname"] is False
    assert "ssl_cafile" not in config  # the system's CAs, as the JVM would use its own


def test_ssl_with_a_pem_client_keystore_for_mutual_tls() -> None:
    raw = ("security.protocol=SSL;ssl.truststore.type=PEM;ssl.truststore.location=/ca.pem;"
           "ssl.keystore.type=PEM;ssl.keystore.location=/client.pem;ssl.key.password=pw;ssl.protocol=TLSv1.3")
    assert python_client_config(kafka(raw)) == {
        "security_protocol": "SSL", "ssl_check_hostname": True, "ssl_cafile": "/ca.pem",
        "ssl_certfile": "/client.pem", "ssl_keyfile": "/client.pem", "ssl_password": "pw",
    }


def test_sasl_plaintext_ignores_ssl_properties_like_the_java_client() -> None:
    raw = f'security.protocol=SASL_PLAINTEXT;sasl.mechanism=PLAIN;sasl.jaas.config={PLAIN} required ' \
          'username="u" password="p";ssl.truststore.location=/t.jks'
    config = python_client_config(kafka(raw))
    assert config["security_protocol"] == "SASL_PLAINTEXT" and "ssl_cafile" not in config


@pytest.mark.parametrize(
    ("properties", "fix"),
    [
        ("security.protocol=SSL;ssl.truststore.location=/t.jks", "keytool -exportcert -rfc"),
        ("security.protocol=SSL;ssl.truststore.type=PKCS12;ssl.truststore.location=/t.p12", "openssl pkcs12"),
        ("security.protocol=SSL;ssl.keystore.location=/k.jks", "keytool -importkeystore"),
        ("security.protocol=SSL;ssl.truststore.type=PEM;ssl.truststore.certificates=-----BEGIN", "in a file"),
        ("security.protocol=SSL;ssl.keystore.type=PEM;ssl.keystore.key=-----BEGIN", "in one file"),
        ("security.protocol=SASL_SSL;sasl.jaas.config=x required", "GSSAPI"),
        ("security.protocol=SASL_SSL;sasl.mechanism=OAUTHBEARER;sasl.jaas.config=x required", "SCRAM-SHA-256"),
        ("security.protocol=SASL_SSL;sasl.mechanism=PLAIN", r"needs sasl\.jaas\.config"),
        (f"security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config={PLAIN} required username=\"u\"",
         'password="..."'),
        (f"security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-256;sasl.jaas.config={PLAIN} required "
         'username="u" password="p"', "needs the ScramLoginModule"),
        ("security.protocol=TLS", "expected one of"),
        ("security.protocol=SSL;ssl.endpoint.identification.algorithm=ldap", "https or empty"),
        (f"security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config={PLAIN} required username=\"u\" "
         'password="p";sasl.client.callback.handler.class=com.example.H', "no kafka-python counterpart"),
    ],
)
def test_what_kafka_python_cannot_honour_is_refused_with_the_fix(properties: str, fix: str) -> None:
    with pytest.raises(SettingsError, match=fix) as caught:
        python_client_config(kafka(properties))
    assert "AIMASS_KAFKA_CLIENT_PROPERTIES" in str(caught.value)


def test_secrets_do_not_show_in_refusals() -> None:
    raw = SECURE.replace("ssl.truststore.type=PEM;", "")  # a JKS truststore: refused
    with pytest.raises(SettingsError) as caught:
        python_client_config(kafka(raw))
    assert "s3cret" not in str(caught.value)


def test_quoted_jaas_option_values_are_not_rewritten() -> None:
    from aimass.kafka_config import SHADED_PREFIX, job_client_properties
    from aimass.settings import KafkaSettings

    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="u" '
            'password="org.apache.kafka.secret";')
    kafka = KafkaSettings(client_properties=f"sasl.jaas.config={jaas}")
    [(key, value)] = job_client_properties(kafka)
    assert value.startswith(SHADED_PREFIX + "org.apache.kafka.common.security.plain.PlainLoginModule")
    assert 'password="org.apache.kafka.secret";' in value


def test_properties_from_a_file_come_first_one_a_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "kafka.properties"
    path.write_text(f"# the SASL login\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
                    f'sasl.jaas.config={PLAIN} required username="app" password="p;w=d";\n')
    path.chmod(0o600)
    settings = KafkaSettings(client_properties_file=path, client_properties="client.id=mine")
    pairs = settings.client_property_pairs()
    assert [k for k, _ in pairs] == ["security.protocol", "sasl.mechanism", "sasl.jaas.config", "client.id"]
    config = python_client_config(settings)
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("app", "p;w=d")
    assert dict(job_client_properties(settings))["sasl.jaas.config"].endswith('password="p;w=d";')
    path.chmod(0o644)
    with pytest.raises(SettingsError, match="readable by others: chmod 600"):
        settings.client_property_pairs()
    with pytest.raises(SettingsError, match="cannot read it"):
        KafkaSettings(client_properties_file=tmp_path / "missing").client_property_pairs()
