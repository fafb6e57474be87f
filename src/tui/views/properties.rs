//! Properties: every registry property by group with its value and where it comes
//! from; below, the selected one's type, default, needs and help, or the editor.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::config::{Config, Property};
use crate::tui::app::App;
use crate::tui::properties::current_raw;

const PREFIX: &str = "omero.web.";

/// The key as listed: `omero.web.` is implied by the panel.
fn short_key(key: &str) -> &str {
    key.strip_prefix(PREFIX).unwrap_or(key)
}

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let detail_height = if area.height >= 36 { 10 } else { 7 };
    let [list, detail] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(detail_height)]).areas(area);
    let config = match &app.config {
        Ok(config) => config,
        Err(e) => {
            let theme = &app.theme;
            let text = vec![
                Line::styled("The config file cannot be used:", theme.error()),
                Line::raw(e.clone()),
                Line::raw(""),
                Line::raw("Fix it with `omero-webctl config edit` (validated) or in an editor;"),
                Line::raw("the panel reloads it as soon as it changes."),
            ];
            frame.render_widget(
                Paragraph::new(text)
                    .wrap(Wrap { trim: false })
                    .block(Block::bordered().title(" Properties ")),
                area,
            );
            return;
        }
    };
    property_list(app, config, frame, list);
    detail_panel(app, config, frame, detail);
}

fn property_list(app: &App, config: &Config, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let p = &app.properties;
    let wide = area.width >= 120;
    let visible = p.visible();
    let selected_key = p.selected_property().map(|prop| prop.key);
    let pending = pending_all(app, config);
    let mut rows = Vec::new();
    let mut selected_row = None;
    let mut group = None;
    for prop in &visible {
        if group != Some(prop.group) {
            group = Some(prop.group);
            rows.push(Row::new(vec![Cell::from(Span::styled(
                prop.group.title(),
                theme.accent(),
            ))]));
        }
        if Some(prop.key) == selected_key {
            selected_row = Some(rows.len());
        }
        rows.push(property_row(
            app,
            config,
            prop,
            (wide, value_width(area.width, wide)),
            &pending,
        ));
    }
    let filter = match (&p.filter_input, p.filter.is_empty()) {
        (Some(_), _) => " filter: (typing) ".to_string(),
        (None, false) => format!(" filter: \"{}\" ", p.filter),
        (None, true) => String::new(),
    };
    let title = Line::from(vec![
        Span::styled(" Properties ", theme.title()),
        Span::styled(
            format!(
                "{} of {} {filter}",
                visible.len(),
                crate::config::registry::PROPERTIES.len()
            ),
            theme.dim(),
        ),
    ]);
    let mut widths = vec![
        Constraint::Length(if wide { 44 } else { 33 }),
        Constraint::Fill(1),
        Constraint::Length(7),
    ];
    let mut header = vec!["KEY", "VALUE", "SOURCE"];
    if wide {
        widths.extend([Constraint::Length(12), Constraint::Length(33)]);
        header.extend(["TYPE", "A CHANGE NEEDS"]);
    }
    widths.push(Constraint::Length(4));
    header.push("");
    let block = Block::bordered().title(title);
    if visible.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "No property matches the filter (/ changes it).",
                theme.dim(),
            ))
            .block(block),
            area,
        );
        return;
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.bold()))
        .column_spacing(1)
        .row_highlight_style(theme.selected())
        .block(block);
    let mut state = TableState::default().with_selected(selected_row);
    frame.render_stateful_widget(table, area, &mut state);
    // The filter being typed sits in the top border, after the title.
    if let Some(input) = &p.filter_input {
        let x = area.x + 24;
        let width = area.width.saturating_sub(26);
        let (shown, cursor) = input.visible(width.saturating_sub(9) as usize);
        let line = Line::from(vec![
            Span::styled(" filter: ", theme.key()),
            Span::styled(format!("{shown} "), theme.selected()),
        ]);
        let r = Rect::new(x, area.y, width, 1);
        frame.render_widget(ratatui::widgets::Clear, r);
        frame.render_widget(Paragraph::new(line), r);
        frame.set_cursor_position(Position::new(x + 9 + cursor as u16, area.y));
    }
}

fn needs_text(prop: &Property) -> String {
    if prop.needs.is_empty() {
        "nothing".into()
    } else {
        prop.needs
            .iter()
            .map(|n| n.describe())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn shown_value(config: &Config, prop: &Property) -> Option<String> {
    if prop.secret && config.is_set(prop.key) {
        return Some("••••••".into());
    }
    current_raw(config, prop)
}

/// Saved changes the running pool has not applied (none when it does not run).
fn pending_all(app: &App, config: &Config) -> Vec<crate::supervisor::Pending> {
    app.dashboard
        .status()
        .map(|status| crate::supervisor::pending(config, status))
        .unwrap_or_default()
}

/// Columns the VALUE column gets: the table's inner width less the fixed columns
/// (KEY, SOURCE, the flag, and TYPE and A CHANGE NEEDS when wide) and the spacing.
fn value_width(area_width: u16, wide: bool) -> usize {
    let fixed = if wide {
        44 + 7 + 12 + 33 + 4 + 5
    } else {
        33 + 7 + 4 + 3
    };
    (area_width as usize).saturating_sub(2 + fixed)
}

/// A value cut to `width` ends in "…", so a cut figure is never read as whole.
fn fit_value(value: String, width: usize) -> String {
    if value.chars().count() <= width {
        return value;
    }
    let mut cut: String = value.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn property_row(
    app: &App,
    config: &Config,
    prop: &Property,
    (wide, value_width): (bool, usize),
    pending: &[crate::supervisor::Pending],
) -> Row<'static> {
    let theme = &app.theme;
    let is_set = config.is_set(prop.key);
    let warning = config.value_warning(prop.key);
    let shown = shown_value(config, prop).map(|v| fit_value(v, value_width));
    let (value, value_style) = match shown {
        Some(v) if warning.is_some_and(|w| w.omero_fails) => (v, theme.error()),
        Some(v) if warning.is_some() => (v, theme.warn()),
        Some(v) if is_set => (v, theme.bold()),
        Some(v) => (v, theme.plain()),
        None => ("—".to_string(), theme.dim()),
    };
    let source = if pending.iter().any(|p| p.key == prop.key) {
        // Saved, but the pool runs something else until a reload or restart.
        Span::styled("pending", theme.warn())
    } else if is_set {
        Span::styled("set", theme.ok())
    } else if prop.default.is_some() {
        Span::styled("default", theme.dim())
    } else {
        Span::styled("unset", theme.dim())
    };
    // A value kept as written though our rules refuse it; the detail says why.
    let flag = if let Some(w) = warning {
        let style = if w.omero_fails {
            theme.error()
        } else {
            theme.warn()
        };
        Span::styled(if w.omero_fails { "bad" } else { "odd" }, style)
    } else if prop.is_deprecated() {
        Span::styled("dep", theme.warn())
    } else if prop.extension {
        Span::styled("ext", theme.accent())
    } else {
        Span::raw("")
    };
    let mut cells = vec![
        Cell::from(format!("  {}", short_key(prop.key))),
        Cell::from(Span::styled(value, value_style)),
        Cell::from(source),
    ];
    if wide {
        cells.push(Cell::from(prop.kind.name()));
        cells.push(Cell::from(needs_text(prop)));
    }
    cells.push(Cell::from(flag));
    Row::new(cells)
}

fn detail_panel(app: &App, config: &Config, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let Some(prop) = app.properties.selected_property() else {
        frame.render_widget(Block::bordered(), area);
        return;
    };
    let block = Block::bordered().title(Span::styled(format!(" {} ", prop.key), theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let default = config
        .default_of(prop)
        .map(|v| v.to_raw())
        .unwrap_or_else(|| "none".into());
    let mut facts = vec![
        Span::styled(prop.kind.allowed(), theme.plain()),
        Span::styled(" · default ", theme.dim()),
        Span::raw(default),
        Span::styled(" · needs ", theme.dim()),
        Span::raw(needs_text(prop)),
    ];
    if prop.extension {
        facts.push(Span::styled(" · omero-webctl extension", theme.accent()));
    }
    if let Some(new) = prop.replaced_by {
        facts.push(Span::styled(format!(" · deprecated: {new}"), theme.warn()));
    }

    let edit = app.properties.edit.as_ref().filter(|e| e.key == prop.key);
    let Some(edit) = edit else {
        let mut text = vec![Line::from(facts), Line::raw("")];
        text.push(Line::raw(prop.help));
        if let Some(w) = config.value_warning(prop.key) {
            let (label, style) = if w.omero_fails {
                ("✗ ", theme.error())
            } else {
                ("! ", theme.warn())
            };
            text.push(Line::styled(format!("{label}{}", w.message), style));
        }
        if config.is_set(prop.key) && !prop.secret {
            text.push(Line::from(vec![
                Span::styled("set to ", theme.dim()),
                Span::styled(shown_value(config, prop).unwrap_or_default(), theme.bold()),
            ]));
        }
        if let Some(p) = pending_all(app, config)
            .into_iter()
            .find(|p| p.key == prop.key)
        {
            let running = if prop.secret {
                "another value".to_string()
            } else if p.running.is_empty() {
                "it unset".to_string()
            } else {
                p.running.clone()
            };
            text.push(Line::styled(
                format!(
                    "the pool runs {running}: saved, not applied ({} applies it)",
                    p.applies_with
                ),
                theme.warn(),
            ));
        }
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
        return;
    };

    let [field_row, verdict_row, rest] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Fill(1),
    ])
    .areas(inner);
    let label = "new value: ";
    let width = inner.width.saturating_sub(label.len() as u16 + 1) as usize;
    let (shown, cursor) = edit.input.visible(width);
    let field = Line::from(vec![
        Span::styled(label, theme.key()),
        Span::styled(format!("{shown:<width$}"), theme.selected()),
    ]);
    frame.render_widget(Paragraph::new(field), field_row);
    if !edit.saving {
        frame.set_cursor_position(Position::new(
            field_row.x + label.len() as u16 + cursor as u16,
            field_row.y,
        ));
    }
    let verdict = if edit.saving {
        Line::styled("saving…", theme.warn())
    } else {
        match &edit.error {
            Some(error) => Line::styled(format!("✗ {error}"), theme.error()),
            None => Line::styled("✓ valid — Enter saves, Esc cancels", theme.ok()),
        }
    };
    frame.render_widget(
        Paragraph::new(verdict).wrap(Wrap { trim: true }),
        verdict_row,
    );
    let mut text = vec![Line::from(facts)];
    if !crate::tui::properties::choices(prop).is_empty() {
        text.push(Line::styled("Tab: next allowed value", theme.dim()));
    }
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), rest);
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use crate::tui::app::Tab;
    use crate::tui::fixtures;

    fn screen(text: &str, selected: &'static str) -> String {
        let (mut app, _) = crate::tui::app::App::new(
            fixtures::site(),
            Ok(fixtures::config(text)),
            crate::tui::theme::Theme::COLOR,
            None,
            None,
        );
        app.tab = Tab::Properties;
        app.screen = (120, 40);
        app.properties.filter = "wsgi_".into();
        app.properties.selected = Some(selected);
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal
            .draw(|frame| crate::tui::views::view(&app, frame))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn an_odd_value_is_listed_as_written_and_its_warning_shown() {
        let text = "\"omero.web.wsgi_workers\" = \"banana\"\n\"omero.web.wsgi_timeout\" = 90\n";
        let shown = screen(text, "omero.web.wsgi_workers");
        let row = shown.lines().find(|l| l.contains("wsgi_workers")).unwrap();
        assert!(row.contains("banana") && row.contains("bad"), "{shown}");
        // Every other value keeps being used and shown.
        assert!(
            shown
                .lines()
                .any(|l| l.contains("wsgi_timeout") && l.contains("90")),
            "{shown}"
        );
        assert!(
            shown.contains("✗ not an integer: OMERO.web could not start with it"),
            "{shown}"
        );
    }
}
