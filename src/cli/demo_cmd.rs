//! `omero-webctl demo`: writes synthetic multi-channel 16-bit OME-TIFF images into the
//! repository so that everything runs on a fresh machine.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::config::Config;
use crate::gateway::demo::{DemoOptions, write_demo_images};
use crate::site::Site;

pub struct DemoArgs {
    pub images: usize,
    pub size: u32,
    pub channels: u32,
    pub z: u32,
}

pub fn run(site: &Site, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let settings = Config::load(site)?.settings();
    let written = generate(&settings.repository, args)?;
    println!(
        "Wrote {written} demo images ({}×{} px, {} channels, {} Z) to {}",
        args.size,
        args.size,
        args.channels,
        args.z,
        settings.repository.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the images with a progress bar on a terminal (and nothing else otherwise).
pub fn generate(repository: &std::path::Path, args: &DemoArgs) -> anyhow::Result<usize> {
    let dir = repository.join("demo");
    let options = DemoOptions {
        images: args.images,
        size: args.size,
        channels: args.channels,
        z: args.z,
        seed: 42,
    };
    let tty = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if tty {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\rGenerating demo images [{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
            if done == total {
                eprintln!();
            }
        }
    };
    let paths = write_demo_images(&dir, &options, &mut progress)
        .map_err(|e| anyhow::anyhow!("cannot write demo images into {}: {e}", dir.display()))?;
    Ok(paths.len())
}

/// The main job's demo site (`./OMERO.web` when no site is named): on first use, when
/// its repository holds no image yet, fill it with demo images (progress shown).
pub fn seed_demo_site(site: &Site) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        return Ok(()); // The panel refuses to start; do not write anything.
    }
    let settings = Config::load(site)?.settings();
    let has_images =
        crate::gateway::repository::Repository::open(&settings.repository, &site.var_dir())
            .map(|repo| !repo.list().is_empty())
            .unwrap_or(false);
    if has_images {
        return Ok(());
    }
    eprintln!(
        "First use of the demo site {}: writing demo images into {}",
        site.root().display(),
        settings.repository.display()
    );
    generate(
        &settings.repository,
        &DemoArgs {
            images: 12,
            size: 512,
            channels: 3,
            z: 5,
        },
    )?;
    Ok(())
}
