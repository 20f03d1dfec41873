//! `coffer-loadgen`: benchmark tool, an open-loop constant-rate HTTP/1.1 load
//! generator (see the library docs for the method). Used by `bench/run.sh` for
//! the read latency at half of peak load.
//!
//! ```sh
//! coffer-loadgen --url http://127.0.0.1:8200/api/v1/secrets/bench/read \
//!     --rate 40000 --duration 10s --warmup 2s --connections 32 \
//!     --header @auth-header-file --json
//! ```
//!
//! Exits 1 when any request failed or got a non-2xx response (the run stops at
//! the first one) unless `--allow-errors`, 2 on bad arguments.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use coffer_loadgen::{Config, PacerMode, Report, parse_duration, parse_header_arg, run};

/// Open-loop, constant-rate HTTP/1.1 GET load generator (a benchmark tool).
/// Request i is due at start + i/RATE; its latency counts from that due time to
/// the end of its response, so generator lateness and queueing count against the
/// server.
#[derive(Parser, Debug)]
#[command(name = "coffer-loadgen", version)]
struct Args {
    /// Target, http:// only, e.g. http://127.0.0.1:8200/path
    #[arg(long)]
    url: String,
    /// Requests per second
    #[arg(long)]
    rate: f64,
    /// Measured length (10s, 500ms, 2m)
    #[arg(long, value_parser = parse_duration)]
    duration: Duration,
    /// Persistent keep-alive connections
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// Request header "K: V" (repeatable), or @FILE for one "K: V" per line of
    /// FILE (keeps a credential out of the command line)
    #[arg(long = "header", short = 'H', value_name = "K: V | @FILE")]
    headers: Vec<String>,
    /// Unmeasured lead-in at the same rate, same schedule (errors still count)
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
    /// Per-request timeout, from send to the end of the response
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Do not stop or fail on socket errors and non-2xx responses
    #[arg(long)]
    allow_errors: bool,
    /// Print one JSON object instead of a text summary
    #[arg(long)]
    json: bool,
    /// Minimum period of the pacer's wake-ups (each costs CPU; see the docs)
    #[arg(long, value_parser = parse_duration, default_value = "200us")]
    pacer_tick: Duration,
    /// Where the pacer runs: timerfd (a task on the connections' thread) or
    /// thread (a thread of its own, the first design)
    #[arg(long, value_parser = ["timerfd", "thread"], default_value = "timerfd")]
    pacer: String,
    /// Timer slack to ask Linux for, in ns (best effort; 0 = leave the default, 50 us)
    #[arg(long, default_value_t = 1000)]
    timer_slack_ns: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let headers = match args
        .headers
        .iter()
        .map(|h| parse_header_arg(h))
        .collect::<anyhow::Result<Vec<_>>>()
    {
        Ok(h) => h.into_iter().flatten().collect(),
        Err(e) => {
            eprintln!("coffer-loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    // The pacer sleeps between due times on an hrtimer; the default 50 us timer
    // slack would add up to that much to every wake-up. Threads inherit the slack
    // of the thread that creates them, so set it before any is started.
    let slack = set_timer_slack(args.timer_slack_ns);
    let cfg = Config {
        url: args.url,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        headers,
        timeout: args.timeout,
        allow_errors: args.allow_errors,
        pacer_tick: args.pacer_tick,
        pacer_mode: if args.pacer == "thread" {
            PacerMode::Thread
        } else {
            PacerMode::Timerfd
        },
    };
    let report = match run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffer-loadgen: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "timer_slack_ns".into(),
                slack.map_or(serde_json::Value::Null, Into::into),
            );
        }
        println!("{v}");
    } else {
        print_text(&report, slack);
    }
    if report.has_errors() && !args.allow_errors {
        eprintln!(
            "coffer-loadgen: FAIL: non-2xx {} (statuses {:?}), errors {:?}; warm-up: non-2xx {}, errors {:?}",
            report.counts.non_2xx,
            report.counts.status,
            report.counts.errors,
            report.warmup.counts.non_2xx,
            report.warmup.counts.errors
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Ask for a smaller timer slack for this (main) thread; returns the slack in force.
fn set_timer_slack(ns: u64) -> Option<u64> {
    const PATH: &str = "/proc/self/timerslack_ns";
    if ns > 0 {
        let _ = std::fs::write(PATH, ns.to_string());
    }
    std::fs::read_to_string(PATH).ok()?.trim().parse().ok()
}

fn print_text(r: &Report, slack: Option<u64>) {
    let p = |name: &str, l: &coffer_loadgen::Percentiles| {
        println!(
            "{name:<10} p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        );
    };
    println!(
        "{} requests in {:.3} s over {} connections: {:.1} req/s achieved of {:.1} requested",
        r.requests, r.elapsed_s, r.connections, r.achieved_rate, r.requested_rate
    );
    println!(
        "statuses {:?}, non-2xx {}, errors {:?}{}",
        r.counts.status,
        r.counts.non_2xx,
        r.counts.errors,
        if r.stopped_early {
            " (stopped early)"
        } else {
            ""
        }
    );
    p("latency", &r.latency_ms);
    p("send lag", &r.send_lag_ms);
    p("from send", &r.from_send_ms);
    p("pacer late", &r.pacer.wake_late_ms);
    println!(
        "pacer: {} wake-ups, tick {} us; at most {} of {} connections busy",
        r.pacer.wakes, r.pacer.tick_us, r.in_flight_max, r.connections
    );
    if let Some(c) = &r.cpu {
        println!(
            "CPU: machine {:.1}% busy ({} CPUs; {:.1}% stolen by the host), generator {:.1}% of one CPU",
            c.machine_busy_pct, c.cpus, c.steal_pct, c.generator_pct_of_one_core
        );
    }
    if let Some(s) = slack {
        println!("timer slack {s} ns");
    }
}
