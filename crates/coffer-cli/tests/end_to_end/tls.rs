//! TLS with rustls: a server with a certificate made by `openssl`, a client
//! that trusts it through `COFFER_CACERT`, refusals for clients that do not,
//! for plain HTTP on the TLS port, and for TLS older than 1.2.

use crate::common;

use std::io::{Read, Write};
use std::process::Command;

use common::{Mode, Server};

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as a deployment
/// would have. Returns (ca.pem, cert.pem, key.pem).
fn make_certs(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=coffer-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    ca.extend(ec);
    openssl(&ca, dir);
    let mut csr = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ];
    csr.extend(ec);
    openssl(&csr, dir);
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
        dir,
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[test]
fn tls_server_and_client() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let config = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    assert!(
        server.addr.starts_with("https://127.0.0.1:"),
        "{}",
        server.addr
    );
    let cacert = ca.display().to_string();

    // Trusted through COFFER_CACERT: the whole flow works over TLS.
    let (_key, root) = common::init_and_unseal(|| server.cli().env("COFFER_CACERT", &cacert));
    server
        .cli()
        .env("COFFER_CACERT", &cacert)
        .token(&root)
        .stdin("over-tls")
        .run(&["set", "t/KEY"])
        .expect(0);
    assert_eq!(
        server
            .cli()
            .env("COFFER_CACERT", &cacert)
            .token(&root)
            .run(&["get", "t/KEY"])
            .expect(0)
            .stdout(),
        "over-tls"
    );
    // --ca-cert works like the variable.
    server
        .cli()
        .token(&root)
        .run(&["--ca-cert", &cacert, "get", "t/KEY"])
        .expect(0);

    // Not trusted: refused as unreachable, with the reason.
    let untrusted = server.cli().token(&root).run(&["get", "t/KEY"]).expect(6);
    assert!(
        untrusted.stderr().to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr()
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut s = std::net::TcpStream::connect(server.host_port()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GET /api/v1/sys/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was served on the TLS port"
    );

    // TLS 1.1 is refused; TLS 1.2 and 1.3 are accepted.
    for (flag, accepted) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                server.host_port(),
                flag,
                "-CAfile",
                &cacert,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let verified =
            text.contains("Verify return code: 0 (ok)") && !text.contains("Cipher is (NONE)");
        assert_eq!(verified, accepted, "openssl s_client {flag}: {text}");
    }
}
