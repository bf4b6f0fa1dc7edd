//! The `corelb` binary: parse flags, load config, start, serve until a
//! signal says stop.

use std::process::ExitCode;

use clap::Parser as _;
use corelb::config::cli::{Cli, Command};
use corelb::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc takes its options when it first maps memory, before `main`
/// runs (the runtime's start-up allocates): so they are set from the
/// program's constructors, which run before any of that.
#[used]
#[link_section = ".init_array"]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

extern "C" fn configure_allocator() {
    corelb::memory::configure();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version: clap prints them and exits 0.
        Err(e) if !e.use_stderr() => e.exit(),
        // One line naming the flag, like corelb's own errors; clap's usage
        // hint after it is left to --help.
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("corelb: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Demo) => corelb::demo::prepare(&cli).and_then(|(config, cli, help)| {
            corelb::serve::serve(config, cli, |control| help.print(control))
        }),
        None => run(&cli),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("corelb: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<u8, String> {
    let config = Config::load(cli).map_err(|e| e.to_string())?;
    if cli.check {
        // Certificates and keys too: every file read and checked.
        let tls = corelb::transport::tls::TlsCommon::new(config.tls.ticket_keys.as_deref())?;
        let (_, warnings) = corelb::tls_load::acceptors(&config.listeners, &tls)?;
        let (_, backend_warnings) = corelb::tls_load::connectors(&config.pools)?;
        for warning in warnings.into_iter().chain(backend_warnings) {
            eprintln!("corelb: warning: {warning}");
        }
        println!("corelb: configuration OK ({})", config.summary());
        return Ok(0);
    }
    corelb::serve::serve(config, cli.clone(), |_| {})
}
