//! Connectors: data files that describe a remote API (base URL, auth,
//! operations, how to read answers), and the HTTP runtime that turns a step's
//! input into a request and the answer into the step's output.

pub mod http;
mod limits;
pub mod model;
pub mod native;
mod paginate;
pub mod raw;
mod token;

pub use http::{CallContext, HttpRuntime};
pub use model::{Auth, Connector, Operation, ResponseRules, validate};
