"""The build engine: stages, steps, layers, the cache and the final image.

:class:`Builder` reads the context and the Dockerfile
(:mod:`libaci.dockerfile` parses, plans and dispatches), then builds the
target stage, and on demand the stages it starts from, copies from or
mounts (only those), each from ``scratch``, an earlier stage or an image
in the store (fetched when missing, through the caller's fetch path and its
verification policy).  Per instruction:

* metadata (ENV, LABEL, USER, CMD, ...) changes the config and adds a
  history entry with ``empty_layer``;
* RUN runs in a single-use pod (:mod:`stage0.build.runstep`) with its
  mounts (:mod:`stage0.build.runmounts`: secrets bound read-only for that
  step only, cache directories kept in the store, bind mounts of the context
  or of another stage); the pod's upper directory, less the stage1's
  placeholders (podkit-commit's rule), is the layer;
* COPY, ADD and WORKDIR write into an overlay of the layers so far
  (:mod:`stage0.build.fsops`, :mod:`stage0.build.copystep`);
* a step that changes nothing adds no layer (``empty_layer: true``, as
  BuildKit drops empty layers).

Every layer step is looked up in the step cache first (:mod:`.cache`).
Layers go into the store as they are made (blob and extracted directory),
so the cache outlives a failed build; the image itself (config, manifest,
names) is published only when the whole build succeeded.

Times: with ``SOURCE_DATE_EPOCH`` (or ``--timestamp``) every new history
entry and the image are dated then and every file's mtime is clamped to it,
so that two builds of the same context give the same image digest.  Without
it a step is dated when it ran, a cached step keeps its original date, and
the image takes the date of its last entry: an unchanged rebuild gives the
same image ID.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from libaci import mediatypes as mt
from libaci.digest import Digest, chain_ids
from libaci.dockerfile import BuildOptions, load, plan
from libaci.dockerfile._go import quote
from libaci.dockerfile.dispatch import HistoryEntry, ImageConfig, StageState, Step
from libaci.dockerfile.errors import DockerfileError
from libaci.dockerfile.instructions import Add, Copy, Instruction, Workdir
from libaci.dockerfile.plan import BuildPlan, StagePlan, host_platform, parse_platform
from libaci.errors import ImageError, PodkitError, UsageError
from libaci.imagewrite import rfc3339, stage_layer
from libaci.layerwrite import write_overlay_layer
from libaci.oci import Descriptor, dumps
from libaci.store import ANN_CREATED, ANN_SOURCE, ImageRecord, Store
from stage0 import commit, linux, podspec
from stage0 import stage1 as stage1mod
from stage0.build import cache as cachemod
from stage0.build import copystep, fsops
from stage0.build.cache import BuildCache, Layer
from stage0.build.context import Context
from stage0.build.errors import BuildError
from stage0.build.log import BuildLog
from stage0.build.runmounts import RunMounts
from stage0.build.runstep import single_use_pod

HOSTNAME = "buildkitsandbox"  # what BuildKit calls its RUN containers

ImageResolver = Callable[[str, Any], ImageRecord]  # (reference, libaci.platform.Wanted|None)


@attrs.frozen
class BuildRequest:
    """What podkit-build was asked to do."""

    context: str
    dockerfile: str | None = None  # a path, "-" for stdin_dockerfile
    stdin_dockerfile: bytes | None = None
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    target: str | None = None
    no_cache: bool = False
    network: str = "host"
    secrets: Mapping[str, bytes] = attrs.field(factory=dict, converter=dict)
    platform: str | None = None
    stage1: str | None = None
    epoch: int | None = None
    resolve_image: ImageResolver | None = None  # finds or fetches a base image
    tls: Any = None  # libaci.registry.client.TLSOptions for ADD <url>
    credentials: Any = None
    insecure_http: bool = False


@attrs.define
class StageBuild:
    """A stage while (and after) it is built."""

    index: int
    label: str
    state: StageState
    layers: list[Layer]
    history: list[dict[str, Any]]
    platform: dict[str, str]

    def layer_paths(self) -> list[str]:
        return [x.path for x in self.layers]


_namespace_done = False


def private_namespace() -> None:
    """podkit-build's own mount namespace: its overlays vanish with it, whatever happens."""
    global _namespace_done
    if not _namespace_done:
        linux.private_mount_namespace()
        _namespace_done = True


class Builder:
    """One build of one request against one store."""

    def __init__(self, store: Store, req: BuildRequest, log: BuildLog) -> None:
        self.store = store
        self.req = req
        self.log = log
        self.cache = BuildCache(store, read=not req.no_cache)
        self.epoch = req.epoch
        self.built: dict[int, StageBuild] = {}
        self.views: dict[str, str] = {}
        self.images: dict[str, ImageRecord] = {}
        self.runmounts = RunMounts(self)

    # -- the whole build ------------------------------------------------------------------

    def prepare(self) -> None:
        """Read and check everything that needs no store and no root: context,
        Dockerfile, plan, names, stage1, secrets (bad input fails here, exit 2/4)."""
        req = self.req
        self.ctx = Context.open(req.context, req.dockerfile, req.stdin_dockerfile)
        df = load(self.ctx.text, filename=self.ctx.display)
        target_platform = parse_platform(req.platform) if req.platform else None
        self.plan: BuildPlan = plan(df, BuildOptions(build_args=req.build_args,
                                                     target=req.target,
                                                     target_platform=target_platform))
        for w in df.warnings:  # libaci.dockerfile.parser.ParseWarning
            self.log.warn(f"{df.filename}:{w.line}: {w.short}")
        for text in self.plan.warnings:
            self.log.warn(text)
        unused = self.plan.unused_build_args()
        if unused:
            self.log.warn(f"one or more build args were not consumed: {', '.join(unused)}")
        self.names = [commit.normalize_name(t) for t in req.tags]
        self.stage1 = stage1mod.select(req.stage1)
        if req.network not in ("host", "none"):
            raise UsageError(f"--network={req.network}: use host or none")

    def build(self) -> ImageRecord:
        """Build the target; the new image, published under the requested names."""
        self.prepare()
        if os.geteuid() != 0:
            raise UsageError("podkit-build needs root (it mounts overlays and runs pods)")
        private_namespace()
        with self.store.writing() as staging:
            self.staging = staging
            self.work = tempfile.mkdtemp(prefix="build-", dir=staging.dir)
            self.empty = os.path.join(self.work, "empty")
            os.mkdir(self.empty, 0o755)
            self.mounts = fsops.Mounts(self.work)
            try:
                final = self.stage(self.plan.target)
                desc = self._write_image(final)
                staging.commit(desc, self.names)
            finally:
                self.mounts.close()
        return ImageRecord(desc, tuple(self.names))

    # -- stages ---------------------------------------------------------------------------

    def stage(self, index: int) -> StageBuild:
        """Stage ``index``, built once (with what it needs first)."""
        if index in self.built:
            return self.built[index]
        sp = self.plan.stages[index]
        try:
            sb, sp = self._base(sp)
        except DockerfileError:
            raise
        except PodkitError as e:
            fn = self.plan.dockerfile.filename
            if _is_located(e, fn):
                raise
            raise _located(e, f"{fn}:{sp.line}: FROM {sp.base.name}") from None
        total = len(sp.commands) + 1
        n = self.log.step(f"[{sb.label} 1/{total}] FROM {sp.base.reference or sp.base.name}")
        self.log.done(n)
        for k, cmd in enumerate(sp.commands, start=2):
            self._step(sb, cmd, f"[{sb.label} {k}/{total}]")
        self.built[index] = sb
        return sb

    def _base(self, sp: StagePlan) -> tuple[StageBuild, StagePlan]:
        label = sp.name or f"stage-{sp.index}"
        base = sp.base
        if base.kind == "stage" and base.stage is not None:
            prev = self.stage(base.stage)
            state = StageState(self.plan, sp.index, base=prev.state)
            return StageBuild(sp.index, label, state, list(prev.layers),
                              [dict(h) for h in prev.history], dict(prev.platform)), sp
        platform = sp.platform or self.plan.options.target_platform or host_platform()
        if base.kind == "scratch":
            plat = {"architecture": platform.architecture, "os": platform.os}
            if platform.variant:
                plat["variant"] = platform.variant
            state = StageState(self.plan, sp.index, base_config=ImageConfig())
            return StageBuild(sp.index, label, state, [], [], plat), sp
        rec = self._image(base.name, platform)
        manifest = self.store.manifest(rec.descriptor.digest)
        doc = self.store.config(manifest).doc
        triggers = (doc.get("config") or {}).get("OnBuild") or ()
        if triggers:
            self.plan = self.plan.with_image_triggers(sp.index, [str(t) for t in triggers])
            sp = self.plan.stages[sp.index]
        state = StageState(self.plan, sp.index,
                           base_config=ImageConfig.from_dict(doc.get("config")),
                           author=str(doc.get("author") or ""))
        plat = {k: str(doc[k]) for k in ("architecture", "os", "variant") if doc.get(k)}
        layers = self._image_layers(rec)
        history = [dict(h) for h in doc.get("history") or () if isinstance(h, dict)]
        return StageBuild(sp.index, label, state, layers, history, plat), sp

    def _image(self, name: str, platform: Any) -> ImageRecord:
        if name not in self.images:
            wanted = None
            if platform is not None:
                from libaci.platform import Wanted

                wanted = Wanted(platform.os, platform.architecture, platform.variant or None)
            if self.req.resolve_image is not None:
                rec = self.req.resolve_image(name, wanted)
            else:
                rec = self.store.resolve(name)
            if rec.is_aci:
                raise ImageError(f"{name} is an appc image (ACI); builds start from OCI or "
                                 "Docker images")
            self.images[name] = rec
        return self.images[name]

    def _image_layers(self, rec: ImageRecord) -> list[Layer]:
        manifest = self.store.manifest(rec.descriptor.digest)
        diff_ids = self.store.config(manifest).diff_ids
        infos = self.store.extract_layers(rec)
        chains = chain_ids(diff_ids)
        return [Layer(diff, desc.digest, desc.size, desc.media_type, chain, info.path)
                for desc, diff, chain, info in zip(manifest.layers, diff_ids, chains, infos,
                                                   strict=True)]

    def _source_root(self, name: str) -> str:
        """The root filesystem of ``--from=name``: a stage (name or index) or an image,
        mounted read-only once."""
        index = None
        if name.isdigit():
            index = int(name)
        else:
            for s in self.plan.stages:
                if s.name is not None and s.name == name.lower():
                    index = s.index
        if index is not None:
            layers = self.stage(index).layer_paths()
        else:
            layers = [x.path for x in self._image_layers(self._image(name, None))]
        key = "\n".join(layers)
        if key not in self.views:
            self.views[key] = self.mounts.overlay(layers, writable=False)[0]
        return self.views[key]

    def _source_chain(self, name: str) -> str:
        if name.isdigit() or any(s.name == name.lower() for s in self.plan.stages):
            index = int(name) if name.isdigit() else self.plan.stage(name).index
            layers = self.stage(index).layers
        else:
            layers = self._image_layers(self._image(name, None))
        return str(layers[-1].chain_id) if layers else ""

    # -- steps ------------------------------------------------------------------------------

    def _step(self, sb: StageBuild, cmd: Instruction, label: str) -> None:
        fn = self.plan.dockerfile.filename
        step = sb.state.apply(cmd)
        where = f"{fn}:{cmd.line}" if cmd.line else fn
        ins = step.instruction
        try:
            if step.run is not None:
                self._run(sb, step, label, where)
            elif isinstance(ins, Copy | Add):
                self._copy(sb, step, label)
            elif isinstance(ins, Workdir) and step.mkdir:
                self._workdir(sb, step, label)
            else:  # metadata: dated like the steps around it, or SOURCE_DATE_EPOCH
                self._record(sb, step.history, None,
                             self._now() if self.epoch is not None else None)
        except DockerfileError as e:
            raise e.at(cmd.line or None).named(fn) from None
        except BuildError as e:
            if _is_located(e, fn):
                raise
            raise BuildError(f"{where}: {label} {_short(cmd)}: {e}") from None
        except PodkitError as e:
            if _is_located(e, fn):
                raise
            raise _located(e, f"{where}: {label} {_short(cmd)}") from None

    def _record(self, sb: StageBuild, entry: HistoryEntry | None, layer: Layer | None,
                created: str | None) -> None:
        if layer is not None:
            sb.layers.append(layer)
        if entry is None:
            return
        h: dict[str, Any] = {"created": created, "created_by": entry.created_by,
                             "comment": entry.comment}
        if layer is None:
            h["empty_layer"] = True
        sb.history.append(h)

    def _now(self) -> str:
        return rfc3339(self.epoch if self.epoch is not None else time.time())

    def _parent(self, sb: StageBuild) -> str:
        return cachemod.parent_key(sb.layers, sb.state.config.to_dict(),
                                   json.dumps(sb.platform, sort_keys=True))

    def _cached(self, sb: StageBuild, step: Step, k: str, n: int) -> bool:
        hit = self.cache.get(k, sb.layers)
        if hit is None:
            return False
        self.log.cached(n)
        created = self._now() if self.epoch is not None else hit.created
        self._record(sb, step.history, hit.layer, created)
        return True

    def _finish_step(self, sb: StageBuild, step: Step, k: str, layer: Layer | None,
                     n: int) -> None:
        created = self._now()
        self.cache.put(k, layer, created)
        self._record(sb, step.history, layer, created)
        self.log.done(n)

    # WORKDIR --------------------------------------------------------------------------------

    def _workdir(self, sb: StageBuild, step: Step, label: str) -> None:
        assert step.mkdir is not None
        owner = (0, 0)
        if step.user:
            from stage0.userdb import resolve

            user, _, group = step.user.partition(":")
            ident = resolve(sb.layer_paths() or [self.empty], user, group or None)
            owner = (ident.uid, ident.gid)
        n = self.log.step(f"{label} WORKDIR {step.mkdir}")
        k = cachemod.key({"parent": self._parent(sb), "op": "workdir", "path": step.mkdir,
                          "owner": list(owner)})
        if self._cached(sb, step, k, n):
            return
        merged, upper = self.mounts.overlay(sb.layer_paths())
        try:
            fsops.mkdir_workdir(merged, step.mkdir, owner)
        finally:
            self.mounts.release(merged)
        layer = self._layer(sb, upper)
        fsops.remove_tree(os.path.dirname(upper))
        self._finish_step(sb, step, k, layer, n)

    # COPY / ADD -----------------------------------------------------------------------------

    def _copy(self, sb: StageBuild, step: Step, label: str) -> None:
        c = step.instruction
        assert isinstance(c, Copy | Add) and step.dest is not None
        n = self.log.step(f"{label} {' '.join(c.original.split())}")
        merged, upper = self.mounts.overlay(sb.layer_paths())
        try:
            job = copystep.plan_copy(
                c, step.dest, merged, context=lambda: (self.ctx.root, self.ctx.tree()),
                stage_root=self._source_root,
                download=lambda url, checksum: copystep.download(
                    url, checksum, self.work, tls=self.req.tls,
                    credentials=self.req.credentials, allow_http=self.req.insecure_http))
            k = cachemod.key({"parent": self._parent(sb),
                              "op": "add" if isinstance(c, Add) else "copy",
                              "chown": c.chown, "chmod": c.chmod, "entries": job.key})
            if self._cached(sb, step, k, n):
                return
            owner = fsops.chown_ids(c.chown, sb.layer_paths()) if c.chown else None
            mtime = (self.epoch if self.epoch is not None else int(time.time())) * 10**9
            copystep.run_copy(job, merged, owner=owner, c=c, work=self.work, mtime_ns=mtime)
        finally:
            self.mounts.release(merged)
        layer = self._layer(sb, upper)
        fsops.remove_tree(os.path.dirname(upper))
        self._finish_step(sb, step, k, layer, n)

    # RUN --------------------------------------------------------------------------------------

    def _run(self, sb: StageBuild, step: Step, label: str, where: str) -> None:
        spec = step.run
        assert spec is not None
        network = self.req.network if spec.network == "default" else spec.network
        text = " ".join(spec.args)
        n = self.log.step(f"{label} {' '.join(step.instruction.original.split())}")
        if getattr(step.instruction, "devices", ()):
            raise BuildError("RUN --device is not supported")
        mounts = [self.runmounts.key(spec, m) for m in spec.mounts]
        k = cachemod.key({
            "parent": self._parent(sb), "op": "run", "args": list(spec.args),
            "env": list(spec.env), "user": spec.user, "workdir": spec.workdir,
            "network": network, "security": spec.security, "mounts": mounts,
            "script": [spec.script.name, spec.script.data] if spec.script else None})
        if self._cached(sb, step, k, n):
            return
        with contextlib.ExitStack() as stack:
            volumes, targets, env = self.runmounts.setup(spec, stack)
            user, _, group = spec.user.partition(":")
            if not group and user.isdigit():
                from stage0.userdb import resolve

                # a numeric USER that /etc/passwd does not know runs with gid 0, as
                # BuildKit's (runc's GetExecUser) does; podkit-run would use uid:uid
                if not resolve(sb.layer_paths() or [self.empty], user, None).name:
                    group = "0"
            pairs = [tuple(e.split("=", 1)) if "=" in e else (e, "")
                     for e in (*spec.env, *spec.proxy_env)]
            app = podspec.ImageApp(entrypoint=tuple(spec.args),
                                   env=tuple((k2, v) for k2, v in pairs) + tuple(env),
                                   working_dir=spec.workdir, user=user, group=group)
            opts = podspec.RunOptions(
                name="build", hostname=HOSTNAME, net=network, volumes=tuple(volumes),
                mounts=tuple(targets),
                caps_retain=podspec.ALL_CAPS if spec.security == "insecure" else None)
            image_id = str(sb.layers[-1].chain_id) if sb.layers else str(Digest.of_bytes(b""))
            with single_use_pod(self.store, self.stage1, sb.layer_paths() or [self.empty],
                                app, opts, image_id=image_id) as pod:
                code = pod.run(self.log, n)
                if code != 0:
                    self.log.failed_output()
                    raise BuildError(f"{where}: {label} RUN failed: process {quote(text)} "
                                     f"did not complete successfully: exit code: {code}")
                layer = self._layer(sb, pod.upper, pod.manifest())
        self._finish_step(sb, step, k, layer, n)

    # layers and the image ---------------------------------------------------------------------

    def _layer(self, sb: StageBuild, upper: str, pod: dict[str, Any] | None = None
               ) -> Layer | None:
        """The upper directory ``upper`` as a layer over the stage's (None when empty)."""
        paths = sb.layer_paths()
        skip: set[str] = set()
        if pod is not None:
            files, dirs = commit.placeholder_candidates(pod)
            skip = commit.placeholders(upper, paths, files, dirs)
        root_st = os.lstat(upper)
        base_st = commit.lookup(paths, "") if paths else None
        root_entry = base_st is not None and (root_st.st_mode, root_st.st_uid,
                                              root_st.st_gid) != (base_st.st_mode,
                                                                  base_st.st_uid,
                                                                  base_st.st_gid)
        if not root_entry and all(name in skip for name in os.listdir(upper)):
            return None
        epoch = self.epoch

        def write(out: Any) -> Any:
            return write_overlay_layer(out, upper, skip=lambda rel, _st: rel in skip,
                                       root_entry=root_entry, epoch=epoch)

        result = stage_layer(self.staging, write, [x.diff_id for x in sb.layers], paths[::-1])
        self.staging.commit(None, [])  # blob and layer into the store now: the cache needs them
        self.staging.blobs.clear()
        self.staging.layers.clear()
        chain = chain_ids([*(x.diff_id for x in sb.layers), result.diff_id])[-1]
        info = self.store.layer_info(chain)
        if info is None:
            raise BuildError(f"layer {chain} vanished from the store")
        return Layer(result.diff_id, result.digest, result.size, mt.OCI_LAYER_GZIP, chain,
                     info.path)

    def _write_image(self, sb: StageBuild) -> Descriptor:
        history = _dated(sb.history, self._now())
        created = self._now() if self.epoch is not None else \
            max((h["created"] for h in history if h.get("created")), default=self._now())
        doc: dict[str, Any] = {"created": created}
        if sb.state.author:
            doc["author"] = sb.state.author
        doc.update(sb.platform)
        config = sb.state.config.to_dict()
        for key in ("Cmd", "Entrypoint"):  # `CMD []`: left out, as Go's omitempty does
            if config.get(key) == []:
                del config[key]
        doc["config"] = config
        doc["rootfs"] = {"type": "layers", "diff_ids": [str(x.diff_id) for x in sb.layers]}
        doc["history"] = history
        raw = dumps(doc)
        config = self.staging.put_bytes(raw, what="config")
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": str(config),
                               "size": len(raw)},
                    "layers": [x.descriptor() for x in sb.layers]}
        mraw = dumps(manifest)
        digest = self.staging.put_bytes(mraw, what="manifest")
        return Descriptor(mt.OCI_MANIFEST, digest, len(mraw)).with_annotations({
            ANN_CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            ANN_SOURCE: f"build:{self.ctx.root}"})


def _dated(history: list[dict[str, Any]], fallback: str) -> list[dict[str, Any]]:
    """History with a date on every entry: metadata steps take the date of the step
    before them (or after them, at the start), so the dates only move with layers."""
    out = [dict(h) for h in history]
    last: str | None = None
    for h in out:
        if h.get("created"):
            last = h["created"]
        elif last is not None:
            h["created"] = last
    nxt: str | None = None
    for h in reversed(out):
        if h.get("created"):
            nxt = h["created"]
        else:
            h["created"] = nxt or fallback
    ordered = []
    for h in out:
        entry = {"created": h.pop("created")}
        entry.update(h)
        ordered.append(entry)
    return ordered


def _short(cmd: Instruction) -> str:
    text = " ".join(cmd.original.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _is_located(e: Exception, fn: str) -> bool:
    """Whether the error names its place in the Dockerfile already: a step of a stage
    built on demand (FROM, COPY --from, RUN --mount=from) failed, and that step is the
    place to report, as BuildKit does, not the step that needed the stage."""
    return str(e).startswith(f"{fn}:")


def _located(e: PodkitError, prefix: str) -> PodkitError:
    try:
        new = type(e)(f"{prefix}: {e}")
    except TypeError:
        new = BuildError(f"{prefix}: {e}")
    return new
