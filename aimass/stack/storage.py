"""Checkpoint and savepoint storage: Flink's S3 file system configuration, and the preflight
that refuses an unreachable store or wrong credentials before anything starts.

Flink reads ``s3.*`` keys from the cluster's configuration (the S3 plugin maps them to Hadoop
S3A's ``fs.s3a.*``) and the credentials from the process environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, or the other places of the AWS default chain): they never enter
these settings, the generated configuration or any printed message.
"""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import urlsplit

from aimass.settings import Settings, StorageSettings
from aimass.stack.procs import StackError

#: S3A client limits of the cluster: a store that stops answering fails a checkpoint within
#: seconds (then the next one is tried) instead of retrying for minutes inside one.
S3_CLIENT_LIMITS = {
    "s3.connection.establish.timeout": "5000",  # ms: the plugin's Hadoop takes no unit here
    "s3.connection.timeout": "30000",
    "s3.attempts.maximum": "2",
    "s3.retry.limit": "2",
}


def flink_config(storage: StorageSettings) -> dict[str, str]:
    """Cluster configuration keys of the S3 file system plugin (none for ``file://`` storage)."""
    if not storage.is_s3:
        return {}
    config = {"s3.endpoint.region": storage.s3_region, **S3_CLIENT_LIMITS}
    if storage.s3_endpoint:
        config["s3.endpoint"] = storage.s3_endpoint
        config["s3.path.style.access"] = "true"
    return config


def bucket_and_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    parts = urlsplit(uri)
    return parts.netloc, parts.path.strip("/")


def has_credentials(env: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether the usual AWS places offer credentials (variables, a profile, a shared file)."""
    env = os.environ if env is None else env
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return True
    shared = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    return bool(env.get("AWS_PROFILE")) or os.path.exists(shared) or bool(env.get("AWS_WEB_IDENTITY_TOKEN_FILE"))


def preflight(settings: Settings, timeout_s: float = 5.0) -> None:
    """Write, read back and delete a marker object under ``storage.uri``.

    Raises:
        StackError: no credentials; the endpoint does not answer (naming it); the credentials
            are refused; the bucket does not exist. The message says what to fix, never a secret.
    """
    storage = settings.storage
    if not storage.is_s3:
        return
    endpoint = storage.s3_endpoint or f"AWS S3 ({storage.s3_region})"
    if not has_credentials():
        raise StackError(
            f"AIMASS_STORAGE_URI={storage.uri} needs S3 credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment of `aimass up`"
        )
    bucket, prefix = bucket_and_prefix(storage.uri)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # no 1 s metadata probe off EC2
    marker = "/".join(filter(None, (bucket, prefix, f".aimass-preflight-{uuid.uuid4().hex}")))
    try:
        s3 = filesystem(storage, timeout_s)
        with s3.open_output_stream(marker) as out:
            out.write(b"aimass")
        with s3.open_input_stream(marker) as back:
            if back.read() != b"aimass":
                raise StackError(f"{endpoint} gave back another object than was written to {storage.uri}")
        s3.delete_file(marker)
    except OSError as exc:
        message = _explain(str(exc), storage, endpoint, bucket)
        raise (CredentialsRefused if "refused the S3 credentials" in message else StackError)(message) from None


def filesystem(storage: StorageSettings, timeout_s: float = 5.0) -> Any:
    """A pyarrow ``S3FileSystem`` for ``storage`` (credentials from the environment), one try per call."""
    from pyarrow import fs

    options: dict[str, Any] = {
        "region": storage.s3_region,
        "connect_timeout": timeout_s,
        "request_timeout": timeout_s,
        "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=1),
    }
    if storage.s3_endpoint:
        split = urlsplit(storage.s3_endpoint)
        options.update(endpoint_override=split.netloc, scheme=split.scheme, force_virtual_addressing=False)
    return fs.S3FileSystem(**options)


class CredentialsRefused(StackError):
    """The store answered, and refused the credentials: waiting will not help."""


def _explain(error: str, storage: StorageSettings, endpoint: str, bucket: str) -> str:
    """A preflight failure in words, with the fix (pyarrow's text names the AWS error code)."""
    text = error.upper()
    if any(code in text for code in ("INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "ACCESS_DENIED",
                                      "INVALIDACCESSKEYID", "SIGNATUREDOESNOTMATCH", "ACCESSDENIED", "FORBIDDEN")):
        return (f"{endpoint} refused the S3 credentials for {storage.uri}: check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and that this identity may write to the bucket)")
    if "NO_SUCH_BUCKET" in text or "NOSUCHBUCKET" in text:
        return f"bucket {bucket!r} does not exist at {endpoint}: create it, or change AIMASS_STORAGE_URI"
    return (f"cannot reach the object store at {endpoint} for {storage.uri}: is it running and is "
            f"AIMASS_STORAGE_S3_ENDPOINT right? ({error.splitlines()[0][:200]})")
