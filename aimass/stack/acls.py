"""Kafka ACLs of the local stack (``kafka.acls``): who may read and write which topic.

With the ``SASL_SSL`` listener on, the broker runs ``StandardAuthorizer`` with nothing allowed
unless an ACL says so, and two SASL users get their least rights:

* ``job``: reads requests, control commands and model blobs; writes results, dead letters,
  shadow results and control dead letters, and (its submitter: the start marker, the model
  folder's sync) control commands and blobs; its consumer groups and transactional ids (by
  prefix) are its own.
* ``client``: writes requests; reads results and dead letters. It cannot write a result, so a
  client cannot forge another's answer, nor put floods on the compacted results topic.

``aimass`` (the secure listener's first user) and ``User:ANONYMOUS`` stay super users: the latter
is the loopback PLAINTEXT listener and the controller, through which the local stack administers
itself (topics, these ACLs) and which, with the secure listener on off loopback, only this
machine reaches. The rule of who gets what is :func:`bindings`, in one place.
"""

from __future__ import annotations

from typing import Any

from aimass.settings import Settings

#: The SASL users ACLs are granted to (beside ``aimass``, a super user).
JOB_USER, CLIENT_USER = "job", "client"
ACL_USERS = (JOB_USER, CLIENT_USER)

# (operation, resource type, name, pattern) per user; names filled from the settings.
Grant = tuple[str, str, str, str]


def broker_properties(super_user: str) -> dict[str, str]:
    """``server.properties`` entries that turn authorization on."""
    return {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:ANONYMOUS;User:{super_user}",
    }


def bindings(settings: Settings) -> dict[str, list[Grant]]:
    """What each user may do, as ``(operation, resource type, name, pattern type)``."""
    k, job = settings.kafka, settings.job

    def topics(operation: str, *names: str) -> list[Grant]:
        return [(op, "TOPIC", name, "LITERAL") for name in names for op in (operation, "DESCRIBE")]

    return {
        JOB_USER: [
            *topics("READ", k.requests_topic, k.control_topic, k.blob_topic),
            *topics("WRITE", k.results_topic, k.dead_letter_topic, k.shadow_topic, k.control_dead_letter_topic,
                    k.control_topic, k.blob_topic),  # the submitter's start marker and model sync
            ("READ", "GROUP", job.consumer_group, "PREFIXED"),
            ("WRITE", "TRANSACTIONAL_ID", job.transactional_id_prefix, "PREFIXED"),
            ("DESCRIBE", "TRANSACTIONAL_ID", job.transactional_id_prefix, "PREFIXED"),
            ("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster", "LITERAL"),
        ],
        CLIENT_USER: [
            *topics("WRITE", k.requests_topic),
            *topics("READ", k.results_topic, k.dead_letter_topic),
            ("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster", "LITERAL"),
        ],
    }


def apply(settings: Settings, admin: Any) -> int:
    """Create the ACLs of :func:`bindings` with the kafka-python ``admin`` client (idempotent:
    the broker keeps one copy of each); returns how many there are.

    Raises:
        RuntimeError: The broker refused one (its error named).
    """
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

    acls = [
        ACL(principal=f"User:{user}", host="*", operation=ACLOperation[op], permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(ResourceType[kind], name, ACLResourcePatternType[pattern]))
        for user, grants in bindings(settings).items() for op, kind, name, pattern in grants
    ]
    answer = admin.create_acls(acls)
    failed = answer.get("failed") or []
    if failed:
        acl, error = failed[0]
        raise RuntimeError(f"the broker refused ACL {acl}: {error}")
    return len(acls)
