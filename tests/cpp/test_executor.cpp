// The executor on the CPU engine: a tiny end-to-end run at two sequence lengths, and inputs that
// do not match the program (each must fail with a message naming the input and expected vs actual,
// and leave the executor usable).
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "etgpu/model.h"
#include "exec/executor.h"
#include "executor_support.h"
#include "payload_builder.h"
#include "program/container.h"

namespace etgpu {
namespace {

using testing::add_graph;
using testing::build_payload;
using testing::float_bytes;
using testing::GraphDesc;
using testing::make_executor;
using testing::MapConstants;

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    constants_.bytes["w"] = float_bytes({1, 2, 3});
    auto exec = make_executor(add_graph(), &constants_);
    ASSERT_TRUE(exec.is_ok()) << exec.status().message();
    exec_ = exec.take();
  }

  // Runs x[rows, 3] = 0, 1, 2, ... and checks y = x + {1, 2, 3}.
  void expect_valid_run(int64_t rows) {
    std::vector<float> x(rows * 3);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
    const int64_t shape[2] = {rows, 3};
    Status status = exec_->execute({{x.data(), DType::F32, 2, shape}});
    ASSERT_TRUE(status.is_ok()) << status.message();
    ASSERT_EQ(exec_->output_shape(0), (std::vector<int64_t>{rows, 3}));
    std::vector<float> y(rows * 3);
    ASSERT_TRUE(exec_->read_output(0, y.data(), y.size() * sizeof(float)).is_ok());
    for (size_t i = 0; i < y.size(); ++i) EXPECT_FLOAT_EQ(y[i], x[i] + 1.0f + static_cast<float>(i % 3)) << i;
  }

  void expect_rejected(const HostTensor& input, const std::string& needle) {
    Status status = exec_->execute({input});
    ASSERT_FALSE(status.is_ok()) << "expected: " << needle;
    EXPECT_NE(status.message().find(needle), std::string::npos) << status.message();
    expect_valid_run(2);  // a failed call changes nothing
  }

  MapConstants constants_;
  std::unique_ptr<Executor> exec_;
  std::vector<float> data_ = std::vector<float>(64, 0.5f);
};

TEST_F(ExecutorTest, RunsAtEveryLengthWithinTheBound) {
  EXPECT_EQ(exec_->max_input_shape(0), (std::vector<int64_t>{8, 3}));
  expect_valid_run(8);
  expect_valid_run(1);
  expect_valid_run(5);
  EXPECT_EQ(exec_->stats().executions, 3u);
  EXPECT_EQ(exec_->stats().arena_bytes, 192u);
}

TEST_F(ExecutorTest, RejectsTheWrongDtype) {
  const int64_t shape[2] = {2, 3};
  expect_rejected({data_.data(), DType::I32, 2, shape}, "input 0 ('x'): expected dtype float32, got int32");
}

TEST_F(ExecutorTest, RejectsTheWrongRank) {
  const int64_t shape[3] = {2, 3, 1};
  expect_rejected({data_.data(), DType::F32, 3, shape}, "input 0 ('x'): expected rank 2, got 3");
}

TEST_F(ExecutorTest, RejectsAStaticDimMismatch) {
  const int64_t shape[2] = {2, 4};
  expect_rejected({data_.data(), DType::F32, 2, shape}, "input 0 ('x'): dim 1 is 4, expected 3");
}

TEST_F(ExecutorTest, RejectsASymbolAboveItsBound) {
  const int64_t shape[2] = {9, 3};
  expect_rejected({data_.data(), DType::F32, 2, shape}, "size 9 (symbolic dim 's') is outside its bounds [1, 8]");
}

TEST_F(ExecutorTest, RejectsASymbolBelowItsBound) {
  const int64_t shape[2] = {0, 3};
  expect_rejected({data_.data(), DType::F32, 2, shape}, "size 0 (symbolic dim 's') is outside its bounds [1, 8]");
}

TEST_F(ExecutorTest, RejectsTheWrongNumberOfInputs) {
  Status status = exec_->execute({});
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("expected 1 inputs, got 0"), std::string::npos) << status.message();
  expect_valid_run(3);
}

TEST_F(ExecutorTest, ReadOutputChecksTheBufferAndTheIndex) {
  expect_valid_run(4);
  std::vector<float> small(3);
  Status status = exec_->read_output(0, small.data(), small.size() * sizeof(float));
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("output 0 needs 48 bytes, the buffer has 12"), std::string::npos);
  EXPECT_FALSE(exec_->read_output(1, small.data(), 12).is_ok());
}

TEST(Executor, ReadOutputBeforeExecuteFails) {
  MapConstants constants;
  constants.bytes["w"] = float_bytes({1, 2, 3});
  auto exec = make_executor(add_graph(), &constants);
  ASSERT_TRUE(exec.is_ok());
  float y[3];
  Status status = exec.value()->read_output(0, y, sizeof(y));
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("before a successful execute"), std::string::npos);
}

TEST(Executor, CreateRejectsMissingOrMissizedConstants) {
  MapConstants constants;
  auto missing = make_executor(add_graph(), &constants);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("no constant 'w'"), std::string::npos);
  constants.bytes["w"] = float_bytes({1, 2});
  auto short_one = make_executor(add_graph(), &constants);
  ASSERT_FALSE(short_one.is_ok());
  EXPECT_NE(short_one.status().message().find("constant 'w' has 8 bytes; its declared shape needs 12"),
            std::string::npos);
}

TEST(Executor, CreateRejectsInstructionOperandsOutOfRange) {
  GraphDesc g = add_graph(/*inline_weight=*/true);
  g.instructions[0].b = 5;
  auto exec = make_executor(g, nullptr);
  ASSERT_FALSE(exec.is_ok());
  EXPECT_NE(exec.status().message().find("refers to tensor 5 but the graph has 3"), std::string::npos)
      << exec.status().message();
}

// The CPU engine, except that run_next takes two instructions as one piece of work and fails, as
// the CUDA engine's rope group does when its launch fails.
class FailingPairEngine final : public Engine {
 public:
  const char* name() const override { return "failing-pair"; }
  bool uses_host_memory() const override { return inner_->uses_host_memory(); }
  Result<void*> allocate(size_t bytes) override { return inner_->allocate(bytes); }
  void release(void* p) override { inner_->release(p); }
  Status upload(void* dst, const void* src, size_t bytes) override { return inner_->upload(dst, src, bytes); }
  Status download(void* dst, const void* src, size_t bytes) override { return inner_->download(dst, src, bytes); }
  Status zero(void* dst, size_t bytes) override { return inner_->zero(dst, bytes); }
  Status synchronize() override { return inner_->synchronize(); }
  Status run(const Node& node) override { return inner_->run(node); }
  Status run_next(const Node* nodes, size_t count, size_t* ran) override {
    if (count < 2) return inner_->run_next(nodes, count, ran);
    *ran = 2;
    return Status::error("injected launch failure");
  }
  EngineStats stats() const override { return inner_->stats(); }

 private:
  std::unique_ptr<Engine> inner_ = make_cpu_engine(1);
};

TEST(Executor, AFailedGroupNamesEveryInstructionItTook) {
  GraphDesc g = add_graph();
  g.instructions.push_back(g.instructions[0]);  // y = x + w, twice
  MapConstants constants;
  constants.bytes["w"] = float_bytes({1, 2, 3});
  const auto bytes = build_payload(g);
  auto program = Program::load(bytes.data(), bytes.size());
  ASSERT_TRUE(program.is_ok()) << program.status().message();
  auto exec = Executor::create(program.take(), &constants, std::make_unique<FailingPairEngine>());
  ASSERT_TRUE(exec.is_ok()) << exec.status().message();
  std::vector<float> x(6, 1.f);
  const int64_t shape[2] = {2, 3};
  const Status status = exec.value()->execute({{x.data(), DType::F32, 2, shape}});
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("instructions 0-1 (binary, binary) failed: injected launch failure"),
            std::string::npos)
      << status.message();
}

TEST(Model, OpensAContainerAndRunsOnTheCpuEngine) {
  ModelOptions options;
  options.device = "cpu";
  auto model = Model::open_bytes(testing::add_model_file(), options);
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  Executor& exec = model.value()->executor();
  const std::vector<float> x = {10, 20, 30};
  const int64_t shape[2] = {1, 3};
  ASSERT_TRUE(exec.execute({{x.data(), DType::F32, 2, shape}}).is_ok());
  float y[3];
  ASSERT_TRUE(exec.read_output(0, y, sizeof(y)).is_ok());
  EXPECT_FLOAT_EQ(y[0], 11);
  EXPECT_FLOAT_EQ(y[1], 22);
  EXPECT_FLOAT_EQ(y[2], 33);
  EXPECT_NE(model.value()->stats_json().find("\"engine\""), std::string::npos);
}

TEST(Model, RejectsAnUnknownDevice) {
  ModelOptions options;
  options.device = "tpu";
  auto model = Model::open_bytes(testing::add_model_file(), options);
  ASSERT_FALSE(model.is_ok());
  EXPECT_NE(model.status().message().find("unknown device 'tpu'"), std::string::npos);
}

}  // namespace
}  // namespace etgpu
