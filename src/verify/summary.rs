//! Parquet summary files (`_metadata`) checked against the data files they list.
//!
//! A summary holds a copy of every data file's row groups, each naming its file by a path
//! relative to the summary's folder. Readers that use it (fastparquet, dask) trust it for
//! the list of files and for row counts, so a summary left behind by a job that replaced
//! files sends them to files that are gone, or gives them old counts.

use std::collections::{BTreeMap, BTreeSet};

use object_store::ObjectStoreExt;

use crate::storage::Location;
use crate::table::Partition;

/// Rows by data file (path relative to the table) as the summary at `relative` lists
/// them; `Err` with the reason if it cannot be fetched or read as a Parquet footer.
pub(super) async fn listed_rows(
    loc: &Location,
    relative: &str,
) -> Result<BTreeMap<String, u64>, String> {
    let get = loc
        .store
        .get(&loc.child(relative))
        .await
        .map_err(|e| e.to_string())?;
    let bytes = get.bytes().await.map_err(|e| e.to_string())?;
    let groups = row_groups(&bytes).ok_or("it is not a readable Parquet footer")?;
    let folder = relative.rsplit_once('/').map(|(d, _)| d);
    let mut rows = BTreeMap::new();
    for (path, n) in groups {
        // Row groups without a path are the summary's own (it has no data): no file.
        let Some(path) = path else {
            continue;
        };
        let path = match folder {
            Some(f) => format!("{f}/{path}"),
            None => path,
        };
        *rows.entry(path).or_insert(0) += n.max(0) as u64;
    }
    Ok(rows)
}

/// Each row group's file path (that of its first column chunk) and row count, from the
/// Parquet footer at the end of `file`; `None` if there is none or it is malformed.
///
/// Read here rather than by the parquet crate, which refuses footers whose row groups mix
/// written and missing ordinals. fastparquet's `merge` writes such a summary over its own
/// files and other writers', and fastparquet and dask read it: only these two fields
/// matter to the check.
fn row_groups(file: &[u8]) -> Option<Vec<(Option<String>, i64)>> {
    let n = file.len();
    if n < 12 || &file[n - 4..] != b"PAR1" {
        return None;
    }
    let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().ok()?) as usize;
    let mut r = Compact {
        buf: file.get(n.checked_sub(8 + len)?..n - 8)?,
        at: 0,
    };
    let mut groups = Vec::new();
    // FileMetaData: 4 = row_groups (list<RowGroup>).
    let mut last = 0;
    while let Some((id, ty)) = r.field(&mut last)? {
        if id == 4 && ty == LIST {
            let (count, elem) = r.list()?;
            if elem != STRUCT {
                return None;
            }
            for _ in 0..count {
                groups.push(r.row_group()?);
            }
        } else {
            r.skip(ty, 0)?;
        }
    }
    Some(groups)
}

// Thrift compact protocol types (Parquet's footer encoding).
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;
/// Deeper nesting than Parquet's metadata has: a malformed footer, not a stack to overflow.
const MAX_DEPTH: u32 = 32;

struct Compact<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Compact<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let b = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(b)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// The next field of the struct being read, as (id, type); `None` inside at its end.
    fn field(&mut self, last: &mut i16) -> Option<Option<(i16, u8)>> {
        let b = self.byte()?;
        if b == 0 {
            return Some(None);
        }
        let delta = b >> 4;
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).ok()?
        } else {
            last.checked_add(i16::from(delta))?
        };
        *last = id;
        Some(Some((id, b & 0x0f)))
    }

    /// A list or set header: element count and type. Every element takes at least a
    /// byte, so a count beyond the bytes left is malformed.
    fn list(&mut self) -> Option<(usize, u8)> {
        let b = self.byte()?;
        let count = match b >> 4 {
            15 => usize::try_from(self.varint()?).ok()?,
            n => usize::from(n),
        };
        (count <= self.buf.len() - self.at).then_some((count, b & 0x0f))
    }

    fn skip(&mut self, ty: u8, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match ty {
            TRUE | FALSE => {}
            BYTE => {
                self.byte()?;
            }
            I16 | I32 | I64 => {
                self.varint()?;
            }
            DOUBLE => {
                self.bytes(8)?;
            }
            UUID => {
                self.bytes(16)?;
            }
            BINARY => {
                let n = usize::try_from(self.varint()?).ok()?;
                self.bytes(n)?;
            }
            LIST | SET => {
                let (count, elem) = self.list()?;
                for _ in 0..count {
                    // Booleans in a list are a byte each, not folded into a header.
                    match elem {
                        TRUE | FALSE => {
                            self.byte()?;
                        }
                        _ => self.skip(elem, depth + 1)?,
                    }
                }
            }
            MAP => {
                let count = usize::try_from(self.varint()?).ok()?;
                if count > 0 {
                    let kv = self.byte()?;
                    for _ in 0..count {
                        for t in [kv >> 4, kv & 0x0f] {
                            match t {
                                TRUE | FALSE => {
                                    self.byte()?;
                                }
                                _ => self.skip(t, depth + 1)?,
                            }
                        }
                    }
                }
            }
            STRUCT => {
                let mut last = 0;
                while let Some((_, t)) = self.field(&mut last)? {
                    self.skip(t, depth + 1)?;
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// RowGroup: 1 = columns (list<ColumnChunk>), 3 = num_rows (i64); the path is the
    /// first column chunk's.
    fn row_group(&mut self) -> Option<(Option<String>, i64)> {
        let (mut path, mut rows) = (None, None);
        let mut last = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            match (id, ty) {
                (1, LIST) => {
                    let (count, elem) = self.list()?;
                    if elem != STRUCT {
                        return None;
                    }
                    for i in 0..count {
                        let p = self.column_chunk()?;
                        if i == 0 {
                            path = p;
                        }
                    }
                }
                (3, I64) => rows = Some(self.zigzag()?),
                _ => self.skip(ty, 1)?,
            }
        }
        Some((path, rows?))
    }

    /// ColumnChunk: 1 = file_path (string).
    fn column_chunk(&mut self) -> Option<Option<String>> {
        let mut path = None;
        let mut last = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            if (id, ty) == (1, BINARY) {
                let n = usize::try_from(self.varint()?).ok()?;
                path = Some(String::from_utf8(self.bytes(n)?.to_vec()).ok()?);
            } else {
                self.skip(ty, 2)?;
            }
        }
        Some(path)
    }
}

/// Where the summary `listed` disagrees with `partitions` (the ones it covers, as read:
/// `rows` by file), in words; empty when it agrees. Files listed in folders that are not
/// among `partitions` are not looked at.
pub(super) fn disagreements(
    listed: &BTreeMap<String, u64>,
    partitions: &[&Partition],
    rows: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut present = BTreeSet::new();
    for p in partitions {
        for f in &p.files {
            present.insert(f.relative.as_str());
            let Some(actual) = rows.get(&f.relative) else {
                continue; // unreadable: reported as such
            };
            match listed.get(&f.relative) {
                None => out.push(format!("does not list {}", f.relative)),
                Some(n) if n != actual => out.push(format!(
                    "lists {n} rows for {}, which holds {actual}",
                    f.relative
                )),
                Some(_) => {}
            }
        }
    }
    let folders: BTreeSet<&str> = partitions.iter().map(|p| p.id.as_str()).collect();
    for path in listed.keys() {
        let folder = path.rsplit_once('/').map_or("", |(d, _)| d);
        if folders.contains(folder) && !present.contains(path.as_str()) {
            out.push(format!("lists {path}, which is not in the table"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};
    use parquet::file::properties::WriterProperties;

    use super::row_groups;

    /// A file of three row groups (4, 4 and 2 rows) with statistics, nested key-value
    /// metadata and a string column: every thrift type the footer walker skips.
    fn file() -> Vec<u8> {
        let batch = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Int64Array::from_iter(0..10)) as arrow::array::ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from_iter(
                    (0..10).map(|i| Some(format!("v{i}"))),
                )),
            ),
        ])
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(4))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }

    #[test]
    fn row_groups_are_those_the_parquet_reader_reads() {
        let file = file();
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::from(file.clone()))
            .unwrap();
        let want: Vec<(Option<String>, i64)> = meta
            .row_groups()
            .iter()
            .map(|g| (None, g.num_rows()))
            .collect();
        assert_eq!(want, vec![(None, 4), (None, 4), (None, 2)]);
        assert_eq!(row_groups(&file), Some(want));

        // A summary: the same row groups, each naming its file.
        let groups = meta
            .row_groups()
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let columns = g
                    .columns()
                    .iter()
                    .map(|c| {
                        c.clone()
                            .into_builder()
                            .set_file_path(format!("p={i}/part.parquet"))
                            .build()
                            .unwrap()
                    })
                    .collect();
                g.clone()
                    .into_builder()
                    .set_column_metadata(columns)
                    .build()
                    .unwrap()
            })
            .collect();
        let summary = meta.into_builder().set_row_groups(groups).build();
        let mut bytes = Vec::new();
        ParquetMetaDataWriter::new(&mut bytes, &summary)
            .finish()
            .unwrap();
        assert_eq!(
            row_groups(&bytes),
            Some(vec![
                (Some("p=0/part.parquet".into()), 4),
                (Some("p=1/part.parquet".into()), 4),
                (Some("p=2/part.parquet".into()), 2),
            ])
        );
    }

    #[test]
    fn a_damaged_footer_is_refused_or_read_never_a_panic() {
        let file = file();
        let n = file.len();
        let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
        // Cut short: the length then points before the file's start, or into other bytes.
        for cut in 0..n {
            let mut short = file[cut..].to_vec();
            let _ = row_groups(&short);
            short.truncate(short.len().saturating_sub(9));
            assert_eq!(row_groups(&short), None);
        }
        // Each byte of the footer's metadata flipped in turn.
        for at in n - 8 - len..n - 8 {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = file.clone();
                bad[at] ^= flip;
                let _ = row_groups(&bad);
            }
        }
        assert_eq!(row_groups(b"PAR1"), None);
        assert_eq!(row_groups(&file[..n - 1]), None);
    }
}
