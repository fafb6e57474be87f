//! Link-time settings of the executables that Cargo.toml cannot express, and the build
//! identity `omero-webctl` and `omero-webctl-worker` share.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    build_id();
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

/// `OMERO_WEBCTL_BUILD_ID`: a hash of everything the executables are built from (the
/// sources, the files they embed, the manifest, the lock file, this script). The pool's master runs
/// `omero-webctl-worker` only when that program reports the same identity
/// (`pool::worker_program`), so a worker program left over from another build (an
/// older install, a `cargo run` that rebuilt only `omero-webctl`) is never mixed with
/// this one. A content hash, not a time or a random number: the same sources give the
/// same identity, so builds stay reproducible.
fn build_id() {
    let root = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    // Everything the executables are compiled from or embed (`include_str!` of
    // assets/ and scripts/).
    let dirs = ["src", "assets", "scripts"];
    let mut files = Vec::new();
    for dir in dirs {
        collect(&root.join(dir), &mut files);
    }
    for name in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        files.push(root.join(name));
    }
    files.sort();
    // FNV-1a over each file's path (relative) and contents: no dependency for a
    // build script, and stable across Rust releases (unlike std's hasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap_or(file);
        feed(relative.to_string_lossy().as_bytes());
        feed(&[0]);
        feed(&std::fs::read(file).unwrap_or_default());
        feed(&[0]);
    }
    println!(
        "cargo:rustc-env=OMERO_WEBCTL_BUILD_ID={}-{hash:016x}",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    // A directory is watched whole (every file in it, recursively).
    for dir in dirs {
        println!("cargo:rerun-if-changed={dir}");
    }
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=Cargo.lock");
}

fn collect(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
