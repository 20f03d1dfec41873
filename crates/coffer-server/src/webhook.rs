//! Delivering alerts to webhooks: each alert record is POSTed as JSON to
//! every configured URL, retried with backoff (1, 2, 4, 8, 16 s) until the
//! receiver answers 2xx. Alerts carry no value and no token: they are the
//! audit record of the alert (names, paths, counts, accessors).
//!
//! Each delivery carries `coffer-delivery` (the same random id on every
//! attempt and URL, for receivers to drop duplicates) and, with a signing
//! key configured, `coffer-signature` (see `coffer_crypto::webhook`),
//! signed afresh at each attempt. When the server stops, alerts not yet
//! delivered get one more attempt at once (see [`Webhooks::finish`]).
//!
//! A webhook URL is a credential (a Slack-style URL's path is its secret):
//! the server log names a webhook by scheme, host and port only, and the
//! errors it logs have the URL cut the same way. URLs with `user:password@`
//! are refused at start (see `AuditConfig::validate`): nothing would send
//! them.

use std::sync::Arc;
use std::time::Duration;

use coffer_audit::Record;
use coffer_crypto::webhook::WebhookKey;
use tokio::sync::mpsc::UnboundedReceiver;

const ATTEMPTS: u32 = 6;

/// The header with the delivery's id.
pub const DELIVERY_HEADER: &str = "coffer-delivery";
/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "coffer-signature";

/// The delivery task and the switch that tells it the server is stopping.
///
/// Dropped without [`Webhooks::finish`] (a node dropped without its
/// shutdown), it tells the task the same: what is not yet delivered gets
/// one more try at once, in the background, and the task ends.
pub struct Webhooks {
    stopping: tokio::sync::watch::Sender<bool>,
    /// `None` once [`Webhooks::finish`] has taken it.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        // Without this the switch would close unset, and a delivery
        // waiting for its next retry would retry at once, again and again,
        // until its attempts ran out.
        let _ = self.stopping.send(true);
    }
}

/// Starts delivering the alerts that arrive on `alerts` to `urls`.
pub fn start(
    alerts: UnboundedReceiver<Record>,
    urls: Vec<String>,
    key: Option<Arc<WebhookKey>>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Webhooks {
    let (stopping, told) = tokio::sync::watch::channel(false);
    Webhooks {
        stopping,
        task: Some(tokio::spawn(deliver(alerts, urls, key, told, metrics))),
    }
}

impl Webhooks {
    /// For a server that is stopping: every alert not yet delivered (those
    /// waiting to be retried, and those raised last) is tried once more at
    /// once, and this waits up to `within` for them. Whatever is still
    /// undelivered then is logged and dropped (it is in the audit log).
    pub async fn finish(mut self, within: Duration) {
        let _ = self.stopping.send(true);
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(within, &mut task).await.is_err() {
            task.abort();
            tracing::error!(
                "alerts still being delivered to webhooks when the server stopped were dropped"
            );
        }
    }
}

async fn deliver(
    mut alerts: UnboundedReceiver<Record>,
    urls: Vec<String>,
    key: Option<Arc<WebhookKey>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    // Each client with the URL as the log shows it (never the URL itself).
    let clients: Vec<(Arc<Shown>, coffer_client::Client)> = urls
        .into_iter()
        .filter_map(|url| {
            let result = coffer_client::Client::builder(&url)
                .timeout(Duration::from_secs(10))
                .build();
            let shown = Shown::new(&url, result.as_ref().ok());
            match result {
                Ok(c) => Some((Arc::new(shown), c)),
                Err(_) => {
                    // The builder's message quotes the URL (escaped, so it
                    // might not be found to cut): not logged.
                    tracing::error!(webhook = %shown.url, "webhook disabled: its URL is not a valid http(s) address");
                    None
                }
            }
        })
        .collect();
    let mut deliveries = tokio::task::JoinSet::new();
    loop {
        let alert = tokio::select! {
            a = alerts.recv() => a,
            _ = stopping.wait_for(|s| *s) => alerts.try_recv().ok(),
            // Finished deliveries are let go as they end.
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => continue,
        };
        let Some(alert) = alert else { break };
        // The record as the audit log writes it (its format's version 2),
        // without `seq` and `chain`.
        let Ok(mut body) = alert.encode() else {
            continue;
        };
        // As the audit log writes it: line, direction and invisible
        // characters escaped (and token shapes masked, again).
        coffer_audit::sanitize::clean(&mut body);
        let delivery: String = coffer_crypto::random::bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for (url, client) in &clients {
            // Each delivery retries on its own, so a slow receiver does not
            // hold up the others or the next alert.
            let (url, client, body, delivery, key, mut stopping, metrics) = (
                url.clone(),
                client.clone(),
                body.clone(),
                delivery.clone(),
                key.clone(),
                stopping.clone(),
                metrics.clone(),
            );
            deliveries.spawn(async move {
                let mut delay = Duration::from_secs(1);
                for attempt in 1..=ATTEMPTS {
                    let signature = key.as_ref().map(|k| k.sign(unix_now(), &body));
                    let mut headers = vec![(DELIVERY_HEADER, delivery.as_str())];
                    if let Some(s) = &signature {
                        headers.push((SIGNATURE_HEADER, s.as_str()));
                    }
                    let last = attempt == ATTEMPTS || *stopping.borrow();
                    match client.post_to_address(body.clone(), &headers).await {
                        Ok(()) => {
                            metrics.webhook("delivered");
                            return;
                        }
                        Err(e) if last => {
                            metrics.webhook("failed");
                            tracing::error!(webhook = %url.url, error = %url.scrub(&e), "alert not delivered; giving up");
                            return;
                        }
                        Err(e) => {
                            metrics.webhook("retried");
                            tracing::warn!(webhook = %url.url, error = %url.scrub(&e), attempt, "alert delivery failed; retrying");
                            // A stopping server tries once more at once.
                            tokio::select! {
                                _ = tokio::time::sleep(delay) => {}
                                _ = stopping.wait_for(|s| *s) => {}
                            }
                            delay *= 2;
                        }
                    }
                }
            });
        }
    }
    while deliveries.join_next().await.is_some() {}
}

/// A webhook as the server log shows it, and the forms of its URL that an
/// error message may hold (the URL as configured, as the client holds it).
struct Shown {
    url: String,
    forms: Vec<String>,
}

impl Shown {
    fn new(url: &str, client: Option<&coffer_client::Client>) -> Shown {
        let mut forms = vec![url.to_string(), url.trim_end_matches('/').to_string()];
        forms.extend(client.map(|c| c.addr().to_string()));
        // Longest first, so a shorter form never leaves a tail behind.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.retain(|f| !f.is_empty());
        Shown {
            url: coffer_audit::sanitize::redact_url(url),
            forms,
        }
    }

    /// An error's message with every form of the URL replaced by the
    /// redacted one; and if any part of the URL after its host is still
    /// there (quoted, escaped), the message is dropped for its kind alone.
    ///
    /// When the receiver answered, only its status is kept: the rest of
    /// the message (its error body, as big as it likes, with line breaks
    /// and controls that would forge server log lines) is the receiver's.
    fn scrub(&self, e: &coffer_client::ClientError) -> String {
        if let Some(status) = e.status {
            return format!("{} answered HTTP {status}", self.url);
        }
        let mut m = e.to_string();
        for f in &self.forms {
            m = m.replace(f.as_str(), &self.url);
        }
        let secret_parts = self.forms.iter().filter_map(|f| {
            let rest = f.split_once("://").map_or(f.as_str(), |(_, r)| r);
            rest.find(['/', '?', '#', '@'])
                .map(|i| &rest[i..])
                .filter(|tail| tail.len() > 1)
        });
        for tail in secret_parts {
            if m.contains(tail) {
                return format!("the request to {} failed", self.url);
            }
        }
        // Shown as the server log shows text: controls visible, token
        // shapes masked (after the URL is cut, which masking would hide).
        coffer_audit::sanitize::visible(&m).into_owned()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why the webhook signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// `audit.webhook_secret_file` could not be read.
    #[error("cannot read audit.webhook_secret_file {}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key is not one deliveries can be signed with (too short); the
    /// message never holds the key.
    #[error("{0} (make one with `openssl rand -hex 32`)")]
    Unusable(coffer_crypto::webhook::ShortKey),
}

/// The signing key from `COFFER_WEBHOOK_SECRET` or `audit.webhook_secret_file`
/// (the file's contents without a final newline), if either is set.
pub fn signing_key(
    file: Option<&std::path::Path>,
) -> Result<Option<Arc<WebhookKey>>, SigningKeyError> {
    let bytes = match (std::env::var("COFFER_WEBHOOK_SECRET"), file) {
        (Ok(s), _) if !s.is_empty() => s.into_bytes(),
        (_, Some(file)) => {
            let mut b = std::fs::read(file).map_err(|source| SigningKeyError::Read {
                path: file.to_path_buf(),
                source,
            })?;
            while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                b.pop();
            }
            b
        }
        _ => return Ok(None),
    };
    let key = WebhookKey::new(bytes).map_err(SigningKeyError::Unusable)?;
    Ok(Some(Arc::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str, status: Option<u16>) -> coffer_client::ClientError {
        coffer_client::ClientError {
            kind: coffer_client::ErrorKind::Unreachable,
            message: message.into(),
            status,
            code: None,
            request_id: None,
        }
    }

    #[test]
    fn a_webhook_is_logged_by_scheme_host_and_port_only() {
        let url = "https://hooks.example.com:8443/services/T0/PATHSECRET?token=QUERYSECRET";
        let shown = Shown::new(url, None);
        assert_eq!(shown.url, "https://hooks.example.com:8443/…");
        for (message, status, want) in [
            // The URL in an error is cut to what the log may show.
            (
                format!("cannot connect to {url}: connection refused"),
                None,
                "cannot connect to https://hooks.example.com:8443/…: connection refused".to_string(),
            ),
            // A receiver's answer is its status only, never its body.
            (
                "PATHSECRET\nforged log line".into(),
                Some(500),
                "https://hooks.example.com:8443/… answered HTTP 500".into(),
            ),
            // A part of the URL that escaped the cut (after a host spelt
            // otherwise) drops the message for its kind alone.
            (
                "error sending request for url (https://HOOKS.example.com:8443/services/T0/PATHSECRET?token=QUERYSECRET)".into(),
                None,
                "the request to https://hooks.example.com:8443/… failed".into(),
            ),
            // Controls in a message are made visible: no forged log lines.
            (
                "refused\nINFO forged".into(),
                None,
                "refused\\u{000A}INFO forged".into(),
            ),
        ] {
            assert_eq!(shown.scrub(&failure(&message, status)), want);
        }
    }

    /// A receiver that answers every request 500 and counts them.
    async fn failing_receiver() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (url, count)
    }

    fn alert() -> Record {
        Record {
            kind: coffer_audit::Kind::Alert,
            message: Some("a test alert".into()),
            ..Record::default()
        }
    }

    #[tokio::test]
    async fn dropped_deliveries_get_one_more_try_and_stop() {
        let (url, attempts) = failing_receiver().await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let webhooks = start(rx, vec![url], None, metrics.clone());
        tx.send(alert()).unwrap();
        let seen = |n| {
            let attempts = attempts.clone();
            async move {
                while attempts.load(std::sync::atomic::Ordering::SeqCst) < n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), seen(1))
            .await
            .expect("the first attempt");
        // Dropped while the delivery waits (a second) for its retry: one
        // more try at once, as at a shutdown, and no more.
        drop(webhooks);
        tokio::time::timeout(Duration::from_millis(500), seen(2))
            .await
            .expect("one more try at once");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Both attempts are counted: one retried, then given up.
        let text = metrics.render_counters();
        assert!(
            text.contains("coffer_webhook_deliveries_total{result=\"retried\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("coffer_webhook_deliveries_total{result=\"failed\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn finish_gives_the_last_alerts_one_more_try() {
        let (url, attempts) = failing_receiver().await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let webhooks = start(rx, vec![url], None, Arc::default());
        tx.send(alert()).unwrap();
        webhooks.finish(Duration::from_secs(5)).await;
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_signing_key_error_never_shows_the_key() {
        // The variable takes precedence over the file; the test leaves the
        // process's environment alone, so with it set there is no file to test.
        if std::env::var_os("COFFER_WEBHOOK_SECRET").is_some() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, b"tooshortKEY\n").unwrap();
        let err = signing_key(Some(&file)).expect_err("a short key is refused");
        let shown = err.to_string();
        assert!(shown.contains("openssl rand -hex 32"), "{shown}");
        assert!(!shown.contains("tooshortKEY"), "{shown}");
        let missing =
            signing_key(Some(&dir.path().join("missing"))).expect_err("a missing file is an error");
        assert!(
            missing
                .to_string()
                .starts_with("cannot read audit.webhook_secret_file ")
        );
        assert!(signing_key(None).unwrap().is_none());
    }
}
