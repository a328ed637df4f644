//! serde_json's errors in an operator's words.
//!
//! Why: a user who hand-edits a `--schedule` file or a `--policy` object
//! reads serde's vocabulary (`a sequence`, `u64`, `struct KindSpec`,
//! `EOF while parsing a list`) as noise. [`explain`] keeps serde's facts
//! (which field, which value, where) and says them the way JSON's own
//! terms do: list, object, whole number, text. The place stays exact: the
//! line and column serde reports (1-based, as editors count them).

/// Where a JSON error is, and what it is in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonProblem {
    /// 1-based line of the error (0 when serde gives none).
    pub line: usize,
    /// 1-based column of the error (0 when serde gives none).
    pub column: usize,
    /// What is wrong, without serde's type vocabulary.
    pub what: String,
}

impl std::fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            f.write_str(&self.what)
        } else {
            write!(f, "line {}, column {}: {}", self.line, self.column, self.what)
        }
    }
}

/// Say a serde_json error in plain words (see the module doc).
pub fn explain(e: &serde_json::Error) -> JsonProblem {
    let full = e.to_string();
    // serde_json appends " at line L column C" to every positioned error.
    let body = match full.rfind(" at line ") {
        Some(i) if e.line() > 0 => &full[..i],
        _ => full.as_str(),
    };
    let what = match e.classify() {
        serde_json::error::Category::Eof => {
            let inside = body.strip_prefix("EOF while parsing ").unwrap_or("a value");
            format!("the text ends inside {} (is the file cut short?)", words(inside))
        }
        serde_json::error::Category::Syntax => syntax(body),
        serde_json::error::Category::Data => data(body),
        serde_json::error::Category::Io => body.to_string(),
    };
    JsonProblem { line: e.line(), column: e.column(), what }
}

/// Syntax errors: serde_json's texts are mostly plain already; name the
/// usual mistakes.
fn syntax(body: &str) -> String {
    match body {
        "expected value" => {
            "expected a value here: a number, \"text\", true, false, null, a [list] or an {object}"
                .into()
        }
        "trailing comma" => "a comma before a closing bracket (JSON allows none)".into(),
        "trailing characters" => "more text after the end of the JSON value".into(),
        "key must be a string" => "an object's key must be \"quoted text\"".into(),
        other => words(other),
    }
}

/// Data errors: serde's de::Error texts, said in JSON's terms.
fn data(body: &str) -> String {
    if let Some(rest) = body.strip_prefix("missing field ") {
        return format!("the required field {rest} is missing");
    }
    if let Some(rest) = body.strip_prefix("duplicate field ") {
        return format!("the field {rest} is given twice");
    }
    if let Some(rest) = body.strip_prefix("unknown field ") {
        return unknown("field", rest);
    }
    if let Some(rest) = body.strip_prefix("unknown variant ") {
        return unknown("name", rest);
    }
    if let Some(rest) = body.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("found {} where {} was expected", words(found), words(expected));
        }
    }
    if let Some(rest) = body.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("{} is not allowed here: expected {}", words(found), words(expected));
        }
    }
    if let Some(rest) = body.strip_prefix("invalid length ") {
        if let Some((n, expected)) = rest.split_once(", expected ") {
            return format!("{n} items where {} was expected", words(expected));
        }
    }
    words(body)
}

/// `unknown field `x`, expected one of `a`, `b`` → the name and the
/// allowed ones as a plain list.
fn unknown(what: &str, rest: &str) -> String {
    let (name, allowed) = match rest.split_once(", expected ") {
        Some((name, allowed)) => (name, allowed),
        None => (rest, ""),
    };
    let allowed = allowed
        .trim_start_matches("one of ")
        .replace('`', "")
        .replace("there are no fields", "none");
    if allowed.is_empty() {
        format!("unknown {what} {name}")
    } else {
        format!("unknown {what} {name} (allowed: {allowed})")
    }
}

/// serde's type vocabulary → JSON's.
fn words(text: &str) -> String {
    const TABLE: &[(&str, &str)] = &[
        ("a sequence", "a list"),
        ("sequence", "list"),
        ("a map", "an object"),
        ("map", "object"),
        ("a string", "\"text\""),
        ("a boolean", "true or false"),
        ("unit value", "null"),
        ("a value", "a value"),
        ("floating point", "the number"),
        ("integer", "the number"),
        ("string", "the text"),
        ("boolean", ""),
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number, 0 or more"),
        ("usize", "a whole number, 0 or more"),
        ("i32", "a whole number"),
        ("i64", "a whole number"),
        ("f32", "a number"),
        ("f64", "a number"),
    ];
    let mut out = Vec::new();
    for token in split_keeping_quoted(text) {
        if token.starts_with('`') || token.starts_with('"') {
            out.push(token.to_string());
            continue;
        }
        let mut t = token.to_string();
        if let Some(rest) = t.strip_prefix("struct ") {
            // `struct Schedule with 2 elements`: the element count is
            // serde's list form of a struct, which nobody writes by hand.
            let name = rest.split(" with ").next().unwrap_or(rest);
            t = format!("an object ({name})");
        } else if t.starts_with("internally tagged enum ") || t.starts_with("enum ") {
            t = "an object with its tag".into();
        } else if let Some((_, to)) = TABLE.iter().find(|(from, _)| *from == t.trim()) {
            t = (*to).to_string();
        }
        out.push(t);
    }
    out.join(" ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Split `text` into runs outside quotes (whole, for table lookup) and
/// quoted runs (`x` or "x", kept verbatim).
fn split_keeping_quoted(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next = rest.find(['`', '"']);
        match next {
            Some(0) => {
                let q = rest.as_bytes()[0] as char;
                let end = rest[1..].find(q).map(|i| i + 2).unwrap_or(rest.len());
                parts.push(&rest[..end]);
                rest = &rest[end..];
            }
            Some(i) => {
                parts.push(rest[..i].trim());
                rest = &rest[i..];
            }
            None => {
                parts.push(rest.trim());
                rest = "";
            }
        }
    }
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Check that no JSON object in `text` gives a key twice, at any depth.
///
/// Why: serde_json keeps the last of two equal keys (in a `Value` and in
/// a struct without `deny_unknown_fields` alike), so
/// `{"timeout":30000,"timeout":40000}` ran with 40 s and no word. Errors:
/// the first repeated key as serde's "duplicate field `KEY`" with its
/// line and column (so [`explain`] says "the field `KEY` is given
/// twice"), or the text's own syntax error.
pub fn no_duplicate_keys(text: &str) -> Result<(), serde_json::Error> {
    use serde::de::Deserializer as _;
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(NoDup)?;
    de.end()
}

/// A visitor that walks any JSON value and refuses an object whose keys
/// repeat ([`no_duplicate_keys`]).
struct NoDup;

impl<'de> serde::de::DeserializeSeed<'de> for NoDup {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(NoDup)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDup {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDup)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if keys.contains(&k) {
                return Err(serde::de::Error::custom(format!("duplicate field `{k}`")));
            }
            keys.insert(k);
            map.next_value_seed(NoDup)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Schedule;

    fn schedule_error(text: &str) -> String {
        let e = serde_json::from_str::<Schedule>(text).expect_err("not a schedule");
        explain(&e).to_string()
    }

    /// Every message keeps the place and the fact, and none uses serde's
    /// type names.
    #[test]
    fn schedule_errors_are_said_in_json_terms_with_line_and_column() {
        let cases = [
            ("{\"faults\": []}", "line 1, column 14: the required field `kinds` is missing"),
            (
                "{\"kinds\": [\"bogus\"], \"faults\": []}",
                "line 1, column 18: unknown name `bogus` (allowed: ",
            ),
            ("\"x\"", "line 1, column 3: found the text \"x\" where an object (Schedule) was expected"),
            (
                "{\"kinds\": 7, \"faults\": []}",
                "line 1, column 11: found the number `7` where a list was expected",
            ),
            ("{\"kinds\": [\n", "line 2, column 0: the text ends inside a list (is the file cut short?)"),
            ("{\"kinds\": [],}", "a comma before a closing bracket"),
            ("{\"kinds\": [], \"faults\": []} x", "more text after the end of the JSON value"),
            (
                "{\"kinds\": [], \"faults\": [{\"at\": -1, \"fault\": \"skew\", \"node\": 1, \"offset\": 5}]}",
                "the number `-1` is not allowed here: expected a whole number, 0 or more",
            ),
        ];
        for (text, want) in cases {
            let got = schedule_error(text);
            assert!(got.contains(want), "{text}\n got: {got}\nwant: {want}");
            for jargon in ["sequence", "u64", "struct ", "EOF", "invalid type", "map"] {
                assert!(!got.contains(jargon), "{text}: {got} says {jargon:?}");
            }
        }
    }

    /// A fault kind that does not exist lists the ones that do.
    #[test]
    fn an_unknown_fault_kind_lists_the_allowed_names() {
        let got = schedule_error("{\"kinds\": [\"bogus\"], \"faults\": []}");
        assert!(got.contains("read-hang") && got.contains("node-pause"), "{got}");
        assert!(!got.contains('`') || got.contains("`bogus`"), "{got}");
    }

    /// serde_json keeps the last of two equal keys; the check refuses
    /// them at any depth, with the place, and passes a clean text.
    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert!(no_duplicate_keys(r#"{"a":1,"b":[{"a":2},{"a":3}]}"#).is_ok());
        let e = no_duplicate_keys(r#"{"a":1,"a":2}"#).expect_err("top level");
        assert_eq!(explain(&e).what, "the field `a` is given twice", "{e}");
        assert_eq!((explain(&e).line, explain(&e).column), (1, 10), "{e}");
        let e = no_duplicate_keys("{\"f\":[{\"n\":1,\n\"n\":2}]}").expect_err("nested");
        assert_eq!(explain(&e).line, 2, "{e}");
        assert!(no_duplicate_keys("{\"a\":").is_err());
    }
}
