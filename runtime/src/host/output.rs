//! A guest's stdout and stderr: kept in memory up to a cap (the rest
//! dropped, never an error the guest could trip over), drained and logged
//! after each run.
//!
//! The stream the guest writes to is synchronous: a write lands in the
//! buffer at once. (wasmtime-wasi's default adapter hands each write to a
//! worker task on the tokio runtime and makes the guest wait for it; with
//! every worker thread busy driving plugins, a `print` then waited until
//! the run's deadline.)

use std::sync::{Arc, Mutex};

use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A guest's stdout/stderr buffer (one per instance; both streams share it).
#[derive(Clone, Default)]
pub struct GuestOutput {
    buf: Arc<Mutex<Vec<u8>>>,
}

/// Most bytes of guest output kept per run.
pub const MAX_GUEST_OUTPUT: usize = 16 << 10;

impl GuestOutput {
    /// Takes what the guest wrote since the last call.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Keeps what fits under the cap of `data`.
    fn append(&self, data: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let room = MAX_GUEST_OUTPUT.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Stream(self.clone()))
    }
}

/// The guest's end: every write taken at once.
struct Stream(GuestOutput);

#[wasmtime_wasi::async_trait]
impl Pollable for Stream {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Stream {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.0.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(MAX_GUEST_OUTPUT)
    }

    async fn cancel(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(data);
        std::task::Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_at_once_up_to_the_cap() {
        let out = GuestOutput::default();
        let mut s = Stream(out.clone());
        s.write(bytes::Bytes::from_static(b"hello\n")).unwrap();
        assert_eq!(out.take(), b"hello\n");
        let big = vec![b'x'; MAX_GUEST_OUTPUT + 10];
        s.write(bytes::Bytes::from(big)).unwrap();
        assert_eq!(out.take().len(), MAX_GUEST_OUTPUT);
        assert!(out.take().is_empty());
    }
}
