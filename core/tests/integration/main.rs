//! The integration tests of `streamlake-core`, in one binary (linked once, not once per file).

mod dataset_dynamodb;
mod dataset_file;
mod dataset_weather;
mod examples;
#[cfg(feature = "formats")]
mod ndjson_properties;
