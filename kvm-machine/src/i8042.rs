//! The i8042 keyboard controller, without a keyboard or mouse behind it:
//! enough for Linux's i8042 driver to read and write the command byte (CTR)
//! and find no ports, and for a guest to reset the machine (`reboot=k`:
//! command 0xFE on port 0x64), which this VMM treats as the end of the run.
//!
//! Answering "nothing here" to every read would make Linux poll each
//! command for its 500 ms timeout ("Can't read CTR while initializing
//! i8042"), one VM exit per poll.

use std::collections::VecDeque;

pub const DATA_PORT: u16 = 0x60;
pub const COMMAND_PORT: u16 = 0x64;

const CMD_READ_CTR: u8 = 0x20;
const CMD_WRITE_CTR: u8 = 0x60;
const CMD_DISABLE_AUX: u8 = 0xa7;
const CMD_ENABLE_AUX: u8 = 0xa8;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_DISABLE_KBD: u8 = 0xad;
const CMD_ENABLE_KBD: u8 = 0xae;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
/// "Pulse output line 0": the CPU reset line.
const CMD_RESET_CPU: u8 = 0xfe;

const SELF_TEST_PASSED: u8 = 0x55;

/// Status register: output buffer full (a byte waits at the data port).
const STATUS_OBF: u8 = 0x01;
/// Status register: the self-test passed (the "system flag").
const STATUS_SYS: u8 = 0x04;
/// Status register: the last write went to the command port.
const STATUS_CMD: u8 = 0x08;
/// Status register: the keyboard is not inhibited (no "Keylock active").
const STATUS_UNLOCKED: u8 = 0x10;

/// CTR: keyboard clock disabled / aux clock disabled.
const CTR_KBD_DISABLED: u8 = 0x10;
const CTR_AUX_DISABLED: u8 = 0x20;
/// CTR: system flag and XLATE, as after a PC's power-on self-test.
const CTR_POWER_ON: u8 = 0x44 | CTR_KBD_DISABLED | CTR_AUX_DISABLED;

/// What a write to the data port means next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataWrite {
    /// A byte for the keyboard: there is none, so it goes nowhere.
    Keyboard,
    Ctr,
    OutputPort,
}

#[derive(Debug)]
pub struct I8042 {
    ctr: u8,
    output: VecDeque<u8>,
    data_write: DataWrite,
    last_was_command: bool,
}

impl Default for I8042 {
    fn default() -> Self {
        Self {
            ctr: CTR_POWER_ON,
            output: VecDeque::new(),
            data_write: DataWrite::Keyboard,
            last_was_command: false,
        }
    }
}

/// What a write did that the machine must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The guest pulsed the CPU reset line.
    Reset,
}

impl I8042 {
    pub fn read(&mut self, port: u16, data: &mut [u8]) {
        let value = match port {
            DATA_PORT => self.output.pop_front().unwrap_or(0),
            _ => {
                let mut status = STATUS_SYS | STATUS_UNLOCKED;
                if !self.output.is_empty() {
                    status |= STATUS_OBF;
                }
                if self.last_was_command {
                    status |= STATUS_CMD;
                }
                status
            }
        };
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    pub fn write(&mut self, port: u16, data: &[u8]) -> Effect {
        let Some(&value) = data.first() else {
            return Effect::None;
        };
        if port == DATA_PORT {
            self.last_was_command = false;
            match std::mem::replace(&mut self.data_write, DataWrite::Keyboard) {
                DataWrite::Ctr => self.ctr = value,
                // Bit 0 of the output port is the reset line, active low.
                DataWrite::OutputPort if value & 1 == 0 => return Effect::Reset,
                DataWrite::OutputPort | DataWrite::Keyboard => {}
            }
            return Effect::None;
        }
        self.last_was_command = true;
        match value {
            CMD_READ_CTR => self.reply(self.ctr),
            CMD_WRITE_CTR => self.data_write = DataWrite::Ctr,
            CMD_WRITE_OUTPUT_PORT => self.data_write = DataWrite::OutputPort,
            CMD_SELF_TEST => self.reply(SELF_TEST_PASSED),
            CMD_DISABLE_KBD => self.ctr |= CTR_KBD_DISABLED,
            CMD_ENABLE_KBD => self.ctr &= !CTR_KBD_DISABLED,
            CMD_DISABLE_AUX => self.ctr |= CTR_AUX_DISABLED,
            CMD_ENABLE_AUX => self.ctr &= !CTR_AUX_DISABLED,
            CMD_RESET_CPU => return Effect::Reset,
            // Port tests, aux loopback and the rest: no answer, as from a
            // controller with nothing attached (the guest times out).
            _ => {}
        }
        Effect::None
    }

    fn reply(&mut self, byte: u8) {
        // A real 8042 has a one-byte buffer; a guest that never reads must
        // not grow ours.
        self.output.clear();
        self.output.push_back(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(c: &mut I8042) -> u8 {
        let mut byte = [0xffu8];
        c.read(COMMAND_PORT, &mut byte);
        byte[0]
    }

    fn data(c: &mut I8042) -> u8 {
        let mut byte = [0xffu8];
        c.read(DATA_PORT, &mut byte);
        byte[0]
    }

    #[test]
    fn only_the_reset_commands_reset() {
        let mut c = I8042::default();
        assert_eq!(c.write(COMMAND_PORT, &[0xfe]), Effect::Reset);
        assert_eq!(c.write(DATA_PORT, &[0xfe]), Effect::None);
        assert_eq!(c.write(COMMAND_PORT, &[]), Effect::None);
        // Writing the output port with the reset line low (Linux's "reboot=k" fallback).
        assert_eq!(
            c.write(COMMAND_PORT, &[CMD_WRITE_OUTPUT_PORT]),
            Effect::None
        );
        assert_eq!(c.write(DATA_PORT, &[0xfe]), Effect::Reset);
        assert_eq!(
            c.write(COMMAND_PORT, &[CMD_WRITE_OUTPUT_PORT]),
            Effect::None
        );
        assert_eq!(c.write(DATA_PORT, &[0xff]), Effect::None);
    }

    #[test]
    fn the_command_byte_reads_back_what_was_written() {
        let mut c = I8042::default();
        assert_eq!(status(&mut c) & STATUS_OBF, 0);
        c.write(COMMAND_PORT, &[CMD_READ_CTR]);
        assert_eq!(
            status(&mut c) & (STATUS_OBF | STATUS_CMD),
            STATUS_OBF | STATUS_CMD
        );
        assert_eq!(data(&mut c), CTR_POWER_ON);
        assert_eq!(status(&mut c) & STATUS_OBF, 0);
        c.write(COMMAND_PORT, &[CMD_WRITE_CTR]);
        c.write(DATA_PORT, &[0x65]);
        c.write(COMMAND_PORT, &[CMD_ENABLE_KBD]);
        c.write(COMMAND_PORT, &[CMD_READ_CTR]);
        assert_eq!(data(&mut c), 0x65 & !CTR_KBD_DISABLED);
        c.write(COMMAND_PORT, &[CMD_SELF_TEST]);
        assert_eq!(data(&mut c), SELF_TEST_PASSED);
    }

    #[test]
    fn unanswered_commands_leave_nothing_to_read() {
        let mut c = I8042::default();
        c.write(COMMAND_PORT, &[0xa9]);
        c.write(DATA_PORT, &[0xf2]);
        assert_eq!(status(&mut c) & STATUS_OBF, 0);
        // Two replies unread: only the latest is kept.
        c.write(COMMAND_PORT, &[CMD_SELF_TEST]);
        c.write(COMMAND_PORT, &[CMD_READ_CTR]);
        assert_eq!(data(&mut c), CTR_POWER_ON);
        assert_eq!(status(&mut c) & STATUS_OBF, 0);
    }
}
