//! nginx's own tokeniser (`ngx_conf_read_token`), rule for rule, so that what we check
//! is what nginx will read: a backslash escapes the next character anywhere (also
//! outside quotes, where `\"` is part of a word, not a string), quotes only open at
//! the start of a token, `#` starts a comment only there too, `${` inside a word does
//! not open a block, a `}` inside a word is a character, and after a closing quote
//! only space, `;`, `{` or `)` may follow.
//!
//! Used by the checker of `omero.web.nginx_server_extra_config` (and its fuzz target,
//! which compares this parse with `nginx -t`'s).

/// What the text holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A directive: its words (unescaped as nginx does), whether it opens a block, and
    /// the line (1-based) its name is on.
    Directive {
        words: Vec<String>,
        opens_block: bool,
        line: usize,
    },
    /// A `}`, on this line.
    BlockEnd { line: usize },
}

/// Where and why the text is not what nginx reads as whole directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub line: usize,
    pub reason: String,
}

/// Reads `text` as nginx does. With `whole_lines`, every line must also end between
/// directives (no quote, escape or directive running on into the next line): what
/// the extra-config property promises, one entry per line.
pub fn read(text: &str, whole_lines: bool) -> Result<Vec<Item>, TokenError> {
    let mut reader = Reader::default();
    let mut line = 1;
    for ch in text.chars() {
        if ch == '\n' && whole_lines && reader.quoted {
            return Err(TokenError {
                line,
                reason: "ends with a backslash, which joins it to the next line".into(),
            });
        }
        reader.feed(ch, line)?;
        if ch == '\n' {
            if whole_lines {
                reader.check_line_end(line)?;
            }
            line += 1;
        }
    }
    reader.finish(line)?;
    Ok(reader.items)
}

#[derive(Debug)]
struct Reader {
    items: Vec<Item>,
    words: Vec<String>,
    /// The raw text of the word being read (escapes not yet applied).
    raw: String,
    directive_line: usize,
    last_space: bool,
    need_space: bool,
    quoted: bool,
    s_quoted: bool,
    d_quoted: bool,
    variable: bool,
    sharp_comment: bool,
}

impl Default for Reader {
    fn default() -> Reader {
        Reader {
            items: Vec::new(),
            words: Vec::new(),
            raw: String::new(),
            directive_line: 1,
            last_space: true,
            need_space: false,
            quoted: false,
            s_quoted: false,
            d_quoted: false,
            variable: false,
            sharp_comment: false,
        }
    }
}

fn is_space(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\r' | '\n')
}

impl Reader {
    fn feed(&mut self, ch: char, line: usize) -> Result<(), TokenError> {
        let unexpected = |what: char| TokenError {
            line,
            reason: format!("nginx reads an unexpected {what:?} here"),
        };
        if ch == '\n' && self.sharp_comment {
            self.sharp_comment = false;
            return Ok(());
        }
        if self.sharp_comment {
            return Ok(());
        }
        if self.quoted {
            self.quoted = false;
            self.raw.push(ch);
            return Ok(());
        }
        if self.need_space {
            if is_space(ch) {
                self.last_space = true;
                self.need_space = false;
                return Ok(());
            }
            match ch {
                ';' | '{' => {
                    self.end_directive(ch == '{');
                    return Ok(());
                }
                ')' => {
                    self.last_space = true;
                    self.need_space = false;
                }
                other => return Err(unexpected(other)),
            }
        }
        if self.last_space {
            if is_space(ch) {
                return Ok(());
            }
            if self.words.is_empty() {
                self.directive_line = line;
            }
            match ch {
                ';' | '{' if self.words.is_empty() => return Err(unexpected(ch)),
                ';' => self.end_directive(false),
                '{' => self.end_directive(true),
                '}' if !self.words.is_empty() => return Err(unexpected(ch)),
                '}' => self.items.push(Item::BlockEnd { line }),
                '#' => self.sharp_comment = true,
                '\\' => {
                    self.quoted = true;
                    self.last_space = false;
                    self.raw.push(ch);
                }
                '"' => {
                    self.d_quoted = true;
                    self.last_space = false;
                }
                '\'' => {
                    self.s_quoted = true;
                    self.last_space = false;
                }
                '$' => {
                    self.variable = true;
                    self.last_space = false;
                    self.raw.push(ch);
                }
                other => {
                    self.last_space = false;
                    self.raw.push(other);
                }
            }
            return Ok(());
        }
        // Inside a word or a quoted string.
        if ch == '{' && self.variable {
            self.raw.push(ch);
            return Ok(());
        }
        self.variable = false;
        match ch {
            '\\' => {
                self.quoted = true;
                self.raw.push(ch);
                return Ok(());
            }
            '$' => {
                self.variable = true;
                self.raw.push(ch);
                return Ok(());
            }
            _ => {}
        }
        let found = if self.d_quoted {
            let closed = ch == '"';
            if closed {
                self.d_quoted = false;
                self.need_space = true;
            }
            closed
        } else if self.s_quoted {
            let closed = ch == '\'';
            if closed {
                self.s_quoted = false;
                self.need_space = true;
            }
            closed
        } else if is_space(ch) || ch == ';' || ch == '{' {
            self.last_space = true;
            true
        } else {
            false
        };
        if !found {
            self.raw.push(ch);
            return Ok(());
        }
        let word = unescape(&std::mem::take(&mut self.raw));
        self.words.push(word);
        match ch {
            ';' => self.end_directive(false),
            '{' => self.end_directive(true),
            _ => {}
        }
        Ok(())
    }

    fn end_directive(&mut self, opens_block: bool) {
        self.items.push(Item::Directive {
            words: std::mem::take(&mut self.words),
            opens_block,
            line: self.directive_line,
        });
        self.last_space = true;
        self.need_space = false;
    }

    fn check_line_end(&self, line: usize) -> Result<(), TokenError> {
        let reason = if self.d_quoted || self.s_quoted {
            "has a quote that is not closed on the same line"
        } else if !self.words.is_empty() || !self.last_space {
            "does not end with ';', '{' or '}' and is not a # comment"
        } else {
            return Ok(());
        };
        Err(TokenError {
            line,
            reason: reason.into(),
        })
    }

    fn finish(&mut self, line: usize) -> Result<(), TokenError> {
        // The end of the text is the end of the last line.
        self.feed('\n', line)?;
        self.check_line_end(line)
    }
}

/// A word's text as nginx copies it: `\"`, `\'` and `\\` lose the backslash, `\t`,
/// `\r`, `\n` become those characters, any other backslash stays.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('"' | '\'' | '\\') => out.push(chars.next().unwrap_or_default()),
            Some('t') => {
                chars.next();
                out.push('\t');
            }
            Some('r') => {
                chars.next();
                out.push('\r');
            }
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directive(words: &[&str], opens_block: bool, line: usize) -> Item {
        Item::Directive {
            words: words.iter().map(|w| w.to_string()).collect(),
            opens_block,
            line,
        }
    }

    #[test]
    fn reads_as_nginx_reads() {
        assert_eq!(
            read("add_header X \"a b;}\";\nlocation /x {\n}\n", true).unwrap(),
            vec![
                directive(&["add_header", "X", "a b;}"], false, 1),
                directive(&["location", "/x"], true, 2),
                Item::BlockEnd { line: 3 },
            ]
        );
        // Outside quotes `\"` is part of the word: the `}` after it is not hidden.
        assert_eq!(
            read("return 200 \\\"; }", false).unwrap(),
            vec![
                directive(&["return", "200", "\""], false, 1),
                Item::BlockEnd { line: 1 },
            ]
        );
        // `#` inside a word is a character; at a token's start a comment.
        assert_eq!(
            read("return 301 /a#b; # }", false).unwrap(),
            vec![directive(&["return", "301", "/a#b"], false, 1)]
        );
        // `${` does not open a block, and `}` in a word is a character.
        assert_eq!(
            read("set $a ${b}c};", false).unwrap(),
            vec![directive(&["set", "$a", "${b}c}"], false, 1)]
        );
        // Escapes in a quoted string.
        assert_eq!(
            read(r#"add_header X "a\"b\\";"#, false).unwrap(),
            vec![directive(&["add_header", "X", "a\"b\\"], false, 1)]
        );
    }

    #[test]
    fn what_nginx_refuses_or_lines_that_run_on() {
        assert!(
            read("\"a\"b;", false)
                .unwrap_err()
                .reason
                .contains("unexpected")
        );
        assert!(
            read("a } ;", false)
                .unwrap_err()
                .reason
                .contains("unexpected")
        );
        assert!(read(";", false).is_err());
        let err = read("return 200 \"x;\n\";", true).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.reason.contains("quote"), "{err:?}");
        assert!(
            read("listen\n80;", true)
                .unwrap_err()
                .reason
                .contains("does not end")
        );
        assert!(read("listen\n80;", false).is_ok());
        assert!(
            read("return 200 x\\\n;", true)
                .unwrap_err()
                .reason
                .contains("backslash")
        );
        assert!(read("return 200 x", false).is_err());
    }
}
