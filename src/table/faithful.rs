//! A file's reading, proven against the values the file stores.
//!
//! The Arrow reader converts some Parquet values on the way in: INT96 to timestamps,
//! units to the ones an Arrow schema names, fixed-length decimals, INTERVAL bytes, narrow
//! integers. A conversion that lost something would be invisible to every later check,
//! because the checksum, the rewrite and the proof of the new file all start from that
//! reading. So wherever a leaf column is not simply copied out of the pages, the file is
//! read a second time with every leaf as its bare physical type (no annotation, no Arrow
//! schema), and the reading, turned back into those physical values by this module, must
//! equal them exactly. A file whose reading is not faithful is refused by name.
//!
//! Leaves read as a copy of their stored values (INT32 as Int32 or Date32, INT64 as Int64
//! or as a timestamp in the file's own unit, strings, binaries, floats, booleans,
//! decimals on INT32/INT64) are not read twice: most columns of most tables cost nothing.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, FixedSizeBinaryBuilder, Int64Array, PrimitiveArray,
    TimestampNanosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date64Type, Decimal256Type, Float16Type, Int64Type, TimeUnit,
    UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::basic::{ConvertedType, LogicalType, TimeUnit as ParquetUnit, Type as Physical};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{FileMetaData, ParquetMetaDataBuilder};
use parquet::schema::types::{ColumnDescPtr, ColumnDescriptor, SchemaDescriptor};

use super::reader::FileReader;

/// The second reading of a file, batch by batch beside the first.
pub struct Faithful {
    plain: ParquetRecordBatchStream<FileReader>,
    /// The root columns proven, with their leaves.
    roots: Vec<(usize, Vec<ColumnDescPtr>)>,
    /// Rows checked so far.
    rows: usize,
}

/// A proof for a file read with `read` ([`super::reader::reading`]), or `None` when
/// every leaf is read as a copy of its stored values. `batch_size` must be the first
/// reading's, so that batches pair up.
pub fn open(
    reader: FileReader,
    read: &ArrowReaderMetadata,
    batch_size: usize,
) -> Result<Option<Faithful>> {
    let meta = read.metadata();
    let descr = meta.file_metadata().schema_descr();
    let logical = super::reader::logical_schema(read);
    let mut roots: Vec<(usize, Vec<ColumnDescPtr>)> = Vec::new();
    for (r, field) in logical.fields().iter().enumerate() {
        let leaves: Vec<ColumnDescPtr> = (0..descr.num_columns())
            .filter(|&i| descr.get_column_root_idx(i) == r)
            .map(|i| descr.column(i))
            .collect();
        let mut types = Vec::new();
        super::reader::map_fields(field, &mut |leaf| {
            types.push(leaf.data_type().clone());
            leaf.clone()
        });
        if types.len() != leaves.len() {
            return Err(ParquetError::General(format!(
                "internal error: column {} has {} Arrow leaves and {} Parquet leaves",
                field.name(),
                types.len(),
                leaves.len()
            )));
        }
        if leaves.iter().zip(&types).any(|(c, t)| !copied(c, t)) {
            roots.push((r, leaves));
        }
    }
    if roots.is_empty() {
        return Ok(None);
    }
    let file = meta.file_metadata();
    let root = super::reader::map_parquet_leaves(descr.root_schema(), &mut |t| {
        let length = match t {
            parquet::schema::types::Type::PrimitiveType { type_length, .. } => *type_length,
            _ => -1,
        };
        super::reader::plain_leaf(t, t.get_physical_type(), length).map(Some)
    })?;
    let bare = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        None,
        Arc::new(SchemaDescriptor::new(root)),
        file.column_orders().cloned(),
    );
    let mut b = meta.as_ref().clone().into_builder();
    let row_groups = b.take_row_groups();
    let bare = ParquetMetaDataBuilder::new(bare)
        .set_row_groups(row_groups)
        .build();
    let plain = ArrowReaderMetadata::try_new(
        Arc::new(bare),
        ArrowReaderOptions::new().with_skip_arrow_metadata(true),
    )?;
    let mask = ProjectionMask::roots(
        plain.metadata().file_metadata().schema_descr(),
        roots.iter().map(|(r, _)| *r),
    );
    let plain = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, plain)
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()?;
    Ok(Some(Faithful {
        plain,
        roots,
        rows: 0,
    }))
}

impl Faithful {
    /// Checks the next batch of the first reading (as [`super::reader::logical_batch`]
    /// made it) against the stored values of the same rows.
    pub async fn check(&mut self, batch: &RecordBatch) -> Result<()> {
        let plain =
            self.plain.try_next().await?.ok_or_else(|| {
                ParquetError::General("the file's second reading ended early".into())
            })?;
        if plain.num_rows() != batch.num_rows() {
            return Err(ParquetError::General(format!(
                "the file's second reading gave {} rows where the first gave {}",
                plain.num_rows(),
                batch.num_rows()
            )));
        }
        for (i, (r, leaves)) in self.roots.iter().enumerate() {
            let name = batch.schema().field(*r).name().clone();
            let stored = plain.column(i);
            let read = same_containers(batch.column(*r), stored.data_type())?;
            let mut next = leaves.iter();
            let back = super::reader::map_arrays(&read, stored.data_type(), &mut |leaf, to| {
                let c = next.next().ok_or_else(|| {
                    ParquetError::General(format!(
                        "internal error: column {name} has too many leaves"
                    ))
                })?;
                physical(leaf, c, to).map(Some)
            })?;
            let mut next = leaves.iter();
            let stored = super::reader::map_arrays(stored, stored.data_type(), &mut |leaf, _| {
                let c = next.next().expect("counted above");
                Ok(minimal_decimal(leaf, c))
            })?;
            if back.as_ref() != stored.as_ref() {
                let row = (0..back.len())
                    .find(|&k| back.slice(k, 1).as_ref() != stored.slice(k, 1).as_ref())
                    .unwrap_or(0);
                let shown = |a: &ArrayRef| {
                    if a.is_null(row) {
                        return "NULL".to_string();
                    }
                    arrow::util::display::array_value_to_string(a, row)
                        .unwrap_or_else(|_| "?".into())
                };
                return Err(ParquetError::General(format!(
                    "column {name}: row {} of the file reads as {} where the file stores {} (the Arrow reader converts it with a loss), and this tool refuses the file rather than checksum or rewrite it wrongly",
                    self.rows + row,
                    shown(&back),
                    shown(&stored)
                )));
            }
        }
        self.rows += batch.num_rows();
        Ok(())
    }
}

fn without_dictionary(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, v) => v,
        t => t,
    }
}

/// The unit a Parquet TIME or TIMESTAMP leaf stores.
fn file_unit(c: &ColumnDescriptor) -> Option<TimeUnit> {
    let of = |u: &ParquetUnit| match u {
        ParquetUnit::MILLIS => TimeUnit::Millisecond,
        ParquetUnit::MICROS => TimeUnit::Microsecond,
        ParquetUnit::NANOS => TimeUnit::Nanosecond,
    };
    match c.logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => Some(of(&t.unit)),
        Some(LogicalType::Time(t)) => Some(of(&t.unit)),
        _ => match c.converted_type() {
            ConvertedType::TIME_MILLIS | ConvertedType::TIMESTAMP_MILLIS => {
                Some(TimeUnit::Millisecond)
            }
            ConvertedType::TIME_MICROS | ConvertedType::TIMESTAMP_MICROS => {
                Some(TimeUnit::Microsecond)
            }
            _ => None,
        },
    }
}

/// Whether the reader gives leaf `c` as `t` by copying its stored values.
fn copied(c: &ColumnDescriptor, t: &DataType) -> bool {
    use DataType as D;
    match (c.physical_type(), without_dictionary(t)) {
        (Physical::BOOLEAN, D::Boolean)
        | (Physical::FLOAT, D::Float32)
        | (Physical::DOUBLE, D::Float64)
        | (Physical::INT32, D::Int32 | D::Date32)
        | (Physical::INT64, D::Int64)
        | (
            Physical::INT32 | Physical::INT64,
            D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..),
        )
        | (
            Physical::BYTE_ARRAY,
            D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Binary | D::LargeBinary | D::BinaryView,
        ) => true,
        (Physical::FIXED_LEN_BYTE_ARRAY, D::FixedSizeBinary(n)) => *n == c.type_length(),
        (Physical::INT64, D::Timestamp(u, _) | D::Time64(u)) => file_unit(c) == Some(*u),
        (Physical::INT32, D::Time32(u)) => file_unit(c) == Some(*u),
        _ => false,
    }
}

/// `read` with the lists, maps and structs of `like` (a large or fixed-size list read
/// as the list it is stored as), its leaves unchanged.
fn same_containers(read: &ArrayRef, like: &DataType) -> Result<ArrayRef> {
    let mut leaves = Vec::new();
    super::reader::map_leaves(read.data_type(), &mut |t| {
        leaves.push(t.clone());
        t.clone()
    });
    let mut leaves = leaves.into_iter();
    let target = super::reader::map_leaves(like, &mut |t| leaves.next().unwrap_or(t.clone()));
    if &target == read.data_type() {
        return Ok(read.clone());
    }
    cast(read, &target).map_err(|e| ParquetError::General(e.to_string()))
}

fn failed(e: arrow::error::ArrowError) -> ParquetError {
    ParquetError::General(e.to_string())
}

fn map<T: ArrowPrimitiveType, O: ArrowPrimitiveType>(
    a: &ArrayRef,
    f: impl Fn(T::Native) -> O::Native,
) -> ArrayRef {
    Arc::new(a.as_primitive::<T>().unary::<_, O>(f))
}

/// How many of `to` one `from` is (`to` finer), or the inverse as a negative.
fn scale(from: TimeUnit, to: TimeUnit) -> i64 {
    let n = |u: TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    let d = n(to) - n(from);
    if d >= 0 {
        10i64.pow(d as u32)
    } else {
        -(10i64.pow((-d) as u32))
    }
}

/// Temporal values as i64 in their own unit, and that unit.
fn ticks(a: &ArrayRef) -> Result<(Int64Array, TimeUnit)> {
    let unit = match a.data_type() {
        DataType::Timestamp(u, _)
        | DataType::Time32(u)
        | DataType::Time64(u)
        | DataType::Duration(u) => *u,
        DataType::Date64 => TimeUnit::Millisecond,
        other => {
            return Err(ParquetError::General(format!(
                "internal error: {other} is not temporal"
            )))
        }
    };
    let v = cast(a, &DataType::Int64).map_err(failed)?;
    Ok((v.as_primitive::<Int64Type>().clone(), unit))
}

/// Values of `v` (in `from`) in unit `to`; a value that does not convert exactly becomes
/// one no file stores in that place, so that the comparison fails on it.
fn rescale(v: &Int64Array, from: TimeUnit, to: TimeUnit) -> Int64Array {
    let k = scale(from, to);
    v.unary(|x| {
        if k > 0 {
            x.wrapping_mul(k)
        } else if x % -k == 0 {
            x / -k
        } else {
            // Finer than the stored unit holds: cannot be the stored value.
            i64::MIN
        }
    })
}

/// The values of decimal leaf `a` as 256-bit unscaled integers.
fn unscaled(a: &ArrayRef) -> Result<PrimitiveArray<Decimal256Type>> {
    let scale = match a.data_type() {
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => *s,
        other => {
            return Err(ParquetError::General(format!(
                "internal error: {other} is not a decimal"
            )))
        }
    };
    let wide = cast(a, &DataType::Decimal256(76, scale)).map_err(failed)?;
    Ok(wide.as_primitive::<Decimal256Type>().clone())
}

/// Leaf `a` of the first reading as the physical values of `c`, typed `to` (the leaf's
/// type in the second reading).
fn physical(a: &ArrayRef, c: &ColumnDescriptor, to: &DataType) -> Result<ArrayRef> {
    use DataType as D;
    let a = match a.data_type() {
        D::Dictionary(_, v) => cast(a, v).map_err(failed)?,
        _ => a.clone(),
    };
    if a.data_type() == to {
        return Ok(a);
    }
    let out: ArrayRef = match (c.physical_type(), a.data_type()) {
        (Physical::INT32, D::Int8 | D::Int16 | D::UInt8 | D::UInt16 | D::Date32) => {
            cast(&a, &D::Int32).map_err(failed)?
        }
        (Physical::INT32, D::UInt32) => map::<UInt32Type, arrow::datatypes::Int32Type>(&a, |x| x as i32),
        (Physical::INT32, D::Date64) => map::<Date64Type, arrow::datatypes::Int32Type>(&a, |x| {
            if x % 86_400_000 == 0 {
                (x / 86_400_000) as i32
            } else {
                i32::MIN
            }
        }),
        (Physical::INT32 | Physical::INT64, D::Time32(_) | D::Time64(_) | D::Timestamp(..) | D::Duration(_)) => {
            let (v, unit) = ticks(&a)?;
            let v = rescale(&v, unit, file_unit(c).unwrap_or(unit));
            cast(&(Arc::new(v) as ArrayRef), to).map_err(failed)?
        }
        (Physical::INT64, D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 | D::UInt32) => {
            cast(&a, &D::Int64).map_err(failed)?
        }
        (Physical::INT64, D::UInt64) => map::<UInt64Type, Int64Type>(&a, |x| x as i64),
        (Physical::INT64, D::Date64) => cast(&a, &D::Int64).map_err(failed)?,
        (Physical::INT32, D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..)) => {
            let v = unscaled(&a)?;
            Arc::new(v.unary::<_, arrow::datatypes::Int32Type>(|x| x.to_i128().and_then(|x| i32::try_from(x).ok()).unwrap_or(i32::MIN)))
        }
        (Physical::INT64, D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..)) => {
            let v = unscaled(&a)?;
            Arc::new(v.unary::<_, Int64Type>(|x| x.to_i128().and_then(|x| i64::try_from(x).ok()).unwrap_or(i64::MIN)))
        }
        (Physical::INT96, D::Timestamp(unit, _)) => {
            // The second reading gives INT96 as 64-bit nanoseconds, wrapping as they do.
            let (v, unit) = (ticks(&a)?.0, *unit);
            let k = scale(unit, TimeUnit::Nanosecond);
            let ns: TimestampNanosecondArray = v.unary(|x| x.wrapping_mul(k));
            cast(&(Arc::new(ns) as ArrayRef), to).map_err(failed)?
        }
        (Physical::FIXED_LEN_BYTE_ARRAY, D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..)) => {
            fixed_width_decimals(&a, c.type_length().max(0) as usize)?
        }
        (Physical::BYTE_ARRAY, D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..)) => {
            let v = unscaled(&a)?;
            let values: Vec<Option<Vec<u8>>> = v.iter().map(|x| x.map(|x| minimal(&x.to_be_bytes()).to_vec())).collect();
            Arc::new(BinaryArray::from_iter(values))
        }
        (Physical::FIXED_LEN_BYTE_ARRAY, D::Float16) => {
            let f = a.as_primitive::<Float16Type>();
            let mut b = FixedSizeBinaryBuilder::with_capacity(f.len(), 2);
            for x in f.iter() {
                match x {
                    None => b.append_null(),
                    Some(x) => b.append_value(x.to_bits().to_le_bytes()).map_err(failed)?,
                }
            }
            Arc::new(b.finish())
        }
        (Physical::FIXED_LEN_BYTE_ARRAY, D::Interval(_)) => {
            super::interval::to_bytes(&a, &c.path().string())?
        }
        (Physical::FIXED_LEN_BYTE_ARRAY, D::FixedSizeBinary(_)) => a.clone(),
        (Physical::BYTE_ARRAY, _) => cast(&a, &D::Binary).map_err(failed)?,
        // An UNKNOWN (always NULL) column: the reader keeps only its NULLs, so the stored
        // column must hold nothing else.
        (_, D::Null) => arrow::array::new_null_array(to, a.len()),
        (p, t) => {
            return Err(ParquetError::General(format!(
                "column {}: a Parquet {p} read as {t} cannot be checked against the values it stores, so this tool refuses the file rather than checksum or rewrite it unchecked; cast the column to a plain type with the tool that wrote it",
                c.path().string()
            )))
        }
    };
    if out.data_type() != to {
        return cast(&out, to).map_err(failed);
    }
    Ok(out)
}

/// Decimal leaf `a` as the `n`-byte big-endian two's complement integers a
/// FIXED_LEN_BYTE_ARRAY decimal stores (one buffer, no allocation per value).
fn fixed_width_decimals(a: &ArrayRef, n: usize) -> Result<ArrayRef> {
    fn put(be: &[u8], n: usize, out: &mut [u8]) {
        let w = be.len();
        let (cut, kept) = be.split_at(w - n.min(w));
        let sign = if be[0] & 0x80 != 0 { 0xff } else { 0 };
        let start = n - kept.len();
        out[..start].fill(sign);
        out[start..].copy_from_slice(kept);
        if cut.iter().any(|&c| c != sign)
            || kept
                .first()
                .is_some_and(|b| (b & 0x80 != 0) != (sign == 0xff))
        {
            // Does not fit in n bytes: cannot be the stored value.
            out.iter_mut().for_each(|b| *b = !*b);
        }
    }
    let len = a.len();
    let mut buf = vec![0u8; len * n];
    let a = match a.data_type() {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
            cast(a, &DataType::Decimal128(*p, *s)).map_err(failed)?
        }
        _ => a.clone(),
    };
    match a.data_type() {
        DataType::Decimal128(..) => {
            let v = a.as_primitive::<arrow::datatypes::Decimal128Type>();
            for (i, x) in v.values().iter().enumerate() {
                put(&x.to_be_bytes(), n, &mut buf[i * n..(i + 1) * n]);
            }
        }
        _ => {
            let v = unscaled(&a)?;
            for (i, x) in v.values().iter().enumerate() {
                put(&x.to_be_bytes(), n, &mut buf[i * n..(i + 1) * n]);
            }
        }
    }
    let out = arrow::array::FixedSizeBinaryArray::try_new(n as i32, buf.into(), a.nulls().cloned())
        .map_err(failed)?;
    Ok(Arc::new(out))
}

/// A big-endian two's complement integer without the bytes that only repeat its sign.
fn minimal(be: &[u8]) -> &[u8] {
    let mut s = be;
    while s.len() > 1 && ((s[0] == 0 && s[1] & 0x80 == 0) || (s[0] == 0xff && s[1] & 0x80 != 0)) {
        s = &s[1..];
    }
    s
}

/// A stored BYTE_ARRAY decimal leaf in its shortest form (a writer may pad it), so that
/// it compares with [`physical`]'s; `None` for every other leaf.
fn minimal_decimal(leaf: &ArrayRef, c: &ColumnDescriptor) -> Option<ArrayRef> {
    let decimal = matches!(c.logical_type_ref(), Some(LogicalType::Decimal { .. }))
        || c.converted_type() == ConvertedType::DECIMAL;
    if !decimal || c.physical_type() != Physical::BYTE_ARRAY {
        return None;
    }
    let b = leaf.as_binary_opt::<i32>()?;
    let values: Vec<Option<Vec<u8>>> = b
        .iter()
        .map(|x| {
            x.map(|x| {
                if x.is_empty() {
                    vec![0]
                } else {
                    minimal(x).to_vec()
                }
            })
        })
        .collect();
    Some(Arc::new(BinaryArray::from_iter(values)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_bytes_are_dropped_and_nothing_else() {
        assert_eq!(minimal(&[0, 0, 1]), &[1]);
        assert_eq!(minimal(&[0, 0x80]), &[0, 0x80]);
        assert_eq!(minimal(&[0xff, 0xff, 0x80]), &[0x80]);
        assert_eq!(minimal(&[0xff, 0x7f]), &[0xff, 0x7f]);
        assert_eq!(minimal(&[0, 0]), &[0]);
    }

    #[test]
    fn units_convert_exactly_or_not_at_all() {
        let v = Int64Array::from(vec![1500, 2000]);
        let s = rescale(&v, TimeUnit::Millisecond, TimeUnit::Second);
        assert_eq!(s.values().as_ref(), &[i64::MIN, 2]);
        let ms = rescale(
            &Int64Array::from(vec![2]),
            TimeUnit::Second,
            TimeUnit::Millisecond,
        );
        assert_eq!(ms.values().as_ref(), &[2000]);
    }
}
