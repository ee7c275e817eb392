"""Docker credential helpers: ``docker-credential-NAME get|store|erase``.

The auth files name a helper per registry (``credHelpers``) or a default one
(``credsStore``); :func:`libaci.registry.credentials.lookup` returns a
:class:`~libaci.registry.credentials.HelperRef` for them, and this module runs
the helper, since libaci never starts processes.  The protocol is the one of
github.com/docker/docker-credential-helpers ``client``: the server URL (for
``get`` and ``erase``) or a ``{"ServerURL", "Username", "Secret"}`` document
(for ``store``) on stdin; ``get`` answers with that document on stdout;
failures exit non-zero with the message on stdout, and
``credentials not found in native keychain`` means "no credential".

Docker Hub is asked for as ``https://index.docker.io/v1/`` (what ``docker
login`` stores) and then as ``docker.io`` (what ``podman login`` stores).
Secrets never appear in messages: a helper's own message is quoted only when
it does not contain the secret.
"""

from __future__ import annotations

import json
import subprocess

from libaci.errors import AuthError
from libaci.registry.credentials import (
    DOCKER_HUB,
    DOCKER_HUB_SERVER_URL,
    Credential,
    HelperRef,
)

TIMEOUT = 30.0
NOT_FOUND = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"
_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io",
                  DOCKER_HUB_SERVER_URL, "https://index.docker.io/v1"})


class _NotFound(Exception):
    pass


def _server_urls(registry: str) -> list[str]:
    if registry in _HUB:
        return [DOCKER_HUB_SERVER_URL, DOCKER_HUB]
    return [registry]


def _one_line(text: str, secret: str | None = None) -> str:
    line = " ".join(text.split())
    if secret and secret in line:
        return "(message withheld: it contains the secret)"
    return line[:200] or "no message"


def _run(name: str, action: str, data: str, *, source: str | None = None,
         secret: str | None = None, timeout: float = TIMEOUT) -> str:
    """Run the helper; its stdout on success, _NotFound for "not found"."""
    if not name or "/" in name or name.startswith("."):
        raise AuthError(f"invalid credential helper name {name!r}"
                        + (f" in {source}" if source else ""))
    exe = f"docker-credential-{name}"
    try:
        r = subprocess.run([exe, action], input=data.encode(), capture_output=True,
                           timeout=timeout, check=False)
    except FileNotFoundError:
        where = f" named in {source}" if source else ""
        raise AuthError(f"credential helper {exe}{where} is not installed or not on PATH "
                        "(install it, or remove the helper from the auth file)") from None
    except PermissionError:
        raise AuthError(f"credential helper {exe} cannot be run (permission denied)") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {exe} {action} did not answer within "
                        f"{timeout:g} s") from None
    except OSError as e:
        raise AuthError(f"credential helper {exe} cannot be run: {e.strerror}") from None
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        message = out.strip() or r.stderr.decode("utf-8", "replace").strip()
        if NOT_FOUND in message:
            raise _NotFound
        raise AuthError(f"credential helper {exe} {action} failed "
                        f"(exit status {r.returncode}): {_one_line(message, secret)}")
    return out


def _parse(exe: str, out: str) -> Credential | None:
    try:
        doc = json.loads(out)
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k, ""), str) for k in ("Username", "Secret")):
        # never quote the answer: it is where the secret would be
        raise AuthError(f"credential helper {exe} get: the answer is not a "
                        '{"ServerURL", "Username", "Secret"} JSON object')
    username, secret = doc.get("Username", ""), doc.get("Secret", "")
    if not secret:
        return None
    if username == TOKEN_USERNAME:
        return Credential("", "", identity_token=secret)
    return Credential(username, secret)


def get(name: str, registry: str, *, source: str | None = None,
        timeout: float = TIMEOUT) -> Credential | None:
    """``docker-credential-NAME get`` for ``registry``; None when it has nothing."""
    for url in _server_urls(registry):
        try:
            out = _run(name, "get", url, source=source, timeout=timeout)
        except _NotFound:
            continue
        cred = _parse(f"docker-credential-{name}", out)
        if cred is not None:
            return cred
    return None


def resolve(ref: Credential | HelperRef | None, registry: str) -> Credential | None:
    """What :func:`libaci.registry.credentials.lookup` found, as a credential.

    A :class:`Credential` is returned as is, None stays None, and a
    :class:`HelperRef` is asked with ``get`` for ``registry`` (``host[:port]``).
    """
    if ref is None or isinstance(ref, Credential):
        return ref
    return get(ref.name, registry, source=ref.source)


def store(name: str, registry: str, cred: Credential, *, timeout: float = TIMEOUT) -> None:
    """``docker-credential-NAME store``: save ``cred`` for ``registry`` in the helper."""
    if cred.identity_token:
        username, secret = TOKEN_USERNAME, cred.identity_token
    else:
        username, secret = cred.username, cred.password
    doc = {"ServerURL": _server_urls(registry)[0], "Username": username, "Secret": secret}
    try:
        _run(name, "store", json.dumps(doc), secret=secret, timeout=timeout)
    except _NotFound:
        raise AuthError(f"credential helper docker-credential-{name} store failed") from None


def erase(name: str, registry: str, *, timeout: float = TIMEOUT) -> bool:
    """``docker-credential-NAME erase``; False when the helper had nothing for ``registry``."""
    erased = False
    for url in _server_urls(registry):
        try:
            _run(name, "erase", url, timeout=timeout)
            erased = True
        except _NotFound:
            continue
    return erased
