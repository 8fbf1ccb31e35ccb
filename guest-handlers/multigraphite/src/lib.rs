//! Diamond's MultiGraphiteHandler: the same plaintext lines to several
//! carbon hosts. A batch succeeds only when every host took it; a failed
//! batch is retried to all of them (a repeat is harmless for carbon, which
//! keeps one value per series and second).

use wdiamond_sdk::net::LineSender;
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// The handler's state.
pub struct MultiGraphite {
    senders: Vec<LineSender>,
}

impl Handler for MultiGraphite {
    fn describe() -> Description {
        Description {
            name: "multigraphite".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Sends graphite plaintext lines to several carbon hosts (Diamond's MultiGraphiteHandler).".into(),
            options: vec![
                option("host", ConfigValue::TextList(vec!["localhost".into()]), "Hosts, each host or host:port"),
                option("port", ConfigValue::Integer(2003), "Port used for hosts without one"),
                option("proto", ConfigValue::Text("tcp".into()), "tcp or udp"),
                option("timeout", ConfigValue::Integer(15), "Seconds to wait for a connect or a send"),
                option("batch", ConfigValue::Integer(1), "Accepted for compatibility"),
                wdiamond_sdk::net::replay_option(),
            ],
            capabilities: vec![Capability::Connect("{proto}:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let port = config.port("port")?;
        let proto = config.protocol("proto")?;
        let timeout = config.timeout_ms("timeout")?;
        let replay = wdiamond_sdk::net::replay_secs(config)?;
        let hosts = config.list("host");
        if hosts.is_empty() {
            return Err("`host` must list at least one host".into());
        }
        let senders = hosts
            .iter()
            .map(|h| {
                let addr = if h
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                    && !h.ends_with(']')
                {
                    h.clone()
                } else {
                    wdiamond_sdk::net::host_port(h, port)
                };
                LineSender::new(proto, addr, timeout).with_replay(replay)
            })
            .collect();
        Ok(MultiGraphite { senders })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        // Each host gets the lines straight from the host's memory.
        let errors: Vec<String> = self
            .senders
            .iter_mut()
            .filter_map(|s| s.send_batch(batch).err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let errors: Vec<String> = self
            .senders
            .iter_mut()
            .filter_map(|s| s.send(&[]).err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

export_handler!(MultiGraphite);
