//! A plugin's stdout and stderr: kept per request up to a bound, then forwarded to the host's
//! log as lines tagged with the plugin, its version and the request id. So a Python
//! traceback or a debugging `println!` reaches the operator, while a guest that prints without
//! end is cut off silently: never trapped, never blocked, never more than [`MAX_BYTES`] kept.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes kept per stream and request; the rest is counted and dropped.
pub const MAX_BYTES: usize = 8 * 1024;
/// Lines forwarded per stream and request.
pub const MAX_LINES: usize = 64;
/// What a guest may write at once (it never has to wait: overflow is dropped, not refused).
const PERMIT: usize = 64 * 1024;

/// One captured stream, shared by every handle the guest opens on it.
#[derive(Clone, Default)]
pub struct GuestOutput {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl GuestOutput {
    fn push(&self, data: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_BYTES.saturating_sub(c.bytes.len());
        let kept = data.len().min(room);
        c.bytes.extend_from_slice(&data[..kept]);
        c.dropped += data.len() - kept;
    }

    /// The captured lines (non-blank, lossy UTF-8, at most [`MAX_LINES`]) and how many
    /// bytes and lines were left out; the capture is emptied.
    pub fn take_lines(&self) -> (Vec<String>, usize) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = std::mem::take(&mut c.bytes);
        let mut dropped = std::mem::take(&mut c.dropped);
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = Vec::new();
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            if lines.len() < MAX_LINES {
                lines.push(line.to_string());
            } else {
                dropped += line.len() + 1;
            }
        }
        (lines, dropped)
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_up_to_the_bounds_and_counts_the_rest() {
        let out = GuestOutput::default();
        out.push(b"first\r\n\nsecond\n");
        assert_eq!(out.take_lines(), (vec!["first".into(), "second".into()], 0));
        assert_eq!(out.take_lines(), (vec![], 0), "taken once");

        let many: String = (0..100).map(|i| format!("{i}\n")).collect();
        out.push(many.as_bytes());
        let (lines, dropped) = out.take_lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(
            dropped,
            many.len() - lines.iter().map(|l| l.len() + 1).sum::<usize>()
        );

        out.push(&vec![b'x'; MAX_BYTES + 10]);
        let (lines, dropped) = out.take_lines();
        assert_eq!(lines[0].len(), MAX_BYTES);
        assert_eq!(dropped, 10);
    }
}
