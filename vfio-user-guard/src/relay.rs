//! The guard's loop: one client message at a time is read whole, screened,
//! and either refused here or passed to the crate's server, whose reply
//! goes back to the client. The protocol is request/response, so one
//! message in flight is all there ever is.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use crate::screen::{self, DeviceShape, HeaderVerdict, Rejection, MAX_MESSAGE_SIZE};
use crate::wire::{self, Header, Message, Received, FLAG_NO_REPLY, HEADER_SIZE, TYPE_REPLY};
use crate::GuardOptions;
use device_model::ratelimit::RateLimitedLog;

/// How long the crate's server gets to report why it stopped.
const DEVICE_OUTCOME_WAIT: Duration = Duration::from_secs(1);

enum Flow {
    Continue,
    /// The client closed the connection.
    Closed,
}

/// The guard's end of its connection to the crate's server: a socket in
/// production, an in-process stand-in in the fuzz targets.
pub trait DeviceLink {
    /// Sends `message` and returns the server's reply to it; an error means
    /// the server is gone (or answered out of step) and is never asked again.
    fn round_trip(&mut self, message: &Message) -> io::Result<Message>;
    /// Ends the connection, so that the server's end sees it close.
    fn close(&mut self);
}

impl DeviceLink for UnixStream {
    fn round_trip(&mut self, message: &Message) -> io::Result<Message> {
        round_trip(self, message)
    }

    fn close(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

pub struct Relay<D: DeviceLink = UnixStream> {
    client: UnixStream,
    /// Our end of the crate server's connection; None once it is gone.
    device: Option<D>,
    shape: DeviceShape,
    count_rejected: Box<dyn Fn() + Send>,
    record: Option<Box<dyn Write + Send>>,
    /// Why the crate's server stopped, from its thread (taken once).
    device_outcome: Option<mpsc::Receiver<Option<String>>>,
    device_failure: Option<String>,
    warn: RateLimitedLog,
}

impl<D: DeviceLink> Relay<D> {
    /// `device_outcome` says why the crate's server stopped, once it has.
    pub fn new(
        client: UnixStream,
        device: D,
        shape: DeviceShape,
        device_outcome: mpsc::Receiver<Option<String>>,
        options: GuardOptions,
    ) -> Self {
        Self {
            client,
            device: Some(device),
            shape,
            count_rejected: options.count_rejected,
            record: options.record,
            device_outcome: Some(device_outcome),
            device_failure: None,
            // Rejected messages: a client sending garbage in a loop must not flood the log.
            warn: RateLimitedLog::new("vfio-user", 5, std::time::Duration::from_secs(1)),
        }
    }

    /// Serves the client until it closes the connection, then stops the
    /// crate's server. Returns what went wrong, if anything.
    pub fn serve(mut self) -> Option<String> {
        let connection_error = loop {
            match self.serve_one() {
                Ok(Flow::Continue) => {}
                Ok(Flow::Closed) => break None,
                // The client went away mid-message: nothing left to serve,
                // and nothing the device did wrong.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    tracing::warn!("vfio-user: {e}");
                    break None;
                }
                Err(e) => {
                    let error = format!("vfio-user: closed the client's connection: {e}");
                    tracing::error!("{error}");
                    break Some(error);
                }
            }
        };
        self.warn.flush();
        if let Some(mut record) = self.record.take() {
            if let Err(e) = record.flush() {
                tracing::warn!("vfio-user: the recording is incomplete: {e}");
            }
        }
        let device_failure = self.stop_device();
        let errors: Vec<String> = device_failure.into_iter().chain(connection_error).collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    fn serve_one(&mut self) -> io::Result<Flow> {
        let (header, fds) = match wire::recv_header(&self.client)? {
            Received::Closed => return Ok(Flow::Closed),
            Received::Header(header, fds) => (header, fds),
        };
        self.recorded(&header.to_bytes());
        match screen::screen_header(&header) {
            HeaderVerdict::ReadBody => {}
            HeaderVerdict::Reject(rejection) => {
                // Answer first: a client that lied about the size is then
                // not left waiting while we wait for bytes it never sends.
                self.refuse(&header, &rejection)?;
                self.skip_body(&header)?;
                return Ok(Flow::Continue);
            }
            HeaderVerdict::Ignore(why) => {
                (self.count_rejected)();
                self.warn.warn(|| format!("ignored {why}"));
                self.skip_body(&header)?;
                return Ok(Flow::Continue);
            }
        }
        let body = wire::read_body(&self.client, &header)?;
        self.recorded(&body);
        let mut message = Message { header, body, fds };
        match screen::screen_message(&mut message, &self.shape) {
            Ok(()) => self.forward(message)?,
            Err(rejection) => self.refuse(&header, &rejection)?,
        }
        Ok(Flow::Continue)
    }

    fn skip_body(&mut self, header: &Header) -> io::Result<()> {
        let Self { client, record, .. } = self;
        wire::discard(client, header.body_size(), |chunk| {
            record_into(record, chunk)
        })
    }

    fn recorded(&mut self, bytes: &[u8]) {
        record_into(&mut self.record, bytes);
    }

    /// Counts and logs a refused message and answers it (unless the client
    /// asked for no reply).
    fn refuse(&mut self, header: &Header, rejection: &Rejection) -> io::Result<()> {
        (self.count_rejected)();
        let errno = rejection.errno;
        self.warn.warn(|| {
            format!(
                "rejected message {} (command {}): {}; {}",
                header.message_id,
                header.command,
                rejection.reason,
                if header.wants_reply() {
                    format!("replying {}", io::Error::from_raw_os_error(errno))
                } else {
                    "no reply wanted".into()
                }
            )
        });
        if header.wants_reply() {
            wire::send_header(&self.client, &header.error_reply(errno))?;
        }
        Ok(())
    }

    /// Passes a screened message to the crate's server and its reply back.
    fn forward(&mut self, mut message: Message) -> io::Result<()> {
        let request = message.header;
        // Without NoReply the crate answers every message, success or
        // error (it answers errors even to NoReply ones), so exactly one
        // reply comes back per message and the two streams stay in step.
        message.header.flags &= !FLAG_NO_REPLY;
        let Some(reply) = self.exchange(&message) else {
            let rejection = Rejection {
                errno: libc::ENODEV,
                reason: "the device server is gone".into(),
            };
            return self.refuse(&request, &rejection);
        };
        let mut header = reply.header;
        if header.is_error() && header.error == 0 {
            // The crate reports backend errors with no errno.
            header.error = libc::EIO as u32;
        }
        if !request.wants_reply() {
            if header.is_error() {
                (self.count_rejected)();
                self.warn.warn(|| {
                    format!(
                        "message {} (command {}, no reply wanted) failed in the device \
                         server: {}",
                        request.message_id,
                        request.command,
                        io::Error::from_raw_os_error(header.error as i32)
                    )
                });
            }
            return Ok(());
        }
        wire::send(&self.client, &header, &reply.body, &reply.fds)
    }

    /// The crate server's reply to `message`; None once it is gone.
    fn exchange(&mut self, message: &Message) -> Option<Message> {
        let device = self.device.as_mut()?;
        match device.round_trip(message) {
            Ok(reply) => Some(reply),
            Err(e) => {
                self.device_gone(&e);
                None
            }
        }
    }

    fn device_gone(&mut self, error: &io::Error) {
        if let Some(mut device) = self.device.take() {
            device.close();
        }
        let reason = match self.wait_device_outcome() {
            Some(Some(reason)) => reason,
            _ => format!("vfio-user device server stopped answering: {error}"),
        };
        tracing::error!("{reason}; refusing further messages with ENODEV");
        self.device_failure = Some(reason);
    }

    fn wait_device_outcome(&mut self) -> Option<Option<String>> {
        self.device_outcome
            .take()?
            .recv_timeout(DEVICE_OUTCOME_WAIT)
            .ok()
    }

    /// Ends the crate server's connection and collects why it stopped, if
    /// it failed.
    fn stop_device(&mut self) -> Option<String> {
        if let Some(mut device) = self.device.take() {
            // Its end sees the connection close and returns.
            device.close();
            if let Some(Some(reason)) = self.wait_device_outcome() {
                tracing::error!("{reason}");
                self.device_failure = Some(reason);
            }
        }
        self.device_failure.take()
    }
}

/// Appends `bytes` to the recording; a recording that fails to write is
/// dropped (with a warning), never the connection.
fn record_into(record: &mut Option<Box<dyn Write + Send>>, bytes: &[u8]) {
    if let Some(sink) = record {
        if let Err(e) = sink.write_all(bytes) {
            tracing::warn!("vfio-user: stopped recording the client's messages: {e}");
            *record = None;
        }
    }
}

/// One message to the crate's server and its reply.
fn round_trip(device: &UnixStream, message: &Message) -> io::Result<Message> {
    wire::send(device, &message.header, &message.body, &message.fds)?;
    let (header, fds) = match wire::recv_header(device)? {
        Received::Header(header, fds) => (header, fds),
        Received::Closed => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "it closed the connection",
            ))
        }
    };
    let sane = header.message_type() == TYPE_REPLY
        && header.message_id == message.header.message_id
        && (HEADER_SIZE as u32..=MAX_MESSAGE_SIZE).contains(&header.message_size);
    if !sane {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it answered message {} with {header:?}",
                message.header.message_id
            ),
        ));
    }
    let body = wire::read_body(device, &header)?;
    Ok(Message { header, body, fds })
}
