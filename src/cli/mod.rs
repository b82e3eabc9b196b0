//! The `atoll` command line: the server (`serve`, `dev`), the local runner (`exec`), and
//! the client verbs that talk to a server (`login`, `init`, `deploy`, `run`, `runs`,
//! `logs`, `signal`; see `docs/cli.md`).

mod client;
mod exec;
mod serve;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "atoll", version, about = "A runtime where agents go to live")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one agent package once in the sandbox and print its run record as JSON.
    Exec(exec::ExecArgs),
    /// Serve the HTTP API.
    Serve(crate::config::ServeArgs),
    /// Serve with embedded storage, a dev org/app/key and every package of agents/.
    Dev(serve::DevArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `GET /v1/openapi.json` answers).
    Openapi,
    /// A sandbox process (started by the server, never by hand).
    #[command(name = "__sandbox", hide = true)]
    Sandbox(crate::process::child::ChildArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A sandbox process locks itself down before anything else happens, and logs over
    // its channel rather than to a stderr it does not keep.
    if let Command::Sandbox(args) = cli.command {
        return crate::process::child::main(args);
    }
    // The quickjs engine caches compiled modules on disk and reads them back unchecked:
    // tenant code must never be loaded from a file another run could have written.
    // (Sandbox processes have no file system to cache in.) Set before any thread starts.
    std::env::set_var("V82JSC_NO_BC_CACHE", "1");
    if let Command::Openapi = cli.command {
        return match serde_json::to_string_pretty(crate::api::doc::document()) {
            Ok(doc) => {
                println!("{doc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("atoll: the OpenAPI document did not serialize: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Servers narrate what they do; `exec` and the client verbs print only their answers.
    let default_log = match cli.command {
        Command::Exec(_) | Command::Client(_) => "warn",
        _ => "info",
    };
    let telemetry = crate::telemetry::init(default_log);
    let code = match cli.command {
        Command::Exec(args) => exec::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Dev(args) => serve::dev(args),
        Command::Client(command) => client::main(command),
        Command::Sandbox(_) | Command::Openapi => ExitCode::FAILURE,
    };
    telemetry.shutdown();
    code
}
