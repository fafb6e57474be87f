//! The status model: what the embedded pool and a real OMERO.web under Gunicorn both
//! report, and every face (CLI, panel, metrics, fleet) reads. Plain serde data, so it
//! sits below the pool and the supervisors: both produce it, neither owns it.

pub mod activity;
#[cfg(test)]
pub mod fixtures;
mod outcome;
mod pool;
pub mod stats;

pub use outcome::{Halt, Pending, StartOutcome, StatusOutcome, StopOutcome};
pub use pool::{ControlResponse, PoolStatus, ServerState, WorkerState, WorkerStatus};
