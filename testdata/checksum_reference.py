"""An independent implementation of docs/CHECKSUM.md (spec v1) in Python, from the
spec's words only. It computes the test vectors published in the spec; the Rust tests
check that `backfill` gives the same values.

    python testdata/checksum_reference.py            # print the vectors
    python testdata/checksum_reference.py DIR...     # checksum Parquet partitions
    python testdata/checksum_reference.py --v1 DIR...  # ... as checksum version 1

Needs pyarrow and blake3 (PyPI).
"""
import decimal
import struct
import sys

import blake3
import pyarrow as pa
import pyarrow.parquet as pq

NULL, PRESENT = b"\x00", b"\x01"
UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def logical_type(t):
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_signed_integer(t):
        return "int64"
    if pa.types.is_unsigned_integer(t):
        return "uint64"
    if pa.types.is_floating(t):
        return "float64"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz is not None else "timestamp"
    if pa.types.is_duration(t):
        return "duration"
    if pa.types.is_interval(t):
        return "interval"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_map(t):
        return f"map<{logical_type(t.key_type)},{logical_type(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"list<{logical_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{logical_type(f.type)}" for f in t) + ">"
    if pa.types.is_dictionary(t):
        return logical_type(t.value_type)
    raise ValueError(f"type {t} not covered")


def canonical_f64(v):
    if v != v:
        return 0x7FF8000000000000
    if v == 0.0:
        return 0
    return struct.unpack("<Q", struct.pack("<d", v))[0]


# Checksum version 1 (docs/CHECKSUM.md, "Versioning"): decimal256 32 bytes wide whatever
# its precision, INT96 as 64-bit nanoseconds (wrapping), INTERVAL without its months.
V1 = False


def encode(t, v):
    """Encodes one Python value `v` of Arrow type `t` (marker included)."""
    if v is None or pa.types.is_null(t):
        return NULL
    if pa.types.is_dictionary(t):
        return encode(t.value_type, v)
    if pa.types.is_boolean(t):
        body = bytes([1 if v else 0])
    elif pa.types.is_signed_integer(t):
        body = struct.pack("<q", v)
    elif pa.types.is_unsigned_integer(t):
        body = struct.pack("<Q", v)
    elif pa.types.is_floating(t):
        body = struct.pack("<Q", canonical_f64(float(v)))
    elif pa.types.is_decimal(t):
        # Exactly: the default context keeps 28 digits, and decimals hold up to 76.
        with decimal.localcontext(prec=100):
            unscaled = int(decimal.Decimal(v).scaleb(t.scale))
        width = 8 if t.precision <= 18 else 16 if t.precision <= 38 else 32
        if V1 and isinstance(t, pa.Decimal256Type):
            width = 32
        body = unscaled.to_bytes(width, "little", signed=True)
    elif pa.types.is_date(t):
        body = struct.pack("<i", v)  # days, see raw()
    elif pa.types.is_time(t):
        body = struct.pack("<q", v * UNIT_NS[t.unit])
    elif pa.types.is_timestamp(t) or pa.types.is_duration(t):
        body = (v * UNIT_NS[t.unit]).to_bytes(16, "little", signed=True)
    elif pa.types.is_interval(t):
        body = struct.pack("<iiq", v.months, v.days, v.nanoseconds)
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        b = v.encode()
        body = struct.pack("<I", len(b)) + b
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        body = struct.pack("<I", len(v)) + v
    elif pa.types.is_map(t):
        body = struct.pack("<I", len(v))
        for k, x in v:
            body += PRESENT + encode(t.key_type, k) + encode(t.item_type, x)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        body = struct.pack("<I", len(v)) + b"".join(encode(t.value_type, x) for x in v)
    elif pa.types.is_struct(t):
        body = b"".join(encode(f.type, v[f.name]) for f in t)
    else:
        raise ValueError(f"type {t} not covered")
    return PRESENT + body


def raw(col):
    """Python values of a column, with dates as day numbers and times as integers."""
    t = col.type
    if pa.types.is_dictionary(t):
        return raw(col.cast(t.value_type))
    if pa.types.is_date32(t):
        return col.cast(pa.int32()).to_pylist()
    if pa.types.is_date64(t):
        return [None if v is None else v // 86_400_000 for v in col.cast(pa.int64()).to_pylist()]
    if pa.types.is_time32(t):
        return col.cast(pa.int32()).to_pylist()
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t):
        return col.cast(pa.int64()).to_pylist()
    u = as_ints(t)
    # A cast to the type a column already has is skipped: pyarrow 26 casting a list of
    # the null type gives a child as long as the list, not as its elements.
    return (col if u == t else col.cast(u)).to_pylist()


def as_ints(t):
    """Type `t` with nested dates, times and timestamps as the integers they hold."""
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return pa.int32()
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t):
        return pa.int64()
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, as_ints(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(pa.field(t.value_field.name, as_ints(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(pa.field(t.value_field.name, as_ints(t.value_type)), t.list_size)
    if pa.types.is_map(t):
        return pa.map_(as_ints(t.key_type), as_ints(t.item_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, as_ints(f.type), f.nullable) for f in t])
    return t


def read_partition_file(path):
    """A Parquet file as the spec reads it: INT96 at microseconds, UUID and JSON as their stored
    bytes and strings, and every INTERVAL
    leaf (12 bytes: months, days, milliseconds, unsigned little-endian) as an interval,
    which pyarrow gives as 12 raw bytes."""
    f = pq.ParquetFile(path, coerce_int96_timestamp_unit="ns" if V1 else "us")
    intervals = {
        f.schema.column(i).path
        for i in range(f.metadata.num_columns)
        if f.schema.column(i).converted_type == "INTERVAL"
    }
    table = f.read()
    if not V1:
        refuse_int96_fractions(path, f, table)
    # pyarrow gives Parquet's UUID and JSON as extension types: the spec hashes their
    # stored values (binary and string).
    table = pa.table([stored(c.combine_chunks()) for c in table.columns], names=table.schema.names)
    if not intervals:
        return table
    columns = [with_intervals(table.column(n).combine_chunks(), n, intervals) for n in table.schema.names]
    return pa.table(columns, names=table.schema.names)


def refuse_int96_fractions(path, f, table):
    """Raises on an INT96 value holding a fraction of a microsecond (the spec refuses the
    file). Read again at nanoseconds, which wrap modulo 2^64 outside 1677-2262: the
    fraction is what that reading adds to the microseconds, modulo 2^64. Only INT96
    leaves differ between the two readings (microseconds, then nanoseconds)."""
    if not any(f.schema.column(i).physical_type == "INT96" for i in range(f.metadata.num_columns)):
        return
    nanos = pq.ParquetFile(path, coerce_int96_timestamp_unit="ns").read()

    def walk(tu, tn, u, n, where):
        if u is None or n is None:
            return
        if pa.types.is_timestamp(tu) and tu != tn:
            if (n - u * 1000) % 2**64 != 0:
                raise ValueError(f"{path}: {where}: an INT96 value with a fraction of a microsecond is refused")
        elif pa.types.is_struct(tu):
            for fu, fn in zip(tu, tn):
                walk(fu.type, fn.type, u[fu.name], n[fn.name], where)
        elif pa.types.is_map(tu):
            for (ku, vu), (kn, vn) in zip(u, n):
                walk(tu.key_type, tn.key_type, ku, kn, where)
                walk(tu.item_type, tn.item_type, vu, vn, where)
        elif pa.types.is_list(tu) or pa.types.is_large_list(tu) or pa.types.is_fixed_size_list(tu):
            for a, b in zip(u, n):
                walk(tu.value_type, tn.value_type, a, b, where)

    for name in table.schema.names:
        tu, tn = table.schema.field(name).type, nanos.schema.field(name).type
        if tu == tn:
            continue
        us, ns = raw(table.column(name).combine_chunks()), raw(nanos.column(name).combine_chunks())
        for row, (u, n) in enumerate(zip(us, ns)):
            walk(tu, tn, u, n, f"column {name}, row {row}")


def stored(arr):
    """`arr` with every extension type, at any depth, as its storage."""
    t = arr.type
    if isinstance(t, pa.BaseExtensionType):
        return stored(arr.storage)
    if pa.types.is_map(t):
        keys, items = stored(arr.keys), stored(arr.items)
        if keys.type == t.key_type and items.type == t.item_type:
            return arr
        return pa.MapArray.from_arrays(arr.offsets, keys, items, mask=arr.is_null())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values = stored(arr.values)
        if values.type == t.value_type:
            return arr
        make = pa.ListArray if pa.types.is_list(t) else pa.LargeListArray
        return make.from_arrays(arr.offsets, values, mask=arr.is_null())
    if pa.types.is_fixed_size_list(t):
        values = stored(arr.values)
        if values.type == t.value_type:
            return arr
        return pa.FixedSizeListArray.from_arrays(values, t.list_size, mask=arr.is_null())
    if pa.types.is_struct(t):
        fields = [stored(arr.field(i)) for i in range(t.num_fields)]
        if all(f.type == t.field(i).type for i, f in enumerate(fields)):
            return arr
        return pa.StructArray.from_arrays(fields, names=[f.name for f in t], mask=arr.is_null())
    return arr


def with_intervals(arr, path, intervals):
    t = arr.type
    if path in intervals:
        def one(b):
            # v1 read them as Arrow's day-time interval does: signed days and milliseconds.
            months, days, ms = struct.unpack("<Iii" if V1 else "<III", b)
            assert months < 2**31 and days < 2**31, "refused by the spec"
            return (0 if V1 else months, days, ms * 10**6)
        return pa.array([None if b is None else one(b) for b in arr.to_pylist()], pa.month_day_nano_interval())
    if pa.types.is_list(t):
        values = with_intervals(arr.values, f"{path}.list.{t.value_field.name}", intervals)
        return pa.ListArray.from_arrays(arr.offsets, values, mask=arr.is_null())
    if pa.types.is_struct(t):
        fields = [with_intervals(arr.field(i), f"{path}.{f.name}", intervals) for i, f in enumerate(t)]
        return pa.StructArray.from_arrays(fields, names=[f.name for f in t], mask=arr.is_null())
    return arr


def pad(msg):
    n = max(1, -(-len(msg) // 64)) * 64
    return msg + b"\x00" * (n - len(msg))


def h16(msg):
    return int.from_bytes(blake3.blake3(pad(msg)).digest()[:16], "little")


def put_str(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def checksums(tables):
    """(partition checksum, {column: checksum}) of the rows of `tables` (one schema)."""
    schema = tables[0].schema if tables else pa.schema([])
    names = sorted(schema.names, key=lambda n: n.encode())
    types = {n: schema.field(n).type for n in names}
    rows, total, col_sums = 0, 0, {n: 0 for n in names}
    for table in tables:
        cols = {n: raw(table.column(n).combine_chunks()) for n in names}
        for i in range(table.num_rows):
            values = [encode(types[n], cols[n][i]) for n in names]
            total = (total + h16(b"".join(values))) % 2**128
            for n, v in zip(names, values):
                col_sums[n] = (col_sums[n] + h16(v)) % 2**128
        rows += table.num_rows
    head = b"backfill-checksum-v1" + struct.pack("<I", len(names))
    for n in names:
        head += put_str(n) + put_str(logical_type(types[n]))
    digest = blake3.blake3(head + struct.pack("<Q", rows) + total.to_bytes(16, "little")).hexdigest()
    columns = {}
    for n in names:
        body = b"backfill-column-checksum-v1" + put_str(n) + put_str(logical_type(types[n]))
        body += struct.pack("<Q", rows) + col_sums[n].to_bytes(16, "little")
        columns[n] = blake3.blake3(body).hexdigest()
    return digest, columns


def vectors():
    d = decimal.Decimal
    return {
        "empty": [],
        "one_int": [pa.table({"x": pa.array([1], pa.int64())})],
        "int_null": [pa.table({"x": pa.array([None], pa.int64())})],
        "strings": [pa.table({"s": pa.array(["", None, "a"])})],
        "duplicate": [pa.table({"s": pa.array(["a", "a"])})],
        "floats": [pa.table({"f": pa.array([0.0, -0.0, float("nan"), 1.5], pa.float64())})],
        "mixed": [
            pa.table(
                {
                    "name": pa.array(["x", None]),
                    "id": pa.array([1, 2], pa.int32()),
                    "ok": pa.array([True, False]),
                    "d": pa.array([19725, None], pa.date32()),
                    "amount": pa.array([d("1.25"), d("-3.00")], pa.decimal128(10, 2)),
                }
            )
        ],
        "timestamps": [
            pa.table(
                {
                    "ts": pa.array([0, 1_700_000_000_000], pa.timestamp("ms", tz="UTC")),
                    "t": pa.array([1, None], pa.timestamp("ns")),
                }
            )
        ],
        "nested": [
            pa.table(
                {
                    "l": pa.array([[1, None], []], pa.list_(pa.int64())),
                    "st": pa.array([{"a": 1, "b": "x"}, None], pa.struct([("a", pa.int64()), ("b", pa.string())])),
                    "m": pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64())),
                }
            )
        ],
        "binary": [
            pa.table(
                {
                    "b": pa.array([b"", b"\x00\xff"], pa.binary()),
                    "fb": pa.array([b"ab", None], pa.binary(2)),
                }
            )
        ],
        "long_row": [pa.table({"s": pa.array(["x" * 2000])})],
        # A row message of exactly 64 bytes (marker, length, 59 bytes) is one block.
        "row_64": [pa.table({"s": pa.array(["x" * 59])})],
        # A file with a schema and no rows: its columns are hashed, 0 rows, sum 0.
        "zero_rows": [pa.table({"x": pa.array([], pa.int64())})],
        # Field names go into type names as they are, even with < , : >.
        "odd_names": [
            pa.table(
                {"st": pa.array([{"a:b,c<d>": 1}], pa.struct([("a:b,c<d>", pa.int64())]))}
            )
        ],
        # Widths follow the precision whatever the Arrow type (v2): a decimal256 of
        # precision 20 hashes as a decimal128 of precision 20.
        "decimals": [
            pa.table(
                {
                    "a": pa.array([d("-1.00"), None], pa.decimal256(20, 2)),
                    "b": pa.array([d("1.25"), d("-3.00")], pa.decimal256(10, 2)),
                    "c": pa.array([d("-1.00"), d("0.01")], pa.decimal256(40, 2)),
                }
            )
        ],
        # Every digit counts: 38 digits in a decimal128, 76 in a decimal256.
        "long_decimals": [
            pa.table(
                {
                    "a": pa.array([d("-1234567890123456789012345678901234.5678")], pa.decimal128(38, 4)),
                    "b": pa.array([d("9" * 76)], pa.decimal256(76, 0)),
                }
            )
        ],
        # The other logical types: uint64, time, duration and null.
        "more_types": [
            pa.table(
                {
                    "u": pa.array([2**64 - 1, 0], pa.uint64()),
                    "t": pa.array([86_399_999_999, None], pa.time64("us")),
                    "du": pa.array([-1500, 0], pa.duration("ms")),
                    "n": pa.nulls(2),
                }
            )
        ],
        # Months, days and nanoseconds each hashed: 1 month is not 30 days.
        "intervals": [
            pa.table(
                {
                    "iv": pa.array(
                        [(14, 3, 4 * 3600 * 10**9), (1, 0, 0), (0, 30, 0), None],
                        pa.month_day_nano_interval(),
                    )
                }
            )
        ],
    }


if __name__ == "__main__":
    if len(sys.argv) > 1:
        import glob
        import os

        V1 = sys.argv[1] == "--v1"
        for d in sys.argv[1 + V1 :]:
            files = sorted(glob.glob(os.path.join(d, "*.parquet")))
            # As docs/CHECKSUM.md, "Parquet types", reads them.
            digest, _ = checksums([read_partition_file(f) for f in files])
            print(f"{d}  {digest}")
    else:
        for name, tables in vectors().items():
            digest, columns = checksums(tables)
            print(f"{name}  {digest}")
            for c, v in columns.items():
                print(f"  {c}  {v}")
