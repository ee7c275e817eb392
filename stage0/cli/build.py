"""podkit-build: build an image from a Dockerfile; print its ID."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from stage0.cli import common

PROG = "podkit-build"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Build an image from the Dockerfile in CONTEXT (or -f FILE) as "
                            "BuildKit would, each RUN\nin a fresh single-use pod, with a step "
                            "cache in the store.  Prints the image ID;\nwith -t, also names it.  "
                            "Progress goes to stderr.",
                      epilog="examples: podkit-build -t app:1 .\n"
                             "          podkit-build --secret id=token,src=$HOME/.token -q . | "
                             "xargs podkit-run\n"
                             "          SOURCE_DATE_EPOCH=0 podkit-build --no-cache .")
    p.add_argument("context", metavar="CONTEXT", help="the build context directory")
    p.add_argument("-f", "--file", metavar="FILE", help="the Dockerfile (default CONTEXT/"
                   "Dockerfile, else CONTEXT/Containerfile; - reads stdin)")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME",
                   help="name the image NAME[:TAG] (repeatable)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V",
                   help="set build argument K (K alone: from the environment; repeatable)")
    p.add_argument("--target", metavar="STAGE", help="build this stage (default: the last)")
    p.add_argument("--no-cache", action="store_true",
                   help="run every step again (the results still go into the cache)")
    p.add_argument("--network", choices=("host", "none"), default="host",
                   help="network of RUN steps without --network: host (default) or none")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE",
                   help="a secret that RUN steps may mount (type=secret,id=ID): the file "
                        "FILE, or env=VAR (repeatable)")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="target platform: base images and TARGET* arguments (default the host)")
    p.add_argument("--stage1", metavar="NAME|PATH", help="stage1 of the RUN pods (nspawn, fly, a "
                   "name from /etc/podkit/stage1.d, or a folder; default nspawn)")
    p.add_argument("--timestamp", metavar="SECONDS", type=_seconds,
                   help="date of the image and its history, and latest file time (default "
                        "$SOURCE_DATE_EPOCH, else now and the files' own)")
    p.add_argument("--watch", action="store_true",
                   help="after the build, rebuild whenever the context changes, printing each "
                        "new image ID, until interrupted")
    common.add_registry_options(p)
    common.add_trust_options(p)
    p.add_argument("--progress", choices=("auto", "plain", "tty", "none"), default="auto",
                   help="the step log on stderr (BuildKit's plain format): auto, plain and tty "
                        "show it (default), none shows only warnings and errors")
    p.add_argument("-q", "--quiet", dest="progress", action="store_const", const="none",
                   help="no step log (same as --progress=none)")
    return p


def _seconds(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return int(text)


def parse_build_args(values: list[str]) -> dict[str, str]:
    from libaci.errors import UsageError

    out: dict[str, str] = {}
    for v in values:
        key, eq, value = v.partition("=")
        if not key:
            raise UsageError(f"--build-arg {v!r}: expected K=V")
        if not eq:
            if key not in os.environ:
                continue  # as docker: an unset variable is no build argument
            value = os.environ[key]
        out[key] = value
    return out


def parse_secrets(values: list[str]) -> dict[str, bytes]:
    """``--secret id=ID,src=FILE`` / ``id=ID,env=VAR`` / ``id=ID`` (the variable ID)."""
    from libaci.errors import UsageError

    out: dict[str, bytes] = {}
    for v in values:
        fields: dict[str, str] = {}
        for part in v.split(","):
            k, eq, val = part.partition("=")
            k = k.strip().lower()
            if not eq or k not in ("id", "src", "source", "env", "type"):
                raise UsageError(f"--secret {v!r}: expected id=ID,src=FILE or id=ID,env=VAR")
            fields["src" if k == "source" else k] = val
        sid = fields.get("id") or ""
        if not sid:
            raise UsageError(f"--secret {v!r}: id=ID is missing")
        src, env = fields.get("src"), fields.get("env")
        if fields.get("type") == "env" and env is None:
            env, src = src or sid, None
        if src is not None:
            try:
                with open(src, "rb") as f:
                    out[sid] = f.read()
            except OSError as e:
                raise UsageError(f"--secret id={sid}: cannot read {src}: "
                                 f"{e.strerror}") from None
        else:
            var = env or sid
            if var not in os.environ:
                raise UsageError(f"--secret id={sid}: the environment has no {var}")
            out[sid] = os.environb[var.encode()]
    return out


def _resolver(args: argparse.Namespace, store, progress):  # type: ignore[no-untyped-def]
    """Images by name from the store, fetched (and verified per policy) when missing."""
    def resolve(ref: str, wanted):  # type: ignore[no-untyped-def]
        from libaci.errors import NotFoundError

        try:
            return store.resolve(ref)
        except NotFoundError:
            pass
        from libaci.platform import host_platform
        from libaci.sources import FetchOptions, fetch
        tls, credentials = common.registry_settings(args)
        hooks = common.fetch_hooks(args, store, tls=tls, credentials=credentials, prog=PROG,
                                   sources=[ref], say=progress.message)
        got = fetch(store, ref, FetchOptions(platform=wanted or host_platform(),
                                             progress=progress, tls=tls,
                                             credentials=credentials, pull_policy="new",
                                             **hooks))
        return store.resolve(got.image_id)

    return resolve


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from libaci.imagewrite import source_date_epoch
    from stage0.build import Builder, BuildLog, BuildRequest

    signal.signal(signal.SIGTERM, _interrupt)
    store = common.store_of(args)
    epoch = args.timestamp if args.timestamp is not None else source_date_epoch()
    tls, credentials = common.registry_settings(args)
    stdin_text = None
    if args.file == "-":
        stdin_text = sys.stdin.buffer.read()
    progress = common.progress_sink(args)
    req = BuildRequest(
        context=args.context, dockerfile=args.file, stdin_dockerfile=stdin_text,
        tags=tuple(args.tag), build_args=parse_build_args(args.build_arg),
        target=args.target, no_cache=args.no_cache, network=args.network,
        secrets=parse_secrets(args.secret), platform=args.platform, stage1=args.stage1,
        epoch=epoch, resolve_image=_resolver(args, store, progress), tls=tls,
        credentials=credentials,
        insecure_http="http" in common.insecure_options(args))
    log = BuildLog(sys.stderr, enabled=args.progress != "none", prog=PROG)

    def once() -> str:
        return Builder(store, req, log).build().id

    if not args.watch:
        common.emit(once())
        return 0
    Builder(store, req, log).prepare()  # bad input is an error now, not a watch
    from stage0.build.context import Context
    from stage0.build.watch import watch

    def fingerprint() -> object:
        try:
            return Context.open(args.context, args.file if args.file != "-" else None
                                ).fingerprint()
        except Exception as e:
            return ("error", str(e))

    return watch(once, fingerprint, emit=common.emit, prog=PROG)


def main() -> int:
    return common.main(build(), run)
