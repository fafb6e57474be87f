//! Every key binding in one table. Dispatch, the `?` overlay and the hint bar all read
//! [`KEYMAP`], so what the panel says a key does is what it does.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::Tab;

/// Where a binding applies. The panel asks the contexts that are active right now, most
/// specific first (see `App::contexts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere, even in text fields and popups.
    Always,
    /// Any tab, while no popup or text field has the keyboard.
    Global,
    Dashboard,
    Properties,
    Nginx,
    Log,
    /// The Fleet tab (a site with a fleet file).
    Fleet,
    /// A text field has the keyboard (property value, filter, search, nginx option).
    Input,
    /// The `U` screen (upgrades, generations, history).
    Upgrades,
    /// A yes/no question.
    Confirm,
    /// The help overlay or a message box.
    Overlay,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Always => "Everywhere",
            Context::Global => "All tabs",
            Context::Dashboard => "Dashboard",
            Context::Properties => "Properties",
            Context::Nginx => "nginx",
            Context::Log => "Log",
            Context::Fleet => "Fleet",
            Context::Upgrades => "Upgrades",
            Context::Input => "Text fields",
            Context::Confirm => "Questions",
            Context::Overlay => "Help and messages",
        }
    }

    /// The order the help overlay lists contexts in.
    pub const HELP_ORDER: [Context; 11] = [
        Context::Global,
        Context::Dashboard,
        Context::Properties,
        Context::Nginx,
        Context::Log,
        Context::Upgrades,
        Context::Input,
        Context::Confirm,
        Context::Overlay,
        Context::Fleet,
        Context::Always,
    ];
}

/// What a key asks for. `update` turns actions into state changes and effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Messages,
    /// The `U` screen.
    Upgrades,
    NextTab,
    PrevTab,
    GoTab(Tab),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    // Dashboard
    Start,
    Stop,
    Restart,
    Reload,
    ScaleUp,
    ScaleDown,
    KillWorker,
    WorkerDetail,
    NextSort,
    ReverseSort,
    ToggleNginx,
    // Properties
    Edit,
    Unset,
    Filter,
    // nginx
    NextKind,
    EditHttpPort,
    EditServerName,
    EditMaxBodySize,
    EditOutputPath,
    CheckNginx,
    ToggleDiff,
    WriteNginx,
    ReloadNginx,
    // Log
    NextSource,
    ToggleFollow,
    NextLevel,
    Search,
    NextMatch,
    PrevMatch,
    NextError,
    PrevError,
    ToggleWrap,
    // Fleet
    Drain,
    Undrain,
    FleetRefresh,
    FleetRoll,
    MemberDashboard,
    // Upgrades
    Rollback,
    // Text fields
    Submit,
    Cancel,
    Complete,
    // Questions and overlays
    Yes,
    No,
    Close,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub code: KeyCode,
    pub mods: KeyModifiers,
    pub context: Context,
    pub action: Action,
    /// A word or two for the hint bar.
    pub label: &'static str,
    /// One line for the help overlay.
    pub help: &'static str,
    /// Shown in the hint bar (alternates such as `k` for `↑` are not).
    pub hint: bool,
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;

const fn bind(
    code: KeyCode,
    context: Context,
    action: Action,
    label: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        code,
        mods: NONE,
        context,
        action,
        label,
        help,
        hint: true,
    }
}

/// An alternate key for an action already in the table: in help, not in the hint bar.
const fn alt(code: KeyCode, context: Context, action: Action) -> Binding {
    Binding {
        code,
        mods: NONE,
        context,
        action,
        label: "",
        help: "",
        hint: false,
    }
}

/// Shown in help but not in the hint bar.
const fn quiet(mut b: Binding) -> Binding {
    b.hint = false;
    b
}

use Action as A;
use Context as C;
use KeyCode::{BackTab, Char, Down, End, Enter, Esc, Home, PageDown, PageUp, Up};

/// The table. Rules kept by tests: no key twice in one context; no Ctrl+letter for
/// anything but quitting; destructive actions confirm (that part is in `update`).
#[rustfmt::skip]
pub static KEYMAP: &[Binding] = &[
    // Everywhere
    Binding {
        code: Char('c'),
        mods: CTRL,
        context: C::Always,
        action: A::Quit,
        label: "quit",
        help: "Quit the panel (the pool keeps running)",
        hint: false,
    },
    // All tabs
    bind(Char('q'), C::Global, A::Quit, "quit", "Quit the panel (the pool keeps running)"),
    bind(Char('?'), C::Global, A::Help, "help", "Show every key"),
    bind(Char('m'), C::Global, A::Messages, "messages", "The last 50 status messages, whole (nothing lost to width or expiry)"),
    quiet(bind(Char('U'), C::Global, A::Upgrades, "upgrades", "Upgrades: generations, steps of a change, health window, history")),
    quiet(bind(KeyCode::Tab, C::Global, A::NextTab, "next tab", "Next tab")),
    quiet(bind(BackTab, C::Global, A::PrevTab, "prev tab", "Previous tab")),
    quiet(bind(Char('1'), C::Global, A::GoTab(Tab::Dashboard), "dashboard", "Dashboard tab")),
    quiet(bind(Char('2'), C::Global, A::GoTab(Tab::Properties), "properties", "Properties tab")),
    quiet(bind(Char('3'), C::Global, A::GoTab(Tab::Nginx), "nginx", "nginx tab")),
    quiet(bind(Char('4'), C::Global, A::GoTab(Tab::Log), "log", "Log tab")),
    quiet(bind(Up, C::Global, A::Up, "up", "Move up / scroll up")),
    alt(Char('k'), C::Global, A::Up),
    quiet(bind(Down, C::Global, A::Down, "down", "Move down / scroll down")),
    alt(Char('j'), C::Global, A::Down),
    quiet(bind(PageUp, C::Global, A::PageUp, "page up", "One page up")),
    quiet(bind(PageDown, C::Global, A::PageDown, "page down", "One page down")),
    quiet(bind(Home, C::Global, A::Top, "top", "To the top")),
    alt(Char('g'), C::Global, A::Top),
    quiet(bind(End, C::Global, A::Bottom, "bottom", "To the bottom (Log: follow again)")),
    alt(Char('G'), C::Global, A::Bottom),
    // Dashboard
    bind(Char('s'), C::Dashboard, A::Start, "start", "Start the pool and the private nginx"),
    bind(Char('x'), C::Dashboard, A::Stop, "stop", "Stop the pool and the private nginx (asks)"),
    bind(Char('r'), C::Dashboard, A::Reload, "reload", "Rolling reload of the pool (re-reads the config)"),
    bind(Char('R'), C::Dashboard, A::Restart, "restart", "Restart the pool; no gap behind nginx (asks)"),
    bind(Char('+'), C::Dashboard, A::ScaleUp, "more", "One worker more"),
    alt(Char('='), C::Dashboard, A::ScaleUp),
    bind(Char('-'), C::Dashboard, A::ScaleDown, "fewer", "One worker fewer (asks)"),
    bind(Char('K'), C::Dashboard, A::KillWorker, "kill", "Kill the selected worker; the pool replaces it (asks)"),
    quiet(bind(Enter, C::Dashboard, A::WorkerDetail, "details", "The selected worker in detail: its figures and their history")),
    bind(Char('o'), C::Dashboard, A::NextSort, "sort", "Sort the workers by the next column"),
    quiet(bind(Char('O'), C::Dashboard, A::ReverseSort, "reverse", "Reverse the sort order")),
    quiet(bind(Char('n'), C::Dashboard, A::ToggleNginx, "nginx", "Start or stop the private nginx alone (stop asks)")),
    quiet(bind(Char('N'), C::Dashboard, A::ReloadNginx, "reload nginx", "Reload the private nginx with the current properties (when flagged stale)")),
    // Properties
    bind(Enter, C::Properties, A::Edit, "edit", "Edit the selected property (validated as you type)"),
    alt(Char('e'), C::Properties, A::Edit),
    bind(Char('u'), C::Properties, A::Unset, "unset", "Unset the property: its default applies (asks)"),
    bind(Char('/'), C::Properties, A::Filter, "filter", "Filter by key, help text or group"),
    // nginx
    bind(Char('t'), C::Nginx, A::NextKind, "kind", "Next kind: nginx, nginx-location, nginx-development"),
    bind(Char('p'), C::Nginx, A::EditHttpPort, "port", "HTTP port nginx listens on (--http)"),
    quiet(bind(Char('n'), C::Nginx, A::EditServerName, "name", "server_name (--servername)")),
    quiet(bind(Char('b'), C::Nginx, A::EditMaxBodySize, "body", "client_max_body_size (--max-body-size)")),
    quiet(bind(Char('f'), C::Nginx, A::EditOutputPath, "file", "File to compare with and write to")),
    bind(Char('c'), C::Nginx, A::CheckNginx, "nginx -t", "Check the preview with the real nginx -t"),
    bind(Char('d'), C::Nginx, A::ToggleDiff, "diff", "Show the preview or its diff against the file"),
    bind(Char('w'), C::Nginx, A::WriteNginx, "write", "Write the preview to the file (atomically; asks)"),
    quiet(bind(Char('r'), C::Nginx, A::ReloadNginx, "reload", "Reload the private nginx with the current properties")),
    // Log
    bind(Char('f'), C::Log, A::ToggleFollow, "follow", "Follow new lines or pause"),
    alt(Char(' '), C::Log, A::ToggleFollow),
    bind(Char('s'), C::Log, A::NextSource, "source", "OMEROweb.log, Gunicorn's logs (OMERO.web sites), nginx error.log, nginx access.log"),
    bind(Char('l'), C::Log, A::NextLevel, "level", "Minimum level shown: all, INFO, WARNING, ERROR"),
    bind(Char('/'), C::Log, A::Search, "search", "Search (case-insensitive); matches are highlighted"),
    bind(Char('n'), C::Log, A::NextMatch, "next", "Next match"),
    quiet(bind(Char('N'), C::Log, A::PrevMatch, "prev", "Previous match")),
    bind(Char('e'), C::Log, A::NextError, "error", "Next ERROR or CRITICAL line"),
    quiet(bind(Char('w'), C::Log, A::ToggleWrap, "wrap", "Wrap long lines or cut them at the edge")),
    quiet(bind(Char('E'), C::Log, A::PrevError, "prev error", "Previous ERROR or CRITICAL line")),
    // Fleet
    bind(Char('d'), C::Fleet, A::Drain, "drain", "Take the selected member out of the front, wait for its requests (asks)"),
    bind(Char('u'), C::Fleet, A::Undrain, "undrain", "Put the selected member back into the front (asks)"),
    quiet(bind(Char('r'), C::Fleet, A::FleetRefresh, "refresh", "Ask every member again now")),
    bind(Enter, C::Fleet, A::MemberDashboard, "open", "The selected member's Dashboard, read through ssh (read-only; Esc returns)"),
    bind(Char('R'), C::Fleet, A::FleetRoll, "rolling reload", "Reload every member, one at a time: drain, reload, health, undrain (asks)"),
    // Upgrades
    bind(Char('b'), C::Upgrades, A::Rollback, "roll back", "Roll back to the previous generation (asks)"),
    // Text fields
    bind(Enter, C::Input, A::Submit, "apply", "Apply (an invalid value cannot be saved)"),
    bind(Esc, C::Input, A::Cancel, "cancel", "Cancel, keep the old value"),
    bind(KeyCode::Tab, C::Input, A::Complete, "next choice", "Next allowed value (choices, booleans)"),
    // Questions
    bind(Char('y'), C::Confirm, A::Yes, "yes", "Yes, do it"),
    bind(Char('n'), C::Confirm, A::No, "no", "No"),
    alt(Esc, C::Confirm, A::No),
    // Help and messages
    bind(Esc, C::Overlay, A::Close, "close", "Close"),
    alt(Char('?'), C::Overlay, A::Close),
    alt(Enter, C::Overlay, A::Close),
    alt(Char('q'), C::Overlay, A::Close),
    quiet(bind(Up, C::Overlay, A::Up, "up", "Scroll up")),
    alt(Char('k'), C::Overlay, A::Up),
    quiet(bind(Down, C::Overlay, A::Down, "down", "Scroll down")),
    alt(Char('j'), C::Overlay, A::Down),
];

/// Shift is part of the character (`K` vs `k`) and of BackTab; terminals differ in
/// whether they also report it as a modifier, so it is ignored there.
fn normalized(key: &KeyEvent) -> KeyModifiers {
    match key.code {
        KeyCode::Char(_) | KeyCode::BackTab => key.modifiers - KeyModifiers::SHIFT,
        _ => key.modifiers,
    }
}

/// The action bound to `key` in the first of `contexts` that binds it.
pub fn action_for(contexts: &[Context], key: &KeyEvent) -> Option<Action> {
    let mods = normalized(key);
    contexts.iter().find_map(|&context| {
        KEYMAP
            .iter()
            .find(|b| b.context == context && b.code == key.code && b.mods == mods)
            .map(|b| b.action)
    })
}

/// How a key is written in help and hints.
pub fn key_name(code: KeyCode, mods: KeyModifiers) -> String {
    let base = match code {
        KeyCode::Char(' ') => "Space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "S-Tab".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        other => format!("{other:?}"),
    };
    if mods.contains(KeyModifiers::CONTROL) {
        format!("C-{base}")
    } else {
        base
    }
}

/// Hint-bar entries for the active contexts: (key, label), most specific first. Only
/// the main key of each action is shown; `?` lists the alternates.
pub fn hints(contexts: &[Context]) -> Vec<Hint> {
    let mut out: Vec<Hint> = Vec::new();
    for &context in contexts {
        for b in KEYMAP.iter().filter(|b| b.context == context && b.hint) {
            if out.iter().any(|h| h.label == b.label) {
                continue;
            }
            out.push(Hint {
                context,
                key: key_name(b.code, b.mods),
                label: b.label,
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub context: Context,
    pub key: String,
    pub label: &'static str,
}

/// All keys of one action in one context, e.g. `↑/k`.
pub fn keys_of(context: Context, action: Action) -> String {
    KEYMAP
        .iter()
        .filter(|b| b.context == context && b.action == action)
        .map(|b| key_name(b.code, b.mods))
        .collect::<Vec<_>>()
        .join("/")
}

/// Help-overlay entries of one context: (keys, description), one per action.
pub fn help_entries(context: Context) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut seen: Vec<Action> = Vec::new();
    for b in KEYMAP.iter().filter(|b| b.context == context) {
        if seen.contains(&b.action) {
            continue;
        }
        seen.push(b.action);
        let help = KEYMAP
            .iter()
            .find(|o| o.context == context && o.action == b.action && !o.help.is_empty())
            .map(|o| o.help)
            .unwrap_or("");
        out.push((keys_of(context, b.action), help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                assert!(
                    !(a.context == b.context && a.code == b.code && a.mods == b.mods),
                    "{:?} bound twice in {:?}",
                    a.code,
                    a.context
                );
            }
        }
    }

    #[test]
    fn only_quit_uses_ctrl() {
        for b in KEYMAP {
            if b.mods.contains(KeyModifiers::CONTROL) {
                assert_eq!(b.action, Action::Quit, "{b:?}");
            }
        }
    }

    #[test]
    fn every_action_has_a_description() {
        for b in KEYMAP {
            assert!(
                help_entries(b.context)
                    .iter()
                    .any(|(_, help)| !help.is_empty()),
                "{b:?}"
            );
            if b.hint {
                assert!(!b.label.is_empty() && !b.help.is_empty(), "{b:?}");
            }
        }
        for context in Context::HELP_ORDER {
            for (keys, help) in help_entries(context) {
                assert!(!help.is_empty(), "{keys} in {context:?} has no help");
            }
        }
    }

    #[test]
    fn specific_context_wins_over_global() {
        let n = key(KeyCode::Char('n'));
        assert_eq!(
            action_for(&[Context::Log, Context::Global], &n),
            Some(Action::NextMatch)
        );
        assert_eq!(
            action_for(&[Context::Dashboard, Context::Global], &n),
            Some(Action::ToggleNginx)
        );
        let q = key(KeyCode::Char('q'));
        assert_eq!(
            action_for(&[Context::Log, Context::Global], &q),
            Some(Action::Quit)
        );
        // In a text field q is just a letter; Esc cancels, it never quits.
        assert_eq!(action_for(&[Context::Input, Context::Always], &q), None);
        assert_eq!(
            action_for(&[Context::Input, Context::Always], &key(KeyCode::Esc)),
            Some(Action::Cancel)
        );
        assert_eq!(
            action_for(&[Context::Dashboard, Context::Global], &key(KeyCode::Esc)),
            None
        );
    }

    #[test]
    fn shift_letters_match_with_or_without_the_modifier() {
        let with_shift = KeyEvent::new(KeyCode::Char('K'), KeyModifiers::SHIFT);
        let without = key(KeyCode::Char('K'));
        for k in [with_shift, without] {
            assert_eq!(
                action_for(&[Context::Dashboard, Context::Global], &k),
                Some(Action::KillWorker)
            );
        }
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            action_for(&[Context::Input, Context::Always], &ctrl_c),
            Some(Action::Quit)
        );
        assert_eq!(
            action_for(&[Context::Nginx, Context::Global], &key(KeyCode::Char('c'))),
            Some(Action::CheckNginx)
        );
    }

    #[test]
    fn hints_and_help_come_from_the_table() {
        let hints = hints(&[Context::Log, Context::Global]);
        assert_eq!((hints[0].key.as_str(), hints[0].label), ("f", "follow"));
        assert!(
            hints
                .iter()
                .any(|h| h.key == "q" && h.label == "quit" && h.context == Context::Global)
        );
        let help = help_entries(Context::Global);
        assert!(help.iter().any(|(k, _)| k == "↑/k"));
        assert_eq!(keys_of(Context::Global, Action::Bottom), "End/G");
    }
}
