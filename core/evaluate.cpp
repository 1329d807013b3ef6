// evaluate(): no padding and no duplicates, so the reported metrics are exact whatever N is.
#include "core/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/data_order.h"
#include "core/error.h"

namespace tessera {

kernels::LossResult task_loss(Task task, const float* out, const Batch& batch, float* dout,
                              int64_t outputs, double scale) {
  switch (task) {
    case Task::kClassification:
      return kernels::softmax_xent(out, batch.labels, dout, batch.rows, outputs, scale);
    case Task::kBinary:
      return kernels::logistic(out, batch.labels, dout, batch.rows, scale);
    case Task::kRegression:
      return kernels::mse(out, batch.targets, dout, batch.rows, outputs, scale);
  }
  TESSERA_CHECK(false, "unknown task");
  return {};
}

int64_t eval_batch_rows(int64_t global_batch, int world) {
  return std::max<int64_t>(256, partition(global_batch, 0, world).size());
}

EvalResult evaluate(Model& model, const float* params, BatchSource& source, Communicator& comm) {
  const Range mine = partition(source.rows(), comm.rank(), comm.size());
  const int64_t step = source.max_batch_rows();
  double sums[3] = {0.0, 0.0, 0.0};  // loss, correct (or squared error), rows
  for (int64_t b = mine.begin; b < mine.end; b += step) {
    const Batch batch = source.read_range(b, std::min(mine.end, b + step));
    const float* out = model.forward(params, batch.x, batch.rows);
    const kernels::LossResult r =
        task_loss(model.spec().task, out, batch, nullptr, model.spec().outputs(), 1.0);
    sums[0] += r.loss_sum;
    sums[1] += r.correct;
    sums[2] += static_cast<double>(batch.rows);
  }
  comm.allreduce_sum(std::span<double>(sums, 3));
  EvalResult res;
  res.rows = static_cast<int64_t>(sums[2]);
  TESSERA_CHECK(res.rows == source.rows(), "evaluated ", res.rows, " of ", source.rows(), " rows");
  res.loss = sums[0] / sums[2];
  if (model.spec().task == Task::kRegression) {
    res.rmse = std::sqrt(sums[1] / (sums[2] * static_cast<double>(model.spec().outputs())));
  } else {
    res.accuracy = sums[1] / sums[2];
  }
  return res;
}

}  // namespace tessera
