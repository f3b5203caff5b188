//! Which partitions a query opens, from its filters.
//!
//! The partition `year=Y/month=M/day=D` (`/hour=H`) holds exactly the records whose
//! partition time (the event time, or the arrival time for a dataset without one) falls
//! in that day (hour), and the dataset's event date column is that time's UTC day: the
//! transform derives all of them from the record, so no record can disagree with its
//! folder (weather: `observed_at` and `date`). Hence:
//!
//! - a filter on the partition columns and the event date alone has one value per
//!   partition: it is evaluated on each partition's values, exactly, whatever its form
//!   (`=`, `IN`, `BETWEEN`, functions of the date);
//! - any other filter that uses the partition time column or those columns keeps a
//!   partition unless no time of its day (hour), `[D 00:00, D+1 00:00)` UTC, can satisfy
//!   it: DataFusion's [`PruningPredicate`] over each partition's bounds, which never drops
//!   a container that could hold a match (columns without bounds count as "could be
//!   anything").

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Datelike, NaiveTime};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int32Array, RecordBatch, TimestampMicrosecondArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use streamlake_core::PartitionKeys;
use streamlake_core::dataset::{Dataset, Granularity};

/// The columns of a lake's table that a partition bounds: its partition columns, the
/// column holding the partition time's day (one value per partition), and the column
/// holding the partition time itself (bounded by the partition's day or hour).
#[derive(Debug, Clone)]
pub struct PrunedColumns {
    granularity: Granularity,
    date: Option<String>,
    time: Option<String>,
    per_partition: SchemaRef,
}

impl PrunedColumns {
    /// The pruned columns of `dataset`'s table: the event date and event time columns,
    /// or, for a dataset partitioned by arrival, its arrival-time column.
    pub fn of(dataset: &Dataset) -> Self {
        let granularity = dataset.partition();
        let date = dataset.partition_date_column().map(|c| c.name.clone());
        let time = dataset.partition_time_column().map(|c| c.name.clone());
        let mut fields: Vec<Field> = granularity
            .columns()
            .iter()
            .map(|name| Field::new(*name, DataType::Int32, false))
            .collect();
        if let Some(date) = &date {
            fields.push(Field::new(date, DataType::Date32, false));
        }
        Self {
            granularity,
            date,
            time,
            per_partition: Arc::new(Schema::new(fields)),
        }
    }

    fn is_per_partition(&self, column: &str) -> bool {
        self.per_partition.column_with_name(column).is_some()
    }

    fn is_time(&self, column: &str) -> bool {
        self.time.as_deref() == Some(column)
    }

    /// Whether `filter` uses only columns with one value per partition (the partition
    /// columns and the partition time's day): the pruner then answers it exactly for
    /// every row of a partition, and the rows need not be filtered again.
    pub fn is_per_partition_filter(&self, filter: &Expr) -> bool {
        let columns = filter.column_refs();
        !columns.is_empty() && columns.iter().all(|c| self.is_per_partition(&c.name))
    }
}

/// Decides which partitions a scan with given filters must open.
#[derive(Debug)]
pub struct PartitionPruner {
    /// Filters with one answer per partition.
    exact: Vec<Arc<dyn PhysicalExpr>>,
    /// The other filters that involve a column with per-partition bounds.
    bounded: Option<PruningPredicate>,
    /// The partition time column's type (its unit and zone), for its bounds.
    time_type: DataType,
    columns: PrunedColumns,
}

impl PartitionPruner {
    /// A pruner for `filters` (conjuncts) over a table of `schema` (data and partition
    /// columns), whose `columns` a partition bounds.
    pub fn new(
        state: &dyn Session,
        schema: &SchemaRef,
        columns: &PrunedColumns,
        filters: &[Expr],
    ) -> Result<Self> {
        let per_partition = DFSchema::try_from(columns.per_partition.clone())?;
        let mut exact = Vec::new();
        let mut bounded = Vec::new();
        for filter in filters {
            let used = filter.column_refs();
            if used.is_empty() {
                continue;
            }
            if columns.is_per_partition_filter(filter) {
                exact.push(state.create_physical_expr(filter.clone(), &per_partition)?);
            } else if used
                .iter()
                .any(|c| columns.is_time(&c.name) || columns.is_per_partition(&c.name))
            {
                bounded.push(filter.clone());
            }
        }
        let bounded = match conjunction(bounded) {
            Some(expr) => {
                let physical =
                    state.create_physical_expr(expr, &DFSchema::try_from(schema.clone())?)?;
                let predicate = PruningPredicateBuilder::new()
                    .with_file_schema(schema.clone())
                    .try_build(physical)?;
                (!predicate.always_true()).then_some(predicate)
            }
            None => None,
        };
        let time_type = columns
            .time
            .as_ref()
            .and_then(|t| schema.field_with_name(t).ok())
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Timestamp(TimeUnit::Microsecond, None));
        Ok(Self {
            exact,
            bounded,
            time_type,
            columns: columns.clone(),
        })
    }

    /// Whether the pruner can skip anything at all.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.bounded.is_none()
    }

    /// For each partition, whether the scan must open it.
    pub fn keep(&self, partitions: &[PartitionKeys]) -> Result<Vec<bool>> {
        let mut keep = vec![true; partitions.len()];
        if partitions.is_empty() {
            return Ok(keep);
        }
        let bounds = Bounds {
            partitions,
            time_type: &self.time_type,
            columns: &self.columns,
        };
        if !self.exact.is_empty() {
            let batch = RecordBatch::try_new(
                self.columns.per_partition.clone(),
                self.columns
                    .per_partition
                    .fields()
                    .iter()
                    .map(|f| bounds.value(f.name()).expect("a per-partition column"))
                    .collect(),
            )?;
            for filter in &self.exact {
                let result = filter.evaluate(&batch)?.into_array(partitions.len())?;
                let result = result
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| {
                        DataFusionError::Plan(format!("the filter {filter} is not a predicate"))
                    })?;
                for (i, k) in keep.iter_mut().enumerate() {
                    *k &= result.is_valid(i) && result.value(i);
                }
            }
        }
        if let Some(predicate) = &self.bounded {
            for (k, could_match) in keep.iter_mut().zip(predicate.prune(&bounds)?) {
                *k &= could_match;
            }
        }
        Ok(keep)
    }
}

/// Per-partition bounds of the columns a partition fixes: the statistics of the
/// "containers" that [`PruningPredicate`] prunes.
struct Bounds<'a> {
    partitions: &'a [PartitionKeys],
    time_type: &'a DataType,
    columns: &'a PrunedColumns,
}

impl Bounds<'_> {
    /// The column's one value per partition, for the columns that have one.
    fn value(&self, column: &str) -> Option<ArrayRef> {
        let ints = |f: fn(&PartitionKeys) -> i32| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(self.partitions.iter().map(f)))
        };
        Some(match column {
            "year" => ints(|p| p.date().year()),
            "month" => ints(|p| p.date().month() as i32),
            "day" => ints(|p| p.date().day() as i32),
            "hour" if self.columns.granularity == Granularity::Hour => {
                ints(|p| p.hour().unwrap_or(0) as i32)
            }
            c if self.columns.date.as_deref() == Some(c) => {
                Arc::new(Date32Array::from_iter_values(
                    self.partitions
                        .iter()
                        .map(|p| Date32Type::from_naive_date(p.date())),
                ))
            }
            _ => return None,
        })
    }

    /// The first or last microsecond of each partition's day or hour, as the partition
    /// time column.
    fn time(&self, last: bool) -> Option<ArrayRef> {
        let DataType::Timestamp(TimeUnit::Microsecond, zone) = self.time_type else {
            return None;
        };
        let micros = self.partitions.iter().map(|p| {
            let (hour, length) = match p.hour() {
                Some(h) => (i64::from(h), 3_600_000_000),
                None => (0, 86_400_000_000),
            };
            let start = p
                .date()
                .and_time(NaiveTime::MIN)
                .and_utc()
                .timestamp_micros()
                + hour * 3_600_000_000;
            if last { start + length - 1 } else { start }
        });
        Some(Arc::new(
            TimestampMicrosecondArray::from_iter_values(micros).with_timezone_opt(zone.clone()),
        ))
    }
}

impl PruningStatistics for Bounds<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        match column.name.as_str() {
            name if self.columns.is_time(name) => self.time(false),
            name => self.value(name),
        }
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        match column.name.as_str() {
            name if self.columns.is_time(name) => self.time(true),
            name => self.value(name),
        }
    }

    fn num_containers(&self) -> usize {
        self.partitions.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        // None of the bounded columns is ever null.
        (self.columns.is_time(&column.name) || self.columns.is_per_partition(&column.name))
            .then(|| Arc::new(UInt64Array::from(vec![0; self.partitions.len()])) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        None
    }

    fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
