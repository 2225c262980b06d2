//! Parquet INTERVAL columns, read with their months.
//!
//! A Parquet INTERVAL is 12 bytes: months, days and milliseconds, little-endian unsigned
//! 32-bit integers (DuckDB refuses to write a negative one). The Arrow reader decodes
//! it as days and milliseconds only, so its months would be missing from every checksum
//! and every rewrite. Instead, [`without_annotation`] describes those leaves as plain
//! 12-byte binaries, which the reader decodes raw, marked in the Arrow field's metadata;
//! [`logical_schema`] and [`logical_batch`] then turn the marked binaries into
//! month-day-nanosecond intervals, which lose nothing (a millisecond is 10⁶ ns).
//!
//! The row groups keep the file's own column descriptions: chunks copied into a new
//! file stay INTERVAL. Writing is [`to_bytes`], used by `stage`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeBinaryArray, IntervalMonthDayNanoArray};
use arrow::buffer::Buffer;
use arrow::datatypes::{
    DataType, Field, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit,
    IntervalYearMonthType, Schema, SchemaRef,
};
use arrow::record_batch::RecordBatch;
use parquet::basic::{ConvertedType, Type as PhysicalType};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{FileMetaData, ParquetMetaData, ParquetMetaDataBuilder};
use parquet::schema::types::{ColumnDescriptor, SchemaDescriptor, Type, TypePtr};

/// Arrow field metadata marking a 12-byte binary read from a Parquet INTERVAL.
const MARK: &str = "backfill.parquet_interval";

const NANOS_PER_MILLI: i64 = 1_000_000;

/// The type the tool reads and writes a Parquet INTERVAL as.
pub const LOGICAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

/// Whether a leaf is a Parquet INTERVAL.
pub fn is_interval(c: &ColumnDescriptor) -> bool {
    c.converted_type() == ConvertedType::INTERVAL
}

/// Whether a Parquet type is an INTERVAL leaf.
pub fn is_interval_type(t: &Type) -> bool {
    t.is_primitive() && t.get_basic_info().converted_type() == ConvertedType::INTERVAL
}

/// The raw Arrow field a Parquet INTERVAL leaf is read as: 12 bytes, marked.
pub fn raw_field(field: &Field) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(MARK.into(), "raw".into());
    Field::new(
        field.name(),
        DataType::FixedSizeBinary(12),
        field.is_nullable(),
    )
    .with_metadata(metadata)
}

/// `meta` with every INTERVAL leaf of its file schema described as a plain 12-byte
/// binary, so that the reader decodes its bytes as they are; `None` if it has none.
pub fn without_annotation(meta: &ParquetMetaData) -> Result<Option<Arc<ParquetMetaData>>> {
    let file = meta.file_metadata();
    let descr = file.schema_descr();
    if !descr.columns().iter().any(|c| is_interval(c)) {
        return Ok(None);
    }
    let root = crate::table::reader::map_parquet_leaves(descr.root_schema(), &mut |t| {
        if is_interval_type(t) {
            crate::table::reader::plain_leaf(t, PhysicalType::FIXED_LEN_BYTE_ARRAY, 12).map(Some)
        } else {
            Ok(None)
        }
    })?;
    let patched = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        file.key_value_metadata().cloned(),
        Arc::new(SchemaDescriptor::new(root)),
        file.column_orders().cloned(),
    );
    let mut b = meta.clone().into_builder();
    let row_groups = b.take_row_groups();
    let column_index = b.take_column_index();
    let offset_index = b.take_offset_index();
    Ok(Some(Arc::new(
        ParquetMetaDataBuilder::new(patched)
            .set_row_groups(row_groups)
            .set_column_index(column_index)
            .set_offset_index(offset_index)
            .build(),
    )))
}

fn is_marked(f: &Field) -> bool {
    f.metadata().contains_key(MARK)
}

/// Whether a schema read by `reading` holds raw INTERVAL bytes.
pub fn any_raw(schema: &SchemaRef) -> bool {
    let mut any = false;
    for f in schema.fields() {
        crate::table::reader::map_fields(f, &mut |leaf| {
            any |= is_marked(leaf);
            leaf.clone()
        });
    }
    any
}

/// The schema a file read with [`without_annotation`] stands for: each marked binary a
/// month-day-nanosecond interval. The same `Arc` if there is none.
pub fn logical_schema(schema: &SchemaRef) -> SchemaRef {
    let mut any = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            crate::table::reader::map_fields(f, &mut |leaf| {
                if is_marked(leaf) {
                    any = true;
                    let mut metadata = leaf.metadata().clone();
                    metadata.remove(MARK);
                    Field::new(leaf.name(), LOGICAL, leaf.is_nullable()).with_metadata(metadata)
                } else {
                    leaf.clone()
                }
            })
        })
        .collect();
    if !any {
        return schema.clone();
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` as `logical` ([`logical_schema`] of its schema) says: raw INTERVAL bytes as
/// month-day-nanosecond intervals.
pub fn logical_batch(batch: RecordBatch, logical: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref() == logical {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(logical.fields())
        .map(|(c, f)| {
            crate::table::reader::map_arrays(c, f.data_type(), &mut |leaf, target| match (
                leaf.data_type(),
                target,
            ) {
                (DataType::FixedSizeBinary(12), &LOGICAL) => from_bytes(leaf, f.name()).map(Some),
                _ => Ok(None),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(logical.clone(), columns).map_err(|e| ParquetError::General(e.to_string()))
}

/// Raw INTERVAL bytes as intervals, or an error naming `column` where months or days
/// exceed what an Arrow interval holds (2³¹ − 1).
fn from_bytes(raw: &ArrayRef, column: &str) -> Result<ArrayRef> {
    let raw = raw.as_fixed_size_binary();
    let word = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let mut values = Vec::with_capacity(raw.len());
    for i in 0..raw.len() {
        if raw.is_null(i) {
            values.push(IntervalMonthDayNanoType::make_value(0, 0, 0));
            continue;
        }
        let b = raw.value(i);
        let (months, days) = (i32::try_from(word(b, 0)), i32::try_from(word(b, 4)));
        let (Ok(months), Ok(days)) = (months, days) else {
            return Err(ParquetError::General(format!(
                "column {column} holds a Parquet INTERVAL of {} months and {} days, more than this tool's intervals hold (2147483647 of each); it refuses the file rather than checksum or rewrite it wrongly. Store the column as text, or as separate month, day and millisecond columns",
                word(b, 0),
                word(b, 4)
            )));
        };
        values.push(IntervalMonthDayNanoType::make_value(
            months,
            days,
            word(b, 8) as i64 * NANOS_PER_MILLI,
        ));
    }
    Ok(Arc::new(IntervalMonthDayNanoArray::new(
        values.into(),
        raw.nulls().cloned(),
    )))
}

/// An interval column as the 12 bytes of a Parquet INTERVAL each (three unsigned 32-bit
/// integers), or an error naming `column` where a value does not fit: a negative field,
/// a fraction of a millisecond, or more milliseconds than 32 bits hold.
pub fn to_bytes(array: &ArrayRef, column: &str) -> Result<ArrayRef> {
    let n = array.len();
    let mut bytes = Vec::with_capacity(n * 12);
    let does_not_fit = |what: String| {
        ParquetError::General(format!(
            "column {column} holds the interval {what}, which a Parquet INTERVAL (months, days and milliseconds, each unsigned 32 bits) cannot hold; change it in the SQL (or cast the column to another type) and run again"
        ))
    };
    let mut push = |months: i32, days: i32, nanos: i64| -> Result<()> {
        let what = || format!("{months} months {days} days {nanos} ns");
        let millis = (nanos % NANOS_PER_MILLI == 0)
            .then_some(nanos / NANOS_PER_MILLI)
            .and_then(|m| u32::try_from(m).ok());
        let (Ok(m), Ok(d), Some(ms)) = (u32::try_from(months), u32::try_from(days), millis) else {
            return Err(does_not_fit(what()));
        };
        bytes.extend_from_slice(&m.to_le_bytes());
        bytes.extend_from_slice(&d.to_le_bytes());
        bytes.extend_from_slice(&ms.to_le_bytes());
        Ok(())
    };
    let valid = |i: usize| array.is_valid(i);
    match array.data_type() {
        DataType::Interval(IntervalUnit::YearMonth) => {
            let a = array.as_primitive::<IntervalYearMonthType>();
            for (i, v) in a.values().iter().enumerate() {
                if valid(i) {
                    push(*v, 0, 0)?
                } else {
                    push(0, 0, 0)?
                }
            }
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let a = array.as_primitive::<IntervalDayTimeType>();
            for (i, v) in a.values().iter().enumerate() {
                if valid(i) {
                    push(0, v.days, v.milliseconds as i64 * NANOS_PER_MILLI)?
                } else {
                    push(0, 0, 0)?
                }
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let a = array.as_primitive::<IntervalMonthDayNanoType>();
            for (i, v) in a.values().iter().enumerate() {
                if valid(i) {
                    push(v.months, v.days, v.nanoseconds)?
                } else {
                    push(0, 0, 0)?
                }
            }
        }
        other => {
            return Err(ParquetError::General(format!(
                "internal error: {other} written as a Parquet INTERVAL"
            )))
        }
    }
    Ok(Arc::new(
        FixedSizeBinaryArray::try_new(12, Buffer::from_vec(bytes), array.nulls().cloned())
            .map_err(|e| ParquetError::General(e.to_string()))?,
    ))
}

/// Whether Parquet type `t` holds an INTERVAL leaf.
pub fn holds_interval(t: &TypePtr) -> bool {
    if t.is_primitive() {
        is_interval_type(t)
    } else {
        t.get_fields().iter().any(holds_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_days_and_milliseconds_survive_both_ways() {
        let values = IntervalMonthDayNanoArray::from(vec![
            Some(IntervalMonthDayNanoType::make_value(
                14,
                3,
                4 * 3_600_000 * NANOS_PER_MILLI,
            )),
            Some(IntervalMonthDayNanoType::make_value(
                i32::MAX,
                i32::MAX,
                u32::MAX as i64 * NANOS_PER_MILLI,
            )),
            None,
        ]);
        let array: ArrayRef = Arc::new(values.clone());
        let raw = to_bytes(&array, "iv").unwrap();
        let b = raw.as_fixed_size_binary();
        assert_eq!(
            b.value(0),
            [14, 0, 0, 0, 3, 0, 0, 0, 0x00, 0xBA, 0xDB, 0x00]
        );
        assert_eq!(
            b.value(1),
            [0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert!(b.is_null(2));
        let back = from_bytes(&raw, "iv").unwrap();
        assert_eq!(back.as_primitive::<IntervalMonthDayNanoType>(), &values);
    }

    #[test]
    fn what_an_interval_cannot_hold_is_refused_by_name() {
        for (months, days, nanos) in [
            (0, 0, 1),
            (-1, 0, 0),
            (0, -1, 0),
            (0, 0, (1 << 32) * NANOS_PER_MILLI),
        ] {
            let array: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
                IntervalMonthDayNanoType::make_value(months, days, nanos),
            ]));
            let e = to_bytes(&array, "iv").unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "column iv holds the interval {months} months {days} days {nanos} ns"
                )),
                "{e}"
            );
        }
        // Months beyond 2³¹ − 1 (stored unsigned) are refused on reading.
        let raw: ArrayRef = Arc::new(
            FixedSizeBinaryArray::try_from_iter(
                [[0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]].into_iter(),
            )
            .unwrap(),
        );
        let e = from_bytes(&raw, "iv").unwrap_err().to_string();
        assert!(
            e.contains("column iv holds a Parquet INTERVAL of 2147483648 months"),
            "{e}"
        );
    }
}
