// The small text parts of a checkpoint (private to io/checkpoint*.cpp): directory names, the
// per-rank part, state.toml and MANIFEST, written and parsed in one place.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/model.h"
#include "io/checkpoint.h"

namespace tessera {

// "step-000040"; parse_step_name gives -1 for any other name.
std::string step_name(int64_t step);
int64_t parse_step_name(const std::string& name);

// "rank-00003.txt": the rank's replica checksums, so a load can tell that every rank held the
// same weights and optimizer state when the checkpoint was taken.
std::string rank_part_name(int rank);
// A replica's digests as its rank part records them: params is weights_sha256 (io/model_file.h),
// which rank 0 also writes into model.h5, so the writer computes it once for both.
struct ReplicaDigests {
  std::string params, optimizer;
};
// SHA-256 of the optimizer moments: of the digests of m and of v (hashed at once on oneTBB threads).
std::string moments_sha256(std::span<const float> m, std::span<const float> v);
// Both, the weights beside the moments on oneTBB threads.
ReplicaDigests replica_digests(const ModelSpec& spec, const float* params, std::span<const float> m,
                               std::span<const float> v);
std::string rank_part_text(int rank, int world, int64_t step, const ReplicaDigests& digests);

// state.toml: doubles are stored as hex floats so a resumed run continues with the same bits.
std::string meta_toml(const CheckpointMeta& meta);
CheckpointMeta parse_meta(const std::string& text, const std::string& where);

// MANIFEST: format line, step, one "part <sha256> <bytes> <name>" line per part, and a last
// "end <sha256>" line over everything before it (a truncated or edited MANIFEST fails that).
struct ManifestPart {
  std::string name, sha256;
  int64_t bytes = 0;
};
std::string manifest_text(const std::string& dir, int64_t step, const std::vector<std::string>& parts);
std::vector<ManifestPart> parse_manifest(const std::string& text, const std::string& where, int64_t* step);

}  // namespace tessera
