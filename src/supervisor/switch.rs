//! The one gapless switch both kinds of site make: a new generation (a master of a
//! new binary for the embedded pool, a Gunicorn master for OMERO.web) replaces the one
//! serving, behind the private nginx, with no request refused.
//!
//! The steps, in order ([`run`]):
//!
//! 1. an *interim* generation starts beside the live one on a free port, with its own
//!    pid file and control socket, and counts as up only once every worker answers;
//! 2. the private nginx's upstream is switched to it (re-rendered, `nginx -t`, HUP;
//!    nginx's old workers finish their requests: `front::switch`);
//! 3. the caller's watch (the health window of an upgrade) runs while the old master
//!    still runs: a failure moves nginx straight back to it and ends the new one;
//!    otherwise the old master is drained (its graceful stop, bounded by the graceful
//!    timeout);
//! 4. the same again back to the configured port, with the site's usual pid file and
//!    control socket, so that afterwards everything is as after a start;
//! 5. the upstream switched back to that port, the interim generation drained.
//!
//! Anything that fails before a switch ends only the new generation: the one serving
//! never noticed. What differs per kind (how a generation starts and proves ready,
//! how one is stopped, what it runs, the words of the report) is a [`Generations`].
//! Its progress goes into the change's record (`progress`), which the panel's `U`
//! screen shows.

use std::time::{Duration, Instant};

use super::ControlResponse;
use super::front;
use super::history;
use super::progress::{GenerationSeen, Progress, StepState};
use crate::config::Settings;
use crate::site::Site;

/// Why an interim generation did not come up.
pub enum NotUp {
    /// It failed to start or to get every worker ready (it is already ended).
    Failed(String),
    /// One from an earlier change still runs with the interim files (its master).
    EarlierInterim(u32),
}

/// What one kind of site does for a step of [`run`].
pub trait Generations {
    /// What a generation is called in the steps and reports (`master`, `generation`).
    fn noun(&self) -> &'static str;
    /// What the new one is in "the new … did not come up" (`binary`, `generation`).
    fn new_one(&self) -> &'static str;
    /// The site's settings as they are now (read again after a failed watch: a caller
    /// may have put the old config back).
    fn settings(&self) -> anyhow::Result<Settings>;
    /// Makes room for the interim generation's files.
    fn prepare_interim(&self) -> anyhow::Result<()>;
    /// Starts the interim generation on `interim`'s bind and waits until every worker
    /// is ready; its master.
    fn start_interim(&self, interim: &Settings) -> Result<u32, NotUp>;
    /// A last check on the new generation's own bind before the front moves to it.
    fn before_switch(&self, _interim: &Settings) -> Result<(), String> {
        Ok(())
    }
    /// Runs once the front serves the new generation while the old one still runs; an
    /// `Err` switches back.
    fn watch(&self, _interim: &Settings, _progress: &mut Progress) -> Result<(), String> {
        Ok(())
    }
    /// The report of a watch that failed and was switched back from: `why`, said as
    /// the kind says it.
    fn rolled_back(&self, why: &str) -> String {
        why.to_string()
    }
    /// Gracefully stops the live generation (the site's own master); the step's
    /// detail.
    fn drain_live(&self) -> anyhow::Result<String>;
    /// Starts a generation with the site's own files on `settings`' (configured) bind
    /// and waits until it is ready; its master.
    fn start_live(&self, settings: &Settings) -> Result<u32, String>;
    /// Gracefully stops the interim generation whose master is `master`, and whatever
    /// it left.
    fn end_interim(&self, master: u32);
    /// What the new generations run (a binary, an interpreter).
    fn runs(&self) -> String;
    /// What the master `old` runs, if its process says.
    fn ran_by(&self, old: u32) -> Option<String>;
    /// The report of a switch that went through.
    fn switched(&self, new_master: u32, settings: &Settings, old: u32, took: Duration) -> String;
}

/// The steps [`run`] reports, named with the kind's noun, as the `U` screen shows them.
pub fn steps(noun: &str) -> Vec<String> {
    vec![
        format!("start the new {noun} beside the live one"),
        "switch nginx to it".into(),
        "drain the old master".into(),
        "start it on the configured port".into(),
        "switch nginx back to that port".into(),
        format!("stop the interim {noun}"),
    ]
}

/// Ends a switch's record: its outcome in the progress record, and the change, with
/// every generation it involved, in the history.
pub fn finish(site: &Site, progress: &mut Progress, mut change: history::Change) {
    change.generations = progress.involved.clone();
    progress.finish(site, &change.outcome);
    history::record(site, &change);
}

/// One switch from the live generation (master `old`) to a new one, its steps
/// recorded in `progress` from step `first` on (a kind may have steps before them).
/// A step that fails ends in a failed reply saying what serves now; `Err` only for
/// what stopped it before anything started.
pub fn run(
    site: &Site,
    kind: &dyn Generations,
    action: &str,
    old: u32,
    progress: &mut Progress,
    first: usize,
) -> anyhow::Result<ControlResponse> {
    let started = Instant::now();
    let noun = kind.noun();
    let step = |progress: &mut Progress, n: usize, state: StepState, detail: &str| {
        progress.step(site, first + n, state, detail);
    };
    let settings = kind.settings()?;
    let mut interim = settings.clone();
    interim.port = front::free_port(&settings.host)?;
    kind.prepare_interim()?;
    let runs = kind.runs();
    let old_runs = kind.ran_by(old).unwrap_or_else(|| runs.clone());
    let seen = |role: &str, master: u32, port: u16| GenerationSeen {
        role: role.into(),
        master,
        port,
        runs: if master == old {
            old_runs.clone()
        } else {
            runs.clone()
        },
    };

    // 1. The interim generation, beside the live one.
    step(progress, 0, StepState::Running, &interim.bind());
    let interim_master = match kind.start_interim(&interim) {
        Ok(pid) => pid,
        Err(NotUp::EarlierInterim(pid)) => {
            let why = format!("an interim {noun} (PID {pid}) from an earlier change still runs");
            step(progress, 0, StepState::Failed, &why);
            return Ok(ControlResponse::failed(format!(
                "{action} refused: {why}; stop it first (kill {pid}); the running one (PID {old}) keeps serving"
            )));
        }
        Err(NotUp::Failed(reason)) => {
            step(progress, 0, StepState::Failed, &reason);
            return Ok(ControlResponse::failed(format!(
                "{action} refused: the new {} did not come up ({reason}); the running one (PID {old}) keeps serving, nothing was switched",
                kind.new_one()
            )));
        }
    };
    if let Err(why) = kind.before_switch(&interim) {
        step(progress, 0, StepState::Failed, &why);
        kind.end_interim(interim_master);
        return Ok(ControlResponse::failed(format!(
            "{action} refused: {why}; the running one (PID {old}) keeps serving, nothing was switched"
        )));
    }
    step(
        progress,
        0,
        StepState::Done,
        &format!("PID {interim_master}"),
    );
    progress.set_generations(
        site,
        vec![
            seen("serving", old, settings.port),
            seen("new", interim_master, interim.port),
        ],
    );

    // 2. The front to it.
    step(progress, 1, StepState::Running, "");
    if let Err(reason) = front::switch(site, &interim) {
        step(progress, 1, StepState::Failed, &reason);
        kind.end_interim(interim_master);
        return Ok(ControlResponse::failed(format!(
            "{action} refused: nginx did not switch to the new {} ({reason}); the running one (PID {old}) keeps serving",
            kind.new_one()
        )));
    }
    let switched_at = Instant::now();
    step(progress, 1, StepState::Done, &interim.bind());

    // 3. The watch while the old master still runs, then its drain.
    if let Err(why) = kind.watch(&interim, progress) {
        step(progress, 2, StepState::Failed, &why);
        let back = kind.settings()?;
        if let Err(reason) = front::switch(site, &back) {
            return Ok(ControlResponse::failed(format!(
                "{action}: {why}; nginx did not switch back to the previous {noun} (PID {old}) ({reason}): the new one (PID {interim_master}, {}) still serves",
                interim.bind()
            )));
        }
        let back_after = switched_at.elapsed();
        kind.end_interim(interim_master);
        return Ok(ControlResponse::failed(format!(
            "{}; nginx switched back to the previous {noun} (PID {old}, which never stopped) {:.1} s after the switch",
            kind.rolled_back(&why),
            back_after.as_secs_f64()
        )));
    }
    step(progress, 2, StepState::Running, &format!("PID {old}"));
    progress.set_generations(
        site,
        vec![
            seen("draining", old, settings.port),
            seen("serving", interim_master, interim.port),
        ],
    );
    let drained = kind.drain_live()?;
    step(progress, 2, StepState::Done, &drained);

    // 4. Back to the configured port, with the site's own files.
    step(progress, 3, StepState::Running, &settings.bind());
    let new_master = match kind.start_live(&settings) {
        Ok(pid) => pid,
        Err(reason) => {
            step(progress, 3, StepState::Failed, &reason);
            return Ok(ControlResponse::failed(format!(
                "the old {noun} was replaced, but its successor on {} did not come up ({reason}); the interim {noun} (PID {interim_master}, {}) serves through nginx: fix the cause, then restart",
                settings.bind(),
                interim.bind()
            )));
        }
    };
    step(progress, 3, StepState::Done, &format!("PID {new_master}"));
    progress.set_generations(
        site,
        vec![
            seen("new", new_master, settings.port),
            seen("serving", interim_master, interim.port),
        ],
    );

    // 5. The front back to that port; the interim generation drained.
    step(progress, 4, StepState::Running, "");
    if let Err(reason) = front::switch(site, &settings) {
        step(progress, 4, StepState::Failed, &reason);
        return Ok(ControlResponse::failed(format!(
            "nginx did not switch back to {} ({reason}); the interim {noun} (PID {interim_master}) still serves",
            settings.bind()
        )));
    }
    step(progress, 4, StepState::Done, &settings.bind());
    step(
        progress,
        5,
        StepState::Running,
        &format!("PID {interim_master}"),
    );
    progress.set_generations(
        site,
        vec![
            seen("serving", new_master, settings.port),
            seen("draining", interim_master, interim.port),
        ],
    );
    kind.end_interim(interim_master);
    step(progress, 5, StepState::Done, "");
    Ok(ControlResponse::ok(kind.switched(
        new_master,
        &settings,
        old,
        started.elapsed(),
    )))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::site::SiteKind;

    /// A kind that records what the procedure asked of it, and fails where told.
    struct Recorder {
        site: Site,
        calls: RefCell<Vec<String>>,
        interim: Option<NotUp>,
        refuse_before_switch: bool,
    }

    impl Recorder {
        fn new(dir: &std::path::Path) -> Recorder {
            Recorder {
                site: Site::with_kind(dir, SiteKind::OmeroWeb),
                calls: RefCell::new(Vec::new()),
                interim: None,
                refuse_before_switch: false,
            }
        }

        fn called(&self, what: impl Into<String>) {
            self.calls.borrow_mut().push(what.into());
        }
    }

    impl Generations for Recorder {
        fn noun(&self) -> &'static str {
            "thing"
        }
        fn new_one(&self) -> &'static str {
            "build"
        }
        fn settings(&self) -> anyhow::Result<Settings> {
            Ok(crate::config::Config::load(&self.site)?.settings())
        }
        fn prepare_interim(&self) -> anyhow::Result<()> {
            self.called("prepare");
            Ok(())
        }
        fn start_interim(&self, interim: &Settings) -> Result<u32, NotUp> {
            self.called(format!(
                "start interim on a port of its own: {}",
                interim.port != 4080
            ));
            match &self.interim {
                None => Ok(77),
                Some(NotUp::Failed(why)) => Err(NotUp::Failed(why.clone())),
                Some(NotUp::EarlierInterim(pid)) => Err(NotUp::EarlierInterim(*pid)),
            }
        }
        fn before_switch(&self, _interim: &Settings) -> Result<(), String> {
            self.called("before switch");
            if self.refuse_before_switch {
                return Err("the app's page answered 404".into());
            }
            Ok(())
        }
        fn drain_live(&self) -> anyhow::Result<String> {
            self.called("drain live");
            Ok(String::new())
        }
        fn start_live(&self, _settings: &Settings) -> Result<u32, String> {
            self.called("start live");
            Ok(78)
        }
        fn end_interim(&self, master: u32) {
            self.called(format!("end interim {master}"));
        }
        fn runs(&self) -> String {
            "new".into()
        }
        fn ran_by(&self, _old: u32) -> Option<String> {
            None
        }
        fn switched(&self, _: u32, _: &Settings, _: u32, _: Duration) -> String {
            "switched".into()
        }
    }

    fn states(progress: &Progress) -> Vec<StepState> {
        progress.steps.iter().map(|s| s.state).collect()
    }

    fn begin(kind: &Recorder) -> Progress {
        let steps = steps(kind.noun());
        let steps: Vec<&str> = std::iter::once("a step of the kind's own")
            .chain(steps.iter().map(String::as_str))
            .collect();
        Progress::begin(&kind.site, "upgrade", &steps)
    }

    use StepState::{Failed, Pending};

    #[test]
    fn the_steps_are_named_with_the_kinds_noun() {
        let steps = steps("master");
        assert_eq!(steps[0], "start the new master beside the live one");
        assert_eq!(steps[2], "drain the old master");
        assert_eq!(steps[5], "stop the interim master");
        assert_eq!(self::steps("generation")[5], "stop the interim generation");
    }

    /// A new generation that does not come up touches nothing else: the live one is
    /// never drained and the front never moves.
    #[test]
    fn an_interim_that_does_not_come_up_is_refused_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut kind = Recorder::new(dir.path());
        kind.interim = Some(NotUp::Failed("a worker exited".into()));
        let mut progress = begin(&kind);
        let reply = run(&kind.site, &kind, "upgrade", 10, &mut progress, 1).unwrap();
        assert!(!reply.ok);
        assert_eq!(
            reply.message,
            "upgrade refused: the new build did not come up (a worker exited); the running one (PID 10) keeps serving, nothing was switched"
        );
        assert_eq!(
            kind.calls.into_inner(),
            ["prepare", "start interim on a port of its own: true"]
        );
        assert_eq!(
            states(&progress),
            [Pending, Failed, Pending, Pending, Pending, Pending, Pending]
        );
        assert_eq!(progress.steps[1].detail, "a worker exited");
    }

    #[test]
    fn an_interim_left_by_an_earlier_change_is_named_with_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let mut kind = Recorder::new(dir.path());
        kind.interim = Some(NotUp::EarlierInterim(55));
        let mut progress = begin(&kind);
        let reply = run(&kind.site, &kind, "restart", 10, &mut progress, 1).unwrap();
        assert_eq!(
            reply.message,
            "restart refused: an interim thing (PID 55) from an earlier change still runs; stop it first (kill 55); the running one (PID 10) keeps serving"
        );
        assert_eq!(states(&progress)[1], Failed);
    }

    /// The check on the new generation's own bind comes before the front moves, and
    /// its refusal ends that generation.
    #[test]
    fn a_refused_check_before_the_switch_ends_the_new_generation_unswitched() {
        let dir = tempfile::tempdir().unwrap();
        let mut kind = Recorder::new(dir.path());
        kind.refuse_before_switch = true;
        let mut progress = begin(&kind);
        let reply = run(&kind.site, &kind, "app add", 10, &mut progress, 1).unwrap();
        assert_eq!(
            reply.message,
            "app add refused: the app's page answered 404; the running one (PID 10) keeps serving, nothing was switched"
        );
        assert_eq!(
            kind.calls.into_inner(),
            [
                "prepare",
                "start interim on a port of its own: true",
                "before switch",
                "end interim 77"
            ]
        );
        assert_eq!(progress.steps[1].state, Failed);
        assert!(progress.generations.is_empty(), "{progress:?}");
    }

    /// No private nginx to move (here none runs): the new generation is ended and the
    /// live one keeps serving, never drained.
    #[test]
    fn a_front_that_does_not_switch_ends_the_new_generation_and_keeps_the_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let kind = Recorder::new(dir.path());
        let mut progress = begin(&kind);
        let reply = run(&kind.site, &kind, "reload", 10, &mut progress, 1).unwrap();
        assert_eq!(
            reply.message,
            "reload refused: nginx did not switch to the new build (the private nginx is not running); the running one (PID 10) keeps serving"
        );
        assert_eq!(
            kind.calls.into_inner(),
            [
                "prepare",
                "start interim on a port of its own: true",
                "before switch",
                "end interim 77"
            ]
        );
        assert_eq!(
            states(&progress),
            [
                Pending,
                StepState::Done,
                Failed,
                Pending,
                Pending,
                Pending,
                Pending
            ]
        );
        let roles: Vec<(&str, u32)> = progress
            .generations
            .iter()
            .map(|g| (g.role.as_str(), g.master))
            .collect();
        assert_eq!(roles, [("serving", 10), ("new", 77)]);
    }
}
