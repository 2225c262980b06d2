//! The Arrow schema a writer embeds in a Parquet file (`ARROW:schema`), checked before the
//! Parquet reader converts it.
//!
//! The reader's conversion panics on types Arrow has no name for, where it should fail:
//! Polars writes its `Int128` columns as a bare 16-byte FIXED_LEN_BYTE_ARRAY with an
//! embedded 128-bit integer, and pyarrow refuses those files too. Ignoring the embedded
//! schema instead would read other columns as other types (a Polars `Duration` as plain
//! 64-bit integers) and a rewrite would drop the writer's types, so such a file is refused
//! by name, with the column and what to do.

use arrow::ipc::{self, Field, Type};
use base64::Engine;
use parquet::file::metadata::ParquetMetaData;

/// Why the file's embedded Arrow schema cannot be read, or `None` if it can (or there is
/// none). Mirrors what `arrow_ipc::convert::fb_to_schema` accepts.
pub fn unreadable(meta: &ParquetMetaData) -> Option<String> {
    let kv = meta.file_metadata().key_value_metadata()?;
    let value = kv
        .iter()
        .find(|kv| kv.key == parquet::arrow::ARROW_SCHEMA_META_KEY)?
        .value
        .as_deref()?;
    // What the reader does with a value it cannot decode is its own (clear) error.
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    let slice = match bytes.get(..4) {
        Some([255, 255, 255, 255]) if bytes.len() > 8 => &bytes[8..],
        _ => &bytes[..],
    };
    let schema = ipc::root_as_message(slice).ok()?.header_as_schema()?;
    let Some(fields) = schema.fields() else {
        return Some(explain("the schema", "no list of fields"));
    };
    let big_endian = schema.endianness() == ipc::Endianness::Big;
    fields.iter().find_map(|f| field(f, big_endian, &[]))
}

fn explain(column: &str, what: &str) -> String {
    format!(
        "its embedded Arrow schema (ARROW:schema) gives {column} {what}, which the Arrow reader cannot read (pyarrow refuses such a file too); have the writer cast the column to a type Arrow has (a Polars Int128 to Decimal(38, 0) or Int64), or rewrite the file without its Arrow schema"
    )
}

fn field(f: Field<'_>, big_endian: bool, path: &[&str]) -> Option<String> {
    let name = f.name().unwrap_or("");
    let mut here = path.to_vec();
    here.push(name);
    let column = format!("column `{}`", here.join("."));
    let bad = |what: String| Some(explain(&column, &what));
    if let Some(dict) = f.dictionary() {
        match dict.indexType() {
            Some(int) if matches!(int.bitWidth(), 8 | 16 | 32 | 64) => {}
            Some(int) => return bad(format!("a dictionary of {}-bit keys", int.bitWidth())),
            None => return bad("a dictionary without a key type".into()),
        }
    }
    let children = f.children();
    let child_count = children.map_or(0, |c| c.len());
    let need = |n: usize, what: &str| {
        (child_count != n).then(|| format!("a {what} of {child_count} child fields"))
    };
    // What is wrong with the field's own type, in words.
    let problem: Option<String> = match f.type_type() {
        Type::Null
        | Type::Bool
        | Type::Binary
        | Type::BinaryView
        | Type::LargeBinary
        | Type::Utf8
        | Type::Utf8View
        | Type::LargeUtf8
        | Type::Struct_ => None,
        Type::FixedSizeBinary => f
            .type_as_fixed_size_binary()
            .is_none()
            .then(|| "a fixed-size binary without a width".into()),
        Type::Int => match f.type_as_int() {
            Some(i) if matches!(i.bitWidth(), 8 | 16 | 32 | 64) => None,
            Some(i) => Some(format!(
                "a {}-bit {}integer",
                i.bitWidth(),
                if i.is_signed() { "" } else { "unsigned " }
            )),
            None => Some("an integer without a width".into()),
        },
        Type::FloatingPoint => match f.type_as_floating_point().map(|p| p.precision()) {
            Some(ipc::Precision::HALF | ipc::Precision::SINGLE | ipc::Precision::DOUBLE) => None,
            _ => Some("a floating-point type of unknown precision".into()),
        },
        Type::Date => match f.type_as_date().map(|d| d.unit()) {
            Some(ipc::DateUnit::DAY | ipc::DateUnit::MILLISECOND) => None,
            _ => Some("a date of unknown unit".into()),
        },
        Type::Time => match f.type_as_time().map(|t| (t.bitWidth(), t.unit())) {
            Some(
                (32, ipc::TimeUnit::SECOND | ipc::TimeUnit::MILLISECOND)
                | (64, ipc::TimeUnit::MICROSECOND | ipc::TimeUnit::NANOSECOND),
            ) => None,
            _ => Some("a time of unknown width or unit".into()),
        },
        Type::Timestamp => (!known_unit(f.type_as_timestamp().map(|t| t.unit())))
            .then(|| "a timestamp of unknown unit".into()),
        Type::Duration => (!known_unit(f.type_as_duration().map(|t| t.unit())))
            .then(|| "a duration of unknown unit".into()),
        Type::Interval => match f.type_as_interval().map(|t| t.unit()) {
            Some(
                ipc::IntervalUnit::YEAR_MONTH
                | ipc::IntervalUnit::DAY_TIME
                | ipc::IntervalUnit::MONTH_DAY_NANO,
            ) => None,
            _ => Some("an interval of unknown unit".into()),
        },
        Type::List | Type::LargeList | Type::ListView | Type::LargeListView => need(1, "list"),
        Type::FixedSizeList => need(1, "list").or_else(|| {
            f.type_as_fixed_size_list()
                .is_none()
                .then(|| "a fixed-size list without a size".into())
        }),
        Type::Map => need(1, "map").or_else(|| {
            f.type_as_map()
                .is_none()
                .then(|| "a map without its key order".into())
        }),
        Type::RunEndEncoded => need(2, "run-end encoding"),
        Type::Decimal => match f.type_as_decimal() {
            Some(_) if big_endian => Some("a big-endian decimal".into()),
            Some(d)
                if matches!(d.bitWidth(), 32 | 64 | 128 | 256)
                    && u8::try_from(d.precision()).is_ok()
                    && i8::try_from(d.scale()).is_ok() =>
            {
                None
            }
            Some(d) => Some(format!(
                "a {}-bit decimal({}, {})",
                d.bitWidth(),
                d.precision(),
                d.scale()
            )),
            None => Some("a decimal without precision".into()),
        },
        Type::Union => match f.type_as_union() {
            Some(u) if matches!(u.mode(), ipc::UnionMode::Dense | ipc::UnionMode::Sparse) => {
                let ids = u.typeIds().map_or(child_count, |ids| ids.len());
                let distinct = u.typeIds().is_none_or(|ids| {
                    let mut seen: Vec<i32> = ids.iter().collect();
                    seen.sort_unstable();
                    seen.dedup();
                    seen.len() == ids.len() && seen.iter().all(|i| i8::try_from(*i).is_ok())
                });
                (ids != child_count || !distinct)
                    .then(|| "a union whose type ids do not match its fields".into())
            }
            _ => Some("a union of unknown mode".into()),
        },
        other => Some(format!("the type {other:?}")),
    };
    if let Some(what) = problem {
        return bad(what);
    }
    children?.iter().find_map(|c| field(c, big_endian, &here))
}

fn known_unit(unit: Option<ipc::TimeUnit>) -> bool {
    matches!(
        unit,
        Some(
            ipc::TimeUnit::SECOND
                | ipc::TimeUnit::MILLISECOND
                | ipc::TimeUnit::MICROSECOND
                | ipc::TimeUnit::NANOSECOND
        )
    )
}

#[cfg(test)]
mod tests {
    use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

    fn footer(path: &str) -> ParquetMetaData {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let bytes = crate::storage::fs::real().read(&path).unwrap();
        ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::from(bytes))
            .unwrap()
    }

    #[test]
    fn a_128_bit_integer_is_named_and_every_arrow_type_passes() {
        let why = super::unreadable(&footer("testdata/polars_int128/p=1/part-0.parquet"));
        assert!(
            why.as_deref()
                .is_some_and(|w| w.contains("column `big` a 128-bit integer")),
            "{why:?}"
        );
        // Arrow schemas of every type pyarrow and Polars write, dictionaries, zones,
        // durations, nested lists and structs among them.
        for ok in [
            "testdata/polars_types/p=1/part-0.parquet",
            "testdata/pyarrow_alltypes/p=1/part-0.parquet",
            "testdata/null_columns/p=1/part-0.parquet",
        ] {
            assert_eq!(super::unreadable(&footer(ok)), None, "{ok}");
        }
    }
}
