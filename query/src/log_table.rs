//! The compaction log as a DataFusion table, `weather_compaction_log`: the columns of
//! Athena's table over the log folder ([`crate::athena::LOG_COLUMNS`]), read when a query
//! runs.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::athena::LOG_COLUMNS;
use crate::compaction_log::{CompactionLog, LogLine};

/// The log of a lake as a table.
#[derive(Debug)]
pub struct LogTable {
    log: CompactionLog,
    schema: SchemaRef,
}

impl LogTable {
    /// The table over `log`.
    pub fn new(log: CompactionLog) -> Self {
        let fields: Vec<Field> = LOG_COLUMNS
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Utf8, false))
            .collect();
        Self {
            log,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    fn batch(&self, lines: &[LogLine]) -> Result<RecordBatch> {
        let column = |value: fn(&LogLine) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(lines.iter().map(value)))
        };
        Ok(RecordBatch::try_new(
            self.schema.clone(),
            vec![
                column(|l| &l.compaction_id),
                column(|l| &l.day_folder),
                column(|l| &l.object_path),
                column(|l| l.object_role.as_str()),
                column(|l| l.state.as_str()),
            ],
        )?)
    }
}

#[async_trait]
impl TableProvider for LogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let lines: Vec<LogLine> = self
            .log
            .lines()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .into_iter()
            .flatten()
            .collect();
        let batch = self.batch(&lines)?;
        MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())
            .map(|exec| exec as Arc<dyn ExecutionPlan>)
    }
}
