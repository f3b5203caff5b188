//! The integration tests of the consumer Lambda, in one binary (linked once, not once per file).

mod events;
mod plan;
mod plan_properties;
