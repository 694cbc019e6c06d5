//! The trace in the Chrome JSON trace-event format (`{"traceEvents": [...]}`), which Perfetto
//! (ui.perfetto.dev) and chrome://tracing open. Perfetto's own ftrace-text import drops events it
//! does not know, ours among them, hence the conversion.
//!
//! Tracks: each process is a process and each thread a thread, as in the guest; on a thread,
//! one `fault <level>` slice (category `fault`) per fault, from the exception to the driver's
//! return, holding one `handler <kind>` slice (category `handler`) per handler call, and the
//! scenario phases (category `phase`) around them. A `CPUs` process has one thread per vCPU with
//! the same faults by where they ran (category `cpu`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::faults::{Fault, Story, Task};

/// The made-up process holding the per-CPU tracks: above any Linux pid (`PID_MAX_LIMIT` 2^22).
const CPU_TRACKS_PID: u64 = 1 << 23;

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// A slice's length, from the trace clock's stamps (microseconds: two in the same one give 0;
/// the args carry the driver's own nanoseconds), so slices nest exactly as their stamps do.
fn dur_us(start_ns: u64, end_ns: u64) -> f64 {
    us(end_ns.saturating_sub(start_ns))
}

pub fn trace_events(story: &Story, lost_events: u64) -> Value {
    let mut events = Vec::new();
    let mut tasks = BTreeSet::new();
    let mut cpus = BTreeSet::new();
    for fault in &story.faults {
        tasks.insert((fault.task.tgid, fault.task.pid));
        fault_events(fault, &mut events, &mut cpus, story);
    }
    for phase in &story.phases {
        tasks.insert((phase.task.tgid, phase.task.pid));
        let end = phase.end_ns.unwrap_or(phase.begin_ns);
        events.push(json!({
            "name": phase.name, "cat": "phase", "ph": "X",
            "ts": us(phase.begin_ns), "dur": us(end - phase.begin_ns),
            "pid": phase.task.tgid, "tid": phase.task.pid,
            "args": {"ended": phase.end_ns.is_some()},
        }));
    }
    let mut metadata = names(story, &tasks);
    for cpu in cpus {
        metadata.push(json!({
            "name": "thread_name", "ph": "M", "pid": CPU_TRACKS_PID,
            "tid": CPU_TRACKS_PID + u64::from(cpu), "args": {"name": format!("CPU {cpu}")},
        }));
    }
    if metadata.iter().any(|e| e["pid"] == CPU_TRACKS_PID) {
        metadata.push(json!({
            "name": "process_name", "ph": "M", "pid": CPU_TRACKS_PID, "args": {"name": "CPUs"},
        }));
    }
    metadata.extend(events);
    json!({
        "traceEvents": metadata,
        "displayTimeUnit": "ns",
        "otherData": {
            "source": "rangefault: vmm run --trace",
            "faults": story.faults.len(),
            "lost_events": lost_events,
        },
    })
}

fn fault_events(fault: &Fault, events: &mut Vec<Value>, cpus: &mut BTreeSet<u32>, story: &Story) {
    let last = fault.last();
    let Task { pid, tgid } = fault.task;
    let start = fault.start_ns();
    let dur = dur_us(start, fault.end_ns());
    let exception = fault.exception.map(|e| {
        json!({"address": format!("{:#x}", e.address), "ip": format!("{:#x}", e.ip),
               "error_code": format!("{:#x}", e.error_code), "cpu": e.cpu})
    });
    let args = json!({
        "va": format!("{:#x}", last.va), "bar_offset": format!("{:#x}", last.bar_offset),
        "strategy": last.strategy, "level": last.level, "result": last.result,
        "ptes": last.ptes, "pmds": last.pmds, "puds": last.puds,
        "handler_calls": fault.calls.len(), "handler_ns": last.ns,
        "end_to_end_ns": fault.end_to_end_ns(), "cpu": last.cpu, "exception": exception,
    });
    events.push(json!({
        "name": format!("fault {}", last.level), "cat": "fault", "ph": "X",
        "ts": us(start), "dur": dur, "pid": tgid, "tid": pid, "args": args,
    }));
    for call in &fault.calls {
        events.push(json!({
            "name": format!("handler {}", call.handler), "cat": "handler", "ph": "X",
            "ts": us(call.enter_ns), "dur": dur_us(call.enter_ns, call.exit_ns),
            "pid": tgid, "tid": pid,
            "args": {"result": call.result, "level": call.level, "ns": call.ns,
                     "flags": call.flags, "ptes": call.ptes, "pmds": call.pmds, "puds": call.puds},
        }));
    }
    cpus.insert(last.cpu);
    let task = story.task_names.get(&pid).map_or("?", String::as_str);
    events.push(json!({
        "name": format!("{task}:{pid} {}", last.level), "cat": "cpu", "ph": "X",
        "ts": us(start), "dur": dur, "pid": CPU_TRACKS_PID,
        "tid": CPU_TRACKS_PID + u64::from(last.cpu),
        "args": {"va": format!("{:#x}", last.va), "handler_ns": last.ns},
    }));
}

/// `process_name` and `thread_name` metadata: a process is named after its main thread.
fn names(story: &Story, tasks: &BTreeSet<(u32, u32)>) -> Vec<Value> {
    let name = |pid: u32| {
        story
            .task_names
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| pid.to_string())
    };
    let mut processes = BTreeMap::new();
    let mut metadata = Vec::new();
    for &(tgid, pid) in tasks {
        processes.entry(tgid).or_insert_with(|| name(tgid));
        metadata.push(json!({
            "name": "thread_name", "ph": "M", "pid": tgid, "tid": pid, "args": {"name": name(pid)},
        }));
    }
    for (tgid, process) in processes {
        metadata.push(json!({
            "name": "process_name", "ph": "M", "pid": tgid, "args": {"name": process},
        }));
    }
    metadata
}
