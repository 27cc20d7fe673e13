#include "exec/decode.h"

#include <cmath>
#include <string>

namespace etgpu {
namespace {

static_assert(static_cast<int>(UnaryOp::kCount) == static_cast<int>(ir::UnaryOp::MAX) + 1,
              "engine UnaryOp must mirror the schema");
static_assert(static_cast<int>(BinaryOp::kCount) == static_cast<int>(ir::BinaryOp::MAX) + 1,
              "engine BinaryOp must mirror the schema");
static_assert(static_cast<int>(ReduceOp::kCount) == static_cast<int>(ir::ReduceOp::MAX) + 1,
              "engine ReduceOp must mirror the schema");

// Collects operand ids while checking them against the tensor table.
class Operands {
 public:
  Operands(const ir::Graph& graph, int instruction, DecodedInstruction* out)
      : num_tensors_(static_cast<int>(graph.tensors()->size())), instruction_(instruction), out_(out) {}

  Status required(int id, const char* role) {
    ETGPU_CHECK(id >= 0 && id < num_tensors_, "instruction ", instruction_, ": ", role,
                " refers to tensor ", id, " but the graph has ", num_tensors_);
    out_->inputs.push_back(id);
    return Status::ok();
  }
  // Returns whether the operand is present.
  Result<bool> optional(int id, const char* role) {
    if (id < 0) return false;
    ETGPU_RETURN_IF_ERROR(required(id, role));
    return true;
  }
  Status output(int id) {
    ETGPU_CHECK(id >= 0 && id < num_tensors_, "instruction ", instruction_,
                ": output refers to tensor ", id, " but the graph has ", num_tensors_);
    out_->out = id;
    return Status::ok();
  }
  Status extra_output(int id, const char* role) {
    ETGPU_CHECK(id >= 0 && id < num_tensors_, "instruction ", instruction_, ": ", role,
                " output refers to tensor ", id, " but the graph has ", num_tensors_);
    out_->extra_outputs.push_back(id);
    return Status::ok();
  }

 private:
  int num_tensors_;
  int instruction_;
  DecodedInstruction* out_;
};

template <typename E>
Status check_enum(E value, E max, int instruction, const char* what) {
  ETGPU_CHECK(static_cast<int>(value) >= 0 && static_cast<int>(value) <= static_cast<int>(max),
              "instruction ", instruction, ": unknown ", what, " ", static_cast<int>(value));
  return Status::ok();
}

std::vector<int> int_list(const flatbuffers::Vector<int32_t>* v) {
  return v ? std::vector<int>(v->begin(), v->end()) : std::vector<int>();
}

// The weight's operands (codes, scales [, zeros]) are appended in that order, after the operands
// the instruction lists before them; ops.h documents the operand order per instruction.
Result<QuantWeightParams> quant_weight(const ir::QuantWeight* w, int i, Operands& ops) {
  ETGPU_CHECK(w != nullptr, "instruction ", i, ": quantized weight is missing");
  ETGPU_RETURN_IF_ERROR(check_enum(w->scheme(), ir::QuantScheme::MAX, i, "quant scheme"));
  ETGPU_RETURN_IF_ERROR(ops.required(w->codes(), "codes"));
  ETGPU_RETURN_IF_ERROR(ops.required(w->scales(), "scales"));
  auto has_zeros = ops.optional(w->zeros(), "zeros");
  ETGPU_RETURN_IF_ERROR(has_zeros.status());
  ETGPU_CHECK(std::isfinite(w->tensor_scale()), "instruction ", i, ": tensor_scale is not finite");
  return QuantWeightParams{static_cast<QuantScheme>(w->scheme()), w->bits(), w->group(), has_zeros.value(),
                           w->zero_is_float(), w->tensor_scale()};
}

// A Rope's norm: its weight, if any, is appended after the Rope's other operands.
Result<RmsNormParams> rope_norm(const ir::RopeNorm* norm, int i, Operands& ops) {
  auto has_weight = ops.optional(norm->weight(), "norm weight");
  ETGPU_RETURN_IF_ERROR(has_weight.status());
  ETGPU_CHECK(std::isfinite(norm->eps()) && norm->eps() >= 0, "instruction ", i, ": rope norm eps ", norm->eps(),
              " is not a finite non-negative number");
  return RmsNormParams{has_weight.value(), norm->eps(), norm->unit_offset(), norm->round_normalized()};
}

#define ETGPU_ASSIGN_OPTIONAL(var, expr)        \
  bool var = false;                             \
  do {                                          \
    auto var##_result = (expr);                 \
    ETGPU_RETURN_IF_ERROR(var##_result.status()); \
    var = var##_result.value();                 \
  } while (0)

// A symbolic scalar (slice start, select index, copy offset) is evaluated with eval_dim at run
// time: its symbol must exist and its coefficients must keep mul * value + add inside int64 and
// the division defined, exactly as the verifier demands of shape dims.
Status check_scalar_dim(const ir::Dim& dim, const ir::Graph& graph, int i) {
  constexpr int64_t kMaxCoefficient = int64_t{1} << 31;  // |mul| * value < 2^62 for values < 2^31
  const int64_t num_syms = graph.sym_dims() ? static_cast<int64_t>(graph.sym_dims()->size()) : 0;
  ETGPU_CHECK(dim.add() > -(int64_t{1} << 40) && dim.add() < (int64_t{1} << 40), "instruction ", i,
              ": scalar offset ", dim.add(), " is out of range");
  if (dim.sym() < 0) return Status::ok();
  ETGPU_CHECK(dim.sym() < num_syms, "instruction ", i, ": scalar refers to symbol ", dim.sym(),
              " but the graph has ", num_syms);
  ETGPU_CHECK(dim.div() >= 1 && dim.div() < kMaxCoefficient && dim.mul() > -kMaxCoefficient &&
                  dim.mul() < kMaxCoefficient, "instruction ", i, ": scalar coefficients are out of range");
  return Status::ok();
}

Status decode(const ir::Instruction& ins, int i, Operands& ops, DecodedInstruction* d) {
  switch (ins.op_type()) {
    case ir::Op::Unary: {
      auto* p = ins.op_as_Unary();
      ETGPU_RETURN_IF_ERROR(check_enum(p->op(), ir::UnaryOp::MAX, i, "unary op"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = UnaryParams{static_cast<UnaryOp>(p->op()), p->alpha(), p->beta()};
      return ops.output(p->out());
    }
    case ir::Op::Binary: {
      auto* p = ins.op_as_Binary();
      ETGPU_RETURN_IF_ERROR(check_enum(p->op(), ir::BinaryOp::MAX, i, "binary op"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->a(), "a"));
      ETGPU_ASSIGN_OPTIONAL(has_b, ops.optional(p->b(), "b"));
      d->params = BinaryParams{static_cast<BinaryOp>(p->op()), has_b, p->scalar(), p->scalar_first(),
                               p->alpha()};
      return ops.output(p->out());
    }
    case ir::Op::Where: {
      auto* p = ins.op_as_Where();
      ETGPU_RETURN_IF_ERROR(ops.required(p->cond(), "cond"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->a(), "a"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->b(), "b"));
      d->params = WhereParams{};
      return ops.output(p->out());
    }
    case ir::Op::Cast: {
      auto* p = ins.op_as_Cast();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = CastParams{};
      return ops.output(p->out());
    }
    case ir::Op::Fill: {
      auto* p = ins.op_as_Fill();
      d->params = FillParams{p->value()};
      return ops.output(p->out());
    }
    case ir::Op::Arange: {
      auto* p = ins.op_as_Arange();
      d->params = ArangeParams{p->start(), p->step()};
      return ops.output(p->out());
    }
    case ir::Op::MatMul: {
      auto* p = ins.op_as_MatMul();
      ETGPU_RETURN_IF_ERROR(ops.required(p->a(), "a"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->b(), "b"));
      ETGPU_ASSIGN_OPTIONAL(has_bias, ops.optional(p->bias(), "bias"));
      d->params = MatMulParams{p->trans_b(), has_bias};
      return ops.output(p->out());
    }
    case ir::Op::Reduce: {
      auto* p = ins.op_as_Reduce();
      ETGPU_RETURN_IF_ERROR(check_enum(p->op(), ir::ReduceOp::MAX, i, "reduce op"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = ReduceParams{static_cast<ReduceOp>(p->op()), int_list(p->dims()), p->keepdim()};
      return ops.output(p->out());
    }
    case ir::Op::Softmax: {
      auto* p = ins.op_as_Softmax();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = SoftmaxParams{p->dim(), p->log()};
      return ops.output(p->out());
    }
    case ir::Op::LayerNorm: {
      auto* p = ins.op_as_LayerNorm();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      ETGPU_ASSIGN_OPTIONAL(has_weight, ops.optional(p->weight(), "weight"));
      ETGPU_ASSIGN_OPTIONAL(has_bias, ops.optional(p->bias(), "bias"));
      d->params = LayerNormParams{has_weight, has_bias, p->eps(), p->normalized_ndim()};
      return ops.output(p->out());
    }
    case ir::Op::Rope: {
      auto* p = ins.op_as_Rope();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->cos(), "cos"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->sin(), "sin"));
      RopeParams params{p->x_seq_major()};
      if (p->cache() >= 0) {
        // Fused with the KV-cache write: the cache is the output (written in place, as
        // IndexCopy's dst), the rotated value an optional extra output.
        ETGPU_CHECK(p->cache_dim() >= 0, "instruction ", i, ": rope cache_dim ", p->cache_dim(), " is negative");
        ETGPU_RETURN_IF_ERROR(ops.required(p->index(), "index"));
        if (p->out() >= 0) ETGPU_RETURN_IF_ERROR(ops.extra_output(p->out(), "rotated"));
        params.cache_dim = p->cache_dim();
      }
      if (p->norm()) {
        auto norm = rope_norm(p->norm(), i, ops);
        ETGPU_RETURN_IF_ERROR(norm.status());
        params.norm = norm.value();
      }
      d->params = params;
      return ops.output(p->cache() >= 0 ? p->cache() : p->out());
    }
    case ir::Op::Glu: {
      auto* p = ins.op_as_Glu();
      ETGPU_RETURN_IF_ERROR(check_enum(p->act(), ir::UnaryOp::MAX, i, "activation"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->a(), "a"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->b(), "b"));
      d->params = GluParams{static_cast<UnaryOp>(p->act())};
      return ops.output(p->out());
    }
    case ir::Op::RmsNorm: {
      auto* p = ins.op_as_RmsNorm();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      ETGPU_ASSIGN_OPTIONAL(has_weight, ops.optional(p->weight(), "weight"));
      d->params = RmsNormParams{has_weight, p->eps(), p->unit_offset(), p->round_normalized()};
      return ops.output(p->out());
    }
    case ir::Op::AddRmsNorm: {
      auto* p = ins.op_as_AddRmsNorm();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->residual(), "residual"));
      ETGPU_ASSIGN_OPTIONAL(has_weight, ops.optional(p->weight(), "weight"));
      ETGPU_RETURN_IF_ERROR(ops.extra_output(p->sum(), "sum"));
      d->params = AddRmsNormParams{{has_weight, p->eps(), p->unit_offset(), p->round_normalized()}};
      return ops.output(p->out());
    }
    case ir::Op::SplitLinear: {
      auto* p = ins.op_as_SplitLinear();
      const auto* outs = p->outs();
      ETGPU_CHECK(outs && outs->size() >= 1 && outs->size() <= static_cast<uint32_t>(kMaxSplitOutputs), "instruction ",
                  i, ": split_linear needs 1 to ", kMaxSplitOutputs, " outputs");
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->w(), "w"));
      ETGPU_ASSIGN_OPTIONAL(has_bias, ops.optional(p->bias(), "bias"));
      for (uint32_t o = 1; o < outs->size(); ++o) ETGPU_RETURN_IF_ERROR(ops.extra_output(outs->Get(o), "split"));
      const bool glu = p->glu_out() >= 0;
      if (glu) {
        ETGPU_RETURN_IF_ERROR(check_enum(p->glu_act(), ir::UnaryOp::MAX, i, "glu activation"));
        ETGPU_RETURN_IF_ERROR(ops.extra_output(p->glu_out(), "glu"));
      }
      d->params = SplitLinearParams{has_bias, glu, static_cast<UnaryOp>(p->glu_act())};
      return ops.output(outs->Get(0));
    }
    case ir::Op::Permute: {
      auto* p = ins.op_as_Permute();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = PermuteParams{int_list(p->perm())};
      return ops.output(p->out());
    }
    case ir::Op::Expand: {
      auto* p = ins.op_as_Expand();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = ExpandParams{};
      return ops.output(p->out());
    }
    case ir::Op::Slice: {
      auto* p = ins.op_as_Slice();
      ETGPU_CHECK(p->start() != nullptr, "instruction ", i, ": slice has no start");
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = SliceParams{p->dim(), 0, p->step()};
      d->dynamic_scalar = *p->start();
      return ops.output(p->out());
    }
    case ir::Op::Select: {
      auto* p = ins.op_as_Select();
      ETGPU_CHECK(p->index() != nullptr, "instruction ", i, ": select has no index");
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = SelectParams{p->dim(), 0};
      d->dynamic_scalar = *p->index();
      return ops.output(p->out());
    }
    case ir::Op::Cat: {
      auto* p = ins.op_as_Cat();
      ETGPU_CHECK(p->inputs() && p->inputs()->size() > 0, "instruction ", i, ": cat has no inputs");
      for (int id : *p->inputs()) ETGPU_RETURN_IF_ERROR(ops.required(id, "input"));
      d->params = CatParams{p->dim()};
      return ops.output(p->out());
    }
    case ir::Op::IndexSelect: {
      auto* p = ins.op_as_IndexSelect();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->index(), "index"));
      d->params = IndexSelectParams{p->dim()};
      return ops.output(p->out());
    }
    case ir::Op::Gather: {
      auto* p = ins.op_as_Gather();
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->index(), "index"));
      d->params = GatherParams{p->dim()};
      return ops.output(p->out());
    }
    case ir::Op::Sdpa: {
      auto* p = ins.op_as_Sdpa();
      ETGPU_RETURN_IF_ERROR(ops.required(p->q(), "q"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->k(), "k"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->v(), "v"));
      ETGPU_ASSIGN_OPTIONAL(has_mask, ops.optional(p->mask(), "mask"));
      d->params = SdpaParams{has_mask, p->scale(), p->causal(), p->out_seq_major()};
      return ops.output(p->out());
    }
    case ir::Op::CopyInto: {
      auto* p = ins.op_as_CopyInto();
      ETGPU_CHECK(p->start() != nullptr, "instruction ", i, ": copy_into has no start");
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = CopyIntoParams{p->dim(), 0};
      d->dynamic_scalar = *p->start();
      return ops.output(p->dst());
    }
    case ir::Op::IndexCopy: {
      auto* p = ins.op_as_IndexCopy();
      ETGPU_RETURN_IF_ERROR(ops.required(p->index(), "index"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      d->params = IndexCopyParams{p->dim(), p->x_seq_major()};
      return ops.output(p->dst());
    }
    case ir::Op::QuantizedLinear: {
      auto* p = ins.op_as_QuantizedLinear();
      ETGPU_RETURN_IF_ERROR(check_enum(p->act(), ir::ActQuant::MAX, i, "activation quantization"));
      ETGPU_RETURN_IF_ERROR(ops.required(p->x(), "x"));
      auto w = quant_weight(p->w(), i, ops);
      ETGPU_RETURN_IF_ERROR(w.status());
      ETGPU_ASSIGN_OPTIONAL(has_bias, ops.optional(p->bias(), "bias"));
      d->params = QuantLinearParams{w.value(), static_cast<ActQuant>(p->act()), has_bias};
      return ops.output(p->out());
    }
    case ir::Op::QuantizedEmbedding: {
      auto* p = ins.op_as_QuantizedEmbedding();
      ETGPU_RETURN_IF_ERROR(ops.required(p->index(), "index"));
      auto w = quant_weight(p->w(), i, ops);
      ETGPU_RETURN_IF_ERROR(w.status());
      d->params = QuantEmbeddingParams{w.value()};
      return ops.output(p->out());
    }
    default:
      break;
  }
  return err("instruction ", i, " has unknown op type ", static_cast<int>(ins.op_type()),
             " (payload from a newer etgpu?)");
}

}  // namespace

Result<DecodedInstruction> decode_instruction(const ir::Graph& graph, int index) {
  const ir::Instruction* ins = graph.instructions()->Get(index);
  ETGPU_CHECK(ins != nullptr && ins->op() != nullptr, "instruction ", index, " is empty");
  DecodedInstruction decoded;
  Operands ops(graph, index, &decoded);
  ETGPU_RETURN_IF_ERROR(decode(*ins, index, ops, &decoded));
  if (decoded.dynamic_scalar) ETGPU_RETURN_IF_ERROR(check_scalar_dim(*decoded.dynamic_scalar, graph, index));
  return decoded;
}

void apply_dynamic_scalar(OpParams* params, int64_t value, int64_t size) {
  if (value < 0) value += size;
  if (auto* p = std::get_if<SliceParams>(params)) p->start = value;
  if (auto* p = std::get_if<SelectParams>(params)) p->index = value;
  if (auto* p = std::get_if<CopyIntoParams>(params)) p->start = value;
}

}  // namespace etgpu
