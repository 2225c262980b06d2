//! Discovery: which partitions a table has, which files each holds, and what is
//! outside the `key=value` layout.
//!
//! Rules (see README "Tables"):
//! - a data file is a `*.parquet` file whose folders below the root are all `key=value`;
//! - every such file sits at the same depth with the same keys in the same order,
//!   otherwise discovery fails naming the first path that differs;
//! - names starting with `_` or `.`, and `*.crc` files, are skipped as readers skip them;
//!   a folder of `key=value` parts holding only such files is an empty partition;
//! - Parquet files anywhere else are listed in [`Table::outside_layout`], never read.

#[doc(hidden)]
pub mod embedded;
#[doc(hidden)]
pub mod faithful;
mod id;
#[doc(hidden)]
pub mod interval;
#[doc(hidden)]
pub mod read;
#[doc(hidden)]
pub mod reader;
pub mod value;

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::storage::Location;
pub use id::{BadValue, PartitionId, PartitionValues};
pub use value::{escape_value, unescape_value, KeyType, Typed, HIVE_NULL};

/// One partition key and the type its values are read in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionKey {
    /// The key's name.
    pub name: String,
    /// The type its values are read in.
    #[serde(rename = "type")]
    pub key_type: KeyType,
}

/// One Parquet file of a partition.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// The file's path in the store.
    pub path: Path,
    /// Path relative to the table root, for messages.
    pub relative: String,
    /// Bytes.
    pub size: u64,
    /// What the listing says tells this version of the file from others: on object stores
    /// its ETag and version, on local disk its inode and times; the checksum cache keys
    /// entries by it.
    pub tag: Option<String>,
    /// The object's ETag from the listing (object stores), to read that very version.
    pub e_tag: Option<String>,
}

/// One leaf folder of `key=value` pairs.
///
/// - `id` is the folder path below the root exactly as stored (`k=v/k2=v2`);
/// - `values` are the folder names' values, unescaped, in key order;
/// - `typed[i]` is value `i` read in key `i`'s type.
#[derive(Debug, Clone)]
pub struct Partition {
    /// The folder path: the partition's identity.
    pub id: PartitionId,
    /// The values its folder names say.
    pub values: PartitionValues,
    /// Those values in their keys' types.
    pub typed: Vec<Typed>,
    /// Its data files, by name.
    pub files: Vec<DataFile>,
    /// Files in the folder that are neither Parquet nor skipped by readers.
    pub stray: Vec<String>,
    /// Parquet summary files in the folder ([`is_summary`]), relative paths.
    pub summaries: Vec<String>,
}

impl Partition {
    /// Bytes of its data files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Whether a value is NULL.
    pub fn has_null(&self) -> bool {
        self.values.has_null()
    }

    /// `{"key": value, ...}` in key order, typed.
    pub fn values_json(&self, keys: &[PartitionKey]) -> serde_json::Map<String, serde_json::Value> {
        keys.iter()
            .zip(&self.typed)
            .map(|(k, v)| (k.name.clone(), v.to_json()))
            .collect()
    }
}

/// A discovered table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Where the table is.
    pub location: Location,
    /// Its partition keys, in folder order.
    pub keys: Vec<PartitionKey>,
    /// Sorted by typed values, oldest first for date keys, NULL last.
    pub partitions: Vec<Partition>,
    /// Parquet files not inside the `key=value` layout (relative paths).
    pub outside_layout: Vec<String>,
    /// Parquet summary files ([`is_summary`]) beside the partition folders.
    pub summaries: Vec<String>,
}

/// How to read partition values: explicit types per key; others are inferred.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Types given by `--partition-type`, by key.
    pub key_types: BTreeMap<String, KeyType>,
}

impl DiscoverOptions {
    /// Parses `key:type` as given to `--partition-type`: the key and its type, or why not
    /// (`unknown type "float"; use date, int or string`).
    pub fn parse_type(spec: &str) -> std::result::Result<(String, KeyType), String> {
        let (k, t) = spec
            .split_once(':')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| "should be KEY:TYPE, e.g. event_date:date".to_string())?;
        let ty = KeyType::parse(t)
            .ok_or_else(|| format!("unknown type {t:?}; use date, int or string"))?;
        Ok((k.to_string(), ty))
    }

    /// Adds `key:type` as given to `--partition-type`.
    pub fn add_type(&mut self, spec: &str) -> Result<()> {
        let (k, ty) = DiscoverOptions::parse_type(spec)
            .map_err(|why| Error::Usage(format!("--partition-type {spec:?}: {why}")))?;
        self.key_types.insert(k, ty);
        Ok(())
    }
}

enum Entry {
    Data { dirs: Vec<String>, file: DataFile },
    Skipped { dirs: Vec<String> },
    Summary { dirs: Vec<String>, relative: String },
    Stray { dirs: Vec<String>, relative: String },
    Outside(String),
}

/// Names readers skip: `_*` and `.*` (markers, hidden files), `*.crc` (checksums).
pub fn is_skipped(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.') || name.ends_with(".crc")
}

/// Parquet summary files: `_metadata` (every data file's footer, row groups and
/// statistics, with each file's path) and `_common_metadata` (the schema), as fastparquet,
/// dask and Spark (`parquet.summary.metadata.level`) write them. They describe data files
/// by name and content, so a rewrite that replaces those files leaves them false.
pub fn is_summary(name: &str) -> bool {
    name == "_metadata" || name == "_common_metadata"
}

fn is_parquet(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".parquet")
}

/// Whether a file name in a partition folder is a data file: the one rule discovery,
/// the commit and undo use.
pub fn is_data_file_name(name: &str) -> bool {
    is_parquet(name) && !is_skipped(name)
}

/// Whether a file in a partition folder goes on into the rewritten partition beside the
/// new data files: everything but Parquet files (data, or hidden ones a writer left) and
/// `*.crc` checksums of files that are replaced.
pub fn is_carried_over(name: &str) -> bool {
    !is_parquet(name) && !name.ends_with(".crc")
}

fn is_key_value(part: &str) -> bool {
    matches!(part.split_once('='), Some((k, _)) if !k.is_empty())
}

/// One file as a listing gives it.
struct Listed {
    path: Path,
    relative: String,
    size: u64,
    /// The store's version tag, or on local disk the file's identity.
    tag: Option<String>,
    e_tag: Option<String>,
}

fn classify(listed: Listed) -> Option<Entry> {
    let Listed {
        path,
        relative,
        size,
        tag,
        e_tag,
    } = listed;
    let relative = relative.as_str();
    let parts: Vec<&str> = relative.split('/').collect();
    let (name, dirs) = parts.split_last()?;
    if dirs.iter().any(|d| is_skipped(d)) {
        return None;
    }
    let layout = !dirs.is_empty() && dirs.iter().all(|d| is_key_value(d));
    let dirs: Vec<String> = dirs.iter().map(|s| s.to_string()).collect();
    if is_summary(name) && (layout || dirs.is_empty()) {
        return Some(Entry::Summary {
            dirs,
            relative: relative.to_string(),
        });
    }
    if !layout {
        return is_data_file_name(name).then(|| Entry::Outside(relative.to_string()));
    }
    if is_skipped(name) {
        Some(Entry::Skipped { dirs })
    } else if is_parquet(name) {
        Some(Entry::Data {
            dirs,
            file: DataFile {
                path,
                relative: relative.to_string(),
                size,
                tag,
                e_tag,
            },
        })
    } else {
        Some(Entry::Stray {
            dirs,
            relative: relative.to_string(),
        })
    }
}

/// Lists the table and builds its partitions.
pub async fn discover(location: &Location, options: &DiscoverOptions) -> Result<Table> {
    let listed = match &location.local_dir {
        Some(dir) if location.is_local() => walk_local(location, dir).await?,
        _ => list_parallel(location)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => Error::TableNotFound {
                    location: location.display.clone(),
                    reason: "nothing at this location; check the path".into(),
                },
                e => Error::storage(&location.display, e),
            })?
            .into_iter()
            .map(|meta| Listed {
                relative: location.relative(&meta.location),
                path: meta.location,
                size: meta.size,
                e_tag: meta.e_tag.clone(),
                tag: match (meta.e_tag, meta.version) {
                    (None, None) => None,
                    (e, v) => Some(format!(
                        "{}:{}",
                        e.unwrap_or_default(),
                        v.unwrap_or_default()
                    )),
                },
            })
            .collect(),
    };
    let mut entries: Vec<(String, Entry)> = listed
        .into_iter()
        .filter_map(|l| {
            let relative = l.relative.clone();
            classify(l).map(|e| (relative, e))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    build(location, entries.into_iter().map(|(_, e)| e), options)
}

/// Walks a local table's folder: each file's size and identity (inode and times) from one
/// look at its folder entry, which the checksum cache keys files by, so nothing is looked
/// at twice. (object_store's listing looks at each file again, follows every path
/// through `readlink`, and hands each folder to a thread of its own.)
///
/// The first-level folders are walked in a few groups at once (a table by day has
/// thousands): the time is the kernel's, reading folders and looking at entries.
async fn walk_local(location: &Location, dir: &std::path::Path) -> Result<Vec<Listed>> {
    let fs = location.fs.clone();
    let root = dir.to_path_buf();
    let top = {
        let (fs, root) = (fs.clone(), root.clone());
        crate::storage::blocking(move || fs.read_dir(&root).map_err(|e| Error::io(&root, e)))
            .await?
    };
    let (files, dirs): (Vec<_>, Vec<_>) = top.into_iter().partition(|e| e.is_file);
    // Files beside the partitions are outside the layout: named, never read.
    let mut listed: Vec<Listed> = files
        .into_iter()
        .map(|f| Listed {
            path: location.child(&f.name),
            relative: f.name,
            size: 0,
            tag: None,
            e_tag: None,
        })
        .collect();
    let groups = crate::snapshot::default_jobs() * 2;
    let per_group = dirs.len().div_ceil(groups).max(1);
    let chunks: Vec<Vec<crate::storage::fs::DirEntry>> =
        dirs.chunks(per_group).map(<[_]>::to_vec).collect();
    let walked: Vec<Vec<(String, crate::storage::fs::Walked)>> =
        futures::future::try_join_all(chunks.into_iter().map(|chunk| {
            let fs = fs.clone();
            crate::storage::blocking(move || {
                let mut out = Vec::new();
                for d in chunk {
                    match fs.walk(&d.path) {
                        Ok(below) => out.extend(below.into_iter().map(|w| (d.name.clone(), w))),
                        // A link to a file: beside the partitions, like any file there.
                        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
                        Err(e) => return Err(Error::io(&d.path, e)),
                    }
                }
                Ok(out)
            })
        }))
        .await?;
    listed.extend(walked.into_iter().flatten().map(|(top, w)| {
        let relative = format!("{top}/{}", w.relative);
        Listed {
            path: location.child(&relative),
            relative,
            size: w.size,
            tag: Some(w.identity),
            e_tag: None,
        }
    }));
    Ok(listed)
}

/// Lists every object below the root, in parallel.
///
/// Object stores return 1,000 keys per request, so one listing of a large table is many
/// round trips in a row. One delimited listing gives the first-level folders (sorted);
/// they are cut into up to 32 contiguous ranges of at least 64 folders, and each range is
/// listed from its first key (`start-after`) until the next range begins, all ranges at
/// once.
async fn list_parallel(location: &Location) -> object_store::Result<Vec<object_store::ObjectMeta>> {
    const AT_ONCE: usize = 32;
    const FOLDERS_PER_RANGE: usize = 64;
    let store = &location.store;
    let top = store.list_with_delimiter(Some(&location.root)).await?;
    let mut objects = top.objects;
    let mut prefixes = top.common_prefixes;
    // Keys sort by their full text: "k=us-east/..." comes before "k=us/..." because '-' < '/'.
    // Ranges must follow that order, or a range would stop before its own first folder.
    prefixes.sort_by_cached_key(|p| format!("{p}/"));
    if prefixes.is_empty() {
        return Ok(objects);
    }
    let parts: Vec<Vec<object_store::ObjectMeta>> = {
        // A range of a few folders is one request anyway: more ranges would only add
        // requests (and on moto, which scans the bucket for each, time).
        let per_range = prefixes.len().div_ceil(AT_ONCE).max(FOLDERS_PER_RANGE);
        let starts: Vec<&Path> = prefixes.iter().step_by(per_range).collect();
        let ranges: Vec<(Path, Option<String>)> = starts
            .iter()
            .enumerate()
            .map(|(k, p)| ((*p).clone(), starts.get(k + 1).map(|n| format!("{n}/"))))
            .collect();
        let depth = location.root.parts().count() + 1;
        futures::stream::iter(ranges)
            .map(|(first, end)| async move {
                // Keys after "root/k=v" (no slash) start with "root/k=v/", this range's first folder.
                let stream = store.list_with_offset(Some(&location.root), &first);
                let first_dir = format!("{first}/");
                stream
                    // Files directly under the root came with the delimited listing.
                    .try_filter(move |m| {
                        futures::future::ready(
                            m.location.as_ref() >= first_dir.as_str()
                                && m.location.parts().count() > depth,
                        )
                    })
                    .try_take_while(move |m| {
                        futures::future::ready(Ok(end
                            .as_ref()
                            .is_none_or(|e| m.location.as_ref() < e.as_str())))
                    })
                    .try_collect::<Vec<_>>()
                    .await
            })
            .buffer_unordered(AT_ONCE)
            .try_collect()
            .await?
    };
    objects.extend(parts.into_iter().flatten());
    Ok(objects)
}

fn build(
    location: &Location,
    entries: impl Iterator<Item = Entry>,
    options: &DiscoverOptions,
) -> Result<Table> {
    let mut keys: Option<(Vec<String>, String)> = None;
    let mut folders: BTreeMap<String, Partition> = BTreeMap::new();
    let mut outside_layout = Vec::new();
    let mut summaries = Vec::new();
    for entry in entries {
        let (dirs, example) = match &entry {
            Entry::Summary { dirs, relative } if dirs.is_empty() => {
                summaries.push(relative.clone());
                continue;
            }
            Entry::Data { dirs, file } => (dirs.clone(), file.relative.clone()),
            Entry::Summary { dirs, .. } => (dirs.clone(), dirs.join("/")),
            Entry::Skipped { dirs } | Entry::Stray { dirs, .. } => (dirs.clone(), dirs.join("/")),
            Entry::Outside(rel) => {
                outside_layout.push(rel.clone());
                continue;
            }
        };
        let these: Vec<String> = dirs
            .iter()
            .map(|d| d.split_once('=').unwrap().0.to_string())
            .collect();
        match &keys {
            None => keys = Some((these.clone(), example.clone())),
            Some((first, first_path)) if *first != these => {
                return Err(Error::Layout {
                    path: example,
                    reason: format!(
                        "its keys are [{}] but {} has [{}]; every partition needs the same keys in the same order",
                        these.join(", "),
                        first_path,
                        first.join(", ")
                    ),
                });
            }
            _ => {}
        }
        let id = dirs.join("/");
        let partition = folders.entry(id.clone()).or_insert_with(|| Partition {
            id: PartitionId::new(id),
            values: PartitionValues::new(
                dirs.iter()
                    .map(|d| unescape_value(d.split_once('=').unwrap().1))
                    .collect(),
            ),
            typed: Vec::new(),
            files: Vec::new(),
            stray: Vec::new(),
            summaries: Vec::new(),
        });
        match entry {
            Entry::Data { file, .. } => partition.files.push(file),
            Entry::Stray { relative, .. } => partition.stray.push(relative),
            Entry::Summary { relative, .. } => partition.summaries.push(relative),
            _ => {}
        }
    }
    let Some((key_names, _)) = keys else {
        let reason = match outside_layout.first() {
            Some(first) => format!(
                "no key=value partition folders, and {} Parquet file(s) outside that layout (first: {first}); backfill works on Hive-partitioned tables",
                outside_layout.len()
            ),
            None => "no Parquet files or key=value folders here; check the path".to_string(),
        };
        return Err(Error::TableNotFound {
            location: location.display.clone(),
            reason,
        });
    };
    for name in options.key_types.keys() {
        if !key_names.contains(name) {
            return Err(Error::Usage(format!(
                "--partition-type names key {name:?}, but the table's partition keys are [{}]",
                key_names.join(", ")
            )));
        }
    }
    let mut partitions: Vec<Partition> = folders.into_values().collect();
    let mut keys = Vec::with_capacity(key_names.len());
    for (i, name) in key_names.iter().enumerate() {
        let key_type = match options.key_types.get(name) {
            Some(t) => *t,
            None => KeyType::infer(
                partitions
                    .iter()
                    .filter_map(|p| p.values.raw()[i].as_deref()),
            ),
        };
        keys.push(PartitionKey {
            name: name.clone(),
            key_type,
        });
    }
    for p in &mut partitions {
        p.typed = p
            .values
            .typed(&keys)
            .map_err(|e| Error::Usage(format!("partition {}: {e}; fix --partition-type", p.id)))?;
    }
    partitions.sort_by(|a, b| a.typed.cmp(&b.typed).then_with(|| a.id.cmp(&b.id)));
    Ok(Table {
        location: location.clone(),
        keys,
        partitions,
        outside_layout,
        summaries,
    })
}

impl Table {
    /// The summary files that describe data files of the partitions `selected` picks:
    /// those beside the partition folders and those in the picked partitions' folders.
    pub fn summaries_over(&self, selected: impl Fn(&PartitionId) -> bool) -> Vec<&str> {
        let mut out: Vec<&str> = self.summaries.iter().map(String::as_str).collect();
        for p in self.partitions.iter().filter(|p| selected(&p.id)) {
            out.extend(p.summaries.iter().map(String::as_str));
        }
        out
    }

    /// The table narrowed to the partitions `selection` picks, in table order: what every
    /// command then acts on. Fails on bad flags, and with [`Error::EmptySelection`] when
    /// flags were given and nothing matches.
    pub fn select(mut self, selection: &crate::selection::Selection) -> Result<Table> {
        let candidates: Vec<_> = self
            .partitions
            .iter()
            .map(|p| crate::selection::Candidate {
                id: &p.id,
                typed: &p.typed,
            })
            .collect();
        let keep = selection.apply(&self.keys, &candidates)?;
        let mut keep = keep.into_iter().peekable();
        let mut i = 0;
        self.partitions.retain(|_| {
            let kept = keep.next_if_eq(&i).is_some();
            i += 1;
            kept
        });
        Ok(self)
    }

    /// The table narrowed to the partitions `keep` accepts.
    pub fn retain(mut self, keep: impl FnMut(&Partition) -> bool) -> Table {
        self.partitions.retain(keep);
        self
    }

    /// The bytes of the largest partition.
    pub fn largest_partition(&self) -> u64 {
        self.partitions
            .iter()
            .map(Partition::bytes)
            .max()
            .unwrap_or(0)
    }

    /// Data files in all partitions.
    pub fn files(&self) -> usize {
        self.partitions.iter().map(|p| p.files.len()).sum()
    }

    /// Bytes of all data files.
    pub fn bytes(&self) -> u64 {
        self.partitions.iter().map(Partition::bytes).sum()
    }

    /// The partition keys' names, in order.
    pub fn key_names(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.name.clone()).collect()
    }
}
