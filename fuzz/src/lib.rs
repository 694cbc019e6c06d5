//! What the fuzz targets and the seed converter (`examples/seeds.rs`) share:
//! the targets' input formats.

/// `device_access`'s input: one byte choosing the device's preferred page
/// size, then a sequence of [`DeviceOp`]s, each an opcode byte followed by
/// its operands. A truncated last op is dropped.
pub mod device_ops {
    /// Bits 0-2 of an opcode: the kind of access.
    const KIND_MASK: u8 = 0x7;
    /// Opcode bit 7: the offset is a full u64 (else a u16), to reach the
    /// far ends of the offset space.
    const WIDE_OFFSET: u8 = 0x80;
    /// Accesses move at most this many bytes (config space or BAR0 accepts
    /// any length; the engines send at most 8).
    pub const MAX_ACCESS: usize = 32;

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum DeviceOp {
        ConfigRead {
            offset: u64,
            len: usize,
        },
        ConfigWrite {
            offset: u64,
            data: Vec<u8>,
        },
        Bar0Read {
            offset: u64,
            len: usize,
        },
        Bar0Write {
            offset: u64,
            data: Vec<u8>,
        },
        /// Writes 8 bytes of guest RAM at `8 * slot` (page tables, garbage).
        RamWrite {
            slot: u16,
            value: u64,
        },
        /// The engine raises an MSI-X vector (and delivers what is due).
        SignalMsix {
            vector: u8,
        },
    }

    /// Splits `bytes` into ops.
    pub fn decode(mut bytes: &[u8]) -> Vec<DeviceOp> {
        let mut ops = Vec::new();
        while let Some(op) = decode_one(&mut bytes) {
            ops.push(op);
        }
        ops
    }

    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(head)
    }

    fn decode_one(bytes: &mut &[u8]) -> Option<DeviceOp> {
        let opcode = take(bytes, 1)?[0];
        let offset = if opcode & WIDE_OFFSET != 0 {
            u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?)
        } else {
            u64::from(u16::from_le_bytes(take(bytes, 2)?.try_into().ok()?))
        };
        let kind = opcode & KIND_MASK;
        if kind == 4 {
            let value = u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?);
            return Some(DeviceOp::RamWrite {
                slot: offset as u16,
                value,
            });
        }
        if kind >= 5 {
            return Some(DeviceOp::SignalMsix {
                vector: offset as u8,
            });
        }
        let len = usize::from(take(bytes, 1)?[0]) % (MAX_ACCESS + 1);
        Some(match kind {
            0 => DeviceOp::ConfigRead { offset, len },
            2 => DeviceOp::Bar0Read { offset, len },
            1 => DeviceOp::ConfigWrite {
                offset,
                data: take(bytes, len)?.to_vec(),
            },
            _ => DeviceOp::Bar0Write {
                offset,
                data: take(bytes, len)?.to_vec(),
            },
        })
    }

    /// The bytes [`decode`] turns into `op` (u16 offsets where they fit).
    pub fn encode(op: &DeviceOp, out: &mut Vec<u8>) {
        let (kind, offset, tail): (u8, u64, Vec<u8>) = match op {
            DeviceOp::ConfigRead { offset, len } => (0, *offset, vec![*len as u8]),
            DeviceOp::Bar0Read { offset, len } => (2, *offset, vec![*len as u8]),
            DeviceOp::ConfigWrite { offset, data } | DeviceOp::Bar0Write { offset, data } => {
                let kind = if matches!(op, DeviceOp::ConfigWrite { .. }) {
                    1
                } else {
                    3
                };
                let mut tail = vec![data.len() as u8];
                tail.extend_from_slice(data);
                (kind, *offset, tail)
            }
            DeviceOp::RamWrite { slot, value } => {
                (4, u64::from(*slot), value.to_le_bytes().to_vec())
            }
            DeviceOp::SignalMsix { vector } => (5, u64::from(*vector), vec![]),
        };
        match u16::try_from(offset) {
            Ok(short) => {
                out.push(kind);
                out.extend_from_slice(&short.to_le_bytes());
            }
            Err(_) => {
                out.push(kind | WIDE_OFFSET);
                out.extend_from_slice(&offset.to_le_bytes());
            }
        }
        out.extend_from_slice(&tail);
    }
}

/// A vfio-user byte stream cut into messages the way the guard frames it:
/// each message takes `max(message_size, 16)` bytes.
pub mod vfio_stream {
    use vfio_user_guard::wire::{Header, HEADER_SIZE};

    /// One message of a stream; `body` may be cut short by the stream's end.
    #[derive(Clone, Debug)]
    pub struct Framed<'a> {
        pub header: Header,
        /// Where the message starts in the stream.
        pub at: usize,
        pub body: &'a [u8],
        /// The stream holds the whole body.
        pub complete: bool,
    }

    /// Every message whose header is complete, in order.
    pub fn frame(stream: &[u8]) -> Vec<Framed<'_>> {
        let mut messages = Vec::new();
        let mut at = 0;
        while let Some(header_bytes) = stream.get(at..at + HEADER_SIZE) {
            let header = Header::from_bytes(header_bytes.try_into().expect("16 bytes"));
            let body_start = at + HEADER_SIZE;
            let body_end = body_start.saturating_add(header.body_size());
            let complete = body_end <= stream.len();
            messages.push(Framed {
                header,
                at,
                body: &stream[body_start..body_end.min(stream.len())],
                complete,
            });
            if !complete {
                break;
            }
            at = body_end;
        }
        messages
    }
}
