//! Where a JSON text breaks, named as Python's `json` module names it: the character offset
//! and its words ("Expecting ',' delimiter"). FastAPI shows its clients exactly that, so the
//! Agentex routes must too; the other dialects say it in their messages.
//!
//! The scanner follows CPython's (`Modules/_json.c`) step by step, except that it is strict
//! where keygate's JSON reader is: `NaN` and `Infinity` are not values.

/// Deeper than this, the text is refused as too deeply nested before the scanner looks (the
/// JSON reader stops at 128 levels too), so the scanner's recursion stays bounded.
const MAX_DEPTH: usize = 128;

/// Where `text`, which the JSON reader refused, breaks, as Python reports it; `None` where
/// Python's scanner would accept it (a lone surrogate escape, nesting deeper than
/// [`MAX_DEPTH`]).
pub fn locate(text: &str) -> Option<(usize, &'static str)> {
    let scanner = Scanner {
        chars: text.chars().collect(),
    };
    let start = scanner.skip_space(0);
    match scanner.value(start, 0) {
        Err(Broken::At(at, reason)) => Some((at, reason)),
        Err(Broken::TooDeep) => None,
        Ok(end) => {
            let end = scanner.skip_space(end);
            (end != scanner.chars.len()).then_some((end, "Extra data"))
        }
    }
}

enum Broken {
    At(usize, &'static str),
    TooDeep,
}

type Scan = Result<usize, Broken>;

fn broken(at: usize, reason: &'static str) -> Scan {
    Err(Broken::At(at, reason))
}

struct Scanner {
    chars: Vec<char>,
}

impl Scanner {
    fn at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    fn skip_space(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    fn is_digit(&self, i: usize) -> bool {
        self.at(i).is_some_and(|c| c.is_ascii_digit())
    }

    /// The end of the value starting at `i`.
    fn value(&self, i: usize, depth: usize) -> Scan {
        if depth > MAX_DEPTH {
            return Err(Broken::TooDeep);
        }
        let literal = |word: &str| {
            word.chars()
                .enumerate()
                .all(|(k, c)| self.at(i + k) == Some(c))
        };
        match self.at(i) {
            Some('"') => self.string(i + 1),
            Some('{') => self.object(i + 1, depth + 1),
            Some('[') => self.array(i + 1, depth + 1),
            Some('n') if literal("null") => Ok(i + 4),
            Some('t') if literal("true") => Ok(i + 4),
            Some('f') if literal("false") => Ok(i + 5),
            Some('-' | '0'..='9') => self.number(i),
            _ => broken(i, "Expecting value"),
        }
    }

    /// A number: an integer part, then a fraction and an exponent only where digits follow.
    fn number(&self, i: usize) -> Scan {
        let mut j = i;
        if self.at(j) == Some('-') {
            j += 1;
        }
        match self.at(j) {
            Some('1'..='9') => {
                while self.is_digit(j) {
                    j += 1;
                }
            }
            Some('0') => j += 1,
            _ => return broken(i, "Expecting value"),
        }
        if self.at(j) == Some('.') && self.is_digit(j + 1) {
            j += 1;
            while self.is_digit(j) {
                j += 1;
            }
        }
        if matches!(self.at(j), Some('e' | 'E')) {
            let mut k = j + 1;
            if matches!(self.at(k), Some('+' | '-')) {
                k += 1;
            }
            if self.is_digit(k) {
                while self.is_digit(k) {
                    k += 1;
                }
                j = k;
            }
        }
        Ok(j)
    }

    /// A string whose opening quote is just before `i`.
    fn string(&self, i: usize) -> Scan {
        let begin = i - 1;
        let unterminated = || broken(begin, "Unterminated string starting at");
        let mut j = i;
        loop {
            match self.at(j) {
                None => return unterminated(),
                Some('"') => return Ok(j + 1),
                Some('\\') => match self.at(j + 1) {
                    None => return unterminated(),
                    Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => j += 2,
                    Some('u') => {
                        // Four hex digits, and text after them (at least the closing quote).
                        let digits = j + 2..j + 6;
                        if digits.end >= self.chars.len()
                            || !digits.clone().all(|k| self.chars[k].is_ascii_hexdigit())
                        {
                            return broken(j + 1, "Invalid \\uXXXX escape");
                        }
                        j = digits.end;
                    }
                    Some(_) => return broken(j, "Invalid \\escape"),
                },
                Some(c) if (c as u32) < 0x20 => return broken(j, "Invalid control character at"),
                Some(_) => j += 1,
            }
        }
    }

    /// An object whose `{` is just before `i`.
    fn object(&self, i: usize, depth: usize) -> Scan {
        let mut j = self.skip_space(i);
        if self.at(j) == Some('}') {
            return Ok(j + 1);
        }
        loop {
            if self.at(j) != Some('"') {
                return broken(j, "Expecting property name enclosed in double quotes");
            }
            j = self.skip_space(self.string(j + 1)?);
            if self.at(j) != Some(':') {
                return broken(j, "Expecting ':' delimiter");
            }
            j = self.skip_space(self.value(self.skip_space(j + 1), depth)?);
            match self.at(j) {
                Some('}') => return Ok(j + 1),
                Some(',') => j = self.skip_space(j + 1),
                _ => return broken(j, "Expecting ',' delimiter"),
            }
        }
    }

    /// An array whose `[` is just before `i`.
    fn array(&self, i: usize, depth: usize) -> Scan {
        let mut j = self.skip_space(i);
        if self.at(j) == Some(']') {
            return Ok(j + 1);
        }
        loop {
            j = self.skip_space(self.value(j, depth)?);
            match self.at(j) {
                Some(']') => return Ok(j + 1),
                Some(',') => j = self.skip_space(j + 1),
                _ => return broken(j, "Expecting ',' delimiter"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::locate;

    /// Each case as CPython 3.11's `json.loads` reports it (`e.pos`, `e.msg`).
    #[test]
    fn breaks_are_where_python_says() {
        let cases = [
            ("", 0, "Expecting value"),
            ("   ", 3, "Expecting value"),
            (r#"{"name": }"#, 9, "Expecting value"),
            (
                r#"{"name": "a",}"#,
                13,
                "Expecting property name enclosed in double quotes",
            ),
            (r#"{"name" "a"}"#, 8, "Expecting ':' delimiter"),
            (r#"{"name": "a" "b": 1}"#, 13, "Expecting ',' delimiter"),
            (
                r#"{name: 1}"#,
                1,
                "Expecting property name enclosed in double quotes",
            ),
            (r#"{"name": "a"} x"#, 14, "Extra data"),
            (r#"{"name": "abc"#, 9, "Unterminated string starting at"),
            ("[1, 2", 5, "Expecting ',' delimiter"),
            ("[1,]", 3, "Expecting value"),
            ("nul", 0, "Expecting value"),
            (r#"{"a": -}"#, 6, "Expecting value"),
            (r#"{"a": 01}"#, 7, "Expecting ',' delimiter"),
            ("{\"a\": \"x\ty\"}", 8, "Invalid control character at"),
            (r#"{"a": "\q"}"#, 7, "Invalid \\escape"),
            (r#"{"a": "\u12"}"#, 8, "Invalid \\uXXXX escape"),
            (
                r#"{"ä": 1,}"#,
                8,
                "Expecting property name enclosed in double quotes",
            ),
        ];
        for (text, at, reason) in cases {
            assert_eq!(locate(text), Some((at, reason)), "{text}");
        }
        // Where keygate is stricter than Python, which reads `NaN` as a float.
        assert_eq!(locate(r#"{"a": NaN}"#), Some((6, "Expecting value")));
    }

    #[test]
    fn deep_nesting_is_left_to_the_json_reader() {
        assert_eq!(locate(&"[".repeat(10_000)), None);
    }
}
