"""Writing a new image over a parent: config changes, history, manifest, into the store.

Why this exists: ``podkit-commit`` (and the build engine after it) makes a
child image from a parent that is in the store plus one new layer and some
config changes.  This module holds the parts that do not care where the layer
came from:

- :func:`parse_changes` / :func:`apply_changes`: Dockerfile instructions that
  change only the config (``CMD``, ``ENTRYPOINT``, ``ENV``, ``EXPOSE``,
  ``LABEL``, ``ONBUILD``, ``STOPSIGNAL``, ``USER``, ``VOLUME``, ``WORKDIR``),
  as ``docker commit --change`` accepts them: JSON and shell forms,
  ``key=value`` and legacy ``key value`` forms, quotes, and variable
  substitution (``$V``, ``${V}``, ``${V:-word}``, ``${V:+word}``, ``${V-word}``,
  ``${V+word}``, ``${V:?msg}``, ``${V?msg}``) with the image's environment.
- :func:`child_config`: the parent's config plus a diff ID and a history
  entry; :func:`child_manifest`: the parent's layers plus the new one, in the
  parent's format (OCI, or Docker schema 2).
- :func:`stage_layer`: stream a layer writer into a staged blob (hashed once
  by the writer, once by the store) and extract it into the staging
  directory as a fetch would, so the store gets blob and layer together.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO

import attrs

from libaci import mediatypes as mt
from libaci.digest import Digest, chain_ids
from libaci.errors import ImageError, UsageError
from libaci.layerwrite import LayerResult
from libaci.oci import Descriptor, Manifest, dumps

INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
                "VOLUME", "WORKDIR")
DEFAULT_SHELL = ("/bin/sh", "-c")
_SIGNALS = frozenset({
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PORT = re.compile(r"([0-9]+)(?:-([0-9]+))?(?:/([A-Za-z]+))?")


# -- Dockerfile words --------------------------------------------------------------------


class _Lexer:
    """BuildKit's shell-word processing, the part instructions of a commit need."""

    def __init__(self, text: str, env: Mapping[str, str], where: str) -> None:
        self.s, self.i, self.env, self.where = text, 0, env, where

    def fail(self, why: str) -> UsageError:
        return UsageError(f"{self.where}: {why}")

    def word(self, stop: str = "") -> str:
        """Process up to the end (or an unquoted char of ``stop``, left unread)."""
        out: list[str] = []
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in stop:
                break
            self.i += 1
            if c == "\\":
                if self.i < len(s):
                    out.append(s[self.i])
                    self.i += 1
                else:
                    out.append(c)
            elif c == "'":
                end = s.find("'", self.i)
                if end < 0:
                    raise self.fail("unterminated single quote")
                out.append(s[self.i:end])
                self.i = end + 1
            elif c == '"':
                out.append(self._double())
            elif c == "$":
                out.append(self._dollar())
            else:
                out.append(c)
        return "".join(out)

    def _double(self) -> str:
        out: list[str] = []
        s = self.s
        while True:
            if self.i >= len(s):
                raise self.fail("unterminated double quote")
            c = s[self.i]
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\\" and self.i < len(s):
                nxt = s[self.i]
                self.i += 1
                out.append(nxt if nxt in '"$\\' else c + nxt)
            elif c == "$":
                out.append(self._dollar())
            else:
                out.append(c)

    def _dollar(self) -> str:
        s = self.s
        if self.i < len(s) and s[self.i] == "{":
            self.i += 1
            m = _NAME.match(s, self.i)
            if not m:
                raise self.fail("bad substitution (expected a variable name after ${)")
            name = m.group()
            self.i = m.end()
            value = self.env.get(name)
            if self.i < len(s) and s[self.i] == "}":
                self.i += 1
                return value or ""
            op = s[self.i:self.i + 2] if s[self.i:self.i + 1] == ":" else s[self.i:self.i + 1]
            if op not in (":-", ":+", ":?", "-", "+", "?"):
                raise self.fail(f"unsupported modifier in ${{{name}{s[self.i:self.i + 2]}...}}")
            self.i += len(op)
            word = self.word("}")
            if self.i >= len(s):
                raise self.fail(f"missing '}}' in ${{{name}...")
            self.i += 1
            unset = value is None or (op[0] == ":" and value == "")
            if op[-1] == "-":
                return word if unset else value or ""
            if op[-1] == "+":
                return "" if unset else word
            if unset:
                raise self.fail(f"{name}: {word or 'is not set'}")
            return value or ""
        m = _NAME.match(s, self.i)
        if not m:
            return "$"
        self.i = m.end()
        return self.env.get(m.group(), "")


def process_word(text: str, env: Mapping[str, str], where: str = "--change") -> str:
    """One word with quotes removed, escapes applied and variables substituted."""
    return _Lexer(text, env, where).word()


def split_words(text: str) -> list[str]:
    """Raw words split at unquoted, unescaped blanks (quotes and escapes kept)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in " \t":
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(c)
            if c == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c in "'\"":
                quote = c
        i += 1
    if cur:
        words.append("".join(cur))
    return words


# -- instructions ------------------------------------------------------------------------


@attrs.frozen
class Instruction:
    """One Dockerfile instruction: ``keyword`` upper case, ``args`` as written."""

    keyword: str
    args: str
    original: str

    def fail(self, why: str) -> UsageError:
        return UsageError(f"--change {self.original!r}: {why}")


def parse_changes(texts: Sequence[str]) -> list[Instruction]:
    """Instructions from ``--change`` values (each may hold several lines).

    Lines ending in a backslash continue; blank lines and ``#`` comments are
    skipped.  Raises UsageError for an instruction a commit cannot apply.
    """
    out: list[Instruction] = []
    for text in texts:
        if not text.strip():
            raise UsageError("--change: empty instruction")
        pending = ""
        for line in text.splitlines() or [""]:
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            out.append(_instruction(pending + line))
            pending = ""
        if pending:
            out.append(_instruction(pending))
    return out


def _instruction(line: str) -> Instruction:
    text = line.strip()
    keyword, _, args = text.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        args = more + " " + args
    ins = Instruction(keyword.upper(), args.strip(), text)
    if ins.keyword not in INSTRUCTIONS:
        raise ins.fail(f"{keyword} cannot be applied by a commit (known: "
                       f"{', '.join(INSTRUCTIONS)})")
    if not ins.args:
        raise ins.fail(f"{ins.keyword} requires at least one argument")
    return ins


def _json_form(args: str) -> list[str] | None:
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None  # not JSON: the shell form, as the Dockerfile parser decides
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    return None


def _pairs(ins: Instruction, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """``k=v ...`` or the legacy ``k v`` form (ENV, LABEL)."""
    words = split_words(ins.args)
    if "=" not in words[0]:
        parts = re.split(r"[ \t]+", ins.args, maxsplit=1)
        if len(parts) < 2 or not parts[1].strip():
            raise ins.fail(f"{ins.keyword} needs NAME=VALUE (or NAME VALUE)")
        return [(process_word(parts[0], env, f"--change {ins.original!r}"),
                 process_word(parts[1].strip(), env, f"--change {ins.original!r}"))]
    out = []
    for w in words:
        if "=" not in w:
            raise ins.fail(f"{w!r} is not NAME=VALUE")
        key, _, value = w.partition("=")
        out.append((process_word(key, env, f"--change {ins.original!r}"),
                    process_word(value, env, f"--change {ins.original!r}")))
    return out


def _env_map(config: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or ():
        k, _, v = str(item).partition("=")
        env[k] = v
    return env


def apply_changes(config: dict[str, Any], changes: Sequence[Instruction]) -> dict[str, Any]:
    """A copy of the container config ``config`` (the ``config`` object of an
    image config) with ``changes`` applied in order, as Docker's builder does
    (ENTRYPOINT clears an inherited Cmd unless a CMD came before it)."""
    c: dict[str, Any] = json.loads(json.dumps(config or {}))
    cmd_set = False
    for ins in changes:
        env = _env_map(c)
        where = f"--change {ins.original!r}"
        k = ins.keyword
        if k in ("CMD", "ENTRYPOINT"):
            argv = _json_form(ins.args)
            if argv is None:
                argv = [*(c.get("Shell") or DEFAULT_SHELL), ins.args]
            if k == "CMD":
                c["Cmd"] = argv
                cmd_set = True
            else:
                c["Entrypoint"] = argv
                if not cmd_set:
                    c["Cmd"] = None
        elif k == "ENV":
            for name, value in _pairs(ins, env):
                if not name or "=" in name:
                    raise ins.fail(f"{name!r} is not a variable name")
                env[name] = value
            c["Env"] = [f"{n}={v}" for n, v in env.items()]
        elif k == "LABEL":
            labels = dict(c.get("Labels") or {})
            for name, value in _pairs(ins, env):
                if not name:
                    raise ins.fail("empty label name")
                labels[name] = value
            c["Labels"] = labels
        elif k == "EXPOSE":
            ports = dict(c.get("ExposedPorts") or {})
            for w in split_words(ins.args):
                for p in _ports(process_word(w, env, where), ins):
                    ports[p] = {}
            c["ExposedPorts"] = ports
        elif k == "VOLUME":
            paths = _json_form(ins.args)
            if paths is None:
                paths = [process_word(w, env, where) for w in split_words(ins.args)]
            volumes = dict(c.get("Volumes") or {})
            for p in paths:
                if not p.strip():
                    raise ins.fail("VOLUME needs non-empty paths")
                volumes[p.strip()] = {}
            c["Volumes"] = volumes
        elif k == "USER":
            words = split_words(ins.args)
            if len(words) != 1:
                raise ins.fail("USER takes exactly one argument (USER[:GROUP])")
            user = process_word(words[0], env, where)
            if not user:
                raise ins.fail("USER is empty")
            c["User"] = user
        elif k == "WORKDIR":
            path = process_word(ins.args, env, where)
            if not path:
                raise ins.fail("WORKDIR is empty")
            if not path.startswith("/"):
                path = posixpath.join("/", c.get("WorkingDir") or "/", path)
            c["WorkingDir"] = "/" + posixpath.normpath(path).lstrip("/")
        elif k == "STOPSIGNAL":
            sig = process_word(ins.args, env, where)
            if not _signal_ok(sig):
                raise ins.fail(f"{sig!r} is not a signal (like SIGTERM, TERM or 15)")
            c["StopSignal"] = sig
        elif k == "ONBUILD":
            trigger = ins.args.split(None, 1)[0].upper()
            if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
                raise ins.fail(f"{trigger} is not allowed as an ONBUILD trigger")
            c["OnBuild"] = [*(c.get("OnBuild") or []), ins.args]
    return c


def _ports(spec: str, ins: Instruction) -> list[str]:
    m = _PORT.fullmatch(spec)
    proto = (m.group(3) or "tcp").lower() if m else ""
    if not m or proto not in ("tcp", "udp", "sctp"):
        raise ins.fail(f"{spec!r} is not a port (PORT[-PORT][/tcp|udp|sctp])")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    if not 0 < lo <= hi <= 65535:
        raise ins.fail(f"{spec!r}: ports are 1 to 65535, low to high")
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def _signal_ok(sig: str) -> bool:
    s = sig.upper()
    if s.isdigit():
        return 0 < int(s) <= 64
    s = s.removeprefix("SIG")
    if s.startswith("RTMIN") or s.startswith("RTMAX"):
        rest = s[5:]
        return rest == "" or (rest[0] in "+-" and rest[1:].isdigit())
    return s in _SIGNALS


# -- config and manifest -----------------------------------------------------------------


def source_date_epoch(env: Mapping[str, str] | None = None) -> int | None:
    """``SOURCE_DATE_EPOCH`` as an int, None when unset; UsageError when malformed."""
    text = (os.environ if env is None else env).get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={text!r} is not a number of seconds")
    return int(text)


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def child_config(parent: Mapping[str, Any], diff_id: Digest | None, *, created: str,
                 created_by: str, comment: str | None = None, author: str | None = None,
                 changes: Sequence[Instruction] = ()) -> dict[str, Any]:
    """The parent's image config plus one layer (``diff_id``; None: an empty-layer
    history entry), a history entry and ``changes``; unknown fields kept."""
    doc: dict[str, Any] = json.loads(json.dumps(dict(parent)))
    doc["created"] = created
    if author is not None:
        doc["author"] = author
    if changes:
        doc["config"] = apply_changes(doc.get("config") or {}, changes)
    rootfs = doc.get("rootfs") or {"type": "layers"}
    rootfs.setdefault("type", "layers")
    if diff_id is not None:
        rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), str(diff_id)]
    else:
        rootfs.setdefault("diff_ids", [])
    doc["rootfs"] = rootfs
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if author is not None:
        entry["author"] = author
    if comment is not None:
        entry["comment"] = comment
    if diff_id is None:
        entry["empty_layer"] = True
    doc["history"] = [*(doc.get("history") or []), entry]
    return doc


def layer_media_type(parent: Manifest, compression: str = "gzip") -> str:
    """The new layer's media type, in the parent manifest's format."""
    if parent.is_docker:
        return mt.DOCKER_LAYER_GZIP if compression == "gzip" else mt.DOCKER_LAYER
    return mt.OCI_LAYER_GZIP if compression == "gzip" else mt.OCI_LAYER


def child_manifest(parent: Manifest, config: Descriptor, layer: Descriptor | None,
                   annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The parent's layers plus ``layer`` over ``config``, in the parent's format.

    A Docker schema 2 parent gives a Docker manifest (which has no annotations);
    anything else an OCI manifest.
    """
    layers = [x.to_dict() for x in parent.layers]
    if layer is not None:
        layers.append(layer.to_dict())
    if parent.is_docker:
        return {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
                "config": config.to_dict(), "layers": layers}
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": config.to_dict(), "layers": layers}
    if annotations:
        doc["annotations"] = dict(annotations)
    return doc


def config_media_type(parent: Manifest) -> str:
    return mt.DOCKER_CONFIG if parent.is_docker else mt.OCI_CONFIG


# -- into the store --------------------------------------------------------------------


class _Pipe:
    """An in-process pipe: one thread writes, another reads; either side may give up.

    A failing reader makes the writer's next write raise (no SIGPIPE, no
    deadlock); the writer's failure ends the reader's stream early.
    """

    BLOCK = 1 << 20

    def __init__(self) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._buf = bytearray()
        self._pending = b""
        self._eof = False
        self.reader_gone = threading.Event()

    # writer side
    def write(self, data: bytes) -> int:
        self._buf += data
        if len(self._buf) >= self.BLOCK:
            self._put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def _put(self, item: bytes | None) -> None:
        while True:
            if self.reader_gone.is_set():
                raise BrokenPipeError("the store stopped reading the layer")
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close_writer(self) -> None:
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()
        self._put(None)

    # reader side
    def read(self, n: int = -1) -> bytes:
        while not self._pending and not self._eof:
            item = self._q.get()
            if item is None:
                self._eof = True
            else:
                self._pending = item
        if n < 0 or n >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def stage_layer(staging: Any, write: Callable[[BinaryIO], LayerResult],
                parent_diff_ids: Sequence[Digest], lowers: Sequence[str] = ()) -> LayerResult:
    """Write a layer into ``staging`` (a :class:`libaci.store.Staging`) as a fetch would.

    ``write(out)`` writes the blob to ``out`` and returns its LayerResult
    (:func:`libaci.layerwrite.write_overlay_layer` and friends); it runs in
    a thread, streaming into ``staging.put_stream``, which stores and hashes
    the blob.  The blob is then extracted, checked against its diff ID and
    registered under its chain ID (``parent_diff_ids`` + this one), unless
    the store has that layer already.  ``lowers`` are the parent's layer
    directories, top first (hardlink targets in lower layers).
    """
    from libaci.unpack import extract_one

    pipe = _Pipe()
    box: dict[str, Any] = {}

    def produce() -> None:
        try:
            box["result"] = write(pipe)  # type: ignore[arg-type]
            pipe.close_writer()
        except BaseException as e:  # handed to the caller below
            box["error"] = e
            if not pipe.reader_gone.is_set():
                with contextlib.suppress(BrokenPipeError):
                    pipe.close_writer()

    thread = threading.Thread(target=produce, name="podkit-layer-writer", daemon=True)
    thread.start()
    try:
        digest, size = staging.put_stream(pipe, what="new layer")  # type: ignore[arg-type]
    except BaseException:
        pipe.reader_gone.set()
        thread.join()
        raise
    thread.join()
    if "error" in box:
        raise box["error"]
    result: LayerResult = box["result"]
    if (digest, size) != (result.digest, result.size):
        raise ImageError(f"new layer: the store read {size} bytes ({digest}), the writer "
                         f"wrote {result.size} ({result.digest})")
    chain = chain_ids([*parent_diff_ids, result.diff_id])[-1]
    if staging.store.layer_info(chain) is None and chain not in staging.layers:
        dest = os.path.join(staging.dir, f"layer-{chain.encoded}")
        extract_one(staging.blob_path(digest), dest, result.diff_id, list(lowers))
        staging.layers[chain] = dest
    return result


def stage_image(staging: Any, parent: Manifest, config_doc: Mapping[str, Any],
                layer: LayerResult | None, *,
                annotations: Mapping[str, str] | None = None) -> Descriptor:
    """Stage the config and manifest of a child of ``parent``; returns the manifest's
    descriptor (media type, digest = the image ID, size) for ``staging.commit``."""
    config_raw = dumps(dict(config_doc))
    config_digest = staging.put_bytes(config_raw, what="config")
    config_desc = Descriptor(config_media_type(parent), config_digest, len(config_raw))
    layer_desc = None
    if layer is not None:
        layer_desc = Descriptor(layer_media_type(parent, layer.compression), layer.digest,
                                layer.size)
    raw = dumps(child_manifest(parent, config_desc, layer_desc, annotations))
    digest = staging.put_bytes(raw, what="manifest")
    media = mt.DOCKER_MANIFEST if parent.is_docker else mt.OCI_MANIFEST
    return Descriptor(media, digest, len(raw))

