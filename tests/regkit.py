"""Registry test infrastructure: real registries, a token server and a fault proxy.

- ``Registry``     Debian's ``/usr/bin/docker-registry`` (distribution 2.8.2) on
                   127.0.0.1:<free port>, filesystem storage in a work dir, deletes
                   enabled, access log in ``registry.log``; plain HTTP, TLS with a
                   throw-away CA + htpasswd (bcrypt), or Bearer tokens from a
                   ``TokenServer``.
- ``TokenServer``  the Docker token flow (``GET /token?service=&scope=``), ES256
                   JWTs with a libtrust ``kid`` that distribution 2.8 accepts.
- ``FaultServer``  an HTTP proxy in front of a plain ``Registry`` that misbehaves
                   on request (corrupt/truncated blobs, wrong/huge/malformed
                   manifests, error statuses, redirect loops, delays).

Processes are started by us and stopped by PID only (SIGTERM, SIGKILL after 5 s).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"
SKOPEO = "skopeo"
USER = "alice"
PASSWORD = "wonderland"
SERVICE = "regkit-registry"
ISSUER = "regkit-token-issuer"
STOP_TIMEOUT = 5.0

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT_ALL = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])

# 127.0.0.1 - - [28/Nov/2026:17:21:15 +0000] "GET /v2/x/manifests/q?a=b HTTP/1.1" 404 91 "" "ua"
_ACCESS_RE = re.compile(
    r'^(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[\d.]+" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?')
_SYNC = "regkit-sync"
_MANIFEST_PATH = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")

_live: set[Any] = set()  # started servers, stopped at exit if a finalizer never ran


@atexit.register
def _stop_leftovers() -> None:
    for obj in list(_live):
        with contextlib.suppress(Exception):
            obj.stop()


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------------------
# keys and certificates
# --------------------------------------------------------------------------------------

def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: str, data: bytes, mode: int = 0o644) -> str:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def libtrust_key_id(public_key: Any) -> str:
    """docker/libtrust keyIDFromCryptoKey: what distribution 2.8 matches a JWT ``kid`` with.

    base32(sha256(DER SubjectPublicKeyInfo)[:30]) without padding (48 chars), in 12
    groups of 4 joined by ':'.
    """
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def _builder(subject: str, issuer: str, public_key: Any, days: int) -> x509.CertificateBuilder:
    now = _now()
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


class CA:
    """A throw-away certificate authority (EC P-256) written to ``directory``.

    ``cert_file`` (ca.crt) and ``key_file`` (ca.key); ``issue()`` makes server certs.
    """

    def __init__(self, directory: str, name: str = "regkit test CA", days: int = 7) -> None:
        os.makedirs(directory, exist_ok=True)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        pub = self.key.public_key()
        self.cert = (_builder(name, name, pub, days)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                    critical=True)
                     .add_extension(x509.KeyUsage(
                         digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                         decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub),
                                    critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.cert_file = _write(os.path.join(directory, "ca.crt"), _cert_pem(self.cert))
        self.key_file = _write(os.path.join(directory, "ca.key"), _key_pem(self.key), 0o600)

    def issue(self, directory: str, stem: str = "server",
              hosts: Iterable[str] = ("127.0.0.1", "localhost"),
              days: int = 7) -> tuple[str, str]:
        """A server certificate for ``hosts`` (IPs and DNS names): (cert path, key path)."""
        import ipaddress

        hosts = list(hosts)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        cert = (_builder(hosts[0], self.name, key.public_key(), days)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        return (_write(os.path.join(directory, f"{stem}.crt"), _cert_pem(cert)),
                _write(os.path.join(directory, f"{stem}.key"), _key_pem(key), 0o600))


def write_htpasswd(path: str, users: dict[str, str], rounds: int = 4) -> str:
    """bcrypt entries (the only kind distribution 2.8 accepts); cost 4 keeps requests fast."""
    import bcrypt

    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds)).decode()}\n"
             for u, p in users.items()]
    with open(path, "w") as f:
        f.writelines(lines)
    return path


# --------------------------------------------------------------------------------------
# skopeo helpers shared by everything that looks like a registry
# --------------------------------------------------------------------------------------

class AccessLine(NamedTuple):
    """One access-log line: ``path`` without the query, ``uri`` with it."""

    method: str
    path: str
    status: int
    uri: str
    size: int
    agent: str


class SkopeoError(RuntimeError):
    def __init__(self, cmd: list[str], proc: subprocess.CompletedProcess) -> None:
        super().__init__(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        self.proc = proc
        self.stderr = proc.stderr


class _RegistryEndpoint:
    """Address, skopeo flags and a requests client for something speaking /v2/."""

    host = "127.0.0.1"
    port = 0
    scheme = "http"
    ca_file: str | None = None
    cert_dir: str | None = None
    user: str | None = None
    password: str | None = None
    workdir = ""

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.addr}"

    @property
    def creds(self) -> str | None:
        return f"{self.user}:{self.password}" if self.user else None

    def ref(self, repo_ref: str) -> str:
        """``ADDR/repo:tag`` (no transport) for ``repo:tag``; full references pass."""
        if repo_ref.startswith("docker://"):
            repo_ref = repo_ref[len("docker://"):]
        first = repo_ref.split("/", 1)[0]
        if "/" in repo_ref and ("." in first or ":" in first or first == "localhost"):
            return repo_ref
        return f"{self.addr}/{repo_ref}"

    def docker(self, repo_ref: str) -> str:
        """``docker://ADDR/repo:tag``."""
        return "docker://" + self.ref(repo_ref)

    # -- skopeo ------------------------------------------------------------------------
    def tls_args(self, direction: str = "") -> list[str]:
        """``--[src-|dest-]tls-verify=false`` for HTTP, ``--[..]cert-dir DIR`` for TLS."""
        p = f"--{direction}-" if direction else "--"
        if self.scheme == "https":
            return [f"{p}cert-dir", str(self.cert_dir)]
        return [f"{p}tls-verify=false"]

    def cred_args(self, direction: str = "", creds: str | bool | None = True) -> list[str]:
        """``--[..]creds user:pw``; ``creds=True`` = this registry's user, False/None = none,
        a string = those credentials."""
        p = f"--{direction}-" if direction else "--"
        if creds is True:
            creds = self.creds
        return [f"{p}creds", creds] if creds else []

    def skopeo_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.workdir:
            # never pick up the caller's ~/.docker/config.json or auth.json
            auth = os.path.join(self.workdir, "empty-auth.json")
            if not os.path.exists(auth):
                _write(auth, b'{"auths": {}}\n')
            env["REGISTRY_AUTH_FILE"] = auth
        return env

    def skopeo(self, *args: str, check: bool = True,
               timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [SKOPEO, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=self.skopeo_env(), check=False)
        if check and proc.returncode != 0:
            raise SkopeoError(cmd, proc)
        return proc

    def push_with_skopeo(self, src: str, repo_ref: str, *extra_args: str,
                         creds: str | bool | None = True) -> str:
        """``skopeo copy SRC docker://ADDR/REPO_REF`` with the right TLS/credential flags;
        returns the pushed manifest digest (``--digestfile``)."""
        fd, digestfile = tempfile.mkstemp(prefix="digest-", dir=self.workdir or None)
        os.close(fd)
        try:
            self.skopeo("copy", "-q", "--digestfile", digestfile,
                        *self.tls_args("dest"), *self.cred_args("dest", creds),
                        *extra_args, src, self.docker(repo_ref))
            with open(digestfile) as f:
                return f.read().strip()
        finally:
            os.unlink(digestfile)

    def pull_with_skopeo(self, repo_ref: str, dest: str, *extra_args: str,
                         creds: str | bool | None = True) -> None:
        self.skopeo("copy", "-q", *self.tls_args("src"), *self.cred_args("src", creds),
                    *extra_args, self.docker(repo_ref), dest)

    def inspect_raw(self, repo_ref: str, *extra_args: str,
                    creds: str | bool | None = True) -> bytes:
        """``skopeo inspect --raw`` (the manifest bytes exactly as served)."""
        cmd = [SKOPEO, "inspect", "--raw", *self.tls_args(), *self.cred_args("", creds),
               *extra_args, self.docker(repo_ref)]
        proc = subprocess.run(cmd, capture_output=True, timeout=120, env=self.skopeo_env(),
                              check=False)
        if proc.returncode != 0:
            raise SkopeoError(cmd, subprocess.CompletedProcess(
                cmd, proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")))
        return proc.stdout

    # -- plain HTTP client -------------------------------------------------------------
    def request(self, method: str, path: str, *, creds: str | bool | None = None,
                headers: dict[str, str] | None = None, data: bytes | None = None,
                allow_redirects: bool = False, timeout: float = 30) -> requests.Response:
        """One registry API call with requests. ``path`` is ``/v2/...``. Anonymous by
        default; ``creds=True`` uses the registry's user. Basic and Bearer challenges are
        answered (the Docker token flow) like a client would."""
        if creds is True:
            creds = self.creds
        auth = tuple(creds.split(":", 1)) if isinstance(creds, str) else None
        verify: Any = self.ca_file if self.scheme == "https" else True
        hdrs = dict(headers or {})
        url = path if path.startswith(("http://", "https://")) else self.url + path
        # verify= per request: a Session's verify loses to $REQUESTS_CA_BUNDLE
        kw: dict[str, Any] = {"timeout": timeout, "verify": verify}
        with requests.Session() as s:
            r = s.request(method, url, headers=hdrs, data=data,
                          allow_redirects=allow_redirects, **kw)
            challenge = r.headers.get("WWW-Authenticate", "")
            if r.status_code != 401 or not challenge:
                return r
            scheme, _, params = challenge.partition(" ")
            if scheme.lower() == "basic":
                if not auth:
                    return r
                return s.request(method, url, headers=hdrs, data=data, auth=auth,
                                 allow_redirects=allow_redirects, **kw)
            p = dict(re.findall(r'(\w+)="([^"]*)"', params))
            q = {"service": p.get("service", "")}
            if p.get("scope"):
                q["scope"] = p["scope"]
            if auth:
                q["account"] = auth[0]
            t = s.get(p["realm"], params=q, auth=auth, **kw)
            if t.status_code != 200:
                return t
            body = t.json()
            token = body.get("token") or body.get("access_token")
            hdrs["Authorization"] = f"Bearer {token}"
            return s.request(method, url, headers=hdrs, data=data,
                             allow_redirects=allow_redirects, **kw)

    def manifest(self, repo: str, ref: str, *, creds: str | bool | None = None,
                 accept: str = ACCEPT_ALL) -> requests.Response:
        return self.request("GET", f"/v2/{repo}/manifests/{ref}", creds=creds,
                            headers={"Accept": accept})


# --------------------------------------------------------------------------------------
# the token server
# --------------------------------------------------------------------------------------

class TokenServer:
    """Docker registry token server (docs/spec/auth/token.md) on 127.0.0.1:<free port>.

    ``GET /token?service=S&scope=repository:NAME:pull,push[&scope=..][&account=U]`` with
    optional Basic auth. Anonymous requests get ``anonymous_actions`` (pull), known users
    ``user_actions`` (pull, push), wrong credentials 401. Tokens: ES256 JWT, header
    ``kid`` = libtrust key ID of ``cert_file`` (the registry's ``rootcertbundle``).
    Every request is appended to ``requests`` (dicts, see ``_record``).
    """

    def __init__(self, workdir: str, *, service: str = SERVICE, issuer: str = ISSUER,
                 users: dict[str, str] | None = None,
                 anonymous_actions: Iterable[str] = ("pull",),
                 user_actions: Iterable[str] = ("pull", "push"),
                 expires_in: int = 300) -> None:
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.service = service
        self.issuer = issuer
        self.users = dict(users if users is not None else {USER: PASSWORD})
        self.anonymous_actions = list(anonymous_actions)
        self.user_actions = list(user_actions)
        self.expires_in = expires_in
        self.requests: list[dict[str, Any]] = []
        self.key = ec.generate_private_key(ec.SECP256R1())
        cert = (_builder("regkit token signer", "regkit token signer", self.key.public_key(), 7)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_file = _write(os.path.join(workdir, "token-signer.crt"), _cert_pem(cert))
        self.key_id = libtrust_key_id(self.key.public_key())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        assert self._server is not None, "token server not started"
        return self._server.server_address[1]

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    # -- tokens ------------------------------------------------------------------------
    def issue(self, subject: str, access: list[dict[str, Any]], *,
              audience: str | None = None, issuer: str | None = None,
              expires_in: int | None = None, now: float | None = None) -> str:
        """A signed JWT (compact form) as distribution 2.8 wants it."""
        now = int(time.time() if now is None else now)
        header = {"typ": "JWT", "alg": "ES256", "kid": self.key_id}
        claims = {"iss": issuer or self.issuer, "sub": subject,
                  "aud": audience or self.service,
                  "exp": now + (self.expires_in if expires_in is None else expires_in),
                  "nbf": now, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def grant(self, user: str | None, scopes: Iterable[str]) -> list[dict[str, Any]]:
        """The ``access`` claim for ``scopes`` (each ``type:name:actions``)."""
        allowed = set(self.user_actions if user else self.anonymous_actions)
        access = []
        for scope in scopes:
            typ, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if not name:
                continue
            wanted = [a for a in actions.split(",") if a]
            if typ == "repository" or typ.startswith("repository("):
                got = [a for a in wanted if a in allowed or ("*" in allowed)]
            elif typ == "registry" and user:
                got = wanted
            else:
                got = []
            if got:
                access.append({"type": typ, "name": name, "actions": got})
        return access

    # -- HTTP --------------------------------------------------------------------------
    def start(self) -> TokenServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                u = urlsplit(self.path)
                owner._handle(self, u.path, parse_qs(u.query, keep_blank_values=True))

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(n).decode(), keep_blank_values=True)
                owner._handle(self, urlsplit(self.path).path, form, post=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="regkit-token", daemon=True)
        self._thread.start()
        _live.add(self)
        return self

    def stop(self) -> None:
        _live.discard(self)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _record(self, **kw: Any) -> None:
        with self._lock:
            self.requests.append(kw)

    def _handle(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]],
                post: bool = False) -> None:
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        user: str | None = None
        password: str | None = None
        authz = h.headers.get("Authorization", "")
        if authz.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(authz[6:]).decode().partition(":")
            except ValueError:
                user, password = "", ""
        elif post and query.get("grant_type") == ["password"]:
            user = query.get("username", [""])[0]
            password = query.get("password", [""])[0]
        rec = {"method": h.command, "path": path, "query": query, "scopes": scopes,
               "credentials": user is not None, "account": query.get("account", [None])[0],
               "user": None, "status": 200}
        if path != "/token":
            rec["status"] = 404
            self._record(**rec)
            return _send_json(h, 404, {"errors": [{"code": "NOT_FOUND", "message": path}]})
        if user is not None and self.users.get(user) != password:
            rec["status"] = 401
            self._record(**rec)
            return _send_json(h, 401, {"errors": [{"code": "UNAUTHORIZED",
                                                   "message": "bad credentials"}]},
                              {"WWW-Authenticate": 'Basic realm="regkit-token"'})
        rec["user"] = user
        access = self.grant(user, scopes)
        rec["access"] = access
        token = self.issue(user or "", access)
        self._record(**rec)
        issued = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
        _send_json(h, 200, {"token": token, "access_token": token,
                            "expires_in": self.expires_in, "issued_at": issued})


def _send_json(h: BaseHTTPRequestHandler, code: int, doc: Any,
               headers: dict[str, str] | None = None) -> None:
    body = json.dumps(doc).encode()
    h.send_response(code)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


# --------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------

class Registry(_RegistryEndpoint):
    """One ``docker-registry serve`` process on 127.0.0.1:<free port>.

    ``Registry(workdir)`` plain HTTP, no auth; ``tls=True`` HTTPS with a fresh CA
    (``ca_file``, ``cert_dir`` holding ``ca.crt``); ``htpasswd={"alice": "wonderland"}``
    Basic auth; ``token=TokenServer(...)`` Bearer auth (the token server is started
    and stopped with the registry). ``user``/``password`` are the credentials the
    skopeo helpers send (first htpasswd user, or alice for token registries).
    Files in ``workdir``: config.yml, data/, registry.log (stdout+stderr: the
    apache-style access log and logrus lines).
    """

    def __init__(self, workdir: str | None = None, *, tls: bool = False,
                 htpasswd: dict[str, str] | None = None, token: TokenServer | None = None,
                 user: str | None = None, password: str | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="regkit-")
        os.makedirs(self.workdir, exist_ok=True)
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.htpasswd = dict(htpasswd) if htpasswd else None
        self.token = token
        if self.htpasswd:
            self.user = user or next(iter(self.htpasswd))
            self.password = password or self.htpasswd[self.user]
        elif token is not None:
            self.user = user or next(iter(token.users), None)
            self.password = password or (token.users.get(self.user) if self.user else None)
        else:
            self.user, self.password = user, password
        self.config_file = os.path.join(self.workdir, "config.yml")
        self.log_file = os.path.join(self.workdir, "registry.log")
        self.data_dir = os.path.join(self.workdir, "data")
        self.proc: subprocess.Popen | None = None
        self.startup_seconds = 0.0
        self._sync_n = itertools.count(1)
        if tls:
            certs = os.path.join(self.workdir, "certs")
            self.ca = CA(certs)
            self.ca_file = self.ca.cert_file
            self.server_cert, self.server_key = self.ca.issue(certs)
            self.cert_dir = os.path.join(self.workdir, "cert.d")
            os.makedirs(self.cert_dir, exist_ok=True)
            shutil.copy(self.ca_file, os.path.join(self.cert_dir, "ca.crt"))

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Registry {self.url} pid={self.proc.pid if self.proc else None}>"

    def _config(self) -> dict[str, Any]:
        http: dict[str, Any] = {"addr": self.addr, "secret": "regkit-not-random",
                                "headers": {"X-Content-Type-Options": ["nosniff"]}}
        if self.tls:
            http["tls"] = {"certificate": self.server_cert, "key": self.server_key}
        cfg: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": False},
                    "fields": {"service": "registry"}},
            "storage": {"filesystem": {"rootdirectory": self.data_dir},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": http,
        }
        if self.htpasswd:
            path = write_htpasswd(os.path.join(self.workdir, "htpasswd"), self.htpasswd)
            cfg["auth"] = {"htpasswd": {"realm": "regkit-realm", "path": path}}
        elif self.token is not None:
            cfg["auth"] = {"token": {"realm": self.token.realm, "service": self.token.service,
                                     "issuer": self.token.issuer,
                                     "rootcertbundle": self.token.cert_file}}
        return cfg

    def start(self, timeout: float = 15) -> Registry:
        """Start, wait until ``GET /v2/`` answers (any status). Retries on a port race."""
        if self.proc is not None:
            return self
        if self.token is not None and self.token._server is None:
            self.token.start()
        t0 = time.monotonic()
        for attempt in range(5):
            self.port = free_port()
            with open(self.config_file, "w") as f:
                # JSON is YAML; distribution's yaml.v2 parser reads it
                json.dump(self._config(), f, indent=2)
            log = open(self.log_file, "ab")
            try:
                self.proc = subprocess.Popen(
                    [REGISTRY_BIN, "serve", self.config_file], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, start_new_session=True)
            finally:
                log.close()
            _live.add(self)
            if self._wait_ready(t0 + timeout):
                self.startup_seconds = time.monotonic() - t0
                return self
            in_use = "address already in use" in self.log_text()[-2000:]
            self._kill()
            if not in_use or attempt == 4:
                break
        raise RuntimeError(f"registry did not come up; log:\n{self.log_text()[-4000:]}")

    def _wait_ready(self, deadline: float) -> bool:
        assert self.proc is not None
        verify: Any = self.ca_file if self.tls else False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                requests.get(self.url + "/v2/", timeout=1, verify=verify)
                return True
            except requests.RequestException:
                time.sleep(0.02)
        return False

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # SIGTERM to our own child, by PID
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s; stops the token server too. Idempotent."""
        _live.discard(self)
        self._kill()
        if self.token is not None:
            self.token.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- the access log ----------------------------------------------------------------
    def log_text(self) -> str:
        try:
            with open(self.log_file, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _sync(self, timeout: float = 5) -> None:
        """Make sure every request answered so far is in the log: distribution writes the
        access line after the handler returns, so a client may see its response first.
        Send a marker request and wait for its line."""
        if not self.running:
            return
        marker = f"/v2/?{_SYNC}={next(self._sync_n)}"
        verify: Any = self.ca_file if self.tls else False
        try:
            requests.get(self.url + marker, timeout=timeout, verify=verify)
        except requests.RequestException:
            return
        deadline = time.monotonic() + timeout
        needle = f'"GET {marker} '
        while needle not in self.log_text() and time.monotonic() < deadline:
            time.sleep(0.01)

    def access_log(self, since: int = 0) -> list[AccessLine]:
        """Parsed access-log lines (oldest first), without regkit's own sync requests;
        ``since`` = a value from ``mark()``."""
        self._sync()
        out = []
        for line in self.log_text().splitlines():
            m = _ACCESS_RE.match(line)
            if not m or f"?{_SYNC}=" in m["uri"]:
                continue
            size = m["size"]
            out.append(AccessLine(m["method"], m["uri"].split("?", 1)[0], int(m["status"]),
                                  m["uri"], 0 if size == "-" else int(size),
                                  m["agent"] or ""))
        return out[since:]

    def mark(self) -> int:
        """A position in the access log, for ``access_log(since=)``/``count(since=)``."""
        return len(self.access_log())

    def count(self, method: str, path_regex: str, since: int = 0,
              status: int | None = None) -> int:
        """Access-log lines with ``method`` whose URI (path?query) matches ``path_regex``
        (re.search), optionally only those answered with ``status``."""
        rx = re.compile(path_regex)
        return sum(1 for ln in self.access_log(since)
                   if ln.method == method and rx.search(ln.uri)
                   and (status is None or ln.status == status))


# --------------------------------------------------------------------------------------
# the fault-injecting proxy
# --------------------------------------------------------------------------------------

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "expect", "content-length"}
_ERROR_CODES = {400: "UNKNOWN", 401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN",
                429: "TOOMANYREQUESTS", 500: "UNKNOWN", 502: "UNAVAILABLE",
                503: "UNAVAILABLE", 504: "UNAVAILABLE"}


@dataclass
class Rule:
    """One fault. ``times`` None = every matching request; else that many, then gone."""

    kind: str
    methods: frozenset[str] | None
    match: Callable[[str], bool]
    times: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def live(self) -> bool:
        return self.times is None or self.hits < self.times


@dataclass
class ProxiedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int
    fault: str | None
    body_size: int


class _ManifestMatch:
    """Matches ``/v2/<repo>/manifests/<ref>`` for one repo (or any) and a growing set of
    references: the tag plus the digests it was served under."""

    def __init__(self, ref: str) -> None:
        self.repo: str | None = None
        if "@" in ref:
            self.repo, ref = ref.split("@", 1)
        elif ":" in ref and not ref.startswith("sha256:"):
            self.repo, ref = ref.rsplit(":", 1)
        self.base = ref
        self.refs = {ref}

    def __call__(self, path: str) -> bool:
        m = _MANIFEST_PATH.match(path)
        return bool(m and (self.repo is None or m["repo"] == self.repo)
                    and m["ref"] in self.refs)


class FaultServer(_RegistryEndpoint):
    """A threaded HTTP proxy on 127.0.0.1:<free port> in front of a plain ``Registry``.

    Passes everything through (the ``Host`` header too, so upload ``Location`` URLs point
    back at the proxy) unless a rule says otherwise. Rules are checked in the order they
    were added; ``delay`` rules add up, then the first other live rule wins. Every request
    is recorded in ``requests`` (``ProxiedRequest``) before it is answered. ``reset()``
    drops rules and records.
    """

    def __init__(self, upstream: _RegistryEndpoint, workdir: str | None = None) -> None:
        if upstream.scheme != "http" or upstream.user:
            raise ValueError("FaultServer proxies a plain-HTTP registry without auth")
        self.upstream = upstream
        self.workdir = workdir or upstream.workdir
        self.rules: list[Rule] = []
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FaultServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (ConnectionError, TimeoutError):
                    self.close_connection = True

            def _any(self) -> None:
                owner._handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="regkit-fault",
                         daemon=True).start()
        _live.add(self)
        return self

    def stop(self) -> None:
        _live.discard(self)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def count(self, method: str, path_regex: str, fault: str | bool | None = False) -> int:
        """Recorded requests; ``fault=True`` only faulted ones, a string only that kind."""
        rx = re.compile(path_regex)
        n = 0
        for r in list(self.requests):
            uri = r.path + ("?" + r.query if r.query else "")
            if r.method != method or not rx.search(uri):
                continue
            if fault is True and r.fault is None:
                continue
            if isinstance(fault, str) and r.fault != fault:
                continue
            n += 1
        return n

    # -- rules -------------------------------------------------------------------------
    def _add(self, kind: str, methods: Iterable[str] | None, match: Callable[[str], bool],
             times: int | None, **params: Any) -> Rule:
        rule = Rule(kind, frozenset(methods) if methods else None, match, times, params)
        with self._lock:
            self.rules.append(rule)
        return rule

    @staticmethod
    def _rx(path_regex: str) -> Callable[[str], bool]:
        rx = re.compile(path_regex)
        return lambda path: bool(rx.search(path))

    def corrupt_blob(self, digest: str, times: int | None = None) -> Rule:
        """GET /v2/*/blobs/<digest>: same status/headers/length, one byte flipped."""
        return self._add("corrupt_blob", ["GET"],
                         self._rx(rf"^/v2/.+/blobs/{re.escape(digest)}$"), times)

    def truncate(self, path_regex: str, n_bytes: int, times: int | None = None,
                 methods: Iterable[str] = ("GET",)) -> Rule:
        """Full ``Content-Length``, then only ``n_bytes`` of the body and a closed socket."""
        return self._add("truncate", methods, self._rx(path_regex), times, n=n_bytes)

    def wrong_manifest(self, ref: str, other: str | None = None,
                       times: int | None = None) -> Rule:
        """GET of manifest ``ref`` ("repo:tag", "repo@digest", or a bare tag for any repo),
        and of the digest it resolves to, returns another valid manifest (``other``, a
        tag/digest in the same repo, or by default the same one with an extra annotation)
        with the original ``Docker-Content-Digest``/``Content-Type`` headers. HEAD is
        passed through unchanged. With a repo in ``ref`` the tag's digest is resolved now;
        with a bare tag it is learnt from the first faulted GET."""
        mm = _ManifestMatch(ref)
        if mm.repo is not None and not mm.base.startswith("sha256:"):
            st, rh, _ = self._upstream("HEAD", f"/v2/{mm.repo}/manifests/{mm.base}",
                                       [("Accept", ACCEPT_ALL)], None)
            dcd = _header(rh, "Docker-Content-Digest")
            if st == 200 and dcd:
                mm.refs.add(dcd)
        return self._add("wrong_manifest", ["GET"], mm, times, other=other)

    def huge_manifest(self, ref: str, size: int, times: int | None = None) -> Rule:
        """Manifest ``ref`` padded (an annotation) to exactly ``size`` bytes of valid JSON,
        with matching ``Content-Length`` and ``Docker-Content-Digest`` (HEAD too)."""
        return self._add("huge_manifest", ["GET", "HEAD"], _ManifestMatch(ref), times,
                         size=size)

    def malformed_json(self, ref: str, times: int | None = None) -> Rule:
        """Manifest ``ref`` cut in half (not JSON), with a ``Docker-Content-Digest`` and
        ``Content-Length`` that match the bytes sent (so only parsing fails)."""
        return self._add("malformed_json", ["GET", "HEAD"], _ManifestMatch(ref), times)

    def status(self, path_regex: str, code: int, times: int | None = 1,
               methods: Iterable[str] | None = None,
               headers: dict[str, str] | None = None, body: bytes | None = None) -> Rule:
        """Answer ``code`` (JSON error body unless ``body``) ``times`` times, then pass."""
        return self._add("status", methods, self._rx(path_regex), times, code=code,
                         headers=headers or {}, body=body)

    def redirect_loop(self, path_regex: str, times: int | None = None,
                      code: int = 307) -> Rule:
        """Redirect the request to itself, forever (or ``times`` times)."""
        return self._add("redirect_loop", None, self._rx(path_regex), times, code=code)

    def delay(self, path_regex: str, seconds: float, times: int | None = None,
              methods: Iterable[str] | None = None) -> Rule:
        """Sleep before handling (other rules still apply)."""
        return self._add("delay", methods, self._rx(path_regex), times, seconds=seconds)

    def _pick(self, method: str, path: str) -> tuple[float, Rule | None]:
        delay = 0.0
        with self._lock:
            for rule in self.rules:
                if not rule.live() or (rule.methods and method not in rule.methods):
                    continue
                if not rule.match(path):
                    continue
                if rule.kind == "delay":
                    rule.hits += 1
                    delay += rule.params["seconds"]
                    continue
                rule.hits += 1
                return delay, rule
        return delay, None

    # -- proxying ----------------------------------------------------------------------
    def _upstream(self, method: str, path_query: str, headers: list[tuple[str, str]],
                  body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream.host, self.upstream.port, timeout=120)
        try:
            conn.putrequest(method, path_query, skip_host=True, skip_accept_encoding=True)
            has_host = False
            for k, v in headers:
                if k.lower() in _HOP:
                    continue
                has_host |= k.lower() == "host"
                conn.putheader(k, v)
            if not has_host:
                conn.putheader("Host", self.addr)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes | None:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(h.rfile.read(size))
                h.rfile.readline()
            return b"".join(parts)
        n = h.headers.get("Content-Length")
        if n is None:
            return None
        return h.rfile.read(int(n))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method = h.command
        u = urlsplit(h.path)
        path = u.path
        body = self._read_body(h)
        headers = list(h.headers.items())
        delay, rule = self._pick(method, path)
        if delay:
            time.sleep(delay)
        kind = rule.kind if rule else None

        def record(status: int) -> None:
            rec = ProxiedRequest(method, path, u.query, dict(h.headers.items()), status, kind,
                                 len(body or b""))
            with self._lock:
                self.requests.append(rec)

        if rule is not None and rule.kind == "status":
            code = rule.params["code"]
            err = rule.params["body"]
            if err is None:
                err = json.dumps({"errors": [{
                    "code": _ERROR_CODES.get(code, "UNKNOWN"),
                    "message": f"regkit injected {code}", "detail": None}]}).encode()
            record(code)
            return self._send(h, code, [("Content-Type", "application/json"),
                                        *rule.params["headers"].items()], err)
        if rule is not None and rule.kind == "redirect_loop":
            record(rule.params["code"])
            return self._send(h, rule.params["code"],
                              [("Location", f"http://{self.addr}{h.path}")], b"")

        if rule is not None and isinstance(rule.match, _ManifestMatch):
            mm = rule.match
            m = _MANIFEST_PATH.match(path)
            assert m is not None
            # always fetch the original by its tag/first ref (the client may ask for a
            # digest only this proxy ever served)
            base_path = f"/v2/{m['repo']}/manifests/{mm.base}"
            status, rh, data = self._upstream("GET", base_path, headers, None)
            if status == 200:
                dcd = _header(rh, "Docker-Content-Digest")
                if dcd:
                    mm.refs.add(dcd)
                status, rh, data = self._manifest_fault(rule, m["repo"], headers, rh, data)
            record(status)
            return self._send(h, status, rh, data, head=method == "HEAD")

        status, rh, data = self._upstream(method, h.path, headers, body)
        if rule is not None and rule.kind == "corrupt_blob" and data:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        if rule is not None and rule.kind == "truncate":
            record(status)
            return self._send(h, status, rh, data, head=method == "HEAD",
                              cut=rule.params["n"])
        record(status)
        self._send(h, status, rh, data, head=method == "HEAD")

    def _manifest_fault(self, rule: Rule, repo: str, headers: list[tuple[str, str]],
                        rh: list[tuple[str, str]], data: bytes
                        ) -> tuple[int, list[tuple[str, str]], bytes]:
        mm = rule.match
        assert isinstance(mm, _ManifestMatch)
        if rule.kind == "wrong_manifest":
            other = rule.params.get("other")
            if other:
                st, orh, odata = self._upstream("GET", f"/v2/{repo}/manifests/{other}",
                                                headers, None)
                if st != 200:
                    raise RuntimeError(f"wrong_manifest: {repo}:{other} -> {st}")
                new = odata
                rh = _set_header(rh, "Content-Type", _header(orh, "Content-Type") or "")
            else:
                doc = json.loads(data)
                doc.setdefault("annotations", {})["org.example.regkit.wrong"] = "1"
                new = json.dumps(doc, separators=(",", ":")).encode()
            return 200, rh, new  # original Docker-Content-Digest and Etag kept
        if rule.kind == "huge_manifest":
            size = rule.params["size"]
            if "body" not in rule.params:
                doc = json.loads(data)
                doc.setdefault("annotations", {})["org.example.regkit.padding"] = "@PAD@"
                raw = json.dumps(doc, separators=(",", ":")).encode()
                pad = size - (len(raw) - len("@PAD@"))
                if pad < 0:
                    raise ValueError(f"huge_manifest: {size} < {len(raw) - 5} bytes")
                rule.params["body"] = raw.replace(b"@PAD@", b"x" * pad)
            new = rule.params["body"]
        elif rule.kind == "malformed_json":
            new = data[: len(data) // 2]
        else:
            raise AssertionError(rule.kind)
        digest = sha256_digest(new)
        mm.refs.add(digest)
        rh = _set_header(rh, "Docker-Content-Digest", digest)
        rh = _set_header(rh, "Etag", f'"{digest}"')
        rh = _set_header(rh, "Content-Length", str(len(new)))
        return 200, rh, new

    def _send(self, h: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]],
              data: bytes, *, head: bool = False, cut: int | None = None) -> None:
        h.send_response(status)
        length = None
        for k, v in headers:
            lk = k.lower()
            if lk in ("date", "server"):
                continue
            if lk == "content-length":
                length = v
                continue
            if lk in _HOP:
                continue
            h.send_header(k, v)
        h.send_header("Content-Length", length if head and length is not None
                      else str(len(data)))
        if cut is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        if head:
            return
        if cut is None:
            h.wfile.write(data)
            return
        h.wfile.write(data[:cut])
        h.wfile.flush()
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def _set_header(headers: list[tuple[str, str]], name: str,
                value: str) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k.lower() != name.lower()]
    out.append((name, value))
    return out


# --------------------------------------------------------------------------------------
# session setup helpers used by conftest.py
# --------------------------------------------------------------------------------------

def plain_registry(workdir: str) -> Registry:
    return Registry(workdir).start()


def tls_registry(workdir: str) -> Registry:
    return Registry(workdir, tls=True, htpasswd={USER: PASSWORD}).start()


def token_registry(workdir: str) -> Registry:
    return Registry(workdir, token=TokenServer(os.path.join(workdir, "token"))).start()


# name -> (tag in the imagekit layout, repository, skopeo copy flags).
# --preserve-digests pushes the layout's manifests byte for byte. Without it skopeo 1.9
# gzips uncompressed layers (multi-plain) and, worse, swaps zstd layers for gzip blobs
# with the same diff_ids that its blob-info cache knows are already in the registry
# (multi-zstd after multi). With --format v2s2 it must not be given: skopeo then
# silently ignores --format and pushes the OCI manifest.
_KEEP = ("--preserve-digests",)
TEST_IMAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "tiny": ("tiny", "test/tiny", _KEEP),
    "multi": ("multi", "test/multi", _KEEP),
    "multi-docker": ("multi", "test/multi-docker", ("--format", "v2s2")),
    "multi-plain": ("multi-plain", "test/multi-plain", _KEEP),
    "multi-zstd": ("multi-zstd", "test/multi-zstd", _KEEP),
    "multiarch": ("multiarch", "test/multiarch", ("--all", *_KEEP)),
}


def push_test_images(reg: _RegistryEndpoint, layout: str,
                     tag: str = "1") -> dict[str, dict[str, str]]:
    """Push the imagekit layout's images; returns name -> {ref, repo, digest}."""
    out = {}
    for name, (src_tag, repo, flags) in TEST_IMAGES.items():
        digest = reg.push_with_skopeo(f"oci:{layout}:{src_tag}", f"{repo}:{tag}", *flags)
        out[name] = {"ref": reg.ref(f"{repo}:{tag}"), "repo": repo, "digest": digest}
    return out


_repo_counter = itertools.count(1)


def unique_repo(test_name: str, prefix: str = "test") -> str:
    """``test/<test name, registry-safe>-<n>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:80].strip("-") or "t"
    return f"{prefix}/{slug}-{next(_repo_counter)}"
