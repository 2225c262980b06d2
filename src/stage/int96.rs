//! Writing INT96 timestamps again, which the Arrow writer cannot do.
//!
//! A PLAIN or dictionary-encoded INT96 value is 12 bytes, nanoseconds of the day then
//! the Julian day, little-endian: the same bytes as a 12-byte FIXED_LEN_BYTE_ARRAY. So a
//! column holding INT96 leaves is encoded by the Arrow writer with those leaves as
//! 12-byte binaries (levels, pages and dictionary as for any column, nested or not), and
//! its chunk is then described as INT96 again. Statistics are not written for those
//! leaves: INT96 has no defined order, and readers ignore them.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeListArray, LargeListArray, ListArray,
    MapArray, StructArray,
};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use parquet::basic::Type as PhysicalType;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::schema::types::{ColumnDescPtr, Type, TypePtr};

const JULIAN_DAY_OF_EPOCH: i128 = 2_440_588;
const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// Whether Parquet type `t` holds an INT96 leaf.
pub fn holds_int96(t: &Type) -> bool {
    if t.is_primitive() {
        t.get_physical_type() == PhysicalType::INT96
    } else {
        t.get_fields().iter().any(|f| holds_int96(f))
    }
}

/// `t` with each INT96 leaf a 12-byte FIXED_LEN_BYTE_ARRAY (same name, repetition, id).
pub fn as_binary(t: &Type) -> Result<TypePtr> {
    let info = t.get_basic_info();
    if t.is_primitive() {
        if t.get_physical_type() != PhysicalType::INT96 {
            return Ok(Arc::new(t.clone()));
        }
        let mut b = Type::primitive_type_builder(t.name(), PhysicalType::FIXED_LEN_BYTE_ARRAY)
            .with_length(12)
            .with_repetition(info.repetition());
        if info.has_id() {
            b = b.with_id(Some(info.id()));
        }
        return b.build().map(Arc::new);
    }
    let fields = t
        .get_fields()
        .iter()
        .map(|f| as_binary(f))
        .collect::<Result<Vec<_>>>()?;
    let mut b = Type::group_type_builder(t.name())
        .with_fields(fields)
        .with_logical_type(info.logical_type_ref().cloned())
        .with_converted_type(info.converted_type());
    if info.has_repetition() {
        b = b.with_repetition(info.repetition());
    }
    if info.has_id() {
        b = b.with_id(Some(info.id()));
    }
    b.build().map(Arc::new)
}

/// Arrow type `dt` (a column read from Parquet type `t`) with each INT96 leaf a 12-byte
/// fixed-size binary, as the Arrow writer encodes [`as_binary`] of `t`.
pub fn binary_type(dt: &DataType, t: &Type) -> DataType {
    let mut leaves = Vec::new();
    primitive_leaves(t, &mut leaves);
    let mut leaves = leaves.into_iter();
    crate::table::reader::map_leaves(dt, &mut |leaf| match leaves.next() {
        Some(PhysicalType::INT96) => DataType::FixedSizeBinary(12),
        _ => leaf.clone(),
    })
}

fn primitive_leaves(t: &Type, out: &mut Vec<PhysicalType>) {
    if t.is_primitive() {
        out.push(t.get_physical_type());
    } else {
        for f in t.get_fields() {
            primitive_leaves(f, out);
        }
    }
}

/// `array` as [`binary_type`] describes it: each timestamp that stands for an INT96 leaf
/// (`target` says which) as its 12 INT96 bytes.
pub fn to_binary(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    let failed = |e: arrow::error::ArrowError| ParquetError::General(e.to_string());
    Ok(match (array.data_type(), target) {
        (DataType::Timestamp(unit, _), DataType::FixedSizeBinary(12)) => {
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
                if ints.is_null(i) {
                    bytes.extend_from_slice(&[0; 12]);
                } else {
                    bytes.extend_from_slice(&int96_bytes(*v as i128 * 1_000_000_000 / per_second)?);
                }
            }
            Arc::new(
                FixedSizeBinaryArray::try_new(12, Buffer::from_vec(bytes), ints.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields)
                .map(|(c, f)| to_binary(c, f.data_type()))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(
                StructArray::try_new(fields.clone(), columns, s.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::List(_), DataType::List(f)) => {
            let l = array.as_list::<i32>();
            let values = to_binary(l.values(), f.data_type())?;
            Arc::new(
                ListArray::try_new(f.clone(), l.offsets().clone(), values, l.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::LargeList(_), DataType::LargeList(f)) => {
            let l = array.as_list::<i64>();
            let values = to_binary(l.values(), f.data_type())?;
            Arc::new(
                LargeListArray::try_new(f.clone(), l.offsets().clone(), values, l.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::FixedSizeList(_, n), DataType::FixedSizeList(f, _)) => {
            let l = array.as_fixed_size_list();
            let values = to_binary(l.values(), f.data_type())?;
            Arc::new(
                FixedSizeListArray::try_new(f.clone(), *n, values, l.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::Map(_, sorted), DataType::Map(f, _)) => {
            let m = array.as_map();
            let entries: ArrayRef = Arc::new(m.entries().clone());
            let entries = to_binary(&entries, f.data_type())?;
            Arc::new(
                MapArray::try_new(
                    f.clone(),
                    m.offsets().clone(),
                    entries.as_struct().clone(),
                    m.nulls().cloned(),
                    *sorted,
                )
                .map_err(failed)?,
            )
        }
        (from, to) if from == to => array.clone(),
        (from, to) => {
            return Err(ParquetError::General(format!(
                "internal error: {from} cannot be encoded as {to} for INT96"
            )))
        }
    })
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

/// Describes a chunk encoded from [`as_binary`]'s leaf as the INT96 leaf `descr` it is.
pub fn describe_as_int96(close: &mut ColumnCloseResult, descr: ColumnDescPtr) -> Result<()> {
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
