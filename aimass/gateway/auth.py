"""Who is calling: bearer tokens (``authorization: Bearer <token>``) mapped to identities.

An identity is a tenant (its request ids are ``<tenant>/<id>``, and it reads only those) or an
admin (any id, every result, the Control service). Tokens come from ``gateway.token`` /
``gateway.token_file`` (one admin, ``default``) and ``gateway.tokens_file`` (one identity a
line). No token configured: every caller is the anonymous admin (a gateway on localhost).

The health service stays open, so that load balancers and orchestrators can probe it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from aimass.contract.limits import NAME_PATTERN
from aimass.settings import GatewaySettings, SettingsError, read_secret_file

HEALTH_PREFIX = "/grpc.health.v1.Health/"
#: Shortest token accepted from ``tokens_file`` (guessable ones are refused).
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Identity:
    """One caller: its tenant name, and whether it is an admin."""

    name: str
    admin: bool

    def own(self, request_id: str) -> str:
        """``request_id`` in this identity's namespace: ``<tenant>/<id>`` for a tenant (an id
        already there is kept; any other gets the prefix, so a tenant can never name another's),
        unchanged for an admin."""
        if self.admin:
            return request_id
        prefix = f"{self.name}/"
        return request_id if request_id.startswith(prefix) else prefix + request_id


ANONYMOUS = Identity("anonymous", admin=True)
"""The caller when the gateway has no token at all."""


class TokenTable:
    """Tokens to identities; :meth:`identify` compares in constant time against each."""

    def __init__(self, entries: list[tuple[str, Identity]]) -> None:
        tokens = [t for t, _ in entries]
        if any(not t for t in tokens):
            raise SettingsError("an empty gateway token would accept every caller")
        if len(set(tokens)) != len(tokens):
            raise SettingsError("two gateway identities share a token: give each its own")
        self._entries = [(f"Bearer {t}".encode(), who) for t, who in entries]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, authorization: str) -> Identity | None:
        """The identity whose token ``authorization`` carries; None: no such token. Without any
        token configured, :data:`ANONYMOUS`."""
        if not self._entries:
            return ANONYMOUS
        given = authorization.encode()
        found = None
        for expected, who in self._entries:  # no early exit: the time does not tell which matched
            if hmac.compare_digest(given, expected):
                found = who
        return found

    @classmethod
    def from_settings(cls, gw: GatewaySettings) -> TokenTable:
        """The identities ``gw`` configures.

        Raises:
            SettingsError: A token file that is missing, readable by others or malformed.
        """
        entries: list[tuple[str, Identity]] = []
        if gw.token:
            entries.append((gw.token, Identity("default", admin=True)))
        if gw.token_file is not None:
            lines = _secret_lines(gw.token_file, "AIMASS_GATEWAY_TOKEN_FILE")
            if not lines:
                raise SettingsError(f"AIMASS_GATEWAY_TOKEN_FILE={gw.token_file} holds no token")
            entries.append((lines[0], Identity("default", admin=True)))
        if gw.tokens_file is not None:
            entries.extend(_parse_tokens(gw.tokens_file))
        names = [who.name for _, who in entries]
        if len(set(names)) != len(names):
            raise SettingsError(f"gateway identities must have distinct names, got {sorted(names)}")
        return cls(entries)


def _secret_lines(path: Path, var: str) -> list[str]:
    return [line.strip() for line in read_secret_file(path, var) if line.strip() and not line.lstrip().startswith("#")]


def _parse_tokens(path: Path) -> list[tuple[str, Identity]]:
    out = []
    for number, line in enumerate(_secret_lines(path, "AIMASS_GATEWAY_TOKENS_FILE"), 1):
        fields = line.split()
        where = f"AIMASS_GATEWAY_TOKENS_FILE={path}, entry {number}"
        if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] != "admin"):
            raise SettingsError(f"{where}: expected '<tenant> <token>' or '<tenant> <token> admin'")
        name, token = fields[0], fields[1]
        if not NAME_PATTERN.fullmatch(name):
            raise SettingsError(f"{where}: tenant {name!r} must match {NAME_PATTERN.pattern} (no '/')")
        if len(token) < MIN_TOKEN_CHARS:
            raise SettingsError(f"{where}: a token needs at least {MIN_TOKEN_CHARS} characters "
                                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        out.append((token, Identity(name, admin=len(fields) == 3)))
    return out
