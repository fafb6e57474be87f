//! Worker classes against what the venv has: a missing one refused, gthread accepted and
//! the way back.

use super::*;

#[test]
fn a_worker_class_the_venv_lacks_is_refused_and_gthread_is_accepted_with_the_way_back() {
    let test = "omeroweb worker classes";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 1);
    let has_gevent = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .any(|d| d.path().join("site-packages/gevent").is_dir());
    if has_gevent {
        eprintln!("{test}: part skipped, {} has gevent", venv.display());
    } else {
        let out = site.run(&["config", "set", "omero.web.wsgi_worker_class", "gevent"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("needs the gevent module"), "{err}");
        assert!(err.contains("No module named 'gevent'"), "{err}");
        // Nothing was saved: OMERO's own tooling still works on the site.
        assert_eq!(
            site.ok(&["config", "get", "omero.web.wsgi_worker_class"])
                .trim(),
            "sync"
        );
    }

    let out = site.run(&["config", "set", "omero.web.wsgi_worker_class", "gthread"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("OMERO's own `omero web start` refuses it")
            && err.contains("config set omero.web.wsgi_worker_class sync"),
        "{err}"
    );
    let report = site.ok(&["diagnostics"]);
    assert!(
        report.contains("OMERO's own `omero web start` refuses it"),
        "{report}"
    );
    // And OMERO's start does refuse it, as said.
    let out = support::omero_cli(&venv, site.root(), &["web", "start"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        format!("{}{}", stdout(&out), stderr(&out))
            .contains("Invalid omero.web.wsgi_worker_class gthread"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}
