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
    /// The `ldaps://` port, when started with TLS.
    pub tls_port: Option<u16>,
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
        Slapd::start_with(false)
    }

    /// Like [`Slapd::start`], also with TLS: `ldaps://` on `tls_port` and StartTLS on
    /// `port`, with a certificate for 127.0.0.1 from a test CA (`ca_file`). Nothing
    /// is answered without TLS (`security ssf=128`).
    pub fn start_tls() -> Slapd {
        Slapd::start_with(true)
    }

    /// The test CA's certificate (PEM), when started with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(tls: bool) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let tls_conf = if tls {
            super::test_certificates(dir.path());
            format!(
                "TLSCACertificateFile {0}/ca.pem\nTLSCertificateFile {0}/server.pem\nTLSCertificateKeyFile {0}/server.key\nsecurity ssf=128\n",
                dir.path().display()
            )
        } else {
            String::new()
        };
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let conf = dir.path().join("slapd.conf");
        let schemas = ["core", "cosine", "nis", "inetorgperson"]
            .map(|s| format!("include /etc/ldap/schema/{s}.schema\n"))
            .concat();
        std::fs::write(
            &conf,
            format!(
                "{schemas}{tls_conf}modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {}\ndatabase mdb\nmaxsize 10485760\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PASSWORD}\ndirectory {}\n",
                dir.path().join("slapd.pid").display(),
                data.display()
            ),
        )
        .unwrap();
        let port = super::free_port();
        let tls_port = tls.then(super::free_port);
        let mut listen = format!("ldap://127.0.0.1:{port}/");
        if let Some(tls_port) = tls_port {
            listen.push_str(&format!(" ldaps://127.0.0.1:{tls_port}/"));
        }
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(listen)
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("slapd.log")).unwrap())
            .spawn()
            .expect("starting slapd");
        let mut slapd = Slapd {
            port,
            tls_port,
            child: Some(child),
            dir,
        };
        assert!(
            super::wait_until(Duration::from_secs(60), || {
                [Some(port), tls_port]
                    .into_iter()
                    .flatten()
                    .all(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
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
        let mut ldapadd = Command::new("ldapadd");
        ldapadd.args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PASSWORD]);
        if self.tls_port.is_some() {
            ldapadd.arg("-ZZ").env("LDAPTLS_CACERT", self.ca_file());
        }
        let out = ldapadd.arg("-f").arg(&file).output().unwrap();
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
