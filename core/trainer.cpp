// Trainer::run. The loss of each rank is scaled by 1/B (global batch), so the allreduced sum of
// gradients is the global mean and learning rates do not depend on N.
#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/json.h"
#include "core/optimizer.h"
#include "kernels/dense.h"

namespace tessera {

void check_batch_fits(const TrainConfig& cfg, int64_t rows) {
  if (rows >= cfg.train.batch_size) return;
  const std::string files = cfg.data.train.empty()
                                ? std::string("training data")
                                : "training data (" + cfg.data.train[0] + (cfg.data.train.size() > 1 ? ", ..." : "") + ")";
  throw DataError(files + " has " + std::to_string(rows) + " rows, fewer than train.batch_size = " +
                  std::to_string(cfg.train.batch_size) + ": lower train.batch_size or add data");
}

void check_precision(const TrainSection& train) {
  if (train.precision != Precision::kBf16) return;
  if (const char* why = kernels::bf16_unsupported_reason()) {
    throw ConfigError(std::string("config key 'train.precision': 'bf16' cannot run here: ") + why +
                      " (use \"fp32\")");
  }
}

int64_t total_steps(const TrainSection& train, int64_t rows) {
  const int64_t per_epoch = rows / train.batch_size;
  // Saturating: epochs may be huge when max_steps is the real limit.
  int64_t total = per_epoch > 0 && train.epochs > INT64_MAX / per_epoch ? INT64_MAX : per_epoch * train.epochs;
  if (train.max_steps > 0) total = std::min(total, train.max_steps);
  return total;
}

Trainer::Trainer(const TrainConfig& cfg, Model& model, Communicator& comm, BatchSource& train,
                 BatchSource* validation, std::function<void(const std::string&)> metrics,
                 Progress& progress)
    : cfg_(cfg), model_(model), comm_(comm), train_(train), validation_(validation),
      metrics_(std::move(metrics)), progress_(progress), grads_(model.spec().param_count()),
      optimizer_(cfg.optimizer, model.spec().param_count(), total_steps(cfg.train, train.rows())) {
  check_precision(cfg.train);
}

Trainer::StepStats Trainer::step(FlatBuffer& params, int64_t epoch, int64_t step_in_epoch, int64_t step) {
  const ModelSpec& spec = model_.spec();
  const double scale = 1.0 / static_cast<double>(cfg_.train.batch_size);
  const auto asked = std::chrono::steady_clock::now();
  const Batch b = train_.next(epoch, step_in_epoch);
  data_wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
  float* out = model_.forward(params.data(), b.x, b.rows, cfg_.train.precision);
  const kernels::LossResult lr = task_loss(spec.task, out, b, out, spec.outputs(), scale);
  model_.backward(params.data(), b.x, out, grads_.data(), b.rows);
  comm_.allreduce_sum(grads_.span());
  double stats[2] = {lr.loss_sum, lr.correct};
  comm_.allreduce_sum(std::span<double>(stats, 2));
  const double step_loss = stats[0] / static_cast<double>(cfg_.train.batch_size);
  if (!std::isfinite(step_loss)) {
    // Every rank sees the same reduced loss, so every rank stops here together.
    throw Error("training diverged: the global loss is " + std::to_string(step_loss) + " at step " +
                std::to_string(step) + ": lower optimizer.lr or set optimizer.grad_clip_norm");
  }
  optimizer_.step(params.data(), grads_.data(), step);
  return {stats[0], stats[1]};
}

void Trainer::run_eval(const FlatBuffer& params, int64_t step, int64_t epoch, TrainSummary& summary) {
  if (validation_ == nullptr && eval_sets_.empty()) return;
  auto one = [&](const std::string& split, BatchSource& source) {
    const EvalResult r = evaluate(model_, params.data(), source, comm_);
    JsonObject line;
    line.add("event", "eval").add("step", step).add("epoch", epoch).add("split", split);
    line.add("rows", r.rows).add("loss", r.loss);
    const bool regression = model_.spec().task == Task::kRegression;
    if (regression) {
      line.add("rmse", r.rmse);
    } else {
      line.add("accuracy", r.accuracy);
    }
    if (metrics_) metrics_(line.str());
    char msg[200];
    std::snprintf(msg, sizeof msg, "eval step %lld: %s loss %.4f %s %.4f", static_cast<long long>(step),
                  split.c_str(), r.loss, regression ? "rmse" : "accuracy", regression ? r.rmse : r.accuracy);
    progress_.note(msg);
    return r;
  };
  if (validation_ != nullptr) {
    summary.last_eval = one("validation", *validation_);
    summary.evaluated = true;
  }
  for (const auto& [name, source] : eval_sets_) one(name, *source);
}

TrainSummary Trainer::run(FlatBuffer& params, const TrainState& start) {
  const int64_t batch = cfg_.train.batch_size;
  check_batch_fits(cfg_, train_.rows());
  const int64_t per_epoch = train_.rows() / batch;
  const int64_t total = total_steps(cfg_.train, train_.rows());
  const ModelSpec& spec = model_.spec();

  TrainSummary summary;
  summary.last_loss = start.last_loss;
  const auto t0 = std::chrono::steady_clock::now() -
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(start.elapsed_s));
  auto interval_start = std::chrono::steady_clock::now();
  double interval[3] = {start.interval[0], start.interval[1], start.interval[2]};
  int64_t step = start.step;
  int64_t evaluated_at = start.evaluated_at;
  auto read_so_far = [&] { return train_.bytes_read() + (validation_ ? validation_->bytes_read() : 0); };
  int64_t bytes_at_line = read_so_far();
  data_wait_s_ = 0.0;
  for (int64_t epoch = step / per_epoch; epoch < cfg_.train.epochs && step < total; ++epoch) {
    for (int64_t s = step % per_epoch; s < per_epoch && step < total; ++s) {
      const StepStats stats_step = this->step(params, epoch, s, step);
      const double stats[2] = {stats_step.loss_sum, stats_step.correct};
      const double step_loss = stats[0] / static_cast<double>(batch);
      ++step;
      interval[0] += stats[0];
      interval[1] += stats[1];
      interval[2] += static_cast<double>(batch);

      const auto now = std::chrono::steady_clock::now();
      const double elapsed = std::chrono::duration<double>(now - t0).count();
      const double rate = static_cast<double>((step - start.step) * batch) / std::max(elapsed - start.elapsed_s, 1e-9);
      progress_.step(step, step_loss, rate);
      const bool last = step == total;
      if (step % cfg_.train.log_every == 0 || last) {
        const double span = std::chrono::duration<double>(now - interval_start).count();
        const double mean_loss = interval[0] / interval[2];
        // Input telemetry (collective): the slowest rank's data wait decides the step time.
        int64_t wait_ppb[1] = {std::llround(1e9 * std::min(1.0, data_wait_s_ / std::max(span, 1e-9)))};
        comm_.allreduce_max(std::span<int64_t>(wait_ppb, 1));
        double bytes[1] = {static_cast<double>(read_so_far() - bytes_at_line)};
        comm_.allreduce_sum(std::span<double>(bytes, 1));
        bytes_at_line = read_so_far();
        data_wait_s_ = 0.0;
        JsonObject line;
        line.add("event", "train").add("step", step).add("epoch", epoch).add("loss", mean_loss);
        if (spec.task != Task::kRegression) line.add("accuracy", interval[1] / interval[2]);
        line.add("lr", optimizer_.lr(step - 1))
            .add("samples_per_s", interval[2] / std::max(span, 1e-9))
            .add("time_s", elapsed)
            .add("data_wait_frac", static_cast<double>(wait_ppb[0]) * 1e-9)
            .add("bytes_read", static_cast<int64_t>(bytes[0]));
        if (metrics_) metrics_(line.str());
        progress_.log_line(step, epoch, mean_loss, optimizer_.lr(step - 1), interval[2] / std::max(span, 1e-9));
        summary.last_loss = mean_loss;
        interval[0] = interval[1] = interval[2] = 0;
        interval_start = now;
      }
      const bool epoch_end = s + 1 == per_epoch || last;
      if (cfg_.train.eval_every > 0 ? step % cfg_.train.eval_every == 0 : epoch_end) {
        run_eval(params, step, epoch, summary);
        evaluated_at = step;
      }
      const int64_t every = cfg_.checkpoint.every_steps;
      if (checkpoint_ && (every > 0 ? step % every == 0 || last : epoch_end)) {
        TrainState st;
        st.step = step;
        st.evaluated_at = evaluated_at;
        std::copy_n(interval, 3, st.interval);
        st.last_loss = summary.last_loss;
        st.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        checkpoint_(st);
      }
    }
  }
  // The final model is always evaluated, whatever eval_every is.
  if (evaluated_at != step) run_eval(params, step, step > 0 ? (step - 1) / per_epoch : 0, summary);
  progress_.finish();
  summary.steps = step;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.samples_per_s = static_cast<double>((step - start.step) * batch) / std::max(summary.seconds - start.elapsed_s, 1e-9);
  return summary;
}

}  // namespace tessera
