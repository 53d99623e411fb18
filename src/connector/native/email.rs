//! `email`: sends mail over SMTP with lettre. The server comes from the
//! environment: `SMTP_HOST` (default 127.0.0.1), `SMTP_PORT` (default 587,
//! or 25 without TLS), `SMTP_TLS` (`starttls`, the default; `tls`; or
//! `none` for a local relay), `SMTP_USERNAME`, `SMTP_PASSWORD` and
//! `SMTP_FROM`. A step sends its message once: after the server accepts
//! it, the step's idempotency key is recorded, and a step that runs again
//! (a retry, or a restart) returns the first result without sending.
//!
//! NOTE: a crash after the server accepted the message and before the key
//! is recorded sends it again on restart; the Message-ID is derived from
//! the key, so mail clients can tell the two copies apart.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use super::{NativeCall, NativeConnector, required_str};
use crate::engine::error::StepError;
use crate::workflow::Env;

pub const EMAIL_OPERATIONS: &[&str] = &["send"];

/// Time allowed for the whole SMTP conversation.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    StartTls,
    Tls,
    None,
}

/// SMTP settings read from the environment when the engine starts.
#[derive(Clone)]
pub struct Email {
    host: String,
    port: Option<u16>,
    security: Result<Security, String>,
    credentials: Option<(String, String)>,
    from: Option<String>,
}

impl Email {
    pub fn from_env(env: &Env) -> Self {
        let security = match env.get("SMTP_TLS").unwrap_or("starttls") {
            "starttls" => Ok(Security::StartTls),
            "tls" => Ok(Security::Tls),
            "none" => Ok(Security::None),
            other => Err(format!(
                "invalid SMTP_TLS `{other}`; use starttls, tls or none"
            )),
        };
        let credentials = env.get("SMTP_USERNAME").map(|user| {
            (
                user.to_string(),
                env.get("SMTP_PASSWORD").unwrap_or("").to_string(),
            )
        });
        Email {
            host: env.get("SMTP_HOST").unwrap_or("127.0.0.1").to_string(),
            port: env.get("SMTP_PORT").and_then(|port| port.parse().ok()),
            security,
            credentials,
            from: env.get("SMTP_FROM").map(str::to_string),
        }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, StepError> {
        let security = self.security.clone().map_err(StepError::permanent)?;
        let builder = match security {
            Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host),
            Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)
                .map_err(|e| StepError::permanent(format!("email.send: invalid SMTP_HOST: {e}")))?,
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host)
                .map_err(|e| StepError::permanent(format!("email.send: invalid SMTP_HOST: {e}")))?,
        };
        let default_port = if security == Security::None { 25 } else { 587 };
        let mut builder = builder
            .port(self.port.unwrap_or(default_port))
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }

    fn message(&self, input: &Value, key: &str) -> Result<Message, StepError> {
        let mailbox = |field: &str, text: &str| {
            text.parse::<Mailbox>().map_err(|e| {
                StepError::permanent(format!(
                    "email.send: invalid `{field}` address `{text}`: {e}"
                ))
            })
        };
        let to = required_str(input, "to", "email.send")?;
        let subject = required_str(input, "subject", "email.send")?;
        let body = input.get("body").and_then(Value::as_str).unwrap_or("");
        let from = match input
            .get("from")
            .and_then(Value::as_str)
            .or(self.from.as_deref())
        {
            Some(from) => from.to_string(),
            None => {
                let message = "email.send: no sender; set `from` in `with` or the SMTP_FROM environment variable";
                return Err(StepError::permanent(message));
            }
        };
        let domain = from
            .rsplit('@')
            .next()
            .unwrap_or("tether.invalid")
            .trim_end_matches('>');
        Message::builder()
            .from(mailbox("from", &from)?)
            .to(mailbox("to", to)?)
            .subject(subject)
            .message_id(Some(format!(
                "<{}@{domain}>",
                key.replace([':', '/', '[', ']', '.'], "-")
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| {
                StepError::permanent(format!("email.send: could not build the message: {e}"))
            })
    }
}

#[async_trait]
impl NativeConnector for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn operations(&self) -> &'static [&'static str] {
        EMAIL_OPERATIONS
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
        call: &NativeCall<'_>,
    ) -> Result<Value, StepError> {
        if operation != "send" {
            return Err(StepError::permanent(format!(
                "email has no operation `{operation}`; use send"
            )));
        }
        let sent_key = format!("email/sent/{}", call.idempotency_key);
        let stored = call
            .store
            .get_state(&sent_key)
            .map_err(|e| StepError::transient(e.to_string()))?;
        if let Some(first) = stored {
            let first: Value = serde_json::from_slice(&first).unwrap_or(Value::Null);
            tracing::info!(
                run_id = call.run_id,
                key = call.idempotency_key,
                "email already sent by this step; not sending again"
            );
            return Ok(first);
        }

        let message = self.message(input, call.idempotency_key)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .map(str::to_string)
            .unwrap_or_default();
        let response = self.transport()?.send(message).await.map_err(|error| {
            let text = format!("email.send: {error}");
            if error.is_permanent() {
                StepError::permanent(text)
            } else {
                StepError::transient(text)
            }
        })?;
        let result = json!({
            "sent": true,
            "message_id": message_id,
            "response": response.message().collect::<Vec<_>>().join(" "),
        });
        let bytes = serde_json::to_vec(&result).unwrap_or_default();
        call.store
            .put_state(&sent_key, &bytes)
            .map_err(|e| StepError::transient(e.to_string()))?;
        call.store
            .sync()
            .await
            .map_err(|e| StepError::transient(e.to_string()))?;
        Ok(result)
    }
}
