"""Arrow columns as a table export keeps them: one fixed type per database type.

Drivers hand over record batches whose types say more (or less) than a file
should: PostgreSQL numerics arrive as text tagged with their ``typmod``, JSON
and UUID as Arrow extension types, SQLite columns as whatever the first rows
held.  ``Conformer`` is built once per result from its schema (and, for
SQLite, the declared column types) and turns every batch into the exported
schema with Arrow compute kernels only: no Python object per value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidInputError

Convert = Callable[[Any], Any]          # pyarrow.Array -> pyarrow.Array

# PostgreSQL's numeric precision limit for decimal128; wider ones use decimal256.
_DECIMAL128_DIGITS = 38


class ColumnError(InvalidInputError):
    """A value that does not fit the column's exported type (exit 2: CAST it in a query)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: Any                   # the exported pyarrow.DataType
    convert: Convert | None     # None: the driver's array is kept as it is


def _pa() -> Any:
    import pyarrow

    return pyarrow


def _pc() -> Any:
    import pyarrow.compute

    return pyarrow.compute


# -- PostgreSQL -----------------------------------------------------------------

def numeric_type(typmod: int) -> Any:
    """numeric(p,s) -> decimal(p,s); unconstrained numeric (typmod -1) -> None (kept as text)."""
    if typmod < 4:
        return None
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    pa = _pa()
    if precision <= _DECIMAL128_DIGITS:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


# -- SQLite declared types ----------------------------------------------------------

def declared_type(decl: str) -> Any:
    """The Arrow type for a SQLite declared column type, or None to keep what the driver read.

    Follows SQLite's own affinity rules for the integer/text/blob/real families and
    recognises the common names for the other PostgreSQL types (DECIMAL(p,s),
    BOOLEAN, DATE, TIME, TIMESTAMP/DATETIME, TIMESTAMPTZ, JSON, UUID).
    """
    pa = _pa()
    text = decl.strip().upper()
    if not text:
        return None
    base = re.sub(r"\s*\(.*$", "", text)
    decimal = re.match(r"^(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", text)
    if decimal:
        precision, scale = int(decimal.group(1)), int(decimal.group(2) or 0)
        if 0 < precision <= 76 and scale <= precision:
            return pa.decimal128(precision, scale) if precision <= _DECIMAL128_DIGITS \
                else pa.decimal256(precision, scale)
        return None
    named = {
        "BOOLEAN": pa.bool_(), "BOOL": pa.bool_(),
        "DATE": pa.date32(),
        "TIME": pa.time64("us"),
        "DATETIME": pa.timestamp("us"), "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMP WITHOUT TIME ZONE": pa.timestamp("us"),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
        "JSON": pa.string(), "JSONB": pa.string(), "UUID": pa.string(),
        "SMALLINT": pa.int16(), "INT2": pa.int16(), "INT4": pa.int32(),
        "FLOAT4": pa.float32(),
    }
    if base in named:
        return named[base]
    if "INT" in base:
        return pa.int64()
    if any(word in base for word in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in base:
        return pa.binary()
    if any(word in base for word in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    return None


# -- conversions ----------------------------------------------------------------

def _storage(array: Any) -> Any:
    pa = _pa()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.storage if isinstance(array.type, pa.BaseExtensionType) else array


def _cast_to(target: Any) -> Convert:
    pa, pc = _pa(), _pc()

    def convert(array: Any) -> Any:
        array = _storage(array)
        source = array.type
        if pa.types.is_null(source) or array.null_count == len(array):
            return pa.nulls(len(array), target)  # no value: nothing to convert
        if pa.types.is_time(target) and pa.types.is_string(source):
            stamps = pc.binary_join_element_wise("1970-01-01T", array, "")
            return stamps.cast(pa.timestamp("us")).cast(target)
        if pa.types.is_decimal(target) and pa.types.is_integer(source):
            array = array.cast(pa.decimal128(_DECIMAL128_DIGITS, target.scale))
        if pa.types.is_decimal(target) and pa.types.is_floating(source):
            # SQLite keeps DECIMAL values as REAL: round to the declared scale.
            array = pc.round(array, target.scale)
        return array.cast(target)
    return convert


def _uuid_text(array: Any) -> Any:
    """fixed_size_binary(16) -> the canonical 8-4-4-4-12 lowercase text."""
    pa, pc = _pa(), _pc()
    array = _storage(array)
    data = array.buffers()[1]
    raw = data[array.offset * 16:(array.offset + len(array)) * 16] if data is not None else b""
    text = bytes(raw).hex().encode()
    # 32 hex digits a value: fixed-size text, cast to string in one step (no offsets built
    # one Python int per row)
    hexed = pa.Array.from_buffers(pa.binary(32), len(array),
                                  [None, pa.py_buffer(text)]).cast(pa.string())
    parts = [pc.utf8_slice_codeunits(hexed, a, b)
             for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    joined = pc.binary_join_element_wise(*parts, "-")
    return pc.if_else(array.is_valid(), joined, pa.scalar(None, pa.string()))


def hex_binary(array: Any) -> Any:
    """binary -> ``\\x`` + lowercase hex, as PostgreSQL writes bytea as text."""
    pa, pc = _pa(), _pc()
    array = _storage(array)
    if pa.types.is_large_binary(array.type):
        array = array.cast(pa.binary())
    offsets = pa.Array.from_buffers(pa.int32(), len(array) + 1, [None, array.buffers()[1]],
                                    offset=array.offset)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    data = array.buffers()[2]
    text = bytes(data[start:end]).hex().encode() if data is not None else b""
    doubled = pc.multiply(pc.subtract(offsets, start), 2).cast(pa.int32())
    hexed = pa.Array.from_buffers(pa.string(), len(array),
                                  [None, doubled.buffers()[1], pa.py_buffer(text)],
                                  offset=0)
    joined = pc.binary_join_element_wise("\\x", hexed, "")
    return pc.if_else(array.is_valid(), joined, pa.scalar(None, pa.string()))


def _keep_storage(array: Any) -> Any:
    return _storage(array)


def _list_of(convert: Convert, value_type: Any) -> Convert:
    pa = _pa()

    def run(array: Any) -> Any:
        array = _storage(array)
        values = convert(array.values)
        return pa.ListArray.from_arrays(array.offsets, values, pa.list_(value_type),
                                        mask=array.is_null())
    return run


def _conform_field(field: Any, declared: Any) -> Column:
    """How one driver column becomes one exported column."""
    pa = _pa()
    meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
    kind = field.type
    if declared is not None and not (_is_temporal(declared) and _is_number(kind)):
        # (a DATE/TIMESTAMP column holding numbers keeps them: their epoch is unknown)
        return Column(field.name, declared, None if kind == declared else _cast_to(declared))
    pg_type = meta.get("POSTGRESQL:type", "")
    if pg_type == "numeric" or (isinstance(kind, pa.BaseExtensionType)
                                and getattr(kind, "type_name", "") == "numeric"):
        target = numeric_type(int(meta.get("POSTGRESQL:typmod", "-1")))
        if target is not None:
            return Column(field.name, target, _cast_to(target))
        return Column(field.name, pa.string(), _keep_storage)
    if isinstance(kind, pa.BaseExtensionType):
        name = getattr(kind, "extension_name", "")
        storage = kind.storage_type
        if name == "arrow.uuid":
            return Column(field.name, pa.string(), _uuid_text)
        if name in ("arrow.json", "arrow.opaque") and (pa.types.is_string(storage)
                                                       or pa.types.is_large_string(storage)):
            return Column(field.name, storage, _keep_storage)
        raise ColumnError(f"column {field.name!r} has type "
                          f"{meta.get('POSTGRESQL:type') or name} that has no file type; "
                          "CAST it (for example to text) in a query")
    if pa.types.is_null(kind):
        return Column(field.name, pa.string(), _cast_to(pa.string()))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _conform_field(pa.field("item", kind.value_type, metadata=None), None)
        if inner.convert is None:
            return Column(field.name, pa.list_(kind.value_type), None
                          if pa.types.is_list(kind) else _cast_to(pa.list_(kind.value_type)))
        return Column(field.name, pa.list_(inner.type), _list_of(inner.convert, inner.type))
    if pa.types.is_interval(kind) or pa.types.is_duration(kind) or pa.types.is_struct(kind) \
            or pa.types.is_map(kind) or pa.types.is_dictionary(kind) or pa.types.is_union(kind):
        raise ColumnError(f"column {field.name!r} has type "
                          f"{meta.get('POSTGRESQL:type') or kind} that has no file type; "
                          "CAST it (for example to text) in a query")
    if pa.types.is_timestamp(kind) and kind.tz is not None and kind.tz.upper() != "UTC":
        target = pa.timestamp(kind.unit, tz="UTC")
        return Column(field.name, target, _cast_to(target))
    return Column(field.name, kind, None)


def _is_temporal(kind: Any) -> bool:
    pa = _pa()
    return bool(pa.types.is_temporal(kind))


def _is_number(kind: Any) -> bool:
    pa = _pa()
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


class Conformer:
    """Turns a driver's batches into the exported schema (plain fields, no metadata)."""

    def __init__(self, schema: Any, declared: Mapping[str, Any] | None = None):
        pa = _pa()
        declared = declared or {}
        self.columns = tuple(_conform_field(f, declared.get(f.name)) for f in schema)
        self.schema = pa.schema([pa.field(c.name, c.type) for c in self.columns])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def __call__(self, batch: Any) -> Any:
        pa = _pa()
        arrays = []
        for column, array in zip(self.columns, batch.columns, strict=True):
            if column.convert is not None:
                try:
                    array = column.convert(array)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError,
                        pa.ArrowTypeError) as exc:
                    raise ColumnError(f"column {column.name!r}: a value does not fit "
                                      f"{column.type} ({_first_line(exc)}); CAST it in a "
                                      "query") from None
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
