//! Delivering alerts to webhooks: each alert record is POSTed as JSON to
//! every configured URL, retried with backoff (1, 2, 4, 8, 16 s) until the
//! receiver answers 2xx. Alerts carry no value and no token: they are the
//! audit record of the alert (names, paths, counts, accessors).

use std::time::Duration;

use coffer_audit::Record;
use tokio::sync::mpsc::UnboundedReceiver;

const ATTEMPTS: u32 = 6;

/// Runs until the alert channel closes.
pub async fn deliver(mut alerts: UnboundedReceiver<Record>, urls: Vec<String>) {
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
        for (url, client) in &clients {
            // Each delivery retries on its own, so a slow receiver does not
            // hold up the others or the next alert.
            let (url, client, alert) = (url.clone(), client.clone(), alert.clone());
            tokio::spawn(async move {
                let mut delay = Duration::from_secs(1);
                for attempt in 1..=ATTEMPTS {
                    match client.post_to_address(&alert).await {
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
