//! Writing the two 12-byte Parquet types the Arrow writer cannot write as they were:
//! INT96 timestamps, and INTERVALs with their months.
//!
//! A PLAIN or dictionary-encoded INT96 value is 12 bytes, nanoseconds of the day then
//! the Julian day, little-endian; an INTERVAL is months, days and milliseconds. Both
//! are the bytes of a 12-byte FIXED_LEN_BYTE_ARRAY. So a column holding such leaves is
//! encoded by the Arrow writer with those leaves as 12-byte binaries (levels, pages and
//! dictionary as for any column, nested or not), and its chunk is then described as
//! INT96 or INTERVAL again. Statistics are not written for those leaves: neither type
//! has a defined order, and readers ignore them.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, FixedSizeBinaryArray};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use parquet::basic::Type as PhysicalType;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::schema::types::{ColumnDescPtr, ColumnDescriptor, Type, TypePtr};

use crate::table::interval;
use crate::table::reader::{map_arrays, map_leaves, map_parquet_leaves, plain_leaf};

const JULIAN_DAY_OF_EPOCH: i128 = 2_440_588;
const NANOS_PER_DAY: i128 = 86_400_000_000_000;

fn is_twelve_bytes(t: &Type) -> bool {
    t.is_primitive()
        && (t.get_physical_type() == PhysicalType::INT96 || interval::is_interval_type(t))
}

/// Whether a leaf is INT96 or INTERVAL, written through this module.
pub(super) fn is_twelve_bytes_leaf(c: &ColumnDescriptor) -> bool {
    c.physical_type() == PhysicalType::INT96 || interval::is_interval(c)
}

/// Whether Parquet type `t` holds an INT96 or INTERVAL leaf.
pub(super) fn holds_twelve_bytes(t: &Type) -> bool {
    if t.is_primitive() {
        is_twelve_bytes(t)
    } else {
        t.get_fields().iter().any(|f| holds_twelve_bytes(f))
    }
}

/// `t` with each INT96 or INTERVAL leaf a plain 12-byte FIXED_LEN_BYTE_ARRAY.
pub(super) fn as_binary(t: &Type) -> Result<TypePtr> {
    map_parquet_leaves(t, &mut |leaf| {
        if is_twelve_bytes(leaf) {
            plain_leaf(leaf, PhysicalType::FIXED_LEN_BYTE_ARRAY, 12).map(Some)
        } else {
            Ok(None)
        }
    })
}

/// Arrow type `dt` (a column written as Parquet type `t`) with each INT96 or INTERVAL
/// leaf a 12-byte fixed-size binary, as the Arrow writer encodes [`as_binary`] of `t`.
pub(super) fn binary_type(dt: &DataType, t: &Type) -> DataType {
    let mut leaves = Vec::new();
    twelve_bytes_leaves(t, &mut leaves);
    let mut leaves = leaves.into_iter();
    map_leaves(dt, &mut |leaf| match leaves.next() {
        Some(true) => DataType::FixedSizeBinary(12),
        _ => leaf.clone(),
    })
}

fn twelve_bytes_leaves(t: &Type, out: &mut Vec<bool>) {
    if t.is_primitive() {
        out.push(is_twelve_bytes(t));
    } else {
        for f in t.get_fields() {
            twelve_bytes_leaves(f, out);
        }
    }
}

/// `array` (of top-level column `column`) as [`binary_type`] describes it: each
/// timestamp that stands for an INT96 leaf as its 12 INT96 bytes, each interval as its
/// 12 INTERVAL bytes (refused by name where it does not fit, [`interval::to_bytes`]).
pub(super) fn to_binary(array: &ArrayRef, target: &DataType, column: &str) -> Result<ArrayRef> {
    map_arrays(array, target, &mut |leaf, to| {
        Ok(match (leaf.data_type(), to) {
            (DataType::Timestamp(unit, _), DataType::FixedSizeBinary(12)) => {
                Some(int96_array(leaf, unit)?)
            }
            (DataType::Interval(_), DataType::FixedSizeBinary(12)) => {
                Some(interval::to_bytes(leaf, column)?)
            }
            _ => None,
        })
    })
}

fn int96_array(array: &ArrayRef, unit: &TimeUnit) -> Result<ArrayRef> {
    let failed = |e: arrow::error::ArrowError| ParquetError::General(e.to_string());
    let per_second: i128 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let ints = arrow::compute::cast(array, &DataType::Int64).map_err(failed)?;
    let ints = ints.as_primitive::<Int64Type>();
    let mut bytes = Vec::with_capacity(ints.len() * 12);
    for (i, v) in ints.values().iter().enumerate() {
        if arrow::array::Array::is_null(ints, i) {
            bytes.extend_from_slice(&[0; 12]);
        } else {
            bytes.extend_from_slice(&int96_bytes(*v as i128 * 1_000_000_000 / per_second)?);
        }
    }
    Ok(Arc::new(
        FixedSizeBinaryArray::try_new(
            12,
            Buffer::from_vec(bytes),
            arrow::array::Array::nulls(ints).cloned(),
        )
        .map_err(failed)?,
    ))
}

/// An instant in nanoseconds since 1970 as INT96: nanoseconds of the day (8 bytes) and
/// the Julian day (4 bytes), little-endian.
fn int96_bytes(nanos: i128) -> Result<[u8; 12]> {
    let day = nanos.div_euclid(NANOS_PER_DAY) + JULIAN_DAY_OF_EPOCH;
    let of_day = nanos.rem_euclid(NANOS_PER_DAY) as u64;
    let day = u32::try_from(day)
        .map_err(|_| ParquetError::General(format!("{nanos} ns is outside INT96's range")))?;
    let mut out = [0; 12];
    out[..8].copy_from_slice(&of_day.to_le_bytes());
    out[8..].copy_from_slice(&day.to_le_bytes());
    Ok(out)
}

/// Describes a chunk encoded from [`as_binary`]'s leaf as the INT96 or INTERVAL leaf
/// `descr` it is.
pub(super) fn describe_as(close: &mut ColumnCloseResult, descr: ColumnDescPtr) -> Result<()> {
    let m = &close.metadata;
    let mut b = ColumnChunkMetaData::builder(descr)
        .set_compression_codec(m.compression_codec())
        .set_encodings_mask(*m.encodings_mask())
        .set_total_compressed_size(m.compressed_size())
        .set_total_uncompressed_size(m.uncompressed_size())
        .set_num_values(m.num_values())
        .set_data_page_offset(m.data_page_offset())
        .set_dictionary_page_offset(m.dictionary_page_offset())
        .set_repetition_level_histogram(m.repetition_level_histogram().cloned())
        .set_definition_level_histogram(m.definition_level_histogram().cloned());
    if let Some(stats) = m.page_encoding_stats() {
        b = b.set_page_encoding_stats(stats.clone());
    }
    if let Some(mask) = m.page_encoding_stats_mask() {
        b = b.set_page_encoding_stats_mask(*mask);
    }
    close.metadata = b.build()?;
    // Its min and max would be of 12-byte binaries.
    close.column_index = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_encoded_as_spark_writes_them() {
        // 1970-01-01T00:00:00.000001Z: day 2440588, 1000 ns.
        let b = int96_bytes(1_000).unwrap();
        assert_eq!(&b[..8], &1000u64.to_le_bytes());
        assert_eq!(&b[8..], &2_440_588u32.to_le_bytes());
        // 0001-01-01T00:00:00Z (proleptic Gregorian) is Julian day 1721426.
        let b = int96_bytes(-62_135_596_800_000_000_000).unwrap();
        assert_eq!(&b[..8], &0u64.to_le_bytes());
        assert_eq!(&b[8..], &1_721_426u32.to_le_bytes());
        // One nanosecond before the epoch is the last of the previous day.
        let b = int96_bytes(-1).unwrap();
        assert_eq!(&b[..8], &(86_400_000_000_000u64 - 1).to_le_bytes());
        assert_eq!(&b[8..], &2_440_587u32.to_le_bytes());
    }
}
