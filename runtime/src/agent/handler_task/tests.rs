//! The handler loop's timing with paused tokio time: linger
//! (`batch_timeout`), a full batch, backoff, the flush interval and the
//! stop's extra flush, each at the instant it must happen.

use super::*;
use crate::bindings::exposition::{Page, Scrape};
use crate::bindings::types::MetricKind;
use crate::metric::{Batch, Chunk, Source};
use std::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant as Clock;

/// What the stand-in was asked, and when (since the harness started).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Asked {
    Process(usize),
    Flush,
}

#[derive(Default)]
struct Script {
    asked: Vec<(Duration, Asked)>,
    /// This many `process` calls return a guest error first.
    errors: usize,
}

/// A handler that records its calls.
struct Recorder {
    script: Arc<Mutex<Script>>,
    start: Clock,
}

impl Sink for Recorder {
    fn process(&mut self, batch: Batch, _: Duration) -> (CallResult<()>, u64) {
        let mut s = self.script.lock().unwrap();
        s.asked
            .push((self.start.elapsed(), Asked::Process(batch.len())));
        if s.errors > 0 {
            s.errors -= 1;
            return (Ok(Err("the backend is down".into())), 0);
        }
        (Ok(Ok(())), 0)
    }

    fn flush(&mut self, _: Duration) -> CallResult<()> {
        let mut s = self.script.lock().unwrap();
        s.asked.push((self.start.elapsed(), Asked::Flush));
        Ok(Ok(()))
    }

    fn render(&mut self, _: &Scrape, _: Duration) -> CallResult<Page> {
        Ok(Err("no page".into()))
    }

    fn set_stopping(&mut self, _: bool) {}

    fn held_batches(&self) -> Vec<Batch> {
        Vec::new()
    }
}

const MS: Duration = Duration::from_millis(1);

fn settings() -> Settings {
    Settings {
        batch_size: 100,
        linger: Duration::ZERO,
        flush_every: Duration::from_secs(10),
        deadline: Duration::from_secs(5),
        retry_max: Duration::from_secs(2),
    }
}

struct Harness {
    queue: Arc<Queue>,
    stop: watch::Sender<bool>,
    script: Arc<Mutex<Script>>,
    stats: Arc<PluginStats>,
    task: JoinHandle<()>,
}

impl Harness {
    fn start(settings: Settings, script: Script) -> Harness {
        let stats = Arc::new(PluginStats::default());
        let queue = Queue::new("h", 100_000, stats.clone(), None);
        let (stop, stopped) = watch::channel(false);
        let script = Arc::new(Mutex::new(script));
        let (s, start) = (script.clone(), Clock::now());
        let make: Maker<Recorder> = Arc::new(move || {
            Ok(Recorder {
                script: s.clone(),
                start,
            })
        });
        let events = Events {
            span: tracing::Span::none(),
            limit: Arc::new(LogLimit::default()),
        };
        let first = make().unwrap();
        let mut handler = HandlerLoop::new(
            settings,
            queue.clone(),
            stats.clone(),
            events,
            make,
            first,
            stopped,
        );
        let task = tokio::spawn(async move {
            handler.run().await;
            handler.finish().await;
        });
        Harness {
            queue,
            stop,
            script,
            stats,
            task,
        }
    }

    /// Publishes `n` metrics.
    fn push(&self, n: usize) {
        let source = Arc::new(Source {
            host: "h".into(),
            collector: "c".into(),
            tenant: None,
            ttl: 20,
        });
        let mut c = Chunk::default();
        for i in 0..n {
            c.push(
                &format!("a.m{i}"),
                1.0,
                0,
                MetricKind::Gauge,
                1,
                None,
                &source,
            )
            .unwrap();
        }
        self.queue.push(&Arc::new(c));
    }

    fn asked(&self) -> Vec<(Duration, Asked)> {
        self.script.lock().unwrap().asked.clone()
    }
}

/// Sleeps `d` of paused time (the loop's timers fire on the way).
async fn after(d: Duration) {
    tokio::time::sleep(d).await;
}

/// `t` is within a millisecond of `want` (the timer's resolution).
fn at(t: Duration, want: Duration) -> bool {
    t >= want && t <= want + 2 * MS
}

#[tokio::test(start_paused = true)]
async fn metrics_linger_for_the_runs_due_within_the_batch_timeout() {
    let h = Harness::start(
        Settings {
            linger: Duration::from_secs(1),
            ..settings()
        },
        Script::default(),
    );
    h.push(5);
    after(Duration::from_millis(400)).await;
    h.push(5);
    after(Duration::from_secs(2)).await;
    let asked = h.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(at(asked[0].0, Duration::from_secs(1)), "{asked:?}");
    assert_eq!(asked[0].1, Asked::Process(10));
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_ends_the_linger() {
    let h = Harness::start(
        Settings {
            linger: Duration::from_secs(1),
            batch_size: 10,
            ..settings()
        },
        Script::default(),
    );
    h.push(4);
    after(Duration::from_millis(200)).await;
    h.push(6);
    after(Duration::from_millis(100)).await;
    let asked = h.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(at(asked[0].0, Duration::from_millis(200)), "{asked:?}");
    assert_eq!(asked[0].1, Asked::Process(10));
}

#[tokio::test(start_paused = true)]
async fn a_failing_backend_is_retried_with_a_doubling_backoff_up_to_retry_max() {
    let h = Harness::start(
        settings(),
        Script {
            errors: 5,
            ..Script::default()
        },
    );
    h.push(3);
    after(Duration::from_secs(8)).await;
    let asked = h.asked();
    let tries: Vec<Duration> = asked
        .iter()
        .filter(|(_, a)| *a == Asked::Process(3))
        .map(|(t, _)| *t)
        .collect();
    // 0.25, 0.5, 1, then retry_max (2 s) twice; the sixth try succeeds.
    let want = [0, 250, 750, 1750, 3750, 5750].map(Duration::from_millis);
    assert_eq!(tries.len(), want.len(), "{asked:?}");
    for (t, w) in tries.iter().zip(want) {
        assert!(at(*t, w), "{asked:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_delivery_is_flushed_after_the_flush_interval_and_an_idle_handler_sleeps() {
    let h = Harness::start(settings(), Script::default());
    h.push(3);
    after(Duration::from_secs(60)).await;
    let asked = h.asked();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(at(asked[0].0, Duration::ZERO) && asked[0].1 == Asked::Process(3));
    assert!(
        at(asked[1].0, Duration::from_secs(10)) && asked[1].1 == Asked::Flush,
        "{asked:?}"
    );
    assert!(!h.task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn the_stop_flushes_once_more_and_ends_the_task() {
    let h = Harness::start(settings(), Script::default());
    h.push(3);
    after(Duration::from_secs(15)).await;
    assert_eq!(h.asked().len(), 2, "{:?}", h.asked());
    h.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(1), h.task)
        .await
        .expect("the task ends at the stop")
        .unwrap();
    let asked = h.script.lock().unwrap().asked.clone();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(
        at(asked[2].0, Duration::from_secs(15)) && asked[2].1 == Asked::Flush,
        "{asked:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_with_the_backend_down_ends_without_waiting_out_the_backoff() {
    let h = Harness::start(
        settings(),
        Script {
            errors: usize::MAX,
            ..Script::default()
        },
    );
    h.push(3);
    after(Duration::from_secs(5)).await;
    h.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_millis(100), h.task)
        .await
        .expect("the stop does not wait for the next retry")
        .unwrap();
    // Nothing delivered; without a spool the three are counted as dropped
    // (and logged), not lost silently.
    let asked = h.script.lock().unwrap().asked.clone();
    assert!(
        asked.iter().all(|(_, a)| *a == Asked::Process(3)),
        "{asked:?}"
    );
    assert_eq!(h.stats.dropped.load(Ordering::Relaxed), 3);
    assert_eq!(h.stats.metrics.load(Ordering::Relaxed), 0);
}
