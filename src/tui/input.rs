//! A one-line text field: the value, a cursor, and the keys that edit it. Drawing and
//! validation are the caller's (property values are checked by `Property::parse`).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineInput {
    text: String,
    /// Cursor position in characters, `0..=len`.
    cursor: usize,
}

impl LineInput {
    /// A field holding `text` with the cursor at its end.
    pub fn new(text: impl Into<String>) -> LineInput {
        let text = text.into();
        let cursor = text.chars().count();
        LineInput { text, cursor }
    }

    pub fn value(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn set(&mut self, text: impl Into<String>) {
        *self = LineInput::new(text);
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map(|(i, _)| i)
            .unwrap_or(self.text.len())
    }

    /// Applies an editing key; returns whether the text changed. Keys it does not
    /// know are ignored (the keymap handles Enter, Esc and Tab before this).
    pub fn handle(&mut self, key: &KeyEvent) -> bool {
        let len = self.text.chars().count();
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = len,
            KeyCode::Char('u') if ctrl => {
                let at = self.byte_at(self.cursor);
                self.text.replace_range(..at, "");
                self.cursor = 0;
                return at > 0;
            }
            KeyCode::Char(_) if ctrl || key.modifiers.contains(KeyModifiers::ALT) => {}
            KeyCode::Char(c) => {
                let at = self.byte_at(self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
                return true;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let at = self.byte_at(self.cursor - 1);
                self.text.remove(at);
                self.cursor -= 1;
                return true;
            }
            KeyCode::Delete if self.cursor < len => {
                let at = self.byte_at(self.cursor);
                self.text.remove(at);
                return true;
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(len),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = len,
            _ => {}
        }
        false
    }

    /// The part of the text that fits in `width` columns with the cursor visible, and
    /// the cursor's column within it.
    pub fn visible(&self, width: usize) -> (String, usize) {
        if width == 0 {
            return (String::new(), 0);
        }
        // Keep the cursor on screen; it may sit one past the last character.
        let start = (self.cursor + 1).saturating_sub(width);
        let shown: String = self.text.chars().skip(start).take(width).collect();
        (shown, self.cursor - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(input: &mut LineInput, code: KeyCode) -> bool {
        input.handle(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn edits_at_the_cursor() {
        let mut input = LineInput::new("408");
        assert!(press(&mut input, KeyCode::Char('0')));
        assert_eq!(input.value(), "4080");
        press(&mut input, KeyCode::Home);
        press(&mut input, KeyCode::Right);
        assert!(press(&mut input, KeyCode::Delete));
        assert_eq!(input.value(), "480");
        assert!(press(&mut input, KeyCode::Backspace));
        assert_eq!(input.value(), "80");
        assert!(!press(&mut input, KeyCode::Backspace));
        assert!(!press(&mut input, KeyCode::Left));
        press(&mut input, KeyCode::End);
        assert_eq!(input.cursor(), 2);
        let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert!(input.handle(&ctrl_u));
        assert_eq!(input.value(), "");
    }

    #[test]
    fn multibyte_characters_are_one_position() {
        let mut input = LineInput::new("Zürich");
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Backspace);
        assert_eq!(input.value(), "Zrich");
    }

    #[test]
    fn long_text_scrolls_to_keep_the_cursor_visible() {
        let input = LineInput::new("abcdefghij");
        assert_eq!(input.visible(4), ("hij".to_string(), 3));
        let mut input = input;
        press(&mut input, KeyCode::Home);
        assert_eq!(input.visible(4), ("abcd".to_string(), 0));
        assert_eq!(input.visible(0), (String::new(), 0));
    }
}
