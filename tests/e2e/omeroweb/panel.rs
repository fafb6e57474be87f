//! The control panel (in tmux) on an OMERO.web site: shown as the embedded pool is, and a
//! worker class the venv lacks refused with the file kept.

use super::*;

#[test]
fn the_panel_shows_an_omeroweb_site_as_it_shows_the_embedded_pool() {
    let test = "omeroweb panel";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let site = TestSite::omeroweb(&venv, 2);
    let nginx_port = site.pin_nginx_port();
    let command = format!("{} --omerodir {}", support::BIN, site.root().display());
    let Some(tmux) = support::tmux::Tmux::start(&command, 100, 30) else {
        return;
    };
    // The header names what serves the site, with its versions.
    let versions = site.status_json()["versions"].clone();
    let title = format!(
        "OMERO.web {} · Gunicorn {}",
        versions["omero-web"].as_str().unwrap(),
        versions["gunicorn"].as_str().unwrap()
    );
    tmux.wait_for(LONG, "the stopped dashboard of an OMERO.web site", |s| {
        s.contains("STOPPED") && s.contains(&title)
    });

    // One key starts Gunicorn; the panel shows the PIDs /proc knows as its workers.
    tmux.keys(&["s"]);
    assert!(wait_until(LONG, || worker_pids(&site).len() == 2));
    let master = django_pid(site.root()).unwrap();
    let pids = children(master);
    assert_eq!(pids, worker_pids(&site));
    tmux.wait_for(LONG, "the Gunicorn worker PIDs", |s| {
        pids.iter().all(|p| s.contains(&p.to_string())) && s.contains("RUNNING")
    });
    // Start is done (its own readiness request answered) once the panel says so.
    tmux.wait_for(LONG, "the start report", |s| {
        s.contains("Started OMERO.web")
    });
    if nginx_available(test) {
        // s started the private nginx too: the URL shown serves OMERO.web's login page.
        let url = format!("http://127.0.0.1:{nginx_port}/");
        tmux.wait_for(LONG, "the URL", |s| s.contains(&url));
        assert_eq!(http_get(nginx_port, "/webclient/login/").unwrap().0, 200);
    }

    // Traffic appears as a 2xx count equal to what was sent (on top of start's own
    // readiness request).
    let before = requests(&site);
    for _ in 0..7 {
        assert_eq!(http_get(site.port, "/webclient/login/").unwrap().0, 200);
    }
    let total = before + 7;
    tmux.wait_for(LONG, "the 2xx count", |s| {
        s.contains(&format!("2xx {total} "))
    });

    // The Log tab cycles through OMEROweb.log and Gunicorn's own logs.
    tmux.keys(&["4"]);
    tmux.wait_for(LONG, "OMEROweb.log", |s| s.contains("OMEROweb.log"));
    tmux.keys(&["s"]);
    tmux.wait_for(LONG, "Gunicorn's error log", |s| {
        s.contains("Gunicorn error log") && s.contains("Booting worker with pid")
    });
    tmux.keys(&["s"]);
    tmux.wait_for(LONG, "Gunicorn's access log", |s| {
        s.contains("Gunicorn access log") && s.contains("GET /webclient/login/")
    });

    // x stops it (after confirming); the panel and /proc agree.
    tmux.keys(&["1", "x"]);
    tmux.wait_for(LONG, "the confirmation", |s| s.contains("Stop"));
    tmux.keys(&["y"]);
    // The pool's own state line, which says STOPPED only once the whole stop job
    // (pool, then nginx) is done; "nginx STOPPED" shows a moment before.
    tmux.wait_for(LONG, "the stopped pool", |s| s.contains("State   STOPPED"));
    assert!(wait_until(LONG, || !support::alive(master)));
    tmux.keys(&["q"]);
    tmux.wait_for(LONG, "the shell after the panel", |s| {
        s.contains("PANEL-EXITED 0")
    });
}

#[test]
fn the_panel_refuses_a_worker_class_the_venv_lacks_and_keeps_the_file() {
    let test = "omeroweb panel worker class";
    let Some(venv) = omeroweb_venv(test) else {
        return;
    };
    let has_gevent = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .any(|d| d.path().join("site-packages/gevent").is_dir());
    if has_gevent {
        eprintln!("skipping {test}: {} has gevent", venv.display());
        return;
    }
    let site = TestSite::omeroweb(&venv, 1);
    let before = std::fs::read_to_string(site.root().join("etc/grid/config.xml")).unwrap();
    let command = format!("{} --omerodir {}", support::BIN, site.root().display());
    let Some(tmux) = support::tmux::Tmux::start(&command, 160, 30) else {
        return;
    };
    tmux.wait_for(LONG, "the stopped dashboard", |s| s.contains("STOPPED"));
    tmux.keys(&["2", "/"]);
    tmux.text("wsgi_worker_class");
    tmux.keys(&["Enter", "Enter", "BSpace", "BSpace", "BSpace", "BSpace"]);
    tmux.text("gevent");
    tmux.keys(&["Enter"]);
    tmux.wait_for(LONG, "the refusal with its reason", |s| {
        s.contains("Not saved: omero.web.wsgi_worker_class = gevent needs the gevent module")
    });
    assert_eq!(
        std::fs::read_to_string(site.root().join("etc/grid/config.xml")).unwrap(),
        before,
        "nothing was written"
    );
    tmux.keys(&["Escape", "q"]);
}
