//! The user's SQL against one partition, in DataFusion.
//!
//! The partition's current rows are the table `source`: every column of its files plus
//! the partition keys as typed columns (unless the files already hold them). The
//! partition's values are also the one-row table `this_partition`, for joins and
//! filters (`WHERE d.valid_on = (SELECT event_date FROM this_partition)`). Tables given
//! with `--table NAME=TABLE` are registered under NAME.
//!
//! The output is then made to fit the table ([`conform`]): rows must carry the
//! partition's own key values (key columns are then dropped), and columns and types must
//! equal the table's unless a schema change is allowed.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, Date32Array, Int64Array, RecordBatch, Scalar, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};
use crate::storage::{Backend, Location};
use crate::table::read::Source;
use crate::table::{KeyType, Partition, PartitionKey, Typed};

mod slot;
use slot::{Name, Slot};

fn key_type(k: &PartitionKey) -> DataType {
    match k.key_type {
        KeyType::Date => DataType::Date32,
        KeyType::Int => DataType::Int64,
        KeyType::String => DataType::Utf8,
    }
}

/// A constant column of `n` copies of a partition value.
fn constant(value: &Typed, k: &PartitionKey, n: usize) -> ArrayRef {
    match (value, k.key_type) {
        (Typed::Date(d), _) => Arc::new(Date32Array::from(vec![
                crate::table::value::days_since_epoch(
                    *d
                );
                n
            ])),
        (Typed::Int(i), _) => Arc::new(Int64Array::from(vec![*i; n])),
        (Typed::Str(s), _) => Arc::new(StringArray::from(vec![s.as_str(); n])),
        (Typed::Null, _) => arrow::array::new_null_array(&key_type(k), n),
    }
}

/// Checks the SQL without a table: one statement, a query (`SELECT`, `WITH`, `VALUES`),
/// that parses. What it reads is checked when it is planned against the table.
pub fn check_syntax(sql: &str) -> Result<()> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast;
    if sql.trim().trim_end_matches(';').trim().is_empty() {
        return Err(Error::Usage(
            "the SQL file is empty; write a SELECT over the table `source`".into(),
        ));
    }
    let fail = |reason: String| {
        Error::Usage(format!(
            "the transform SQL failed: {reason}; write one SELECT over the table `source` (the partition's rows)"
        ))
    };
    let statements = DFParser::parse_sql(sql).map_err(|e| fail(e.to_string()))?;
    match statements.len() {
        1 => {}
        n => return Err(fail(format!("the file holds {n} statements"))),
    }
    match &statements[0] {
        Statement::Statement(s) if matches!(**s, ast::Statement::Query(_)) => Ok(()),
        other => {
            let text = other.to_string();
            let head: String = text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            Err(fail(format!(
                "it is a {head} statement, not a query; the transform only reads"
            )))
        }
    }
}

/// The compiled transform: SQL text and the tables it may join.
#[derive(Clone)]
pub struct Transform {
    sql: String,
    tables: Vec<(String, Arc<dyn TableProvider>)>,
    stores: Vec<(url::Url, Arc<dyn object_store::ObjectStore>)>,
    /// The SQL planned and optimised once for a `source` schema; partitions with that
    /// schema only put in their rows (a session, a SQL parse, the optimiser and the
    /// physical planner cost more than a small partition's work).
    planned: Arc<std::sync::Mutex<Option<Arc<Planned>>>>,
}

/// The SQL planned for one pair of `source` and `this_partition` schemas, over [`Slot`]s.
struct Planned {
    source: SchemaRef,
    this_partition: SchemaRef,
    state: SessionState,
    /// The optimised logical plan, to plan again for each partition when `physical` is
    /// `None`.
    plan: LogicalPlan,
    /// The physical plan, when every partition can run a copy of it ([`slot::reusable`]).
    physical: Option<Arc<dyn ExecutionPlan>>,
    task: Arc<TaskContext>,
    /// The SQL as a row filter, when it is one ([`Keeping`]).
    keeping: Option<Keeping>,
    /// Whether each output row is made from the `source` row in its place ([`Lineage`]).
    row_for_row: bool,
}

/// SQL that only keeps some of `source`'s rows, each as it is: a `WHERE` over `source`
/// and bare columns. It runs as DataFusion's own filter would (the same physical
/// predicate, NULL as false), and says which rows it kept: their hashes are then those
/// of the old rows ([`Transform::apply_with_lineage`]).
struct Keeping {
    /// The columns of `source` the scan reads, all when `None`.
    scan: Option<Vec<usize>>,
    predicate: Arc<dyn datafusion::physical_expr::PhysicalExpr>,
    /// The output's columns, as positions among the scan's.
    output: Vec<usize>,
}

/// How the output's rows come from `source`'s rows, where the plan says so: their hashes
/// as read are then those of the output rows that equal them.
#[derive(Debug, Default)]
pub enum Lineage {
    /// Not known: every output row is hashed as new.
    #[default]
    Unknown,
    /// Which rows of each batch of `source` the SQL kept, each as it was ([`Keeping`]).
    Kept(Vec<arrow::array::BooleanArray>),
    /// Output row `i` is made from row `i` of `source` alone, in the same batches: a SQL of
    /// projections over `source` with no filter (its columns may change, rows may not
    /// come or go).
    RowForRow,
}

impl Transform {
    /// Prepares the transform and the `--table NAME=TABLE` tables (opened once per run).
    pub async fn new(sql: &str, tables: &[(String, String)]) -> Result<Transform> {
        check_syntax(sql)?;
        let mut t = Transform {
            sql: sql.trim().trim_end_matches(';').to_string(),
            tables: Vec::new(),
            stores: Vec::new(),
            planned: Arc::default(),
        };
        for (name, location) in tables {
            let (provider, store) = lookup_table(location)
                .await
                .map_err(|e| Error::Usage(format!("--table {name}={location}: {e}")))?;
            t.tables.push((name.clone(), provider));
            if let Some(s) = store {
                t.stores.push(s);
            }
        }
        Ok(t)
    }

    fn context(&self) -> Result<SessionContext> {
        // One partition is one small query; runs parallelise across partitions instead.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        for (url, store) in &self.stores {
            ctx.register_object_store(url, store.clone());
        }
        for (name, provider) in &self.tables {
            ctx.register_table(name.as_str(), provider.clone())
                .map_err(|e| query("registering --table", e))?;
        }
        Ok(ctx)
    }

    /// The SQL as a DataFrame over `source` (the given rows plus the partition keys) and
    /// `this_partition` (one row of the partition's values, or none when only planning).
    async fn dataframe(
        &self,
        keys: &[PartitionKey],
        partition: &Partition,
        file_schema: &SchemaRef,
        batches: &[RecordBatch],
        planning: bool,
    ) -> Result<datafusion::dataframe::DataFrame> {
        let ctx = self.context()?;
        let (schema, rows) = with_keys(keys, partition, file_schema, batches)?;
        register(&ctx, "source", schema, rows)?;
        let empty = Arc::new(Schema::empty());
        let one_row = if planning { vec![] } else { vec![one_row()] };
        let (pschema, prow) = with_keys(keys, partition, &empty, &one_row)?;
        register(&ctx, "this_partition", pschema, prow)?;
        ctx.sql_with_options(&self.sql, sql_options())
            .await
            .map_err(sql_error)
    }

    /// Runs the SQL over one partition's rows; returns the output schema and batches.
    pub async fn apply(
        &self,
        keys: &[PartitionKey],
        partition: &Partition,
        source: &Source,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.apply_rows(keys, partition, &source.schema, &source.batches)
            .await
    }

    /// Runs the SQL over `batches` of `schema` as partition `partition`'s rows.
    pub async fn apply_rows(
        &self,
        keys: &[PartitionKey],
        partition: &Partition,
        file_schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let (schema, out, _) = self
            .apply_with_lineage(keys, partition, file_schema, batches)
            .await?;
        Ok((schema, out))
    }

    /// [`Transform::apply_rows`], and how its rows come from `source`'s ([`Lineage`]).
    pub async fn apply_with_lineage(
        &self,
        keys: &[PartitionKey],
        partition: &Partition,
        file_schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(SchemaRef, Vec<RecordBatch>, Lineage)> {
        let (schema, rows) = with_keys(keys, partition, file_schema, batches)?;
        let (pschema, prow) = with_keys(keys, partition, &Arc::new(Schema::empty()), &[one_row()])?;
        let planned = self.planned_for(&schema, &pschema).await?;
        let out_schema: SchemaRef = Arc::new(planned.plan.schema().as_arrow().clone());
        if let Some(k) = &planned.keeping {
            let mut out = Vec::with_capacity(rows.len());
            let mut kept = Vec::with_capacity(rows.len());
            for b in &rows {
                let (o, mask) = k.keep(b, &out_schema).map_err(sql_error)?;
                out.push(o);
                kept.push(mask);
            }
            return Ok((out_schema, out, Lineage::Kept(kept)));
        }
        let physical = match &planned.physical {
            Some(reused) => reused.clone(),
            None => planned
                .state
                .query_planner()
                .create_physical_plan(&planned.plan, &planned.state)
                .await
                .map_err(sql_error)?,
        };
        let sizes: Vec<usize> = rows.iter().map(|b| b.num_rows()).collect();
        let physical = slot::fill(&physical, rows, prow).map_err(sql_error)?;
        let batches = datafusion::physical_plan::collect(physical, planned.task.clone())
            .await
            .map_err(sql_error)?;
        // Row for row only where the output's batches are the input's, size for size.
        let lined_up = batches.len() == sizes.len()
            && batches.iter().zip(&sizes).all(|(b, n)| b.num_rows() == *n);
        let lineage = if planned.row_for_row && lined_up {
            Lineage::RowForRow
        } else {
            Lineage::Unknown
        };
        Ok((out_schema, batches, lineage))
    }

    /// Whether the SQL handles each row of `source` on its own (projections and filters
    /// over `source` only: no join, aggregate, window, sort, limit or subquery), so that a
    /// partition can be transformed a slice of rows at a time and give the same rows in
    /// the same order as when transformed whole.
    ///
    /// Also whether it may pass columns through as they are, row for row (no filter, and
    /// some output column is a bare column of `source`): a partition rewritten whole can
    /// then copy their chunks instead of encoding them.
    pub async fn row_by_row(
        &self,
        keys: &[PartitionKey],
        partition: &Partition,
        file_schema: &SchemaRef,
    ) -> Result<(bool, bool)> {
        let (schema, _) = with_keys(keys, partition, file_schema, &[])?;
        let (pschema, _) = with_keys(keys, partition, &Arc::new(Schema::empty()), &[])?;
        let planned = self.planned_for(&schema, &pschema).await?;
        Ok((row_by_row(&planned.plan), passes_through(&planned.plan)))
    }

    /// The SQL planned for these table schemas, planned now if it was not yet.
    async fn planned_for(&self, source: &SchemaRef, this: &SchemaRef) -> Result<Arc<Planned>> {
        {
            let cached = self.planned.lock().expect("not poisoned");
            if let Some(p) = cached.as_ref() {
                if p.source == *source && p.this_partition == *this {
                    return Ok(p.clone());
                }
            }
        }
        let ctx = self.context()?;
        for (name, schema) in [(Name::Source, source), (Name::ThisPartition, this)] {
            let table = Arc::new(Slot {
                name,
                schema: schema.clone(),
            });
            ctx.register_table(name.as_str(), table)
                .map_err(|e| query(&format!("registering `{}`", name.as_str()), e))?;
        }
        let plan = ctx
            .sql_with_options(&self.sql, sql_options())
            .await
            .map_err(sql_error)?
            .into_unoptimized_plan();
        // Optimised once too: the rules depend on schemas, not rows. `now()` is folded
        // here, so every partition of a run sees the same time.
        let state = ctx.state();
        let plan = state.optimize(&plan).map_err(sql_error)?;
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, &state)
            .await
            .map_err(sql_error)?;
        let keeping = Keeping::of(&plan, &state);
        let row_for_row = row_by_row(&plan) && !has_filter(&plan);
        let planned = Arc::new(Planned {
            source: source.clone(),
            this_partition: this.clone(),
            keeping,
            row_for_row,
            task: state.task_ctx(),
            physical: slot::reusable(&physical).then_some(physical),
            state,
            plan,
        });
        *self.planned.lock().expect("not poisoned") = Some(planned.clone());
        Ok(planned)
    }

    /// Plans the SQL against a table schema without data (for `plan --sql`): its output
    /// schema, and the volatile functions it calls ([`volatile_functions`]).
    pub async fn check(
        &self,
        keys: &[PartitionKey],
        partition: &Partition,
        file_schema: &SchemaRef,
    ) -> Result<(SchemaRef, Vec<String>)> {
        let df = self
            .dataframe(keys, partition, file_schema, &[], true)
            .await?;
        let volatile = volatile_functions(df.logical_plan())?;
        // Build the physical plan too: it catches errors the logical plan lets through.
        df.clone().create_physical_plan().await.map_err(sql_error)?;
        Ok((Arc::new(df.schema().as_arrow().clone()), volatile))
    }
}

/// The volatile functions a plan calls (`random()`, `uuid()`...: another value on every
/// call), each with the clause it is in, as `random() in the SELECT list`. Stable ones
/// such as `now()` are not: the plan folds them to one value per run.
fn volatile_functions(plan: &LogicalPlan) -> Result<Vec<String>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, Volatility};
    let mut found: Vec<String> = Vec::new();
    plan.apply_with_subqueries(|node| {
        let clause = clause_of(node);
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.func.signature().volatility == Volatility::Volatile {
                        found.push(format!("{}() in {clause}", f.name()));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(sql_error)?;
    found.sort();
    found.dedup();
    Ok(found)
}

impl Keeping {
    /// The plan as a row filter: `Filter` over a scan of `source`, under bare columns or
    /// nothing. Anything else, or a predicate that calls a volatile function or a
    /// subquery, is run by DataFusion.
    fn of(plan: &LogicalPlan, state: &SessionState) -> Option<Keeping> {
        use datafusion::logical_expr::Expr;
        let (exprs, below) = match plan {
            LogicalPlan::Projection(p) => (Some(&p.expr), p.input.as_ref()),
            other => (None, other),
        };
        let LogicalPlan::Filter(filter) = below else {
            return None;
        };
        let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
            return None;
        };
        if scan.table_name.table() != Name::Source.as_str()
            || scan.fetch.is_some()
            || !scan.filters.is_empty()
            || filter.predicate.is_volatile()
            || !row_by_row(below)
        {
            return None;
        }
        let input = filter.input.schema();
        let output = match exprs {
            None => (0..input.fields().len()).collect(),
            Some(exprs) => exprs
                .iter()
                .map(|e| match e {
                    Expr::Column(c) => input.index_of_column(c).ok(),
                    _ => None,
                })
                .collect::<Option<Vec<usize>>>()?,
        };
        let predicate = state
            .create_physical_expr(filter.predicate.clone(), input)
            .ok()?;
        Some(Keeping {
            scan: scan.projection.clone(),
            predicate,
            output,
        })
    }

    /// The rows of `batch` (all of `source`'s columns) the predicate keeps, as `schema`,
    /// and which they are.
    fn keep(
        &self,
        batch: &RecordBatch,
        schema: &SchemaRef,
    ) -> datafusion::error::Result<(RecordBatch, arrow::array::BooleanArray)> {
        use arrow::array::AsArray;
        let scanned = match &self.scan {
            Some(columns) => batch.project(columns)?,
            None => batch.clone(),
        };
        let value = self
            .predicate
            .evaluate(&scanned)?
            .into_array(scanned.num_rows())?;
        let mask = value.as_boolean_opt().cloned().ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!(
                "the WHERE condition gives {}, not a boolean",
                value.data_type()
            ))
        })?;
        // As DataFusion's filter: a NULL condition drops the row.
        let mask = match mask.null_count() {
            0 => mask,
            _ => arrow::compute::prep_null_mask_filter(&mask),
        };
        let columns = self
            .output
            .iter()
            .map(|c| arrow::compute::filter(scanned.column(*c), &mask))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let out = RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(mask.true_count())),
        )?;
        Ok((out, mask))
    }
}

/// See [`Transform::row_by_row`]; anything not known to be row by row is not.
fn row_by_row(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::Expr;
    let node_ok = match plan {
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => true,
        LogicalPlan::TableScan(scan) => {
            scan.table_name.table() == Name::Source.as_str() && scan.fetch.is_none()
        }
        _ => false,
    };
    let exprs_ok = plan.expressions().iter().all(|e| {
        !e.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::InSubquery(_)
                    | Expr::Exists(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::WindowFunction(_)
                    | Expr::AggregateFunction(_)
            ))
        })
        .unwrap_or(true)
    });
    node_ok && exprs_ok && plan.inputs().into_iter().all(row_by_row)
}

/// See [`Transform::row_by_row`].
fn passes_through(plan: &LogicalPlan) -> bool {
    use datafusion::logical_expr::Expr;
    let bare = match plan {
        LogicalPlan::Projection(p) => p.expr.iter().any(|e| matches!(e, Expr::Column(_))),
        // No projection on top: the rows of `source` as they are.
        _ => true,
    };
    !has_filter(plan) && bare
}

/// Whether any node of the plan filters rows (a scan too, were a filter pushed into it).
fn has_filter(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut filters = false;
    let _ = plan.apply(|node| {
        filters |= match node {
            LogicalPlan::Filter(_) => true,
            LogicalPlan::TableScan(scan) => !scan.filters.is_empty(),
            _ => false,
        };
        Ok(TreeNodeRecursion::Continue)
    });
    filters
}

/// Where in the query a plan node comes from, for messages.
fn clause_of(node: &LogicalPlan) -> &'static str {
    match node {
        LogicalPlan::Projection(_) => "the SELECT list",
        LogicalPlan::Filter(_) => "a WHERE or HAVING condition",
        LogicalPlan::Sort(_) => "an ORDER BY",
        LogicalPlan::Aggregate(_) => "a GROUP BY or aggregate",
        LogicalPlan::Window(_) => "a window function",
        LogicalPlan::Join(_) => "a JOIN condition",
        LogicalPlan::Limit(_) => "a LIMIT",
        _ => "the query",
    }
}

fn register(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    rows: Vec<RecordBatch>,
) -> Result<()> {
    ctx.register_table(name, mem_table(name, schema, rows)?)
        .map_err(|e| query(&format!("registering `{name}`"), e))?;
    Ok(())
}

fn mem_table(
    name: &str,
    schema: SchemaRef,
    rows: Vec<RecordBatch>,
) -> Result<Arc<dyn TableProvider>> {
    let mem = MemTable::try_new(schema, vec![rows])
        .map_err(|e| query(&format!("preparing `{name}`"), e))?;
    Ok(Arc::new(mem))
}

/// A batch of no columns and one row: `this_partition` before its key columns are added.
fn one_row() -> RecordBatch {
    RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .expect("a batch of no columns and one row")
}

/// Only queries: no DDL, DML or statements.
fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn query(context: &str, e: datafusion::error::DataFusionError) -> Error {
    Error::Query {
        context: context.into(),
        error: e,
    }
}

fn sql_error(e: datafusion::error::DataFusionError) -> Error {
    Error::Transform { error: e }
}

/// Adds the partition keys as constant typed columns (unless the files have them).
fn with_keys(
    keys: &[PartitionKey],
    partition: &Partition,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    let extra: Vec<(usize, &PartitionKey)> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| schema.field_with_name(&k.name).is_err())
        .collect();
    for (_, k) in &extra {
        fields.push(Arc::new(Field::new(&k.name, key_type(k), true)));
    }
    let out_schema = Arc::new(Schema::new(fields));
    let out = batches
        .iter()
        .map(|b| {
            let mut cols = b.columns().to_vec();
            for (i, k) in &extra {
                cols.push(constant(&partition.typed[*i], k, b.num_rows()));
            }
            RecordBatch::try_new_with_options(
                out_schema.clone(),
                cols,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
            )
            .map_err(|e| Error::Arrow {
                context: "adding the partition keys to the transform's output".into(),
                error: e,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out_schema, out))
}

/// Opens a `--table` location as a DataFusion table.
async fn lookup_table(
    location: &str,
) -> Result<(
    Arc<dyn TableProvider>,
    Option<(url::Url, Arc<dyn object_store::ObjectStore>)>,
)> {
    let local_file = std::path::Path::new(location.strip_prefix("file://").unwrap_or(location));
    if (!location.contains("://") || location.starts_with("file://")) && local_file.is_file() {
        let abs = crate::storage::fs::real()
            .canonicalize(local_file)
            .map_err(|e| Error::Io {
                path: local_file.into(),
                error: e,
            })?;
        return listing(&format!("file://{}", abs.display()), Vec::new(), None).await;
    }
    let loc = Location::open(location)?;
    let (url, base) = match loc.backend {
        Backend::Local => (
            format!(
                "file://{}/",
                loc.local_dir.as_ref().expect("local").display()
            ),
            None,
        ),
        Backend::S3 => {
            let bucket = location
                .trim_start_matches("s3://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let base = url::Url::parse(&format!("s3://{bucket}"))
                .map_err(|e| Error::Usage(e.to_string()))?;
            (
                format!("s3://{bucket}/{}/", loc.root),
                Some((base, loc.store.clone())),
            )
        }
        Backend::Memory => {
            let base = url::Url::parse("memory://").map_err(|e| Error::Usage(e.to_string()))?;
            (
                format!("memory:///{}/", loc.root),
                Some((base, loc.store.clone())),
            )
        }
    };
    let partition_cols = match crate::table::discover(&loc, &Default::default()).await {
        Ok(t) => t
            .keys
            .iter()
            .map(|k| (k.name.clone(), key_type(k)))
            .collect(),
        Err(_) => Vec::new(),
    };
    listing(&url, partition_cols, base).await
}

type StoreAt = (url::Url, Arc<dyn object_store::ObjectStore>);

async fn listing(
    url: &str,
    partition_cols: Vec<(String, DataType)>,
    base: Option<StoreAt>,
) -> Result<(Arc<dyn TableProvider>, Option<StoreAt>)> {
    let ctx = SessionContext::new();
    if let Some((u, s)) = &base {
        ctx.register_object_store(u, s.clone());
    }
    // INT96 as microseconds, as every table is read here (`table::reader::reading`).
    let mut parquet = datafusion::config::TableParquetOptions::default();
    parquet.global.coerce_int96 = Some("us".into());
    let options = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_cols);
    let table_url = ListingTableUrl::parse(url).map_err(|e| Error::Usage(e.strip_backtrace()))?;
    check_embedded_schemas(&ctx, &table_url).await?;
    let schema = options
        .infer_schema(&ctx.state(), &table_url)
        .await
        .map_err(|e| Error::Usage(e.strip_backtrace()))?;
    // The SQL engine reads a Parquet INTERVAL without its months.
    for f in schema.fields() {
        let mut interval = false;
        crate::table::reader::map_fields(f, &mut |leaf| {
            interval |= matches!(leaf.data_type(), DataType::Interval(_));
            leaf.clone()
        });
        if interval {
            return Err(Error::Usage(format!(
                "lookup table {url}: column {} holds a Parquet INTERVAL, which lookup tables are read without (its months would be lost); leave the column out of that table's files, or store it as text",
                f.name()
            )));
        }
    }
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| Error::Usage(e.strip_backtrace()))?;
    Ok((Arc::new(table), base))
}

/// Refuses a lookup table with a file whose embedded Arrow schema the reader cannot read
/// ([`crate::table::embedded`]), by name, before the engine's schema inference meets it.
/// That reads each footer twice, once per run: lookup tables are read once, up front.
async fn check_embedded_schemas(ctx: &SessionContext, table_url: &ListingTableUrl) -> Result<()> {
    use futures::TryStreamExt as _;
    let state = ctx.state();
    let usage = |e: datafusion::error::DataFusionError| Error::Usage(e.strip_backtrace());
    let store = state.runtime_env().object_store(table_url).map_err(usage)?;
    let files: Vec<object_store::ObjectMeta> = table_url
        .list_all_files(&state, store.as_ref(), ".parquet")
        .await
        .map_err(usage)?
        .try_collect()
        .await
        .map_err(usage)?;
    for file in files {
        let path = file.location.to_string();
        let mut reader =
            crate::table::reader::FileReader::new(store.clone(), file.location, file.size);
        use parquet::arrow::async_reader::AsyncFileReader as _;
        if let Err(e) = reader.get_metadata(None).await {
            return Err(Error::Usage(format!("{path}: {e}")));
        }
    }
    Ok(())
}

/// Why a schema change nobody allowed is refused, and what to do.
pub fn schema_change_refused(whose: &str, what: &str) -> String {
    // A computed column takes its expression's type, which is easy to get wrong: DataFusion
    // types `CASE WHEN q < 0 THEN 0 ELSE q END` over a DECIMAL `q` as BIGINT.
    let cast = if what.contains("retyped [") {
        "; to keep the table's type, CAST the expression to it (`CAST(... AS DECIMAL(15, 2))`)"
    } else {
        ""
    };
    format!("{whose} differ from the table's: {what}{cast}; pass --allow-schema-change if that is intended")
}

/// The transform's output made to fit the table.
pub struct Conformed {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: u64,
    /// What differs from the table's columns, if anything (allowed by the caller).
    pub schema_change: Option<String>,
    /// How these rows come from the source's ([`Lineage`]).
    pub lineage: Lineage,
}

/// Types that are the same values in another Arrow encoding (written alike to Parquet).
fn normalize(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, v) => normalize(v),
        other => other.clone(),
    }
}

/// Checks the output against the partition and the table; see the module docs.
/// `Err` carries a message for the partition's report.
pub fn conform(
    keys: &[PartitionKey],
    partition: &Partition,
    table_schema: &SchemaRef,
    out_schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    allow_schema_change: bool,
) -> std::result::Result<Conformed, String> {
    // 1. Rows must belong to this partition.
    let mut drop = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if table_schema.field_with_name(&k.name).is_ok() {
            continue;
        }
        let Ok(idx) = out_schema.index_of(&k.name) else {
            continue;
        };
        drop.push(idx);
        let want = constant(&partition.typed[i], k, 1);
        for b in &batches {
            let col = arrow::compute::cast(b.column(idx), &key_type(k)).map_err(|e| {
                format!(
                    "key column {} cannot be read as {}: {e}",
                    k.name, k.key_type
                )
            })?;
            let differs = arrow::compute::kernels::cmp::distinct(&col, &Scalar::new(want.clone()))
                .map_err(|e| e.to_string())?;
            if let Some(row) = (0..differs.len()).find(|r| differs.value(*r)) {
                let bad = crate::table::unescape_value(
                    &arrow::util::display::array_value_to_string(&col, row).unwrap_or_default(),
                );
                let count = differs.true_count();
                return Err(format!(
                    "{count} output row(s) belong to another partition ({}={}, not {}); filter them out or drop the column",
                    k.name,
                    if col.is_null(row) { "NULL".to_string() } else { bad.unwrap_or_default() },
                    partition.typed[i]
                ));
            }
        }
    }
    let kept: Vec<usize> = (0..out_schema.fields().len())
        .filter(|i| !drop.contains(i))
        .collect();
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();

    // 2. Columns and types must be the table's.
    let out_fields: Vec<&Field> = kept.iter().map(|i| out_schema.field(*i)).collect();
    let added: Vec<String> = out_fields
        .iter()
        .filter(|f| table_schema.field_with_name(f.name()).is_err())
        .map(|f| f.name().clone())
        .collect();
    let removed: Vec<String> = table_schema
        .fields()
        .iter()
        .filter(|f| !out_fields.iter().any(|o| o.name() == f.name()))
        .map(|f| f.name().clone())
        .collect();
    let retyped: Vec<String> = out_fields
        .iter()
        .filter_map(|o| {
            let t = table_schema.field_with_name(o.name()).ok()?;
            (normalize(t.data_type()) != normalize(o.data_type()))
                .then(|| format!("{}: {} -> {}", o.name(), t.data_type(), o.data_type()))
        })
        .collect();
    if added.is_empty() && removed.is_empty() && retyped.is_empty() {
        // Same columns: write exactly the table's Arrow types and column order.
        let out = batches
            .iter()
            .map(|b| {
                let cols = table_schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let c = b.column(out_schema.index_of(f.name()).expect("checked"));
                        if !f.is_nullable() && c.null_count() > 0 {
                            return Err(format!(
                                "column {} has NULLs but the table's column is NOT NULL",
                                f.name()
                            ));
                        }
                        arrow::compute::cast(c, f.data_type())
                            .map_err(|e| format!("column {}: {e}", f.name()))
                    })
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                RecordBatch::try_new_with_options(
                    table_schema.clone(),
                    cols,
                    &arrow::array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
                )
                .map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        return Ok(Conformed {
            schema: table_schema.clone(),
            batches: out,
            rows,
            schema_change: None,
            lineage: Lineage::Unknown,
        });
    }
    let mut what = Vec::new();
    if !added.is_empty() {
        what.push(format!("added [{}]", added.join(", ")));
    }
    if !removed.is_empty() {
        what.push(format!("removed [{}]", removed.join(", ")));
    }
    if !retyped.is_empty() {
        what.push(format!("retyped [{}]", retyped.join(", ")));
    }
    let what = what.join("; ");
    if !allow_schema_change {
        return Err(schema_change_refused("the output's columns", &what));
    }
    let schema = Arc::new(Schema::new(
        out_fields.iter().map(|f| (*f).clone()).collect::<Vec<_>>(),
    ));
    let out = batches
        .iter()
        .map(|b| {
            let cols = kept.iter().map(|i| b.column(*i).clone()).collect();
            RecordBatch::try_new_with_options(
                schema.clone(),
                cols,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
            )
            .map_err(|e| e.to_string())
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(Conformed {
        schema,
        batches: out,
        rows,
        schema_change: Some(what),
        lineage: Lineage::Unknown,
    })
}

/// Milliseconds since `t`.
pub fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the SQL runs as a row filter over a `source` of `a BIGINT, s VARCHAR`.
    fn keeps(sql: &str) -> bool {
        planned(sql).keeping.is_some()
    }

    fn planned(sql: &str) -> Arc<Planned> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = Transform::new(sql, &[]).await.unwrap();
            let source = Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("s", DataType::Utf8, true),
            ]));
            t.planned_for(&source, &Arc::new(Schema::empty()))
                .await
                .unwrap()
        })
    }

    #[test]
    fn only_projections_without_a_filter_make_each_row_from_the_row_in_its_place() {
        for sql in [
            "SELECT * FROM source",
            "SELECT a, upper(s) AS s FROM source",
            "SELECT s, CASE WHEN a < 0 THEN 0 ELSE a END AS a FROM source",
            "SELECT t.a, t.s FROM source AS t",
        ] {
            assert!(planned(sql).row_for_row, "{sql}");
        }
        for sql in [
            "SELECT * FROM source WHERE a > 1",
            "SELECT a, s FROM source ORDER BY a",
            "SELECT a, s FROM source LIMIT 3",
            "SELECT a, CAST(sum(a) OVER () AS VARCHAR) AS s FROM source",
            "SELECT DISTINCT a, s FROM source",
            "SELECT a, s FROM source UNION ALL SELECT a, s FROM source",
            "SELECT a, (SELECT max(s) FROM source) AS s FROM source",
        ] {
            assert!(!planned(sql).row_for_row, "{sql}");
        }
    }

    #[test]
    fn only_sql_that_keeps_rows_as_they_are_runs_as_a_row_filter() {
        for sql in [
            "SELECT * FROM source WHERE a > 1",
            "SELECT a, s FROM source WHERE s IS NOT NULL",
            "SELECT s, a FROM source WHERE a % 2 = 0 AND s LIKE 'x%'",
            "SELECT a FROM source WHERE s = 'x'",
        ] {
            assert!(keeps(sql), "{sql}");
        }
        for sql in [
            "SELECT * FROM source",
            "SELECT a, upper(s) AS s FROM source WHERE a > 1",
            "SELECT a AS s, s AS a FROM source WHERE a > 1",
            "SELECT a + 0 AS a, s FROM source WHERE a > 1",
            "SELECT * FROM source WHERE random() < 0.5",
            "SELECT * FROM source WHERE a IN (SELECT a FROM source WHERE s = 'x')",
            "SELECT * FROM source WHERE a > (SELECT min(a) FROM source)",
            "SELECT * FROM source WHERE a > 1 ORDER BY a",
            "SELECT * FROM source WHERE a > 1 LIMIT 3",
            "SELECT DISTINCT * FROM source WHERE a > 1",
            "SELECT a, count(*) AS s FROM source WHERE a > 1 GROUP BY a",
        ] {
            assert!(!keeps(sql), "{sql}");
        }
    }
}
