// The backward engine: walks the graph from the roots iteratively (no recursion), in dependency order with
// later-created nodes first and leaf accumulators as soon as they are ready, summing gradients where paths meet.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep {

// Accumulates d(roots)/d(leaf) into every reachable leaf's .grad. `grad_roots[i]` may be undefined for a
// one-element root (taken as 1). CreateGraph::kYes records the backward computation (higher-order gradients)
// and implies RetainGraph::kYes, as the recorded graph goes through this one's nodes.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                  RetainGraph retain = RetainGraph::kNo, CreateGraph create = CreateGraph::kNo);

// Returns d(outputs)/d(inputs) without touching any .grad (gradients with respect to inputs, e.g. FGSM).
// An input that the outputs do not depend on gets an undefined tensor.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, RetainGraph retain = RetainGraph::kNo,
                         CreateGraph create = CreateGraph::kNo);

// While set (counted per thread: each yield_between_nodes(true) is undone by one (false)), backward passes on
// this thread give up the core (sched_yield) before each node, and so does each op recorded for backward
// (yield_if_requested, called by record(): the forward of a step that overlaps an all-reduce left in flight,
// Reducer::defer_next_wait). The distributed reducer sets it while its
// collectives are in flight: a communication thread that shares the core (one rank per core) then moves its
// data between nodes instead of when the scheduler's time slice ends, milliseconds later; each yield is one
// progress step for it, so yielding less often hid less (tests/perf/bench_link.sh, ResNet-20 at 1 Gbit/s:
// every node 0.56-0.59 of the communication hidden, every 20 us 0.42-0.56, every 100 us 0.19-0.27, never
// 0). Costs one system call per node when no other thread wants the core.
void yield_between_nodes(bool on);
bool yielding_between_nodes();
void yield_if_requested();
// How many times this thread has yielded so far (for tests and benchmarks).
std::uint64_t yields_made();

// Runs `callback` once the backward pass now running on this thread has processed every node (the
// distributed reducer finalises gradients there). Callbacks queued by callbacks run too, in order. Throws
// AutogradError when no backward is running. If the backward throws, its callbacks are dropped.
void queue_backward_callback(std::function<void()> callback);

}  // namespace lockstep
