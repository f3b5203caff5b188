-- Generated from examples/weather/dataset.toml by query/src/athena.rs (`query ddl` prints the same
-- for any lake); query/tests/integration/athena.rs checks it. Replace <bucket> with the lake bucket.
-- The compaction log (query/src/compaction_log.rs): which objects a compaction in
-- progress hides. Beside the lake, outside data/.
CREATE EXTERNAL TABLE IF NOT EXISTS weather_compaction_log (
  compaction_id string COMMENT 'Id of the compaction (its log object is <id>.json)',
  day_folder string COMMENT 'Partition folder, e.g. year=2021/month=10/day=15',
  object_path string COMMENT 'The object, as the "$path" pseudo-column names it',
  object_role string COMMENT 'compacted (the object written) or source (an object it replaces)',
  state string COMMENT 'pending (sources are read) or committed (the compacted object is read)'
)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
LOCATION 's3://<bucket>/compaction-log/data/';
