// Progress display for rank 0: a live bar redrawn in place on a terminal, plain periodic lines
// (one per log interval) when stderr is a file or pipe, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tessera {

class Progress {
 public:
  // enabled = false (other ranks, or --quiet) prints nothing.
  Progress(int64_t total_steps, bool enabled, std::FILE* out = stderr);
  // Called every step; redraws the bar at most ~10 times a second on a terminal.
  void step(int64_t done, double loss, double samples_per_s);
  // Called at each log interval; prints a plain line when not on a terminal.
  void log_line(int64_t done, int64_t epoch, double loss, double lr, double samples_per_s);
  // Prints a message on its own line without breaking the bar.
  void note(const std::string& message);
  void finish();

 private:
  std::string eta(int64_t done) const;
  int64_t total_;
  bool enabled_, tty_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool bar_shown_ = false;
};

}  // namespace tessera
