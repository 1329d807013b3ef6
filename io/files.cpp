// io/files.cpp: POSIX file durability and OpenSSL's SHA-256 (EVP interface).
#include "io/files.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/error.h"
#include "kernels/parallel.h"

namespace tessera {

namespace fs = std::filesystem;

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open " + path + " to fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error("fsync failed for " + path);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw Error("cannot create directory " + path + ": " + ec.message());
}

namespace {

std::string parent_dir(const std::string& path) {
  const fs::path target(path);
  return target.has_parent_path() ? target.parent_path().string() : ".";
}

}  // namespace

void commit_temp(const std::string& tmp, const std::string& path) {
  ::chmod(tmp.c_str(), 0644);
  fsync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("cannot rename " + tmp + " to " + path);
  fsync_path(parent_dir(path));
}

void atomic_write_with(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string tmp =
      (fs::path(parent_dir(path)) / ("." + fs::path(path).filename().string() + ".tmp." + std::to_string(::getpid())))
          .string();
  try {
    write(tmp);
    commit_temp(tmp, path);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void write_in_rank_order(const std::string& path, Communicator& comm,
                         const std::function<void(const std::string&)>& create,
                         const std::function<void(const std::string&)>& write_part) {
  // A fixed name every rank derives alike; if a rank fails, MPI_Abort stops the job before the
  // rename, so path is never replaced by a partial file.
  const std::string tmp = path + ".tmp-parts";
  if (comm.rank() == 0) create(tmp);
  comm.barrier();
  for (int r = 0; r < comm.size(); ++r) {
    if (r == comm.rank()) write_part(tmp);
    comm.barrier();
  }
  if (comm.rank() == 0) commit_temp(tmp, path);
  comm.barrier();
}

void write_in_parallel(const std::string& path, Communicator& comm,
                       const std::function<void(const std::string&)>& create,
                       const std::function<void(const std::string&)>& write_part) {
  const std::string tmp = path + ".tmp-parts";  // as in write_in_rank_order
  if (comm.rank() == 0) create(tmp);
  comm.barrier();
  write_part(tmp);
  comm.barrier();
  if (comm.rank() == 0) commit_temp(tmp, path);
  comm.barrier();
}

namespace {

void write_file(const std::string& path, const std::string& content, bool sync) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw Error("cannot write " + path + " (directory missing or not writable?)");
  const size_t n = std::fwrite(content.data(), 1, content.size(), f);
  const bool ok = n == content.size() && std::fflush(f) == 0 && (!sync || ::fsync(::fileno(f)) == 0);
  std::fclose(f);
  if (!ok) throw Error("short write to " + path + " (disk full?)");
}

}  // namespace

void atomic_write_text(const std::string& path, const std::string& content) {
  atomic_write_with(path, [&](const std::string& tmp) { write_file(tmp, content, false); });
}

void write_synced_text(const std::string& path, const std::string& content) { write_file(path, content, true); }

namespace {

struct MdFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

std::string hex(const unsigned char* d, unsigned n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += k[d[i] >> 4];
    s += k[d[i] & 15];
  }
  return s;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx_.get(), p, n); }
  std::string hex_digest() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx_.get(), d, &n);
    return hex(d, n);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, MdFree> ctx_;
};

}  // namespace

std::string sha256_hex(const void* data, size_t n) {
  Sha256 h;
  h.update(data, n);
  return h.hex_digest();
}

std::string sha256_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw Error("cannot read " + path);
  Sha256 h;
  std::vector<char> buf(size_t{1} << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
  std::fclose(f);
  return h.hex_digest();
}

std::vector<std::string> sha256_files(const std::vector<std::string>& paths) {
  std::vector<std::string> out(paths.size());
  // Each file's error kept apart and the first path's rethrown: the same error whichever thread
  // met its own first.
  std::vector<std::exception_ptr> failed(paths.size());
  kernels::for_chunks(static_cast<int64_t>(paths.size()), 1, [&](int64_t b, int64_t e) {
    for (auto i = static_cast<size_t>(b); i < static_cast<size_t>(e); ++i) {
      try {
        out[i] = sha256_file(paths[i]);
      } catch (...) {
        failed[i] = std::current_exception();
      }
    }
  });
  for (const std::exception_ptr& f : failed) {
    if (f) std::rethrow_exception(f);
  }
  return out;
}

std::string fingerprint_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw DataError("cannot stat " + path);
  const int64_t size = st.st_size;
  constexpr int64_t kWindow = 64 << 10;
  if (size < (int64_t{1} << 20)) return "sha256:" + sha256_file(path);
  // One window per 64 MiB, 16 to 256: more of a large file is sampled, yet at most 16 MiB is
  // read per file however large it is (a terabyte of shards costs seconds, not hours).
  const int64_t kWindows = std::clamp<int64_t>(size >> 26, 16, 256);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw DataError("cannot read " + path);
  Sha256 h;
  h.update(&size, sizeof size);
  std::vector<char> buf(static_cast<size_t>(kWindow));
  for (int64_t w = 0; w < kWindows; ++w) {
    const int64_t off = (size - kWindow) * w / (kWindows - 1);
    std::fseek(f, static_cast<long>(off), SEEK_SET);
    const size_t n = std::fread(buf.data(), 1, buf.size(), f);
    h.update(buf.data(), n);
  }
  std::fclose(f);
  return "sampled-sha256:" + h.hex_digest();
}

}  // namespace tessera
