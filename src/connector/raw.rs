//! Raw connector types: a direct mirror of a connector YAML file.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::workflow::de::Spanned;

#[derive(Debug, Deserialize)]
pub struct RawConnector {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Named settings: a literal string, or `{ env: NAME, default: "..." }`.
    #[serde(default)]
    pub config: IndexMap<String, Spanned<Value>>,
    #[serde(default)]
    pub auth: Option<Spanned<RawAuth>>,
    #[serde(default)]
    pub headers: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    pub response: Option<RawResponse>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub idempotency_key_header: Option<Spanned<String>>,
    /// Requests allowed per period, shared by every run.
    #[serde(default)]
    pub rate_limit: Option<Spanned<RawRateLimit>>,
    /// Calls in flight at once, shared by every run.
    #[serde(default)]
    pub concurrency: Option<Spanned<u32>>,
    pub operations: IndexMap<String, Spanned<RawOperation>>,
}

#[derive(Debug, Deserialize)]
pub struct RawRateLimit {
    pub requests: Spanned<u32>,
    pub per: Spanned<String>,
    /// A response header reporting the API's own count as `used/limit`,
    /// such as Shopify's `X-Shopify-Shop-Api-Call-Limit: 32/40`.
    #[serde(default)]
    pub usage_header: Option<Spanned<String>>,
}

/// How to read every page of a listing: exactly one of `page`, `cursor`
/// or `link`, and where the items are in each response.
#[derive(Debug, Deserialize)]
pub struct RawPaginate {
    #[serde(default)]
    pub page: Option<RawPageNumber>,
    #[serde(default)]
    pub cursor: Option<RawCursor>,
    /// Follow the `Link: <...>; rel="next"` response header.
    #[serde(default)]
    pub link: bool,
    pub items: Spanned<String>,
    #[serde(default)]
    pub max_pages: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
pub struct RawPageNumber {
    /// Query parameter that carries the page number.
    pub param: String,
    #[serde(default)]
    pub start: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct RawCursor {
    /// Query parameter that carries the cursor.
    pub param: String,
    /// Expression over `response` giving the next cursor; empty or null
    /// ends the listing.
    pub next: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawAuth {
    Bearer(Spanned<String>),
    Basic(RawBasic),
    ApiKey(RawApiKey),
    /// A token fetched from an endpoint of the API, cached and refreshed.
    Token(Box<RawTokenAuth>),
    /// OAuth 2 client credentials: a token endpoint with a client id and
    /// secret, reading `access_token` and `expires_in`.
    Oauth2(RawOauth2),
}

#[derive(Debug, Deserialize)]
pub struct RawTokenAuth {
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// Path of the token endpoint, after the base URL.
    pub path: Spanned<String>,
    /// Form-encoded body fields.
    #[serde(default)]
    pub form: IndexMap<String, Spanned<Value>>,
    /// JSON body, when the endpoint takes JSON.
    #[serde(default)]
    pub body: Option<Spanned<Value>>,
    /// Expression over `response` giving the token.
    pub token: Spanned<String>,
    /// Expression over `response` giving the token's lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<Spanned<String>>,
    /// Header that carries the token (default `Authorization`).
    #[serde(default)]
    pub header: Option<String>,
    /// Text before the token in that header (default `Bearer ` for
    /// `Authorization`, nothing otherwise).
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawOauth2 {
    pub token_path: Spanned<String>,
    pub client_id: Spanned<String>,
    pub client_secret: Spanned<String>,
    #[serde(default)]
    pub scope: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawBasic {
    pub username: Spanned<String>,
    pub password: Spanned<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawApiKey {
    pub header: Spanned<String>,
    pub value: Spanned<String>,
}

/// How to read an answer: whether it succeeded, its error message, whether a
/// failure may succeed later, and the step output.
#[derive(Debug, Default, Deserialize)]
pub struct RawResponse {
    #[serde(default)]
    pub success: Option<Spanned<String>>,
    #[serde(default)]
    pub error: Option<Spanned<String>>,
    #[serde(default)]
    pub retryable: Option<Spanned<String>>,
    #[serde(default)]
    pub output: Option<Spanned<Value>>,
}

#[derive(Debug, Deserialize)]
pub struct RawOperation {
    #[serde(default)]
    pub description: Option<String>,
    pub method: Spanned<String>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub query: IndexMap<String, Spanned<Value>>,
    #[serde(default)]
    pub headers: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    pub body: Option<Spanned<Value>>,
    #[serde(default)]
    pub response: Option<RawResponse>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub idempotency_key_header: Option<Spanned<String>>,
    #[serde(default)]
    pub paginate: Option<Spanned<RawPaginate>>,
}
