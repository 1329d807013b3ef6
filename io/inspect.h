// `tessera data inspect`: what is in an HDF5 file and whether its layout will read well.
#pragma once

#include <string>

namespace tessera {

// Human-readable report of every dataset (shape, dtype, layout, chunking, compression, bytes)
// with warnings and what to do about them. A tessera model file also gets its architecture
// and a checksum verdict.
// *verified (optional) becomes false when a model file's checksum does not match.
std::string inspect_file(const std::string& path, bool* verified = nullptr);

}  // namespace tessera
