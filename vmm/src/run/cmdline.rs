//! The guest kernel's command line: the scenario (or the user's command,
//! base64 so any shell text survives), the trace buffer when tracing, and
//! the user's extra arguments.

use anyhow::Result;

use super::RunArgs;

/// x86's COMMAND_LINE_SIZE; a longer command line would be cut silently.
const COMMAND_LINE_SIZE: usize = 2048;

/// With `trace`, the guest records faults into a buffer of
/// `--trace-buffer` per vCPU.
pub fn kernel_cmdline(args: &RunArgs, trace: bool) -> Result<String> {
    let guest_cmd = args.guest_cmd.as_ref().map(|cmd| {
        use base64::Engine as _;
        format!(
            " rangefault.cmd={}",
            base64::engine::general_purpose::STANDARD.encode(cmd)
        )
    });
    let trace_arg = if trace {
        format!(" rangefault.trace={}", args.trace_buffer >> 10)
    } else {
        String::new()
    };
    let cmdline = format!(
        "console=ttyS0 rdinit=/init panic=-1 rangefault.scenario={}{}{trace_arg} {}",
        args.scenario,
        guest_cmd.unwrap_or_default(),
        args.cmdline
    );
    anyhow::ensure!(
        cmdline.len() < COMMAND_LINE_SIZE,
        "the kernel command line would be {} bytes (limit {}); shorten --guest-cmd or --cmdline",
        cmdline.len(),
        COMMAND_LINE_SIZE - 1
    );
    Ok(cmdline.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::test_support::args;

    #[test]
    fn the_scenario_and_extra_arguments_go_on_the_line() {
        let line = kernel_cmdline(
            &args(&["--scenario", "faults", "--cmdline", "nokaslr"]),
            false,
        )
        .unwrap();
        assert_eq!(
            line,
            "console=ttyS0 rdinit=/init panic=-1 rangefault.scenario=faults nokaslr"
        );
        // Without extra arguments the line has no trailing space.
        let line = kernel_cmdline(&args(&[]), false).unwrap();
        assert!(line.ends_with("rangefault.scenario=skeleton"), "{line}");
    }

    #[test]
    fn a_guest_command_travels_as_base64() {
        let line = kernel_cmdline(&args(&["--guest-cmd", "echo a b"]), false).unwrap();
        assert!(line.contains(" rangefault.cmd=ZWNobyBhIGI="), "{line}");
    }

    #[test]
    fn tracing_asks_for_the_buffer_in_kib() {
        let line = kernel_cmdline(&args(&["--trace-buffer", "2M"]), true).unwrap();
        assert!(
            line.ends_with("rangefault.scenario=skeleton rangefault.trace=2048"),
            "{line}"
        );
        let line = kernel_cmdline(&args(&["--trace-buffer", "2M"]), false).unwrap();
        assert!(!line.contains("rangefault.trace"), "{line}");
    }

    #[test]
    fn a_line_the_kernel_would_cut_is_refused() {
        let long = "x".repeat(COMMAND_LINE_SIZE);
        let err = kernel_cmdline(&args(&["--cmdline", &long]), false).unwrap_err();
        assert!(err.to_string().contains("limit 2047"), "{err}");
    }
}
