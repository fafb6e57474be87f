//! Fleet: a web tier on several hosts seen and driven from one control site. The fleet
//! file names the members; each runs omero-webctl itself and is asked through OpenSSH
//! (or directly, when local) for its `… --json` answers; the control site runs the
//! front nginx whose upstream is the members. Rolling operations take one member out
//! of the front at a time.

pub mod file;
mod front;
pub mod ops;
pub mod sessions;
pub mod status;
pub mod transport;
mod undo;

use std::path::{Path, PathBuf};

pub use file::{Destination, FleetFile, Member};
pub use transport::{Answer, Transport};

use crate::site::Site;

/// The fleet file's place in a control site.
pub fn default_path(control: &Site) -> PathBuf {
    control.etc_dir().join("fleet.toml")
}

/// A fleet as the control site sees it.
pub struct Fleet {
    /// The site holding the fleet's state (drained members, samples, ssh sockets) and
    /// running the front.
    pub control: Site,
    pub file: FleetFile,
    pub transport: Transport,
}

impl Fleet {
    pub fn open(control: Site, file: &Path) -> anyhow::Result<Fleet> {
        let file = FleetFile::load(file)?;
        let state = control.var_dir().join("fleet");
        let transport = Transport::new(&file, &state.join("ssh"))?;
        Ok(Fleet {
            control,
            file,
            transport,
        })
    }

    /// var/fleet/ of the control site.
    pub fn state_dir(&self) -> PathBuf {
        self.control.var_dir().join("fleet")
    }

    /// Every member's status, asked at once.
    pub fn status(&self) -> Vec<status::MemberRow> {
        status::collect(
            &self.file,
            &self.transport,
            &self.drained(),
            &self.state_dir().join("samples.json"),
        )
    }
}
