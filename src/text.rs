//! Text for one-line messages: long values shortened, causes said once.

/// `text` if it has at most `max` characters, else its start, an ellipsis
/// and its length: a 100 kB value must not make a 100 kB error line.
pub fn shorten(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max.saturating_sub(1).max(1)).collect();
    format!("{head}… ({n} characters)")
}

/// `text` with every control character (C0, DEL, C1: escape sequences,
/// bells, carriage returns, newlines) written as an escape (`\x1b`, `\n`):
/// what a user named a run or noted must not clear the screen or break a
/// table's lines when printed.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// An error and its causes on one line, each cause said once: a message
/// that already ends with (or holds) its cause's text does not repeat it,
/// and every piece is shortened to `max` characters.
pub fn one_line(messages: impl IntoIterator<Item = String>, max: usize) -> String {
    let mut line = String::new();
    for m in messages {
        let m = shorten(&printable(m.lines().next().unwrap_or("").trim()), max);
        if m.is_empty() || line.contains(&m) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&m);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_shortened_with_their_length() {
        assert_eq!(shorten("abc", 5), "abc");
        let long = "k".repeat(100_000);
        let s = shorten(&long, 40);
        assert!(
            s.starts_with("kkkk") && s.ends_with("… (100000 characters)"),
            "{s}"
        );
        assert!(s.chars().count() < 70);
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let chain = [
            "runs/x/run.db: Read-only file system (os error 30)",
            "Read-only file system (os error 30)",
        ];
        assert_eq!(
            one_line(chain.iter().map(|s| s.to_string()), 200),
            "runs/x/run.db: Read-only file system (os error 30)"
        );
        let chain = ["entity not found", "entity not found"];
        assert_eq!(
            one_line(chain.iter().map(|s| s.to_string()), 200),
            "entity not found"
        );
        let chain = ["cannot open a.db", "disk I/O error"];
        assert_eq!(
            one_line(chain.iter().map(|s| s.to_string()), 200),
            "cannot open a.db: disk I/O error"
        );
    }
}
