//! Typed `omero.web.*` configuration: the property registry (one table), value
//! validation, the config store (our TOML file or OMERO's config.xml, one
//! interface) and resolution into [`Settings`].

mod error;
pub mod gunicorn_flags;
pub mod import;
pub mod lenient;
mod lock;
pub mod omero_xml;
pub mod property;
pub mod python_re;
pub mod registry;
mod settings;
mod store;
mod toml_doc;
pub mod wsgi_args;

pub use error::ConfigError;
pub use property::{Group, Kind, Need, Property, Value};
pub use settings::{AppServer, Settings, Tls, WorkerClass};
pub use store::{Config, ValueWarning};
