// `tessera data synth`: a dataset drawn from a hidden random teacher network, so models can
// actually learn it. Every value is a pure function of (seed, row), so the file's contents do
// not depend on the number of ranks that wrote it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
  int64_t files = 1;             // K > 1 splits the rows into K files (synth_file_names)
};

// The files synth writes: out itself for one file, else out's stem + "-00000-of-00004" + its
// extension, ..., so that a glob lists them in row order.
std::vector<std::string> synth_file_names(const std::string& out, int64_t files);

// Collective. For each file, rank 0 creates it with every chunk allocated; then all ranks at
// once generate their share of the chunks and write them at the chunks' file offsets; then
// rank 0 renames the finished file into place (atomic for readers). The bytes do not depend
// on the number of ranks.
void synth_dataset(const SynthOptions& opt, Communicator& comm);

}  // namespace tessera
