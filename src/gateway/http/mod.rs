//! The gateway's HTTP layer: what turns a request into calls on the imaging layer
//! (`gateway::imaging`) and its answer back into a response.

pub mod render_query;
