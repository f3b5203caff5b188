//! Running the pipeline on one machine: the emulator, the binaries, the clients and
//! resources, the stack that composes the emulated services, and the demo.

pub mod binaries;
pub mod demo;
pub mod emulator;
pub mod lake_dataset;
pub mod logs;
pub mod node_servers;
pub mod progress;
pub mod python;
pub mod resources;
pub mod stack;
mod wiring;
