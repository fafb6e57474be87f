//! nginx: options, the file it compares with, the `nginx -t` verdict, and the preview
//! (coloured: comments, directives, braces, variables) or its diff against the file.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::tui::app::App;
use crate::tui::diff::{Change, summary};
use crate::tui::nginx_tab::{CheckState, NginxTab, Target};
use crate::tui::theme::Theme;

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let tab = &app.nginx;
    let failure_lines = match &tab.check {
        CheckState::Done {
            result: Ok(report), ..
        } if !report.ok && !tab.check_is_stale() => report.nginx_lines.len().min(4) as u16 + 2,
        _ => 0,
    };
    let [header, body, failure] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(failure_lines),
    ])
    .areas(area);
    header_lines(app, frame, header);
    preview(app, frame, body);
    if failure_lines > 0
        && let CheckState::Done {
            result: Ok(report), ..
        } = &tab.check
    {
        let lines: Vec<Line> = report
            .nginx_lines
            .iter()
            .map(|l| Line::raw(l.clone()))
            .collect();
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(Block::bordered().title(Span::styled(" nginx -t says ", app.theme.error()))),
            failure,
        );
    }
}

fn header_lines(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let tab = &app.nginx;
    let [first, second] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let options = &tab.options;
    let option = |name: &str, value: String| {
        vec![
            Span::styled(format!("{name} "), theme.dim()),
            Span::styled(value, theme.bold()),
            Span::raw("  "),
        ]
    };
    // Each option whole or not at all: a cut port would be another port.
    let mut chunks = vec![vec![Span::raw(" ")]];
    chunks.push(option("kind", tab.kind.as_str().to_string()));
    chunks.push(option(
        "http",
        options
            .http_port
            .unwrap_or_else(|| tab.kind.default_http_port())
            .to_string(),
    ));
    chunks.push(option(
        "server_name",
        options
            .server_name
            .clone()
            .unwrap_or_else(|| "$hostname".into()),
    ));
    chunks.push(option(
        "max body",
        options.max_body_size.clone().unwrap_or_else(|| "0".into()),
    ));
    frame.render_widget(
        Paragraph::new(super::whole_chunks(chunks, first.width as usize)),
        first,
    );

    if let Some(edit) = &tab.edit {
        let label = format!(" {}: ", edit.field.label());
        // Room for the value and a little more; a path gets more.
        let wanted = match edit.field {
            crate::tui::nginx_tab::NginxField::OutputPath => 60,
            _ => 16.max(edit.input.value().chars().count() as u16 + 2),
        };
        let width = wanted.min(second.width.saturating_sub(label.len() as u16 + 1)) as usize;
        let (shown, cursor) = edit.input.visible(width);
        let mut spans = vec![
            Span::styled(label.clone(), theme.key()),
            Span::styled(format!("{shown:<width$}"), theme.selected()),
            Span::raw(" "),
        ];
        spans.push(match &edit.error {
            Some(e) => Span::styled(format!("✗ {e}"), theme.error()),
            None => Span::styled("✓ Enter applies, Esc cancels", theme.ok()),
        });
        frame.render_widget(Paragraph::new(Line::from(spans)), second);
        frame.set_cursor_position(Position::new(
            second.x + label.len() as u16 + cursor as u16,
            second.y,
        ));
        return;
    }

    // The file's path goes first when the line is too narrow for it (its state,
    // "differs +12 -3", must not be cut).
    let (path, state) = file_state(tab, theme);
    let mut line = vec![
        Span::raw(" "),
        verdict(tab, theme),
        Span::raw("  "),
        path,
        Span::raw(": "),
        state.clone(),
    ];
    if line.iter().map(Span::width).sum::<usize>() > second.width as usize {
        line = vec![
            Span::raw(" "),
            verdict(tab, theme),
            Span::raw("  file "),
            state,
        ];
    }
    frame.render_widget(
        Paragraph::new(super::whole_chunks(
            line.into_iter().map(|s| vec![s]).collect(),
            second.width as usize,
        )),
        second,
    );
}

fn verdict(tab: &NginxTab, theme: &Theme) -> Span<'static> {
    if tab.preview.is_err() {
        return Span::styled("nginx -t: —", theme.dim());
    }
    match &tab.check {
        CheckState::NotRun => Span::styled("nginx -t: not run (c)", theme.dim()),
        CheckState::Running { .. } => Span::styled("nginx -t: running…", theme.warn()),
        CheckState::Done { .. } if tab.check_is_stale() => {
            Span::styled("nginx -t: outdated (c)", theme.dim())
        }
        CheckState::Done {
            result: Ok(report), ..
        } if report.ok => Span::styled("nginx -t: ok", theme.ok()),
        CheckState::Done { result: Ok(_), .. } => Span::styled("nginx -t: FAILED", theme.error()),
        CheckState::Done { result: Err(e), .. } => {
            Span::styled(format!("nginx -t: cannot run ({e})"), theme.warn())
        }
    }
}

/// The output file's path and its state against the preview.
fn file_state(tab: &NginxTab, theme: &Theme) -> (Span<'static>, Span<'static>) {
    let path = tab.output_path.display().to_string();
    let (state, style) = match &tab.target {
        Target::NotRead => ("reading…".to_string(), theme.dim()),
        Target::Missing => ("does not exist (w writes it)".to_string(), theme.dim()),
        Target::Unreadable(e) => (format!("unreadable: {e}"), theme.error()),
        Target::Present(_) if tab.up_to_date() => ("up to date".to_string(), theme.ok()),
        Target::Present(_) => {
            let (added, removed) = summary(&tab.diff);
            (format!("differs +{added} -{removed} (d)"), theme.warn())
        }
    };
    (
        Span::styled(path, theme.plain()),
        Span::styled(state, style),
    )
}

fn preview(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let tab = &app.nginx;
    let title = if tab.show_diff {
        " Diff: file → preview (d: preview) "
    } else {
        " Preview (d: diff with the file) "
    };
    let block = Block::bordered().title(Span::styled(title, theme.title()));
    let text = match &tab.preview {
        Err(e) => {
            let lines = vec![
                Line::styled("This config cannot be generated:", theme.error()),
                Line::raw(e.clone()),
            ];
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block),
                area,
            );
            return;
        }
        Ok(text) => text,
    };
    let height = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = if tab.show_diff {
        if tab.diff.is_empty() {
            vec![Line::styled("(nothing to compare yet)", theme.dim())]
        } else {
            // Hunks, not the whole file: the changes with a little context.
            crate::tui::diff::hunks(&tab.diff, crate::tui::diff::CONTEXT)
                .into_iter()
                .skip(tab.scroll)
                .take(height)
                .map(|item| match item {
                    Ok(l) => {
                        let (sign, style) = match l.change {
                            Change::Same => (' ', theme.plain()),
                            Change::Added => ('+', theme.added()),
                            Change::Removed => ('-', theme.removed()),
                        };
                        Line::styled(format!("{sign} {}", l.text), style)
                    }
                    Err(n) => Line::styled(format!("⋯ {n} unchanged lines"), theme.dim()),
                })
                .collect()
        }
    } else {
        let total = text.lines().count();
        let digits = total.to_string().len();
        text.lines()
            .enumerate()
            .skip(tab.scroll)
            .take(height)
            .map(|(i, l)| {
                let mut spans = vec![Span::styled(format!("{:>digits$} ", i + 1), theme.dim())];
                spans.extend(highlight(l, theme));
                Line::from(spans)
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Colours one line of nginx config: a `#` comment, the directive (first word), braces,
/// `$variables`; everything else in the terminal's own colour.
pub fn highlight(line: &str, theme: &Theme) -> Vec<Span<'static>> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let mut spans = vec![Span::raw(indent.to_string())];
    if trimmed.starts_with('#') {
        spans.push(Span::styled(trimmed.to_string(), theme.comment()));
        return spans;
    }
    let mut rest = trimmed;
    // The directive: the first word, unless the line is only a brace.
    let word_end = rest
        .find(|c: char| c.is_whitespace() || c == ';' || c == '{' || c == '}')
        .unwrap_or(rest.len());
    if word_end > 0 {
        spans.push(Span::styled(
            rest[..word_end].to_string(),
            theme.directive(),
        ));
        rest = &rest[word_end..];
    }
    let mut plain = String::new();
    let flush = |plain: &mut String, spans: &mut Vec<Span<'static>>| {
        if !plain.is_empty() {
            spans.push(Span::raw(std::mem::take(plain)));
        }
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '}' => {
                flush(&mut plain, &mut spans);
                spans.push(Span::styled(c.to_string(), theme.brace()));
            }
            '#' => {
                flush(&mut plain, &mut spans);
                spans.push(Span::styled(rest[i..].to_string(), theme.comment()));
                return spans;
            }
            '$' => {
                flush(&mut plain, &mut spans);
                let mut var = String::from('$');
                while let Some(&(_, n)) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' {
                        var.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                spans.push(Span::styled(var, theme.variable()));
            }
            other => plain.push(other),
        }
    }
    flush(&mut plain, &mut spans);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Style;

    fn kinds(line: &str) -> Vec<(String, Style)> {
        let theme = Theme::COLOR;
        highlight(line, &theme)
            .into_iter()
            .filter(|s| !s.content.is_empty())
            .map(|s| (s.content.to_string(), s.style))
            .collect()
    }

    #[test]
    fn colours_directives_braces_variables_and_comments() {
        let t = Theme::COLOR;
        assert_eq!(
            kinds("    proxy_set_header Host $http_host; # keep"),
            vec![
                ("    ".to_string(), Style::new()),
                ("proxy_set_header".to_string(), t.directive()),
                (" Host ".to_string(), Style::new()),
                ("$http_host".to_string(), t.variable()),
                ("; ".to_string(), Style::new()),
                ("# keep".to_string(), t.comment()),
            ]
        );
        assert_eq!(
            kinds("location / {"),
            vec![
                ("location".to_string(), t.directive()),
                (" / ".to_string(), Style::new()),
                ("{".to_string(), t.brace()),
            ]
        );
        assert_eq!(
            kinds("  }"),
            vec![
                ("  ".to_string(), Style::new()),
                ("}".to_string(), t.brace())
            ]
        );
        assert_eq!(
            kinds("# all comment"),
            vec![("# all comment".to_string(), t.comment())]
        );
    }
}
