"""Lookaside signature storage and its registries.d configuration.

OpenPGP simple signatures of registry images do not live in the registry:
skopeo writes them to a "lookaside" location configured in registries.d
(containers-registries.d(5)) and readers fetch them from there:
``<base>/<repository path without host>@<algorithm>=<hex>/signature-<N>``,
N = 1, 2, ... up to the first missing one.

registries.d is a directory of ``*.yaml`` files (c/image reads them with
ghodss/yaml, so unknown keys are ignored); each may set ``default-docker``
and ``docker: {SCOPE: {...}}`` with ``lookaside`` (read, and write unless
``lookaside-staging``), ``lookaside-staging`` (write), the old names
``sigstore``/``sigstore-staging``, and ``use-sigstore-attachments``.  A scope
set in two files is an error.  Lookup is the policy's most-specific-wins
(:func:`libaci.trust.scope.docker_namespaces`: ``host:port`` does not fall
back to ``host``).  PyYAML is imported only when a file is parsed.

Only ``file://`` locations are read and written here; callers fetch
``http(s)://`` URLs (:func:`signature_url`) with their HTTP client and may
pass it as ``fetch`` to :func:`read_signatures`.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping

import attrs

from libaci.reference import DockerReference
from libaci.trust.errors import LookasideError, RegistriesConfigError
from libaci.trust.payload import check_digest
from libaci.trust.scope import ImageName

__all__ = [
    "DEFAULT_LOOKASIDE_ROOT",
    "DEFAULT_LOOKASIDE_USER",
    "LookasideConfig",
    "RegistriesD",
    "default_lookaside",
    "load_registries_d",
    "parse_registries_d",
    "read_file_url",
    "read_signatures",
    "signature_url",
    "write_signature",
]

#: c/image's built-in lookaside when registries.d names none (root / other users)
DEFAULT_LOOKASIDE_ROOT = "/var/lib/containers/sigstore"
DEFAULT_LOOKASIDE_USER = ".local/share/containers/sigstore"
#: c/image's iolimits.MaxSignatureBodySize
MAX_SIGNATURE = 4 * 1024 * 1024
#: readers stop here even if more signature-N files exist
MAX_SIGNATURES = 128


@attrs.frozen
class LookasideConfig:
    """The settings of one registries.d scope (None = not set there)."""

    lookaside: str | None = None
    lookaside_staging: str | None = None
    use_sigstore_attachments: bool | None = None

    def url(self, write: bool) -> str | None:
        if write and self.lookaside_staging:
            return self.lookaside_staging
        return self.lookaside or None


@attrs.frozen
class RegistriesD:
    """registries.d, merged: ``default_docker`` and per-scope ``docker`` settings."""

    default_docker: LookasideConfig | None = None
    docker: Mapping[str, LookasideConfig] = attrs.field(factory=dict)

    def _candidates(self, ref: DockerReference) -> list[LookasideConfig]:
        image = ImageName.docker(ref)
        found = [self.docker[name] for name in (image.identity, *image.namespaces)
                 if name in self.docker]
        if self.default_docker is not None:
            found.append(self.default_docker)
        return found

    def lookaside_for(self, ref: DockerReference, *, write: bool = False) -> str | None:
        """The lookaside base URL for ``ref``, None when registries.d sets none."""
        for config in self._candidates(ref):
            url = config.url(write)
            if url:
                return url
        return None

    def use_sigstore_attachments(self, ref: DockerReference) -> bool:
        """Whether ``sha256-<hex>.sig`` attachments are read and written for ``ref``."""
        for config in self._candidates(ref):
            if config.use_sigstore_attachments is not None:
                return config.use_sigstore_attachments
        return False


def _namespace(value: object, where: str) -> LookasideConfig:
    if value is None:
        return LookasideConfig()
    if not isinstance(value, dict):
        raise RegistriesConfigError(f"{where}: expected a mapping")
    strings: dict[str, str | None] = {}
    for key in ("lookaside", "lookaside-staging", "sigstore", "sigstore-staging"):
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise RegistriesConfigError(f"{where}.{key}: expected a URL string")
        strings[key] = item or None
    use = value.get("use-sigstore-attachments")
    if use is not None and not isinstance(use, bool):
        raise RegistriesConfigError(f"{where}.use-sigstore-attachments: expected true or false")
    return LookasideConfig(
        lookaside=strings["lookaside"] or strings["sigstore"],
        lookaside_staging=strings["lookaside-staging"] or strings["sigstore-staging"],
        use_sigstore_attachments=use)


def parse_registries_d(raw: bytes, *, source: str = "registries.d file") -> RegistriesD:
    """Parse one registries.d YAML file."""
    import yaml

    try:
        doc = yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        first = str(e).replace("\n", " ")
        raise RegistriesConfigError(f"{source}: invalid YAML: {first}") from None
    if doc is None:
        return RegistriesD()
    if not isinstance(doc, dict):
        raise RegistriesConfigError(f"{source}: expected a mapping at the top")
    default = doc.get("default-docker")
    docker = doc.get("docker")
    if docker is None:
        docker = {}
    if not isinstance(docker, dict):
        raise RegistriesConfigError(f"{source}: docker: expected a mapping of scopes")
    scopes = {}
    for scope, value in docker.items():
        if not isinstance(scope, str):
            raise RegistriesConfigError(f"{source}: docker: scope {scope!r} is not a string")
        scopes[scope] = _namespace(value, f"{source}: docker[{scope!r}]")
    default_docker = None if default is None else _namespace(default, f"{source}: default-docker")
    return RegistriesD(default_docker=default_docker, docker=scopes)


def merge(configs: Iterable[tuple[str, RegistriesD]]) -> RegistriesD:
    """Merge files, refusing a scope (or ``default-docker``) set by two of them."""
    default: LookasideConfig | None = None
    default_from = ""
    docker: dict[str, LookasideConfig] = {}
    origin: dict[str, str] = {}
    for source, config in configs:
        if config.default_docker is not None:
            if default is not None:
                raise RegistriesConfigError(
                    f'"default-docker" is defined both in {default_from} and {source}')
            default, default_from = config.default_docker, source
        for scope, value in config.docker.items():
            if scope in docker:
                raise RegistriesConfigError(
                    f'docker scope "{scope}" is defined both in {origin[scope]} and {source}')
            docker[scope], origin[scope] = value, source
    return RegistriesD(default_docker=default, docker=docker)


def load_registries_d(directory: str) -> RegistriesD:
    """Read every ``*.yaml`` in ``directory`` (a missing directory is empty)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".yaml"))
    except FileNotFoundError:
        return RegistriesD()
    except OSError as e:
        raise RegistriesConfigError(f"cannot read {directory}: {e.strerror}") from None
    configs = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_SIGNATURE + 1)
        except OSError as e:
            raise RegistriesConfigError(f"cannot read {path}: {e.strerror}") from None
        if len(raw) > MAX_SIGNATURE:
            raise RegistriesConfigError(f"{path} is larger than {MAX_SIGNATURE} bytes")
        configs.append((path, parse_registries_d(raw, source=path)))
    return merge(configs)


def default_lookaside(euid: int, home: str) -> str:
    """c/image's built-in lookaside URL when registries.d sets none."""
    if euid == 0:
        return "file://" + DEFAULT_LOOKASIDE_ROOT
    return "file://" + os.path.join(home, DEFAULT_LOOKASIDE_USER)


def signature_url(base: str, ref: DockerReference, manifest_digest: object, index: int) -> str:
    """``<base>/<repo path>@<alg>=<hex>/signature-<index>`` (index counts from 1)."""
    digest = str(manifest_digest)
    problem = check_digest(digest)
    if problem is not None:
        raise ValueError(f"invalid manifest digest: {problem}")
    if index < 1:
        raise ValueError("signature indexes count from 1")
    parts = urllib.parse.urlsplit(base)
    if not parts.scheme:
        raise LookasideError(f"lookaside {base!r} is not a URL (write file:///path)")
    algorithm, _, encoded = digest.partition(":")
    path = f"{parts.path.rstrip('/')}/{ref.path}@{algorithm}={encoded}/signature-{index}"
    return urllib.parse.urlunsplit(parts._replace(path=path))


def _file_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        raise LookasideError(f"{url}: only file:// lookasides are read and written here")
    if parts.netloc not in ("", "localhost"):
        raise LookasideError(f"{url}: a file:// URL must not name a host "
                             "(write file:///absolute/path)")
    return urllib.parse.unquote(parts.path)


def read_file_url(url: str) -> bytes | None:
    """The content of a ``file://`` signature URL, None if it does not exist."""
    path = _file_path(url)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIGNATURE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise LookasideError(f"cannot read signature {path}: {e.strerror}") from None
    if len(data) > MAX_SIGNATURE:
        raise LookasideError(f"signature {path} is larger than {MAX_SIGNATURE} bytes")
    return data


def read_signatures(base: str, ref: DockerReference, manifest_digest: object, *,
                    fetch: Callable[[str], bytes | None] = read_file_url) -> list[bytes]:
    """Every signature blob stored for ``manifest_digest`` under ``base``, in order.

    ``fetch`` returns a URL's bytes or None when it does not exist; the
    default reads ``file://`` URLs.  Decode each blob with
    :func:`libaci.trust.signature.decode_signature_blob`.
    """
    blobs = []
    for index in range(1, MAX_SIGNATURES + 2):
        if index > MAX_SIGNATURES:
            raise LookasideError(f"more than {MAX_SIGNATURES} lookaside signatures for "
                                 f"{ref.name}@{manifest_digest}")
        data = fetch(signature_url(base, ref, manifest_digest, index))
        if data is None:
            break
        blobs.append(data)
    return blobs


def write_signature(base: str, ref: DockerReference, manifest_digest: object,
                    blob: bytes) -> str:
    """Add ``blob`` as the next ``signature-N`` under a ``file://`` base; its path.

    A signature already stored byte for byte is not written twice (its path
    is returned).  The file appears atomically (temporary file, fsync, hard
    link), so readers never see half a signature and two writers never
    overwrite each other.
    """
    for index in range(1, MAX_SIGNATURES + 1):
        url = signature_url(base, ref, manifest_digest, index)
        existing = read_file_url(url)
        path = _file_path(url)
        if existing is None:
            break
        if existing == blob:
            return path
    else:
        raise LookasideError(f"already {MAX_SIGNATURES} lookaside signatures for "
                             f"{ref.name}@{manifest_digest}")
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".signature-{os.getpid()}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails instead of replacing if another writer won
    except FileExistsError:
        raise LookasideError(f"{path} appeared while writing it; try again") from None
    except OSError as e:
        raise LookasideError(f"cannot write signature {path}: {e.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return path
