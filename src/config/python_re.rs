//! Whether Python 3.11's `re.compile` accepts a pattern, decided without Python:
//! OMERO.web compiles `omero.web.public.url_filter` with `re` when its settings are
//! imported, so a pattern Python refuses stops the site. Rust's regex crates differ
//! from `re` in both directions (lookbehind, backreferences, `\d+(?i)x`, `a{,3}`), so
//! this follows the structure of CPython's `Lib/re/_parser.py` (and the one check of
//! `_compiler.py`, fixed-width lookbehind), rule for rule, but only to accept or refuse.
//! No interpreter is run: a root-run `config set` must not execute the site's Python.
//! One deliberate difference: `\N{name}` is refused, since the Unicode name table is
//! not at hand to tell a real name from a typo.

const MAXREPEAT: u128 = 4_294_967_295;
const MAXGROUPS: u128 = 1_073_741_823;
/// Python's parser recurses twice per parenthesis and stops at its recursion limit
/// (1000 frames): about 495 levels from a bare `re.compile`, fewer inside OMERO.web's
/// settings import. Deeper patterns are refused (also keeping our own stack bounded).
const MAX_DEPTH: usize = 400;

/// Why `re.compile` refuses a pattern, in Python's words where it has them.
pub fn check(pattern: &str) -> Result<(), String> {
    // The parser recurses per parenthesis, as Python's does, up to MAX_DEPTH: on a
    // thread of its own with room for that whatever the caller's stack.
    let owned = pattern.to_string();
    std::thread::Builder::new()
        .name("regex-check".into())
        .stack_size(64 << 20)
        .spawn(move || check_here(&owned))
        .map_err(|e| format!("cannot check the regex: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the regex check failed".into()))
}

fn check_here(pattern: &str) -> Result<(), String> {
    let mut parser = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        flags: Flags::default(),
        group_widths: vec![Some((0, 0))],
        group_names: Vec::new(),
        lookbehind_groups: None,
        forward_refs: Vec::new(),
        depth: 0,
    };
    // Python's tokenizer reads one token ahead, so a lone `\` at the end fails
    // whatever comes before it.
    if dangling_backslash(&parser.chars) {
        return Err("bad escape (end of pattern)".into());
    }
    let verbose = false;
    parser.parse_sub(verbose, 0)?;
    if parser.flags.ascii && parser.flags.unicode {
        return Err("ASCII and UNICODE flags are incompatible".into());
    }
    if parser.peek().is_some() {
        return Err("unbalanced parenthesis".into());
    }
    if let Some(g) = parser
        .forward_refs
        .iter()
        .find(|&&g| g >= parser.group_widths.len() as u128)
    {
        return Err(format!("invalid group reference {g}"));
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    verbose: bool,
    ascii: bool,
    unicode: bool,
}

/// A parsed item, as much as acceptance needs: its kind and its width.
#[derive(Debug, Clone)]
enum Node {
    /// One character: a literal, a class, `.`, `\d`.
    Unit,
    /// `^`, `$`, `\A`, `\Z`, `\b`, `\B`: cannot be repeated.
    At,
    Repeat {
        min: u128,
        max: u128,
        item: Vec<Node>,
    },
    /// A group, atomic group or a scoped-flags group.
    Group(Vec<Node>),
    Branch(Vec<Vec<Node>>),
    GroupRef(usize),
    GroupRefExists(Vec<Node>, Option<Vec<Node>>),
    /// Lookaround and comments: no width.
    Empty,
}

/// `SubPattern.getwidth()`.
fn width(nodes: &[Node], groups: &[Option<(u128, u128)>]) -> (u128, u128) {
    let (mut lo, mut hi) = (0u128, 0u128);
    for node in nodes {
        let (i, j) = match node {
            Node::Unit => (1, 1),
            Node::At | Node::Empty => (0, 0),
            Node::Repeat { min, max, item } => {
                let (i, j) = width(item, groups);
                (i.saturating_mul(*min), j.saturating_mul(*max))
            }
            Node::Group(inner) => width(inner, groups),
            Node::Branch(items) => items.iter().fold((MAXREPEAT - 1, 0), |(i, j), item| {
                let (l, h) = width(item, groups);
                (i.min(l), j.max(h))
            }),
            Node::GroupRef(g) => groups[*g].unwrap_or((0, 0)),
            Node::GroupRefExists(yes, no) => {
                let (i, j) = width(yes, groups);
                match no {
                    Some(no) => {
                        let (l, h) = width(no, groups);
                        (i.min(l), j.max(h))
                    }
                    None => (0, j),
                }
            }
        };
        lo = lo.saturating_add(i);
        hi = hi.saturating_add(j);
    }
    (lo.min(MAXREPEAT - 1), hi.min(MAXREPEAT))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    flags: Flags,
    /// Per group (0 = the whole match): its width once closed, `None` while open.
    group_widths: Vec<Option<(u128, u128)>>,
    group_names: Vec<(String, usize)>,
    /// Groups before the innermost lookbehind being parsed.
    lookbehind_groups: Option<usize>,
    /// Groups `(?(N)…)` names, checked once the pattern is read.
    forward_refs: Vec<u128>,
    /// Parentheses open around the current position.
    depth: usize,
}

/// A token as Python's tokenizer yields it: a character, or `\` and the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Escape(char),
}

const DIGITS: &str = "0123456789";
const OCT: &str = "01234567";
const HEX: &str = "0123456789abcdefABCDEF";

impl Parser {
    fn peek(&self) -> Option<Token> {
        match self.chars.get(self.pos)? {
            '\\' => Some(Token::Escape(*self.chars.get(self.pos + 1)?)),
            c => Some(Token::Char(*c)),
        }
    }

    /// The next token; a `\` at the very end is Python's "bad escape (end of pattern)".
    fn next(&mut self) -> Result<Option<Token>, String> {
        match self.chars.get(self.pos) {
            None => Ok(None),
            Some('\\') => match self.chars.get(self.pos + 1) {
                None => Err("bad escape (end of pattern)".into()),
                Some(c) => {
                    self.pos += 2;
                    Ok(Some(Token::Escape(*c)))
                }
            },
            Some(c) => {
                self.pos += 1;
                Ok(Some(Token::Char(*c)))
            }
        }
    }

    fn next_is(&self, c: char) -> bool {
        self.peek() == Some(Token::Char(c))
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.next_is(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Up to `n` characters from `set` (never an escape).
    fn take_while(&mut self, n: usize, set: &str) -> String {
        let mut out = String::new();
        let mut taken = 0;
        while taken < n {
            match self.peek() {
                Some(Token::Char(c)) if set.contains(c) => {
                    out.push(c);
                    self.pos += 1;
                    taken += 1;
                }
                _ => break,
            }
        }
        out
    }

    /// `getuntil`: text up to `end`, escapes kept as written.
    fn until(&mut self, end: char, name: &str) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.next()? {
                None if out.is_empty() => return Err(format!("missing {name}")),
                None => return Err(format!("missing {end}, unterminated name")),
                Some(Token::Char(c)) if c == end => {
                    if out.is_empty() {
                        return Err(format!("missing {name}"));
                    }
                    return Ok(out);
                }
                Some(Token::Char(c)) => out.push(c),
                Some(Token::Escape(c)) => {
                    out.push('\\');
                    out.push(c);
                }
            }
        }
    }

    fn parse_sub(&mut self, verbose: bool, nested: usize) -> Result<Vec<Node>, String> {
        let mut items = Vec::new();
        let mut verbose = verbose;
        loop {
            let first = nested == 0 && items.is_empty();
            items.push(self.parse(verbose, nested + 1, first)?);
            if !self.eat('|') {
                break;
            }
            if nested == 0 {
                verbose = self.flags.verbose;
            }
        }
        if items.len() == 1 {
            return Ok(items.pop().unwrap_or_default());
        }
        Ok(vec![Node::Branch(items)])
    }

    fn parse(&mut self, verbose: bool, nested: usize, first: bool) -> Result<Vec<Node>, String> {
        let mut verbose = verbose;
        let mut items: Vec<Node> = Vec::new();
        while let Some(token) = self.peek() {
            if matches!(token, Token::Char('|' | ')')) {
                break;
            }
            self.next()?;
            if verbose {
                match token {
                    Token::Char(' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}') => continue,
                    Token::Char('#') => {
                        while !matches!(self.next()?, None | Some(Token::Char('\n'))) {}
                        continue;
                    }
                    _ => {}
                }
            }
            match token {
                Token::Escape(c) => items.push(self.escape(c)?),
                Token::Char('[') => items.push(self.class()?),
                Token::Char(c @ ('*' | '+' | '?' | '{')) => {
                    let (min, max) = match c {
                        '?' => (0, 1),
                        '*' => (0, MAXREPEAT),
                        '+' => (1, MAXREPEAT),
                        _ => match self.braces()? {
                            Some(bounds) => bounds,
                            None => {
                                items.push(Node::Unit);
                                continue;
                            }
                        },
                    };
                    let item = match items.pop() {
                        None | Some(Node::At) => return Err("nothing to repeat".into()),
                        Some(Node::Repeat { .. }) => return Err("multiple repeat".into()),
                        Some(item) => item,
                    };
                    // Lazy or possessive; a third sign is another repeat.
                    let _ = self.eat('?') || self.eat('+');
                    items.push(Node::Repeat {
                        min,
                        max,
                        item: vec![item],
                    });
                }
                Token::Char('.') => items.push(Node::Unit),
                Token::Char('^' | '$') => items.push(Node::At),
                Token::Char('(') => {
                    if let Some(node) = self.group(&mut verbose, nested, first, items.is_empty())? {
                        items.push(node);
                    }
                }
                Token::Char(_) => items.push(Node::Unit),
            }
        }
        Ok(items)
    }

    /// After `{`: the bounds of a repeat, or `None` when the `{` is a literal.
    fn braces(&mut self) -> Result<Option<(u128, u128)>, String> {
        if self.next_is('}') {
            return Ok(None);
        }
        let here = self.pos;
        let lo = self.take_while(usize::MAX, DIGITS);
        let hi = if self.eat(',') {
            self.take_while(usize::MAX, DIGITS)
        } else {
            lo.clone()
        };
        if !self.eat('}') {
            self.pos = here;
            return Ok(None);
        }
        let number = |digits: &str| -> Result<u128, String> {
            let digits = digits.trim_start_matches('0');
            match digits.parse::<u128>() {
                _ if digits.is_empty() => Ok(0),
                Ok(n) if n < MAXREPEAT => Ok(n),
                _ => Err("the repetition number is too large".to_string()),
            }
        };
        let min = if lo.is_empty() { 0 } else { number(&lo)? };
        let max = if hi.is_empty() {
            MAXREPEAT
        } else {
            number(&hi)?
        };
        if !hi.is_empty() && max < min {
            return Err("min repeat greater than max repeat".into());
        }
        Ok(Some((min, max)))
    }

    /// `_escape`: an escape outside a class.
    fn escape(&mut self, c: char) -> Result<Node, String> {
        match c {
            'A' | 'Z' | 'b' | 'B' => return Ok(Node::At),
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => return Ok(Node::Unit),
            '0' => {
                self.take_while(2, OCT);
                return Ok(Node::Unit);
            }
            '1'..='9' => {
                let mut escape = c.to_string();
                if let Some(Token::Char(d)) = self.peek()
                    && d.is_ascii_digit()
                {
                    self.pos += 1;
                    escape.push(d);
                    let octal = |x: char| OCT.contains(x);
                    if octal(c)
                        && octal(d)
                        && let Some(Token::Char(e)) = self.peek()
                        && octal(e)
                    {
                        self.pos += 1;
                        escape.push(e);
                        return octal_value(&escape).map(|_| Node::Unit);
                    }
                }
                let group: usize = escape.parse().unwrap_or(usize::MAX);
                if group < self.group_widths.len() {
                    if self.group_widths[group].is_none() {
                        return Err("cannot refer to an open group".into());
                    }
                    self.check_lookbehind_group(group)?;
                    return Ok(Node::GroupRef(group));
                }
                return Err(format!("invalid group reference {group}"));
            }
            _ => {}
        }
        self.common_escape(c).map(|_| Node::Unit)
    }

    /// What `_escape` and `_class_escape` share: `\a \f \n \r \t \v \\`, `\x`, `\u`,
    /// `\U`, `\N`, and a non-letter standing for itself.
    fn common_escape(&mut self, c: char) -> Result<u32, String> {
        let hex = |parser: &mut Parser, n: usize| -> Result<u32, String> {
            let digits = parser.take_while(n, HEX);
            if digits.len() != n {
                return Err(format!("incomplete escape \\{c}{digits}"));
            }
            u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())
        };
        match c {
            'a' => Ok(7),
            'f' => Ok(12),
            'n' => Ok(10),
            'r' => Ok(13),
            't' => Ok(9),
            'v' => Ok(11),
            'x' => hex(self, 2),
            'u' => hex(self, 4),
            'U' => match hex(self, 8)? {
                v if v <= 0x10FFFF => Ok(v),
                v => Err(format!("bad escape \\U{v:08x}")),
            },
            'N' => Err(
                "\\N{...} names a character omero-webctl cannot check; write the character itself or \\uXXXX"
                    .into(),
            ),
            c if c.is_ascii_alphanumeric() => Err(format!("bad escape \\{c}")),
            c => Ok(c as u32),
        }
    }

    /// `_class_escape`: an escape inside `[...]`; `Err` or the literal (`None` for a
    /// class such as `\d`, which cannot end a range).
    fn class_escape(&mut self, c: char) -> Result<Option<u32>, String> {
        match c {
            'b' => Ok(Some(8)),
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => Ok(None),
            '0'..='7' => {
                let digits = self.take_while(2, OCT);
                octal_value(&format!("{c}{digits}")).map(Some)
            }
            '8' | '9' => Err(format!("bad escape \\{c}")),
            c => self.common_escape(c).map(Some),
        }
    }

    fn class(&mut self) -> Result<Node, String> {
        let _negate = self.eat('^');
        let mut seen = false;
        loop {
            let first = match self.next()? {
                None => return Err("unterminated character set".into()),
                Some(Token::Char(']')) if seen => return Ok(Node::Unit),
                Some(Token::Escape(c)) => (self.class_escape(c)?, format!("\\{c}")),
                Some(Token::Char(c)) => (Some(c as u32), c.to_string()),
            };
            seen = true;
            if !self.eat('-') {
                continue;
            }
            let second = match self.next()? {
                None => return Err("unterminated character set".into()),
                Some(Token::Char(']')) => return Ok(Node::Unit),
                Some(Token::Escape(c)) => (self.class_escape(c)?, format!("\\{c}")),
                Some(Token::Char(c)) => (Some(c as u32), c.to_string()),
            };
            match (first.0, second.0) {
                (Some(lo), Some(hi)) if lo <= hi => {}
                _ => return Err(format!("bad character range {}-{}", first.1, second.1)),
            }
        }
    }

    /// After `(`: a group, a lookaround, a comment or flags. `None`: nothing to add
    /// (a comment, global flags).
    fn group(
        &mut self,
        verbose: &mut bool,
        nested: usize,
        first: bool,
        at_start: bool,
    ) -> Result<Option<Node>, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "more than {MAX_DEPTH} nested parentheses: Python's recursion limit"
            ));
        }
        self.depth += 1;
        let node = self.group_body(verbose, nested, first, at_start);
        self.depth -= 1;
        node
    }

    fn group_body(
        &mut self,
        verbose: &mut bool,
        nested: usize,
        first: bool,
        at_start: bool,
    ) -> Result<Option<Node>, String> {
        let mut capture = true;
        let mut name = None;
        let mut sub_verbose = *verbose;
        if self.eat('?') {
            let c = match self.next()? {
                None => return Err("unexpected end of pattern".into()),
                Some(Token::Char(c)) => c,
                Some(Token::Escape(c)) => return Err(format!("unknown extension ?\\{c}")),
            };
            match c {
                'P' => {
                    if self.eat('<') {
                        let n = self.until('>', "group name")?;
                        check_group_name(&n)?;
                        name = Some(n);
                    } else if self.eat('=') {
                        let n = self.until(')', "group name")?;
                        check_group_name(&n)?;
                        let Some(&(_, gid)) = self.group_names.iter().find(|(k, _)| *k == n) else {
                            return Err(format!("unknown group name '{n}'"));
                        };
                        if self.group_widths[gid].is_none() {
                            return Err("cannot refer to an open group".into());
                        }
                        self.check_lookbehind_group(gid)?;
                        return Ok(Some(Node::GroupRef(gid)));
                    } else {
                        return match self.next()? {
                            None => Err("unexpected end of pattern".into()),
                            Some(t) => Err(format!("unknown extension ?P{}", token_text(t))),
                        };
                    }
                }
                ':' => capture = false,
                '#' => loop {
                    match self.next()? {
                        None => return Err("missing ), unterminated comment".into()),
                        Some(Token::Char(')')) => return Ok(None),
                        Some(_) => {}
                    }
                },
                '=' | '!' | '<' => {
                    let behind = c == '<';
                    if behind {
                        match self.next()? {
                            None => return Err("unexpected end of pattern".into()),
                            Some(Token::Char('=' | '!')) => {}
                            Some(t) => {
                                return Err(format!("unknown extension ?<{}", token_text(t)));
                            }
                        }
                    }
                    let outer = self.lookbehind_groups;
                    if behind && outer.is_none() {
                        self.lookbehind_groups = Some(self.group_widths.len());
                    }
                    let p = self.parse_sub(*verbose, nested + 1)?;
                    if behind && outer.is_none() {
                        self.lookbehind_groups = None;
                    }
                    if !self.eat(')') {
                        return Err("missing ), unterminated subpattern".into());
                    }
                    if behind {
                        let (lo, hi) = width(&p, &self.group_widths);
                        if lo != hi {
                            return Err("look-behind requires fixed-width pattern".into());
                        }
                    }
                    return Ok(Some(Node::Empty));
                }
                '(' => return self.conditional(*verbose, nested).map(Some),
                '>' => capture = false,
                c if "iLmsxatu-".contains(c) => {
                    match self.flags(c)? {
                        None => {
                            if !first || !at_start {
                                return Err(
                                    "global flags not at the start of the expression".into()
                                );
                            }
                            *verbose = self.flags.verbose;
                            return Ok(None);
                        }
                        Some((add_verbose, del_verbose)) => {
                            sub_verbose = (sub_verbose || add_verbose) && !del_verbose;
                        }
                    }
                    capture = false;
                }
                c => return Err(format!("unknown extension ?{c}")),
            }
        }
        let gid = if capture {
            let gid = self.group_widths.len();
            if gid as u128 >= MAXGROUPS {
                return Err("too many groups".into());
            }
            self.group_widths.push(None);
            if let Some(n) = name {
                if let Some(&(_, old)) = self.group_names.iter().find(|(k, _)| *k == n) {
                    return Err(format!(
                        "redefinition of group name '{n}' as group {gid}; was group {old}"
                    ));
                }
                self.group_names.push((n, gid));
            }
            Some(gid)
        } else {
            None
        };
        let p = self.parse_sub(sub_verbose, nested + 1)?;
        if !self.eat(')') {
            return Err("missing ), unterminated subpattern".into());
        }
        if let Some(gid) = gid {
            self.group_widths[gid] = Some(width(&p, &self.group_widths));
        }
        Ok(Some(Node::Group(p)))
    }

    /// `(?(id or name)yes|no)`.
    fn conditional(&mut self, verbose: bool, nested: usize) -> Result<Node, String> {
        let name = self.until(')', "group name")?;
        let gid = if is_identifier(&name) {
            match self.group_names.iter().find(|(k, _)| *k == name) {
                Some(&(_, gid)) => gid as u128,
                None => return Err(format!("unknown group name '{name}'")),
            }
        } else {
            let Some(n) = super::lenient::python_int(&name).and_then(|d| d.parse::<u128>().ok())
            else {
                return Err(format!("bad character in group name '{name}'"));
            };
            if n == 0 {
                return Err("bad group number".into());
            }
            if n >= MAXGROUPS {
                return Err(format!("invalid group reference {n}"));
            }
            self.forward_refs.push(n);
            n
        };
        if self.lookbehind_groups.is_some() {
            let known = (gid as usize) < self.group_widths.len();
            if !known || self.group_widths[gid as usize].is_none() {
                return Err("cannot refer to an open group".into());
            }
            self.check_lookbehind_group(gid as usize)?;
        }
        let yes = self.parse(verbose, nested + 1, false)?;
        let no = if self.eat('|') {
            let no = self.parse(verbose, nested + 1, false)?;
            if self.next_is('|') {
                return Err("conditional backref with more than two branches".into());
            }
            Some(no)
        } else {
            None
        };
        if !self.eat(')') {
            return Err("missing ), unterminated subpattern".into());
        }
        Ok(Node::GroupRefExists(yes, no))
    }

    /// `_parse_flags`, starting at `c`. `None` for global flags `(?aimsx)`, else
    /// whether a scoped group turns verbose on or off.
    fn flags(&mut self, c: char) -> Result<Option<(bool, bool)>, String> {
        let mut add = String::new();
        let mut c = c;
        if c != '-' {
            loop {
                if c == 'L' {
                    return Err("bad inline flags: cannot use 'L' flag with a str pattern".into());
                }
                add.push(c);
                if "au".chars().filter(|t| add.contains(*t)).count() > 1 {
                    return Err("bad inline flags: flags 'a', 'u' and 'L' are incompatible".into());
                }
                c = match self.next()? {
                    None => return Err("missing -, : or )".into()),
                    Some(Token::Char(c)) => c,
                    Some(Token::Escape(_)) => return Err("missing -, : or )".into()),
                };
                if ")-:".contains(c) {
                    break;
                }
                if !"iLmsxatu".contains(c) {
                    return Err(if c.is_alphabetic() {
                        "unknown flag".into()
                    } else {
                        "missing -, : or )".into()
                    });
                }
            }
        }
        if c == ')' {
            self.flags.verbose |= add.contains('x');
            self.flags.ascii |= add.contains('a');
            self.flags.unicode |= add.contains('u');
            return Ok(None);
        }
        if add.contains('t') {
            return Err("bad inline flags: cannot turn on global flag".into());
        }
        let mut del = String::new();
        if c == '-' {
            c = match self.next()? {
                None => return Err("missing flag".into()),
                Some(Token::Char(c)) if "iLmsxatu".contains(c) => c,
                Some(Token::Char(c)) if c.is_alphabetic() => return Err("unknown flag".into()),
                Some(_) => return Err("missing flag".into()),
            };
            loop {
                if "aLu".contains(c) {
                    return Err("bad inline flags: cannot turn off flags 'a', 'u' and 'L'".into());
                }
                del.push(c);
                c = match self.next()? {
                    None => return Err("missing :".into()),
                    Some(Token::Char(':')) => break,
                    Some(Token::Char(c)) if "iLmsxatu".contains(c) => c,
                    Some(Token::Char(c)) if c.is_alphabetic() => return Err("unknown flag".into()),
                    Some(_) => return Err("missing :".into()),
                };
            }
        }
        if del.contains('t') {
            return Err("bad inline flags: cannot turn off global flag".into());
        }
        if add.chars().any(|f| del.contains(f)) {
            return Err("bad inline flags: flag turned on and off".into());
        }
        Ok(Some((add.contains('x'), del.contains('x'))))
    }

    fn check_lookbehind_group(&self, gid: usize) -> Result<(), String> {
        if let Some(before) = self.lookbehind_groups {
            if self.group_widths.get(gid).copied().flatten().is_none() {
                return Err("cannot refer to an open group".into());
            }
            if gid >= before {
                return Err(
                    "cannot refer to group defined in the same lookbehind subpattern".into(),
                );
            }
        }
        Ok(())
    }
}

/// Whether the pattern, cut into tokens (a character, or `\` and the next one),
/// ends with a `\` that has nothing to escape.
fn dangling_backslash(chars: &[char]) -> bool {
    let mut i = 0;
    while i < chars.len() {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i > chars.len()
}

fn token_text(t: Token) -> String {
    match t {
        Token::Char(c) => c.to_string(),
        Token::Escape(c) => format!("\\{c}"),
    }
}

fn octal_value(digits: &str) -> Result<u32, String> {
    match u32::from_str_radix(digits, 8) {
        Ok(v) if v <= 0o377 => Ok(v),
        _ => Err(format!(
            "octal escape value \\{digits} outside of range 0-0o377"
        )),
    }
}

/// Python's `str.isidentifier()`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || unicode_ident::is_xid_start(c))
        && chars.all(unicode_ident::is_xid_continue)
}

fn check_group_name(name: &str) -> Result<(), String> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(format!("bad character in group name '{name}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn what_the_issue_names() {
        for bad in ["[", "a{2,1}", "\\d+(?i)x"] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check("a{2,1}").unwrap_err(),
            "min repeat greater than max repeat"
        );
        assert_eq!(
            check("\\d+(?i)x").unwrap_err(),
            "global flags not at the start of the expression"
        );
        for good in [
            "(?#This regular expression matches nothing)a^",
            "^/webgateway/(render_image|render_thumbnail)/",
            "(?i)^/webclient/",
            "(?<=ab)c(?P<n>x)(?P=n)\\1",
            "a{,3}b{}c{x",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn huge_input_is_refused_or_read_quickly_without_exhausting_the_stack() {
        let deep = format!("{}{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(check(&deep).unwrap_err().contains("nested parentheses"));
        let shallow = format!("{}a{}", "(?:".repeat(300), ")".repeat(300));
        assert_eq!(check(&shallow), Ok(()));
        let digits = format!("a{{{}}}", "1".repeat(200_000));
        assert_eq!(
            check(&digits).unwrap_err(),
            "the repetition number is too large"
        );
    }
}
