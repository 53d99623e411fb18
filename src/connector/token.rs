//! Tokens from an API's token endpoint (OAuth 2 client credentials, or a
//! vendor's own such as CJ Dropshipping's access token), cached per
//! connector and refreshed shortly before they expire or when the API
//! returns 401. Only one refresh per connector runs at a time; runs that
//! need the token meanwhile wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::HttpRuntime;
use super::model::{Connector, TokenAuth};
use crate::engine::error::StepError;
use crate::expr::Context;

/// Lifetime assumed when the endpoint's response has none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Time allowed for a token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, Cached>>,
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Clone)]
struct Cached {
    value: String,
    /// When to fetch a new one: a little before the token expires.
    refresh_at: Instant,
}

impl TokenCache {
    fn fresh(&self, connector: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(connector)
            .filter(|cached| cached.refresh_at > Instant::now())
            .map(|cached| cached.value.clone())
    }

    /// Forgets the connector's token, after the API rejected it.
    pub(crate) fn invalidate(&self, connector: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connector);
    }

    fn refresh_lock(&self, connector: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(connector.to_string()).or_default())
    }
}

impl HttpRuntime {
    /// Returns the header that carries the connector's token, fetching a
    /// token if none is cached or the cached one is about to expire.
    pub(super) async fn token_header(
        &self,
        connector: &Connector,
        auth: &TokenAuth,
        context: &Context,
    ) -> Result<(String, String), StepError> {
        let header = |token: String| (auth.header.clone(), format!("{}{token}", auth.prefix));
        if let Some(token) = self.tokens.fresh(&connector.name) {
            return Ok(header(token));
        }
        let lock = self.tokens.refresh_lock(&connector.name);
        let _refreshing = lock.lock().await;
        // Another run may have refreshed it while this one waited.
        if let Some(token) = self.tokens.fresh(&connector.name) {
            return Ok(header(token));
        }
        let (token, lifetime) = self.fetch_token(connector, auth, context).await?;
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        let cached = Cached {
            value: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        };
        let mut tokens = self.tokens.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(connector.name.clone(), cached);
        tracing::info!(connector = %connector.name, lifetime_s = lifetime.as_secs(), "fetched an access token");
        Ok(header(token))
    }

    async fn fetch_token(
        &self,
        connector: &Connector,
        auth: &TokenAuth,
        context: &Context,
    ) -> Result<(String, Duration), StepError> {
        let name = format!("{} token request", connector.name);
        let fail = |message: String| StepError::permanent(format!("{name}: {message}"));
        let path = match self.scripts.render(&auth.path, context) {
            Ok(Value::String(path)) => path,
            Ok(other) => other.to_string(),
            Err(error) => return Err(fail(format!("path: {error}"))),
        };
        let url = format!("{}{path}", connector.base_url);
        let mut request = self
            .client()
            .request(auth.method.clone(), &url)
            .timeout(TOKEN_TIMEOUT);
        if !auth.form.is_empty() {
            let mut fields = Vec::new();
            for (field, template) in &auth.form {
                let value = self
                    .scripts
                    .render_value(template, context)
                    .map_err(|e| fail(format!("{field}: {e}")))?;
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                fields.push((field.clone(), text));
            }
            request = request.form(&fields);
        }
        if let Some(body) = &auth.body {
            let body = self
                .scripts
                .render_value(body, context)
                .map_err(|e| fail(format!("body: {e}")))?;
            request = request.json(&body);
        }
        let answer = self.send_plain(&name, request).await?;

        let mut scope = context.clone();
        scope.set_shared("response", &answer);
        let token = match self.scripts.render(&auth.token, &scope) {
            Ok(Value::String(token)) if !token.is_empty() => token,
            Ok(other) => {
                return Err(fail(format!(
                    "no token in the response (the token expression gave {other})"
                )));
            }
            Err(error) => return Err(fail(format!("reading the token failed: {error}"))),
        };
        let lifetime = match &auth.expires_in {
            None => DEFAULT_LIFETIME,
            Some(expiry) => match self.scripts.render(expiry, &scope) {
                Ok(Value::Number(seconds)) => seconds
                    .as_f64()
                    .map_or(DEFAULT_LIFETIME, |s| Duration::from_secs_f64(s.max(0.0))),
                Ok(Value::String(text)) => text
                    .parse::<f64>()
                    .map_or(DEFAULT_LIFETIME, |s| Duration::from_secs_f64(s.max(0.0))),
                _ => DEFAULT_LIFETIME,
            },
        };
        Ok((token, lifetime))
    }
}
