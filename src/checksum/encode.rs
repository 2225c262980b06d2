//! The canonical value encoding of checksum v1 (docs/CHECKSUM.md, "Encoding").
//!
//! Every value is a marker byte (0x00 NULL, 0x01 present) and, when present, a
//! payload that depends only on the logical value, never on the Arrow or Parquet
//! physical type. `Col` is one column of one batch, normalised once so that the
//! per-row work is a match on a known variant.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryViewArray, BooleanArray, Date32Array, Decimal128Array,
    Decimal256Array, FixedSizeBinaryArray, Float64Array, GenericBinaryArray, GenericStringArray,
    Int64Array, StringViewArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use arrow::datatypes::{
    Date64Type, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, Float16Type, Float32Type, IntervalDayTimeType, IntervalMonthDayNanoType,
    IntervalYearMonthType, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

use crate::error::{Error, Result};

pub(crate) const NULL: u8 = 0x00;
pub(crate) const PRESENT: u8 = 0x01;

/// The logical type name a column is hashed as; part of the checksum (docs/CHECKSUM.md, "Types").
pub fn logical_type(field_name: &str, dt: &DataType) -> Result<String> {
    use DataType::*;
    Ok(match dt {
        Null => "null".into(),
        Boolean => "bool".into(),
        Int8 | Int16 | Int32 | Int64 => "int64".into(),
        UInt8 | UInt16 | UInt32 | UInt64 => "uint64".into(),
        Float16 | Float32 | Float64 => "float64".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
            format!("decimal({p},{s})")
        }
        Date32 | Date64 => "date".into(),
        Time32(_) | Time64(_) => "time".into(),
        Timestamp(_, None) => "timestamp".into(),
        Timestamp(_, Some(_)) => "timestamptz".into(),
        Duration(_) => "duration".into(),
        Interval(_) => "interval".into(),
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary".into(),
        List(f) | LargeList(f) | FixedSizeList(f, _) => {
            format!("list<{}>", logical_type(field_name, f.data_type())?)
        }
        Struct(fields) => {
            let inner = fields
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{}:{}",
                        f.name(),
                        logical_type(field_name, f.data_type())?
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            format!("struct<{}>", inner.join(","))
        }
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                logical_type(field_name, kv[0].data_type())?,
                logical_type(field_name, kv[1].data_type())?
            ),
            other => return Err(unsupported(field_name, other)),
        },
        Dictionary(_, value) => logical_type(field_name, value)?,
        other => return Err(unsupported(field_name, other)),
    })
}

fn unsupported(name: &str, dt: &DataType) -> Error {
    Error::UnsupportedType {
        column: name.to_string(),
        data_type: dt.to_string(),
    }
}

/// One column of one batch, normalised for encoding.
pub(crate) enum Col {
    Null,
    Bool(BooleanArray),
    Int(Int64Array),
    UInt(UInt64Array),
    Float(Float64Array),
    /// Decimal with precision <= 18: the unscaled value fits 8 bytes.
    Dec8(Decimal128Array),
    Dec16(Decimal128Array),
    Dec32(Decimal256Array),
    Date(Date32Array),
    /// 8-byte payloads already normalised (time in ns).
    I64(Int64Array),
    /// 16-byte payloads (timestamps and durations in ns): nulls and values.
    I128 {
        nulls: Option<arrow::buffer::NullBuffer>,
        values: Vec<i128>,
    },
    Interval {
        nulls: Option<arrow::buffer::NullBuffer>,
        values: Vec<(i32, i32, i64)>,
    },
    Str(GenericStringArray<i32>),
    LargeStr(GenericStringArray<i64>),
    StrView(StringViewArray),
    Bin(GenericBinaryArray<i32>),
    LargeBin(GenericBinaryArray<i64>),
    BinView(BinaryViewArray),
    FixedBin(FixedSizeBinaryArray),
    /// Lists and maps: element ranges into one child column.
    List {
        nulls: Option<arrow::buffer::NullBuffer>,
        offsets: Vec<usize>,
        child: Box<Col>,
    },
    Struct {
        nulls: Option<arrow::buffer::NullBuffer>,
        children: Vec<Col>,
    },
}

/// Whether a column of type `dt` hashes differently under checksum v1: v1 hashed
/// Decimal256 values of precision <= 38 32 bytes wide.
pub(crate) fn differs_in_v1(dt: &DataType) -> bool {
    use DataType::*;
    match dt {
        Decimal256(p, _) => *p <= 38,
        List(f)
        | LargeList(f)
        | ListView(f)
        | LargeListView(f)
        | FixedSizeList(f, _)
        | Map(f, _) => differs_in_v1(f.data_type()),
        Struct(fields) => fields.iter().any(|f| differs_in_v1(f.data_type())),
        Dictionary(_, v) => differs_in_v1(v),
        RunEndEncoded(_, v) => differs_in_v1(v.data_type()),
        _ => false,
    }
}

fn cast_to(name: &str, array: &ArrayRef, dt: &DataType) -> Result<ArrayRef> {
    cast(array, dt).map_err(|e| Error::UnsupportedType {
        column: name.to_string(),
        data_type: e.to_string(),
    })
}

fn scaled<T>(array: &ArrayRef, factor: i128) -> (Option<arrow::buffer::NullBuffer>, Vec<i128>)
where
    T: arrow::datatypes::ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    let a = array.as_primitive::<T>();
    let values = a
        .values()
        .iter()
        .map(|v| (*v).into() as i128 * factor)
        .collect();
    (a.nulls().cloned(), values)
}

fn time_ns<T>(array: &ArrayRef, factor: i64) -> Int64Array
where
    T: arrow::datatypes::ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    let a = array.as_primitive::<T>();
    Int64Array::new(
        a.values().iter().map(|v| (*v).into() * factor).collect(),
        a.nulls().cloned(),
    )
}

impl Col {
    /// Normalises `array` (column `name`, for messages); `v1`: as checksum version 1
    /// hashed it (Decimal256 32 bytes wide whatever its precision).
    pub(crate) fn new(name: &str, array: &ArrayRef, v1: bool) -> Result<Col> {
        use DataType::*;
        let dt = array.data_type();
        Ok(match dt {
            Null => Col::Null,
            Boolean => Col::Bool(array.as_boolean().clone()),
            Int8 | Int16 | Int32 => Col::Int(cast_to(name, array, &Int64)?.as_primitive().clone()),
            Int64 => Col::Int(array.as_primitive().clone()),
            UInt8 | UInt16 | UInt32 => {
                Col::UInt(cast_to(name, array, &UInt64)?.as_primitive().clone())
            }
            UInt64 => Col::UInt(array.as_primitive().clone()),
            Float16 => {
                let a = array.as_primitive::<Float16Type>();
                Col::Float(Float64Array::new(
                    a.values().iter().map(|v| v.to_f64()).collect(),
                    a.nulls().cloned(),
                ))
            }
            Float32 => {
                let a = array.as_primitive::<Float32Type>();
                Col::Float(Float64Array::new(
                    a.values().iter().map(|v| *v as f64).collect(),
                    a.nulls().cloned(),
                ))
            }
            Float64 => Col::Float(array.as_primitive().clone()),
            Decimal32(p, s) | Decimal64(p, s) => Col::Dec8(
                cast_to(name, array, &Decimal128(*p, *s))?
                    .as_primitive()
                    .clone(),
            ),
            Decimal128(p, _) if *p <= 18 => Col::Dec8(array.as_primitive().clone()),
            Decimal128(..) => Col::Dec16(array.as_primitive().clone()),
            // The width follows the precision, not the Arrow type (v1 hashed 32 bytes).
            Decimal256(p, s) if *p <= 38 && !v1 => {
                let narrow = cast_to(name, array, &Decimal128(*p, *s))?;
                if *p <= 18 {
                    Col::Dec8(narrow.as_primitive().clone())
                } else {
                    Col::Dec16(narrow.as_primitive().clone())
                }
            }
            Decimal256(..) => Col::Dec32(array.as_primitive().clone()),
            Date32 => Col::Date(array.as_primitive().clone()),
            Date64 => {
                let a = array.as_primitive::<Date64Type>();
                let days = a
                    .values()
                    .iter()
                    .map(|ms| ms.div_euclid(86_400_000) as i32)
                    .collect();
                Col::Date(Date32Array::new(days, a.nulls().cloned()))
            }
            Time32(TimeUnit::Second) => Col::I64(time_ns::<Time32SecondType>(array, 1_000_000_000)),
            Time32(TimeUnit::Millisecond) => {
                Col::I64(time_ns::<Time32MillisecondType>(array, 1_000_000))
            }
            Time64(TimeUnit::Microsecond) => {
                Col::I64(time_ns::<Time64MicrosecondType>(array, 1_000))
            }
            Time64(TimeUnit::Nanosecond) => Col::I64(time_ns::<Time64NanosecondType>(array, 1)),
            Timestamp(unit, _) => {
                let (nulls, values) = match unit {
                    TimeUnit::Second => scaled::<TimestampSecondType>(array, 1_000_000_000),
                    TimeUnit::Millisecond => scaled::<TimestampMillisecondType>(array, 1_000_000),
                    TimeUnit::Microsecond => scaled::<TimestampMicrosecondType>(array, 1_000),
                    TimeUnit::Nanosecond => scaled::<TimestampNanosecondType>(array, 1),
                };
                Col::I128 { nulls, values }
            }
            Duration(unit) => {
                let (nulls, values) = match unit {
                    TimeUnit::Second => scaled::<DurationSecondType>(array, 1_000_000_000),
                    TimeUnit::Millisecond => scaled::<DurationMillisecondType>(array, 1_000_000),
                    TimeUnit::Microsecond => scaled::<DurationMicrosecondType>(array, 1_000),
                    TimeUnit::Nanosecond => scaled::<DurationNanosecondType>(array, 1),
                };
                Col::I128 { nulls, values }
            }
            Interval(unit) => {
                let (nulls, values) = match unit {
                    IntervalUnit::YearMonth => {
                        let a = array.as_primitive::<IntervalYearMonthType>();
                        (
                            a.nulls().cloned(),
                            a.values().iter().map(|m| (*m, 0, 0)).collect(),
                        )
                    }
                    IntervalUnit::DayTime => {
                        let a = array.as_primitive::<IntervalDayTimeType>();
                        let v = a
                            .values()
                            .iter()
                            .map(|d| (0, d.days, d.milliseconds as i64 * 1_000_000))
                            .collect();
                        (a.nulls().cloned(), v)
                    }
                    IntervalUnit::MonthDayNano => {
                        let a = array.as_primitive::<IntervalMonthDayNanoType>();
                        let v = a
                            .values()
                            .iter()
                            .map(|d| (d.months, d.days, d.nanoseconds))
                            .collect();
                        (a.nulls().cloned(), v)
                    }
                };
                Col::Interval { nulls, values }
            }
            Utf8 => Col::Str(array.as_string::<i32>().clone()),
            LargeUtf8 => Col::LargeStr(array.as_string::<i64>().clone()),
            Utf8View => Col::StrView(array.as_string_view().clone()),
            Binary => Col::Bin(array.as_binary::<i32>().clone()),
            LargeBinary => Col::LargeBin(array.as_binary::<i64>().clone()),
            BinaryView => Col::BinView(array.as_binary_view().clone()),
            FixedSizeBinary(_) => Col::FixedBin(array.as_fixed_size_binary().clone()),
            List(_) => {
                let a = array.as_list::<i32>();
                let offsets = a.value_offsets().iter().map(|o| *o as usize).collect();
                Col::List {
                    nulls: a.nulls().cloned(),
                    offsets,
                    child: Box::new(Col::new(name, a.values(), v1)?),
                }
            }
            LargeList(_) => {
                let a = array.as_list::<i64>();
                let offsets = a.value_offsets().iter().map(|o| *o as usize).collect();
                Col::List {
                    nulls: a.nulls().cloned(),
                    offsets,
                    child: Box::new(Col::new(name, a.values(), v1)?),
                }
            }
            FixedSizeList(_, n) => {
                let a = array.as_fixed_size_list();
                let n = *n as usize;
                let start = a.offset() * n;
                let offsets = (0..=a.len()).map(|i| start + i * n).collect();
                Col::List {
                    nulls: a.nulls().cloned(),
                    offsets,
                    child: Box::new(Col::new(name, a.values(), v1)?),
                }
            }
            Struct(_) => {
                let a = array.as_struct();
                let children = a
                    .columns()
                    .iter()
                    .map(|c| Col::new(name, c, v1))
                    .collect::<Result<_>>()?;
                Col::Struct {
                    nulls: a.nulls().cloned(),
                    children,
                }
            }
            Map(..) => {
                let a = array.as_map();
                let offsets = a.value_offsets().iter().map(|o| *o as usize).collect();
                let entries: ArrayRef = std::sync::Arc::new(a.entries().clone());
                Col::List {
                    nulls: a.nulls().cloned(),
                    offsets,
                    child: Box::new(Col::new(name, &entries, v1)?),
                }
            }
            Dictionary(_, value) => Col::new(name, &cast_to(name, array, value)?, v1)?,
            other => return Err(unsupported(name, other)),
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Col::Null => true,
            Col::Bool(a) => a.is_null(i),
            Col::Int(a) | Col::I64(a) => a.is_null(i),
            Col::UInt(a) => a.is_null(i),
            Col::Float(a) => a.is_null(i),
            Col::Dec8(a) | Col::Dec16(a) => a.is_null(i),
            Col::Dec32(a) => a.is_null(i),
            Col::Date(a) => a.is_null(i),
            Col::I128 { nulls, .. }
            | Col::Interval { nulls, .. }
            | Col::List { nulls, .. }
            | Col::Struct { nulls, .. } => nulls.as_ref().is_some_and(|n| n.is_null(i)),
            Col::Str(a) => a.is_null(i),
            Col::LargeStr(a) => a.is_null(i),
            Col::StrView(a) => a.is_null(i),
            Col::Bin(a) => a.is_null(i),
            Col::LargeBin(a) => a.is_null(i),
            Col::BinView(a) => a.is_null(i),
            Col::FixedBin(a) => a.is_null(i),
        }
    }

    /// Encoded length of value `i`, marker included.
    pub(crate) fn len(&self, i: usize) -> usize {
        if self.is_null(i) {
            return 1;
        }
        1 + match self {
            Col::Null => 0,
            Col::Bool(_) => 1,
            Col::Date(_) => 4,
            Col::Int(_) | Col::UInt(_) | Col::Float(_) | Col::Dec8(_) | Col::I64(_) => 8,
            Col::Dec16(_) | Col::I128 { .. } | Col::Interval { .. } => 16,
            Col::Dec32(_) => 32,
            Col::Str(a) => 4 + a.value(i).len(),
            Col::LargeStr(a) => 4 + a.value(i).len(),
            Col::StrView(a) => 4 + a.value(i).len(),
            Col::Bin(a) => 4 + a.value(i).len(),
            Col::LargeBin(a) => 4 + a.value(i).len(),
            Col::BinView(a) => 4 + a.value(i).len(),
            Col::FixedBin(a) => 4 + a.value(i).len(),
            Col::List { offsets, child, .. } => {
                4 + (offsets[i]..offsets[i + 1])
                    .map(|j| child.len(j))
                    .sum::<usize>()
            }
            Col::Struct { children, .. } => children.iter().map(|c| c.len(i)).sum(),
        }
    }

    /// Writes value `i` at the start of `out`; returns the bytes written (= `len(i)`).
    pub(crate) fn write(&self, i: usize, out: &mut [u8]) -> usize {
        if self.is_null(i) {
            out[0] = NULL;
            return 1;
        }
        out[0] = PRESENT;
        let body = &mut out[1..];
        1 + match self {
            Col::Null => 0,
            Col::Bool(a) => put(body, &[a.value(i) as u8]),
            Col::Date(a) => put(body, &a.value(i).to_le_bytes()),
            Col::Int(a) | Col::I64(a) => put(body, &a.value(i).to_le_bytes()),
            Col::UInt(a) => put(body, &a.value(i).to_le_bytes()),
            Col::Float(a) => put(body, &canonical_f64(a.value(i)).to_le_bytes()),
            Col::Dec8(a) => put(body, &(a.value(i) as i64).to_le_bytes()),
            Col::Dec16(a) => put(body, &a.value(i).to_le_bytes()),
            Col::Dec32(a) => put(body, &a.value(i).to_le_bytes()),
            Col::I128 { values, .. } => put(body, &values[i].to_le_bytes()),
            Col::Interval { values, .. } => {
                let (m, d, n) = values[i];
                put(body, &m.to_le_bytes());
                put(&mut body[4..], &d.to_le_bytes());
                put(&mut body[8..], &n.to_le_bytes());
                16
            }
            Col::Str(a) => bytes(body, a.value(i).as_bytes()),
            Col::LargeStr(a) => bytes(body, a.value(i).as_bytes()),
            Col::StrView(a) => bytes(body, a.value(i).as_bytes()),
            Col::Bin(a) => bytes(body, a.value(i)),
            Col::LargeBin(a) => bytes(body, a.value(i)),
            Col::BinView(a) => bytes(body, a.value(i)),
            Col::FixedBin(a) => bytes(body, a.value(i)),
            Col::List { offsets, child, .. } => {
                let n = offsets[i + 1] - offsets[i];
                put(body, &(n as u32).to_le_bytes());
                let mut at = 4;
                for j in offsets[i]..offsets[i + 1] {
                    at += child.write(j, &mut body[at..]);
                }
                at
            }
            Col::Struct { children, .. } => {
                let mut at = 0;
                for c in children {
                    at += c.write(i, &mut body[at..]);
                }
                at
            }
        }
    }
}

impl Col {
    /// Adds every value's encoded length to `lens` (one entry per row).
    pub(crate) fn add_lens(&self, lens: &mut [usize]) {
        macro_rules! fixed {
            ($a:expr, $w:expr) => {
                add_fixed($a.nulls(), lens, $w)
            };
        }
        // A present value is its marker, its length and its bytes.
        macro_rules! sized {
            ($nulls:expr, $len:expr) => {{
                let nulls = $nulls.filter(|n| n.null_count() > 0);
                for (i, l) in lens.iter_mut().enumerate() {
                    *l += if nulls.is_some_and(|n| n.is_null(i)) {
                        1
                    } else {
                        5 + $len(i)
                    };
                }
            }};
        }
        macro_rules! offsets {
            ($a:expr) => {{
                let o = $a.value_offsets();
                sized!($a.nulls(), |i: usize| (o[i + 1] - o[i]) as usize)
            }};
        }
        macro_rules! views {
            ($a:expr) => {{
                let v = $a.views();
                sized!($a.nulls(), |i: usize| v[i] as u32 as usize)
            }};
        }
        match self {
            Col::Bool(a) => fixed!(a, 1),
            Col::Date(a) => fixed!(a, 4),
            Col::Int(a) | Col::I64(a) => fixed!(a, 8),
            Col::UInt(a) => fixed!(a, 8),
            Col::Float(a) => fixed!(a, 8),
            Col::Dec8(a) => fixed!(a, 8),
            Col::Dec16(a) => fixed!(a, 16),
            Col::Dec32(a) => fixed!(a, 32),
            Col::Str(a) => offsets!(a),
            Col::LargeStr(a) => offsets!(a),
            Col::StrView(a) => views!(a),
            Col::Bin(a) => offsets!(a),
            Col::LargeBin(a) => offsets!(a),
            Col::BinView(a) => views!(a),
            _ => {
                for (i, l) in lens.iter_mut().enumerate() {
                    *l += self.len(i);
                }
            }
        }
    }

    /// Writes value `first + k` at `buf[cursor[k]..]` for every `k`, advancing the cursors.
    ///
    /// The common types are read straight from their buffers, one loop for columns
    /// without nulls and one with: this is the snapshot's hottest code (a quarter of its
    /// CPU by month), and per-value accessors check bounds and nulls on every row.
    pub(crate) fn write_all(&self, first: usize, buf: &mut [u8], cursor: &mut [usize]) {
        let n = cursor.len();
        // Every row: `$present` when the value is there, else the NULL marker.
        macro_rules! each {
            ($nulls:expr, |$k:ident, $at:ident| $present:block) => {{
                match $nulls.filter(|n| n.null_count() > 0) {
                    None => {
                        for ($k, $at) in cursor.iter_mut().enumerate() {
                            $present
                        }
                    }
                    Some(nulls) => {
                        for ($k, $at) in cursor.iter_mut().enumerate() {
                            if nulls.is_null(first + $k) {
                                buf[*$at] = NULL;
                                *$at += 1;
                            } else $present
                        }
                    }
                }
            }};
        }
        macro_rules! fixed {
            ($a:expr, $f:expr) => {{
                let a = $a;
                let values = &a.values()[first..first + n];
                each!(a.nulls(), |k, at| {
                    let bytes = $f(values[k]);
                    let end = *at + 1 + bytes.len();
                    let out = &mut buf[*at..end];
                    out[0] = PRESENT;
                    out[1..].copy_from_slice(&bytes);
                    *at = end;
                })
            }};
        }
        macro_rules! offsets {
            ($a:expr) => {{
                let a = $a;
                let offsets = &a.value_offsets()[first..=first + n];
                let data: &[u8] = a.value_data();
                each!(a.nulls(), |k, at| {
                    let v = &data[offsets[k] as usize..offsets[k + 1] as usize];
                    let end = *at + 5 + v.len();
                    let out = &mut buf[*at..end];
                    out[0] = PRESENT;
                    out[1..5].copy_from_slice(&(v.len() as u32).to_le_bytes());
                    copy_short(&mut out[5..], v);
                    *at = end;
                })
            }};
        }
        // A view holds a value of up to 12 bytes itself, after its length.
        macro_rules! views {
            ($a:expr) => {{
                let a = $a;
                let views = &a.views()[first..first + n];
                let buffers = a.data_buffers();
                each!(a.nulls(), |k, at| {
                    let view = views[k];
                    let len = view as u32 as usize;
                    let end = *at + 5 + len;
                    let out = &mut buf[*at..end];
                    out[0] = PRESENT;
                    out[1..5].copy_from_slice(&(len as u32).to_le_bytes());
                    if len <= 12 {
                        copy_short(&mut out[5..], &view.to_le_bytes()[4..4 + len]);
                    } else {
                        let from = (view >> 96) as u32 as usize;
                        let data = &buffers[(view >> 64) as u32 as usize][from..from + len];
                        copy_short(&mut out[5..], data);
                    }
                    *at = end;
                })
            }};
        }
        match self {
            Col::Bool(a) => {
                let values = a.values();
                each!(a.nulls(), |k, at| {
                    let out = &mut buf[*at..*at + 2];
                    out[0] = PRESENT;
                    out[1] = values.value(first + k) as u8;
                    *at += 2;
                })
            }
            Col::Date(a) => fixed!(a, |v: i32| v.to_le_bytes()),
            Col::Int(a) | Col::I64(a) => fixed!(a, |v: i64| v.to_le_bytes()),
            Col::UInt(a) => fixed!(a, |v: u64| v.to_le_bytes()),
            Col::Float(a) => fixed!(a, |v: f64| canonical_f64(v).to_le_bytes()),
            Col::Dec8(a) => fixed!(a, |v: i128| (v as i64).to_le_bytes()),
            Col::Dec16(a) => fixed!(a, |v: i128| v.to_le_bytes()),
            Col::Dec32(a) => fixed!(a, |v: arrow::datatypes::i256| v.to_le_bytes()),
            Col::Str(a) => offsets!(a),
            Col::LargeStr(a) => offsets!(a),
            Col::StrView(a) => views!(a),
            Col::Bin(a) => offsets!(a),
            Col::LargeBin(a) => offsets!(a),
            Col::BinView(a) => views!(a),
            _ => {
                for (k, at) in cursor.iter_mut().enumerate() {
                    *at += self.write(first + k, &mut buf[*at..]);
                }
            }
        }
    }
}

fn add_fixed(nulls: Option<&arrow::buffer::NullBuffer>, lens: &mut [usize], width: usize) {
    match nulls {
        None => lens.iter_mut().for_each(|l| *l += 1 + width),
        Some(n) => {
            for (i, l) in lens.iter_mut().enumerate() {
                *l += if n.is_null(i) { 1 } else { 1 + width };
            }
        }
    }
}

/// -0.0 hashes as 0.0 and every NaN as the one quiet NaN, as SQL engines compare them.
pub fn canonical_f64(v: f64) -> u64 {
    if v.is_nan() {
        0x7FF8_0000_0000_0000
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// `dst.copy_from_slice(src)` for short values without a call to `memcpy` (most strings
/// in tables are short, and the call costs more than the copy): two overlapping fixed-size
/// copies cover any length between the size and twice the size.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    match n {
        0 => {}
        // Bytes 0, n/2 and n-1 are all of them.
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        33..=64 => {
            dst[..32].copy_from_slice(&src[..32]);
            dst[n - 32..].copy_from_slice(&src[n - 32..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

#[inline]
fn put(out: &mut [u8], b: &[u8]) -> usize {
    out[..b.len()].copy_from_slice(b);
    b.len()
}

#[inline]
fn bytes(out: &mut [u8], b: &[u8]) -> usize {
    put(out, &(b.len() as u32).to_le_bytes());
    out[4..4 + b.len()].copy_from_slice(b);
    4 + b.len()
}

/// The sorted order and logical types of a schema's columns.
pub(crate) fn sorted_fields(fields: &[std::sync::Arc<Field>]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..fields.len()).collect();
    idx.sort_by(|a, b| {
        fields[*a]
            .name()
            .as_bytes()
            .cmp(fields[*b].name().as_bytes())
    });
    idx
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_copies_copy_every_byte_of_every_length() {
        let src: Vec<u8> = (1..=200).map(|i| i as u8).collect();
        for n in 0..=src.len() {
            let mut dst = vec![0u8; n];
            super::copy_short(&mut dst, &src[..n]);
            assert_eq!(dst, src[..n], "{n} bytes");
        }
    }
}
