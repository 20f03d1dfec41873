//! `coffer server`: a configuration from the file and the flags, logging,
//! a [`Node`] started from them, and its shutdown on SIGINT/SIGTERM. The
//! node itself (store, core, audit log, jobs, listener) is coffer-server's.

use std::io::Write;
use std::path::{Path, PathBuf};

use coffer_server::{LogFormat, Node, NodeError, NodeOptions, ServerConfig};

use crate::cli::ServerArgs;
use crate::exit::{Status, fail};
use crate::settings;

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<Status> {
    let config = if args.dev {
        dev_config(&args)?
    } else {
        let path = args
            .config
            .as_deref()
            .expect("clap requires --config without --dev");
        let mut c = ServerConfig::load(path).map_err(|e| fail(Status::Usage, e.to_string()))?;
        if let Some(l) = args.listen {
            c.listen = l;
        }
        if let Some(d) = &args.data_dir {
            c.data_dir = d.clone();
        }
        c
    };
    let mut config = config;
    if let Some(url) = &args.storage {
        config.storage.url = Some(url.clone());
        if config.storage.url_has_password() {
            eprintln!(
                "warning: --storage carries a password, which other users of this machine can \
                 see on the command line; use COFFER_STORAGE_PASSWORD or the config file"
            );
        }
        config
            .storage
            .validate()
            .map_err(|e| fail(Status::Usage, format!("--storage: {e}")))?;
    }
    if !args.audit_file.is_empty() {
        config.audit.files = Some(args.audit_file.clone());
    }
    config
        .audit
        .sockets
        .extend(args.audit_socket.iter().cloned());
    config.audit.stdout |= args.audit_stdout;
    if let Some(secs) = args.lifecycle_interval {
        config.lifecycle_interval_secs = secs;
    }
    init_logging(&config.log_level, config.log_format);
    // Before any key is in memory: no core dumps, non-dumpable, memory
    // locked where the limit allows (see coffer_server::harden).
    let hardening = coffer_server::harden::harden_process();
    tracing::info!(
        core_dumps_disabled = hardening.core_dumps_disabled,
        non_dumpable = hardening.non_dumpable,
        memory_locked = hardening.memory_locked,
        "process hardening"
    );
    for note in &hardening.notes {
        tracing::warn!("{note}");
    }
    let data_dir = config.data_dir.clone();
    let node = Node::start(
        config,
        NodeOptions {
            dev: args.dev,
            rotate_audit_on_hangup: true,
        },
    )
    .await
    .map_err(node_failure)?;
    for warning in coffer_server::harden::exposure_warnings(&data_dir, args.config.as_deref()) {
        tracing::warn!("{warning}");
    }
    node.coffer().warn_weak_jwt_roles().await;
    let addr = node.url();
    if args.dev {
        print_dev_banner(&addr, &data_dir, node.audit_files());
    } else {
        let s = node.coffer().status();
        println!("Coffer listening on {addr}");
        for f in node.audit_files() {
            println!("Audit log: {}", f.display());
        }
        tracing::info!(%addr, storage = s.storage, initialized = s.initialized, sealed = s.sealed, "coffer listening");
        if !s.initialized {
            eprintln!("coffer is not initialized: run `COFFER_ADDR={addr} coffer operator init`");
        } else if s.sealed {
            eprintln!(
                "coffer is sealed: run `COFFER_ADDR={addr} coffer operator unseal` with {} key(s)",
                s.threshold
            );
        }
    }
    shutdown_signal().await;
    node.shutdown().await.map_err(node_failure)?;
    Ok(Status::Ok)
}

/// The error a node reports, with the exit status it means: a usage error
/// for a configuration the node cannot start with, otherwise 1.
pub(crate) fn node_failure(e: NodeError) -> anyhow::Error {
    let usage = e.is_config();
    let e = anyhow::Error::new(e);
    if usage {
        fail(Status::Usage, format!("{e:#}"))
    } else {
        e
    }
}

fn dev_config(args: &ServerArgs) -> anyhow::Result<ServerConfig> {
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => settings::default_dev_dir()
            .ok_or_else(|| fail(Status::Usage, "HOME is not set; pass --data-dir"))?,
    };
    let mut c = ServerConfig::parse(&format!("data_dir = {:?}", data_dir.display().to_string()))
        .map_err(|e| fail(Status::Usage, e))?;
    if let Some(l) = args.listen {
        c.listen = l;
    }
    Ok(c)
}

fn print_dev_banner(addr: &str, dir: &Path, audit: &[PathBuf]) {
    let token = dir.join(coffer_server::dev::ROOT_TOKEN_FILE);
    let exe = std::env::current_exe().ok();
    let on_path = exe.as_deref().is_some_and(is_on_path);
    let coffer = if on_path {
        "coffer".to_string()
    } else {
        exe.map_or_else(|| "coffer".to_string(), |p| p.display().to_string())
    };
    // Formatted first and written whole, so whoever reads the output (a
    // script waiting for the address, say) never sees half a banner.
    let banner = format!(
        "\nCoffer dev server is running.\n\n\
         \x20 Address:     {addr}\n\
         \x20 Data:        {dir}  (SQLite; values encrypted at rest)\n\
         \x20 Root token:  {token}  (readable by you only)\n\
         \x20 Audit log:   {audit}\n\n\
         Dev mode keeps its unseal key in the data directory so it can unseal itself on\n\
         every start. Use `coffer server --config FILE` for anything that matters.\n\n\
         Next steps, in another terminal:\n\n\
         \x20 export COFFER_ADDR={addr}\n\
         \x20 {coffer} login < {token}\n\
         \x20 {coffer} set myapp/dev/API_KEY        # type the value; it is not echoed\n\
         \x20 {coffer} get myapp/dev/API_KEY\n\
         \x20 {coffer} ls myapp -r\n\n\
         Press Ctrl-C to stop.\n",
        dir = dir.display(),
        token = token.display(),
        audit = if audit.is_empty() {
            "sockets/stdout only".to_string()
        } else {
            audit
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
}

fn is_on_path(exe: &Path) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    std::env::split_paths(&path)
        .any(|d: PathBuf| std::fs::canonicalize(d.join("coffer")).is_ok_and(|p| p == exe))
}

fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("COFFER_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && !no_color())
        .with_target(false);
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `NO_COLOR` set to anything but the empty string turns colour off
/// (no-color.org). clap's own help output honours it already.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}
