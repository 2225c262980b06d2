//! The two names of a partition: its id (the folder path, its identity everywhere) and
//! its values (what the folder names say, unescaped; typed against the keys on demand).

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::value::{KeyType, Typed};
use super::PartitionKey;

/// A partition's id: its folder path below the table root exactly as stored
/// (`event_date=2024-01-03/region=eu`, escapes kept).
///
/// - It is the partition's identity in plans, journals, snapshots, diffs and reports;
/// - it serialises as the bare string, so every file format holds it as before.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct PartitionId(String);

impl PartitionId {
    /// The id of the folder path `path` (`k=v/k2=v2`).
    pub fn new(path: impl Into<String>) -> PartitionId {
        PartitionId(path.into())
    }

    /// The folder path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for PartitionId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for PartitionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PartitionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for PartitionId {
    fn from(s: String) -> Self {
        PartitionId(s)
    }
}

impl From<&str> for PartitionId {
    fn from(s: &str) -> Self {
        PartitionId(s.to_string())
    }
}

impl From<PartitionId> for String {
    fn from(id: PartitionId) -> String {
        id.0
    }
}

impl PartialEq<str> for PartitionId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for PartitionId {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

impl PartialEq<&str> for PartitionId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A partition's values in key order, as its folder names say them: unescaped, `None`
/// for NULL (`__HIVE_DEFAULT_PARTITION__`).
///
/// - Lossless: `007` stays `007` (typed, it would be the int 7), so a plan that stores
///   these gives the transform exactly the partition that was planned;
/// - typed against the keys with [`PartitionValues::typed`], which fails rather than
///   turning a value that does not read as its key's type into NULL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct PartitionValues(Vec<Option<String>>);

impl PartitionValues {
    /// Values in key order.
    pub fn new(values: Vec<Option<String>>) -> PartitionValues {
        PartitionValues(values)
    }

    /// The values in key order; `None` is NULL.
    pub fn raw(&self) -> &[Option<String>] {
        &self.0
    }

    /// Whether a value is NULL.
    pub fn has_null(&self) -> bool {
        self.0.iter().any(Option::is_none)
    }

    /// The values read in their keys' types; the first value that does not read as its
    /// key's type is the error (callers say whose mistake that is: a flag's or a plan's).
    pub fn typed(&self, keys: &[PartitionKey]) -> std::result::Result<Vec<Typed>, BadValue> {
        keys.iter()
            .zip(&self.0)
            .map(|(k, v)| {
                Typed::read(v.as_deref(), k.key_type).ok_or_else(|| BadValue {
                    key: k.name.clone(),
                    key_type: k.key_type,
                    value: v.clone().unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// A partition value that does not read as its key's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    /// The key's name.
    pub key: String,
    /// The type the key is read in.
    pub key_type: KeyType,
    /// The value as the folder name says it.
    pub value: String,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "value {:?} of key {} is not a {}",
            self.value, self.key, self.key_type
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_their_path_and_values_keep_their_spelling() {
        let id = PartitionId::new("d=2024-01-03/s=007");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"d=2024-01-03/s=007\""
        );
        let values = PartitionValues::new(vec![Some("2024-01-03".into()), Some("007".into())]);
        let text = serde_json::to_string(&values).unwrap();
        assert_eq!(text, r#"["2024-01-03","007"]"#);
        assert_eq!(
            serde_json::from_str::<PartitionValues>(&text).unwrap(),
            values
        );
        let keys = [
            PartitionKey {
                name: "d".into(),
                key_type: KeyType::Date,
            },
            PartitionKey {
                name: "s".into(),
                key_type: KeyType::Int,
            },
        ];
        assert_eq!(values.typed(&keys).unwrap()[1], Typed::Int(7));
        let bad = PartitionValues::new(vec![Some("soon".into()), None]);
        let e = bad.typed(&keys).unwrap_err().to_string();
        assert!(e.contains("\"soon\" of key d is not a date"), "{e}");
    }
}
