//! The fleet page (`/ui`): a read-only view of the machines, embedded in
//! the binary (`crates/executor/ui/`, a few kB, no build step, nothing
//! fetched from elsewhere).
//!
//! The assets hold no data, so they are served without a token; the page
//! asks the operator for one and reads everything through the operator API
//! with it (`/v1/machines`, `/v1/machines/{name}`, `/v1/events`). Only the
//! operator listener serves them (`Surface::All`).

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Only the page's own scripts, styles and API calls; nothing inline,
/// nothing from elsewhere, never framed.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One embedded file and its entity tag.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: LazyLock<String>,
}

macro_rules! asset {
    ($file:literal, $type:literal) => {
        Asset {
            body: include_bytes!(concat!("../ui/", $file)),
            content_type: $type,
            etag: LazyLock::new(|| {
                let digest = kiln_plan::sha256_hex(include_bytes!(concat!("../ui/", $file)));
                format!("\"{}\"", &digest[..32])
            }),
        }
    };
}

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
static SCRIPT: Asset = asset!("app.js", "text/javascript; charset=utf-8");
static STYLE: Asset = asset!("app.css", "text/css; charset=utf-8");

/// The page's routes, for the operator listener's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .route("/ui", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route("/ui/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route("/ui/app.js", get(|h: HeaderMap| async move { serve(&SCRIPT, &h) }))
        .route("/ui/app.css", get(|h: HeaderMap| async move { serve(&STYLE, &h) }))
}

/// The asset, or 304 when the client's copy has its entity tag. Clients
/// revalidate every time (`no-cache`), so a new executor's page is never
/// mixed with an old one's script.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = asset.etag.as_str();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_is_not_sent_again_when_the_client_has_it() {
        let first = serve(&SCRIPT, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag.clone());
        let second = serve(&SCRIPT, &again);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG], etag);
        assert_eq!(second.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"old\""));
        assert_eq!(serve(&SCRIPT, &stale).status(), StatusCode::OK);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_nothing_inline() {
        let page = std::str::from_utf8(INDEX.body).unwrap_or_default();
        for asset in [INDEX.body, SCRIPT.body, STYLE.body] {
            let text = std::str::from_utf8(asset).unwrap_or_default();
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "an absolute URL"
            );
            assert!(!text.contains("innerHTML"), "data must reach the DOM as text");
        }
        assert!(!page.contains("<style") && !page.contains("style=") && !page.contains("onclick"));
        assert!(page.contains("<script src=\"/ui/app.js\" defer></script>"));
    }
}
