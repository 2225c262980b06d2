//! `source` and `this_partition` as tables whose rows come with each execution.
//!
//! The SQL is planned once per run against [`Slot`] tables; each partition then runs a
//! copy of the same physical plan with its rows put into the slots' scans ([`fill`]).
//! Planning a query costs more than transforming a small partition.
//!
//! A slot reports no statistics, so no rule can fold one partition's row count or values
//! into the plan. A plan is reused only when every node in it is one whose execution keeps
//! no state between executions ([`reusable`]); joins, sorts with a limit and aggregates
//! (which can hold dynamic filters or built tables) are planned again for each partition.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, Result as DFResult};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

/// Which of the two tables a slot stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name {
    Source,
    ThisPartition,
}

impl Name {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Name::Source => "source",
            Name::ThisPartition => "this_partition",
        }
    }
}

/// A table of the given schema whose rows are those of the execution's [`Rows`].
#[derive(Debug)]
pub(super) struct Slot {
    pub name: Name,
    pub schema: SchemaRef,
}

#[async_trait]
impl TableProvider for Slot {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(SlotExec {
            name: self.name,
            schema,
            projection: projection.cloned(),
            properties: Arc::new(properties),
            rows: None,
        }))
    }
}

/// The scan of a [`Slot`]; it has rows once [`fill`] gave them.
#[derive(Debug, Clone)]
pub(super) struct SlotExec {
    name: Name,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    rows: Option<Arc<Vec<RecordBatch>>>,
}

impl DisplayAs for SlotExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SlotExec: {}", self.name.as_str())
    }
}

impl ExecutionPlan for SlotExec {
    fn name(&self) -> &str {
        "SlotExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        // A plan run without its rows must fail, not read as a partition of no rows.
        let Some(batches) = &self.rows else {
            return exec_err!("no rows were given for `{}`", self.name.as_str());
        };
        if partition != 0 {
            return exec_err!("`{}` has one partition", self.name.as_str());
        }
        // Projection keeps the very column buffers: unchanged columns are then recognised
        // downstream and copied instead of encoded.
        let out: Vec<DFResult<RecordBatch>> = batches
            .iter()
            .map(|b| match &self.projection {
                Some(p) => Ok(b.project(p)?),
                None => Ok(b.clone()),
            })
            .collect();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(out),
        )))
    }
}

/// Whether a physical plan can run again for another partition: only nodes that keep no
/// state between executions, over slots.
pub(super) fn reusable(plan: &Arc<dyn ExecutionPlan>) -> bool {
    const STATELESS: [&str; 7] = [
        "SlotExec",
        "ProjectionExec",
        "FilterExec",
        "CoalesceBatchesExec",
        "CooperativeExec",
        "EmptyExec",
        "PlaceholderRowExec",
    ];
    STATELESS.contains(&plan.name()) && plan.children().into_iter().all(reusable)
}

/// A copy of `plan` for one partition: its slots' scans hold `source` and
/// `this_partition`, and every other node is a fresh one (no metrics or state carried over
/// from an earlier execution).
pub(super) fn fill(
    plan: &Arc<dyn ExecutionPlan>,
    source: Vec<RecordBatch>,
    this_partition: Vec<RecordBatch>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let (source, this_partition) = (Arc::new(source), Arc::new(this_partition));
    plan.clone()
        .transform_up(|node| {
            let filled = match node.downcast_ref::<SlotExec>() {
                Some(slot) => Arc::new(SlotExec {
                    rows: Some(match slot.name {
                        Name::Source => source.clone(),
                        Name::ThisPartition => this_partition.clone(),
                    }),
                    ..slot.clone()
                }),
                None => node.reset_state()?,
            };
            Ok(Transformed::yes(filled))
        })
        .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn only_plans_of_stateless_nodes_are_reused() {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_target_partitions(1),
        );
        let schema = |fields: Vec<Field>| Arc::new(Schema::new(fields));
        let source = schema(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let this = schema(vec![Field::new("a", DataType::Int64, true)]);
        for (name, schema) in [(Name::Source, source), (Name::ThisPartition, this)] {
            ctx.register_table(name.as_str(), Arc::new(Slot { name, schema }))
                .unwrap();
        }
        for (sql, reused) in [
            ("SELECT a, upper(b) AS b FROM source", true),
            ("SELECT a, b FROM source WHERE a > 1 AND b <> 'x'", true),
            ("SELECT a FROM source ORDER BY a LIMIT 1", false),
            ("SELECT a FROM source ORDER BY a", false),
            ("SELECT count(*) AS n FROM source", false),
            (
                "SELECT a, (SELECT max(a) FROM this_partition) AS m FROM source",
                false,
            ),
            (
                "SELECT s.a FROM source s JOIN this_partition p ON s.a = p.a",
                false,
            ),
            (
                "SELECT a, row_number() OVER (ORDER BY a) AS r FROM source",
                false,
            ),
        ] {
            let plan = ctx
                .sql(sql)
                .await
                .unwrap()
                .create_physical_plan()
                .await
                .unwrap();
            assert_eq!(reusable(&plan), reused, "{sql}");
        }
    }

    #[tokio::test]
    async fn a_plan_run_without_its_rows_fails() {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let slot = Slot {
            name: Name::Source,
            schema,
        };
        ctx.register_table("source", Arc::new(slot)).unwrap();
        let plan = ctx
            .sql("SELECT a FROM source")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let run = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await;
        assert!(run.unwrap_err().to_string().contains("no rows were given"));
    }
}
