//! The client half of `atoll`: verbs that talk to a server over its HTTP API (SPEC §6).
//!
//! # Layout
//! - [`profile`]: `profiles.json` and how flags, environment and profile combine.
//! - [`http`]: the HTTP client, API errors, retries.
//! - [`error`]: [`CliError`] and the exit codes.
//! - [`login`], [`init`], [`deploy`], [`runs`], [`logs`]: the verbs.
//! - [`render`]: human output (events, run records, tables).

pub mod deploy;
pub mod error;
pub mod http;
pub mod init;
pub mod login;
pub mod logs;
pub mod profile;
pub mod render;
pub mod runs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use error::{CliError, CliResult, Exit};
use http::Api;

/// Where the server is and which key to use; on every client verb.
#[derive(Args, Clone, Debug, Default)]
pub struct ClientOpts {
    /// Server URL [default: the profile's, else http://127.0.0.1:7070].
    #[arg(long, env = "ATOLL_URL")]
    pub url: Option<String>,
    /// API key (atl_...) [default: the profile's].
    #[arg(long, env = "ATOLL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Profile saved by `atoll login` [default: default].
    #[arg(long, env = "ATOLL_PROFILE")]
    pub profile: Option<String>,
    /// For an org key: the app whose runs to read (`?app_id=`).
    #[arg(long = "app", value_name = "APP_ID")]
    pub app: Option<String>,
    /// Print the API's JSON (one document, or one JSON object per line for events).
    #[arg(long)]
    pub json: bool,
}

impl ClientOpts {
    fn api(&self) -> CliResult<Api> {
        Api::new(profile::resolve(
            self.url.as_deref(),
            self.api_key.as_deref(),
            self.app.as_deref(),
            self.profile.as_deref(),
        )?)
    }
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Save a server URL and API key as a profile (checked against the server first).
    Login(LoginArgs),
    /// Create a new agent package that deploys and runs as it is.
    Init(InitArgs),
    /// Check, pack and upload the agent package in DIR.
    Deploy(DeployArgs),
    /// Start a run of an agent.
    Run(RunArgs),
    /// List, show and cancel runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Show a run's events (`--follow` waits for more until the run ends).
    Logs(LogsArgs),
    /// Deliver a signal to a run waiting in `ctx.waitFor(NAME)`.
    Signal(SignalArgs),
}

#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct InitArgs {
    /// Directory to create the package in (made if missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The package name [default: @local/<directory name>].
    #[arg(long, value_name = "@SCOPE/NAME")]
    name: Option<String>,
}

#[derive(Args)]
pub struct DeployArgs {
    /// The package directory (with agent.json).
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct RunArgs {
    /// @scope/name (or scope/name).
    agent: String,
    /// The input: JSON, @file, or - for stdin.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Run this version instead of the latest.
    #[arg(long)]
    version: Option<String>,
    /// The end-user the run acts for.
    #[arg(long, value_name = "ID")]
    end_user: Option<String>,
    /// Wait until the run ends and print its outcome; the exit code tells it.
    #[arg(long)]
    wait: bool,
    /// Show the run's events as they happen, until it ends; the exit code tells it.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// The app's runs, newest first.
    List(RunsListArgs),
    /// One run's record.
    Get(RunIdArgs),
    /// Cancel a run.
    Cancel(RunIdArgs),
}

#[derive(Args)]
pub struct RunsListArgs {
    /// Only this agent's runs (@scope/name).
    #[arg(long)]
    agent: Option<String>,
    /// Only runs in this status (queued, running, waiting, succeeded, failed, timed_out,
    /// cancelled).
    #[arg(long)]
    status: Option<String>,
    /// How many runs to show (pages are followed until there are this many).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct RunIdArgs {
    /// The run id (run_...).
    run: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct LogsArgs {
    /// The run id (run_...).
    run: String,
    /// Keep streaming until the run ends (reconnecting if the connection drops).
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct SignalArgs {
    /// The run id (run_...).
    run: String,
    /// The signal's name (what the run passed to ctx.waitFor).
    name: String,
    /// The payload: JSON, @file, or - for stdin.
    #[arg(long, default_value = "null")]
    payload: String,
    #[command(flatten)]
    opts: ClientOpts,
}

impl ClientCommand {
    fn json(&self) -> bool {
        match self {
            ClientCommand::Login(a) => a.opts.json,
            ClientCommand::Init(_) => false,
            ClientCommand::Deploy(a) => a.opts.json,
            ClientCommand::Run(a) => a.opts.json,
            ClientCommand::Runs(RunsCommand::List(a)) => a.opts.json,
            ClientCommand::Runs(RunsCommand::Get(a) | RunsCommand::Cancel(a)) => a.opts.json,
            ClientCommand::Logs(a) => a.opts.json,
            ClientCommand::Signal(a) => a.opts.json,
        }
    }
}

/// Runs a client verb; its exit code.
pub fn main(command: ClientCommand) -> ExitCode {
    let json = command.json();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("atoll: cannot start the async runtime: {e}");
            return Exit::Unavailable.into();
        }
    };
    match runtime.block_on(execute(command)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            e.report(json);
            e.exit.into()
        }
    }
}

async fn execute(command: ClientCommand) -> CliResult<Exit> {
    match command {
        ClientCommand::Login(a) => {
            let name = a
                .opts
                .profile
                .as_deref()
                .unwrap_or(profile::DEFAULT_PROFILE);
            login::login(a.opts.url, a.opts.api_key, a.opts.app, name, a.opts.json).await
        }
        ClientCommand::Init(a) => init::init(&a.dir, a.name.as_deref()),
        ClientCommand::Deploy(a) => deploy::deploy(&a.opts.api()?, &a.dir, a.opts.json).await,
        ClientCommand::Run(a) => {
            let input = runs::json_arg("--input", &a.input)?;
            let request = runs::RunRequest {
                agent: a.agent,
                input,
                version: a.version,
                end_user: a.end_user,
                wait: a.wait,
                follow: a.follow,
            };
            runs::run(&a.opts.api()?, request, a.opts.json).await
        }
        ClientCommand::Runs(RunsCommand::List(a)) => {
            let api = a.opts.api()?;
            let limit =
                usize::try_from(a.limit).map_err(|_| CliError::usage("--limit is too large"))?;
            runs::list(
                &api,
                a.agent.as_deref(),
                a.status.as_deref(),
                limit,
                a.opts.json,
            )
            .await
        }
        ClientCommand::Runs(RunsCommand::Get(a)) => {
            runs::get(&a.opts.api()?, &a.run, a.opts.json).await
        }
        ClientCommand::Runs(RunsCommand::Cancel(a)) => {
            runs::cancel(&a.opts.api()?, &a.run, a.opts.json).await
        }
        ClientCommand::Logs(a) => logs::logs(&a.opts.api()?, &a.run, a.follow, a.opts.json).await,
        ClientCommand::Signal(a) => {
            let payload = runs::json_arg("--payload", &a.payload)?;
            runs::signal(&a.opts.api()?, &a.run, &a.name, payload, a.opts.json).await
        }
    }
}
