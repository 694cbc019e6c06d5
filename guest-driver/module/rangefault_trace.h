/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trace events of the rangefault driver: one enter and one exit record per
 * call of its fault handlers. Rust calls them through trace.rs, which checks
 * each tracepoint's static key itself, so a disabled event costs a patched-out
 * jump in the handler and no call.
 *
 * The strategy names mirror window.rs's Strategy; abi/tests/kernel_mirror.rs
 * compares them.
 */

#undef TRACE_SYSTEM
#define TRACE_SYSTEM rangefault
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE rangefault_trace

#if !defined(_RANGEFAULT_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _RANGEFAULT_TRACE_H

#include <linux/mm.h>
#include <linux/tracepoint.h>

#define RANGEFAULT_STRATEGY_NAMES		\
	{ 0, "page" },				\
	{ 1, "prefault16" },			\
	{ 2, "range" },				\
	{ 3, "range-mm" },			\
	{ 4, "ttm16" }

/* The level a fault was counted at (its largest entry), as the STATS ioctl counts it. */
#define RANGEFAULT_LEVEL_NAMES			\
	{ 0, "none" },				\
	{ 1, "pte" },				\
	{ 2, "pmd" },				\
	{ 3, "pud" }

/* Which handler the core called: ->fault, or ->huge_fault for a PMD or PUD. */
#define RANGEFAULT_HANDLER_NAMES		\
	{ 0, "fault" },				\
	{ PMD_ORDER, "huge_pmd" },		\
	{ PUD_ORDER, "huge_pud" }

/**
 * rangefault_fault_enter - a fault handler starts
 * @address: the page-aligned faulting address
 * @bar_offset: the BAR2 offset that @address maps
 * @order: 0 for ->fault, PMD_ORDER or PUD_ORDER for ->huge_fault
 * @flags: the fault's FAULT_FLAG_* bits (TRIED marks the retry after
 *	VM_FAULT_RETRY, VMA_LOCK the per-VMA-lock attempt)
 */
TRACE_EVENT(rangefault_fault_enter,
	TP_PROTO(unsigned long address, u64 bar_offset, unsigned int order,
		 unsigned int flags),
	TP_ARGS(address, bar_offset, order, flags),

	TP_STRUCT__entry(
		__field(unsigned long, address)
		__field(u64, bar_offset)
		__field(unsigned int, order)
		__field(unsigned int, flags)
	),

	TP_fast_assign(
		__entry->address = address;
		__entry->bar_offset = bar_offset;
		__entry->order = order;
		__entry->flags = flags;
	),

	TP_printk("va=%#lx off=%#llx handler=%s flags=%s",
		  __entry->address, __entry->bar_offset,
		  __print_symbolic(__entry->order, RANGEFAULT_HANDLER_NAMES),
		  __print_flags(__entry->flags, "|", FAULT_FLAG_TRACE))
);

/**
 * rangefault_fault_exit - a fault handler returns
 * @address: the page-aligned faulting address
 * @bar_offset: the BAR2 offset that @address maps
 * @strategy: the VMA's strategy (RANGEFAULT_STRATEGY_NAMES)
 * @level: the level the fault was counted at (RANGEFAULT_LEVEL_NAMES); none
 *	for a fallback, a refusal, or a window a racing thread had mapped
 * @ptes: PTEs this call inserted
 * @pmds: PMD leaves this call inserted
 * @puds: PUD leaves this call inserted
 * @result: the vm_fault_t the handler returns
 * @ns: time in the handler, the figure the LATENCY histograms count
 */
TRACE_EVENT(rangefault_fault_exit,
	TP_PROTO(unsigned long address, u64 bar_offset, unsigned int strategy,
		 unsigned int level, u32 ptes, u32 pmds, u32 puds,
		 unsigned int result, u64 ns),
	TP_ARGS(address, bar_offset, strategy, level, ptes, pmds, puds, result,
		ns),

	TP_STRUCT__entry(
		__field(unsigned long, address)
		__field(u64, bar_offset)
		__field(u64, ns)
		__field(unsigned int, strategy)
		__field(unsigned int, level)
		__field(u32, ptes)
		__field(u32, pmds)
		__field(u32, puds)
		__field(unsigned int, result)
	),

	TP_fast_assign(
		__entry->address = address;
		__entry->bar_offset = bar_offset;
		__entry->ns = ns;
		__entry->strategy = strategy;
		__entry->level = level;
		__entry->ptes = ptes;
		__entry->pmds = pmds;
		__entry->puds = puds;
		__entry->result = result;
	),

	TP_printk("va=%#lx off=%#llx strategy=%s level=%s ptes=%u pmds=%u puds=%u result=%s ns=%llu",
		  __entry->address, __entry->bar_offset,
		  __print_symbolic(__entry->strategy, RANGEFAULT_STRATEGY_NAMES),
		  __print_symbolic(__entry->level, RANGEFAULT_LEVEL_NAMES),
		  __entry->ptes, __entry->pmds, __entry->puds,
		  __print_flags(__entry->result, "|", VM_FAULT_RESULT_TRACE),
		  __entry->ns)
);

#endif /* _RANGEFAULT_TRACE_H */

/* This part must be outside the include guard. */
#include <trace/define_trace.h>
