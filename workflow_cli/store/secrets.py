"""Secrets: values a workflow uses that are never written anywhere, nor shown.

Two ways to give one:

- **Declared secrets**: ``secrets: {NAME: {env: VAR} | {file: PATH}}`` in a definition or
  in the workspace's ``workflow_cli.yaml``; expressions read them as ``secrets.NAME``.
  They are resolved when a run starts (from the environment, or a file in the workspace),
  and kept in memory only.
- **Secret parameters**: a template parameter with ``secret: true`` — and any parameter
  whose name looks like a credential (``token``, ``password``, ``api_key``, …) — is
  stored encrypted (Fernet, from the ``cryptography`` package) as ``{"$secret": TOKEN}``
  in the instance's definition and journal, and decrypted when a run starts. The key is
  ``WORKFLOW_CLI_KEY``, else ``.workflow_cli/secret.key`` in the workspace (made on first
  use, readable by its owner only).

`Masker` knows a run's secret values; everything the run writes (journal, state,
checkpoints, logs) and every command shows passes through it, so a value is replaced by
``***`` wherever it turns up — an agent's stderr, an error message, a server that echoes
it back. Besides known values, credentials are recognised by name: values under
secret-looking keys, secret query parameters of URLs, ``Bearer …`` and
``password=…``-like text.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import field
from functools import cache
from pathlib import Path
from typing import Any

from workflow_cli.errors import UsageError, WorkspaceError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.config import config_block
from workflow_cli.store.files import read_bytes
from workflow_cli.store.workspace import Workspace

MASK = "***"
KEY_ENV = "WORKFLOW_CLI_KEY"
KEY_FILE = Path(".workflow_cli") / "secret.key"
ENCRYPTED = "$secret"  # {"$secret": fernet token}: a parameter stored encrypted

# Key parts that mark a value as a credential.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "private_key",
    "authorization",
    "credential",
    "cookie",
)
SECRET_HEADER_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
SHORTEST_KNOWN_SECRET = 4  # shorter values would mask ordinary words and numbers
# Patterns compiled on first use (re keeps them): a run whose texts hold nothing to mask
# may never need them.
_URL = r"https?://[^\s\"'<>]+"
_AUTH_SCHEME = r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=:-]+"
_SECRET_ASSIGNMENT = (
    r"(?i)([\w-]*(?:" + "|".join(re.escape(p) for p in SECRET_KEY_PARTS) + r")[\w-]*)"
    r"([\"']?\s*[:=]\s*[\"']?)"
    r"(?!\*\*\*)([^\s\"',;&}]+)"
)


# -- recognising credentials ------------------------------------------------------------


@cache
def is_secret_key(name: str) -> bool:
    """Whether a parameter, header, field or query parameter called `name` probably
    holds a credential."""
    lowered = name.lower()
    return lowered in SECRET_HEADER_NAMES or any(part in lowered for part in SECRET_KEY_PARTS)


def mask_url(url: str) -> str:
    """`url` with the values of secret-looking query parameters replaced by ``***``."""
    head, mark, query = url.partition("?")
    if not mark:
        return url
    query, hash_mark, fragment = query.partition("#")
    pieces = []
    for piece in query.split("&"):
        name, equals, _ = piece.partition("=")
        pieces.append(f"{name}={MASK}" if equals and is_secret_key(name) else piece)
    return f"{head}?{'&'.join(pieces)}{hash_mark}{fragment}"


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: MASK if is_secret_key(name) else value for name, value in headers.items()}


def mask_text(text: str, known: Iterable[str] = ()) -> str:
    """`text` with credentials in it replaced by ``***``: the `known` secret values,
    secret query parameters of URLs, ``Bearer …`` and ``password=…``-like assignments."""
    for secret in sorted(known, key=len, reverse=True):
        if len(secret) >= SHORTEST_KNOWN_SECRET:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = re.sub(_URL, lambda m: mask_url(m.group(0)), text)
    text = re.sub(_AUTH_SCHEME, lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return re.sub(_SECRET_ASSIGNMENT, lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def mask_secrets(value: Any, known: Iterable[str] = ()) -> Any:
    """`value` (any JSON data) with credentials replaced by ``***``: whatever sits under a
    secret-looking key, an encrypted parameter, and in every text what `mask_text` masks."""
    known = tuple(known)
    if isinstance(value, Mapping):
        if is_encrypted(value):
            return MASK
        return {
            key: (
                MASK
                if is_secret_key(str(key)) and value[key] not in (None, "")
                else mask_secrets(value[key], known)
            )
            for key in value
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(item, known) for item in value]
    if isinstance(value, str):
        return mask_text(value, known)
    return value


def mask_event(event: Mapping[str, Any], known: Iterable[str] = ()) -> dict[str, Any]:
    """A journal event as shown to a person or a program: without its checksum, with
    credentials masked (an instance_created event carries the instance's parameters)."""
    shown: dict[str, Any] = mask_secrets({k: v for k, v in event.items() if k != "crc"}, known)
    return shown


def secret_values(value: Any) -> set[str]:
    """The texts found under secret-looking keys anywhere in `value` (to mask elsewhere)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if is_secret_key(str(key)):
                found.update(_texts(item))
            else:
                found |= secret_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= secret_values(item)
    return found


def _texts(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {str(value)}
    if isinstance(value, Mapping):
        return set().union(*(_texts(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_texts(v) for v in value)) if value else set()
    return set()


@readonly_dataclass
class Masker:
    """Replaces a run's known secret values (and credentials recognised by name) with
    ``***``. Empty when a run has no secrets: then nothing is scanned on the way to disk,
    only what is shown is (by name)."""

    known: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.known)

    def text(self, text: str) -> str:
        return mask_text(text, self.known)

    def value(self, value: Any) -> Any:
        return mask_secrets(value, self.known)

    def event(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """An event to write, with every known secret value masked (field names kept)."""
        return {key: _mask_known(item, self.known) for key, item in record.items()}

    def stored(self, value: Any) -> Any:
        """A value to write anywhere (the cache, a mailbox), known secret values masked."""
        return _mask_known(value, self.known)


def _mask_known(value: Any, known: frozenset[str]) -> Any:
    """Only the known values (what goes to disk keeps its shape; name rules are for
    what is shown)."""
    if isinstance(value, str):
        for secret in sorted(known, key=len, reverse=True):
            if len(secret) >= SHORTEST_KNOWN_SECRET and secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {key: _mask_known(item, known) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_known(item, known) for item in value]
    return value


# -- declared secrets -------------------------------------------------------------------


@readonly_dataclass
class SecretSource:
    """Where a declared secret comes from: an environment variable or a file."""

    name: str
    env: str | None = None
    file: str | None = None


def parse_sources(block: Any, where: str) -> dict[str, SecretSource]:
    """A ``secrets:`` block; a bad one is a UsageError naming `where`."""
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise UsageError(f"{where}: secrets must map names to {{env: VAR}} or {{file: PATH}}")
    sources = {}
    for name, spec in block.items():
        if (
            not isinstance(spec, Mapping)
            or len(spec) != 1
            or not (isinstance(spec.get("env"), str) or isinstance(spec.get("file"), str))
        ):
            raise UsageError(f"{where}: secret '{name}' needs one of env: VAR or file: PATH")
        sources[str(name)] = SecretSource(str(name), spec.get("env"), spec.get("file"))
    return sources


def resolve(
    sources: Mapping[str, SecretSource], workspace: Workspace, environ: Mapping[str, str]
) -> dict[str, str]:
    """Each declared secret's value; one that cannot be found is a UsageError naming it
    (and where it was looked for, never a value)."""
    values = {}
    for name, source in sources.items():
        if source.env is not None:
            value = environ.get(source.env)
            if value is None:
                raise UsageError(
                    f"secret '{name}': the environment variable {source.env} is not set"
                )
        else:
            assert source.file is not None
            path = Path(source.file).expanduser()
            path = path if path.is_absolute() else workspace.root / path
            try:
                value = path.read_text(encoding="utf-8").rstrip("\n")
            except OSError as exc:
                raise UsageError(f"secret '{name}': cannot read {path}: {exc.strerror}") from exc
        values[name] = value
    return values


# -- encrypted parameters ---------------------------------------------------------------


def is_encrypted(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {ENCRYPTED}


def _fernet(workspace: Workspace, environ: Mapping[str, str]) -> Any:
    from cryptography.fernet import Fernet

    key = environ.get(KEY_ENV)
    if key:
        try:
            return Fernet(key.encode())
        except ValueError as exc:
            raise UsageError(f"{KEY_ENV} is not a Fernet key (32 url-safe base64 bytes)") from exc
    path = workspace.root / KEY_FILE
    try:
        return Fernet(read_bytes(path).strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"cannot use the secret key {path}: {exc}") from exc
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fresh = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by another process meanwhile
        return Fernet(read_bytes(path).strip())
    with os.fdopen(fd, "wb") as handle:
        handle.write(fresh + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return Fernet(fresh)


def encrypt(value: Any, workspace: Workspace, environ: Mapping[str, str]) -> dict[str, str]:
    """A parameter value as stored: ``{"$secret": TOKEN}``."""
    token = _fernet(workspace, environ).encrypt(json.dumps(value).encode("utf-8"))
    return {ENCRYPTED: token.decode("ascii")}


def decrypt(value: Mapping[str, str], workspace: Workspace, environ: Mapping[str, str]) -> Any:
    from cryptography.fernet import InvalidToken

    try:
        plain = _fernet(workspace, environ).decrypt(value[ENCRYPTED].encode("ascii"))
    except (InvalidToken, ValueError, TypeError) as exc:
        raise UsageError(
            f"a secret parameter cannot be decrypted with this workspace's key (set {KEY_ENV}"
            " to the key it was made with)"
        ) from exc
    return json.loads(plain)


@readonly_dataclass
class RunSecrets:
    """What a run knows of its secrets: parameters decrypted, declared secrets resolved,
    and the masker for every value among them."""

    params: dict[str, Any]
    values: dict[str, str]
    masker: Masker


def open_secrets(
    workspace: Workspace, definition: Mapping[str, Any], environ: Mapping[str, str]
) -> RunSecrets:
    """Decrypt the parameters of an instance's `definition` and resolve its declared
    secrets (the definition's ``secrets`` block over the workspace's)."""
    params: Mapping[str, Any] = definition.get("params") or {}
    sources = {
        **parse_sources(config_block(workspace, "secrets"), "workflow_cli.yaml"),
        **parse_sources(definition.get("secrets"), "the definition"),
    }
    values = resolve(sources, workspace, environ)
    plain = {}
    known = set(values.values())
    for name, value in params.items():
        if is_encrypted(value):
            value = decrypt(value, workspace, environ)
            known |= _texts(value)
        elif is_secret_key(name):
            known |= _texts(value)
        plain[name] = value
    return RunSecrets(plain, values, Masker(frozenset(known)))


def seal_params(
    params: Mapping[str, Any],
    secret_names: Iterable[str],
    workspace: Workspace,
    environ: Mapping[str, str],
    *,
    known: Iterable[str] = (),
) -> dict[str, Any]:
    """Parameters as stored: those named in `secret_names`, those whose names look like
    credentials, and those whose value is a `known` secret are encrypted."""
    names, known = set(secret_names), set(known)
    sealed: dict[str, Any] = {}
    for name, value in params.items():
        secret = name in names or is_secret_key(name) or (isinstance(value, str) and value in known)
        if secret and value not in (None, "") and not is_encrypted(value):
            value = encrypt(value, workspace, environ)
        sealed[name] = value
    return sealed
