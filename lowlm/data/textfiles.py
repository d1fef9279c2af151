"""Reading text files whatever they hold: encodings, byte-order marks, compression, binary files, JSON lines.

A corpus file is decoded line by line before any parser sees it, so that what cannot be read is
reported as a person would look for it: the file, the line, the byte offset and the byte's value
(``decoded_lines``), "not a text file" for a binary file (NUL bytes among its first 8 KB), UTF-16
without a byte-order mark named as such; gzip, bzip2 and xz are decompressed when their first
bytes say so, as ``datasets`` does. ``json_object`` reads one JSON Lines record strictly (no NaN, no
key twice, an object). Every error is a ``CorpusError`` (or the ``error`` class a caller gives).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterator

SNIFF_BYTES = 8192  # a NUL byte among these (of an 8-bit text) makes a file binary
_BREAK = re.compile(r"\r\n|\r|\n")


class CorpusError(ValueError):
    """A corpus that cannot be used as given; the message says where and what was expected."""


def line_codec(encoding: str, path, error: type[Exception] = CorpusError) -> bool:
    """Whether ``encoding`` writes line breaks as the bytes ``\\n``/``\\r`` (UTF-8, Latin-1, cp1252: a file can
    be decoded line by line) or not (UTF-16/32); an unknown encoding is an error.

    >>> line_codec("latin-1", "f"), line_codec("utf-16", "f")
    (True, False)
    """
    try:
        return "\n\r".encode(encoding).endswith(b"\n\r")
    except (LookupError, UnicodeError) as exc:
        raise error(f"{path}: unknown encoding {encoding!r} ({exc}); give a text codec such as utf-8, latin-1, "
                    f"cp1252 or utf-16") from None


def _sniff(head: bytes, path, error: type[Exception]) -> None:
    """NUL bytes among the first bytes of what should be 8-bit text: UTF-16/32 text (say so) or a binary file."""
    if b"\x00" not in head:
        return
    for bom, name in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                      (b"\xfe\xff", "utf-16")):
        if head.startswith(bom):
            raise error(f"{path}: looks like {name.upper()} text (it starts with a {name.upper()} byte-order mark); "
                        f"set `encoding: {name}`")
    even, odd = head[0::2], head[1::2]
    for zeros, other, name in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if len(head) >= 4 and zeros.count(0) > 0.9 * len(zeros) and other.count(0) == 0:
            raise error(f"{path}: looks like UTF-16 text without a byte-order mark (every other byte is NUL); "
                        f"set `encoding: {name}`")
    raise error(f"{path}: not a text file (a NUL byte at byte offset {head.index(0)}); a corpus file must be text")


def _undecodable(path, lineno: int, offset: int, byte: bytes, encoding: str, gz: bool) -> str:
    return (f"{path}, line {lineno}: cannot decode byte {byte!r} (0x{byte.hex().upper()}) at byte offset {offset}"
            f"{' (uncompressed)' if gz else ''} as {encoding}; if the file is Latin-1 or Windows-1252 text, "
            f"set `encoding: latin-1` (or `encoding: cp1252`)")


def decoded_lines(path: Path, encoding: str, opener, universal: bool = True,
                  error: type[Exception] = CorpusError) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its break) for every line of the bytes ``opener(path)`` opens.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (as in Python's text mode, pandas and ``datasets``), or at
    ``\\n`` only when not ``universal``. Each line is decoded on its own (UTF-16/32: the whole text), so a byte
    that does not decode is reported with its line, its offset in the file and its value; a NUL byte among the
    first 8 KB of an 8-bit text is a binary file; a read error (a broken .gz) names the file.
    """
    per_line = line_codec(encoding, path, error)
    gz = False
    try:
        with opener(path) as fh:
            gz = not isinstance(fh, io.BufferedReader)
            if not per_line:  # decoded as a stream, as readers do: "utf-16" wants a byte-order mark
                data = fh.read()
                try:
                    text = codecs.getincrementaldecoder(encoding)().decode(data, final=True)
                except UnicodeDecodeError as exc:
                    before = data[:exc.start].decode(encoding, errors="replace")
                    lineno = 1 + (len(_BREAK.findall(before)) if universal else before.count("\n"))
                    raise error(_undecodable(path, lineno, exc.start, data[exc.start:exc.start + 1], encoding, gz)) from None
                except UnicodeError as exc:
                    raise error(f"{path}: cannot decode the file as {encoding}: {exc} (it starts {data[:4]!r}); "
                                f"for UTF-16 without one, set `encoding: utf-16-le` (or utf-16-be)") from None
                yield from enumerate(io.StringIO(text, newline="" if universal else "\n"), start=1)
                return
            _sniff(fh.read(SNIFF_BYTES), path, error)
            fh.seek(0)
            lineno, offset = 0, 0
            for chunk in fh:  # binary files iterate in pieces ending at b"\n"
                for line in chunk.splitlines(keepends=True) if universal else (chunk,):
                    lineno += 1
                    try:
                        text = line.decode(encoding)
                    except UnicodeDecodeError as exc:
                        raise error(_undecodable(path, lineno, offset + exc.start, line[exc.start:exc.start + 1],
                                                 encoding, gz)) from None
                    yield lineno, text
                    offset += len(line)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:  # unreadable, or a truncated or corrupt .gz
        what = "its first bytes say it is compressed, but it does not decompress" if gz else f"as {encoding} text"
        raise error(f"{path}: could not read the file ({what}): {exc}") from exc


_COMPRESSED = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
_ARCHIVES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18",
             b"7z\xbc\xaf\x27\x1c", b"Rar!")


def _magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(262)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the file: {exc}") from exc


def _open_bytes(path: Path):
    """The file's bytes, decompressed when its first bytes say gzip, bzip2 or xz (as ``datasets`` does)."""
    magic = _magic(path)
    opener = next((fn for head, fn in _COMPRESSED.items() if magic.startswith(head)), open)
    return opener(path, "rb")


def _is_archive(path: Path) -> bool:
    """A zip, zstd, lz4, 7z, rar or tar file, which ``datasets`` unpacks and reads on its own."""
    magic = _magic(path)
    return magic.startswith(_ARCHIVES) or magic[257:262] == b"ustar"


class _BadJSON(ValueError):
    pass


def _unique_keys(pairs: list) -> dict:
    keys = Counter(key for key, _ in pairs)
    twice = [key for key, n in keys.items() if n > 1]
    if twice:
        raise _BadJSON(f"key {twice[0]!r} appears twice in one object (a reader keeps one of them)")
    return dict(pairs)


def _no_constant(name: str):
    raise _BadJSON(f"{name} is not valid JSON (use null)")


def json_object(text: str, where: str, error: type[Exception] = CorpusError) -> dict:
    """One JSON Lines record: valid JSON (no NaN, no key given twice) holding an object.

    >>> json_object('{"a": 1}', "f, line 1")
    {'a': 1}
    """
    try:
        record = json.loads(text.rstrip("\r\n"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc.msg} at column {exc.pos + 1})") from None
    except _BadJSON as exc:
        raise error(f"{where}: {exc}") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise error(f"{where}: expected a JSON object, got {'null' if record is None else type(record).__name__}")
    return record


def is_unicode(text: str) -> bool:
    """False for text holding an unpaired surrogate (JSON's ``"\\ud800"``), which no UTF-8 writer takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def few(values, n: int = 5) -> str:
    """A list for a message: at most ``n`` values, then how many there are in all.

    >>> few(["a", "b"]), few(range(9), 3)
    ("['a', 'b']", '[0, 1, 2, ... (9 in all)]')
    """
    values = list(values)
    if len(values) <= n:
        return repr(values)
    return f"[{', '.join(map(repr, values[:n]))}, ... ({len(values)} in all)]"


def _check_text(path: Path, lines, json_lines: bool = False, json_doc: bool = False) -> None:
    """Every line decodes (see ``decoded_lines``) and some line is not blank. ``json_lines``: every line
    that is not blank is one JSON object (see ``json_object``). ``json_doc``: a JSON document that is not
    ``null`` (pyarrow 25's JSON reader crashes the process on a document that starts with null)."""
    seen = blank = 0
    for lineno, text in lines:
        text = text.lstrip("\ufeff") if lineno == 1 else text
        seen, blank = seen + 1, blank + (not text.strip())
        if (json_lines or json_doc) and seen == blank + 1 and text.strip().startswith("null"):  # the first content
            raise CorpusError(f"{path}, line {lineno}: expected a JSON object, got null")
        if json_lines and text.strip():
            record = json_object(text, f"{path}, line {lineno}")
            if not is_unicode(json.dumps(record, ensure_ascii=False)):
                raise CorpusError(f"{path}, line {lineno}: an unpaired surrogate escape (such as \\ud800) "
                                  f"is not Unicode text")
    if seen == 0:
        raise CorpusError(f"{path}: the file is empty (0 bytes)")
    if seen == blank:
        raise CorpusError(f"{path}: the file holds only blank lines; expected rows")


def _check_table(path: Path, fmt: str, lines, header: bool = True, names: list[str] | None = None) -> int:
    """CSV/TSV layout, read from the raw lines: a header of distinct names (none when not ``header``), then
    records of as many fields (pandas would rename or drop a repeated name, pad a short record, take an extra
    field as the index), or of as many as ``names``. Blank lines are skipped, as pandas skips them. Returns the
    number of columns."""
    sep, word = ("\t", "tab") if fmt == "tsv" else (",", "comma")
    csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))
    raw: list[str] = []

    def feed():
        for _, text in lines:
            raw.append(text)
            yield text

    reader = csv.reader(feed(), delimiter=sep, quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
    blank = " \r\n" if fmt == "tsv" else " \t\r\n"
    headed = header
    header, header_line, rows, start, last = (None if headed else names), 0, 0, 1, (0, [])
    like = "as in the header" if headed else "as `columns` names" if names else "as in the first row"
    while True:
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise CorpusError(f"{path}, line {start}: {exc}") from exc
        if record is None:
            break
        text, last, raw[:] = "".join(raw), (start, list(raw)), []
        if not text.strip(blank):
            pass
        elif header is None and not headed:  # no header line, no names: the first row sets the width
            header, rows = record, 1
        elif header is None:
            header, header_line = [record[0].lstrip("\ufeff")] + record[1:], start
            twice = sorted(name for name, n in Counter(header).items() if n > 1 and name)
            if twice:
                raise CorpusError(f"{path}, line {start}: the header names the column(s) {', '.join(map(repr, twice))} "
                                  f"more than once; give each column its own name (a reader renames or drops repeats)")
        elif len(record) != len(header):
            hint = f"; a field that holds a {word} must be in double quotes" if len(record) > len(header) and fmt == "csv" else ""
            raise CorpusError(f"{path}, line {start} (row {rows + 1}): expected {len(header)} {word}-separated fields, "
                              f"{like}, got {len(record)}{hint}")
        else:
            rows += 1
        start = reader.line_num + 1
    if fmt == "csv" and last[1]:  # pandas refuses a quote still open at the end of the file
        try:
            list(csv.reader(last[1], strict=True))
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise CorpusError(f"{path}, line {last[0]}: a quoted field starts on this line and is never closed") from None
    if header is None or not (headed or rows):
        raise CorpusError(f"{path}: the file is empty (0 bytes)" if start == 1 else
                          f"{path}: the file holds only blank lines; expected {'a header line and ' * headed}rows")
    if not rows:
        raise CorpusError(f"{path}: the corpus is empty (no rows after the header on line {header_line})")
    return len(header)
