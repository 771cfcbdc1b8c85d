//! `/artifacts/PATH`: kernels, initrds and images, served from
//! `--artifacts DIR` only for paths the plan lists and only while their
//! SHA-256 matches the plan. Single byte ranges (206/416), `If-Range`,
//! `HEAD`, and the SHA-256 as ETag (`If-None-Match` → 304).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Inode, size and modification time: a file that keeps them is unchanged.
type FileIdentity = (u64, u64, i64, i64);

/// Digests already checked, by path, with the file identity they hold for.
#[derive(Default)]
pub(crate) struct Verified(Mutex<HashMap<PathBuf, (FileIdentity, String)>>);

fn identity(meta: &std::fs::Metadata) -> FileIdentity {
    (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec())
}

impl Verified {
    /// The file's SHA-256, hashed again only when the file changed.
    fn digest(&self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<String> {
        let id = identity(meta);
        if let Some((known, digest)) = self.0.lock().ok().and_then(|m| m.get(path).cloned()) {
            if known == id {
                return Ok(digest);
            }
        }
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
        }
        let digest = kiln_plan::hex(&sha2::Digest::finalize(hasher));
        if let Ok(mut m) = self.0.lock() {
            m.insert(path.to_path_buf(), (id, digest.clone()));
        }
        Ok(digest)
    }
}

fn status(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(serde_json::json!({"error": message}))).into_response()
}

/// A single `bytes=` range, resolved against `len`: `Ok(None)` for no
/// usable range (serve everything), `Err(())` when unsatisfiable.
fn range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: answer with the whole file
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, "") => (s.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().map_err(|_| ())?, e.parse().map_err(|_| ())?);
            if e < s {
                return Err(());
            }
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Serves `path` (as the plan names it) from `dir`.
pub(crate) async fn serve(
    verified: &Verified,
    dir: Option<&Path>,
    path: &str,
    expected: Option<&String>,
    headers: &HeaderMap,
) -> Response {
    let (Some(dir), Some(expected)) = (dir, expected) else {
        return status(StatusCode::NOT_FOUND, "no such artifact in the plan");
    };
    // Only paths the plan lists get here; the canonical path must still lie
    // inside the artifacts directory (no `..`, no symlink out of it).
    let Ok(root) = dir.canonicalize() else {
        return status(StatusCode::NOT_FOUND, "no artifacts directory");
    };
    let file = match root.join(path).canonicalize() {
        Ok(f) if f.starts_with(&root) => f,
        _ => return status(StatusCode::NOT_FOUND, "no such artifact"),
    };
    let Ok(meta) = std::fs::metadata(&file) else {
        return status(StatusCode::NOT_FOUND, "no such artifact");
    };
    if !meta.is_file() {
        return status(StatusCode::NOT_FOUND, "no such artifact");
    }
    let (verified_file, meta_copy) = (file.clone(), meta.clone());
    let digest = match tokio::task::block_in_place(|| verified.digest(&verified_file, &meta_copy)) {
        Ok(d) => d,
        Err(_) => return status(StatusCode::NOT_FOUND, "no such artifact"),
    };
    if &digest != expected {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "the artifact does not match the plan's SHA-256",
        );
    }
    let etag = format!("\"{digest}\"");
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let len = meta.len();
    // A range only applies to the representation the client already has.
    let if_range_ok = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let wanted = match header_str(header::RANGE).filter(|_| if_range_ok) {
        Some(r) => range(r, len),
        None => Ok(None),
    };
    let (code, start, end) = match wanted {
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Err(()) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}")), (header::ETAG, etag)],
            )
                .into_response()
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let mut f = match tokio::fs::File::open(&file).await {
        Ok(f) => f,
        Err(_) => return status(StatusCode::NOT_FOUND, "no such artifact"),
    };
    if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return status(StatusCode::NOT_FOUND, "no such artifact");
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f.take(count)));
    let mut response = Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag);
    if code == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    response
        .body(body)
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=5-1", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
    }
}
