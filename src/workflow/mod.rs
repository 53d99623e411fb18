//! Workflow files: the raw YAML mirror, the validated model the engine runs,
//! and loading with every problem reported as `file:line:col: path: message`.

pub mod checker;
pub mod de;
pub mod diag;
pub mod load;
pub mod model;
mod poll;
pub mod raw;
mod schedule;
pub mod validate;
mod validate_flow;
mod validate_steps;
mod webhook;
pub mod yaml;

pub use checker::Env;
pub use load::{Registry, load_dir, load_files, load_paths};
pub use model::{Step, StepKind, Trigger, Workflow};
