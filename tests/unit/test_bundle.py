"""stage0.cli.bundle: modules served from one file, never stale.

Each case builds a bundle of a small package tree in a fresh interpreter and
imports from it in another, as the launchers do (``python -S``, the bundle's
``sys.path`` after the script's own directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stage0.cli import bundle, launchers

ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PODKIT_BUNDLE")}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    pkg = src / "fakepkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'package'\n")
    (pkg / "mod.py").write_text("VALUE = 'bundled'\n\ndef boom():\n    raise ValueError('boom')\n")
    (pkg / "late.py").write_text("VALUE = 'late'\n")
    (pkg / "data.txt").write_text("resource\n")
    return src


def _python(code: str, src: Path, cwd: Path, *,
            drop_first: bool) -> subprocess.CompletedProcess[str]:
    """``code`` in ``python -S`` with sys.path = the interpreter's + [src, ROOT];
    ``drop_first``: as the builder (no '' first), else as a launcher (its own dir first)."""
    prelude = ("import sys\n" + ("del sys.path[0]\n" if drop_first else "")
               + f"sys.path += [{str(src)!r}, {str(ROOT)!r}]\n")
    return subprocess.run([sys.executable, "-S", "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=cwd, env=ENV, check=False)


def _build(src: Path, out: Path, names: str = "'fakepkg', 'fakepkg.mod', 'fakepkg.late'") -> None:
    done = _python(f"""
        import fakepkg.mod, fakepkg.late
        from stage0.cli import bundle
        print(bundle.build({str(out)!r}, [{names}]))
        """, src, out.parent, drop_first=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(names.split(",")))


def _use(src: Path, out: Path, code: str) -> subprocess.CompletedProcess[str]:
    first = f"from stage0.cli.bundle import install\nprint(install({str(out)!r}))\n"
    return _python(first + textwrap.dedent(code), src, out.parent, drop_first=False)


def _loader(module: str) -> str:
    return f"print(type(sys.modules[{module!r}].__spec__.loader).__name__)\n"


def test_modules_come_from_the_bundle_and_look_like_files(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.bundle"
    _build(tree, out)
    done = _use(tree, out, """
        import importlib.resources, traceback
        import fakepkg.mod
        print(type(fakepkg.mod.__spec__.loader).__name__, type(fakepkg.__spec__.loader).__name__)
        print(fakepkg.mod.VALUE, fakepkg.mod.__file__, fakepkg.__path__)
        print(importlib.resources.files('fakepkg').joinpath('data.txt').read_text().strip())
        try:
            fakepkg.mod.boom()
        except ValueError:
            print(traceback.format_exc().splitlines()[-2].strip())
        """)
    assert done.returncode == 0, done.stderr
    pkg = tree / "fakepkg"
    assert done.stdout.splitlines() == [
        "True", "BundledLoader BundledLoader",
        f"bundled {pkg / 'mod.py'} [{str(pkg)!r}]",
        "resource",
        "raise ValueError('boom')",  # the source line, from the file: linecache works
    ]


def test_an_edited_module_is_read_from_its_file(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.bundle"
    _build(tree, out)
    (tree / "fakepkg" / "mod.py").write_text("VALUE = 'edited, longer than before'\n")
    done = _use(tree, out, "import fakepkg.mod\nprint(fakepkg.mod.VALUE)\n" + _loader("fakepkg.mod")
                + _loader("fakepkg"))
    assert done.stdout.splitlines() == ["True", "edited, longer than before",
                                        "SourceFileLoader", "BundledLoader"], done.stderr


def test_a_touched_module_of_the_same_size_is_read_from_its_file(tree: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "b.bundle"
    _build(tree, out)
    mod = tree / "fakepkg" / "mod.py"
    mod.write_text(mod.read_text().replace("bundled", "BUNDLED"))  # same size
    st = mod.stat()
    os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    done = _use(tree, out, "import fakepkg.mod\nprint(fakepkg.mod.VALUE)\n")
    assert done.stdout.splitlines() == ["True", "BUNDLED"], done.stderr


def test_a_deleted_module_cannot_be_imported(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.bundle"
    _build(tree, out)
    (tree / "fakepkg" / "mod.py").unlink()
    done = _use(tree, out, "import fakepkg.mod\n")
    assert "ModuleNotFoundError: No module named 'fakepkg.mod'" in done.stderr


def test_another_sys_path_switches_it_off(tree: Path, tmp_path: Path) -> None:
    """PYTHONPATH (a bench snapshot, another checkout) would resolve names elsewhere."""
    out = tmp_path / "b.bundle"
    _build(tree, out)
    other = tmp_path / "other"
    (other / "fakepkg").mkdir(parents=True)
    (other / "fakepkg" / "__init__.py").write_text("VALUE = 'other'\n")
    done = _python(f"""
        sys.path.insert(1, {str(other)!r})
        from stage0.cli.bundle import install
        print(install({str(out)!r}))
        import fakepkg
        print(fakepkg.VALUE)
        """, tree, tmp_path, drop_first=False)
    assert done.stdout.splitlines() == ["False", "other"], done.stderr


@pytest.mark.parametrize("content", [b"", b"PODKITB1", b"PODKITB1\xff\xff\x00\x00junk",
                                     b"#!/bin/sh\n", None])
def test_a_missing_or_damaged_bundle_changes_nothing(tree: Path, tmp_path: Path,
                                                     content: bytes | None) -> None:
    out = tmp_path / "b.bundle"
    if content is not None:
        out.write_bytes(content)
    done = _use(tree, out, "import fakepkg.mod\nprint(fakepkg.mod.VALUE, len(sys.meta_path))\n"
                + _loader("fakepkg.mod"))
    lines = done.stdout.splitlines()
    assert lines[0] == "False" and lines[1].startswith("bundled "), done.stderr
    assert lines[2] == "SourceFileLoader"


def test_a_bundle_of_another_interpreter_is_not_used(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.bundle"
    _build(tree, out)
    data = out.read_bytes()
    other = sys.version.replace(".", "_", 1)  # as long: the header stays readable
    out.write_bytes(data.replace(sys.version.encode(), other.encode(), 1))
    done = _use(tree, out, "import fakepkg.mod\n" + _loader("fakepkg.mod"))
    assert done.stdout.splitlines() == ["False", "SourceFileLoader"], done.stderr


def test_a_bundle_replaced_while_running_is_not_read(tree: Path, tmp_path: Path) -> None:
    """A module imported late, after a re-install wrote a new bundle: from its file,
    not from where the old bundle had it (the new one holds other code there)."""
    out = tmp_path / "b.bundle"
    _build(tree, out)
    done = _use(tree, out, textwrap.dedent(f"""
        import fakepkg.mod, os
        data = open({str(out)!r}, 'rb').read()
        os.unlink({str(out)!r})
        with open({str(out)!r}, 'wb') as f:
            f.write(data.replace(b"late", b"LATE"))  # same offsets, other code
        import fakepkg.late
        print(fakepkg.late.VALUE)
        """))
    assert done.stdout.splitlines() == ["True", "late"], done.stderr


def test_collect_finds_podkit_and_what_it_imports() -> None:
    done = subprocess.run([sys.executable, "-S", "-c", textwrap.dedent(f"""
        import sys
        sys.path.append({str(ROOT)!r})
        sys.path += {launchers.site_paths(sys.executable)[1:]!r}
        from stage0.cli import bundle
        names = bundle.collect()
        print(' '.join(names))
        """)], capture_output=True, text=True, cwd="/", env=ENV, check=True)
    names = set(done.stdout.split())
    assert {"libaci.store", "libaci.registry.client", "stage0.cli.fetch", "stage0.cli.run",
            "attr._make", "argparse", "json.decoder"} <= names
    assert not {n for n in names if n.startswith(("jsonschema", "requests", "cryptography"))}


def test_launchers_use_the_bundle_and_podkit_bundle_empty_turns_it_off(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "podkit-tag").write_text(f"#!{sys.executable}\nimport sys\n"
                                       "from stage0.cli.tag import main\nsys.exit(main())\n")
    out = tmp_path / "lib" / launchers.BUNDLE_NAME
    assert launchers.rewrite(str(bindir), str(out)) == 1
    assert out.stat().st_size > 1_000_000
    text = (bindir / "podkit-tag").read_text()
    assert launchers.rewrite(str(bindir), str(out)) == 1  # idempotent
    assert (bindir / "podkit-tag").read_text() == text
    done = subprocess.run([str(bindir / "podkit-tag"), "--version"], capture_output=True,
                          text=True, cwd="/", env=ENV, check=False)
    assert done.returncode == 0 and done.stdout.startswith("podkit-tag (podkit) "), done.stderr
    script = (bindir / "podkit-tag").read_text().replace(
        "from stage0.cli.tag import main\nsys.exit(main())\n",
        "import libaci.store\n" + _loader("libaci.store"))
    (bindir / "probe").write_text(script)
    for env, loader in ((ENV, "BundledLoader"), ({**ENV, "PODKIT_BUNDLE": ""}, "SourceFileLoader")):
        done = subprocess.run([sys.executable, "-S", str(bindir / "probe")], capture_output=True,
                              text=True, cwd="/", env=env, check=True)
        assert done.stdout == loader + "\n"
    # --bundle OUT BINDIR: a bundle for the launchers already there (as bench/ does)
    other = tmp_path / "other.bundle"
    assert launchers.main(["--bundle", str(other), str(bindir)]) == 0
    done = subprocess.run([sys.executable, "-S", str(bindir / "probe")], capture_output=True,
                          text=True, cwd="/", env={**ENV, "PODKIT_BUNDLE": str(other)}, check=True)
    assert done.stdout == "BundledLoader\n"


def test_installed_commands_use_the_installed_bundle() -> None:
    """install.sh built it: the commands the tests run take their modules from it."""
    venv_bin = Path(sys.executable).parent
    text = (venv_bin / "podkit-fetch").read_text()
    path = launchers.default_bundle(str(venv_bin))
    assert f"install(os.environ.get('PODKIT_BUNDLE', {path!r}))" in text
    probe = text.replace("from stage0.cli.fetch import main\nsys.exit(main())\n",
                         "import argparse\n" + _loader("argparse"))  # a module nobody edits
    done = subprocess.run([sys.executable, "-S", "-"], input=probe, capture_output=True,
                          text=True, cwd="/", env=ENV, check=True)
    assert done.stdout == "BundledLoader\n", "install.sh did not build the bundle (or it is stale)"


def test_bundle_magic_matches_install() -> None:
    assert bundle.MAGIC.decode() in launchers.launcher("python3", "m", "f", [], "b")
