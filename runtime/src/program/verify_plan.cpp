// Whole-program checks of the instruction stream against the memory plan (see verify.h).
#include <algorithm>
#include <map>
#include <queue>

#include "program/verify.h"

namespace etgpu {
namespace {

// The inclusive instruction-index interval during which a storage root holds a live value.
struct Lifetime {
  int64_t first = INT64_MAX;
  int64_t last = INT64_MIN;
  bool used() const { return first <= last; }
  void touch(int64_t at) {
    first = std::min(first, at);
    last = std::max(last, at);
  }
};

// Arena bytes [begin, end) of one root, live over [first, last].
struct Placement {
  uint64_t begin, end;
  int64_t first, last;
  int id;
};

std::vector<Lifetime> lifetimes(const ir::Graph& graph, const std::vector<InstructionOperands>& ins) {
  std::vector<Lifetime> life(graph.tensors()->size());
  for (int32_t id : *graph.inputs()) life[storage_root(graph, id)].touch(-1);
  for (size_t i = 0; i < ins.size(); ++i) {
    for (int id : ins[i].reads) life[storage_root(graph, id)].touch(static_cast<int64_t>(i));
    for (int id : ins[i].writes) life[storage_root(graph, id)].touch(static_cast<int64_t>(i));
  }
  for (int32_t id : *graph.outputs()) life[storage_root(graph, id)].touch(static_cast<int64_t>(ins.size()));
  return life;
}

std::vector<Placement> arena_placements(const ir::Graph& graph, const std::vector<Lifetime>& life) {
  std::vector<Placement> placed;
  for (size_t id = 0; id < life.size(); ++id) {
    const ir::Tensor& t = *graph.tensors()->Get(id);
    if (t.storage() != ir::Storage::Arena || !life[id].used() || t.nbytes() == 0) continue;
    placed.push_back({t.offset(), t.offset() + t.nbytes(), life[id].first, life[id].last,
                      static_cast<int>(id)});
  }
  return placed;
}

Status overlap_error(const Placement& a, const Placement& b) {
  return err("memory plan: tensors ", a.id, " [", a.begin, ", ", a.end, ") and ", b.id, " [", b.begin,
             ", ", b.end, ") share arena bytes while both are live (instructions ", a.first, "..",
             a.last, " and ", b.first, "..", b.last, ")");
}

// Sweep in order of first use, keeping the live placements in a map by offset. The live set is
// pairwise disjoint (else we have already failed), so a new placement can only collide with its
// neighbours in offset order: O(n log n) overall.
Status check_disjoint(std::vector<Placement> placed) {
  std::sort(placed.begin(), placed.end(), [](const Placement& a, const Placement& b) {
    return a.first != b.first ? a.first < b.first : a.id < b.id;
  });
  auto later_end = [&](size_t a, size_t b) { return placed[a].last > placed[b].last; };
  std::priority_queue<size_t, std::vector<size_t>, decltype(later_end)> by_end(later_end);
  std::map<uint64_t, size_t> live;  // begin offset -> index into placed
  for (size_t i = 0; i < placed.size(); ++i) {
    const Placement& p = placed[i];
    while (!by_end.empty() && placed[by_end.top()].last < p.first) {
      live.erase(placed[by_end.top()].begin);
      by_end.pop();
    }
    auto next = live.lower_bound(p.begin);
    if (next != live.end() && placed[next->second].begin < p.end) return overlap_error(placed[next->second], p);
    if (next != live.begin()) {
      const Placement& prev = placed[std::prev(next)->second];
      if (prev.end > p.begin) return overlap_error(prev, p);
    }
    live.emplace(p.begin, i);
    by_end.push(i);
  }
  return Status::ok();
}

Status check_writes(const ir::Graph& graph, const std::vector<InstructionOperands>& ins) {
  std::vector<bool> is_input(graph.tensors()->size(), false);
  for (int32_t id : *graph.inputs()) is_input[storage_root(graph, id)] = true;
  for (size_t i = 0; i < ins.size(); ++i) {
    for (int id : ins[i].writes) {
      const int root = storage_root(graph, id);
      const ir::Storage storage = graph.tensors()->Get(root)->storage();
      ETGPU_CHECK(storage == ir::Storage::Arena || storage == ir::Storage::Mutable, "instruction ", i,
                  " writes tensor ", id, ", whose storage is a constant; constants are read-only");
      ETGPU_CHECK(!is_input[root], "instruction ", i, " writes tensor ", id,
                  ", which holds graph input data; inputs are read-only");
    }
  }
  return Status::ok();
}

}  // namespace

int storage_root(const ir::Graph& graph, int id) {
  // verify_graph guarantees alias_of < id, so the chain ends.
  while (graph.tensors()->Get(id)->storage() == ir::Storage::Alias) id = graph.tensors()->Get(id)->alias_of();
  return id;
}

Status verify_plan(const ir::Graph& graph, const std::vector<InstructionOperands>& instructions) {
  ETGPU_RETURN_IF_ERROR(check_writes(graph, instructions));
  return check_disjoint(arena_placements(graph, lifetimes(graph, instructions)));
}

}  // namespace etgpu
