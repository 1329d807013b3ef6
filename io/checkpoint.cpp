// Writing checkpoints: the commit protocol of DESIGN §5. Every file is fsynced before MANIFEST,
// MANIFEST before the rename, the rename before LATEST; a crash at any moment leaves either the
// previous committed checkpoint or the new one, and at worst a .tmp- directory that the next
// write removes and that no load accepts.
#include "io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint_parts.h"
#include "io/files.h"
#include "io/h5.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

// Collective: all ranks learn whether any rank failed `what`; all throw if one did, so no rank
// goes on to commit (or to train) past a checkpoint that was not written.
void agree(Communicator& comm, const std::string& why, const std::string& what) {
  const std::vector<uint64_t> failed = comm.allgather(why.empty() ? 0 : 1);
  std::string ranks;
  for (size_t r = 0; r < failed.size(); ++r) {
    if (failed[r] != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  }
  if (ranks.empty()) return;
  throw Error(what + " failed on rank(s) " + ranks + (why.empty() ? "" : ": " + why) +
              "; nothing was committed and the previous checkpoint is intact");
}

template <class F>
std::string attempt(F&& f) {
  try {
    f();
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

// Parts are written in place and fsynced; the temp directory's rename commits them all.
void write_optimizer(const std::string& path, std::span<const float> m, std::span<const float> v) {
  {
    const auto hdf5 = h5::lock();  // the training source's I/O thread reads concurrently
    h5::Handle f = h5::create(path);
    if (!m.empty()) h5::write_floats(f, "m", {static_cast<int64_t>(m.size())}, m.data());
    if (!v.empty()) h5::write_floats(f, "v", {static_cast<int64_t>(v.size())}, v.data());
    h5::write_string_attr(f, "tessera_format", "tessera-optimizer/1");
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) throw Error("cannot flush " + path);
  }
  fsync_path(path);
}

// Renames dir aside, then deletes it: a crash mid-delete leaves a .deleting- directory (removed
// by the next write), never a half-deleted step- directory that looks committed.
void remove_checkpoint_dir(const fs::path& dir) {
  const fs::path aside = dir.parent_path() / (".deleting-" + dir.filename().string());
  fs::remove_all(aside);
  fs::rename(dir, aside);
  fs::remove_all(aside);
}

// Keeps `current` and the keep_last - 1 newest older checkpoints; removes newer ones (an
// abandoned continuation) and leftovers of interrupted writes and deletions.
void prune(const fs::path& ckdir, int64_t current, int64_t keep_last) {
  std::vector<int64_t> older;
  for (const auto& e : fs::directory_iterator(ckdir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".deleting-", 0) == 0) {
      fs::remove_all(e.path());
      continue;
    }
    const int64_t step = parse_step_name(name);
    if (step < 0 || !e.is_directory()) continue;
    if (step > current) {
      remove_checkpoint_dir(e.path());
    } else if (step < current) {
      older.push_back(step);
    }
  }
  std::sort(older.rbegin(), older.rend());
  for (size_t i = static_cast<size_t>(std::max<int64_t>(0, keep_last - 1)); i < older.size(); ++i) {
    remove_checkpoint_dir(ckdir / step_name(older[i]));
  }
}

}  // namespace

std::string write_checkpoint(const std::string& run_dir, const CheckpointWrite& w, int64_t keep_last,
                             Communicator& comm) {
  const fs::path ckdir = fs::path(run_dir) / "checkpoints";
  const int64_t step = w.meta.state.step;
  const fs::path tmp = ckdir / (".tmp-" + step_name(step));
  const fs::path final_dir = ckdir / step_name(step);
  const std::string what = "checkpoint " + final_dir.string();

  std::string why;
  if (comm.rank() == 0) {
    why = attempt([&] {
      make_dirs(ckdir.string());
      for (const auto& e : fs::directory_iterator(ckdir)) {
        if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path());  // interrupted writes
      }
      make_dirs(tmp.string());
    });
  }
  agree(comm, why, what + ": creating the temporary directory");

  why = attempt([&] {
    const ReplicaDigests digests = replica_digests(*w.spec, w.params, w.m, w.v);
    write_synced_text((tmp / rank_part_name(comm.rank())).string(), rank_part_text(comm.rank(), comm.size(), step, digests));
    if (comm.rank() != 0) return;
    write_model_file((tmp / "model.h5").string(), *w.spec, w.params, digests.params);
    write_optimizer((tmp / "optimizer.h5").string(), w.m, w.v);
    write_synced_text((tmp / "state.toml").string(), meta_toml(w.meta));
    write_synced_text((tmp / "config.toml").string(), w.config_toml);
    write_synced_text((tmp / "provenance.json").string(), w.provenance);
  });
  agree(comm, why, what + ": writing the parts");

  if (comm.rank() == 0) {
    why = attempt([&] {
      std::vector<std::string> parts = {"model.h5", "optimizer.h5", "state.toml", "config.toml", "provenance.json"};
      for (int r = 0; r < comm.size(); ++r) parts.push_back(rank_part_name(r));
      write_synced_text((tmp / "MANIFEST").string(), manifest_text(tmp.string(), step, parts));
      fsync_path(tmp.string());  // every part's and MANIFEST's directory entry, before the commit
      if (fs::exists(final_dir)) remove_checkpoint_dir(final_dir);  // same step written again
      fs::rename(tmp, final_dir);
      fsync_path(ckdir.string());
      atomic_write_text((ckdir / "LATEST").string(), step_name(step) + "\n");
      prune(ckdir, step, keep_last);
    });
  }
  agree(comm, why, what + ": committing");
  return final_dir.string();
}

}  // namespace tessera
