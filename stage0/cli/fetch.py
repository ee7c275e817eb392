"""podkit-fetch: bring images into the store and print their IDs."""

from __future__ import annotations

import argparse

from stage0.cli import common

PROG = "podkit-fetch"


def build() -> argparse.ArgumentParser:
    p = common.parser(PROG, "Fetch images into the store; print one image ID per source.",
                      epilog="sources: docker://[REGISTRY/]REPO[:TAG|@DIGEST] (or a bare "
                             "reference)\n"
                             "         oci:DIR[:REF]  oci-archive:FILE[:REF]  "
                             "docker-archive:FILE[:REF|@N] (@N: the Nth image)\n"
                             "         FILE.aci[.gz|.bz2|.xz|.zst]  file://PATH (an ACI)\n"
                             "         https://HOST/PATH.aci (HTTP caching; http:// needs "
                             "--insecure-options=http)\n"
                             "         appc:NAME[:VERSION][,LABEL=VALUE...] (appc discovery; "
                             "with labels, appc: is optional)\n"
                             "names: --name, else the REF (a bare tag T in DIR becomes "
                             "localhost/DIR:T), the archive's tags, or the ACI's name:version\n"
                             "example: podkit-fetch oci:/tmp/layout:latest | xargs podkit-inspect")
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="image sources (read from stdin when none or '-')")
    p.add_argument("--name", metavar="REF", help="name the image REF in the store")
    p.add_argument("--os", dest="os_name", metavar="OS", help="platform OS to pick from an index")
    p.add_argument("--arch", metavar="ARCH", help="architecture to pick from an index")
    p.add_argument("--variant", metavar="VARIANT", help="architecture variant (e.g. v7)")
    p.add_argument("--pull-policy", choices=("never", "new", "update"), default="update",
                   help="network sources: never (store only), new (fetch when missing), "
                        "update (check the registry or server; default)")
    p.add_argument("--extract", action="store_true",
                   help="extract the layers now (by default the first render or run does, "
                        "once per layer)")
    common.add_registry_options(p)
    common.add_trust_options(p)
    common.add_progress_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from libaci.platform import wanted
    from libaci.sources import FetchOptions, fetch

    sources = common.words_or_stdin(args.sources)
    if args.name and len(sources) > 1:
        from libaci.errors import UsageError

        raise UsageError("--name needs exactly one source")
    store = common.store_of(args)
    tls, credentials = common.registry_settings(args)
    progress = common.progress_sink(args)
    opts = FetchOptions(platform=wanted(args.os_name, args.arch, args.variant), name=args.name,
                        progress=progress, tls=tls,
                        credentials=credentials, pull_policy=args.pull_policy,
                        extract=args.extract,
                        **common.fetch_hooks(args, store, tls=tls, credentials=credentials,
                                             prog=PROG, sources=sources, say=progress.message))
    for src in sources:
        result = fetch(store, src, opts)
        common.emit(result.image_id)
    return 0


def main() -> int:
    return common.main(build(), run, exit_now=True)
