"""appc image discovery (appc spec ``discovery.md``): the pure part.

An appc name (``example.com/app:v1,os=linux,arch=amd64``) has no scheme; the
discovery page ``https://NAME?ac-discovery=1`` (then the parents of NAME, up
to the bare host) holds HTML meta tags::

    <meta name="ac-discovery" content="PREFIX URL-TEMPLATE">
    <meta name="ac-discovery-pubkeys" content="PREFIX KEYS-URL">

A tag applies when PREFIX is a string prefix of the name.  A template is
rendered with ``{name}``, ``{ext}`` (``aci`` for the image, ``aci.asc`` for
its signature) and one ``{LABEL}`` per label of the name (``{version}``,
``{os}``, ``{arch}``, any other); a template with anything left in braces
is dropped, and of those that render only the best ones are kept: those that
use the most labels (appc 0.8.11).  When none renders and the name has no
version, ``{version}`` is tried as ``latest`` (the older appc rule rkt
documents), so a page that only has versioned templates still serves
``NAME`` without a version.

Nothing here does I/O; :mod:`libaci.sources.appcname` fetches the pages.
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Iterable, Mapping

import attrs

from libaci.reference import AppcName, default_labels

ACI_EXT = "aci"
ASC_EXT = "aci.asc"
DISCOVERY = "ac-discovery"
PUBKEYS = "ac-discovery-pubkeys"
DEFAULT_VERSION = "latest"
_VAR = re.compile(r"\{([^{}]*)\}")


@attrs.frozen
class MetaTag:
    """One ``<meta name="ac-..." content="PREFIX VALUE">`` of a discovery page."""

    name: str
    prefix: str
    value: str


@attrs.frozen
class Endpoint:
    """Where an image and its detached signature are."""

    aci: str
    asc: str


class _MetaParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[MetaTag] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            return
        name = content = ""
        for key, value in attrs:
            if key == "name":
                name = value or ""
            elif key == "content":
                content = value or ""
        parts = content.strip().split(None, 1)
        if name.startswith("ac-") and len(parts) == 2:
            self.tags.append(MetaTag(name, parts[0], parts[1].strip()))

    handle_startendtag = handle_starttag


def parse_meta(page: str | bytes) -> list[MetaTag]:
    """The ``ac-*`` meta tags of an HTML page, in document order.

    Tags without a prefix and a value are ignored, as appc's parser ignores
    them; so is everything that is not a ``meta`` tag.  Malformed HTML is
    read as far as it goes.
    """
    text = page.decode("utf-8", "replace") if isinstance(page, bytes) else page
    parser = _MetaParser()
    parser.feed(text)
    parser.close()
    return parser.tags


def prefixes(name: str) -> list[str]:
    """The names whose pages are tried, longest first: ``a/b/c``, ``a/b``, ``a``."""
    parts = name.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def discovery_url(prefix: str, scheme: str = "https") -> str:
    """The discovery page of ``prefix``: ``https://PREFIX?ac-discovery=1``."""
    return f"{scheme}://{prefix}?ac-discovery=1"


def render(template: str, variables: Mapping[str, str]) -> tuple[str, set[str]] | None:
    """``template`` with every ``{VAR}`` replaced, and the variables used; None when a
    ``{...}`` has no value."""
    used: set[str] = set()
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        key = m.group(1)
        if key not in variables:
            missing = True
            return m.group(0)
        used.add(key)
        return variables[key]

    out = _VAR.sub(sub, template)
    return None if missing else (out, used)


def template_variables(app: AppcName) -> dict[str, str]:
    """``name`` and the labels (a label called ``name`` cannot override it)."""
    return {**{k: v for k, v in app.labels if k != "name"}, "name": app.name}


def _best(tags: Iterable[MetaTag], app: AppcName) -> list[Endpoint]:
    variables = template_variables(app)
    best: list[Endpoint] = []
    best_count = -1
    for tag in tags:
        if tag.name != DISCOVERY or not app.name.startswith(tag.prefix):
            continue
        aci = render(tag.value, {**variables, "ext": ACI_EXT})
        asc = render(tag.value, {**variables, "ext": ASC_EXT})
        if aci is None or asc is None:
            continue
        count = len(aci[1] - {"name", "ext"})
        if count > best_count:
            best, best_count = [], count
        if count == best_count:
            best.append(Endpoint(aci[0], asc[0]))
    return best


def aci_endpoints(tags: Iterable[MetaTag], app: AppcName) -> list[Endpoint]:
    """The best-matching image endpoints for ``app``, in page order (maybe none)."""
    tags = list(tags)
    found = _best(tags, app)
    if not found and app.version is None:
        found = _best(tags, AppcName(app.name, (*app.labels, ("version", DEFAULT_VERSION))))
    return found


def public_keys(tags: Iterable[MetaTag], app: AppcName) -> list[str]:
    """The ``ac-discovery-pubkeys`` URLs whose prefix matches ``app``'s name."""
    return [t.value for t in tags if t.name == PUBKEYS and app.name.startswith(t.prefix)]


def with_default_labels(app: AppcName, os_name: str, machine: str) -> AppcName:
    """``app`` with ``os`` and ``arch`` labels for the host added when absent, as rkt
    does (``os_name``/``machine`` as uname gives them)."""
    have = app.labels_dict
    extra = [(k, v) for k, v in default_labels(os_name, machine).items() if k not in have]
    return AppcName(app.name, (*app.labels, *extra)) if extra else app


def mismatch(app: AppcName, name: str, labels: Mapping[str, str]) -> str | None:
    """Why an image manifest's ``name``/``labels`` do not match the discovered ``app``
    (spec: the names are equal; each label asked for is present with that value;
    labels not asked for may have any value), or None."""
    if name != app.name:
        return f"the image is named {name!r}, not {app.name!r}"
    for key, want in app.labels:
        have = labels.get(key)
        if have != want:
            got = f"{key}={have}" if have is not None else f"no {key} label"
            return f"label {key}={want} was asked for, the image has {got}"
    return None
