//! An acknowledged write survives `kill -9`: repeated trials of killing the
//! server in the middle of a stream of concurrent writes, then checking that
//! every write that got a 200 is there, with its value, at its version.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Mode, Server, http};

#[derive(Debug, Clone)]
struct Acked {
    path: String,
    version: u64,
    value: String,
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked: Vec<Acked> = Vec::new();
    for trial in 0..4 {
        let server = Server::start(dir.path(), Mode::Dev);
        let token = server.root_token();
        let host = server.host_port().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
        let writers: Vec<_> = (0..6)
            .map(|w| {
                let (host, token, stop, acked) =
                    (host.clone(), token.clone(), stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Ten keys per writer, so paths get many versions.
                        let path = format!("dur/w{w}/k{}", i % 10);
                        let value = format!("t{trial}-w{w}-i{i}");
                        let body = format!(r#"{{"value":"{value}"}}"#);
                        let result = std::panic::catch_unwind(|| {
                            http(
                                &host,
                                "PUT",
                                &format!("/api/v1/secrets/{path}"),
                                Some(&token),
                                Some(body.as_bytes()),
                                &[],
                            )
                        });
                        match result {
                            Ok(r) if r.status == 200 => {
                                let version = r.json()["version"].as_u64().unwrap();
                                acked.lock().unwrap().push(Acked {
                                    path,
                                    version,
                                    value,
                                });
                            }
                            // The server died mid-request: this write was never acknowledged.
                            _ => return,
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        // Some writes acknowledged (however slow the machine), then a
        // different moment in each trial.
        common::wait_until(Duration::from_secs(30), "20 acknowledged writes", || {
            acked.lock().unwrap().len() > 20
        });
        std::thread::sleep(Duration::from_millis(150 * trial));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() > 20,
            "trial {trial}: only {} writes acknowledged",
            acked.len()
        );
        all_acked.extend(acked);

        // Restart and check every acknowledged write of every trial so far.
        let server = Server::start(dir.path(), Mode::Dev);
        let token = server.root_token();
        for a in &all_acked {
            let r = server.http(
                "GET",
                &format!("/api/v1/secrets/{}?version={}", a.path, a.version),
                Some(&token),
                None,
            );
            assert_eq!(
                r.status,
                200,
                "trial {trial}: acknowledged {a:?} is gone: {}",
                r.text()
            );
            assert_eq!(r.json()["value"], a.value.as_str(), "trial {trial}: {a:?}");
        }
        server.kill9();
    }
}
