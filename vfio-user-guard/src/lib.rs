//! A validating guard in front of the `vfio_user` crate's server.
//!
//! The crate (0.1.7) trusts its client: a malformed VERSION panics it, an
//! unknown command or a size it does not expect leaves it reading the
//! middle of a message as the next header, and backend errors go out with
//! errno 0. So the client (QEMU) talks to the guard instead: it owns the
//! socket QEMU connects to, reads every message whole, refuses bad ones
//! itself with a proper error reply, and passes only well-formed messages
//! to the crate's server over a private socket. The connection survives
//! every bad message whose size it can skip.
//!
//! ```text
//! QEMU ──socket──> guard thread ──device.sock──> crate Server::run(backend)
//! ```
//!
//! Its own crate so that it can be dropped once the upstream server
//! validates its input itself; [`wire`], [`screen`] and [`relay`] are public
//! for the fuzz targets (`fuzz/`), which drive the relay with whole message
//! streams.

pub mod relay;
pub mod screen;
pub mod wire;

use std::any::Any;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use vfio_user::{IrqInfo, Server, ServerBackend, ServerRegion};

use relay::Relay;
use screen::DeviceShape;

/// How long the client may pause in the middle of a message (or leave a
/// reply unread) before the guard gives up on the connection: a message
/// cut short leaves no way to find where the next one starts.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The guard and the crate's server, each on its own thread.
pub struct GuardedServer {
    outcome: mpsc::Receiver<Option<String>>,
}

/// What the guard does besides guarding.
pub struct GuardOptions {
    /// Called once for every message the guard refuses or ignores (the
    /// caller's counter of rejected messages).
    pub count_rejected: Box<dyn Fn() + Send>,
    /// Receives every byte the client sends, as it arrives (message by
    /// message, refused ones included): a recording of the session.
    pub record: Option<Box<dyn Write + Send>>,
    /// See [`STALL_TIMEOUT`].
    pub stall_timeout: Duration,
}

impl GuardOptions {
    /// Counts rejections with `count_rejected`, records nothing, stalls
    /// time out after [`STALL_TIMEOUT`].
    pub fn new(count_rejected: impl Fn() + Send + 'static) -> Self {
        Self {
            count_rejected: Box::new(count_rejected),
            record: None,
            stall_timeout: STALL_TIMEOUT,
        }
    }
}

impl GuardedServer {
    /// Listens on `socket` for the client, and on `device_socket` (which
    /// should sit in a directory only we can reach) for the guard's own
    /// connection to the crate's server, whose backend `backend` builds on
    /// the server's thread.
    pub fn start<B, F>(
        socket: &Path,
        device_socket: &Path,
        regions: Vec<ServerRegion>,
        irqs: Vec<IrqInfo>,
        backend: F,
        options: GuardOptions,
    ) -> Result<Self>
    where
        B: ServerBackend,
        F: FnOnce() -> B + Send + 'static,
    {
        let stall_timeout = options.stall_timeout;
        let shape = DeviceShape {
            region_sizes: regions.iter().map(|r| r.region_info.size).collect(),
        };
        let server = Server::new(device_socket, true, irqs, regions)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", device_socket.display()))?;
        let listener = UnixListener::bind(socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        // Connecting now queues us for the crate's one accept before anyone
        // else could connect.
        let device = UnixStream::connect(device_socket)
            .with_context(|| format!("cannot connect to {}", device_socket.display()))?;

        let (device_done, device_outcome) = mpsc::channel();
        thread::Builder::new()
            .name("vfio-user-device".into())
            .spawn(move || {
                let _ = device_done.send(serve_device(&server, backend));
            })
            .context("cannot start the vfio-user device server thread")?;

        let (done, outcome) = mpsc::channel();
        thread::Builder::new()
            .name("vfio-user-guard".into())
            .spawn(move || {
                let guarded = catch_unwind(AssertUnwindSafe(|| {
                    let client = match accept_client(&listener, stall_timeout) {
                        Ok(client) => client,
                        Err(e) => {
                            return Some(format!(
                                "vfio-user: cannot accept the client's connection: {e}"
                            ))
                        }
                    };
                    drop(listener); // one client, as the crate serves one
                    Relay::new(client, device, shape, device_outcome, options).serve()
                }));
                let outcome = guarded.unwrap_or_else(|panic| {
                    Some(format!(
                        "the vfio-user guard panicked: {}",
                        panic_message(&*panic)
                    ))
                });
                let _ = done.send(outcome);
            })
            .context("cannot start the vfio-user guard thread")?;
        Ok(Self { outcome })
    }

    /// Waits up to `timeout` for the server to stop (after the client
    /// closed its connection) and says what went wrong, if anything. A
    /// server still running or never connected to reports nothing.
    pub fn wait_stopped(&self, timeout: Duration) -> Option<String> {
        self.wait_outcome(timeout).ok().flatten()
    }

    /// Like [`Self::wait_stopped`], but tells a server that stopped cleanly
    /// (`Ok(None)`) from one that has not stopped within `timeout` (`Err`).
    pub fn wait_outcome(
        &self,
        timeout: Duration,
    ) -> Result<Option<String>, mpsc::RecvTimeoutError> {
        self.outcome.recv_timeout(timeout)
    }
}

/// The client's connection, with timeouts that bound a stall mid-message
/// (an idle client between messages is fine, see `wire::recv_header`).
fn accept_client(listener: &UnixListener, stall_timeout: Duration) -> std::io::Result<UnixStream> {
    let (client, _) = listener.accept()?;
    client.set_read_timeout(Some(stall_timeout))?;
    client.set_write_timeout(Some(stall_timeout))?;
    Ok(client)
}

/// Runs the crate's server until the guard closes its connection.
fn serve_device<B: ServerBackend>(server: &Server, backend: impl FnOnce() -> B) -> Option<String> {
    let mut backend = backend();
    // The guard screens what the crate sees, but a panic left in it must
    // still end in an error report rather than a lost thread.
    match catch_unwind(AssertUnwindSafe(|| server.run(&mut backend))) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("vfio-user device server stopped: {e}")),
        Err(panic) => Some(format!(
            "vfio-user device server panicked: {}",
            panic_message(&*panic)
        )),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
