"""podkit-run: run an image in a new pod; this process becomes the pod's stage1."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-run"


def add_run_options(p: argparse.ArgumentParser, *, run: bool = True) -> None:
    """Options shared by podkit-run and podkit-prepare (rkt's names)."""
    p.add_argument("image", metavar="IMAGE", help="image name, ID or unique ID prefix; "
                   "fetched (docker://, a bare reference, oci:...) when missing")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="-- ARGS",
                   help="arguments that replace the image's Cmd (after --)")
    p.add_argument("--exec", metavar="PATH", help="run PATH instead of the image's Entrypoint "
                   "(its Cmd is dropped, as docker does for a new entrypoint)")
    p.add_argument("--name", metavar="NAME", help="the app's name (default: from the image)")
    p.add_argument("--set-env", action="append", default=[], metavar="K=V",
                   help="set an environment variable (repeatable; wins over the image's)")
    p.add_argument("--set-env-file", action="append", default=[], metavar="FILE",
                   help="K=V lines to set (# and ; start comments)")
    p.add_argument("--user", metavar="USER[:GROUP]",
                   help="user (name or UID) from the image's /etc/passwd, never the host's")
    p.add_argument("--group", metavar="GROUP", help="group (name or GID) from the image's "
                   "/etc/group")
    p.add_argument("--working-dir", metavar="DIR", help="working directory in the pod")
    p.add_argument("--hostname", metavar="NAME", help="the pod's hostname (default: the first "
                   "12 hex digits of its UUID)")
    p.add_argument("--volume", action="append", default=[], metavar="SPEC",
                   help="NAME,kind=host,source=PATH[,readOnly=true] | "
                        "NAME,kind=empty[,mode=0755,uid=0,gid=0] | /HOST:/POD[:ro]")
    p.add_argument("--mount", action="append", default=[], metavar="volume=NAME,target=PATH",
                   help="mount the volume NAME at PATH")
    p.add_argument("--readonly-rootfs", action="store_true", help="make the rootfs read-only")
    p.add_argument("--caps-retain", metavar="CAPS", help="exact capability bounding set "
                   "(comma-separated, CAP_ optional)")
    p.add_argument("--caps-remove", metavar="CAPS", default="",
                   help="capabilities to remove from the default set")
    p.add_argument("--no-new-privileges", action="store_true",
                   help="set no_new_privs: setuid binaries and file capabilities gain nothing")
    p.add_argument("--memory", metavar="SIZE", help="memory limit (512m, 1g, 128Mi)")
    p.add_argument("--cpu", metavar="CPU", help="CPU limit (500m, or 1.5 CPUs)")
    p.add_argument("--pids-limit", type=int, metavar="N", help="maximum number of processes")
    p.add_argument("--stage1", metavar="NAME|PATH", help="stage1 flavour (nspawn, fly, a "
                   "name from /etc/podkit/stage1.d) or folder; default nspawn")
    p.add_argument("--uuid-file-save", metavar="FILE", help="write the pod's UUID to FILE")
    p.add_argument("--ready", choices=("pod", "app"), default="pod",
                   help="when the pod is ready (READY=1 to $NOTIFY_SOCKET; what podkit-status "
                        "waits for): pod (it is up; default) or app (the app sends READY=1 "
                        "to its $NOTIFY_SOCKET)")
    p.add_argument("--pull-policy", choices=("never", "new", "update"), default="new",
                   help="fetch the image: never, new (when missing; default), update")
    common.add_registry_options(p)
    common.add_trust_options(p)
    if run:
        p.add_argument("--net", choices=("host", "none"), default="host",
                       help="host (the caller's network; default) or none (loopback only)")
        p.add_argument("-i", "--interactive", action="store_true",
                       help="give the app the caller's terminal (-t -i, as docker run)")
        p.add_argument("-t", "--tty", action="store_true", help="same as --interactive")


def run_options(args: argparse.Namespace, *, net: str = "host", interactive: bool = False):  # type: ignore[no-untyped-def]
    from stage0.podspec import RunOptions, parse_caps

    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    return RunOptions(
        args=tuple(rest) if rest else None, exec=args.exec, name=args.name,
        env=tuple(args.set_env), env_files=tuple(args.set_env_file), user=args.user,
        group=args.group, working_dir=args.working_dir, hostname=args.hostname,
        volumes=tuple(args.volume), mounts=tuple(args.mount),
        readonly_rootfs=args.readonly_rootfs,
        caps_retain=parse_caps(args.caps_retain, "--caps-retain")
        if args.caps_retain is not None else None,
        caps_remove=parse_caps(args.caps_remove, "--caps-remove"),
        no_new_privileges=args.no_new_privileges, memory=args.memory, cpu=args.cpu,
        pids_limit=args.pids_limit, net=net, interactive=interactive, ready=args.ready)


def image_record(args: argparse.Namespace, store):  # type: ignore[no-untyped-def]
    """The image in the store, fetched first when missing and the pull policy allows."""
    from libaci.errors import NotFoundError

    if args.pull_policy != "update" and store.exists():
        try:
            return store.resolve(args.image)
        except NotFoundError:
            if args.pull_policy == "never":
                raise
    from libaci.sources import FetchOptions, classify, fetch

    try:
        classify(args.image)
    except Exception:
        return store.resolve(args.image)  # not a source either: say it is not in the store
    tls, credentials = common.registry_settings(args)
    progress = common.progress_sink(args)
    import os
    import sys

    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else PROG
    hooks = common.fetch_hooks(args, store, tls=tls, credentials=credentials, prog=prog,
                               sources=[args.image], say=progress.message)
    got = fetch(store, args.image, FetchOptions(progress=progress, tls=tls,
                                                credentials=credentials,
                                                pull_policy=args.pull_policy, **hooks))
    return store.resolve(got.image_id)


def prepare_pod(args: argparse.Namespace, opts):  # type: ignore[no-untyped-def]
    from stage0 import launch, stage1

    if args.pids_limit is not None and args.pids_limit < 1:
        from libaci.errors import UsageError

        raise UsageError("--pids-limit must be at least 1")
    s1 = stage1.select(args.stage1)
    store = common.store_of(args)
    rec = image_record(args, store)
    uuid, pod_dir, fd = launch.prepare(store, rec, opts, s1)
    launch.save_uuid(args.uuid_file_save, uuid)
    return store, uuid, pod_dir, fd


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Run IMAGE in a new pod, as 'docker run' and 'rkt run' do: the app's "
                            "exit status\nis this command's (128+N after signal N).",
                      epilog="examples: podkit-run -t -i debian /bin/bash\n"
                             "          podkit-run --memory 256m --net=none busybox -- "
                             "sh -c 'echo hi'\n"
                             "          podkit-fetch docker://busybox | xargs -I{} "
                             "podkit-run {} -- true")
    add_run_options(p)
    p.set_defaults(progress="auto")
    return p


def run(args: argparse.Namespace) -> int:
    from stage0 import launch

    opts = run_options(args, net=args.net, interactive=args.interactive or args.tty)
    store, uuid, pod_dir, fd = prepare_pod(args, opts)
    from stage0.pods import Pods

    pod_dir = Pods(store.path("pods")).move(uuid, "prepare", "run")
    launch.exec_run(pod_dir, uuid, fd, debug=args.debug)  # does not return


def main() -> int:
    return common.main(build(), run)
