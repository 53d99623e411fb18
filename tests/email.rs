//! The native `email` connector holding a real SMTP conversation with a
//! server on 127.0.0.1.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;
use tether::connector::native::{Email, NativeCall, NativeConnector};
use tether::engine::run::{RunStatus, TriggerEvent};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A minimal SMTP server: answers each command, keeps every message's DATA,
/// and rejects the first `reject_first` messages with a temporary 451.
#[derive(Clone, Default)]
struct SmtpServer {
    messages: Arc<Mutex<Vec<String>>>,
    rejected: Arc<Mutex<usize>>,
}

impl SmtpServer {
    async fn start(reject_first: usize) -> (Self, u16) {
        let server = SmtpServer::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding SMTP");
        let port = listener.local_addr().expect("address").port();
        let shared = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = shared.clone();
                tokio::spawn(async move { server.session(socket, reject_first).await });
            }
        });
        (server, port)
    }

    async fn session(&self, socket: tokio::net::TcpStream, reject_first: usize) {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 smtp.test ESMTP\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let command = line.to_ascii_uppercase();
            let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
                b"250-smtp.test\r\n250 8BITMIME\r\n"
            } else if command.starts_with("DATA") {
                let _ = write.write_all(b"354 end with .\r\n").await;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    data.push_str(&line);
                    data.push('\n');
                }
                let mut rejected = self.rejected.lock().expect("lock");
                if *rejected < reject_first {
                    *rejected += 1;
                    b"451 try again later\r\n"
                } else {
                    self.messages.lock().expect("lock").push(data);
                    b"250 queued as 1\r\n"
                }
            } else if command.starts_with("QUIT") {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                b"250 ok\r\n"
            };
            let _ = write.write_all(reply).await;
        }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }
}

fn smtp_env(supplier: &Supplier, port: u16) -> tether::workflow::Env {
    shop_env(supplier)
        .with("SMTP_HOST", "127.0.0.1")
        .with("SMTP_PORT", &port.to_string())
        .with("SMTP_TLS", "none")
        .with("SMTP_FROM", "Lumen Trail <orders@lumen-trail.example>")
}

const NOTIFY: &str = r#"name: notify
trigger: manual
steps:
  - id: mail
    uses: email.send
    retry: { attempts: 3, backoff: 50ms }
    with:
      to: "${{ trigger.body.email }}"
      subject: "Your order ${{ trigger.body.name }} has shipped"
      body: "Tracking number: ${{ trigger.body.tracking }}"
"#;

#[tokio::test]
async fn email_reaches_smtp_server() {
    let supplier = Supplier::accepting().await;
    let (smtp, port) = SmtpServer::start(0).await;
    let project = Project::bundled();
    project.add_workflow("notify.yaml", NOTIFY);
    let server = TestServer::start(&project, smtp_env(&supplier, port)).await;

    let input = json!({ "email": "mira.kovac@example.test", "name": "#1042", "tracking": "1Z999AA10123456784" });
    let run = server
        .engine
        .run_now("notify", TriggerEvent::manual(input))
        .await
        .expect("running");

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert!(message.contains("To: mira.kovac@example.test"), "{message}");
    assert!(
        message.contains("Subject: Your order #1042 has shipped"),
        "{message}"
    );
    assert!(
        message.contains("Tracking number: 1Z999AA10123456784"),
        "{message}"
    );
    assert!(
        message.contains("From: \"Lumen Trail\" <orders@lumen-trail.example>")
            || message.contains("From: Lumen Trail <orders@lumen-trail.example>"),
        "{message}"
    );
}

#[tokio::test]
async fn temporary_rejection_is_retried_once_delivered() {
    let supplier = Supplier::accepting().await;
    let (smtp, port) = SmtpServer::start(1).await;
    let project = Project::bundled();
    project.add_workflow("notify.yaml", NOTIFY);
    let server = TestServer::start(&project, smtp_env(&supplier, port)).await;

    let input = json!({ "email": "dale.obrien@example.test", "name": "#7315", "tracking": "9400100000000000000000" });
    let run = server
        .engine
        .run_now("notify", TriggerEvent::manual(input))
        .await
        .expect("running");

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.steps[0].attempts.len(), 2);
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn same_step_never_sends_twice() {
    let supplier = Supplier::accepting().await;
    let (smtp, port) = SmtpServer::start(0).await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;
    let email = Email::from_env(&smtp_env(&supplier, port));
    let input =
        json!({ "to": "mira.kovac@example.test", "subject": "Shipped", "body": "On its way" });
    let call = NativeCall {
        store: server.engine.store().as_ref(),
        run_id: "run-1",
        idempotency_key: "run-1:notify",
    };

    let first = email.call("send", &input, &call).await.expect("first send");
    let again = email
        .call("send", &input, &call)
        .await
        .expect("repeated send");

    assert_eq!(smtp.messages().len(), 1, "the repeat sends nothing");
    assert_eq!(first, again, "the repeat returns the first result");
    assert_eq!(first["sent"], true);
}

#[tokio::test]
async fn missing_sender_is_clear() {
    let supplier = Supplier::accepting().await;
    let server = TestServer::start(&Project::bundled(), shop_env(&supplier)).await;
    let email = Email::from_env(&shop_env(&supplier));
    let call = NativeCall {
        store: server.engine.store().as_ref(),
        run_id: "r",
        idempotency_key: "r:s",
    };
    let input = json!({ "to": "a@example.test", "subject": "x" });
    let error = email
        .call("send", &input, &call)
        .await
        .expect_err("no sender");
    assert!(error.message.contains("SMTP_FROM"), "{}", error.message);
}
