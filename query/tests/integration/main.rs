//! The integration tests of `query`, in one binary: each test binary links DataFusion, so one binary is linked once instead of once per file.

mod athena;
mod chart;
mod common;
mod compaction;
mod evolution;
mod local_lake;
mod quiet;
mod requests;
mod sql;
