//! `coffer`: the server, the operator tool and the client, in one binary.
//!
//! `main` parses the command line, runs one command, and turns its outcome
//! into a one-line error on stderr and a documented exit status (see
//! [`exit::Status`]). Nothing here ever prints a secret unless the command's
//! job is to print it (`coffer get`, `coffer operator init`).

#![forbid(unsafe_code)]

mod access_cmd;
mod approle_cmd;
mod audit_cmd;
mod auth_cmd;
mod backup_cmd;
mod check_cmd;
mod cli;
mod commands;
mod docs_check;
mod docs_cmd;
mod doctor_cmd;
mod env_names;
mod exit;
mod hook_cmd;
mod input;
mod known_cmd;
mod leak_cmd;
mod lifecycle_cmd;
mod migrate_cmd;
mod output;
mod redact;
mod run_cache;
mod run_cmd;
mod scan_cmd;
mod server_cmd;
mod settings;
mod share_cmd;
mod sync_cmd;
mod transfer_cmd;

/// mimalloc instead of the system allocator: under load, glibc malloc and free
/// (requests allocate on one core and often free on another) cost the
/// server about a tenth of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors; everything else is a usage error.
            let code = if e.use_stderr() {
                exit::Status::Usage
            } else {
                exit::Status::Ok
            };
            let _ = e.print();
            return code.into();
        }
    };
    // Client commands make one or two requests: a single-threaded runtime
    // keeps their start-up cheap. The server uses one worker per core.
    let mut builder = if cli.is_server() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().thread_name("coffer").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coffer: error: cannot start the async runtime: {e}");
            return exit::Status::Other.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(status) => status.into(),
        Err(e) => {
            exit::report(&e);
            exit::status_of(&e).into()
        }
    }
}
