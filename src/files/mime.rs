//! Content types by file extension (case-insensitive): the common web types, as nginx's
//! `mime.types` names them, with `charset=utf-8` on text. Anything else is
//! `application/octet-stream`, nginx's `default_type`.

/// The `Content-Type` for a file named `name`.
pub(super) fn content_type(name: &str) -> &'static str {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return OCTET_STREAM;
    };
    let mut lower = [0u8; 8];
    let Some(slot) = lower.get_mut(..ext.len()) else {
        return OCTET_STREAM;
    };
    slot.copy_from_slice(ext.as_bytes());
    slot.make_ascii_lowercase();
    match &*slot {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"txt" => "text/plain; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"json" | b"map" => "application/json",
        b"xml" => "application/xml",
        b"csv" => "text/csv; charset=utf-8",
        b"md" => "text/markdown; charset=utf-8",
        b"wasm" => "application/wasm",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"svg" => "image/svg+xml",
        b"ico" => "image/x-icon",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "font/otf",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"mp3" => "audio/mpeg",
        b"ogg" => "audio/ogg",
        b"wav" => "audio/wav",
        _ => OCTET_STREAM,
    }
}

const OCTET_STREAM: &str = "application/octet-stream";

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn extensions_map_case_insensitively_and_the_rest_is_octet_stream() {
        assert_eq!(content_type("4k.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("dir/INDEX.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.b.png"), "image/png");
        for other in [
            "README",
            "x.unknownext",
            "x.",
            "archive.tar.bz2",
            "x.verylongextension",
        ] {
            assert_eq!(content_type(other), "application/octet-stream", "{other}");
        }
    }
}
