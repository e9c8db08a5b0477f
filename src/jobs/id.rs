//! `JobId`: the name of a job, and the only thing from a URL that ever becomes part of a path.
//!
//! Parsing is deliberately narrower than `uuid::Uuid::parse_str`: only the canonical lowercase
//! hyphenated form of a version-4 UUID is a job id, so every id has exactly one spelling and
//! `<data>/jobs/<id>.json` can never name anything but a job record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies one job: a random UUID v4, shown as lowercase hyphenated text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh random id.
    pub fn new() -> JobId {
        JobId(Uuid::new_v4())
    }
}

impl Default for JobId {
    fn default() -> JobId {
        JobId::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Uuid`'s Display is the lowercase hyphenated form, the same one `from_str` accepts.
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// The text was not the canonical form of a job id.
///
/// It does not carry the rejected text: that came from outside and may be anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidJobId;

impl fmt::Display for InvalidJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a job id (expected a lowercase hyphenated UUID v4)")
    }
}

impl std::error::Error for InvalidJobId {}

/// Byte offsets of the hyphens in `xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx`.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];
/// Offset of the version nibble (must be `4`).
const VERSION_AT: usize = 14;
/// Offset of the variant nibble (RFC 4122 variant: `8`, `9`, `a` or `b`).
const VARIANT_AT: usize = 19;

impl FromStr for JobId {
    type Err = InvalidJobId;

    fn from_str(s: &str) -> Result<JobId, InvalidJobId> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return Err(InvalidJobId);
        }
        let mut value: u128 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if HYPHENS.contains(&i) {
                if b != b'-' {
                    return Err(InvalidJobId);
                }
                continue;
            }
            // Lowercase only: one spelling per id, so ids compare equal as text and as paths.
            let nibble = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return Err(InvalidJobId),
            };
            value = (value << 4) | u128::from(nibble);
        }
        if bytes[VERSION_AT] != b'4' || !matches!(bytes[VARIANT_AT], b'8' | b'9' | b'a' | b'b') {
            return Err(InvalidJobId);
        }
        Ok(JobId(Uuid::from_u128(value)))
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidJobId;

    fn try_from(s: String) -> Result<JobId, InvalidJobId> {
        s.parse()
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_then_parse_round_trips() {
        for _ in 0..100 {
            let id = JobId::new();
            let text = id.to_string();
            assert_eq!(text.len(), 36, "{text}");
            assert_eq!(text, text.to_lowercase());
            assert_eq!(text.parse::<JobId>(), Ok(id), "{text}");
        }
    }

    #[test]
    fn from_str_accepts_only_canonical_v4() {
        let cases: &[(&str, bool)] = &[
            ("0f8fad5b-d9cb-469f-a165-70867728950e", true),
            ("00000000-0000-4000-8000-000000000000", true),
            ("ffffffff-ffff-4fff-bfff-ffffffffffff", true),
            ("0f8fad5b-d9cb-469f-9165-70867728950e", true),
            ("0F8FAD5B-D9CB-469F-A165-70867728950E", false), // uppercase
            ("0f8fad5b-d9cb-469F-a165-70867728950e", false), // one uppercase digit
            ("{0f8fad5b-d9cb-469f-a165-70867728950e}", false), // braces
            ("0f8fad5bd9cb469fa16570867728950e", false),     // simple form
            ("0f8fad5b-d9cb-469f-a165-70867728950e0", false), // 37 chars
            ("0f8fad5b-d9cb-469f-a165-70867728950", false),  // 35 chars
            ("0f8fad5b-d9cb-169f-a165-70867728950e", false), // version 1
            ("0f8fad5b-d9cb-769f-a165-70867728950e", false), // version 7
            ("0f8fad5b-d9cb-469f-c165-70867728950e", false), // Microsoft variant
            ("0f8fad5b-d9cb-469f-7165-70867728950e", false), // NCS variant
            ("0f8fad5b_d9cb-469f-a165-70867728950e", false), // wrong separator
            ("0f8fad5b-d9cb-469f-a165-70867728950g", false), // not hex
            ("urn:uuid:0f8fad5b-d9cb-469f-a165-7086", false),
            ("../../etc/passwd", false),
            ("../../../../../../../../../etc/passwd", false), // 36 chars of path
            ("0f8fad5b-d9cb-469f-a165-7086772895/.", false),
            ("0f8fad5b-d9cb-469f-a165-70867728950é", false), // 37 bytes, non-ASCII
            ("", false),
        ];
        for &(text, ok) in cases {
            let parsed = text.parse::<JobId>();
            assert_eq!(parsed.is_ok(), ok, "{text:?} parsed as {parsed:?}");
            if let Ok(id) = parsed {
                assert_eq!(
                    id.to_string(),
                    text,
                    "a parsed id must print as it was written"
                );
            }
        }
    }

    #[test]
    fn serde_uses_the_string_form_and_validates() {
        let id: JobId = "0f8fad5b-d9cb-469f-a165-70867728950e"
            .parse()
            .expect("valid id");
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, "\"0f8fad5b-d9cb-469f-a165-70867728950e\"");
        assert_eq!(
            serde_json::from_str::<JobId>(&json).expect("deserialize"),
            id
        );
        for bad in [
            "\"../x\"",
            "\"0F8FAD5B-D9CB-469F-A165-70867728950E\"",
            "42",
            "null",
        ] {
            assert!(
                serde_json::from_str::<JobId>(bad).is_err(),
                "{bad} was accepted"
            );
        }
    }
}
