//! The embeddable Integrations UI at `GET /connect`: static files compiled into the binary
//! (and every Lambda that serves it), no token needed to load them. The page reads the caller's
//! token from the URL fragment (`#token=...`, removed from the address bar at once) or from a
//! `postMessage` of the host page, and then calls the public API with it like any client.
//!
//! Security headers: a strict Content Security Policy without inline script or style (the
//! script and the style sheet are files of their own), `frame-ancestors *` so any host product
//! may embed it in an iframe (the page can do nothing without the token the host hands it),
//! `Referrer-Policy: no-referrer`, `X-Content-Type-Options: nosniff`.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, AppState};

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");

/// The Content Security Policy of every UI file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors *";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Short: a deploy's new UI reaches users within minutes.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// The Integrations UI page (no token needed to load it; pass the caller's token in the
/// fragment, `/connect#token=<JWT>&project=<id>`, or by `postMessage`).
#[utoipa::path(get, path = "/connect", tag = "ui", security(()),
    responses((status = 200, description = "the UI's HTML page", content_type = "text/html")))]
async fn page() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// The UI's script and style sheet (`app.js`, `app.css`).
#[utoipa::path(get, path = "/connect/{asset}", tag = "ui", security(()), params(("asset" = String, Path)),
    responses((status = 200, description = "the file"), (status = 404, body = crate::ErrorBody)))]
async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    match name.as_str() {
        "app.js" => Ok(asset(APP_JS, "text/javascript; charset=utf-8")),
        "app.css" => Ok(asset(APP_CSS, "text/css; charset=utf-8")),
        _ => Err(ApiError::not_found("file")),
    }
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(page)).routes(routes!(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_and_style_from_files_and_has_no_inline_script() {
        assert!(INDEX_HTML.contains(r#"src="connect/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="connect/app.css""#));
        let scripts = INDEX_HTML.matches("<script").count();
        assert_eq!(scripts, 1, "one script tag, the file");
        assert!(!INDEX_HTML.contains(" style="), "no inline style (CSP)");
        assert!(!INDEX_HTML.contains("onclick"), "no inline handlers (CSP)");
        assert!(!APP_JS.contains("eval("), "no eval (CSP)");
        assert!(
            !APP_JS.contains("innerHTML"),
            "text is set as text, never as markup"
        );
    }

    #[tokio::test]
    async fn headers_are_strict() {
        let res = page().await;
        let h = res.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        assert!(csp.contains("frame-ancestors *"));
        let res = file(Path("app.js".into())).await.unwrap();
        assert!(
            res.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        assert!(file(Path("../secrets".into())).await.is_err());
        assert!(file(Path("index.html".into())).await.is_err());
    }
}
