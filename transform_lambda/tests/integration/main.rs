//! The integration tests of the transform Lambda, in one binary (linked once, not once per file).

mod contract;
mod properties;
