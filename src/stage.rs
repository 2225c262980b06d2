//! Writing new files outside the live table, and verifying them before any commit.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use object_store::buffered::BufWriter;
use object_store::{path::Path, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::checksum::{LogicalSchema, Part};
use crate::error::{Error, Result};
use crate::storage::Location;
use crate::table::DataFile;

/// Writer settings that keep the table's codec, row group size, and which columns are
/// dictionary-encoded (a column the source wrote plainly, like free text, is not
/// dictionary-encoded again only to fall back to plain).
pub fn properties(
    codec: Compression,
    row_group_rows: usize,
    dictionary: &[(ColumnPath, bool)],
) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)));
    for (path, dict) in dictionary {
        b = b.set_column_dictionary_enabled(path.clone(), *dict);
    }
    b.build()
}

/// Writes `batches` as one Parquet file at `path` (large files go up as multipart
/// uploads); on local disk the file and its folder are fsynced. Returns the file's size.
pub async fn write(
    loc: &Location,
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    props: WriterProperties,
) -> Result<u64> {
    let failed = |e: &dyn std::fmt::Display| Error::Run(format!("writing staged file {path}: {e}"));
    let sink = BufWriter::new(loc.store.clone(), path.clone());
    let mut writer =
        AsyncArrowWriter::try_new(sink, schema.clone(), Some(props)).map_err(|e| failed(&e))?;
    for b in batches {
        writer.write(b).await.map_err(|e| failed(&e))?;
    }
    writer.close().await.map_err(|e| failed(&e))?;
    loc.sync_file(path)?;
    let meta = loc
        .store
        .head(path)
        .await
        .map_err(|e| Error::storage(path, e))?;
    Ok(meta.size)
}

/// Reads the staged files back and checks they hold exactly the expected rows.
pub async fn verify(
    loc: &Location,
    files: &[(Path, u64)],
    schema: &LogicalSchema,
    expected: &Part,
) -> Result<()> {
    let mut got = Part::default();
    for (path, size) in files {
        let file = DataFile {
            path: path.clone(),
            relative: path.to_string(),
            size: *size,
        };
        let scan = crate::snapshot::scan_file(loc.store.clone(), &file, false).await?;
        if !scan.schema.same_columns(schema) {
            return Err(Error::Run(format!(
                "staged file {path} reads back with columns [{}], not [{}]",
                scan.schema.describe(),
                schema.describe()
            )));
        }
        got.add(&scan.part);
    }
    if got.rows != expected.rows || got.sum != expected.sum {
        return Err(Error::Run(format!(
            "staged files read back as {} rows with another checksum than the {} rows written; the partition was left as it was",
            got.rows, expected.rows
        )));
    }
    Ok(())
}
