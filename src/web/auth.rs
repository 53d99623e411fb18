//! Access control for listeners off loopback: the API, the pages and
//! `/metrics` need `Authorization: Bearer <token>` or the session cookie
//! that `/login` sets. Webhooks (`/hooks/...`, verified by their own
//! signatures) and `/healthz` stay open.

use axum::extract::{Form, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::pages::{PageError, render};
use super::{ApiError, AppState};

/// Environment variable holding the API token.
pub const TOKEN_ENV: &str = "TETHER_API_TOKEN";

const SESSION_COOKIE: &str = "tether_session";

/// The token that grants access, and the session cookie value: a SHA-256
/// hash of the token, so the cookie never carries the token itself.
#[derive(Clone)]
pub struct Credentials {
    token: String,
    session: String,
}

impl Credentials {
    pub fn new(token: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"tether dashboard session v1\0");
        hasher.update(token.as_bytes());
        let session = hex::encode(hasher.finalize());
        Credentials {
            token: token.to_string(),
            session,
        }
    }

    fn accepts_token(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.token.as_bytes()))
    }

    fn accepts_session(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.session.as_bytes()))
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if bearer.is_some_and(|token| self.accepts_token(token.trim())) {
            return true;
        }
        session_cookie(headers).is_some_and(|session| self.accepts_session(session))
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

fn is_open_path(path: &str) -> bool {
    path.starts_with("/hooks/") || path == "/healthz" || path == "/login"
}

/// Middleware that lets a request through when auth is off, the path is
/// open, or the request carries valid credentials. Otherwise the API and
/// `/metrics` get 401 and pages a redirect to the login form.
pub(super) async fn require(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(credentials) = &state.credentials else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if is_open_path(path) || credentials.allows(request.headers()) {
        return next.run(request).await;
    }
    if path.starts_with("/api/") || path == "/metrics" {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("missing or invalid credentials; send `Authorization: Bearer` with the value of {TOKEN_ENV}"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let location = format!(
        "/login?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("next", target)
            .finish()
    );
    redirect(&location, None)
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    if let Some(cookie) = cookie.and_then(|cookie| HeaderValue::from_str(&cookie).ok()) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// `GET /login`: the sign-in form.
pub(super) async fn login_page(
    axum::extract::Query(form): axum::extract::Query<LoginForm>,
) -> Result<Html<String>, PageError> {
    let context = minijinja::context! { title => "Sign in", next => local_target(&form.next) };
    render("login.html", context)
}

/// `POST /login`: sets the session cookie when the token is right, then
/// goes to the page the user first asked for.
pub(super) async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let Some(credentials) = &state.credentials else {
        return redirect(local_target(&form.next), None);
    };
    if !credentials.accepts_token(form.token.trim()) {
        tracing::warn!("dashboard sign-in with an invalid token");
        let context = minijinja::context! {
            title => "Sign in",
            next => local_target(&form.next),
            message => format!("invalid token; enter the value of {TOKEN_ENV} that the server was started with"),
        };
        let page = render("login.html", context);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    // NOTE: no `Secure` attribute, because the listener serves plain HTTP.
    // Put a TLS proxy in front of a public listener.
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        credentials.session
    );
    redirect(local_target(&form.next), Some(cookie))
}

/// Returns `next` when it is a path on this server, else `/`, so the login
/// form cannot send a user to another site.
fn local_target(next: &str) -> &str {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_target_stays_local() {
        assert_eq!(local_target("/runs/1?x=2"), "/runs/1?x=2");
        assert_eq!(local_target("//evil.example/"), "/");
        assert_eq!(local_target("https://evil.example/"), "/");
        assert_eq!(local_target("/\\evil.example"), "/");
        assert_eq!(local_target(""), "/");
    }

    #[test]
    fn session_differs_from_token() {
        let credentials = Credentials::new("tok_91f3");
        assert!(!credentials.session.contains("tok_91f3"));
        assert!(credentials.accepts_session(&credentials.session.clone()));
        assert!(!credentials.accepts_session("tok_91f3"));
    }
}
