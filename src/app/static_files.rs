//! `GET /static/*path`: files under a directory, read on the offload pool (std::fs blocks).

use std::path::{Component, Path, PathBuf};

use corral::{HttpError, Request, Response, Status, offload, percent_decode};

/// Largest file served, bytes: the demo reads whole files into memory.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

pub struct StaticDir {
    root: PathBuf,
}

impl StaticDir {
    pub fn new(root: PathBuf) -> Self {
        if !root.is_dir() {
            log::warn!(
                "static_dir {} is not a directory: /static/ will answer 404",
                root.display()
            );
        }
        StaticDir { root }
    }

    pub fn serve(&self, req: &Request) -> Result<Response, HttpError> {
        let relative = safe_relative(req.param("path").unwrap_or_default())
            .ok_or_else(HttpError::not_found)?;
        let path = self.root.join(relative);
        let content_type = content_type(&path);
        let bytes = offload(move || read_small_file(&path))?;
        Ok(Response::bytes(content_type, bytes))
    }
}

/// The decoded path if every segment is a plain name: no `..`, `.`, root or empty segment.
fn safe_relative(raw: &str) -> Option<PathBuf> {
    let decoded = percent_decode(raw);
    if decoded.is_empty() || decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let path = Path::new(decoded.as_ref());
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    let no_empty = !decoded.split('/').any(str::is_empty);
    (plain && no_empty).then(|| path.to_path_buf())
}

fn read_small_file(path: &Path) -> Result<Vec<u8>, HttpError> {
    let meta = std::fs::metadata(path).map_err(|_| HttpError::not_found())?;
    if !meta.is_file() {
        return Err(HttpError::not_found());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(HttpError::new(Status::FORBIDDEN, "file too large to serve"));
    }
    std::fs::read(path).map_err(|_| HttpError::not_found())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "%2e%2e/x",
            "/abs",
            "a//b",
            "./a",
            "a\\b",
            "",
        ] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
        assert_eq!(
            safe_relative("dir/4k.txt").expect("ok"),
            std::path::Path::new("dir/4k.txt")
        );
    }
}
