//! MQTT against Debian's mosquitto: every metric on its topic (QoS 0 and
//! 1), a clean stop that ends the session with DISCONNECT (no last will),
//! and client ids two agents cannot share.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::{self, free_port};
use super::{eventually, run_with, same};

/// Debian's mosquitto on 127.0.0.1:`port`.
fn mosquitto(port: u16) -> common::Killed {
    common::Killed(
        Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (Debian's mosquitto package)"),
    )
}

fn mqtt_packet(r: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 1];
    r.read_exact(&mut h).ok()?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).ok()?;
        len |= ((b[0] & 0x7f) as usize) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((h[0], body))
}

/// A subscriber to `servers/#` at QoS 1 (waits until subscribed): every
/// `(topic, payload)` received lands in the vector.
pub(super) fn mqtt_subscribe(port: u16) -> Arc<Mutex<Vec<(String, String)>>> {
    mqtt_subscribe_to(port, "servers/#", "sub")
}

/// [`mqtt_subscribe`], and the QoS each message arrived with (the
/// publisher's, since the subscription's is 1).
pub(super) fn mqtt_subscribe_qos(port: u16) -> (Messages, Arc<Mutex<Vec<u8>>>) {
    subscriber(port, "servers/#", "sub")
}

/// What a subscriber received: `(topic, payload)`.
pub(super) type Messages = Arc<Mutex<Vec<(String, String)>>>;

/// A subscriber to `filter` at QoS 1, as client `id`.
fn mqtt_subscribe_to(port: u16, filter: &str, id: &str) -> Messages {
    subscriber(port, filter, id).0
}

fn subscriber(port: u16, filter: &str, id: &str) -> (Messages, Arc<Mutex<Vec<u8>>>) {
    let start = Instant::now();
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("mosquitto on {port}: {e}"),
        }
    };
    // The handshake is bounded; the subscription then waits as long as
    // the test runs.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // CONNECT (3.1.1, clean session, client id `id`), then SUBSCRIBE.
    let mut connect = b"\x00\x04MQTT\x04\x02\x00\x3c".to_vec();
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id.as_bytes());
    s.write_all(&[&[0x10, connect.len() as u8][..], &connect].concat())
        .unwrap();
    assert_eq!(mqtt_packet(&mut s).unwrap().0 >> 4, 2, "CONNACK");
    let mut sub = vec![0x00, 0x01];
    sub.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    sub.extend_from_slice(filter.as_bytes());
    sub.push(1);
    s.write_all(&[&[0x82, sub.len() as u8][..], &sub].concat())
        .unwrap();
    assert_eq!(mqtt_packet(&mut s).unwrap().0 >> 4, 9, "SUBACK");
    s.set_read_timeout(None).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let qos_seen = Arc::new(Mutex::new(Vec::new()));
    let (sink, qos_sink) = (got.clone(), qos_seen.clone());
    std::thread::spawn(move || {
        while let Some((h, body)) = mqtt_packet(&mut s) {
            if h >> 4 != 3 {
                continue;
            }
            let qos = (h >> 1) & 3;
            let n = u16::from_be_bytes([body[0], body[1]]) as usize;
            let topic = String::from_utf8(body[2..2 + n].to_vec()).unwrap();
            let mut at = 2 + n;
            if qos > 0 {
                let _ = s.write_all(&[0x40, 0x02, body[at], body[at + 1]]);
                at += 2;
            }
            let payload = String::from_utf8(body[at..].to_vec()).unwrap();
            sink.lock().unwrap().push((topic, payload));
            qos_sink.lock().unwrap().push(qos);
        }
    });
    (got, qos_seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_publishes_every_metric_on_its_topic() {
    for qos in [0, 1] {
        let port = free_port();
        let mut broker = mosquitto(port);
        let (got, arrived) = mqtt_subscribe_qos(port);
        let want = run_with(
            "mqtt",
            &format!("[handlers.mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nqos = {qos}\n"),
            3.5,
        )
        .await;
        eventually(|| {
            let mut have: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
            for (topic, payload) in got.lock().unwrap().iter() {
                let (v, t) = payload
                    .split_once(' ')
                    .ok_or(format!("payload {payload:?}"))?;
                have.entry(topic.replace('/', "."))
                    .or_default()
                    .push((t.parse().unwrap(), v.parse().unwrap()));
            }
            for (path, points) in &want {
                for (t, v) in points {
                    if !have
                        .get(path)
                        .is_some_and(|p| p.iter().any(|(t2, v2)| t2 == t && same(*v2, *v)))
                    {
                        return Err(format!("qos {qos}: {path} {v} {t} not received"));
                    }
                }
            }
            Ok(())
        });
        // Each at the QoS the handler published with.
        let arrived = arrived.lock().unwrap().clone();
        assert!(
            !arrived.is_empty() && arrived.iter().all(|q| *q == qos),
            "qos {qos}: received at {arrived:?}"
        );
        let _ = broker.kill();
        let _ = broker.wait();
    }
}

/// A client with a last will on `topic`, its socket dropped without
/// DISCONNECT (as a crashed agent's): the broker must publish the will.
fn vanish_with_a_will(port: u16, topic: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut body = b"\x00\x04MQTT\x04\x06\x00\x3c\x00\x04gone".to_vec();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(b"\x00\x06Adios!");
    s.write_all(&[&[0x10, body.len() as u8][..], &body].concat())
        .unwrap();
    assert_eq!(mqtt_packet(&mut s).unwrap().0 >> 4, 2, "CONNACK");
    drop(s);
}

/// Runs an agent for `secs` with the mqtt handler sections `handlers`
/// (`(name, extra keys)`), stopped cleanly; returns each handler's
/// (delivered, errors, failures).
async fn run_mqtt(port: u16, handlers: &[(&str, &str)], secs: f64) -> Vec<(u64, u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = handlers.iter().map(|(n, _)| format!("{n:?}")).collect();
    let mut text = format!(
        "[server]\nhandlers = [{}]\nplugin_cache_dir = {:?}\n[collectors.default]\ninterval = 1\nhostname = \"samehost\"\n[collectors.loadavg]\nenabled = true\n",
        names.join(", "),
        common::cache_dir()
    );
    for (name, extra) in handlers {
        text.push_str(&format!(
            "[handlers.{name}]\ncomponent = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {port}\nretry_max = 1\n{extra}"
        ));
    }
    let conf = common::write_config(dir.path(), &text);
    let agent = common::start_agent(&conf);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let stats: Vec<_> = handlers
        .iter()
        .map(|(n, _)| agent.handler_stats(n).unwrap())
        .collect();
    agent.shutdown().await;
    stats
        .iter()
        .map(|s| {
            (
                s.metrics.load(Ordering::Relaxed),
                s.guest_errors.load(Ordering::Relaxed),
                s.failures.load(Ordering::Relaxed),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_publishes_no_last_will() {
    // Before, every SIGTERM left the session without DISCONNECT and the
    // broker published "Adios!" on clients/diamond/<host>: a dashboard saw
    // each restart as a death.
    let port = free_port();
    let mut broker = mosquitto(port);
    let wills = mqtt_subscribe_to(port, "clients/diamond/#", "watcher");
    let got = mqtt_subscribe(port);
    let counts = run_mqtt(port, &[("mqtt", "")], 2.5).await;
    assert!(counts[0].0 >= 8, "delivered {counts:?}");
    assert!(!got.lock().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        wills.lock().unwrap().clone(),
        Vec::<(String, String)>::new(),
        "a last will after a clean stop"
    );
    // The watcher does see a will when a client vanishes (the check can fail).
    vanish_with_a_will(port, "clients/diamond/crashed");
    eventually(|| match wills.lock().unwrap().first() {
        Some((t, p)) if t == "clients/diamond/crashed" && p == "Adios!" => Ok(()),
        other => Err(format!("no will seen: {other:?}")),
    });
    let _ = broker.kill();
    let _ = broker.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_with_one_host_name_keep_their_sessions() {
    // Before, the client id was `wdiamond_<hostname>`: a second agent with
    // the same host name knocked the first off the broker at each connect.
    // Two handlers of one agent stand for the two agents here.
    let port = free_port();
    let mut broker = mosquitto(port);
    let got = mqtt_subscribe(port);
    let counts = run_mqtt(port, &[("one", ""), ("two", "")], 4.5).await;
    for (name, (delivered, errors, failures)) in ["one", "two"].iter().zip(&counts) {
        assert!(*delivered >= 24, "{name}: delivered {delivered}");
        assert_eq!((*errors, *failures), (0, 0), "{name} lost its session");
    }
    // Each metric arrived twice, once from each.
    let got = got.lock().unwrap();
    let mut per_topic: BTreeMap<String, usize> = BTreeMap::new();
    for (t, _) in got.iter() {
        *per_topic.entry(t.clone()).or_default() += 1;
    }
    assert!(
        per_topic.values().all(|n| n % 2 == 0 || *n > 4),
        "{per_topic:?}"
    );
    // An operator's own id is used as it is.
    let counts = run_mqtt(port, &[("mine", "client_id = \"rack7-agent\"\n")], 2.5).await;
    assert!(counts[0].0 >= 8);
    let _ = broker.kill();
    let _ = broker.wait();
}
