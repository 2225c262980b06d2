//! Parquet summary files (`_metadata`) checked against the data files they list.
//!
//! A summary holds a copy of every data file's row groups, each naming its file by a path
//! relative to the summary's folder. Readers that use it (fastparquet, dask) trust it for
//! the list of files and for row counts, so a summary left behind by a job that replaced
//! files sends them to files that are gone, or gives them old counts.

use std::collections::{BTreeMap, BTreeSet};

use object_store::ObjectStoreExt;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::storage::Location;
use crate::table::Partition;

/// Rows by data file (path relative to the table) as the summary at `relative` lists
/// them; `None` if it cannot be fetched or read as Parquet metadata.
pub(super) async fn listed_rows(loc: &Location, relative: &str) -> Option<BTreeMap<String, u64>> {
    let get = loc.store.get(&loc.child(relative)).await.ok()?;
    let bytes = get.bytes().await.ok()?;
    let meta = ParquetMetaDataReader::new().parse_and_finish(&bytes).ok()?;
    let folder = relative.rsplit_once('/').map(|(d, _)| d);
    let mut rows = BTreeMap::new();
    for rg in meta.row_groups() {
        // Row groups without a path are the summary's own (it has no data): no file.
        let Some(path) = rg.columns().first().and_then(|c| c.file_path()) else {
            continue;
        };
        let path = match folder {
            Some(f) => format!("{f}/{path}"),
            None => path.to_string(),
        };
        *rows.entry(path).or_insert(0) += rg.num_rows().max(0) as u64;
    }
    Some(rows)
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
