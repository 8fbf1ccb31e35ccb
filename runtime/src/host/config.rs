//! `wdiamond:plugin/config`: the plugin's own merged configuration.

use super::HostState;
use crate::bindings::types::{ConfigEntry, ConfigValue};
use crate::bindings::wit_config::Host;

impl Host for HostState {
    fn get(&mut self, key: String) -> Option<ConfigValue> {
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
