//! What a tag may be: one word a user types after `--where tag=`, shown in
//! tables and the report (escaped there, so markup is harmless text).

use super::StoreError;

/// The longest tag.
pub const MAX_LEN: usize = 64;

/// Refuses a tag that the listing and `--where` could not carry whole.
pub fn check_tag(tag: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::BadTag {
            tag: tag.to_string(),
            why: why.to_string(),
        })
    };
    if tag.is_empty() {
        return bad("a tag cannot be empty");
    }
    if tag.chars().any(char::is_whitespace) {
        return bad("a tag is one word (no spaces): use - or _");
    }
    if tag
        .chars()
        .any(|c| c.is_control() || c == ',' || c == '"' || c == '\'')
    {
        return bad("a tag cannot hold commas, quotes or control characters");
    }
    if tag.starts_with('-') {
        return bad("a tag cannot start with -");
    }
    if tag.chars().count() > MAX_LEN {
        return bad(&format!("a tag has at most {MAX_LEN} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_pass_and_spaces_commas_and_dashes_first_do_not() {
        for ok in ["best", "lr-sweep_2", "<b>bold</b>", "résumé"] {
            check_tag(ok).unwrap();
        }
        let err = check_tag("two words").unwrap_err().to_string();
        assert_eq!(
            err,
            "bad tag `two words`: a tag is one word (no spaces): use - or _"
        );
        assert!(check_tag("a,b").is_err());
        assert!(check_tag("").is_err());
        assert!(check_tag("-x").is_err());
        assert!(check_tag(&"x".repeat(65)).is_err());
    }
}
