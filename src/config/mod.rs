//! Typed `omero.web.*` configuration: the property registry (one table), value
//! validation, the TOML store and resolution into [`Settings`].

mod error;
pub mod import;
pub mod property;
pub mod registry;
mod settings;
mod store;
pub mod wsgi_args;

pub use error::ConfigError;
pub use property::{Group, Kind, Need, Property, Value};
pub use settings::{AppServer, Settings, Tls, WorkerClass};
pub use store::Config;
