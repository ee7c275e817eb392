"""Every command has a man page and a bash completion that match its --help.

The commands are the executables in bin/ (links to the bin/podkit shim); each
is run as installed in the venv (next to sys.executable), else from bin/.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT

BIN = os.path.join(ROOT, "bin")
MAN = os.path.join(ROOT, "man")
COMPLETION = os.path.join(ROOT, "completion", "podkit.bash")
VENV_BIN = os.path.dirname(sys.executable)

COMMANDS = sorted(
    n for n in os.listdir(BIN)
    if (n == "podkit" or n.startswith("podkit-")) and os.access(os.path.join(BIN, n), os.X_OK)
)
SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT",
            "EXAMPLES", "SEE ALSO")
STORE_SECTIONS = ("NAME", "DESCRIPTION", "FILES", "EXAMPLES", "SEE ALSO")
EXIT_STATUSES = (0, 1, 2, 3, 4, 5, 6, 70)
PAGES = [f"{c}.1" for c in COMMANDS] + ["podkit-store.5"]
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def tool(name: str) -> str:
    """The installed command, else the checkout's bin/ shim."""
    installed = os.path.join(VENV_BIN, name)
    return installed if os.access(installed, os.X_OK) else os.path.join(BIN, name)


def tool_path() -> str:
    """PATH with the commands under test first (the completion runs them by name)."""
    dirs = [VENV_BIN] if os.access(os.path.join(VENV_BIN, "podkit-images"), os.X_OK) else []
    return os.pathsep.join([*dirs, BIN, os.environ.get("PATH", os.defpath)])


def run(*cmd: str, env: dict[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, check=False,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          input=input, env=env)


def help_text(name: str) -> str:
    r = run(tool(name), "--help")
    assert r.returncode == 0, f"{name} --help -> {r.returncode}: {r.stderr}"
    return r.stdout


def read_page(page: str) -> str:
    path = os.path.join(MAN, page)
    assert os.path.isfile(path), f"man/{page} is missing"
    with open(path, encoding="utf-8") as f:
        return f.read()


def plain(roff: str) -> str:
    """roff source with font changes and the common escapes undone."""
    s = re.sub(r"\\f(?:\[[^\]]*\]|\(..|.)", "", roff)
    for esc, ch in ((r"\-", "-"), (r"\(aq", "'"), (r"\(dq", '"'), (r"\(lq", '"'),
                    (r"\(rq", '"'), (r"\e", "\\"), (r"\&", ""), (r"\%", "")):
        s = s.replace(esc, ch)
    return s


def sections(roff: str) -> dict[str, str]:
    """Section name -> its roff source."""
    out: dict[str, str] = {}
    parts = re.split(r'(?m)^\.SH[ \t]+"?([^"\n]*?)"?[ \t]*$', roff)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        out[name.strip()] = body
    return out


# -- the commands themselves -----------------------------------------------------------

def test_bin_lists_the_commands():
    assert "podkit" in COMMANDS
    assert {"podkit-fetch", "podkit-images", "podkit-gc"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_exits_0(name):
    out = help_text(name)
    assert out.startswith("usage:"), out[:200]
    assert name in out


@pytest.mark.parametrize("name", COMMANDS)
def test_version(name):
    r = run(tool(name), "--version")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rf"{re.escape(name)}(?: \(podkit\))? \d+\.\d+\.\d+\S*\n", r.stdout), \
        r.stdout


# -- man pages -------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_has_the_sections(name):
    roff = read_page(f"{name}.1")
    th = re.search(r"(?m)^\.TH[ \t]+(\S+)[ \t]+(\S+)", roff)
    assert th is not None, "no .TH line"
    assert plain(th.group(1)).upper() == name.upper() and th.group(2) == "1"
    found = sections(roff)
    missing = [s for s in SECTIONS if s not in found]
    assert not missing, f"man/{name}.1 lacks {missing}"
    assert re.search(rf"^{re.escape(name)} - \S", plain(found["NAME"]).strip())


@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_documents_every_option(name):
    options = set(LONG_OPTION.findall(help_text(name))) | {"--help", "--version"}
    if name != "podkit":
        options |= {"--store", "--debug"}
    documented = plain(sections(read_page(f"{name}.1")).get("OPTIONS", ""))
    missing = sorted(o for o in options
                     if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", documented))
    assert not missing, f"OPTIONS of man/{name}.1 does not document {missing}"


@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_exit_statuses(name):
    body = sections(read_page(f"{name}.1")).get("EXIT STATUS", "")
    missing = [n for n in EXIT_STATUSES
               if not re.search(rf"(?m)^\.TP[ \t]*\n(?:\.B[ \t]+)?{n}[ \t]*$", body)]
    assert not missing, f"EXIT STATUS of man/{name}.1 lacks {missing}"


@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_environment_and_piped_example(name):
    found = sections(read_page(f"{name}.1"))
    assert "PODKIT_STORE" in found["ENVIRONMENT"]
    examples = re.findall(r"(?ms)^\.EX[ \t]*\n(.*?)^\.EE", found["EXAMPLES"])
    assert any(re.search(r"\S \|(?!\|)\s+\S", plain(e)) for e in examples), "no example with a pipe"


@pytest.mark.parametrize("page", PAGES)
def test_man_page_renders_without_warnings(page):
    path = os.path.join(MAN, page)
    assert os.path.isfile(path), f"man/{page} is missing"
    env = {**os.environ, "MANWIDTH": "80", "MAN_DISABLE_SECCOMP": "1", "LC_ALL": "C.UTF-8"}
    r = run("man", "--warnings=w", "-l", path, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "NAME" in r.stdout and page.rsplit(".", 1)[0] in r.stdout
    if shutil.which("groff"):
        r = run("groff", "-man", "-Tutf8", "-ww", "-z", path)
        assert r.returncode == 0 and r.stderr == "", r.stderr
    if shutil.which("mandoc"):
        r = run("mandoc", "-T", "lint", "-W", "warning", path)
        assert r.returncode == 0, r.stdout + r.stderr


def test_store_page():
    from libaci import mediatypes, render, store

    roff = read_page("podkit-store.5")
    assert re.search(r"(?m)^\.TH[ \t]+PODKIT\\?-STORE[ \t]+5\b", roff)
    found = sections(roff)
    missing = [s for s in STORE_SECTIONS if s not in found]
    assert not missing, f"man/podkit-store.5 lacks {missing}"
    text = plain(roff)
    for word in ("oci-layout", "index.json", "blobs/", "layers/", "layer.json", "tmp/w-",
                 "locks/index.lock", "locks/gc.lock", "pods/", "0700", "0/0",
                 store.REF_NAME, store.ANN_CREATED, store.ANN_SOURCE, store.ANN_INDEX,
                 store.ANN_ACI_MANIFEST, mediatypes.APPC_ACI, f"{render.OPAQUE}=y",
                 "skopeo inspect oci:", "umoci ls --layout"):
        assert word in text, f"man/podkit-store.5 does not mention {word}"


def test_man_pages_refer_to_pages_that_exist():
    pages = set(os.listdir(MAN))
    for page in pages:
        for name, sec in re.findall(r"(podkit(?:\\?-[a-z0-9]+)*)\s*\((\d)\)",
                                    read_page(page)):
            ref = f"{plain(name)}.{sec}"
            assert ref in pages, f"man/{page} refers to {ref}, which does not exist"


def test_every_section_1_page_is_a_command():
    stale = [p for p in os.listdir(MAN) if p.endswith(".1") and p[:-2] not in COMMANDS]
    assert not stale, f"man pages without a command in bin/: {stale}"


# -- bash completion ----------------------------------------------------------------

def bash(script: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PATH": tool_path(), **env}
    return run("bash", "--norc", "--noprofile", "-c", script, env=full)


def complete(line: str, **env: str) -> list[str]:
    """What the completion offers for ``line`` (cursor at its end)."""
    script = (f"source {shlex.quote(COMPLETION)}\n"
              "COMP_WORDBREAKS=$' \\t\\n\"\\'@><=;|&(:'\n"
              f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}\n"
              "_podkit\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = bash(script, **env)
    assert r.returncode == 0, r.stderr
    return [x for x in r.stdout.splitlines() if x]


def test_completion_is_valid_bash():
    r = run("bash", "-n", COMPLETION)
    assert r.returncode == 0, r.stderr


def test_completion_registers_every_command():
    checks = "".join(f"complete -p {c} || exit 1\n" for c in COMMANDS)
    r = bash(f"source {shlex.quote(COMPLETION)} || exit 1\n{checks}")
    assert r.returncode == 0, r.stdout + r.stderr
    for c in COMMANDS:
        assert re.search(rf"(?m)^complete -F \S+ {re.escape(c)}$", r.stdout), r.stdout


def test_completion_of_verbs():
    verbs = complete("podkit ")
    assert {c.removeprefix("podkit-") for c in COMMANDS if c != "podkit"} <= set(verbs)
    assert complete("podkit fe") == ["fetch"]


@pytest.mark.parametrize("name", [c for c in COMMANDS if c != "podkit"])
def test_completion_of_options_from_help(name):
    options = set(LONG_OPTION.findall(help_text(name)))
    assert options <= set(complete(f"{name} --"))
    verb = name.removeprefix("podkit-")
    assert options <= set(complete(f"podkit {verb} --"))


def test_completion_of_images_and_sources(podkit, images):
    image_id = podkit.ok("fetch", f"oci:{images['layout']}:tiny").strip()
    store = podkit.store
    got = complete(f"podkit-inspect --store {store} ")
    assert image_id in got and "localhost/layout:tiny" in got
    assert complete(f"podkit-rmi --store {store} {image_id[:12]}") == [image_id.split(":", 1)[1]]
    assert "localhost/layout:tiny" in complete("podkit-render ", PODKIT_STORE=store)
    # COMP_WORDBREAKS has ':', so bash completes the part after the last colon
    assert "tiny" in complete(f"podkit-fetch oci:{images['layout']}:t")
    assert "--store" in complete("podkit-fetch --st")
