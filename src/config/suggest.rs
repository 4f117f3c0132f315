//! "Did you mean" for misspelt keys.

use super::schema::schema_keys;

/// The schema key closest to `key`: first among its siblings, then anywhere by
/// its last segment (so `sigma_init` at the top level suggests `model.sigma_init`).
pub fn nearest_key(key: &str) -> Option<String> {
    let keys = schema_keys();
    let (parent, leaf) = split_leaf(key);
    let close = |a: &str, b: &str| {
        let d = strsim::damerau_levenshtein(a, b);
        let limit = (a.len().max(b.len()) / 3).max(1);
        (d <= limit).then_some(d)
    };
    let siblings = keys.iter().filter(|k| split_leaf(k).0 == parent);
    if let Some((_, k)) = siblings
        .filter_map(|k| close(leaf, split_leaf(k).1).map(|d| (d, k)))
        .min()
    {
        return Some(k.clone());
    }
    keys.iter()
        .filter_map(|k| close(leaf, split_leaf(k).1).map(|d| (d, k)))
        .min()
        .map(|(_, k)| k.clone())
}

fn split_leaf(key: &str) -> (&str, &str) {
    match key.rsplit_once('.') {
        Some((p, l)) => (p, l),
        None => ("", key),
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_key;

    #[test]
    fn suggests_siblings_then_anywhere() {
        assert_eq!(
            nearest_key("model.sigma_int").as_deref(),
            Some("model.sigma_init")
        );
        assert_eq!(nearest_key("lrr").as_deref(), Some("lr"));
        assert_eq!(
            nearest_key("sigma_init").as_deref(),
            Some("model.sigma_init")
        );
        assert_eq!(nearest_key("data.crop").as_deref(), None);
        assert_eq!(nearest_key("completely_unrelated"), None);
    }
}
