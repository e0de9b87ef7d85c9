"""Secrets masked out of what ``aimass`` prints from Flink (``flink run``'s output, a job's
exception).

Flink itself hides sensitive table options (``'properties.sasl.jaas.config'='******'`` in a
connector's validation error), but not everything it prints is a table option: a stack trace,
a Kafka client's message or a Python traceback may carry a value. So the settings' own secret
values are replaced wherever they appear, and anything shaped like a JAAS configuration or a
``password=`` pair is masked too.
"""

from __future__ import annotations

import re

from aimass.settings import Settings

MASK = "******"
#: Client property keys whose values are secret (Kafka's password-type ones and the JAAS text).
SECRET_KEY = re.compile(r"(?i)password|secret|jaas|token|credential|\.key$")
#: ``key=value`` (or ``key: value``, ``'key'='value'``) pairs with a secret-looking key.
_PAIR = re.compile(r"""(?i)((?:password|passwd|secret|token)["']?\s*[=:]\s*["']?)([^"'\s;,]+)""")
#: A JAAS configuration, up to its closing ``;`` (or the end of the line).
_JAAS = re.compile(r"""(?i)(sasl\.jaas\.config["']?\s*[=:]\s*["']?)[^\n;]*;?""")


def secret_values(settings: Settings) -> list[str]:
    """The secret values of ``settings``: the gateway token and the secret Kafka client properties."""
    values = [settings.gateway.token, settings.kafka.client_properties]
    values += [value for key, value in settings.kafka.client_property_pairs() if SECRET_KEY.search(key)]
    values += re.findall(r'password="([^"]+)"', settings.kafka.client_properties)
    # Longest first: a value containing another is replaced whole.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def mask(text: str, settings: Settings) -> str:
    """``text`` with every secret of ``settings`` and anything shaped like one replaced by ``******``."""
    for value in secret_values(settings):
        text = text.replace(value, MASK)
    text = _JAAS.sub(lambda m: m.group(1) + MASK, text)
    return _PAIR.sub(lambda m: m.group(1) + MASK, text)
