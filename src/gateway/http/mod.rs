//! The gateway's HTTP layer: what turns a request into calls on the imaging layer
//! (`gateway::imaging`) and its answer back into a response.
//!
//! A request comes in through `serve` (the access guard, then the view its `Route`
//! names; the URL table is `routes`; `guard`, who may ask). Queries and form bodies
//! are decoded by `gateway::query` alone (the render parameters by
//! `query::render_query` on top of it); `conditional` answers 304s. `login` and
//! `api_login` are the login and logout views over `gateway::auth`. The views are grouped as OMERO.web groups them: `webgateway`,
//! `webclient`, `iviewer` (OMERO.iviewer's app) and `api` (the JSON API);
//! `download` streams original files and zips; `images` holds the steps every image
//! view shares.

pub mod api;
pub mod api_login;
pub mod conditional;
pub mod download;
pub mod guard;
pub mod images;
pub mod iviewer;
pub mod login;
pub mod routes;
pub mod serve;
pub mod webclient;
pub mod webgateway;
