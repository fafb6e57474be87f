fn main() -> std::process::ExitCode {
    omero_webctl::cli::main()
}
