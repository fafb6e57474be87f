//! The gateway as the pool's application: the [`AppFactory`] the CLI hands the pool.
//! Everything the pool's master and workers do for the gateway goes through here, so
//! the pool never names the gateway.

use std::sync::Arc;

use serde::Deserialize;

use super::http::iviewer;
use super::{GatewayConfig, published, static_files};
use crate::config::Settings;
use crate::http_app::{App, AppConfig, AppFactory, AppNote, NoteSink};
use crate::logging::Level;
use crate::site::Site;

pub struct GatewayFactory;

impl AppFactory for GatewayFactory {
    fn config(&self, settings: &Settings) -> AppConfig {
        serde_json::to_value(GatewayConfig::from_settings(settings))
            .expect("the gateway's configuration serialises")
    }

    fn on_master_start(&self, site: &Site, settings: &Settings) -> Result<Vec<String>, String> {
        // OMERO's collectstatic: nginx serves these from static_root.
        let collected = static_files::collect(&settings.static_root).map_err(|e| {
            format!(
                "cannot collect static files into {} (omero.web.static_root): {e}",
                settings.static_root.display()
            )
        })?;
        // An installed OMERO.iviewer's files, collected as Django's collectstatic would.
        if let Some(bundle) = iviewer::Bundle::locate(&site.var_dir())
            && let Err(e) = bundle.collect_static(&settings.static_root)
        {
            return Err(format!(
                "cannot collect OMERO.iviewer's static files into {} (omero.web.static_root): {e}",
                settings.static_root.display()
            ));
        }
        Ok(vec![format!(
            "{collected} static files copied to '{}', {} unmodified",
            settings.static_root.display(),
            static_files::ASSETS.len() - collected
        )])
    }

    /// Publishes default thumbnails for nginx and keeps them true to the repository
    /// (`omero.web.nginx.published_thumbnails`).
    fn start_background(&self, settings: &Settings, notes: NoteSink) -> Result<(), String> {
        if !settings.published_thumbnails {
            return Ok(());
        }
        let config = GatewayConfig::from_settings(settings);
        published::spawn(config, move |pass| {
            let message = format!(
                "Thumbnails for nginx: {} published, {} removed as stale, {} failed to render",
                pass.rendered, pass.removed, pass.failed
            );
            notes(AppNote {
                level: if pass.failed > 0 {
                    Level::Warning
                } else {
                    Level::Debug
                },
                logger: None,
                message,
            });
        })
        .map_err(|e| {
            format!("cannot publish thumbnails for nginx (they are served by the pool): {e}")
        })
    }

    fn boot(&self, config: &AppConfig) -> Result<Arc<dyn App>, String> {
        super::boot(decode(config)?)
    }

    fn boot_notes(&self, config: &AppConfig) -> Vec<AppNote> {
        let Ok(config) = decode(config) else {
            return Vec::new();
        };
        super::sessions_note(&config.access)
            .map(|message| AppNote {
                level: Level::Info,
                logger: Some("omeroweb.gateway"),
                message,
            })
            .into_iter()
            .collect()
    }

    /// The image files kept mapped for reading rows are unmapped (the file pages they
    /// touched count in the worker's RSS); the gateway's caches are bounded, and the
    /// memory a render freed goes back through the worker's allocator trim
    /// (`pool::allocator::release_free_memory`), which runs after this.
    fn on_idle(&self) {
        super::imaging::source::release_kept_mappings();
    }
}

fn decode(config: &AppConfig) -> Result<GatewayConfig, String> {
    GatewayConfig::deserialize(config)
        .map_err(|e| format!("the worker's gateway configuration is unreadable: {e}"))
}
