//! A real OpenLDAP `slapd` for a test: its own slapd.conf and mdb database in a temp
//! directory, on a free port of 127.0.0.1, in the foreground (`-d 0`) so the guard
//! can kill it, also when the test fails. Debian's `slapd` and `ldap-utils`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SUFFIX: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PASSWORD: &str = "admin-secret";

pub struct Slapd {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// Whether the test machine has slapd and ldapadd.
pub fn available() -> bool {
    std::path::Path::new("/usr/sbin/slapd").exists()
        && Command::new("ldapadd")
            .arg("-VV")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

impl Slapd {
    /// Starts slapd with the base entry and waits until it answers.
    pub fn start() -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let conf = dir.path().join("slapd.conf");
        let schemas = ["core", "cosine", "nis", "inetorgperson"]
            .map(|s| format!("include /etc/ldap/schema/{s}.schema\n"))
            .concat();
        std::fs::write(
            &conf,
            format!(
                "{schemas}modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {}\ndatabase mdb\nmaxsize 10485760\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PASSWORD}\ndirectory {}\n",
                dir.path().join("slapd.pid").display(),
                data.display()
            ),
        )
        .unwrap();
        let port = super::free_port();
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{port}/"))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("slapd.log")).unwrap())
            .spawn()
            .expect("starting slapd");
        let mut slapd = Slapd {
            port,
            child: Some(child),
            dir,
        };
        assert!(
            super::wait_until(Duration::from_secs(60), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "slapd did not listen: {}",
            slapd.log()
        );
        slapd.add(&format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n"
        ));
        slapd
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Loads `ldif` with ldapadd as the directory's root.
    pub fn add(&mut self, ldif: &str) {
        let file: PathBuf = self.dir.path().join("add.ldif");
        std::fs::write(&file, ldif).unwrap();
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PASSWORD,
                "-f",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "ldapadd: {out:?}\n{}", self.log());
    }

    /// A person `uid=<name>,ou=people` with `password`, member of `groups`
    /// (groupOfNames entries under ou=groups, made as needed).
    pub fn add_user(&mut self, name: &str, password: &str, groups: &[&str]) {
        let dn = format!("uid={name},ou=people,{SUFFIX}");
        self.add(&format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\nsn: {name}\nuserPassword: {password}\n"
        ));
        for group in groups {
            self.add(&format!(
                "dn: cn={group},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {group}\nmember: {dn}\n"
            ));
        }
    }

    /// Kills slapd (the directory goes down mid-test).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
