//! Delivering alerts to webhooks: each alert record is POSTed as JSON to
//! every configured URL, retried with backoff (1, 2, 4, 8, 16 s) until the
//! receiver answers 2xx. Alerts carry no value and no token: they are the
//! audit record of the alert (names, paths, counts, accessors).
//!
//! Each delivery carries `coffer-delivery` (the same random id on every
//! attempt and URL, for receivers to drop duplicates) and, with a signing
//! key configured, `coffer-signature` (see `coffer_crypto::webhook`),
//! signed afresh at each attempt.

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

/// Runs until the alert channel closes.
pub async fn deliver(
    mut alerts: UnboundedReceiver<Record>,
    urls: Vec<String>,
    key: Option<Arc<WebhookKey>>,
) {
    let clients: Vec<(String, coffer_client::Client)> = urls
        .into_iter()
        .filter_map(|url| {
            match coffer_client::Client::builder(&url)
                .timeout(Duration::from_secs(10))
                .build()
            {
                Ok(c) => Some((url, c)),
                Err(e) => {
                    tracing::error!(webhook = %url, error = %e, "webhook disabled");
                    None
                }
            }
        })
        .collect();
    while let Some(alert) = alerts.recv().await {
        let Ok(body) = serde_json::to_vec(&alert) else {
            continue;
        };
        let delivery: String = coffer_crypto::random::bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for (url, client) in &clients {
            // Each delivery retries on its own, so a slow receiver does not
            // hold up the others or the next alert.
            let (url, client, body, delivery, key) = (
                url.clone(),
                client.clone(),
                body.clone(),
                delivery.clone(),
                key.clone(),
            );
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                for attempt in 1..=ATTEMPTS {
                    let signature = key.as_ref().map(|k| k.sign(unix_now(), &body));
                    let mut headers = vec![(DELIVERY_HEADER, delivery.as_str())];
                    if let Some(s) = &signature {
                        headers.push((SIGNATURE_HEADER, s.as_str()));
                    }
                    match client.post_to_address(body.clone(), &headers).await {
                        Ok(()) => return,
                        Err(e) if attempt == ATTEMPTS => {
                            tracing::error!(webhook = %url, error = %e, "alert not delivered; giving up");
                        }
                        Err(e) => {
                            tracing::warn!(webhook = %url, error = %e, attempt, "alert delivery failed; retrying");
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                    }
                }
            });
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signing key from `COFFER_WEBHOOK_SECRET` or `audit.webhook_secret_file`
/// (the file's contents without a final newline), if either is set.
pub fn signing_key(file: Option<&std::path::Path>) -> anyhow::Result<Option<Arc<WebhookKey>>> {
    use anyhow::Context;
    let bytes = match (std::env::var("COFFER_WEBHOOK_SECRET"), file) {
        (Ok(s), _) if !s.is_empty() => s.into_bytes(),
        (_, Some(file)) => {
            let mut b = std::fs::read(file).with_context(|| {
                format!("cannot read audit.webhook_secret_file {}", file.display())
            })?;
            while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                b.pop();
            }
            b
        }
        _ => return Ok(None),
    };
    let key = WebhookKey::new(bytes)
        .map_err(|e| anyhow::anyhow!("{e} (make one with `openssl rand -hex 32`)"))?;
    Ok(Some(Arc::new(key)))
}
