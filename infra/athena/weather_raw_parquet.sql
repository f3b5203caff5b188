-- Generated from examples/weather/dataset.toml by query/src/athena.rs (`query ddl` prints the same
-- for any lake); query/tests/integration/athena.rs checks it. Replace <bucket> with the lake bucket.
-- The objects in the lake's partition folders, Parquet lake (output format parquet).
-- Query the view `weather`, not this table.
CREATE EXTERNAL TABLE IF NOT EXISTS weather_raw (
  stationid string COMMENT 'GHCND station identifier, e.g. GHCND:US1MDAA0001',
  station_name string COMMENT 'Station name and place, from the input''s location',
  datatype string COMMENT 'Measured quantity in upper case: PRCP, SNOW, TMAX, TMIN, ...',
  value double COMMENT 'Measured value (finite)',
  observed_at timestamp COMMENT 'Event time of the observation, UTC',
  date date COMMENT 'UTC day of observed_at',
  ingested_at timestamp COMMENT 'Arrival time of the record in the stream, UTC'
)
PARTITIONED BY (year int, month int, day int)
STORED AS PARQUET
LOCATION 's3://<bucket>/data/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.year.type' = 'integer',
  'projection.year.range' = '1970,2100',
  'projection.month.type' = 'integer',
  'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'projection.day.type' = 'integer',
  'projection.day.range' = '1,31',
  'projection.day.digits' = '2',
  'storage.location.template' = 's3://<bucket>/data/year=${year}/month=${month}/day=${day}/',
  'parquet.compression' = 'SNAPPY'
);
