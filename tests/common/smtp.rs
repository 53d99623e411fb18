//! A minimal SMTP server on 127.0.0.1 for tests that send email: a real
//! SMTP conversation, with every accepted message kept for inspection.

use std::sync::{Arc, Mutex};

use tether::workflow::Env;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A minimal SMTP server: replies to each command, keeps every message's DATA,
/// and rejects the first `reject_first` messages, with a temporary 451
/// unless started with another reply.
#[derive(Clone, Default)]
pub struct SmtpServer {
    messages: Arc<Mutex<Vec<String>>>,
    rejected: Arc<Mutex<usize>>,
}

impl SmtpServer {
    pub async fn start(reject_first: usize) -> (Self, u16) {
        Self::start_rejecting(reject_first, "451 try again later").await
    }

    /// Like [`SmtpServer::start`], replying to the rejected messages with
    /// `reply`, such as a permanent `550 mailbox unavailable`.
    pub async fn start_rejecting(reject_first: usize, reply: &'static str) -> (Self, u16) {
        let server = SmtpServer::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding SMTP");
        let port = listener.local_addr().expect("address").port();
        let shared = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = shared.clone();
                tokio::spawn(async move { server.session(socket, reject_first, reply).await });
            }
        });
        (server, port)
    }

    async fn session(&self, socket: tokio::net::TcpStream, reject_first: usize, reply: &str) {
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
                let rejecting = {
                    let mut rejected = self.rejected.lock().expect("lock");
                    let rejecting = *rejected < reject_first;
                    if rejecting {
                        *rejected += 1;
                    } else {
                        self.messages.lock().expect("lock").push(data);
                    }
                    rejecting
                };
                if rejecting {
                    let _ = write.write_all(format!("{reply}\r\n").as_bytes()).await;
                    continue;
                }
                b"250 queued as 1\r\n"
            } else if command.starts_with("QUIT") {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                b"250 ok\r\n"
            };
            let _ = write.write_all(reply).await;
        }
    }

    /// Returns every message accepted so far, as its DATA text.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }
}

/// Points the `email` connector at the SMTP server on `port`, in plain
/// text, with the shop's sender address.
pub fn with_smtp(env: Env, port: u16) -> Env {
    env.with("SMTP_HOST", "127.0.0.1")
        .with("SMTP_PORT", &port.to_string())
        .with("SMTP_TLS", "none")
        .with("SMTP_FROM", "Lumen Trail <orders@lumen-trail.example>")
}
