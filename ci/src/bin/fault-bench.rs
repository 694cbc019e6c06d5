//! fault-bench: what faulting VRAM in costs under each strategy and its peers, per preferred
//! page size, every fault count checked exactly against the model. The work is in
//! `rangefault_ci::bench`; `fault-bench --help` says how to run it.
//!
//! Usage: `cargo run --release -p rangefault-ci --bin fault-bench -- [--engine qemu|kvm]
//!         [--sizes 64K,4M] [--smoke] [--from-reports] ...`

fn main() {
    std::process::exit(rangefault_ci::bench::main_from(std::env::args_os()));
}
