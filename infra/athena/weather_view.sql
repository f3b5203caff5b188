-- Generated from examples/weather/dataset.toml by query/src/athena.rs (`query ddl` prints the same
-- for any lake); query/tests/integration/athena.rs checks it. Replace <bucket> with the lake bucket.
-- What to query: the raw table without the objects the compaction log hides. Every
-- record once at every step of a compaction, as `query sql` reads the lake.
CREATE OR REPLACE VIEW weather AS
SELECT "stationid", "station_name", "datatype", "value", "observed_at", "date", "ingested_at", "year", "month", "day"
FROM weather_raw
WHERE "$path" NOT IN (
  SELECT object_path FROM weather_compaction_log
  WHERE (object_role = 'compacted' AND state = 'pending')
     OR (object_role = 'source' AND state = 'committed')
);
