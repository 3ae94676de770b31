//! Wildcard matching (`*` any run, `?` one character) and the segment-wise ARN matching of
//! `ArnLike`, plus policy-variable substitution.

use crate::context::RequestContext;

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also empty) and
/// `?` exactly one. Iterative with one backtrack point, so it is linear in practice and never
/// recursive on hostile input.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    // Fast paths for what policies mostly hold: `*`, and names without wildcards. They run on
    // every authorized request.
    if pattern == "*" {
        return true;
    }
    if !pattern.contains(['*', '?', LITERAL_STAR, LITERAL_QUESTION]) {
        return if ignore_case {
            pattern.eq_ignore_ascii_case(text)
                || (!pattern.is_ascii() && pattern.to_lowercase() == text.to_lowercase())
        } else {
            pattern == text
        };
    }
    if pattern.is_ascii() && text.is_ascii() {
        let same = |a: u8, b: u8| {
            if ignore_case {
                a.eq_ignore_ascii_case(&b)
            } else {
                a == b
            }
        };
        return glob(pattern.as_bytes(), text.as_bytes(), same);
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let same = |a: char, b: char| {
        if ignore_case {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    glob(&pattern, &text, same)
}

/// What a pattern element means: `*`, `?`, or a character to compare.
trait PatternUnit: Copy {
    fn is_star(self) -> bool;
    fn is_question(self) -> bool;
    fn literal(self) -> Self;
}

impl PatternUnit for u8 {
    fn is_star(self) -> bool {
        self == b'*'
    }
    fn is_question(self) -> bool {
        self == b'?'
    }
    fn literal(self) -> Self {
        self
    }
}

impl PatternUnit for char {
    fn is_star(self) -> bool {
        self == '*'
    }
    fn is_question(self) -> bool {
        self == '?'
    }
    fn literal(self) -> Self {
        unescape(self)
    }
}

/// Iterative matching with one backtrack point: linear in practice, never recursive.
fn glob<T: PatternUnit>(pattern: &[T], text: &[T], same: impl Fn(T, T) -> bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p].is_star() {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len()
            && (pattern[p].is_question() || same(pattern[p].literal(), text[t]))
        {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| c.is_star())
}

/// Characters a policy variable produced stand for themselves, never for a wildcard: they are
/// carried through the pattern as these private-use characters.
const LITERAL_STAR: char = '\u{E000}';
const LITERAL_QUESTION: char = '\u{E001}';

fn unescape(c: char) -> char {
    match c {
        LITERAL_STAR => '*',
        LITERAL_QUESTION => '?',
        other => other,
    }
}

fn push_literal(out: &mut String, value: &str) {
    out.extend(value.chars().map(|c| match c {
        '*' => LITERAL_STAR,
        '?' => LITERAL_QUESTION,
        other => other,
    }));
}

/// A substituted value read as plain text (for the `...Equals` operators).
pub fn literal_text(value: &str) -> String {
    value.chars().map(unescape).collect()
}

/// `ArnLike`/`ArnEquals`: the six colon-separated parts are compared one by one (the last part,
/// the resource, may itself contain colons), each with wildcards. A value that is not an ARN
/// matches nothing.
pub fn arn_match(pattern: &str, arn: &str) -> bool {
    let (Some(pattern_parts), Some(arn_parts)) = (arn_parts(pattern), arn_parts(arn)) else {
        return false;
    };
    pattern_parts
        .iter()
        .zip(arn_parts.iter())
        .all(|(p, a)| wildcard_match(p, a, false))
}

fn arn_parts(value: &str) -> Option<[&str; 6]> {
    arn_fields(value).filter(|out| out[0] == "arn" || out[0].contains('*') || out[0].contains('?'))
}

/// The six `:`-separated fields of an ARN, `arn:partition:service:region:account:resource`
/// (the resource keeps any further `:`); `None` when there are fewer. The first field is not
/// checked: callers match it.
pub fn arn_fields(value: &str) -> Option<[&str; 6]> {
    let mut parts = value.splitn(6, ':');
    Some([
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ])
}

/// Replaces `${key}` (and `${key, 'default'}`) with the request's value of that condition key,
/// and the escapes `${*}`, `${?}`, `${$}` with the literal character. `None` when a variable has
/// no single value and no default: AWS then treats the element as not matching. What a
/// variable produces is literal text, even a `*`.
pub fn substitute_variables<'a>(
    value: &'a str,
    request: &RequestContext,
) -> Option<std::borrow::Cow<'a, str>> {
    if !value.contains("${") {
        return Some(std::borrow::Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Some(std::borrow::Cow::Owned(out));
        };
        let inner = after[..end].trim();
        match inner {
            "*" | "?" | "$" => push_literal(&mut out, inner),
            _ => {
                let (key, default) = match inner.split_once(',') {
                    Some((key, default)) => {
                        let default = default.trim();
                        let unquoted = default
                            .strip_prefix('\'')
                            .and_then(|d| d.strip_suffix('\''))
                            .unwrap_or(default);
                        (key.trim(), Some(unquoted))
                    }
                    None => (inner, None),
                };
                match (request.single_value(key), default) {
                    (Some(found), _) => push_literal(&mut out, found),
                    (None, Some(default)) => push_literal(&mut out, default),
                    (None, None) => return None,
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(std::borrow::Cow::Owned(out))
}
