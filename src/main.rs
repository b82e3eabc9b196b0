//! The `atoll` binary: a thin wrapper over [`atoll::cli`].

fn main() -> std::process::ExitCode {
    atoll::cli::main()
}
