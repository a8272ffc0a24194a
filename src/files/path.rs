//! From the request's path to a path beneath the root: percent-decoded, and refused unless
//! every segment is a plain name. Symlinks are the opener's business (`open.rs`).

use std::borrow::Cow;
use std::path::PathBuf;

/// The file `raw` (the route's `*wildcard`, not yet decoded) names beneath the root, or
/// `None` for anything that is not plainly beneath it: `..`, `.`, an absolute path, an
/// empty segment (`a//b`), a NUL or a backslash (encoded or not). A trailing `/` (or an
/// empty `raw`) names the directory's `index` file, if there is one.
pub(super) fn beneath_root(raw: &str, index: Option<&str>) -> Option<PathBuf> {
    let decoded = percent_decode_path(raw)?;
    if decoded.contains(['\0', '\\']) {
        return None;
    }
    let (dir, wants_index) = match decoded.strip_suffix('/') {
        Some(dir) => (dir, true),
        None => (&*decoded, decoded.is_empty()),
    };
    let mut path = PathBuf::new();
    if !dir.is_empty() {
        // Segment by segment: `Path::components` would quietly drop an inner `.`.
        let plain = dir
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."));
        if !plain {
            return None;
        }
        path.push(dir);
    }
    if wants_index {
        path.push(index?);
    }
    Some(path)
}

/// `%XX` escapes decoded (a `+` is a plus in a path, not a space as in a query); `None`
/// for a bad escape or bytes that are not UTF-8.
fn percent_decode_path(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let digit = |b: u8| char::from(b).to_digit(16);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::beneath_root;
    use std::path::Path;

    #[test]
    fn anything_not_plainly_beneath_the_root_is_refused() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "%2e%2e/x",
            "%2E%2E%2Fx",
            "..%2fx",
            "/abs",
            "%2fabs",
            "a//b",
            "./a",
            "a/./b",
            "a\\b",
            "a%5cb",
            "a%00b",
            "..",
            "a/..",
            "//",
            "a%2",
            "a%zz",
            "%ff",
            "%+f",
        ] {
            assert!(beneath_root(bad, Some("index.html")).is_none(), "{bad}");
        }
    }

    #[test]
    fn plain_names_and_directories_with_their_index() {
        let index = Some("index.html");
        assert_eq!(
            beneath_root("dir/4k.txt", index).expect("ok"),
            Path::new("dir/4k.txt")
        );
        assert_eq!(
            beneath_root("a%20b.txt", index).expect("ok"),
            Path::new("a b.txt")
        );
        assert_eq!(
            beneath_root("a+b.txt", index).expect("ok"),
            Path::new("a+b.txt")
        );
        assert_eq!(
            beneath_root("", index).expect("ok"),
            Path::new("index.html")
        );
        assert_eq!(
            beneath_root("docs/", index).expect("ok"),
            Path::new("docs/index.html")
        );
        assert_eq!(beneath_root("docs", index).expect("ok"), Path::new("docs"));
        assert!(beneath_root("docs/", None).is_none());
        assert!(beneath_root("", None).is_none());
    }
}
