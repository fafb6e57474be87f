//! Entering and leaving the full-screen terminal mode. The terminal is restored on
//! every way out: the guard's `Drop` (normal quit and `?` errors), a panic hook (which
//! runs even where unwinding would skip `Drop`), and the signal handling in the run
//! loop (SIGTERM, SIGHUP, SIGINT end the loop, so the guard drops).

use std::io::{self, Stdout};
use std::ops::{Deref, DerefMut};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Whether the terminal is in our mode, so restoring twice does nothing.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

/// Raw mode, alternate screen, hidden cursor. Undone by dropping the guard.
pub fn enter() -> io::Result<TerminalGuard> {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Restore first, so the panic message lands on a usable screen.
            restore();
            previous(info);
        }));
    });
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let setup = execute!(io::stdout(), EnterAlternateScreen, Hide)
        .and_then(|_| Terminal::new(CrosstermBackend::new(io::stdout())));
    match setup {
        Ok(terminal) => Ok(TerminalGuard { terminal }),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

/// Leaves our mode if we are in it. Errors are ignored: this runs on the way out.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

impl Deref for TerminalGuard {
    type Target = Terminal<CrosstermBackend<Stdout>>;
    fn deref(&self) -> &Self::Target {
        &self.terminal
    }
}

impl DerefMut for TerminalGuard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.terminal
    }
}
