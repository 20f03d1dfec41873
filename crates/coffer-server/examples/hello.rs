//! Bare hyper baseline for the benchmark harness (`bench/run.sh`).
//!
//! Answers `200 hello` on every path and method, with nothing else in the
//! request path: no routing, no auth, no storage. It is the ceiling that the
//! coffer read numbers are compared against, so it uses the same stack coffer
//! sits on (tokio multi-thread runtime, hyper 1 HTTP/1.1 with keep-alive).
//!
//! Usage: `cargo run --release -p coffer-server --example hello -- 127.0.0.1:8080`

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    println!("hello listening on {}", listener.local_addr()?);

    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            // e.g. EMFILE under a connection storm: keep serving the rest.
            Err(err) => {
                eprintln!("accept failed: {err}");
                continue;
            }
        };
        // Same choice a latency-sensitive server makes; hyper writes each
        // response in one go, so Nagle would only add delay here.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn =
                http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(hello));
            if let Err(err) = conn.await {
                // Clients (wrk) dropping connections at the end of a run are normal.
                if !err.is_incomplete_message() {
                    eprintln!("connection error: {err}");
                }
            }
        });
    }
}
