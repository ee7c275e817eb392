"""Registry credentials where podman, skopeo and docker keep them.

Reading follows containers/image 5.23 (``pkg/docker/config/config.go``) as
skopeo 1.9.3 on Debian 12 behaves, with two Docker CLI additions:

* Files, in order (:func:`auth_files_for_read`): the primary file —
  ``--authfile``, else ``$REGISTRY_AUTH_FILE``, else
  ``$XDG_RUNTIME_DIR/containers/auth.json``, else
  ``/run/containers/<uid>/auth.json`` — then
  ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``, then
  ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, then
  ``~/.dockercfg`` (legacy format: the ``auths`` map at the top level).  As in
  c/image 5.23, naming a primary file does not stop the search there: skopeo
  1.9.3 with ``--authfile`` still falls back to ``~/.docker/config.json``.
* In each file: ``credHelpers[host]`` (a helper, :class:`HelperRef`), then
  the ``auths`` key that matches most specifically — ``host/ns/repo``,
  ``host/ns``, ``host`` — then, only when none of those keys exists, the
  ``auths`` keys normalised (``https://host/v1/`` and ``http://host`` become
  ``host``; ``docker.io``, ``index.docker.io`` and ``registry-1.docker.io`` are
  one registry).  An entry without a usable credential (Docker's ``{}``
  marker, an empty password) does not answer: the search goes on with the
  ``credsStore`` default helper of that file (Docker; c/image ignores it) and
  then the next file.
* ``auth`` is ``base64(user:password)``; the password is everything after the
  first ``:`` (it may contain colons).  ``identitytoken`` is an OAuth2
  refresh token; an entry with only a token is used (Docker does; c/image
  drops it).

Writing (:func:`store_credential`, :func:`remove_credential`) goes to the one
file ``podman login`` writes (:func:`auth_file_for_write`), atomically, mode
0600, keeping every other entry and every field podkit does not know.

This module only reads and writes files: running ``docker-credential-*``
helpers is stage0's business (``stage0.credhelper``).  Errors are
:class:`~libaci.errors.AuthError` with one line that names the file and never
contains a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import pwd
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from libaci.errors import AuthError, InvalidReferenceError, UsageError
from libaci.fsutil import atomic_write, flocked

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_SERVER_URL",
    "Credential",
    "HelperRef",
    "auth_file_for_write",
    "auth_files_for_read",
    "configured_helper",
    "is_legacy_file",
    "lookup",
    "lookup_with_source",
    "parse_auth_key",
    "remove_all_credentials",
    "remove_credential",
    "store_credential",
]

DOCKER_HUB = "docker.io"
#: The key ``docker login`` writes for Docker Hub, and the server URL it gives helpers.
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_LEGACY_NAME = ".dockercfg"
_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?", re.ASCII)

Env = Mapping[str, str]


@attrs.frozen(repr=False)
class Credential:
    """A username and password, or an identity (OAuth2 refresh) token.

    The secret parts never show in ``repr``/``str``, so a credential that ends
    up in a log or a traceback does not leak.
    """

    username: str
    password: str
    identity_token: str | None = None

    def __repr__(self) -> str:
        token = "None" if self.identity_token is None else "<hidden>"
        return (f"Credential(username={self.username!r}, password=<hidden>, "
                f"identity_token={token})")

    __str__ = __repr__


@attrs.frozen
class HelperRef:
    """A ``credHelpers`` or ``credsStore`` entry: run ``docker-credential-NAME get``.

    ``source`` is the file that named the helper (for messages); it does not
    take part in comparisons.
    """

    name: str
    source: str | None = attrs.field(default=None, eq=False)


# -- where the files are ---------------------------------------------------------------

def _home(env: Env) -> str:
    home = env.get("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/"


def _primary(env: Env, authfile: str | None) -> tuple[str, str | None]:
    """The read/write file, and the XDG_RUNTIME_DIR it depends on (if it does)."""
    if authfile:
        return authfile, None
    if env.get("REGISTRY_AUTH_FILE"):
        return env["REGISTRY_AUTH_FILE"], None
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "containers", "auth.json"), runtime
    return f"/run/containers/{os.getuid()}/auth.json", None


def auth_files_for_read(env: Env = os.environ, *, authfile: str | None = None) -> list[str]:
    """The files to search for credentials, in containers/image 5.23's order.

    ``authfile`` (a ``--authfile`` option) replaces the primary file.  A primary
    file under an ``$XDG_RUNTIME_DIR`` that does not exist is left out, as
    c/image does (with a warning) so that anonymous pulls still work.
    """
    paths: list[str] = []
    primary, runtime = _primary(env, authfile)
    if runtime is None or os.path.isdir(runtime):
        paths.append(primary)
    home = _home(env)
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    paths.append(os.path.join(config_home, "containers", "auth.json"))
    docker_config = env.get("DOCKER_CONFIG")
    paths.append(os.path.join(docker_config, "config.json") if docker_config
                 else os.path.join(home, ".docker", "config.json"))
    paths.append(os.path.join(home, _LEGACY_NAME))
    return list(dict.fromkeys(paths))


def auth_file_for_write(env: Env = os.environ, *, authfile: str | None = None) -> str:
    """The file ``podman login`` / ``skopeo login`` write: the primary file."""
    primary, runtime = _primary(env, authfile)
    if runtime is not None and not os.path.isdir(runtime):
        raise AuthError(f"{runtime!r} set by $XDG_RUNTIME_DIR does not exist "
                        "(create the directory or unset XDG_RUNTIME_DIR)")
    return primary


def is_legacy_file(path: str) -> bool:
    """Whether ``path`` is in the legacy ``~/.dockercfg`` format (judged by its name)."""
    return os.path.basename(path) == _LEGACY_NAME


# -- reading one file ------------------------------------------------------------------

@attrs.frozen
class _AuthFile:
    path: str
    legacy: bool
    doc: dict[str, Any]
    auths: dict[str, dict[str, Any]]
    cred_helpers: dict[str, str]
    creds_store: str | None


def _bad(path: str, what: str) -> AuthError:
    return AuthError(f"{path}: {what} (fix or remove the file)")


def _load(path: str, legacy: bool | None = None) -> _AuthFile | None:
    """The parsed file, or None when it does not exist."""
    if legacy is None:
        legacy = is_legacy_file(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise AuthError(f"{path}: cannot read credentials: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(path, "not UTF-8 text") from None
    if not text.strip():
        doc: Any = {}
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            # e.msg never quotes the document, so no secret can leak through it
            raise _bad(path, f"not valid JSON ({e.msg} at line {e.lineno} "
                             f"column {e.colno})") from None
    if not isinstance(doc, dict):
        raise _bad(path, "not a JSON object")
    auths_doc = doc if legacy else doc.get("auths")
    if auths_doc is None:
        auths_doc = {}
    if not isinstance(auths_doc, dict):
        raise _bad(path, '"auths" is not a JSON object')
    auths: dict[str, dict[str, Any]] = {}
    for key, entry in auths_doc.items():
        where = f"the entry for {key!r}"
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise _bad(path, f"{where} is not a JSON object")
        for field in ("auth", "identitytoken"):
            if entry.get(field) is not None and not isinstance(entry[field], str):
                raise _bad(path, f'"{field}" of {where} is not a string')
        auths[key] = entry
    helpers: dict[str, str] = {}
    store: str | None = None
    if not legacy:
        helpers_doc = doc.get("credHelpers")
        if helpers_doc is not None:
            if not isinstance(helpers_doc, dict) or not all(
                    isinstance(v, str) for v in helpers_doc.values()):
                raise _bad(path, '"credHelpers" is not an object of strings')
            helpers = helpers_doc
        store = doc.get("credsStore")
        if store is not None and not isinstance(store, str):
            raise _bad(path, '"credsStore" is not a string')
    return _AuthFile(path, legacy, doc, auths, helpers, store or None)


def _decode(f: _AuthFile, key: str, entry: Mapping[str, Any]) -> Credential | None:
    """The credential in one ``auths`` entry, or None when it holds none usable."""
    auth = entry.get("auth") or ""
    token = entry.get("identitytoken") or None
    username = password = ""
    if auth:
        try:
            # Go's StdEncoding: padding required, line breaks ignored
            raw = base64.b64decode(re.sub(r"[\r\n]", "", auth), validate=True)
            text = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise _bad(f.path, f'"auth" of the entry for {key!r} is not base64 '
                               'of UTF-8 "user:password"') from None
        user, colon, secret = text.partition(":")
        if colon:  # without a colon the entry is skipped, as docker does
            username, password = user, secret.strip("\x00")
    if token:
        return Credential(username, password, token)
    if username and password:
        return Credential(username, password)
    return None


# -- keys --------------------------------------------------------------------------------

def _canonical_host(host: str) -> str:
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _normalize_key(key: str, legacy: bool) -> str:
    """c/image ``normalizeAuthFileKey``: URLs and legacy keys become their host."""
    stripped = key.removeprefix("http://").removeprefix("https://")
    if legacy or stripped != key:
        stripped = stripped.partition("/")[0]
    return _canonical_host(stripped)


def _split(registry: str, repository: str | None) -> tuple[str, str | None]:
    host, slash, path = registry.partition("/")
    if slash and path:
        repository = f"{path}/{repository}" if repository else path
    return _canonical_host(host), (repository.strip("/") or None) if repository else None


def _keys(host: str, repository: str | None) -> list[str]:
    """``host/ns/repo``, ``host/ns``, ``host``: the most specific first."""
    keys = []
    name = f"{host}/{repository}" if repository else host
    while True:
        keys.append(name)
        cut = name.rfind("/")
        if cut < 0:
            return keys
        name = name[:cut]


def _match_helper(helpers: Mapping[str, str], host: str) -> str | None:
    name = helpers.get(host)
    if name is None:
        for key, value in helpers.items():
            if _normalize_key(key, True) == host:
                name = value
                break
    return name or None


def _find_in(f: _AuthFile, host: str, repository: str | None) -> Credential | HelperRef | None:
    if not f.legacy:
        helper = _match_helper(f.cred_helpers, host)
        if helper is not None:
            return HelperRef(helper, source=f.path)
    found: tuple[str, dict[str, Any]] | None = None
    for key in [host] if f.legacy else _keys(host, repository):
        if key in f.auths:
            found = key, f.auths[key]
            break
    else:
        for key, entry in f.auths.items():
            if _normalize_key(key, f.legacy) == host:
                found = key, entry
                break
    cred = _decode(f, *found) if found else None
    if cred is not None:
        return cred
    if f.creds_store:
        return HelperRef(f.creds_store, source=f.path)
    return None


def _files(env: Env, files: Sequence[str] | None) -> Iterator[_AuthFile]:
    for path in auth_files_for_read(env) if files is None else files:
        f = _load(path)
        if f is not None:
            yield f


def lookup_with_source(registry: str, repository: str | None = None, *, env: Env = os.environ,
                       files: Sequence[str] | None = None,
                       ) -> tuple[str, Credential | HelperRef] | None:
    """Like :func:`lookup`, with the file the answer came from."""
    host, repository = _split(registry, repository)
    for f in _files(env, files):
        found = _find_in(f, host, repository)
        if found is not None:
            return f.path, found
    return None


def lookup(registry: str, repository: str | None = None, *, env: Env = os.environ,
           files: Sequence[str] | None = None) -> Credential | HelperRef | None:
    """The credential for ``repository`` on ``registry`` (``host[:port]``), if any.

    ``repository`` is the path without the host (``library/busybox``);
    ``registry`` may itself carry a namespace (``quay.io/team``).  ``files``
    replaces :func:`auth_files_for_read`; a missing file is skipped, a
    malformed one raises :class:`~libaci.errors.AuthError`.  A
    :class:`HelperRef` means "ask that helper" (``stage0.credhelper.resolve``).
    """
    found = lookup_with_source(registry, repository, env=env, files=files)
    return None if found is None else found[1]


def configured_helper(registry: str, *, path: str) -> str | None:
    """The ``credHelpers`` entry for ``registry``'s host in ``path``, if any.

    ``podman login`` stores through such a helper instead of into the file.
    """
    f = _load(path)
    if f is None or f.legacy:
        return None
    return _match_helper(f.cred_helpers, _split(registry, None)[0])


def parse_auth_key(text: str) -> tuple[str, str]:
    """A login argument as the auth-file key it names, and its registry host.

    ``reg:5000``, ``https://reg:5000/v2/`` (a URL names its host),
    ``quay.io/team/app`` (a namespaced key: only that repository or namespace).
    Docker Hub's aliases become ``docker.io`` and one-component Hub paths get
    ``library/``, so that the key matches what pulls look up.
    """
    from libaci.reference import parse_docker_reference

    key = text.removeprefix("http://").removeprefix("https://")
    if key != text:
        key = key.partition("/")[0]
    host, slash, path = key.partition("/")
    if not _HOST_RE.fullmatch(host):
        raise UsageError(f"invalid registry {text!r} (give HOST[:PORT], optionally "
                         "followed by /NAMESPACE or /REPOSITORY)")
    host = _canonical_host(host)
    if not slash:
        return host, host
    try:
        ref = parse_docker_reference(f"example.invalid/{path}", default_tag=None)
    except InvalidReferenceError:
        ref = None
    if ref is None or ref.tag is not None or ref.digest is not None or ref.path != path:
        raise UsageError(f"invalid registry {text!r}: {path!r} is not a repository or "
                         "namespace name (lowercase, no tag or digest)")
    if host == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    return f"{host}/{path}", host


# -- writing -----------------------------------------------------------------------------

def _load_for_update(path: str) -> _AuthFile | None:
    if is_legacy_file(path):
        raise AuthError(f"{path}: writing the legacy .dockercfg format is not supported "
                        "(use --authfile with another file)")
    return _load(path, legacy=False)


def _mkdirs(d: str) -> None:
    """``os.makedirs`` with 0700 for every directory it creates (as podman does)."""
    missing = []
    while d and not os.path.isdir(d):
        missing.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for m in reversed(missing):
        try:
            os.mkdir(m, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise AuthError(f"cannot create {m}: {e.strerror}") from None


def _write(path: str, doc: Mapping[str, Any]) -> None:
    data = (json.dumps(doc, indent="\t", ensure_ascii=False) + "\n").encode()
    atomic_write(path, data, mode=0o600)


def _update(path: str,
            edit: Callable[[dict[str, Any], dict[str, Any]], tuple[bool, Any]]) -> Any:
    """Read ``path`` (through a symlink), apply ``edit(doc, auths)``, write it back.

    ``edit`` returns (changed, result); the file is rewritten only when changed.
    The directory is flocked so that two podkit-logins do not lose an update.
    """
    real = os.path.realpath(path)
    _mkdirs(os.path.dirname(real))
    with flocked(os.path.dirname(real) or "."):
        f = _load_for_update(real)
        doc = dict(f.doc) if f is not None else {}
        auths = dict(doc.get("auths") or {})
        changed, result = edit(doc, auths)
        if changed:
            doc["auths"] = auths
            _write(real, doc)
    return result


def store_credential(registry: str, cred: Credential, *, path: str) -> None:
    """Save ``cred`` under the key ``registry`` (``host[:port][/namespace]``) in ``path``.

    Other entries, other top-level fields and unknown fields of the entry
    itself are kept.  The file is replaced atomically with mode 0600; missing
    parent directories are created with mode 0700.
    """
    if not registry or registry != registry.strip() or "://" in registry:
        raise UsageError(f"invalid auth file key {registry!r}")
    if ":" in cred.username:
        raise UsageError("a username cannot contain ':' (auth files join user:password)")

    def edit(doc: dict[str, Any], auths: dict[str, Any]) -> tuple[bool, None]:
        entry = dict(auths.get(registry) or {})
        if cred.username or cred.password:
            raw = f"{cred.username}:{cred.password}".encode()
            entry["auth"] = base64.b64encode(raw).decode("ascii")
        else:
            entry.pop("auth", None)
        if cred.identity_token:
            entry["identitytoken"] = cred.identity_token
        else:
            entry.pop("identitytoken", None)
        auths[registry] = entry
        return True, None

    _update(path, edit)


def remove_credential(registry: str, *, path: str) -> bool:
    """Remove the entry for ``registry`` from ``path``; False when there was none.

    A host-level key also removes the entries that normalise to it
    (``https://host/v1/``, ``http://host``, Docker Hub's aliases).  A missing
    file is not created.
    """
    if not os.path.exists(path):
        return False
    host, repository = _split(registry, None)
    key = f"{host}/{repository}" if repository else host

    def edit(doc: dict[str, Any], auths: dict[str, Any]) -> tuple[bool, bool]:
        doomed = [k for k in auths if k in (registry, key)
                  or (repository is None and _normalize_key(k, False) == host)]
        for k in doomed:
            del auths[k]
        return bool(doomed), bool(doomed)

    return bool(_update(path, edit))


def remove_all_credentials(*, path: str) -> int:
    """Empty ``auths`` in ``path`` (``credHelpers`` and other fields stay); the count removed."""
    if not os.path.exists(path):
        return 0

    def edit(doc: dict[str, Any], auths: dict[str, Any]) -> tuple[bool, int]:
        n = len(auths)
        auths.clear()
        return n > 0, n

    return int(_update(path, edit))
