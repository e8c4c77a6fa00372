//! The `bench` binary; everything is in the library ([`bench::cli::main`]).

fn main() -> std::process::ExitCode {
    bench::cli::main()
}
