//! `omero-webctl nginx ...`
use std::process::ExitCode;

use super::NginxArgs;
use crate::site::Site;

pub fn run(_site: &Site, _args: NginxArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("nginx generation is not built yet")
}
