// Durable file plumbing: atomic replace (temp file, fsync, rename, fsync directory), SHA-256,
// and private permissions (no group/other write) for everything tessera writes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/communicator.h"

namespace tessera {

// Writes content to path atomically: a crash leaves either the old file or the new one.
void atomic_write_text(const std::string& path, const std::string& content);
// Runs write(temp_path) to produce a file, then fsyncs and renames it over path. The temp file
// is removed if write throws.
void atomic_write_with(const std::string& path, const std::function<void(const std::string&)>& write);
// Makes a finished temp file durable and moves it over path: fsync, rename, fsync directory.
void commit_temp(const std::string& tmp, const std::string& path);
// Collective. For files that several ranks fill: rank 0 runs create(tmp); then each rank, in rank
// order, runs write_part(tmp) (a plain HDF5 file takes one writer at a time); then rank 0
// commits tmp over path. Readers never see a partial file.
void write_in_rank_order(const std::string& path, Communicator& comm,
                         const std::function<void(const std::string&)>& create,
                         const std::function<void(const std::string&)>& write_part);
// Writes content to path and fsyncs it, without a temp file: for files inside a directory that
// is itself committed by rename (a checkpoint's parts), where a rename per file would only add
// fsyncs. The caller fsyncs the directory before committing it.
void write_synced_text(const std::string& path, const std::string& content);
// Collective. For files whose parts land at byte ranges fixed when the file is created: rank 0
// runs create(tmp); then every rank runs write_part(tmp) at the same time; then rank 0 commits
// tmp over path. Readers never see a partial file.
void write_in_parallel(const std::string& path, Communicator& comm,
                       const std::function<void(const std::string&)>& create,
                       const std::function<void(const std::string&)>& write_part);
// fsync a file or directory by path.
void fsync_path(const std::string& path);
// mkdir -p with mode 0755 (and umask 022 applied by the CLI).
void make_dirs(const std::string& path);

std::string sha256_hex(const void* data, size_t n);
std::string sha256_file(const std::string& path);
// sha256_file of each path, in order, hashed on oneTBB threads (as many as its parallelism limit
// allows: train.threads under train): a checkpoint's parts are independent, and one SHA-256
// stream runs on one core. A file that cannot be read: the first such path's Error.
std::vector<std::string> sha256_files(const std::vector<std::string>& paths);

// Cheap fingerprint of a data file (docs/formats.md): SHA-256 over its size and evenly spaced
// 64 KiB windows, one per 64 MiB of file, 16 to 256 (the whole file when it is under 1 MiB).
// Detects replaced, truncated, appended or regenerated files reading at most 16 MiB per file.
std::string fingerprint_file(const std::string& path);

}  // namespace tessera
