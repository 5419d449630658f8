//! Salvage: the events of a body that is not valid JSON as a whole.
//!
//! One invalid UTF-8 byte, a `NaN` or a syntax slip inside one event makes the whole body
//! unparseable, yet its other events are fine. Quarantining the whole body would acknowledge
//! them with a 202 and store none (issue 15). When the strict split fails, this scanner finds
//! the elements of the events array by structure alone: brackets and braces outside strings,
//! strings with their escapes, commas at the array's own depth. It works on bytes, so an invalid
//! UTF-8 byte inside a string does not stop it. Each element is then checked on its own by
//! validation, where the broken one is rejected with its reason and its exact bytes kept.
//!
//! Written by hand because it is the product's core promise ("a bad event never fails its
//! batch"), and no JSON parser recovers from errors and still hands back exact byte ranges.
//!
//! It salvages only what it can delimit with certainty: a top-level array, or a top-level
//! object whose `events` member is an array (and that has no `type`, which would make it one
//! event), with nothing but whitespace after the top-level value. Anything else (unbalanced
//! brackets, an unterminated string, trailing bytes) returns `None` and the caller quarantines
//! the whole body, as before.

use std::ops::Range;

/// The byte ranges of the elements of the events array, or `None` when the body's structure
/// cannot be delimited with certainty.
pub fn salvage_elements(body: &[u8]) -> Option<Vec<Range<usize>>> {
    let start = skip_ws(body, 0);
    let array = match body.get(start)? {
        b'[' => start,
        b'{' => events_member(body, start)?,
        _ => return None,
    };
    let (elements, end) = array_elements(body, array)?;
    // The top-level value must end the body: otherwise something is not accounted for.
    let top_end = if array == start {
        end
    } else {
        value_end(body, start)?
    };
    (skip_ws(body, top_end) == body.len()).then_some(elements)
}

fn skip_ws(body: &[u8], mut at: usize) -> usize {
    while body.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// The end (exclusive) of the string starting at `at` (a `"`).
fn string_end(body: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end (exclusive) of the value starting at `at`: a balanced object or array, a string, or
/// a bare token (number, literal, or garbage such as `NaN`) up to the next delimiter.
fn value_end(body: &[u8], at: usize) -> Option<usize> {
    match body.get(at)? {
        b'"' => string_end(body, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            while i < body.len() {
                match body[i] {
                    b'"' => {
                        i = string_end(body, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = at;
            while i < body.len()
                && !matches!(body[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            {
                if matches!(body[i], b'{' | b'[' | b'"') {
                    return None;
                }
                i += 1;
            }
            Some(i)
        }
    }
}

/// In the object at `at`, where the `events` array starts; `None` if it has no such member or
/// has a `type` member (then the object is one event).
fn events_member(body: &[u8], at: usize) -> Option<usize> {
    let mut i = skip_ws(body, at + 1);
    let mut events = None;
    loop {
        if body.get(i)? == &b'}' {
            break;
        }
        let key_end = string_end(body, i).filter(|_| body[i] == b'"')?;
        let key = &body[i + 1..key_end - 1];
        i = skip_ws(body, key_end);
        if body.get(i)? != &b':' {
            return None;
        }
        let value = skip_ws(body, i + 1);
        match key {
            b"type" => return None,
            b"events" if body.get(value) == Some(&b'[') => events = Some(value),
            _ => {}
        }
        i = skip_ws(body, value_end(body, value)?);
        match body.get(i)? {
            b',' => i = skip_ws(body, i + 1),
            b'}' => break,
            _ => return None,
        }
    }
    events
}

/// The elements of the array at `at` (trimmed ranges) and the array's end (exclusive).
fn array_elements(body: &[u8], at: usize) -> Option<(Vec<Range<usize>>, usize)> {
    let mut elements = Vec::new();
    let mut i = skip_ws(body, at + 1);
    if body.get(i)? == &b']' {
        return Some((elements, i + 1));
    }
    loop {
        let start = i;
        // An element runs to the next comma or bracket at this depth; a broken element may hold
        // several values (`{…} {…}`), so scan value by value until a delimiter.
        let mut end = start;
        loop {
            let here = skip_ws(body, end);
            match body.get(here)? {
                b',' | b']' => break,
                _ => end = value_end(body, here)?.max(here + 1),
            }
        }
        elements.push(start..end);
        i = skip_ws(body, end);
        match body.get(i)? {
            b',' => i = skip_ws(body, i + 1),
            b']' => return Some((elements, i + 1)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &[u8]) -> Option<Vec<String>> {
        salvage_elements(body).map(|ranges| {
            ranges
                .into_iter()
                .map(|r| String::from_utf8_lossy(&body[r]).into_owned())
                .collect()
        })
    }

    #[test]
    fn a_bad_byte_or_a_bad_token_costs_only_its_event() {
        let body = b"{\"events\":[{\"a\":\"ok\"}, {\"b\":\"\xff\"},{\"c\":NaN} ,{\"d\":[1,{\"e\":\"]\\\"\"}]}]}";
        assert_eq!(
            texts(body).unwrap(),
            vec![
                r#"{"a":"ok"}"#.to_owned(),
                "{\"b\":\"\u{fffd}\"}".to_owned(),
                r#"{"c":NaN}"#.to_owned(),
                r#"{"d":[1,{"e":"]\""}]}"#.to_owned(),
            ]
        );
        assert_eq!(texts(b"[{\"x\":1} {\"y\":2}, 3]").unwrap().len(), 2);
        assert_eq!(
            texts(b"{\"meta\":{\"k\":[1]},\"events\":[{}]}").unwrap(),
            vec!["{}".to_owned()]
        );
    }

    #[test]
    fn what_cannot_be_delimited_is_not_salvaged() {
        for body in [
            &b"{\"events\":[{\"a\":1}"[..],        // unterminated
            b"{\"events\":[{\"a\":\"x}]}",         // unterminated string
            b"[{}] [{}]",                          // trailing bytes
            b"{\"type\":\"log\",\"events\":[{}]}", // one event
            b"{\"nothing\":1}",                    // no events array
            b"nope",
        ] {
            assert_eq!(
                salvage_elements(body),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
