//! Which partitions a query opens, from its filters.
//!
//! The partition `year=Y/month=M/day=D` holds exactly the records whose `date` is that
//! day, and `date` is the UTC day of `observed_at`: `normalize` derives all three from the
//! record, so no record can disagree with its folder. Hence:
//!
//! - a filter on `year`, `month`, `day` and `date` alone has one value per partition: it
//!   is evaluated on each partition's values, exactly, whatever its form (`=`, `IN`,
//!   `BETWEEN`, functions of the date);
//! - any other filter that uses `observed_at` or those columns keeps a partition unless
//!   no time of its day, `[D 00:00, D+1 00:00)` UTC, can satisfy it: DataFusion's
//!   [`PruningPredicate`] over each day's bounds, which never drops a container that could
//!   hold a match (columns without bounds count as "could be anything").

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

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
use streamlake_core::schema::PARTITION_COLUMNS;

/// The record's UTC day.
const DATE: &str = "date";
/// The record's time, whose UTC day is `date`.
const OBSERVED_AT: &str = "observed_at";

/// Columns with one value per partition.
fn per_partition_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields: Vec<Field> = PARTITION_COLUMNS
            .iter()
            .map(|name| Field::new(*name, DataType::Int32, false))
            .collect();
        fields.push(Field::new(DATE, DataType::Date32, false));
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

fn is_per_partition(column: &str) -> bool {
    per_partition_schema().column_with_name(column).is_some()
}

/// Whether `filter` uses only columns with one value per partition (`year`, `month`,
/// `day`, `date`): the pruner then answers it exactly for every row of a partition, and
/// the rows need not be filtered again.
pub fn is_per_partition_filter(filter: &Expr) -> bool {
    let columns = filter.column_refs();
    !columns.is_empty() && columns.iter().all(|c| is_per_partition(&c.name))
}

/// Decides which partitions a scan with given filters must open.
#[derive(Debug)]
pub struct PartitionPruner {
    /// Filters with one answer per partition.
    exact: Vec<Arc<dyn PhysicalExpr>>,
    /// The other filters that involve a column with per-day bounds.
    bounded: Option<PruningPredicate>,
    /// The `observed_at` column's type (its unit and zone), for its bounds.
    observed_at: DataType,
}

impl PartitionPruner {
    /// A pruner for `filters` (conjuncts) over a table of `schema` (data and partition
    /// columns).
    pub fn new(state: &dyn Session, schema: &SchemaRef, filters: &[Expr]) -> Result<Self> {
        let per_partition = DFSchema::try_from(per_partition_schema())?;
        let mut exact = Vec::new();
        let mut bounded = Vec::new();
        for filter in filters {
            let columns = filter.column_refs();
            if columns.is_empty() {
                continue;
            }
            if is_per_partition_filter(filter) {
                exact.push(state.create_physical_expr(filter.clone(), &per_partition)?);
            } else if columns
                .iter()
                .any(|c| c.name == OBSERVED_AT || is_per_partition(&c.name))
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
        let observed_at = schema
            .field_with_name(OBSERVED_AT)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Timestamp(TimeUnit::Microsecond, None));
        Ok(Self {
            exact,
            bounded,
            observed_at,
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
        let days = Days {
            partitions,
            observed_at: &self.observed_at,
        };
        if !self.exact.is_empty() {
            let batch = RecordBatch::try_new(
                per_partition_schema(),
                PARTITION_COLUMNS
                    .iter()
                    .chain([&DATE])
                    .map(|c| days.value(c).expect("a per-partition column"))
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
            for (k, could_match) in keep.iter_mut().zip(predicate.prune(&days)?) {
                *k &= could_match;
            }
        }
        Ok(keep)
    }
}

/// Per-day bounds of the columns a partition fixes: the statistics of the "containers"
/// that [`PruningPredicate`] prunes.
struct Days<'a> {
    partitions: &'a [PartitionKeys],
    observed_at: &'a DataType,
}

impl Days<'_> {
    /// The column's one value per partition, for the columns that have one.
    fn value(&self, column: &str) -> Option<ArrayRef> {
        let dates = self.partitions.iter().map(PartitionKeys::date);
        let ints = |f: fn(chrono::NaiveDate) -> i32| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(dates.clone().map(f)))
        };
        Some(match column {
            "year" => ints(|d| d.year()),
            "month" => ints(|d| d.month() as i32),
            "day" => ints(|d| d.day() as i32),
            DATE => Arc::new(Date32Array::from_iter_values(
                dates.map(Date32Type::from_naive_date),
            )),
            _ => return None,
        })
    }

    /// The first or last microsecond of each partition's day, as `observed_at`.
    fn observed_at(&self, last: bool) -> Option<ArrayRef> {
        let DataType::Timestamp(TimeUnit::Microsecond, zone) = self.observed_at else {
            return None;
        };
        let micros = self.partitions.iter().map(|p| {
            let start = p
                .date()
                .and_time(NaiveTime::MIN)
                .and_utc()
                .timestamp_micros();
            if last {
                start + 86_400_000_000 - 1
            } else {
                start
            }
        });
        Some(Arc::new(
            TimestampMicrosecondArray::from_iter_values(micros).with_timezone_opt(zone.clone()),
        ))
    }
}

impl PruningStatistics for Days<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        match column.name.as_str() {
            OBSERVED_AT => self.observed_at(false),
            name => self.value(name),
        }
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        match column.name.as_str() {
            OBSERVED_AT => self.observed_at(true),
            name => self.value(name),
        }
    }

    fn num_containers(&self) -> usize {
        self.partitions.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        // None of the bounded columns is ever null.
        (column.name == OBSERVED_AT || is_per_partition(&column.name))
            .then(|| Arc::new(UInt64Array::from(vec![0; self.partitions.len()])) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        None
    }

    fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
