//! Just enough of the i8042 keyboard controller for a guest to reset the
//! machine (`reboot=k`: command 0xFE on port 0x64), which this VMM treats
//! as the end of the run. There is no keyboard behind it.

pub const DATA_PORT: u16 = 0x60;
pub const COMMAND_PORT: u16 = 0x64;
/// "Pulse output line 0": the CPU reset line.
const CMD_RESET_CPU: u8 = 0xfe;

/// Status/data reads: 0 means "no data, input buffer empty", so a guest
/// waiting to send a command (Linux's kb_wait) proceeds at once.
pub fn read(data: &mut [u8]) {
    data.fill(0);
}

/// Whether the write asks for a CPU reset.
pub fn write(port: u16, data: &[u8]) -> bool {
    port == COMMAND_PORT && data.first() == Some(&CMD_RESET_CPU)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_command_fe_resets() {
        assert!(write(COMMAND_PORT, &[0xfe]));
        assert!(!write(COMMAND_PORT, &[0xd1]));
        assert!(!write(DATA_PORT, &[0xfe]));
        assert!(!write(COMMAND_PORT, &[]));
        let mut status = [0xffu8];
        read(&mut status);
        assert_eq!(status, [0]);
    }
}
