//! HTTP servers the stack puts in front of the emulator.

pub mod conditional;
pub mod faults;
pub mod firehose;
