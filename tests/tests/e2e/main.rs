//! End-to-end tests over the local stack: one test binary, so that cargo runs them all at
//! once (`RUST_TEST_THREADS` in `.cargo/config.toml`). Each test starts its own emulator
//! and Lambdas and spends most of its time waiting on them, so they overlap well even on
//! two cores.

mod aggregation;
mod athena;
mod consumer;
mod crash;
mod dataset_tables;
mod direct_put;
mod dynalite;
mod event_source_mapping;
mod examples;
mod faults;
mod infra;
mod keep_up;
mod kpl_interop;
mod lambda_host;
mod pipeline;
mod redrive;
mod soak;
mod status;
mod stop;
mod support;
mod tail;
