//! Test-only exporter: `render` does what `mode` says — `ok` (a page
//! counting the metrics processed), `spin`, `sleep` (blocked in WASI),
//! `hog` (allocates without end), `trap`, `error` (a long error with
//! control characters), `header` (a Content-Type that injects headers),
//! `huge` (a page of `bytes` bytes), `echo` (the scrape's fields).

use wdiamond_sdk::{
    export_exporter, option, Batch, Config, ConfigValue, Description, Exporter, Handler, Page,
    Scrape,
};

/// The exporter's state.
pub struct Misbehave {
    mode: String,
    bytes: usize,
    seen: u64,
    renders: u64,
}

impl Handler for Misbehave {
    fn describe() -> Description {
        Description {
            name: "exporter_misbehave".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Test-only: render misbehaves as `mode` says.".into(),
            options: vec![
                option("mode", ConfigValue::Text("ok".into()), "what render does"),
                option(
                    "bytes",
                    ConfigValue::Integer(1 << 20),
                    "page size for `huge`",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Misbehave {
            mode: config.text("mode")?,
            bytes: config.f64("bytes")? as usize,
            seen: 0,
            renders: 0,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        self.seen += batch.len() as u64;
        Ok(())
    }
}

impl Exporter for Misbehave {
    fn render(&mut self, scrape: &Scrape) -> Result<Page, String> {
        self.renders += 1;
        let page = |body: String| Page {
            content_type: "text/plain; version=0.0.4".into(),
            body: body.into_bytes(),
        };
        match self.mode.as_str() {
            "spin" => loop {
                std::hint::black_box(&mut self.renders);
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(86_400));
                Ok(page(String::new()))
            }
            "hog" => {
                let mut v: Vec<Vec<u8>> = Vec::new();
                loop {
                    v.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&v);
                }
            }
            "trap" => panic!("render trapped on purpose"),
            "error" => Err(format!("bad\u{1b}[31m\nthing\r\n{}", "x".repeat(100_000))),
            "header" => Ok(Page {
                content_type: "text/plain\r\nSet-Cookie: stolen=1".into(),
                body: b"x\n".to_vec(),
            }),
            "huge" => Ok(Page {
                content_type: "text/plain".into(),
                body: vec![b'a'; self.bytes],
            }),
            "echo" => Ok(page(format!(
                "path={} query={} accept={}\n",
                scrape.path, scrape.query, scrape.accept
            ))),
            _ => Ok(page(format!(
                "# TYPE seen gauge\nseen {}\n# TYPE renders gauge\nrenders {}\n",
                self.seen, self.renders
            ))),
        }
    }
}

export_exporter!(Misbehave);
