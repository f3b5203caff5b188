//! The lake as a DataFusion table: the dataset's columns plus `year`, `month`, `day` (and
//! `hour`, in an hourly lake) partition columns taken from the paths.
//!
//! Filters on the partition columns, the event time's day and the event time prune whole
//! partitions before any object is listed or opened ([`crate::pruning`]); DataFusion pushes filters on
//! the data columns into the Parquet source, which skips row groups by their statistics. Parquet objects are read by DataFusion's Parquet source; NDJSON objects
//! (which Firehose writes without an extension, or GZIP'd with `.gz`) by
//! [`crate::ndjson_scan`], which decodes only the columns a query uses. The compaction
//! log is honoured ([`crate::compaction::live_objects`]).
//!
//! The same type also reads the lake as Athena's table over the folders does
//! ([`LakeTable::raw`]): every data object, the log ignored, with Athena's `"$path"`
//! pseudo-column, so the Athena view's SQL runs offline unchanged.
//!
//! String columns are `Utf8View`, DataFusion's own string type: Parquet pages decode into
//! views without copying, and GROUP BY on them uses DataFusion's view-keyed hash table.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use futures::TryStreamExt;
use streamlake_core::PartitionKeys;
use streamlake_core::columnar::arrow_schema;
use streamlake_core::dataset::{Dataset, Granularity};
use streamlake_core::lake::{DateRange, Lake, LakeLocation, ObjectInfo};
use streamlake_core::layout::OutputFormat;

use crate::athena::TableFormat;
use crate::compaction::live_objects_of;
use crate::compaction_log::{CompactionLog, HiddenObjects};
use crate::local_file::LocalFileReaderFactory;
use crate::named_objects::NamingReaderFactory;
use crate::ndjson_scan::{NdjsonObject, NdjsonTable, ndjson_scan};
use crate::pruning::{PartitionPruner, PrunedColumns};
use crate::whole_object::WholeObjectReaderFactory;

/// What scans of the table opened (for tests and for the curious).
#[derive(Debug, Default)]
pub struct ScanCounters {
    /// Partitions in the lake when scans were planned (summed over scans).
    pub listed: AtomicU64,
    /// Partitions read.
    pub partitions: AtomicU64,
    /// Objects read.
    pub objects: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
}

/// A reading of [`ScanCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    /// Partitions in the lake when scans were planned.
    pub listed: u64,
    /// Partitions read.
    pub partitions: u64,
    /// Objects read.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl ScanCounters {
    /// The counts now.
    pub fn read(&self) -> ScanCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ScanCounts {
            listed: load(&self.listed),
            partitions: load(&self.partitions),
            objects: load(&self.objects),
            bytes: load(&self.bytes),
        }
    }
}

impl std::ops::Sub for ScanCounts {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            listed: self.listed - earlier.listed,
            partitions: self.partitions - earlier.partitions,
            objects: self.objects - earlier.objects,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

impl std::fmt::Display for ScanCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partitions={} of {}, objects={}, bytes={}",
            self.partitions, self.listed, self.objects, self.bytes
        )
    }
}

/// The lake as a table.
#[derive(Debug)]
pub struct LakeTable {
    lake: Lake,
    store: ObjectStoreUrl,
    dataset: Arc<Dataset>,
    /// The data columns as the table reads them.
    data: SchemaRef,
    /// Which columns prune partitions.
    pruned: PrunedColumns,
    schema: SchemaRef,
    counters: Arc<ScanCounters>,
    whole_objects: bool,
    raw: Option<Raw>,
}

/// How a raw table reads ([`LakeTable::raw`]).
#[derive(Debug, Clone, Copy)]
struct Raw {
    format: Option<TableFormat>,
}

/// The name of the column that holds each record's object, as Athena names its
/// pseudo-column.
pub const PATH_COLUMN: &str = "$path";

/// The dataset's columns as the table reads them: the core schema, strings as views.
pub fn data_schema(dataset: &Dataset) -> SchemaRef {
    let fields: Vec<FieldRef> = arrow_schema(dataset)
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn partition_fields(granularity: Granularity) -> Vec<FieldRef> {
    granularity
        .columns()
        .iter()
        .map(|name| Arc::new(Field::new(*name, DataType::Int32, false)))
        .collect()
}

fn path_field() -> FieldRef {
    Arc::new(Field::new(PATH_COLUMN, DataType::Utf8, false))
}

fn to_df(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(e.to_string().into())
}

impl LakeTable {
    /// The table over `lake`, whose records are `dataset`'s, read through the object
    /// store registered at `store`. Over S3, small Parquet objects are read whole
    /// ([`LakeTable::with_whole_objects`]).
    pub fn new(lake: Lake, store: ObjectStoreUrl, dataset: Arc<Dataset>) -> Self {
        let data = data_schema(&dataset);
        let mut fields: Vec<FieldRef> = data.fields().iter().cloned().collect();
        fields.extend(partition_fields(dataset.partition()));
        let whole_objects = matches!(lake.location(), LakeLocation::S3 { .. });
        let lake = lake.with_granularity(dataset.partition());
        Self {
            lake,
            store,
            pruned: PrunedColumns::of(&dataset),
            dataset,
            data,
            schema: Arc::new(Schema::new(fields)),
            counters: Arc::default(),
            whole_objects,
            raw: None,
        }
    }

    /// The lake as Athena's table over its folders reads it: every object whose name does
    /// not start with `_` or `.` (the compaction log ignored), each record with its
    /// object's URL in the last column, `"$path"` ([`Lake::url_of`]). With a `format`,
    /// every object is read as that format, and one of the other format fails the query
    /// naming it, as Athena's SerDe would; without, each object is read by its own format.
    pub fn raw(
        lake: Lake,
        store: ObjectStoreUrl,
        dataset: Arc<Dataset>,
        format: Option<TableFormat>,
    ) -> Self {
        let mut table = Self::new(lake, store, dataset);
        let mut fields: Vec<FieldRef> = table.schema.fields().iter().cloned().collect();
        fields.push(path_field());
        table.schema = Arc::new(Schema::new(fields));
        table.raw = Some(Raw { format });
        table
    }

    /// Whether Parquet objects of up to [`WHOLE_OBJECT_BYTES`](crate::whole_object::WHOLE_OBJECT_BYTES) are read with one request
    /// ([`crate::whole_object`]). Over S3 a request is a round trip, and the default; on
    /// disk a read is a system call, and reading only the column chunks a query uses is
    /// faster (a whole-object read of the lake bench's Parquet made a GROUP BY over two
    /// columns 1.5x slower): local objects are read in place ([`crate::local_file`]).
    #[must_use]
    pub fn with_whole_objects(mut self, whole_objects: bool) -> Self {
        self.whole_objects = whole_objects;
        self
    }

    /// What scans opened so far.
    pub fn counters(&self) -> Arc<ScanCounters> {
        self.counters.clone()
    }

    /// The partitions the filters keep ([`PartitionPruner`]).
    async fn partitions(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<Vec<PartitionKeys>> {
        let all = self
            .lake
            .partitions(DateRange::default())
            .await
            .map_err(to_df)?;
        self.counters
            .listed
            .fetch_add(all.len() as u64, Ordering::Relaxed);
        let pruner = PartitionPruner::new(state, &self.schema, &self.pruned, filters)?;
        if pruner.is_empty() {
            return Ok(all);
        }
        let keep = pruner.keep(&all)?;
        Ok(all
            .into_iter()
            .zip(keep)
            .filter_map(|(p, k)| k.then_some(p))
            .collect())
    }

    /// The object store path of an object.
    fn store_path(&self, object: &ObjectInfo) -> Result<String> {
        match self.lake.location() {
            LakeLocation::S3 { .. } => Ok(object.key.clone()),
            LakeLocation::Local(_) => {
                let absolute = std::path::absolute(&object.key).map_err(to_df)?;
                Ok(object_store::path::Path::from_absolute_path(absolute)
                    .map_err(to_df)?
                    .to_string())
            }
        }
    }

    /// A scan of files with one of DataFusion's sources, spread over `groups` groups.
    fn file_scan(
        &self,
        source: Arc<dyn FileSource>,
        files: Vec<PartitionedFile>,
        groups: usize,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let groups = groups.clamp(1, files.len());
        let mut file_groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); groups];
        for (i, file) in files.into_iter().enumerate() {
            file_groups[i % groups].push(file);
        }
        let config = FileScanConfigBuilder::new(self.store.clone(), source)
            .with_file_groups(file_groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Whether a filter can be used before the rows are read: deterministic, on columns.
fn is_usable(filter: &Expr) -> bool {
    !filter.is_volatile() && !filter.column_refs().is_empty()
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // A filter on the per-partition columns alone is answered exactly by choosing
        // partitions; other filters choose partitions and Parquet row groups, and
        // DataFusion still applies them to the rows.
        Ok(filters
            .iter()
            .map(|f| {
                if is_usable(f) && self.pruned.is_per_partition_filter(f) {
                    TableProviderFilterPushDown::Exact
                } else if is_usable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters: Vec<Expr> = filters.iter().filter(|f| is_usable(f)).cloned().collect();
        // A raw table reads every data object; the others skip what the log hides.
        let (partitions, hidden) = match self.raw {
            Some(_) => (
                self.partitions(state, &filters).await?,
                HiddenObjects::default(),
            ),
            None => futures::try_join!(self.partitions(state, &filters), async {
                CompactionLog::of(&self.lake).hidden().await.map_err(to_df)
            })?,
        };
        let (mut parquet, mut ndjson) = (Vec::new(), Vec::new());
        let mut listed = std::pin::pin!(live_objects_of(&self.lake, &hidden, partitions));
        while let Some((partition, objects)) = listed.try_next().await.map_err(to_df)? {
            self.counters.partitions.fetch_add(1, Ordering::Relaxed);
            let values: Vec<ScalarValue> = partition
                .pairs()
                .map(|(_, v)| ScalarValue::Int32(v.as_str().parse().ok()))
                .collect();
            for object in objects {
                self.counters.objects.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes
                    .fetch_add(object.size, Ordering::Relaxed);
                let url = self.lake.url_of(&object.key);
                let format = match self.raw.and_then(|r| r.format) {
                    Some(table) => table.check(&url, &object.key).map_err(to_df)?,
                    None => OutputFormat::of_key(&object.key),
                };
                match format {
                    OutputFormat::Parquet => {
                        let mut values = values.clone();
                        if self.raw.is_some() {
                            values.push(ScalarValue::Utf8(Some(url)));
                        }
                        parquet.push(
                            PartitionedFile::new(self.store_path(&object)?, object.size)
                                .with_partition_values(values),
                        );
                    }
                    OutputFormat::Ndjson | OutputFormat::NdjsonGzip => ndjson.push(NdjsonObject {
                        key: object.key,
                        partition,
                        url,
                    }),
                }
            }
        }
        let mut table_columns = partition_fields(self.dataset.partition());
        if self.raw.is_some() {
            table_columns.push(path_field());
        }
        let table_schema = TableSchema::builder(self.data.clone())
            .with_table_partition_cols(table_columns)
            .build();
        let groups = state.config().target_partitions();
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !parquet.is_empty() {
            let options = TableParquetOptions {
                global: state.config_options().execution.parquet.clone(),
                ..TableParquetOptions::default()
            };
            // DataFusion pushes the query's filters into this source (its physical filter
            // pushdown): row groups whose min/max statistics rule them out are skipped.
            let mut source =
                ParquetSource::new(table_schema.clone()).with_table_parquet_options(options);
            let store = state.runtime_env().object_store(&self.store)?;
            let readers: Arc<dyn ParquetFileReaderFactory> = if self.whole_objects {
                Arc::new(WholeObjectReaderFactory::new(store))
            } else if matches!(self.lake.location(), LakeLocation::Local(_)) {
                Arc::new(LocalFileReaderFactory::default())
            } else {
                Arc::new(DefaultParquetFileReaderFactory::new(store))
            };
            // Every reader names its object when it fails.
            source = source.with_parquet_file_reader_factory(Arc::new(NamingReaderFactory {
                inner: readers,
                base: self.store.as_str().to_owned(),
            }));
            let source = Arc::new(source);
            plans.push(self.file_scan(source, parquet, groups, projection, limit)?);
        }
        if !ndjson.is_empty() {
            let written: Vec<&str> = self
                .dataset
                .columns()
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            let table = NdjsonTable {
                schema: &self.schema,
                data_columns: &written,
                partition_columns: self.dataset.partition().columns().len(),
            };
            plans.push(ndjson_scan(
                state, &self.lake, ndjson, table, projection, limit,
            )?);
        }
        match plans.len() {
            0 => {
                let schema = match projection {
                    Some(p) => Arc::new(self.schema.project(p)?),
                    None => self.schema.clone(),
                };
                Ok(Arc::new(EmptyExec::new(schema)))
            }
            1 => Ok(plans.pop().expect("one plan")),
            _ => UnionExec::try_new(plans),
        }
    }
}
