//! One pass over a line's JSON object: where each wanted column's value sits, every other
//! value stepped over with its syntax checked.

use std::borrow::Cow;
use std::collections::HashMap;

/// Objects nested deeper than this inside a line are refused.
const MAX_DEPTH: usize = 64;

/// A key the decoder knows: the lake's fields in their written order, then any other
/// column of the schema.
#[derive(Debug)]
pub(super) struct Key {
    /// The name between quotes, as the transform writes it.
    quoted: Box<[u8]>,
    /// Its first and last eight bytes, for a quick comparison.
    head: u64,
    tail: u64,
    /// The column its value fills, if wanted.
    column: Option<usize>,
}

impl Key {
    pub(super) fn new(name: &str, column: Option<usize>) -> Self {
        let quoted: Box<[u8]> = format!("\"{name}\"").into_bytes().into();
        let word = |at: usize| {
            quoted.get(at..at + 8).map_or(0, |w| {
                u64::from_le_bytes(w.try_into().expect("eight bytes"))
            })
        };
        let (head, tail) = (word(0), word(quoted.len().saturating_sub(8)));
        Self {
            head,
            tail,
            quoted,
            column,
        }
    }

    pub(super) fn name(&self) -> &[u8] {
        &self.quoted[1..self.quoted.len() - 1]
    }

    /// Whether `text` starts with this key, quotes included. Keys of 8 to 16 bytes
    /// compare as two (overlapping) words: no call, no loop.
    fn is_at(&self, text: &[u8]) -> bool {
        let n = self.quoted.len();
        match text.get(..n) {
            Some(start) if (8..=16).contains(&n) => {
                let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("eight bytes"));
                word(&start[..8]) == self.head && word(&start[n - 8..]) == self.tail
            }
            Some(start) => start == &*self.quoted,
            None => false,
        }
    }
}

/// The keys a decoder knows, in the order lines are written, with an index for keys out
/// of that order: a wide dataset's key costs one lookup, not a scan of its fields.
#[derive(Debug)]
pub(super) struct Keys {
    list: Box<[Key]>,
    index: HashMap<Box<[u8]>, usize>,
}

impl Keys {
    pub(super) fn new(list: Vec<Key>) -> Self {
        let index = list
            .iter()
            .enumerate()
            .map(|(i, k)| (Box::<[u8]>::from(k.name()), i))
            .collect();
        Self {
            list: list.into(),
            index,
        }
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// Where a wanted field's value sits in the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Token {
    Absent,
    Null,
    /// Between the quotes; `escaped` when it holds a backslash.
    String {
        start: usize,
        end: usize,
        escaped: bool,
    },
    Number {
        start: usize,
        end: usize,
    },
    /// `true`, `false`, an object or an array.
    Other {
        start: usize,
        end: usize,
    },
}

/// Walks one line's object, recording where the wanted columns' values are.
pub(super) fn scan_object(line: &[u8], keys: &Keys, tokens: &mut [Token]) -> Result<(), String> {
    let list = &keys.list;
    let mut p = Cursor { line, pos: 0 };
    p.skip_ws();
    if p.peek() != Some(b'{') {
        return Err("not a JSON object".into());
    }
    p.pos += 1;
    p.skip_ws();
    let mut next = 0;
    if p.peek() == Some(b'}') {
        p.pos += 1;
    } else {
        loop {
            p.skip_ws();
            let key = match list.get(next) {
                // The key the transform writes next, byte for byte.
                Some(key) if key.is_at(&line[p.pos..]) => {
                    p.pos += key.quoted.len();
                    Some(next)
                }
                _ => {
                    let Token::String {
                        start,
                        end,
                        escaped,
                    } = p.string()?
                    else {
                        unreachable!("string() returns strings")
                    };
                    let name = if escaped {
                        Cow::Owned(unescape(&line[start - 1..=end])?.into_owned().into_bytes())
                    } else {
                        Cow::Borrowed(&line[start..end])
                    };
                    keys.find(name.as_ref())
                }
            };
            p.skip_ws();
            p.expect(b':')?;
            p.skip_ws();
            match key {
                Some(i) => {
                    next = i + 1;
                    match list[i].column {
                        Some(column) => tokens[column] = p.value()?,
                        None => p.skip_value(0)?,
                    }
                }
                None => p.skip_value(0)?,
            }
            p.skip_ws();
            match p.bump() {
                Some(b',') => continue,
                Some(b'}') => break,
                Some(c) => {
                    return Err(format!(
                        "expected `,` or `}}` at column {}, found `{}`",
                        p.pos, c as char
                    ));
                }
                None => return Err("the object is not closed".into()),
            }
        }
    }
    p.skip_ws();
    if p.pos < line.len() {
        return Err(format!("text after the object at column {}", p.pos + 1));
    }
    Ok(())
}

/// Non-zero when a byte of `word` equals `byte` (the lowest set bit marks the first).
const fn find_byte(word: u64, byte: u8) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let x = word ^ (ONES * byte as u64);
    x.wrapping_sub(ONES) & !x & HIGHS
}

struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.bump() {
            Some(found) if found == c => Ok(()),
            Some(found) => Err(format!(
                "expected `{}` at column {}, found `{}`",
                c as char, self.pos, found as char
            )),
            None => Err(format!(
                "expected `{}`, found the end of the line",
                c as char
            )),
        }
    }

    /// A string starting at the cursor (which must be on its opening quote).
    fn string(&mut self) -> Result<Token, String> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Eight bytes at a time up to the next quote or backslash.
            while let Some(chunk) = self.line.get(self.pos..self.pos + 8) {
                let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                let found = find_byte(word, b'"') | find_byte(word, b'\\');
                if found != 0 {
                    self.pos += found.trailing_zeros() as usize / 8;
                    break;
                }
                self.pos += 8;
            }
            match self.peek() {
                Some(b'"') => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(Token::String {
                        start,
                        end,
                        escaped,
                    });
                }
                // A backslash: the character after it is escaped.
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
                None => return Err("a string is not closed".into()),
            }
        }
    }

    /// A JSON number's text (validated against JSON's grammar).
    fn number(&mut self) -> Result<Token, String> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int = digits(self);
        let leading_zero = int > 1 && self.line[self.pos - int] == b'0';
        let mut ok = int > 0 && !leading_zero;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            ok &= digits(self) > 0;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            ok &= digits(self) > 0;
        }
        if ok {
            Ok(Token::Number {
                start,
                end: self.pos,
            })
        } else {
            Err(format!(
                "invalid number `{}`",
                String::from_utf8_lossy(&self.line[start..self.pos.max(start + 1)])
            ))
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.line[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(format!("unexpected text at column {}", self.pos + 1))
        }
    }

    /// The value at the cursor, as a token.
    fn value(&mut self) -> Result<Token, String> {
        let start = self.pos;
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'n') => self.literal(b"null").map(|()| Token::Null),
            Some(b'{' | b'[' | b't' | b'f') => {
                self.skip_value(0)?;
                Ok(Token::Other {
                    start,
                    end: self.pos,
                })
            }
            Some(c) => Err(format!(
                "unexpected `{}` at column {}",
                c as char,
                self.pos + 1
            )),
            None => Err("a value is missing at the end of the line".into()),
        }
    }

    /// Steps over the value at the cursor, checking its syntax.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deep".into());
        }
        match self.peek() {
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if open == b'{' {
                        self.string()?;
                        self.skip_ws();
                        self.expect(b':')?;
                        self.skip_ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.bump() {
                        Some(b',') => {}
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(format!("expected `,` or `{}`", close as char)),
                    }
                }
            }
            _ => self.value().map(drop),
        }
    }
}

/// A JSON string (with its quotes) that holds escapes, decoded.
pub(super) fn unescape(quoted: &[u8]) -> Result<Cow<'static, str>, String> {
    serde_json::from_slice::<String>(quoted)
        .map(Cow::Owned)
        .map_err(|e| format!("invalid string: {e}"))
}
