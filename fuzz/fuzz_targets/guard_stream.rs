//! The vfio-user guard's relay, fed a whole client byte stream (the input,
//! as QEMU would write it to the socket), in front of an in-process stand-in
//! for the `vfio_user` crate's server that checks everything it is given.
//!
//! Invariants:
//! - nothing forwarded is what the guard must refuse: each forwarded
//!   message is a command the crate serves, of exactly the size the crate
//!   reads for it, inside the device's regions, with page-aligned DMA, no
//!   DATA_BOOL irqs and VERSION data the crate parses (checked here from the
//!   protocol, not with the guard's own screen);
//! - the guard never desynchronises: the messages it forwards are, in
//!   order, messages of the stream framed as `max(message_size, 16)`
//!   bytes each, byte for byte (only NO_REPLY is cleared and VERSION's JSON
//!   re-encoded), and the client gets exactly one reply per message that
//!   wants one, in order, with its id and command;
//! - a refusal is a header-only error reply with a non-zero errno, and a
//!   forwarded message's reply is the server's (its errno 0 made EIO).
//!
//! The stand-in answers every message with success, except: a message id
//! whose low byte is 0xee fails with errno 0 (as the crate reports backend
//! errors), and id 0xdead makes the server go away (the relay must answer
//! ENODEV from then on).

#![no_main]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vfio_user_guard::relay::{DeviceLink, Relay};
use vfio_user_guard::screen::{DeviceShape, MAX_DATA_XFER, MAX_MESSAGE_SIZE};
use vfio_user_guard::wire::{
    Header, Message, FLAG_ERROR, FLAG_NO_REPLY, HEADER_SIZE, TYPE_COMMAND, TYPE_MASK, TYPE_REPLY,
};
use vfio_user_guard::GuardOptions;

use rangefault_fuzz::vfio_stream::{self, Framed};

const FAIL_LOW_BYTE: u16 = 0xee;
const GONE_ID: u16 = 0xdead;
/// vmm's regions: BAR0 4 KiB, BAR2 (VRAM) 64 MiB, config space 256 bytes.
const REGION_SIZES: [u64; 9] = [4096, 0, 64 << 20, 0, 0, 0, 0, 256, 0];
const VFIO_IRQ_SET_DATA_BOOL: u32 = 1 << 1;
/// A reply costs the socket well under 1 KiB of its ~208 KiB send buffer.
const MAX_MESSAGES: usize = 128;
const MAX_STREAM: usize = 64 << 10;

/// A message the stand-in server was given.
struct Forward {
    /// How far into the client's stream the relay had read when it
    /// forwarded the message: where the message it came from ends.
    stream_end: usize,
    header: Header,
    body: Vec<u8>,
}

#[derive(Default)]
struct Forwarded {
    messages: Vec<Forward>,
    gone: bool,
}

/// The relay's recording of the client's bytes (GuardOptions::record):
/// every byte it has read from the client, in order.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<u8>>>);

impl Write for Recording {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct StandIn {
    forwarded: Arc<Mutex<Forwarded>>,
    read_so_far: Recording,
}

impl DeviceLink for StandIn {
    fn round_trip(&mut self, message: &Message) -> std::io::Result<Message> {
        let mut forwarded = self.forwarded.lock().unwrap();
        assert!(!forwarded.gone, "the relay used a server it knew was gone");
        must_be_servable(&message.header, &message.body);
        forwarded.messages.push(Forward {
            stream_end: self.read_so_far.0.lock().unwrap().len(),
            header: message.header,
            body: message.body.clone(),
        });
        let id = message.header.message_id;
        if id == GONE_ID {
            forwarded.gone = true;
            return Err(std::io::Error::other("the stand-in server went away"));
        }
        let flags = if id & 0xff == FAIL_LOW_BYTE {
            TYPE_REPLY | FLAG_ERROR
        } else {
            TYPE_REPLY
        };
        Ok(Message {
            header: Header {
                message_id: id,
                command: message.header.command,
                message_size: HEADER_SIZE as u32,
                flags,
                error: 0,
            },
            body: Vec::new(),
            fds: Vec::new(),
        })
    }

    fn close(&mut self) {}
}

fn u32_at(body: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(body[at..at + 4].try_into().unwrap())
}

fn u64_at(body: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(body[at..at + 8].try_into().unwrap())
}

/// What the `vfio_user` crate's server can read without losing the stream:
/// the protocol's fixed sizes for each command it serves.
fn must_be_servable(header: &Header, body: &[u8]) {
    assert_eq!(header.flags & TYPE_MASK, TYPE_COMMAND, "{header:?}");
    assert_eq!(header.flags & FLAG_NO_REPLY, 0, "the crate must reply");
    assert_eq!(header.message_size as usize, HEADER_SIZE + body.len());
    let size = body.len();
    let fixed = |expected: usize| assert_eq!(size, expected, "{header:?}");
    match header.command {
        1 => version_is_servable(body),
        2 => {
            fixed(32);
            for at in [8, 16, 24] {
                assert_eq!(u64_at(body, at) % 4096, 0, "unaligned DMA_MAP");
            }
        }
        3 => {
            fixed(24);
            for at in [8, 16] {
                assert_eq!(u64_at(body, at) % 4096, 0, "unaligned DMA_UNMAP");
            }
        }
        4 | 7 => fixed(16),
        5 => fixed(32),
        8 => {
            fixed(20);
            assert_eq!(u32_at(body, 4) & VFIO_IRQ_SET_DATA_BOOL, 0);
        }
        9 | 10 => {
            assert!(size >= 16);
            let (offset, region, count) = (u64_at(body, 0), u32_at(body, 8), u32_at(body, 12));
            assert!(count <= MAX_DATA_XFER);
            let data = if header.command == 10 {
                count as usize
            } else {
                0
            };
            fixed(16 + data);
            let region_size = REGION_SIZES.get(region as usize).copied();
            let end = offset.checked_add(u64::from(count));
            assert!(
                matches!((region_size, end), (Some(r), Some(e)) if e <= r),
                "access of {count} at {offset:#x} in region {region}"
            );
        }
        13 => fixed(0),
        other => panic!("command {other} forwarded"),
    }
}

/// VERSION: major, minor, then NUL-terminated JSON of the capabilities the
/// crate's types hold (each optional, u32 values, migration with pgsize).
fn version_is_servable(body: &[u8]) {
    assert!(body.len() >= 4);
    let json = &body[4..];
    let (&nul, text) = json.split_last().expect("VERSION without its JSON");
    assert_eq!(nul, 0);
    assert!(!text.contains(&0));
    let value: Value = serde_json::from_slice(text).expect("JSON");
    let object = value.as_object().expect("an object");
    assert!(object.keys().all(|k| k == "capabilities"), "{value}");
    let Some(capabilities) = object.get("capabilities") else {
        return;
    };
    let is_u32 = |v: &Value| v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX));
    for (key, v) in capabilities.as_object().expect("capabilities object") {
        match key.as_str() {
            "max_msg_fds" | "max_data_xfer_size" => assert!(is_u32(v), "{value}"),
            "migration" => {
                let migration = v.as_object().expect("migration object");
                assert!(migration.get("pgsize").is_some_and(is_u32), "{value}");
                assert!(migration.keys().all(|k| k == "pgsize"), "{value}");
            }
            _ => panic!("capability {key} forwarded: {value}"),
        }
    }
}

/// Whether the guard answers `header` without reading its body: the
/// header alone shows it cannot be served (or is a reply, ignored).
fn refused_on_header(header: &Header) -> bool {
    let servable = matches!(header.command, 1..=5 | 7..=10 | 13);
    header.flags & TYPE_MASK != TYPE_COMMAND
        || (header.message_size as usize) < HEADER_SIZE
        || header.message_size > MAX_MESSAGE_SIZE
        || !servable
}

fn wants_reply(header: &Header) -> bool {
    header.flags & TYPE_MASK != TYPE_REPLY && header.flags & FLAG_NO_REPLY == 0
}

/// Whether `forwarded` was forwarded while the relay was at the end of
/// stream message `framed`; if so, it must be that message.
fn is_forwarded_as(framed: &Framed, forwarded: &Forward) -> bool {
    let end = framed.at + HEADER_SIZE + framed.body.len();
    if forwarded.stream_end != end {
        return false;
    }
    let header = &forwarded.header;
    assert_eq!(header.message_id, framed.header.message_id);
    assert_eq!(header.command, framed.header.command);
    assert_eq!(header.flags, framed.header.flags & !FLAG_NO_REPLY);
    if framed.header.command == 1 {
        // VERSION's JSON is re-encoded; its major and minor are kept.
        assert_eq!(forwarded.body.get(..4), framed.body.get(..4));
    } else {
        assert_eq!(header.message_size, framed.header.message_size);
        assert!(forwarded.body[..] == *framed.body, "forwarded body differs");
    }
    true
}

fn read_replies(bytes: &[u8]) -> Vec<(Header, usize)> {
    let mut replies = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = Header::from_bytes(bytes[at..at + HEADER_SIZE].try_into().unwrap());
        assert!(header.message_size as usize >= HEADER_SIZE);
        replies.push((header, header.body_size()));
        at += header.message_size as usize;
    }
    assert_eq!(at, bytes.len(), "a reply cut short");
    replies
}

/// The stream's first [`MAX_MESSAGES`] messages (and at most
/// [`MAX_STREAM`] bytes): few enough that the socket buffers hold the
/// stream and every reply at once, so the relay can run on the fuzzer's
/// thread without a peer draining its replies.
fn first_messages(input: &[u8]) -> &[u8] {
    let input = &input[..input.len().min(MAX_STREAM)];
    match vfio_stream::frame(input).get(MAX_MESSAGES) {
        Some(message) => &input[..message.at],
        None => input,
    }
}

/// libFuzzer's `main` is not Rust's, which would have ignored SIGPIPE: a
/// write to a closed socket must be an error here, not the process's end.
fn ignore_sigpipe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: setting SIGPIPE's disposition to SIG_IGN installs no
        // handler code and touches no memory of ours.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    });
}

fuzz_target!(|input: &[u8]| {
    ignore_sigpipe();
    let stream = first_messages(input);
    let (client, guard_end) = UnixStream::pair().expect("a socket pair");
    let forwarded = Arc::new(Mutex::new(Forwarded::default()));
    let recording = Recording::default();
    // The server never reports why it stopped: its channel is closed.
    let (_, device_outcome) = mpsc::channel();
    let mut options = GuardOptions::new(|| {});
    options.record = Some(Box::new(recording.clone()));
    let relay = Relay::new(
        guard_end,
        StandIn {
            forwarded: forwarded.clone(),
            read_so_far: recording.clone(),
        },
        DeviceShape {
            region_sizes: REGION_SIZES.to_vec(),
        },
        device_outcome,
        options,
    );
    // One thread: the socket holds the whole stream and all its replies
    // (see `first_messages`), so neither side ever waits for the other.
    (&client)
        .write_all(stream)
        .expect("the stream fits the socket");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let _ = relay.serve();
    let mut replies = Vec::new();
    (&client).read_to_end(&mut replies).expect("the replies");

    let recorded = recording.0.lock().unwrap();
    assert!(
        stream.starts_with(&recorded),
        "the recording is not what the client sent"
    );
    let forwarded = forwarded.lock().unwrap();
    let replies = read_replies(&replies);
    let mut next_forwarded = forwarded.messages.iter().peekable();
    let mut next_reply = replies.iter();
    let mut gone = false;
    for framed in vfio_stream::frame(stream) {
        let header = framed.header;
        let on_header = refused_on_header(&header);
        if !on_header && !framed.complete {
            // Cut short: the relay waits for the rest, finds the stream's
            // end and stops without an answer.
            break;
        }
        let was_forwarded = !on_header
            && next_forwarded
                .peek()
                .is_some_and(|f| is_forwarded_as(&framed, f));
        if was_forwarded {
            next_forwarded.next();
        }
        if wants_reply(&header) {
            let (reply, body) = next_reply
                .next()
                .unwrap_or_else(|| panic!("no reply to message at {}", framed.at));
            assert_eq!(reply.message_id, header.message_id, "reply out of step");
            assert_eq!(reply.command, header.command, "reply out of step");
            assert_eq!(reply.flags & TYPE_MASK, TYPE_REPLY);
            let served = was_forwarded && !gone && header.message_id != GONE_ID;
            if served {
                let fails = header.message_id & 0xff == FAIL_LOW_BYTE;
                assert_eq!(reply.flags & FLAG_ERROR != 0, fails, "{reply:?}");
                if fails {
                    assert_eq!(reply.error, libc::EIO as u32);
                }
            } else {
                assert_eq!(reply.flags, TYPE_REPLY | FLAG_ERROR, "a refusal: {reply:?}");
                assert_ne!(reply.error, 0);
                assert_eq!(*body, 0);
            }
            if gone {
                assert!(!was_forwarded);
            }
        }
        if was_forwarded && header.message_id == GONE_ID {
            gone = true;
        }
        if !framed.complete {
            break;
        }
    }
    assert!(
        next_forwarded.next().is_none(),
        "the relay forwarded a message that is not in the stream"
    );
    assert!(next_reply.next().is_none(), "a reply to nothing");
});
