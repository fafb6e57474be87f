//! Styles. Text uses the terminal's own foreground and background, so the panel reads
//! on light and dark terminals alike; colour marks only states and accents, from the
//! eight named ANSI colours that terminal themes adapt. With `NO_COLOR` set there is no
//! colour at all, and emphasis is bold, underline or reverse video.

use ratatui::style::{Color, Modifier, Style};

use crate::logging::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub const COLOR: Theme = Theme { color: true };
    pub const MONOCHROME: Theme = Theme { color: false };

    /// `NO_COLOR` present and not empty turns colour off (no-color.org).
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    fn paint(&self, color: Color, mono: Modifier) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new().add_modifier(mono)
        }
    }

    pub fn plain(&self) -> Style {
        Style::new()
    }
    pub fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    /// Secondary text (units, defaults). DIM is relative to the terminal's colour.
    pub fn dim(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }
    pub fn ok(&self) -> Style {
        self.paint(Color::Green, Modifier::BOLD)
    }
    pub fn warn(&self) -> Style {
        self.paint(Color::Yellow, Modifier::BOLD)
            .add_modifier(Modifier::BOLD)
    }
    pub fn error(&self) -> Style {
        self.paint(Color::Red, Modifier::BOLD | Modifier::UNDERLINED)
            .add_modifier(Modifier::BOLD)
    }
    pub fn accent(&self) -> Style {
        self.paint(Color::Cyan, Modifier::BOLD)
    }
    /// The selected row, the active tab.
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    /// A key in the hint bar or help.
    pub fn key(&self) -> Style {
        self.paint(Color::Cyan, Modifier::BOLD)
            .add_modifier(Modifier::BOLD)
    }
    pub fn border(&self) -> Style {
        Style::new()
    }
    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    /// A search match.
    pub fn highlight(&self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::UNDERLINED)
        }
    }
    /// A state badge such as RUNNING: the state colour in reverse video.
    pub fn badge(&self, base: Style) -> Style {
        base.add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    pub fn level(&self, level: Option<Level>) -> Style {
        match level {
            Some(Level::Critical) | Some(Level::Error) => self.error(),
            Some(Level::Warning) => self.warn(),
            Some(Level::Debug) => self.dim(),
            Some(Level::Info) | None => self.plain(),
        }
    }

    // nginx syntax
    pub fn comment(&self) -> Style {
        self.paint(Color::Green, Modifier::DIM)
    }
    pub fn directive(&self) -> Style {
        self.paint(Color::Cyan, Modifier::BOLD)
    }
    pub fn brace(&self) -> Style {
        self.paint(Color::Magenta, Modifier::BOLD)
            .add_modifier(Modifier::BOLD)
    }
    pub fn variable(&self) -> Style {
        self.paint(Color::Blue, Modifier::ITALIC)
    }
    pub fn added(&self) -> Style {
        self.paint(Color::Green, Modifier::BOLD)
    }
    pub fn removed(&self) -> Style {
        self.paint(Color::Red, Modifier::CROSSED_OUT)
    }
}
