"""A tarfile.TarInfo that keeps hostile headers from exhausting memory.

Python's tarfile reads a whole PAX or GNU long-name header and a whole sparse
map into memory, and treats a bad or truncated header after the first one as
the end of the archive.  :class:`GuardedTarInfo` bounds the first and reports
the second.  It overrides private tarfile methods (``_proc_member``,
``_proc_sparse``, ``_proc_gnusparse_10``) as they are in CPython 3.11; check
them against each new Python podkit supports.
"""

from __future__ import annotations

import tarfile

from libaci.errors import LayerError

_EXTENDED_TYPES = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                             tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK})


class GuardedTarInfo(tarfile.TarInfo):
    """TarInfo that bounds what tarfile holds in memory and reports broken headers.

    tarfile reads a whole PAX or GNU long-name header and a whole sparse map
    into memory, and treats a bad or truncated header after the first one as
    the end of the archive.  ``max_header`` is set per extraction.
    """

    __slots__ = ()
    max_header = 1 << 22

    @classmethod
    def fromtarfile(cls, tf: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tf)
        except tarfile.TruncatedHeaderError:
            if tf.offset == 0:
                raise
            raise tarfile.ReadError("truncated header") from None
        except tarfile.InvalidHeaderError as e:
            if tf.offset == 0:
                raise
            raise tarfile.ReadError(f"{e} at offset {tf.offset}") from None

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_TYPES:
            size = self.size
            if self.type == tarfile.XGLTYPE:  # global headers pile up in tf.pax_headers
                size += sum(len(k) + len(v) for k, v in tf.pax_headers.items())
            if size > self.max_header:
                raise LayerError(f"layer has an extended tar header of {size} bytes "
                                 f"(more than {self.max_header})")
        return super()._proc_member(tf)  # type: ignore[misc]

    def _proc_sparse(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        # tarfile's own version, with a bound on the map and a truncation check
        structs, isextended, origsize = self._sparse_structs  # type: ignore[attr-defined]
        del self._sparse_structs  # type: ignore[attr-defined]
        limit = self.max_header // 24
        fileobj = tf.fileobj
        assert fileobj is not None
        while isextended:
            if len(structs) > limit:
                raise LayerError(f"layer has a sparse map of more than {limit} regions")
            buf = fileobj.read(tarfile.BLOCKSIZE)
            if len(buf) != tarfile.BLOCKSIZE:
                raise tarfile.ReadError("unexpected end of data")
            pos = 0
            for _ in range(21):
                try:
                    offset = tarfile.nti(buf[pos:pos + 12])  # type: ignore[attr-defined]
                    numbytes = tarfile.nti(buf[pos + 12:pos + 24])  # type: ignore[attr-defined]
                except ValueError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
                pos += 24
            isextended = bool(buf[504])
        self.sparse = structs
        self.offset_data = fileobj.tell()
        tf.offset = self.offset_data + self._block(self.size)  # type: ignore[attr-defined]
        self.size = origsize
        return self

    def _proc_gnusparse_10(self, next: tarfile.TarInfo, pax_headers: dict[str, str],
                           tf: tarfile.TarFile) -> None:
        # tarfile's own version (GNU sparse 1.0: the map precedes the data), bounded
        limit = self.max_header // 24
        fileobj = tf.fileobj
        assert fileobj is not None
        fields, buf = fileobj.read(tarfile.BLOCKSIZE).split(b"\n", 1)
        count = int(fields)
        if not 0 <= count <= limit:
            raise LayerError(f"layer has a sparse map of {count} regions (more than {limit})")
        numbers: list[int] = []
        while len(numbers) < count * 2:
            if b"\n" not in buf:
                more = fileobj.read(tarfile.BLOCKSIZE)
                if not more:
                    raise tarfile.ReadError("unexpected end of data")
                buf += more
            number, buf = buf.split(b"\n", 1)
            numbers.append(int(number))
        next.offset_data = fileobj.tell()
        next.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))
