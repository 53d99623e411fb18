//! The native `email` connector holding a real SMTP conversation with a
//! server on 127.0.0.1.

mod common;

use common::*;
use serde_json::json;
use tether::connector::native::{Email, NativeCall, NativeConnector};
use tether::engine::run::{RunStatus, TriggerEvent};

fn smtp_env(supplier: &Supplier, port: u16) -> tether::workflow::Env {
    with_smtp(shop_env(supplier), port)
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
