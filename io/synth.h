// `tessera data synth`: a dataset drawn from a hidden random teacher network, so models can
// actually learn it. Every value is a pure function of (seed, row), so the file's contents do
// not depend on the number of ranks that wrote it.
#pragma once

#include <cstdint>
#include <string>

#include "core/communicator.h"
#include "core/config.h"

namespace tessera {

struct SynthOptions {
  std::string out;
  int64_t rows = 0, features = 0;
  int64_t classes = 2;           // classification: K classes; binary: 2
  Task task = Task::kClassification;
  uint64_t seed = 1;              // picks the teacher and the row stream
  int64_t first_row = 0;          // file row i is row first_row + i of the seed's stream, so
                                  // disjoint train/validation files share one teacher
  int64_t chunk_rows = 0;        // 0 = about 1 MiB of features per chunk
};

// Collective. Each rank generates its share of chunks; ranks write in turn into a temp file
// that rank 0 renames into place once all have written (atomic for readers).
void synth_dataset(const SynthOptions& opt, Communicator& comm);

}  // namespace tessera
