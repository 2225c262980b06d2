//! The `backfill` binary: parse arguments, call the library, render, map errors to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            cli::render::note(&format!("error: cannot start the runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            cli::render::note(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

/// glibc gives every thread that allocates its own heap (up to 8 per core); partitions
/// are decoded on some threads and freed on others, and each heap keeps its high-water
/// mark. Two heaps cut the peak RSS of a run by a third at the same speed (README
/// "Performance").
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
