"""appc discovery parsing and template rendering (libaci.discovery), the source
classification of URLs and appc names, and the pure parts of the ACI URL source.

The template cases follow appc/spec's discovery tests (discovery_test.go with
testdata/meta06.html and meta07.html): best-matching templates are those that
render completely and use the most labels.
"""

from __future__ import annotations

import pytest

from libaci import discovery
from libaci.discovery import Endpoint, MetaTag
from libaci.errors import UsageError
from libaci.reference import AppcName, parse_appc_name

# the same shape as appc/spec discovery/testdata/meta06.html: versioned, noarch,
# latest and latest-noarch templates, each with a mirror
PAGE_MIRRORS = """<!DOCTYPE html>
<html><head><title>app</title>
<meta name="ac-discovery" content="example.com https://s.example.com/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery" content="example.com https://m.example.com/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery" content="example.com https://s.example.com/{name}-{version}-noarch.{ext}">
<meta name="ac-discovery" content="example.com https://m.example.com/{name}-{version}-noarch.{ext}">
<meta name="ac-discovery" content="example.com https://s.example.com/{name}-latest-{os}-{arch}.{ext}">
<meta name="ac-discovery" content="example.com https://m.example.com/{name}-latest-{os}-{arch}.{ext}">
<meta name="ac-discovery" content="example.com https://s.example.com/{name}-latest-noarch.{ext}">
<meta name="ac-discovery" content="example.com https://m.example.com/{name}-latest-noarch.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
</head><body><h1>app</h1></body></html>
"""


def eps(page: str, name: str) -> list[tuple[str, str]]:
    found = discovery.aci_endpoints(discovery.parse_meta(page), parse_appc_name(name))
    return [(e.aci, e.asc) for e in found]


def both(url: str) -> tuple[str, str]:
    return url + ".aci", url + ".aci.asc"


# -- meta tags ---------------------------------------------------------------------

def test_parse_meta_reads_ac_tags_in_order():
    tags = discovery.parse_meta(PAGE_MIRRORS)
    assert len(tags) == 9
    assert tags[0] == MetaTag("ac-discovery", "example.com",
                              "https://s.example.com/{name}-{version}-{os}-{arch}.{ext}")
    assert tags[-1] == MetaTag("ac-discovery-pubkeys", "example.com",
                               "https://example.com/pubkeys.gpg")


@pytest.mark.parametrize(("html", "expected"), [
    # self-closing, upper-case tag and attribute names, attributes in any order
    ('<META CONTENT="a.com https://x/{name}.{ext}" NAME="ac-discovery"/>',
     [MetaTag("ac-discovery", "a.com", "https://x/{name}.{ext}")]),
    # character references are decoded; extra blanks around prefix and URL
    ('<meta name="ac-discovery" content="  a.com \t https://x/{name}.{ext}?a=1&amp;b=2  ">',
     [MetaTag("ac-discovery", "a.com", "https://x/{name}.{ext}?a=1&b=2")]),
    # in the body, unquoted attributes, no <html> at all
    ("<p>hi<meta name=ac-discovery-pubkeys content='a.com https://k'></p>",
     [MetaTag("ac-discovery-pubkeys", "a.com", "https://k")]),
    # a prefix without a URL, no content, other meta names: ignored
    ('<meta name="ac-discovery" content="a.com"><meta name="ac-discovery">'
     '<meta name="description" content="a.com https://x"><meta charset="utf-8">', []),
    # unknown ac-* names are kept (the caller picks what it knows)
    ('<meta name="ac-other" content="a b">', [MetaTag("ac-other", "a", "b")]),
    # a truncated page: what came before the break counts
    ('<meta name="ac-discovery" content="a.com https://x/{ext}"><meta name="ac-disc',
     [MetaTag("ac-discovery", "a.com", "https://x/{ext}")]),
    ("", []),
])
def test_parse_meta_cases(html, expected):
    assert discovery.parse_meta(html) == expected


def test_parse_meta_bytes_with_bad_utf8():
    page = b'\xff\xfe<meta name="ac-discovery" content="a.com https://x/\xc3\xa9.{ext}">'
    assert discovery.parse_meta(page)[0].value == "https://x/\u00e9.{ext}"


# -- walking up the name --------------------------------------------------------------

def test_prefixes_and_discovery_url():
    assert discovery.prefixes("example.com/project/sub") == [
        "example.com/project/sub", "example.com/project", "example.com"]
    assert discovery.prefixes("example.com") == ["example.com"]
    assert discovery.discovery_url("example.com/app") == \
        "https://example.com/app?ac-discovery=1"
    assert discovery.discovery_url("a.com", "http") == "http://a.com?ac-discovery=1"


# -- templates -------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "variables", "expected"), [
    ("https://x/{name}-{version}.{ext}", {"name": "a.com/b", "version": "1", "ext": "aci"},
     ("https://x/a.com/b-1.aci", {"name", "version", "ext"})),
    ("https://x/{name}-{os}.{ext}", {"name": "n", "ext": "aci"}, None),  # {os} left
    ("https://x/{}.{ext}", {"name": "n", "ext": "aci"}, None),  # empty braces count too
    ("https://x/{name}/{name}", {"name": "n"}, ("https://x/n/n", {"name"})),
    ("https://x/plain", {"name": "n"}, ("https://x/plain", set())),
    # values are put in once: a value that looks like a variable is not expanded
    ("https://x/{a}-{b}", {"a": "{b}", "b": "2"}, ("https://x/{b}-2", {"a", "b"})),
])
def test_render(template, variables, expected):
    assert discovery.render(template, variables) == expected


@pytest.mark.parametrize(("name", "expected"), [
    # version, os, arch: the two fully versioned templates (3 labels)
    ("example.com/myapp:1.0.0,os=linux,arch=amd64",
     [both("https://s.example.com/example.com/myapp-1.0.0-linux-amd64"),
      both("https://m.example.com/example.com/myapp-1.0.0-linux-amd64")]),
    # only a version: the versioned noarch ones (the latest-noarch ones use fewer labels)
    ("example.com/myapp:1.0.0",
     [both("https://s.example.com/example.com/myapp-1.0.0-noarch"),
      both("https://m.example.com/example.com/myapp-1.0.0-noarch")]),
    # os and arch, no version: the latest-os-arch ones
    ("example.com/myapp,os=linux,arch=amd64",
     [both("https://s.example.com/example.com/myapp-latest-linux-amd64"),
      both("https://m.example.com/example.com/myapp-latest-linux-amd64")]),
    # no labels: the latest-noarch ones
    ("example.com/myapp",
     [both("https://s.example.com/example.com/myapp-latest-noarch"),
      both("https://m.example.com/example.com/myapp-latest-noarch")]),
    # a deeper name under the same prefix
    ("example.com/myapp/foobar:1.0.0,os=linux,arch=amd64",
     [both("https://s.example.com/example.com/myapp/foobar-1.0.0-linux-amd64"),
      both("https://m.example.com/example.com/myapp/foobar-1.0.0-linux-amd64")]),
    # prefix is a plain string prefix: "example.community" matches "example.com"
    ("example.community/x:1",
     [both("https://s.example.com/example.community/x-1-noarch"),
      both("https://m.example.com/example.community/x-1-noarch")]),
    # another domain: no tag applies
    ("other.org/myapp:1.0.0", []),
])
def test_best_matching_templates(name, expected):
    assert eps(PAGE_MIRRORS, name) == expected


def test_hardcoded_name_and_specific_prefix():
    # like appc/spec testdata/meta07.html: the template names the app itself
    page = ('<meta name="ac-discovery" content="example.com/myapp '
            'https://storage.example.com/myapp-{version}-{os}-{arch}.{ext}">'
            '<meta name="ac-discovery-pubkeys" content="example.com https://example.com/k.gpg">')
    assert eps(page, "example.com/myapp:1.0.0,os=linux,arch=amd64") == [
        both("https://storage.example.com/myapp-1.0.0-linux-amd64")]
    assert eps(page, "example.com/other:1.0.0,os=linux,arch=amd64") == []  # prefix
    app = parse_appc_name("example.com/other")
    assert discovery.public_keys(discovery.parse_meta(page), app) == [
        "https://example.com/k.gpg"]
    assert discovery.public_keys(discovery.parse_meta(page), parse_appc_name("x.org/a")) == []


def test_template_variables():
    app = AppcName("example.com/myapp", (("version", "1"), ("os", "linux")))
    assert discovery.template_variables(app) == {
        "name": "example.com/myapp", "version": "1", "os": "linux"}


def test_other_labels_are_variables():
    page = '<meta name="ac-discovery" content="a.com https://x/{channel}/{name}.{ext}">'
    assert eps(page, "a.com/app,channel=beta") == [both("https://x/beta/a.com/app")]
    assert eps(page, "a.com/app") == []


def test_version_falls_back_to_latest_when_nothing_else_renders():
    page = '<meta name="ac-discovery" content="a.com https://x/{name}-{version}-{os}-{arch}.{ext}">'
    assert eps(page, "a.com/app,os=linux,arch=amd64") == [
        both("https://x/a.com/app-latest-linux-amd64")]
    # an explicit version is never replaced
    assert eps(page, "a.com/app:2,os=linux,arch=amd64") == [
        both("https://x/a.com/app-2-linux-amd64")]
    # still missing os/arch: nothing
    assert eps(page, "a.com/app") == []


def test_templates_without_ext_are_one_url_for_both():
    # appc requires {ext}; a template without it renders the same URL twice (as appc's does)
    page = '<meta name="ac-discovery" content="a.com https://x/{name}">'
    assert discovery.aci_endpoints(discovery.parse_meta(page), parse_appc_name("a.com/b")) == [
        Endpoint("https://x/a.com/b", "https://x/a.com/b")]


# -- labels of the host and validation --------------------------------------------------

def test_with_default_labels():
    app = parse_appc_name("a.com/b:1")
    assert discovery.with_default_labels(app, "Linux", "x86_64").labels_dict == {
        "version": "1", "os": "linux", "arch": "amd64"}
    assert discovery.with_default_labels(app, "Linux", "aarch64").labels_dict["arch"] == \
        "aarch64"
    given = parse_appc_name("a.com/b,arch=armv7l")
    assert discovery.with_default_labels(given, "Linux", "x86_64").labels_dict == {
        "arch": "armv7l", "os": "linux"}


@pytest.mark.parametrize(("name", "labels", "why"), [
    ("a.com/b", {"version": "1", "os": "linux", "arch": "amd64"}, None),
    ("a.com/b", {"version": "1", "os": "linux", "arch": "amd64", "extra": "x"}, None),
    ("a.com/c", {"version": "1", "os": "linux", "arch": "amd64"},
     "the image is named 'a.com/c', not 'a.com/b'"),
    ("a.com/b", {"version": "2", "os": "linux", "arch": "amd64"},
     "label version=1 was asked for, the image has version=2"),
    ("a.com/b", {"os": "linux", "arch": "amd64"},
     "label version=1 was asked for, the image has no version label"),
])
def test_mismatch(name, labels, why):
    app = parse_appc_name("a.com/b:1,os=linux,arch=amd64")
    assert discovery.mismatch(app, name, labels) == why


def test_absent_label_in_request_matches_any_value():
    assert discovery.mismatch(parse_appc_name("a.com/b"), "a.com/b", {"version": "9"}) is None


# -- source classification --------------------------------------------------------------

@pytest.mark.parametrize(("source", "expected"), [
    ("https://example.com/app.aci", ("aciurl", "https://example.com/app.aci")),
    ("http://127.0.0.1:8000/a.aci.gz", ("aciurl", "http://127.0.0.1:8000/a.aci.gz")),
    ("appc:example.com/app:v1,os=linux", ("appc", "example.com/app:v1,os=linux")),
    ("appc:example.com/app", ("appc", "example.com/app")),
    ("example.com/app:v1,os=linux", ("appc", "example.com/app:v1,os=linux")),
    ("example.com/app:v1", ("docker", "example.com/app:v1")),  # both: Docker wins
    ("docker://example.com/app:v1", ("docker", "example.com/app:v1")),
])
def test_classify(source, expected):
    from libaci.sources import classify

    assert classify(source) == expected


def test_classify_refuses_what_is_neither():
    from libaci.sources import classify

    with pytest.raises(UsageError, match="appc:NAME"):
        classify("Not_An,Appc=Name")


# -- the URL source's pure parts -------------------------------------------------------

@pytest.mark.parametrize(("url", "sig"), [
    ("https://x/a/app.aci", "https://x/a/app.aci.asc"),
    ("https://x/app.aci?token=1", "https://x/app.aci.asc?token=1"),
    ("https://x/app.aci.gz", "https://x/app.aci.gz.asc"),
    ("https://x/download", "https://x/download.asc"),
])
def test_signature_url(url, sig):
    from libaci.sources.aciurl import signature_url

    assert signature_url(url) == sig


@pytest.mark.parametrize(("header", "expected"), [
    (None, (0, True)),
    ("max-age=3600", (3600, True)),
    ("public, max-age=60, must-revalidate", (60, True)),
    ('max-age="30"', (30, True)),
    ("max-age=-5", (0, True)),
    ("max-age=abc", (0, True)),
    ("no-cache, max-age=600", (0, True)),
    ("no-store", (0, False)),
    ("Max-Age=10", (10, True)),
])
def test_parse_cache_control(header, expected):
    from libaci.sources.aciurl import parse_cache_control

    assert parse_cache_control(header) == expected


def test_remote_round_trip_and_freshness():
    from libaci.sources.aciurl import Remote

    r = Remote("https://x/a.aci", "sha512-" + "a" * 128, "https://x/a.aci.asc", '"e1"',
               "Wed, 21 Oct 2015 07:28:00 GMT", 60, 1000.0)
    assert Remote.from_dict(r.url, r.to_dict()) == r
    assert r.fresh(1059.0) and not r.fresh(1060.0)
    assert not Remote("u", "i", "s").fresh(0.0)  # no max-age: always ask
    assert Remote.from_dict("u", {"nothing": 1}) is None
    assert Remote.from_dict("u", "garbage") is None


@pytest.mark.parametrize(("url", "allow_http", "match"), [
    ("http://example.com/a.aci", False, "plain HTTP needs --insecure-options=http"),
    ("http://127.0.0.1/a.aci", False, "--insecure-options=http"),  # loopback too, as rkt
    ("ftp://example.com/a.aci", True, "unsupported URL scheme 'ftp'"),
    ("https:///a.aci", False, "has no host"),
    ("https://example.com:99999/a.aci", False, "not a valid URL"),
])
def test_check_url_refuses(url, allow_http, match):
    from libaci.http import check_url
    from libaci.registry.client import TLSOptions

    with pytest.raises(UsageError, match=match):
        check_url(url, TLSOptions(allow_http=allow_http))


def test_check_url_never_repeats_credentials():
    from libaci.http import check_url
    from libaci.registry.client import TLSOptions

    with pytest.raises(UsageError) as e:
        check_url("https://alice:s3cret@example.com/a.aci", TLSOptions())
    assert "s3cret" not in str(e.value) and "alice" not in str(e.value)
    assert "podkit-login" in str(e.value)
    check_url("http://example.com/a.aci", TLSOptions(allow_http=True))
    check_url("https://example.com/a.aci", TLSOptions())
