"""``appc:NAME[:VERSION][,LABEL=VALUE...]``: an ACI found by appc discovery, as rkt did.

The name gets the host's ``os`` and ``arch`` labels unless it has them.  The
discovery pages (:mod:`libaci.discovery`) are asked for over HTTPS, from the
full name up to its host, and the first page with a matching template names
the image URL; the first endpoint is used, as rkt does.  The ACI is then
fetched like any URL (:mod:`libaci.sources.aciurl`, HTTP caching included),
and before it is stored its manifest must carry the discovery name and every
label asked for (an absent label may have any value), as rkt's validator
checks.  Plain HTTP (after HTTPS failed) only with ``--insecure-options=http``.

Pull policies: ``never`` and ``new`` look for a stored ACI with that name and
labels first (the newest import wins); ``update`` always runs discovery.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from libaci import discovery
from libaci.appc import ImageManifest, parse_image_manifest
from libaci.digest import Digest
from libaci.errors import (
    AuthError,
    FetchError,
    ImageError,
    NotFoundError,
    PodkitError,
    UsageError,
)
from libaci.reference import AppcName, parse_appc_name
from libaci.sources import Fetched, FetchOptions
from libaci.store import ANN_ACI_MANIFEST, ANN_CREATED, ImageRecord, Store

if TYPE_CHECKING:
    from libaci.http import HttpClient

MAX_PAGE = 1 << 20  # a discovery page is small HTML
T = TypeVar("T")


def requested(rest: str) -> AppcName:
    """The appc name of a source, with the host's os/arch labels when absent."""
    u = os.uname()
    return discovery.with_default_labels(parse_appc_name(rest), u.sysname, u.machine)


def _labels(m: ImageManifest) -> dict[str, str]:
    return {x.name: x.value for x in (m.labels or ())}


def find_stored(store: Store, app: AppcName) -> ImageRecord | None:
    """The newest stored ACI whose manifest matches ``app`` (name and labels)."""
    hits: list[ImageRecord] = []
    for rec in store.images():
        ann = rec.descriptor.annotations.get(ANN_ACI_MANIFEST)
        if not rec.is_aci or not ann:
            continue
        try:
            m = parse_image_manifest(store.read_blob(Digest.parse(ann)), validate=False)
        except PodkitError:
            continue
        if discovery.mismatch(app, m.name, _labels(m)) is None \
                and store.layer_info(rec.descriptor.digest) is not None:
            hits.append(rec)
    if not hits:
        return None
    return max(hits, key=lambda r: r.descriptor.annotations.get(ANN_CREATED, ""))


def _page(client: HttpClient, prefix: str, allow_http: bool) -> tuple[str, bytes]:
    """(URL, body) of ``prefix``'s discovery page: HTTPS, then HTTP if allowed.

    When both fail, the error of the last one is raised with both messages.
    """
    from libaci.http import read_capped

    errors: list[PodkitError] = []
    for scheme in ("https", "http") if allow_http else ("https",):
        url = discovery.discovery_url(prefix, scheme)
        try:
            with client.get(url, what=url) as resp:
                return url, read_capped(resp, MAX_PAGE, url)
        except (FetchError, NotFoundError, AuthError, UsageError) as e:
            errors.append(e)
    raise type(errors[-1])("; ".join(str(e) for e in errors))


def _walk(client: HttpClient, app: AppcName, allow_http: bool, noun: str, tag: str,
          pick: Callable[[list[discovery.MetaTag]], list[T]]) -> tuple[str, list[T]]:
    """(page URL, items) of the first page, from the full name up, where ``pick``
    finds something; NotFoundError when none has (after some page answered),
    FetchError when no page could be reached; the message names the ``noun``
    looked for and lists each attempt (a page without a usable ``tag``, too)."""
    attempts: list[str] = []
    answered = False
    for prefix in discovery.prefixes(app.name):
        try:
            url, body = _page(client, prefix, allow_http)
        except (NotFoundError, AuthError, UsageError) as e:
            attempts.append(str(e))
            answered = True
            continue
        except FetchError as e:
            attempts.append(str(e))
            continue
        answered = True
        found = pick(discovery.parse_meta(body))
        if found:
            return url, found
        attempts.append(f"{url}: no {tag} for {app}")
    cls = NotFoundError if answered else FetchError
    raise cls(f"appc discovery found no {noun} for {app} ({'; '.join(attempts)})")


def discover(client: HttpClient, app: AppcName, *,
             allow_http: bool = False) -> tuple[str, list[discovery.Endpoint]]:
    """(page URL, best endpoints) of the first page with a matching ``ac-discovery``
    template for ``app``."""
    return _walk(client, app, allow_http, "image", f"{discovery.DISCOVERY} template",
                 lambda tags: discovery.aci_endpoints(tags, app))


def discover_keys(client: HttpClient, app: AppcName, *,
                  allow_http: bool = False) -> tuple[str, list[str]]:
    """(page URL, key URLs) of the first page with ``ac-discovery-pubkeys`` for ``app``
    (a walk of its own, as appc's: keys may live on another level than images)."""
    return _walk(client, app, allow_http, "public keys", f"{discovery.PUBKEYS} tag",
                 lambda tags: discovery.public_keys(tags, app))


def fetch(store: Store, rest: str, options: FetchOptions) -> Fetched:
    from libaci.http import HttpClient
    from libaci.registry.client import TLSOptions
    from libaci.sources import aciurl

    app = requested(rest)
    policy = options.pull_policy
    if policy not in aciurl.POLICIES:
        raise UsageError(f"--pull-policy: {policy!r} is not never, new or update")
    if policy in ("never", "new") and store.exists():
        rec = find_stored(store, app)
        if rec is not None:
            return aciurl.reuse(store, rec, options)
    if policy == "never":
        raise NotFoundError(f"no image in the store matches {app} and --pull-policy=never "
                            "forbids fetching it")
    tls = options.tls or TLSOptions()
    with HttpClient(tls, credentials=options.credentials) as client:
        page, endpoints = discover(client, app, allow_http=tls.allow_http)
        endpoint = endpoints[0]
        options.say(f"{app}: {page} points to {endpoint.aci}")

        def check(m: ImageManifest) -> None:
            why = discovery.mismatch(app, m.name, _labels(m))
            if why is not None:
                raise ImageError(f"not the image appc:{app} asks for: {why}")

        return aciurl.fetch_url(store, endpoint.aci, options, signature=endpoint.asc,
                                check=check, client=client)
