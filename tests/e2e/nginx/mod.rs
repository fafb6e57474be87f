//! `omero-webctl nginx`, driven through the real binary: the rendering against OMERO's
//! reference output, the real `nginx -t`, refused injections, and the private nginx
//! serving a static file over TCP.

use crate::support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use omero_webctl::proc::{children, is_alive};
use support::{TestSite, free_port, nginx_available, stderr, stdout};

mod check;
mod private;
mod rendering;
