#![no_main]
//! Fuzz target: see `omero_webctl::fuzz_checks::image_file` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| omero_webctl::fuzz_checks::image_file(data));
