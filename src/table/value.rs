//! Partition values: Hive escaping, NULL, and typed interpretation.

use std::cmp::Ordering;
use std::fmt;

use chrono::NaiveDate;

/// How Hive spells a NULL partition value in a folder name.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// Bytes Hive percent-escapes in partition folder names (as Hive's `FileUtils.escapePathName`).
fn needs_escape(b: u8) -> bool {
    b < 0x20
        || b == 0x7f
        || matches!(
            b,
            b'"' | b'#'
                | b'%'
                | b'\''
                | b'*'
                | b'/'
                | b':'
                | b'='
                | b'?'
                | b'\\'
                | b'{'
                | b'['
                | b']'
                | b'^'
        )
}

/// Escapes a value for a `key=value` folder name. `None` is NULL.
pub fn escape_value(value: Option<&str>) -> String {
    let Some(value) = value else {
        return HIVE_NULL.to_string();
    };
    if value == HIVE_NULL {
        // A string that spells the NULL marker must not read back as NULL.
        return format!("%5F{}", &value[1..]);
    }
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if ch.is_ascii() && needs_escape(ch as u8) {
            out.push_str(&format!("%{:02X}", ch as u8));
        } else {
            out.push(ch);
        }
    }
    out
}

/// Decodes a folder-name value: `%XX` escapes are undone, the Hive NULL marker is `None`.
pub fn unescape_value(raw: &str) -> Option<String> {
    if raw == HIVE_NULL {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>();
    Some(String::from_utf8(decoded).unwrap_or_else(|_| raw.to_string()))
}

/// The type of a partition key's values.
///
/// One list of names and aliases for the command line (clap, any case) and snapshot and
/// journal files (serde).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// `YYYY-MM-DD`.
    Date,
    /// A signed 64-bit integer.
    #[serde(alias = "integer", alias = "bigint", alias = "int64")]
    #[value(alias = "integer", alias = "bigint", alias = "int64")]
    Int,
    /// Anything else.
    #[serde(alias = "str", alias = "text", alias = "varchar")]
    #[value(alias = "str", alias = "text", alias = "varchar")]
    String,
}

impl KeyType {
    /// A key type as `--partition-type` spells it: a name or alias, in any case.
    pub fn parse(s: &str) -> Option<KeyType> {
        <KeyType as clap::ValueEnum>::from_str(s, true).ok()
    }

    /// The type's name in output.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Date => "date",
            KeyType::Int => "int",
            KeyType::String => "string",
        }
    }

    /// The narrowest type all the given non-NULL values fit: date, then int, then string.
    pub fn infer<'a>(values: impl Iterator<Item = &'a str> + Clone) -> KeyType {
        let mut any = false;
        let all_dates = values.clone().all(|v| {
            any = true;
            parse_date(v).is_some()
        });
        if !any {
            return KeyType::String;
        }
        if all_dates {
            return KeyType::Date;
        }
        if values.clone().all(|v| parse_int(v).is_some()) {
            return KeyType::Int;
        }
        KeyType::String
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A partition value read in its key's type. Orders as the key's type does, NULL last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// A date.
    Date(NaiveDate),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// NULL (`__HIVE_DEFAULT_PARTITION__`).
    Null,
}

impl Typed {
    /// Reads `value` (already unescaped) as `ty`; `None` if it does not fit.
    pub fn read(value: Option<&str>, ty: KeyType) -> Option<Typed> {
        let Some(v) = value else {
            return Some(Typed::Null);
        };
        match ty {
            KeyType::Date => parse_date(v).map(Typed::Date),
            KeyType::Int => parse_int(v).map(Typed::Int),
            KeyType::String => Some(Typed::Str(v.to_string())),
        }
    }

    /// The value as JSON: dates as `YYYY-MM-DD` strings, ints as numbers, NULL as null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Typed::Date(d) => serde_json::Value::String(d.format("%Y-%m-%d").to_string()),
            Typed::Int(i) => serde_json::Value::from(*i),
            Typed::Str(s) => serde_json::Value::String(s.clone()),
            Typed::Null => serde_json::Value::Null,
        }
    }
}

impl PartialOrd for Typed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Typed {
    fn cmp(&self, other: &Self) -> Ordering {
        use Typed::*;
        match (self, other) {
            (Date(a), Date(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Str(a), Str(b)) => a.cmp(b),
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl Typed {
    fn rank(&self) -> u8 {
        match self {
            Typed::Date(_) => 0,
            Typed::Int(_) => 1,
            Typed::Str(_) => 2,
            Typed::Null => 3,
        }
    }
}

impl fmt::Display for Typed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Typed::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Typed::Int(i) => write!(f, "{i}"),
            Typed::Str(s) => f.write_str(s),
            Typed::Null => f.write_str("NULL"),
        }
    }
}

/// Days since 1970-01-01, as Arrow's Date32.
pub fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// Reads `YYYY-MM-DD`.
pub fn parse_date(v: &str) -> Option<NaiveDate> {
    if v.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// Reads an integer as partition values spell it.
pub fn parse_int(v: &str) -> Option<i64> {
    if v.is_empty() || v.starts_with('+') {
        return None;
    }
    v.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_name_parse_accepts_serde_reads_alike() {
        for (name, ty) in [
            ("date", KeyType::Date),
            ("int", KeyType::Int),
            ("integer", KeyType::Int),
            ("bigint", KeyType::Int),
            ("int64", KeyType::Int),
            ("string", KeyType::String),
            ("str", KeyType::String),
            ("text", KeyType::String),
            ("varchar", KeyType::String),
        ] {
            assert_eq!(KeyType::parse(name), Some(ty), "{name}");
            let read: KeyType = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(read, ty, "{name}");
            assert_eq!(KeyType::parse(ty.name()), Some(ty));
        }
    }

    #[test]
    fn escaping_round_trips_awkward_values() {
        for v in ["a/b", "x=y", "50%", "", "São Paulo", "a:b?c#d", HIVE_NULL] {
            let escaped = escape_value(Some(v));
            assert!(!escaped.contains('/'), "{escaped}");
            assert_eq!(unescape_value(&escaped).as_deref(), Some(v), "{v}");
        }
        assert_eq!(escape_value(None), HIVE_NULL);
        assert_eq!(unescape_value(HIVE_NULL), None);
    }

    #[test]
    fn a_literal_null_marker_is_escaped_apart_from_null() {
        // A string that spells the NULL marker must not become NULL on the way back.
        assert_ne!(escape_value(Some(HIVE_NULL)), HIVE_NULL);
    }

    #[test]
    fn inference_prefers_date_then_int_then_string() {
        assert_eq!(
            KeyType::infer(["2024-01-03", "2024-12-31"].into_iter()),
            KeyType::Date
        );
        assert_eq!(KeyType::infer(["1", "20", "-3"].into_iter()), KeyType::Int);
        assert_eq!(KeyType::infer(["1", "eu"].into_iter()), KeyType::String);
        assert_eq!(KeyType::infer(["2024-13-01"].into_iter()), KeyType::String);
        assert_eq!(KeyType::infer([].into_iter()), KeyType::String);
    }

    #[test]
    fn typed_order_puts_null_last() {
        let mut v = vec![Typed::Null, Typed::Int(3), Typed::Int(-1)];
        v.sort();
        assert_eq!(v, vec![Typed::Int(-1), Typed::Int(3), Typed::Null]);
    }
}
