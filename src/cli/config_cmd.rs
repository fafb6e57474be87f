//! `omero-webctl config ...`
use std::process::ExitCode;

use super::ConfigAction;
use crate::site::Site;

pub fn run(_site: &Site, _action: ConfigAction) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
