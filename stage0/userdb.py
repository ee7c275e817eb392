"""Users and groups as the image defines them, never as the host does.

``--user=www-data`` must mean the image's www-data: the names are looked up
in the image's own ``/etc/passwd`` and ``/etc/group``, read straight from its
extracted layers the way the overlay mount would show them (top layer
first, whiteouts and opaque directories respected, symbolic links not
followed, so a hostile image cannot point the lookup at a host file).
Numeric IDs need no files at all, which is what images without a passwd
file (scratch, distroless) use.
"""

from __future__ import annotations

import stat

import attrs

from libaci.errors import NotFoundError, UsageError
from libaci.render import union_lookup

MAX_DB = 4 << 20  # a passwd file bigger than this is not one


@attrs.frozen
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"
    name: str = ""


def image_file(layers: list[str], rel: str) -> bytes | None:
    """Contents of regular file ``rel`` in the union of ``layers`` (bottom first); None
    when absent, not a regular file or larger than MAX_DB."""
    found = union_lookup(layers, rel)
    if found is None or not stat.S_ISREG(found[1].st_mode) or found[1].st_size > MAX_DB:
        return None
    with open(found[0], "rb") as f:
        return f.read(MAX_DB)


def _table(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _number(text: str, what: str) -> int | None:
    if text.isdigit():
        n = int(text)
        if n > 0xFFFFFFFE:
            raise UsageError(f"{what} {text} is out of range")
        return n
    return None


def resolve(layers: list[str], user: str | None, group: str | None) -> Identity:
    """The uid, gid and supplementary groups for ``user``/``group`` in the image.

    ``user`` may be ``NAME``, ``UID``, ``NAME:GROUP`` or ``UID:GID`` (Docker's
    USER forms); an explicit ``group`` wins over the one in ``user``.
    """
    user = user or "0"
    if ":" in user:
        user, _, ugroup = user.partition(":")
        group = group or ugroup
    passwd = _table(image_file(layers, "etc/passwd"))
    groups = _table(image_file(layers, "etc/group"))
    uid = _number(user, "user")
    entry = None
    for row in passwd:
        if len(row) >= 7 and (row[0] == user if uid is None else row[2] == str(uid)):
            entry = row
            break
    if uid is None:
        if entry is None:
            raise NotFoundError(f"user {user!r} is not in the image's /etc/passwd "
                                f"(use a numeric UID)")
        uid = int(entry[2])
    gid = None
    if group:
        gid = _number(group, "group")
        if gid is None:
            row = next((g for g in groups if len(g) >= 3 and g[0] == group), None)
            if row is None:
                raise NotFoundError(f"group {group!r} is not in the image's /etc/group "
                                    f"(use a numeric GID)")
            gid = int(row[2])
    elif entry is not None and entry[3].isdigit():
        gid = int(entry[3])
    if gid is None:
        gid = 0 if uid == 0 else uid
    name = entry[0] if entry is not None else ""
    extra = sorted({int(g[2]) for g in groups
                    if len(g) >= 4 and name and name in g[3].split(",") and g[2].isdigit()}
                   - {gid})
    home = entry[5] if entry is not None and entry[5] else "/"
    return Identity(uid, gid, tuple(extra), home, name)
