// CSV and LIBSVM importers: zlib's gzgets reads gzip'd and plain text alike, one line at a
// time into a reused buffer; rows collect into a block that RowAppender writes out.
#include "io/table_import.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "io/files.h"
#include "io/h5.h"
#include "io/gz_file.h"
#include "io/row_appender.h"

namespace tessera {

namespace {

// Lines of a text file (gzip'd or plain), without the line end; counts lines from 1.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path), f_(path) {}
  bool next(std::string& line) {
    line.clear();
    char buf[1 << 16];
    for (;;) {
      if (gzgets(f_.get(), buf, sizeof buf) == nullptr) {
        int err = 0;
        const char* msg = gzerror(f_.get(), &err);
        if (err != Z_OK && err != Z_STREAM_END) {
          throw DataError(path_ + " line " + std::to_string(line_ + 1) + ": cannot read (" + msg +
                          "; truncated or corrupt gzip?)");
        }
        if (line.empty()) return false;
        break;
      }
      line += buf;
      if (!line.empty() && line.back() == '\n') break;
    }
    ++line_;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return true;
  }
  int64_t line() const { return line_; }
  std::string where() const { return path_ + " line " + std::to_string(line_); }

 private:
  std::string path_;
  GzFile f_;
  int64_t line_ = 0;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

void split(std::string_view line, char delim, std::vector<std::string_view>& out) {
  out.clear();
  size_t start = 0;
  for (;;) {
    const size_t end = line.find(delim, start);
    out.push_back(trim(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start)));
    if (end == std::string_view::npos) return;
    start = end + 1;
  }
}

// A finite number, or DataError naming where and what() was found (text built only then).
template <class What>
double number(std::string_view s, const LineReader& in, What what) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    throw DataError(in.where() + ", " + what() + ": '" + std::string(s) + "' is not a number");
  }
  if (!std::isfinite(v)) {
    throw DataError(in.where() + ", " + what() + ": " + std::string(s) + " (NaN and infinity are not allowed)");
  }
  return v;
}

// Rows buffered for RowAppender: a block at a time, however long the input.
struct Block {
  int64_t features, capacity, n = 0;
  std::vector<float> x;
  std::vector<double> y;
  Block(int64_t f, int64_t rows) : features(f), capacity(rows), x(static_cast<size_t>(f * rows)), y(static_cast<size_t>(rows)) {}
  float* row() { return x.data() + n * features; }
  void flush(RowAppender& out) {
    out.append(x.data(), y.data(), n);
    n = 0;
  }
};

int64_t block_rows(int64_t features) { return std::clamp<int64_t>((int64_t{16} << 20) / (4 * features), 1, 4096); }

// Writes the rows next_row produces (it fills one row's features x and label y and returns
// true, or returns false at the end of the input) into a new HDF5 file at `out`, committed only
// once every row is read and written.
template <class NextRow>
int64_t write_streamed(const std::string& input, const std::string& out, int64_t features, int64_t chunk_rows,
                       NextRow next_row) {
  int64_t rows = 0;
  atomic_write_with(out, [&](const std::string& tmp) {
    h5::Handle f = h5::create(tmp);
    RowAppender app(f, tmp, features, 1, H5T_IEEE_F64LE, chunk_rows);
    Block block(features, block_rows(features));
    while (next_row(block.row(), block.y[static_cast<size_t>(block.n)])) {
      if (++block.n == block.capacity) block.flush(app);
      ++rows;
    }
    block.flush(app);
    if (rows == 0) throw DataError(input + ": no data rows");
    h5::write_string_attr(f, "source", input);
  });
  return rows;
}

}  // namespace

int64_t import_csv(const CsvImportOptions& opt) {
  LineReader in(opt.input);
  std::string line;
  std::vector<std::string_view> fields;
  std::vector<std::string> names;
  if (!in.next(line)) throw DataError(opt.input + ": empty file (no header or rows)");
  split(line, opt.delimiter, fields);
  const int64_t columns = static_cast<int64_t>(fields.size());
  if (columns < 2) {
    throw DataError(in.where() + ": 1 column; expected a label and at least one feature (wrong --delimiter?)");
  }
  if (opt.header) names.assign(fields.begin(), fields.end());
  int64_t label = columns - 1;
  if (!opt.label.empty()) {
    const auto it = std::find(names.begin(), names.end(), opt.label);
    if (it != names.end()) {
      label = it - names.begin();
    } else {
      const auto [end, ec] = std::from_chars(opt.label.data(), opt.label.data() + opt.label.size(), label);
      if (ec != std::errc() || end != opt.label.data() + opt.label.size()) {
        throw ConfigError("--label " + opt.label + ": no such column" +
                          (opt.header ? " in the header of " + opt.input : " (without --header, give a 0-based index)"));
      }
      if (label < 0 || label >= columns) {
        throw ConfigError("--label " + opt.label + ": column index outside 0.." + std::to_string(columns - 1));
      }
    }
  }
  const int64_t features = columns - 1;
  bool pending = !opt.header;  // the first line is already in `fields` when it is data
  return write_streamed(opt.input, opt.out, features, opt.chunk_rows, [&](float* x, double& y) {
    if (!pending) {
      do {
        if (!in.next(line)) return false;
      } while (trim(line).empty());
      split(line, opt.delimiter, fields);
    }
    pending = false;
    if (static_cast<int64_t>(fields.size()) != columns) {
      throw DataError(in.where() + ": " + std::to_string(fields.size()) + " fields, expected " +
                      std::to_string(columns) + " (as on line 1)");
    }
    for (int64_t c = 0, j = 0; c < columns; ++c) {
      const double v = number(fields[c], in, [&] {
        return "column " + std::to_string(c) + (opt.header ? " '" + names[c] + "'" : "");
      });
      if (c == label) {
        y = v;
      } else {
        x[j++] = static_cast<float>(v);
      }
    }
    return true;
  });
}

int64_t import_libsvm(const LibsvmImportOptions& opt) {
  if (opt.features <= 0) throw ConfigError("--from libsvm needs --features D (indices run 1..D)");
  LineReader in(opt.input);
  std::string line;
  std::vector<std::string_view> tokens;
  return write_streamed(opt.input, opt.out, opt.features, opt.chunk_rows, [&](float* x, double& y) {
    do {
      if (!in.next(line)) return false;
      std::string_view text(line);
      text = text.substr(0, text.find('#'));  // comments
      split(trim(text), ' ', tokens);
      tokens.erase(std::remove(tokens.begin(), tokens.end(), std::string_view()), tokens.end());
    } while (tokens.empty());
    y = number(tokens[0], in, [] { return std::string("label"); });
    std::fill(x, x + opt.features, 0.0f);
    int64_t last = 0;
    for (size_t t = 1; t < tokens.size(); ++t) {
      const size_t colon = tokens[t].find(':');
      int64_t index = 0;
      const char* b = tokens[t].data();
      const auto [end, ec] = std::from_chars(b, b + (colon == std::string_view::npos ? 0 : colon), index);
      if (colon == std::string_view::npos || ec != std::errc() || end != b + colon) {
        throw DataError(in.where() + ": '" + std::string(tokens[t]) + "' is not index:value");
      }
      if (index < 1 || index > opt.features) {
        throw DataError(in.where() + ": feature index " + std::to_string(index) + " outside 1.." +
                        std::to_string(opt.features) + " (LIBSVM indices are 1-based; raise --features?)");
      }
      if (index <= last) {
        throw DataError(in.where() + ": feature index " + std::to_string(index) + " after " + std::to_string(last) +
                        " (indices must increase along a line)");
      }
      last = index;
      x[index - 1] = static_cast<float>(
          number(tokens[t].substr(colon + 1), in, [&] { return "feature " + std::to_string(index); }));
    }
    return true;
  });
}

}  // namespace tessera
