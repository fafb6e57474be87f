//! Link-time settings of the executable that Cargo.toml cannot express.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        // Relative relocations packed (DT_RELR; the linker records glibc ≥ 2.36 as the
        // version GLIBC_ABI_DT_RELR): the dynamic loader reads 8 KiB of them in each
        // process instead of 630 KiB, and every pool worker is a process of this
        // executable whose RSS counts those pages (docs/performance.md).
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
