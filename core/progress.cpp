// Progress: ANSI-free (\r and spaces only) so it works in any terminal.
#include "core/progress.h"

#include <unistd.h>

#include <cmath>

namespace tessera {

Progress::Progress(int64_t total_steps, bool enabled, std::FILE* out)
    : total_(total_steps), enabled_(enabled), tty_(enabled && isatty(fileno(out))), out_(out) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

std::string Progress::eta(int64_t done) const {
  if (done <= 0) return "--:--";
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t left = static_cast<int64_t>(el / static_cast<double>(done) *
                                            static_cast<double>(total_ - done) + 0.5);
  char buf[32];
  if (left >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(left / 3600),
                  static_cast<long long>(left / 60 % 60), static_cast<long long>(left % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(left / 60),
                  static_cast<long long>(left % 60));
  }
  return buf;
}

void Progress::step(int64_t done, double loss, double samples_per_s) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 28;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(out_, "\r[%s] step %lld/%lld  loss %.4f  %.0f samples/s  ETA %s   ", bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), loss, samples_per_s,
               eta(done).c_str());
  std::fflush(out_);
  bar_shown_ = true;
}

void Progress::log_line(int64_t done, int64_t epoch, double loss, double lr, double samples_per_s) {
  if (!enabled_ || tty_) return;
  std::fprintf(out_, "step %lld/%lld epoch %lld loss %.6f lr %.4g samples/s %.0f eta %s\n",
               static_cast<long long>(done), static_cast<long long>(total_),
               static_cast<long long>(epoch), loss, lr, samples_per_s, eta(done).c_str());
  std::fflush(out_);
}

void Progress::note(const std::string& message) {
  if (!enabled_) return;
  if (bar_shown_) std::fprintf(out_, "\r%*s\r", 110, "");
  std::fprintf(out_, "%s\n", message.c_str());
  std::fflush(out_);
  bar_shown_ = false;
}

void Progress::finish() {
  if (tty_ && bar_shown_) std::fprintf(out_, "\n");
  bar_shown_ = false;
}

}  // namespace tessera
