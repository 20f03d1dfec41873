//! The deployment files under `deploy/`, each checked by the tool made for
//! it: `systemd-analyze verify` and `security` for the unit, hadolint for
//! the Dockerfile, kubernetes-validate (Kubernetes' own schemas, strict)
//! for the manifests. Every coffer configuration they carry (the example
//! files and the ConfigMaps' `coffer.toml`) must be one the server accepts.
//! A missing checker fails these tests: `.ci/run` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::BIN;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn run(program: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (.ci/run installs it): {e}"))
}

/// `systemd-analyze verify` on the unit as shipped, but for the path of the
/// binary, which is the one under test here (verify checks that
/// `ExecStart` names an executable). Any message at all fails: systemd
/// only warns, exit status 0, about an unknown or misspelt directive.
#[test]
fn systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(deploy("systemd/coffer.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/coffer server"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/coffer", BIN)).unwrap();
    let out = run(
        "systemd-analyze",
        &["verify".as_ref(), "--man=no".as_ref(), path.as_os_str()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

/// The sandboxing score systemd itself gives the unit (0 is fully
/// confined, 10 is unconfined). The README records the figure; this keeps
/// it from creeping up unnoticed.
#[test]
fn systemd_unit_exposure_score_stays_low() {
    let out = run(
        "systemd-analyze",
        &[
            "security".as_ref(),
            "--offline=true".as_ref(),
            "--no-pager".as_ref(),
            deploy("systemd/coffer.service").as_os_str(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for coffer.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        score <= 1.5,
        "exposure level {score} (1.2 when written); see deploy/README.md"
    );
    for must in [
        "NoNewPrivileges=",
        "ProtectSystem=",
        "MemoryDenyWriteExecute=",
        "PrivateDevices=",
        "RestrictSUIDSGID=",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(must))
            .unwrap_or_else(|| panic!("{must} not assessed:\n{text}"));
        assert!(line.trim_start().starts_with('✓'), "{line}");
    }
    let unit = std::fs::read_to_string(deploy("systemd/coffer.service")).unwrap();
    for line in ["LimitCORE=0", "User=coffer", "UMask=0077"] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing from the unit"
        );
    }
}

#[test]
fn dockerfile_passes_hadolint_and_runs_as_non_root() {
    let file = deploy("docker/Dockerfile");
    let out = run(
        "hadolint",
        &[
            "--failure-threshold".as_ref(),
            "info".as_ref(),
            file.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The final stage: a base without a shell, a numeric non-root user, and
    // the binary as the entry point in exec form.
    let text = std::fs::read_to_string(&file).unwrap();
    let last = text.rsplit("\nFROM ").next().unwrap();
    assert!(
        last.starts_with("gcr.io/distroless/"),
        "final stage: {last}"
    );
    assert!(last.lines().any(|l| l == "USER 65532:65532"));
    assert!(
        last.lines()
            .any(|l| l == r#"ENTRYPOINT ["/usr/local/bin/coffer"]"#)
    );
    assert!(
        !last.contains("RUN "),
        "the final stage has no shell to run anything with"
    );
}

#[test]
fn kubernetes_manifests_match_the_schemas_strictly() {
    let files = ["kubernetes/single-node.yaml", "kubernetes/postgres.yaml"].map(deploy);
    let mut args: Vec<&std::ffi::OsStr> = vec!["--strict".as_ref(), "--quiet".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = run("kubernetes-validate", &args);
    assert!(
        out.status.success(),
        "kubernetes-validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for hardened in [
            "runAsNonRoot: true",
            "readOnlyRootFilesystem: true",
            "allowPrivilegeEscalation: false",
            "automountServiceAccountToken: false",
            "capabilities: {drop: [\"ALL\"]}",
        ] {
            assert!(text.contains(hardened), "{}: no {hardened}", file.display());
        }
    }
}

/// Every configuration the deployment files carry is one the server
/// accepts: the example files, and each ConfigMap's `coffer.toml` (read out
/// of the manifests with PyYAML, as Kubernetes would mount it).
#[test]
fn deployment_configurations_are_accepted_by_the_server() {
    let mut configs = vec![
        (
            "systemd/coffer.toml".to_string(),
            std::fs::read_to_string(deploy("systemd/coffer.toml")).unwrap(),
        ),
        (
            "docker/coffer.toml".to_string(),
            std::fs::read_to_string(deploy("docker/coffer.toml")).unwrap(),
        ),
    ];
    for manifest in ["kubernetes/single-node.yaml", "kubernetes/postgres.yaml"] {
        let script = "import sys, yaml, json\n\
                      docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d['kind'] == 'ConfigMap']\n\
                      print(json.dumps([d['data']['coffer.toml'] for d in docs]))";
        let out = run(
            "python3",
            &["-c".as_ref(), script.as_ref(), deploy(manifest).as_os_str()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(found.len(), 1, "{manifest}: one ConfigMap with coffer.toml");
        configs.push((manifest.to_string(), found.into_iter().next().unwrap()));
    }
    for (name, text) in configs {
        let config = coffer_server::ServerConfig::parse(&text)
            .unwrap_or_else(|e| panic!("{name}: the server refuses it: {e}"));
        config
            .host_rules()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            config.tls.is_some(),
            "{name}: a non-loopback listener needs [tls]"
        );
    }
}
