//! `coffer completions` and `coffer manpages`: shell completion scripts and
//! manual pages, generated from the command definitions in `cli.rs` (so
//! they never drift from the commands themselves).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::cli::Cli;
use crate::exit::{Status, fail};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Prints the completion script for the shell on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<Status> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "coffer", &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(Status::Ok)
}

/// Writes `coffer.1` and one page per command and subcommand into the
/// directory.
pub fn manpages(args: ManpagesArgs) -> anyhow::Result<Status> {
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        fail(
            Status::Other,
            format!("cannot create {}: {e}", args.dir.display()),
        )
    })?;
    let command = Cli::command();
    clap_mangen::generate_to(command, &args.dir).map_err(|e| {
        fail(
            Status::Other,
            format!("cannot write manual pages into {}: {e}", args.dir.display()),
        )
    })?;
    let count = std::fs::read_dir(&args.dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
                .count()
        })
        .unwrap_or(0);
    eprintln!("{count} manual pages in {}", args.dir.display());
    Ok(Status::Ok)
}
