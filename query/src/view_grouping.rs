//! GROUP BY one string column, grouping short strings by their views.
//!
//! DataFusion's partial aggregation on a `Utf8View` column hashes every value and compares
//! it with the value of the group it probes (`GroupValuesBytesView`): 30 % of the lake
//! bench's Parquet `GROUP BY datatype`, four values over ten million rows. A string of at
//! most 12 bytes lies whole in its 16-byte view (length, then the bytes, zero-padded), so
//! two such strings are equal exactly when their views are. [`ViewGroupingRule`] replaces
//! such a partial aggregation with [`ViewGroupingExec`], which finds a short value's group
//! in a small direct-mapped cache keyed by the view (one multiply and one compare a row),
//! and a longer value's by its bytes (views of equal dictionary values are equal too, so
//! a per-batch cache saves most of those lookups on Parquet). The aggregate functions are
//! DataFusion's own `GroupsAccumulator`s, so the partial states emitted are the ones the
//! final aggregation merges. At most [`MAX_GROUPS`] groups are held: past that the states
//! are emitted and the partition starts afresh (the final aggregation merges repeats).
//!
//! The rule reaches into DataFusion's physical plan, which can change between DataFusion
//! releases: `SET streamlake.view_grouping = false` (or `STREAMLAKE_VIEW_GROUPING=false`
//! for `query`) turns it off, and DataFusion's own aggregation runs ([`StreamlakeOptions`]).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, RecordBatch, StringViewArray, StringViewBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue};
use datafusion::execution::{
    SendableRecordBatchStream, SessionState, SessionStateBuilder, TaskContext,
};
use datafusion::logical_expr::{ColumnarValue, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode,
    PlanProperties, ReplaceChildrenOptions,
};
use datafusion::prelude::SessionConfig;
use futures::{StreamExt, TryStreamExt};

/// Groups a partition holds before it emits their states and starts afresh.
pub const MAX_GROUPS: usize = 32 * 1024;

/// Replaces a partial aggregation grouped by one `Utf8View` column with
/// [`ViewGroupingExec`] (run after DataFusion's own rules).
#[derive(Debug, Default)]
pub struct ViewGroupingRule;

datafusion::common::extensions_options! {
    /// streamlake's settings of a DataFusion session (`SET streamlake.<name> = <value>`).
    pub struct StreamlakeOptions {
        /// Group a partial aggregation by a `Utf8View` column by its views
        /// ([`ViewGroupingRule`]); false runs DataFusion's own.
        pub view_grouping: bool, default = true
    }
}

impl ConfigExtension for StreamlakeOptions {
    const PREFIX: &'static str = "streamlake";
}

impl StreamlakeOptions {
    /// The defaults, with `STREAMLAKE_VIEW_GROUPING=false` (or `0`) turning the rule off.
    pub fn from_env() -> Self {
        let mut options = Self::default();
        if let Ok(value) = std::env::var("STREAMLAKE_VIEW_GROUPING") {
            options.view_grouping = !matches!(value.trim(), "false" | "0" | "off");
        }
        options
    }
}

/// A session's state: DataFusion's defaults, `config` (carrying [`StreamlakeOptions`]) and
/// the [`ViewGroupingRule`] after DataFusion's rules.
pub fn session_state(config: SessionConfig) -> SessionState {
    SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(ViewGroupingRule))
        .build()
}

impl PhysicalOptimizerRule for ViewGroupingRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let off = config
            .extensions
            .get::<StreamlakeOptions>()
            .is_some_and(|o| !o.view_grouping);
        if off {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            Ok(match ViewGroupingExec::try_new(&node) {
                Some(exec) => Transformed::yes(Arc::new(exec) as _),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "view_grouping"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A partial aggregation grouped by one `Utf8View` column (see the module's doc).
#[derive(Debug)]
pub struct ViewGroupingExec {
    /// The partial aggregation this runs instead: its schema, properties, expressions.
    aggregate: Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
    group: Column,
    functions: Vec<Arc<AggregateFunctionExpr>>,
    /// Each function's FILTER clause, if any.
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    metrics: ExecutionPlanMetricsSet,
}

impl ViewGroupingExec {
    /// `plan` run by view, if it is a partial aggregation this can run: grouped by one
    /// `Utf8View` column (no grouping sets), in no particular order, without a limit or
    /// dynamic filter, every function with a `GroupsAccumulator` and no ORDER BY of its own.
    pub fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Option<Self> {
        let aggregate = plan.downcast_ref::<AggregateExec>()?;
        let group_by = aggregate.group_expr();
        let [(expr, _)] = group_by.expr() else {
            return None;
        };
        let group = expr.downcast_ref::<Column>()?.clone();
        let input_schema = aggregate.input_schema();
        let runs = *aggregate.mode() == AggregateMode::Partial
            && !group_by.has_grouping_set()
            && input_schema.field(group.index()).data_type() == &DataType::Utf8View
            && *aggregate.input_order_mode() == InputOrderMode::Linear
            && aggregate.limit_options().is_none()
            && plan.dynamic_expressions_produced().is_empty()
            && aggregate.aggr_expr().iter().all(|f| {
                f.groups_accumulator_supported() && f.order_bys().is_empty() && !f.is_distinct()
            });
        runs.then(|| Self {
            input: Arc::clone(aggregate.input()),
            group,
            functions: aggregate.aggr_expr().to_vec(),
            filters: aggregate.filter_expr().to_vec(),
            aggregate: Arc::clone(plan),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for ViewGroupingExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let functions: Vec<&str> = self.functions.iter().map(|f| f.name()).collect();
        write!(
            f,
            "ViewGroupingExec: mode=Partial, gby=[{}], aggr=[{}]",
            self.group.name(),
            functions.join(", ")
        )
    }
}

impl ExecutionPlan for ViewGroupingExec {
    fn name(&self) -> &str {
        "ViewGroupingExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).replace_children(children, options)?;
        Ok(match Self::try_new(&aggregate) {
            Some(exec) => Arc::new(exec),
            None => aggregate,
        })
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
        self.replace_children(children, options)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let accumulators = self
            .functions
            .iter()
            .zip(&self.filters)
            .map(|(function, filter)| {
                Ok(Accumulator {
                    arguments: function
                        .expressions()
                        .into_iter()
                        .map(Argument::new)
                        .collect(),
                    filter: filter.clone(),
                    state: function.create_groups_accumulator()?,
                })
            })
            .collect::<Result<_>>()?;
        let partial = Partial {
            group: self.group.index(),
            groups: Groups::default(),
            indices: Vec::new(),
            accumulators,
            schema: Arc::clone(&schema),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::try_unfold(Some((input, partial)), |state| async move {
            let Some((mut input, mut partial)) = state else {
                return Ok(None);
            };
            while let Some(batch) = input.try_next().await? {
                partial.update(&batch)?;
                if partial.groups.len() >= MAX_GROUPS {
                    let states = partial.emit()?;
                    return Ok(Some((states, Some((input, partial)))));
                }
            }
            if partial.groups.len() == 0 {
                return Ok(None);
            }
            Ok(Some((partial.emit()?, None)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.boxed(),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One aggregate function of a partition: its argument and filter expressions, its states.
struct Accumulator {
    arguments: Vec<Argument>,
    filter: Option<Arc<dyn PhysicalExpr>>,
    state: Box<dyn GroupsAccumulator>,
}

/// An argument of an aggregate function, with the array of its last constant value
/// (`count(*)` counts a `1` a row), made again only when the value or batch length changes.
struct Argument {
    expr: Arc<dyn PhysicalExpr>,
    constant: Option<(ScalarValue, ArrayRef)>,
}

impl Argument {
    fn new(expr: Arc<dyn PhysicalExpr>) -> Self {
        Self {
            expr,
            constant: None,
        }
    }

    fn evaluate(&mut self, batch: &RecordBatch) -> Result<ArrayRef> {
        let value = match self.expr.evaluate(batch)? {
            ColumnarValue::Array(array) => return Ok(array),
            ColumnarValue::Scalar(value) => value,
        };
        let rows = batch.num_rows();
        if let Some((constant, array)) = &self.constant
            && *constant == value
            && array.len() == rows
        {
            return Ok(Arc::clone(array));
        }
        let array = value.to_array_of_size(rows)?;
        self.constant = Some((value, Arc::clone(&array)));
        Ok(array)
    }
}

/// The partial aggregation of one partition.
struct Partial {
    group: usize,
    groups: Groups,
    /// The group of each row of the batch being aggregated.
    indices: Vec<usize>,
    accumulators: Vec<Accumulator>,
    schema: SchemaRef,
    metrics: BaselineMetrics,
}

impl Partial {
    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let _timer = self.metrics.elapsed_compute().timer();
        let rows = batch.num_rows();
        self.groups
            .assign(batch.column(self.group).as_string_view(), &mut self.indices);
        for accumulator in &mut self.accumulators {
            let arguments = accumulator
                .arguments
                .iter_mut()
                .map(|a| a.evaluate(batch))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let filter = match &accumulator.filter {
                Some(filter) => Some(filter.evaluate(batch)?.into_array(rows)?),
                None => None,
            };
            accumulator.state.update_batch(
                &arguments,
                &self.indices,
                filter.as_ref().map(|f| f.as_boolean()),
                self.groups.len(),
            )?;
        }
        Ok(())
    }

    /// Every group's value and states; the partition starts afresh.
    fn emit(&mut self) -> Result<RecordBatch> {
        let _timer = self.metrics.elapsed_compute().timer();
        let mut columns = vec![std::mem::take(&mut self.groups).finish()];
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state.state(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.metrics.record_output(batch.num_rows());
        Ok(batch)
    }
}

/// Slots of a view cache: a power of two, far more than the groups of a column the rule
/// is meant for, so that two of its values seldom share a slot.
const CACHE_SLOTS: usize = 256;

/// A slot no view fills: a view's low 32 bits are its length, and a string of
/// `u32::MAX` bytes cannot be in an Arrow buffer.
const EMPTY: (u128, usize) = (u128::MAX, 0);

/// Groups by view, direct-mapped: a view's slot holds the last group seen for it.
struct ViewCache(Box<[(u128, usize); CACHE_SLOTS]>);

impl Default for ViewCache {
    fn default() -> Self {
        Self(Box::new([EMPTY; CACHE_SLOTS]))
    }
}

impl ViewCache {
    #[inline(always)]
    fn get(&self, view: u128) -> Option<usize> {
        let (cached, group) = self.0[slot(view)];
        (cached == view).then_some(group)
    }

    fn set(&mut self, view: u128, group: usize) {
        self.0[slot(view)] = (view, group);
    }

    fn clear(&mut self) {
        self.0.fill(EMPTY);
    }
}

/// The groups of one partition: each distinct value gets the next index.
#[derive(Default)]
struct Groups {
    /// Short values (at most 12 bytes, whole in their views) by view.
    short_cache: ViewCache,
    short: foldhash::HashMap<u128, usize>,
    /// Long values by view, for the batch being assigned (a view points into its
    /// array's buffers, so equal views are equal values only within one array).
    long_cache: ViewCache,
    long: foldhash::HashMap<Box<[u8]>, usize>,
    null: Option<usize>,
    /// Each group's value, in group order.
    values: StringViewBuilder,
}

impl Groups {
    fn len(&self) -> usize {
        self.values.len()
    }

    /// Writes the group of each value of `column` to `indices`, making new groups.
    fn assign(&mut self, column: &StringViewArray, indices: &mut Vec<usize>) {
        indices.clear();
        self.long_cache.clear();
        let views = column.views().iter().enumerate();
        match column.nulls().filter(|n| n.null_count() > 0) {
            // `extend` from a slice's iterator writes in place, without a capacity check a row.
            None => indices.extend(views.map(|(i, &view)| self.group_of(view, column, i))),
            Some(nulls) => indices.extend(views.map(|(i, &view)| {
                if nulls.is_null(i) {
                    self.null_group()
                } else {
                    self.group_of(view, column, i)
                }
            })),
        }
    }

    /// The group of the (valid) value `i` of `column`, whose view is `view`: a cache hit
    /// inline, a miss out of line.
    #[inline(always)]
    fn group_of(&mut self, view: u128, column: &StringViewArray, i: usize) -> usize {
        if view as u32 <= 12 {
            match self.short_cache.get(view) {
                Some(group) => group,
                None => self.short_group(view, column.value(i)),
            }
        } else {
            match self.long_cache.get(view) {
                Some(group) => group,
                None => self.long_group(view, column.value(i)),
            }
        }
    }

    /// A short value's group when the cache misses.
    #[inline(never)]
    fn short_group(&mut self, view: u128, value: &str) -> usize {
        let values = &mut self.values;
        let group = *self
            .short
            .entry(view)
            .or_insert_with(|| push(values, Some(value)));
        self.short_cache.set(view, group);
        group
    }

    /// A long value's group when the batch's cache misses.
    #[inline(never)]
    fn long_group(&mut self, view: u128, value: &str) -> usize {
        let group = match self.long.get(value.as_bytes()) {
            Some(&group) => group,
            None => {
                let group = push(&mut self.values, Some(value));
                self.long.insert(value.as_bytes().into(), group);
                group
            }
        };
        self.long_cache.set(view, group);
        group
    }

    fn null_group(&mut self) -> usize {
        *self
            .null
            .get_or_insert_with(|| push(&mut self.values, None))
    }

    /// The groups' values, in group order.
    fn finish(mut self) -> ArrayRef {
        Arc::new(self.values.finish())
    }
}

/// Adds a group of `value`; its index.
fn push(values: &mut StringViewBuilder, value: Option<&str>) -> usize {
    values.append_option(value);
    values.len() - 1
}

/// The cache slot of a view: the high bits of a multiplicative hash of its two halves.
#[inline(always)]
fn slot(view: u128) -> usize {
    let folded = view as u64 ^ (view >> 64) as u64;
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CACHE_SLOTS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Float64Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    const LONG: &str = "a value longer than twelve bytes";

    /// Batches of `v` (short, long, empty and null strings; `distinct` more values that
    /// each appear in two batches) and `x` (with nulls).
    fn batches(distinct: usize) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Utf8View, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let fixed = [
            Some("TMAX"),
            Some(""),
            None,
            Some(LONG),
            Some("TMIN"),
            Some("twelve bytes"),
        ];
        let rows = |round: usize| -> Vec<(Option<String>, Option<f64>)> {
            let mut rows: Vec<_> = (0..600)
                .map(|i| {
                    let v = fixed[(i + round) % fixed.len()].map(str::to_owned);
                    let x = (i % 7 != 0).then_some(i as f64 - 100.0);
                    (v, x)
                })
                .collect();
            rows.extend((0..distinct).map(|i| {
                let v = if i % 2 == 0 {
                    format!("k{i}")
                } else {
                    format!("{LONG} {i}")
                };
                (Some(v), Some(i as f64))
            }));
            rows
        };
        (0..3)
            .map(|round| {
                let (v, x): (Vec<_>, Vec<_>) = rows(round).into_iter().unzip();
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(StringViewArray::from_iter(v)),
                    Arc::new(Float64Array::from(x)),
                ];
                RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
            })
            .collect()
    }

    async fn run(batches: &[RecordBatch], by_view: bool, sql: &str) -> (String, String) {
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(256);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if by_view {
            state = state.with_physical_optimizer_rule(Arc::new(ViewGroupingRule));
        }
        let ctx = SessionContext::new_with_state(state.build());
        let partitions = vec![batches[..2].to_vec(), batches[2..].to_vec()];
        let table = MemTable::try_new(batches[0].schema(), partitions).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let plan = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        let result = pretty_format_batches(&frame.collect().await.unwrap()).unwrap();
        (result.to_string(), plan)
    }

    const AGGREGATES: &str = "count(*) AS n, count(x) AS counted, sum(x) AS total, avg(x) AS average, \
         min(x) AS least, max(x) AS most, count(*) FILTER (WHERE x > 0) AS positive";

    #[tokio::test]
    async fn groups_as_datafusion_does() {
        let batches = batches(0);
        let sql = format!("SELECT v, {AGGREGATES} FROM t GROUP BY v ORDER BY v NULLS FIRST");
        let (expected, plan) = run(&batches, false, &sql).await;
        assert!(!plan.contains("ViewGroupingExec"), "{plan}");
        let (result, plan) = run(&batches, true, &sql).await;
        assert!(
            plan.contains("ViewGroupingExec: mode=Partial, gby=[v]"),
            "{plan}"
        );
        assert_eq!(result, expected);
        // Six groups (null and the empty string among them), and the table's four lines.
        assert_eq!(result.lines().count(), 6 + 4, "{result}");
    }

    #[tokio::test]
    async fn more_groups_than_it_holds_are_emitted_and_merged() {
        let batches = batches(MAX_GROUPS * 2 + 10);
        let sql = format!(
            "SELECT count(*) AS groups, sum(n) AS rows, sum(total) AS total FROM \
             (SELECT v, {AGGREGATES} FROM t GROUP BY v)"
        );
        let (expected, _) = run(&batches, false, &sql).await;
        let (result, plan) = run(&batches, true, &sql).await;
        assert!(plan.contains("ViewGroupingExec"), "{plan}");
        assert_eq!(result, expected);
        // The distinct values, and the six of `batches(0)`.
        assert!(
            result.contains(&format!("| {} ", MAX_GROUPS * 2 + 10 + 6)),
            "{result}"
        );
    }

    #[tokio::test]
    async fn counts_distinct_values_as_datafusion_does() {
        // DataFusion groups by (v, x) first, then counts by v: the second runs by view.
        let sql = "SELECT v, count(DISTINCT x) AS n FROM t GROUP BY v ORDER BY v";
        let batches = batches(100);
        let (expected, _) = run(&batches, false, sql).await;
        let (result, plan) = run(&batches, true, sql).await;
        assert!(plan.contains("ViewGroupingExec"), "{plan}");
        assert_eq!(result, expected);
    }

    #[tokio::test]
    async fn a_session_setting_turns_the_rule_off() {
        let batches = batches(0);
        let config = SessionConfig::new().with_option_extension(StreamlakeOptions::default());
        let ctx = SessionContext::new_with_state(session_state(config));
        let table = MemTable::try_new(batches[0].schema(), vec![batches]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = |ctx: SessionContext| async move {
            let frame = ctx
                .sql("SELECT v, count(*) FROM t GROUP BY v")
                .await
                .unwrap();
            let plan = frame.create_physical_plan().await.unwrap();
            datafusion::physical_plan::displayable(plan.as_ref())
                .indent(false)
                .to_string()
        };
        assert!(plan(ctx.clone()).await.contains("ViewGroupingExec"));
        ctx.sql("SET streamlake.view_grouping = false")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert!(!plan(ctx).await.contains("ViewGroupingExec"));
    }

    #[tokio::test]
    async fn leaves_other_aggregations_alone() {
        let batches = batches(0);
        for sql in [
            "SELECT x, count(*) FROM t GROUP BY x ORDER BY x",
            "SELECT v, x, count(*) FROM t GROUP BY v, x ORDER BY v, x",
            "SELECT v, array_agg(x ORDER BY x) FROM t GROUP BY v ORDER BY v",
            "SELECT count(*) FROM t",
        ] {
            let (expected, _) = run(&batches, false, sql).await;
            let (result, plan) = run(&batches, true, sql).await;
            assert!(!plan.contains("ViewGroupingExec"), "{sql}: {plan}");
            assert_eq!(result, expected, "{sql}");
        }
    }

    #[test]
    fn equal_short_strings_have_equal_views_and_one_group() {
        let column = StringViewArray::from_iter([Some("PRCP"), None, Some("PRCP"), Some(LONG)]);
        let other = StringViewArray::from_iter([Some(LONG), Some("PRCP"), None]);
        let mut groups = Groups::default();
        let mut indices = Vec::new();
        groups.assign(&column, &mut indices);
        assert_eq!(indices, [0, 1, 0, 2]);
        groups.assign(&other, &mut indices);
        assert_eq!(indices, [2, 0, 1]);
        let values = groups.finish();
        let values = values.as_string_view();
        assert_eq!(values.len(), 3);
        assert_eq!(
            (values.value(0), values.is_null(1), values.value(2)),
            ("PRCP", true, LONG)
        );
    }
}
