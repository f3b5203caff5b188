//! SQL over the lake with Apache DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use streamlake_core::dataset::Dataset;
use streamlake_core::lake::Lake;

use crate::QueryError;
use crate::athena::{TableFormat, TableNames};
use crate::compaction_log::CompactionLog;
use crate::log_table::LogTable;
use crate::table::{LakeTable, ScanCounters};
use crate::view_grouping::{self, StreamlakeOptions};

/// The variable that sets DataFusion's partitions per query (default: four per thread).
const TARGET_PARTITIONS: &str = "DATAFUSION_EXECUTION_TARGET_PARTITIONS";

/// A SQL session with the lake registered as a table named after its dataset
/// (`weather`), and the two tables the Athena view reads (`weather_raw` with `"$path"`,
/// `weather_compaction_log`: [`crate::athena`]), so the view's SQL runs unchanged.
pub struct LakeSession {
    ctx: SessionContext,
    counters: Arc<ScanCounters>,
}

impl LakeSession {
    /// A session where `lake`, holding `dataset`'s records, is the table named after the
    /// dataset.
    ///
    /// DataFusion's settings come from `DATAFUSION_*` environment variables (for example
    /// `DATAFUSION_EXECUTION_BATCH_SIZE`, `DATAFUSION_EXECUTION_TARGET_PARTITIONS`).
    pub async fn new(lake: Lake, dataset: Arc<Dataset>) -> Result<Self, QueryError> {
        Self::with_raw_format(lake, dataset, None).await
    }

    /// [`LakeSession::new`], with the raw table reading every object as `format`, as
    /// Athena's table does: an object of the other format fails a query that reads it.
    pub async fn with_raw_format(
        lake: Lake,
        dataset: Arc<Dataset>,
        format: Option<TableFormat>,
    ) -> Result<Self, QueryError> {
        let table = dataset.name().to_owned();
        let mut config =
            SessionConfig::from_env()?.with_option_extension(StreamlakeOptions::from_env());
        if std::env::var_os(TARGET_PARTITIONS).is_none() {
            // Four partitions per thread: a thread that finishes its share early takes
            // another, so one slow object or a descheduled thread does not hold the
            // query up (the lake bench's Parquet GROUP BY: 0.095 s instead of 0.11 s).
            let partitions = config.target_partitions() * 4;
            config = config.with_target_partitions(partitions);
        }
        let ctx = SessionContext::new_with_state(view_grouping::session_state(config));
        let store = crate::store::register(&ctx, &lake)?;
        let names = TableNames::for_view(&table);
        let log = CompactionLog::of(&lake);
        ctx.register_table(
            &names.raw,
            Arc::new(LakeTable::raw(
                lake.clone(),
                store.clone(),
                dataset.clone(),
                format,
            )),
        )?;
        ctx.register_table(&names.log, Arc::new(LogTable::new(log)))?;
        let provider = LakeTable::new(lake, store, dataset);
        let counters = provider.counters();
        ctx.register_table(&table, Arc::new(provider))?;
        Ok(Self { ctx, counters })
    }

    /// Runs one statement, or several separated by `;` (for example a view's DDL, then a
    /// query of the view), and collects the last one's result. `EXPLAIN` (and `EXPLAIN
    /// ANALYZE`) get one more row, `lake_scan`: the partitions and objects the query opens.
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        let statements = DFParser::parse_sql(sql)?;
        let mut batches = Vec::new();
        for statement in statements {
            batches = self.run_statement(statement).await?;
        }
        Ok(batches)
    }

    async fn run_statement(&self, statement: Statement) -> Result<Vec<RecordBatch>, QueryError> {
        let before = self.counters.read();
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        let explain = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
        let mut batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        if explain && let Some(first) = batches.first() {
            let opened = (self.counters.read() - before).to_string();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(vec!["lake_scan"])),
                Arc::new(StringArray::from(vec![opened])),
            ];
            // The explain schema: `plan_type`, `plan`, both strings.
            if let Ok(row) = RecordBatch::try_new(first.schema(), columns) {
                batches.push(row);
            }
        }
        Ok(batches)
    }

    /// The DataFusion context, for more than `run` offers.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// What the session's scans opened so far.
    pub fn counters(&self) -> &ScanCounters {
        &self.counters
    }
}
