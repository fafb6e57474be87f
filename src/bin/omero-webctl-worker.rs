//! `omero-webctl-worker`: the pool's worker alone, which the master starts instead of
//! `omero-webctl … worker` when it is of the same build (`pool::worker_program`). Only
//! the worker's code is linked in, so each worker maps and touches fewer pages.

fn main() -> std::process::ExitCode {
    omero_webctl::cli::worker_program_main()
}
