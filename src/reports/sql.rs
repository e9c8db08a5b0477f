//! `:name` placeholders in a report's SQL: finding them (for the definition checks) and
//! replacing them with each driver's own marker (`?`, `$1`, …) while keeping the names in
//! binding order.
//!
//! Owns only the lexical scan of SQL text: string literals, quoted identifiers, comments,
//! PostgreSQL `::` casts and dollar-quoted strings are skipped so that a `:x` inside them is
//! never taken for a placeholder. Knows nothing of drivers, definitions or values; depends on
//! `std` only.

use std::fmt;

/// One `:name` placeholder in a query: its name and byte offset of the ':'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholder {
    /// The name after the colon, `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
    /// Byte offset of the `:` in the query text.
    pub offset: usize,
}

/// Why a query could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlError {
    /// A `'…'` string, a `"…"` or `` `…` `` quoted identifier, or a `$tag$…$tag$` string that
    /// is never closed; `offset` is the byte offset of its opening quote.
    UnterminatedString { offset: usize },
    /// A `/* … */` comment that is never closed; `offset` is the byte offset of its `/*`.
    UnterminatedComment { offset: usize },
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlError::UnterminatedString { offset } => write!(
                f,
                "a quoted string or name starting at byte {offset} is never closed"
            ),
            SqlError::UnterminatedComment { offset } => write!(
                f,
                "a /* comment starting at byte {offset} is never closed with */"
            ),
        }
    }
}

impl std::error::Error for SqlError {}

/// Every `:name` placeholder (name = `[A-Za-z_][A-Za-z0-9_]*`), in order, skipping string
/// literals `'...'` (with `''` escapes; backslash escapes are NOT special), quoted identifiers
/// `"..."` and `` `...` ``, `--` line comments, `/* */` block comments (not nested), PostgreSQL
/// `::` casts (`x::date` is not a placeholder) and dollar-quoted strings `$$...$$` /
/// `$tag$...$tag$`.
///
/// # Errors
///
/// [`SqlError`] when a string, quoted identifier or block comment is never closed.
pub fn placeholders(query: &str) -> Result<Vec<Placeholder>, SqlError> {
    placeholders_in(query, Dialect::Standard)
}

/// How string literals are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQL's rule (SQLite, PostgreSQL): only a doubled quote escapes a quote.
    Standard,
    /// MySQL/MariaDB's default mode: a backslash also escapes the next character, so
    /// `'it\'s :x'` is one string.
    Mysql,
}

/// [`placeholders`] for a dialect.
///
/// # Errors
///
/// As [`placeholders`].
pub fn placeholders_in(query: &str, dialect: Dialect) -> Result<Vec<Placeholder>, SqlError> {
    let bytes = query.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        i = match bytes[i] {
            quote @ (b'\'' | b'"') => skip_quoted(bytes, i, quote, dialect == Dialect::Mysql)?,
            b'`' => skip_quoted(bytes, i, b'`', false)?,
            b'-' if bytes.get(i + 1) == Some(&b'-') => skip_line_comment(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => skip_block_comment(bytes, i)?,
            b'$' if !(i > 0 && is_ident_byte(bytes[i - 1])) => skip_dollar_quoted(query, i)?,
            b':' if bytes.get(i + 1) == Some(&b':') => i + 2,
            b':' if bytes.get(i + 1).is_some_and(|b| is_name_start(*b)) => {
                let end = name_end(bytes, i + 1);
                found.push(Placeholder {
                    name: query[i + 1..end].to_owned(),
                    offset: i,
                });
                end
            }
            _ => i + 1,
        };
    }
    Ok(found)
}

/// The query with every placeholder replaced by `replace(position, name)` (position is
/// 1-based, counted per occurrence, so a name used twice gets two positions), plus the names
/// in position order.
///
/// # Errors
///
/// [`SqlError`] as for [`placeholders`].
pub fn translate(
    query: &str,
    replace: &mut dyn FnMut(usize, &str) -> String,
) -> Result<(String, Vec<String>), SqlError> {
    translate_in(query, Dialect::Standard, replace)
}

/// [`translate`] for a dialect.
///
/// # Errors
///
/// As [`placeholders`].
pub fn translate_in(
    query: &str,
    dialect: Dialect,
    replace: &mut dyn FnMut(usize, &str) -> String,
) -> Result<(String, Vec<String>), SqlError> {
    let found = placeholders_in(query, dialect)?;
    let mut out = String::with_capacity(query.len());
    let mut names = Vec::with_capacity(found.len());
    let mut copied = 0;
    for (index, placeholder) in found.into_iter().enumerate() {
        out.push_str(&query[copied..placeholder.offset]);
        out.push_str(&replace(index + 1, &placeholder.name));
        copied = placeholder.offset + 1 + placeholder.name.len();
        names.push(placeholder.name);
    }
    out.push_str(&query[copied..]);
    Ok((out, names))
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// The end of `[A-Za-z0-9_]*` starting at `start`.
fn name_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while bytes
        .get(end)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        end += 1;
    }
    end
}

/// Past the closing `quote` of a quoted run starting at `start`; a doubled quote is an escape,
/// and so is a backslash when `backslash` is set.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> Result<usize, SqlError> {
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None => return Err(SqlError::UnterminatedString { offset: start }),
            Some(b'\\') if backslash => i += 2,
            Some(b) if *b == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            }
            Some(_) => i += 1,
        }
    }
}

fn skip_line_comment(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| start + p + 1)
}

fn skip_block_comment(bytes: &[u8], start: usize) -> Result<usize, SqlError> {
    bytes[start + 2..]
        .windows(2)
        .position(|w| w == b"*/")
        .map(|p| start + 2 + p + 2)
        .ok_or(SqlError::UnterminatedComment { offset: start })
}

/// At a `$` not inside an identifier: past a `$tag$…$tag$` string if one starts here, else
/// just past the `$` (a `$1` parameter or a lone dollar).
fn skip_dollar_quoted(query: &str, start: usize) -> Result<usize, SqlError> {
    let bytes = query.as_bytes();
    let tag_end = if bytes.get(start + 1).is_some_and(|b| is_name_start(*b)) {
        name_end(bytes, start + 1)
    } else {
        start + 1
    };
    if bytes.get(tag_end) != Some(&b'$') {
        return Ok(start + 1);
    }
    let delimiter = &query[start..=tag_end];
    let body = tag_end + 1;
    query[body..]
        .find(delimiter)
        .map(|p| body + p + delimiter.len())
        .ok_or(SqlError::UnterminatedString { offset: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(query: &str) -> Vec<(String, usize)> {
        placeholders(query)
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.offset))
            .collect()
    }

    #[test]
    fn mysql_strings_take_backslash_escapes() {
        let q = "where x = 'it\\'s :x' and y = :y";
        let mysql: Vec<String> = placeholders_in(q, Dialect::Mysql)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(mysql, vec!["y".to_string()]);
        // The same text is an unterminated string in standard SQL, and the other way round.
        assert!(placeholders(q).is_err());
        let q = "where x = 'a\\' and y = :y";
        assert_eq!(placeholders(q).map(|p| p.len()), Ok(1));
        assert!(placeholders_in(q, Dialect::Mysql).is_err());
    }

    #[test]
    fn finds_placeholders_outside_strings_comments_and_casts() {
        let cases: &[(&str, &[(&str, usize)])] = &[
            ("select 1", &[]),
            ("where a = :a", &[("a", 10)]),
            ("where a = :a_1 and b = :B", &[("a_1", 10), ("B", 23)]),
            ("where x = ':x'", &[]),
            ("where x = 'it''s :x' and y = :y", &[("y", 29)]),
            ("where x = 'back\\' and y = :y", &[("y", 26)]),
            ("where \"col:x\" = :v", &[("v", 16)]),
            ("where `col:x` = :v", &[("v", 16)]),
            ("-- :nope\nwhere a = :a", &[("a", 19)]),
            ("where a = :a -- :nope", &[("a", 10)]),
            ("/* :nope */ where a = :a", &[("a", 22)]),
            ("/* multi\n line :nope */:a", &[("a", 23)]),
            ("select d::date, :d::date", &[("d", 16)]),
            ("select $$ :nope $$, :a", &[("a", 20)]),
            ("select $fn$ :nope $ $fn$ :a", &[("a", 25)]),
            ("select $1, :a", &[("a", 11)]),
            ("select a$b, :a", &[("a", 12)]),
            ("select :a, :a", &[("a", 7), ("a", 11)]),
            ("where a = :end", &[("end", 10)]),
            ("where a = :", &[]),
            ("where a = :1", &[]),
            ("set @v := 1", &[]),
            ("where s = 'héllo :x ✓' and t = :t", &[("t", 34)]),
            ("where s = :ünicode", &[]),
            ("where \"é\" = :a", &[("a", 13)]),
        ];
        for (query, expected) in cases {
            let expected: Vec<(String, usize)> =
                expected.iter().map(|(n, o)| (n.to_string(), *o)).collect();
            assert_eq!(names(query), expected, "query: {query}");
        }
    }

    #[test]
    fn reports_unterminated_strings_and_comments() {
        let cases = [
            (
                "where x = 'abc",
                SqlError::UnterminatedString { offset: 10 },
            ),
            (
                "where x = 'it''",
                SqlError::UnterminatedString { offset: 10 },
            ),
            ("where \"x = 1", SqlError::UnterminatedString { offset: 6 }),
            ("where `x = 1", SqlError::UnterminatedString { offset: 6 }),
            ("select $$ abc", SqlError::UnterminatedString { offset: 7 }),
            (
                "select $a$ abc $b$",
                SqlError::UnterminatedString { offset: 7 },
            ),
            ("select /* abc", SqlError::UnterminatedComment { offset: 7 }),
            ("select /*/", SqlError::UnterminatedComment { offset: 7 }),
        ];
        for (query, expected) in cases {
            assert_eq!(placeholders(query), Err(expected.clone()), "query: {query}");
            assert!(translate(query, &mut |_, _| String::new()).is_err());
        }
    }

    #[test]
    fn translate_numbers_each_occurrence_and_keeps_the_rest() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("select 1", "select 1", &[]),
            (
                "where a >= :from and a < :to and b = ':from'",
                "where a >= $1 and a < $2 and b = ':from'",
                &["from", "to"],
            ),
            (
                "where a = :x or b = :x",
                "where a = $1 or b = $2",
                &["x", "x"],
            ),
            ("where a::date = :day", "where a::date = $1", &["day"]),
            (":a", "$1", &["a"]),
            (
                "where s = 'é' and t = :t",
                "where s = 'é' and t = $1",
                &["t"],
            ),
        ];
        for (query, expected, expected_names) in cases {
            let (text, names) = translate(query, &mut |n, _| format!("${n}")).unwrap();
            assert_eq!(text, *expected, "query: {query}");
            assert_eq!(names, *expected_names, "query: {query}");
        }
    }

    #[test]
    fn translate_passes_the_name_to_the_replacement() {
        let (text, names) =
            translate("a = :one and b = :two", &mut |_, name| format!("@{name}")).unwrap();
        assert_eq!(text, "a = @one and b = @two");
        assert_eq!(names, ["one", "two"]);
    }

    #[test]
    fn unterminated_error_reads_as_a_sentence() {
        let text = SqlError::UnterminatedComment { offset: 3 }.to_string();
        assert!(text.contains("never closed"), "{text}");
    }
}
