//! `wdiamond:plugin/config`: the plugin's own merged configuration (and,
//! for a Python collector, its script: `host/script.rs`).

use super::script as python;
use super::HostState;
use crate::bindings::types::{ConfigEntry, ConfigValue};
use crate::bindings::wit_config::Host;

impl Host for HostState {
    fn get(&mut self, key: String) -> Option<ConfigValue> {
        if let Some(script) = &self.ctx.script {
            if key == python::SCRIPT_KEY {
                return Some(ConfigValue::Text(script.source.clone()));
            }
            if key == python::SCRIPT_NAME_KEY {
                return Some(ConfigValue::Text(script.path.display().to_string()));
            }
            if key == python::PYTHON_PATH_KEY {
                let dirs = script.python_path.iter();
                return Some(ConfigValue::TextList(
                    dirs.map(|d| d.to_string_lossy().into_owned()).collect(),
                ));
            }
            if key == python::DIRECTORIES_KEY {
                let dirs = self.ctx.grants.directories.iter();
                return Some(ConfigValue::TextList(
                    dirs.map(|d| d.to_string_lossy().into_owned()).collect(),
                ));
            }
        }
        self.ctx
            .config
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    }

    fn entries(&mut self) -> Vec<ConfigEntry> {
        self.ctx.config.clone()
    }
}
