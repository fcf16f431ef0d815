"""Record batches written as CSV (pyarrow.csv) or Parquet (pyarrow.parquet), reproducibly.

Same rows, same bytes: Parquet row groups hold a fixed number of rows whatever
batch sizes the driver produced, every writer option is pinned, the Arrow
schema blob is not stored and ``created_by`` names the pyarrow series rather
than the patch release.  CSV is RFC 4180 with LF line ends (``\\n``): one header line,
the header quoted only where needed, values of text columns always quoted
(pyarrow.csv's style), NULL as an empty unquoted field and the empty string as ``""``,
timestamps in ISO 8601 (``T`` separator, ``Z`` for UTC), bytes as ``\\x`` + hex
(PostgreSQL's text form), lists as JSON arrays.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .columns import hex_binary

# Rows per Parquet row group (the last may be shorter).  Fixed so the bytes do not
# depend on how the driver batched the rows; small enough that a wide row group
# held in memory stays well under the 250 MiB budget.
ROW_GROUP_ROWS = 131_072

PARQUET_OPTIONS: MappingProxyType[str, Any] = MappingProxyType({
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "write_statistics": True,
    "data_page_version": "1.0",
    "data_page_size": 1 << 20,
    "dictionary_pagesize_limit": 1 << 20,
    "write_batch_size": 1024,
    "store_schema": False,
    "write_page_index": False,
    "write_page_checksum": False,
})


def dictionary_columns(schema: Any) -> list[str]:
    """Dictionary encoding for text and bytes columns only.

    Those repeat (names, codes, labels); numbers and times mostly do not, and a
    dictionary that overflows falls back to plain encoding in the middle of a row
    group, after costing the time to build it (2x slower, 1.5x larger measured).
    """
    import pyarrow as pa

    return [f.name for f in schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]


class ParquetFile:
    """A Parquet file written batch by batch in row groups of exactly ROW_GROUP_ROWS."""

    def __init__(self, schema: Any, path: Path):
        import pyarrow.parquet as pq

        self.schema = schema
        self.path = path
        self.rows = 0
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._writer = pq.ParquetWriter(str(path), schema,
                                        use_dictionary=dictionary_columns(schema),
                                        **PARQUET_OPTIONS)

    def write(self, batch: Any) -> None:
        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches(self._pending, schema=self.schema)
        group, rest = table.slice(0, rows), table.slice(rows)
        # one contiguous chunk per column: page boundaries must not follow batch edges
        self._writer.write_table(group.combine_chunks(), row_group_size=ROW_GROUP_ROWS)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._writer.close()
        pin_created_by(self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


def created_by_series() -> str:
    import pyarrow

    return f"parquet-cpp-arrow version {pyarrow.__version__.split('.')[0]}.0.0"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pin_created_by(path: Path) -> None:
    """Rewrite the footer's ``created_by`` from the patch release to its series.

    The footer is the file's last thrift struct; only the one string changes, and
    no offset points past the footer, so a different length is harmless.
    """
    import pyarrow

    old = f"parquet-cpp-arrow version {pyarrow.__version__}".encode()
    new = created_by_series().encode()
    if old == new:
        return
    with open(path, "r+b") as f:
        f.seek(-8, 2)
        tail = f.read(8)
        size = int.from_bytes(tail[:4], "little")
        f.seek(-8 - size, 2)
        footer = f.read(size)
        needle = _varint(len(old)) + old
        if tail[4:] != b"PAR1" or footer.count(needle) != 1:
            return
        footer = footer.replace(needle, _varint(len(new)) + new)
        f.seek(-8 - size, 2)
        f.write(footer + len(footer).to_bytes(4, "little") + b"PAR1")
        f.truncate()


# -- CSV ----------------------------------------------------------------------------

Render = Callable[[Any], Any]


def _iso_timestamp(array: Any) -> Any:
    import pyarrow.compute as pc

    return pc.replace_substring(array.cast("string"), " ", "T", max_replacements=1)


def _json_string(array: Any) -> Any:
    """Text as a JSON string literal: quoted, with backslash escapes."""
    import pyarrow.compute as pc

    text = pc.replace_substring(array, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    for char, escaped in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = pc.replace_substring(text, char, escaped)
    if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        for code in range(0x20):
            text = pc.replace_substring(text, chr(code), f"\\u{code:04x}")
    return pc.binary_join_element_wise('"', text, '"', "")


def _json_element(kind: Any) -> Render:
    """How one list element becomes JSON text (null -> ``null``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        inner: Render = _json_string
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        def inner(a: Any) -> Any:
            return _json_string(hex_binary(a))
    elif pa.types.is_timestamp(kind):
        def inner(a: Any) -> Any:
            return _json_string(_iso_timestamp(a))
    elif pa.types.is_temporal(kind):
        def inner(a: Any) -> Any:
            return _json_string(a.cast("string"))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _json_list(kind)
    else:
        def inner(a: Any) -> Any:
            return a.cast("string")

    def render(array: Any) -> Any:
        return pc.fill_null(inner(array), "null")
    return render


def _json_list(kind: Any) -> Render:
    import pyarrow as pa
    import pyarrow.compute as pc

    element = _json_element(kind.value_type)

    def render(array: Any) -> Any:
        if pa.types.is_large_list(array.type):
            array = array.cast(pa.list_(kind.value_type))
        texts = element(array.values)
        lists = pa.ListArray.from_arrays(array.offsets, texts, mask=array.is_null())
        return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")
    return render


def _csv_render(kind: Any) -> tuple[Any, Render | None]:
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return pa.string(), _iso_timestamp
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) \
            or pa.types.is_fixed_size_binary(kind):
        return pa.string(), hex_binary
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.string(), _json_list(kind)
    return kind, None


class CsvFile:
    """A CSV file: a header line, then every batch through pyarrow.csv."""

    def __init__(self, schema: Any, path: Path):
        import pyarrow as pa
        import pyarrow.csv as pacsv

        self.rows = 0
        self._plan = [_csv_render(field.type) for field in schema]
        self._schema = pa.schema([pa.field(f.name, kind)
                                  for f, (kind, _) in zip(schema, self._plan, strict=True)])
        options = pacsv.WriteOptions(include_header=False, delimiter=",", eol="\n",
                                     null_string="", quoting_style="needed", batch_size=4096)
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(schema.names)
        self._sink = pa.OSFile(str(path), "wb")
        try:
            self._sink.write(header.getvalue().encode())
            self._writer = pacsv.CSVWriter(self._sink, self._schema, write_options=options)
        except BaseException:
            self._sink.close()
            raise

    def write(self, batch: Any) -> None:
        import pyarrow as pa

        if not batch.num_rows:
            return
        arrays = [array if render is None else render(array)
                  for array, (_, render) in zip(batch.columns, self._plan, strict=True)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self.rows += batch.num_rows

    def close(self) -> None:
        self._writer.close()
        self._sink.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self._sink.close()


TableFile = ParquetFile | CsvFile


def open_file(fmt: str, schema: Any, path: Path) -> TableFile:
    return ParquetFile(schema, path) if fmt == "parquet" else CsvFile(schema, path)


def write_all(batches: Iterable[Any], files: list[TableFile]) -> None:
    """Every batch to every file: one read of a table serves each format asked for."""
    try:
        for batch in batches:
            for file in files:
                file.write(batch)
        for file in files:
            file.close()
    except BaseException:
        for file in files:
            file.abort()
        raise


def write_parquet(batches: Iterable[Any], schema: Any, path: Path) -> int:
    file = ParquetFile(schema, path)
    write_all(batches, [file])
    return file.rows
