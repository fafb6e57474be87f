//! The `omero-webctl` executable: everything lives in the library (`src/lib.rs`), so
//! the tests, the fuzz targets and the benchmarks drive the same code; this only hands
//! the command line to `cli::main`.

fn main() -> std::process::ExitCode {
    omero_webctl::cli::main()
}
