"""The environment of each process the stack starts: an allow-list per kind of process, never
the caller's whole environment.

A child's environment is readable by the user's other processes (``/proc/<pid>/environ``) and is
inherited by everything it starts in turn, so each gets what it needs and no more: the
``AIMASS_*`` settings (the SASL password in ``AIMASS_KAFKA_CLIENT_PROPERTIES``, the gateway
token) only the ``flink run`` client, which builds the job from them; the AWS credentials only
the Flink processes, and only when checkpoints go to object storage. docs/SECURITY.md lists them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal

#: Every child: where programs, the home folder and temporary files are, the user, the locale, Java.
BASE = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "JAVA_HOME")
#: Locale variables (``LC_ALL``, ``LC_CTYPE``, ...).
BASE_PREFIXES = ("LC_",)
#: What the ONNX runtime of a TaskManager loads: GPUs, native libraries, thread counts.
NATIVE = ("LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
          "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "OMP_NUM_THREADS")
#: The log level the Flink processes' log4j configuration reads (``${env:ROOT_LOG_LEVEL}``).
FLINK_LOGGING = ("ROOT_LOG_LEVEL",)
#: Credentials and settings of the AWS SDK (the S3 file system plugin), and the proxies it may need.
OBJECT_STORAGE_PREFIXES = ("AWS_",)
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")

Kind = Literal["kafka", "objectstore", "tool", "flink", "flink-client"]

#: Variables (and name prefixes) each kind of process gets from the caller's environment.
ALLOWED: dict[Kind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kafka": (BASE, BASE_PREFIXES),
    "objectstore": (BASE, BASE_PREFIXES),  # its one identity comes from a 0600 file, not AWS_*
    "tool": (BASE, BASE_PREFIXES),  # openssl, keytool, Kafka's StorageTool
    "flink": ((*BASE, *NATIVE, *FLINK_LOGGING), BASE_PREFIXES),
    "flink-client": ((*BASE, *FLINK_LOGGING), BASE_PREFIXES),
}


def child_env(kind: Kind, set_: Mapping[str, str] | None = None, object_storage: bool = False,
              source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child of ``kind``: its allowed variables of ``source`` (the caller's
    environment), plus the AWS and proxy ones with ``object_storage``, then ``set_``.

    Args:
        kind: what the child is (a key of :data:`ALLOWED`).
        set_: variables the caller sets itself (they win over inherited ones).
        object_storage: the child reads or writes object storage (Flink with checkpoints on S3).
        source: the environment to pick from; ``os.environ`` when None.
    """
    source = os.environ if source is None else source
    names, prefixes = ALLOWED[kind]
    if object_storage:
        names, prefixes = (*names, *PROXIES), (*prefixes, *OBJECT_STORAGE_PREFIXES)
    env = {key: value for key, value in source.items() if _allowed(key, names, prefixes)}
    env.update(set_ or {})
    return env


def _allowed(key: str, names: Iterable[str], prefixes: tuple[str, ...]) -> bool:
    return key in names or key.startswith(prefixes)
