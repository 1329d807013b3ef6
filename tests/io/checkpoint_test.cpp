// Checkpoints (DESIGN §5) on one rank: exact round trip of every field, keep_last pruning,
// leftovers of interrupted writes, and CorruptionError naming the part for every kind of damage.
#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include <tbb/global_control.h>

#include <filesystem>

#include "core/error.h"
#include "io/checkpoint_parts.h"
#include "io/files.h"
#include "tests/io/error_matchers.h"
#include "tests/io/test_files.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

struct Fixture {
  ModelSpec spec;
  std::vector<float> params, m, v;
  CheckpointWrite w;

  explicit Fixture(int64_t step) {
    spec.kind = "mlp";
    spec.sizes = {5, 7, 3};
    params.resize(static_cast<size_t>(spec.param_count()));
    init_params(spec, 3, params.data());
    m.assign(params.size(), 0.25f);
    v.assign(params.size(), 1e-3f);
    m[4] = -1.5f;
    w.spec = &spec;
    w.params = params.data();
    w.m = m;
    w.v = v;
    w.meta.state.step = step;
    w.meta.state.evaluated_at = step - 1;
    w.meta.state.interval[0] = 0.1 + 1e-17 * static_cast<double>(step);
    w.meta.state.interval[1] = 1.0 / 3.0;
    w.meta.state.interval[2] = 60;
    w.meta.state.last_loss = 0.7071067811865476;
    w.meta.state.elapsed_s = 12.345;
    w.meta.steps_per_epoch = 7;
    w.meta.optimizer_updates = step;
    w.meta.metrics_lines = 11;
    w.meta.model = spec.describe();
    w.meta.optimizer = "adam";
    w.meta.data_fingerprint = "sha256:data";
    w.meta.identity_hash = "sha256:id";
    w.config_toml = "[train]\nseed = 1\n";
    w.provenance = "{}\n";
  }
};

std::vector<std::string> step_dirs(const std::string& run) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Checkpoint, RoundTripsEveryFieldExactly) {
  TempDir dir;
  LocalCommunicator comm;
  Fixture f(9);
  const std::string written = write_checkpoint(dir.path(), f.w, 3, comm);
  EXPECT_EQ(written, dir.path() + "/checkpoints/step-000009");
  EXPECT_EQ(latest_checkpoint(dir.path()), written);
  const Checkpoint c = read_checkpoint(written);
  EXPECT_EQ(c.model.params, f.params);
  EXPECT_EQ(c.m, f.m);
  EXPECT_EQ(c.v, f.v);
  EXPECT_EQ(c.meta.state.step, 9);
  EXPECT_EQ(c.meta.state.evaluated_at, 8);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.meta.state.interval[i], f.w.meta.state.interval[i]);  // bitwise
  EXPECT_EQ(c.meta.state.last_loss, f.w.meta.state.last_loss);
  EXPECT_EQ(c.meta.state.elapsed_s, f.w.meta.state.elapsed_s);
  EXPECT_EQ(c.meta.optimizer_updates, 9);
  EXPECT_EQ(c.meta.metrics_lines, 11);
  EXPECT_EQ(c.meta.data_fingerprint, "sha256:data");
  EXPECT_EQ(c.config_toml, f.w.config_toml);
  bool ok = false;
  EXPECT_NE(inspect_checkpoint(dir.path(), &ok).find("verdict: OK"), std::string::npos);
  EXPECT_TRUE(ok);
}

TEST(Checkpoint, KeepsTheNewestAndRemovesLeftovers) {
  TempDir dir;
  LocalCommunicator comm;
  fs::create_directories(dir.path() + "/checkpoints/.tmp-step-000004");      // an interrupted write
  fs::create_directories(dir.path() + "/checkpoints/.deleting-step-000001");  // an interrupted delete
  for (int64_t s : {2, 4, 6, 8}) write_checkpoint(dir.path(), Fixture(s).w, 2, comm);
  EXPECT_EQ(step_dirs(dir.path()), (std::vector<std::string>{"LATEST", "step-000006", "step-000008"}));
  // Resumed from step 6 and written again at 7: step 8 belonged to the abandoned continuation.
  write_checkpoint(dir.path(), Fixture(7).w, 2, comm);
  EXPECT_EQ(step_dirs(dir.path()), (std::vector<std::string>{"LATEST", "step-000006", "step-000007"}));
  EXPECT_EQ(read_checkpoint(latest_checkpoint(dir.path())).meta.state.step, 7);
}

// Damages one part of a fresh checkpoint and expects read_checkpoint to name it.
void expect_refused(const std::function<void(const std::string&)>& damage, std::initializer_list<std::string> naming) {
  TempDir dir;
  LocalCommunicator comm;
  const std::string ck = write_checkpoint(dir.path(), Fixture(5).w, 1, comm);
  damage(ck);
  const std::string msg = testing::thrown_message<CorruptionError>([&] { read_checkpoint(ck); });
  for (const std::string& part : naming) EXPECT_NE(msg.find(part), std::string::npos) << msg;
}

TEST(Checkpoint, RefusesEachKindOfDamageNamingThePart) {
  using testing::read_bytes;
  using testing::write_bytes;
  auto flip_last = [](const std::string& path) {
    std::string b = read_bytes(path);
    b[b.size() - 2] ^= 0x01;
    write_bytes(path, b);
  };
  for (const char* part : {"model.h5", "optimizer.h5", "state.toml", "config.toml", "provenance.json", "rank-00000.txt"}) {
    expect_refused([&](const std::string& ck) { flip_last(ck + "/" + part); }, {"part " + std::string(part), "checksum mismatch"});
    expect_refused([&](const std::string& ck) { fs::resize_file(ck + "/" + part, fs::file_size(ck + "/" + part) / 2); }, {"part " + std::string(part), "(truncated)"});
    expect_refused([&](const std::string& ck) { fs::remove(ck + "/" + part); }, {"part " + std::string(part) + " is missing"});
  }
  expect_refused([](const std::string& ck) { fs::remove(ck + "/MANIFEST"); }, {"incomplete checkpoint", "MANIFEST is missing"});
  expect_refused([&](const std::string& ck) { flip_last(ck + "/MANIFEST"); }, {"MANIFEST"});
  expect_refused([](const std::string& ck) { fs::resize_file(ck + "/MANIFEST", 200); }, {"MANIFEST has no end line"});
}

// A rank part that is intact (MANIFEST rewritten to match) but records other weights or moments
// than the saved ones: the ranks had diverged when the checkpoint was taken. The weights'
// digest it is compared with is the one model.h5 recorded and the read verified.
TEST(Checkpoint, RefusesARankPartWhoseReplicaDiffers) {
  const std::vector<std::string> parts = {"model.h5", "optimizer.h5", "state.toml", "config.toml",
                                          "provenance.json", "rank-00000.txt"};
  const Fixture f(5);
  std::vector<float> other = f.params;
  other[3] += 1.0f;
  // A fresh checkpoint whose rank part records `digest` as `field`, MANIFEST rewritten to match.
  auto written_with = [&](const TempDir& dir, const std::string& field, const std::string& digest) {
    LocalCommunicator comm;
    const std::string ck = write_checkpoint(dir.path(), Fixture(5).w, 1, comm);
    std::string text = testing::read_bytes(ck + "/rank-00000.txt");
    const size_t at = text.find(field + " ");
    EXPECT_NE(at, std::string::npos) << text;
    text.replace(at + field.size() + 1, digest.size(), digest);
    testing::write_bytes(ck + "/rank-00000.txt", text);
    testing::write_bytes(ck + "/MANIFEST", manifest_text(ck, 5, parts));
    return ck;
  };
  const std::string true_params = weights_sha256(f.spec, f.params.data()), true_moments = moments_sha256(f.m, f.v);
  {
    TempDir dir;
    const std::string ck = written_with(dir, "params_sha256", weights_sha256(f.spec, other.data()));
    TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_checkpoint(ck), "part rank-00000.txt",
                                "replica differs from the saved weights");
  }
  {
    TempDir dir;
    const std::string ck = written_with(dir, "optimizer_sha256", moments_sha256(other, f.v));
    TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_checkpoint(ck), "part rank-00000.txt",
                                "replica differs from the saved weights");
  }
  // The same edit with the true digests reads back: the comparison is with what was saved, and
  // the weights' digest is the one model.h5 recorded.
  for (const auto& [field, digest] : {std::pair<std::string, std::string>{"params_sha256", true_params},
                                      {"optimizer_sha256", true_moments}}) {
    TempDir dir;
    EXPECT_EQ(read_checkpoint(written_with(dir, field, digest)).model.sha256, true_params) << field;
  }
}

// With two parts damaged, the first in MANIFEST order is named, whatever is wrong with each: a
// checksum mismatch (model.h5) before a truncation (config.toml) and a missing part (rank part).
TEST(Checkpoint, NamesTheFirstDamagedPartInManifestOrder) {
  TempDir dir;
  LocalCommunicator comm;
  const std::string ck = write_checkpoint(dir.path(), Fixture(5).w, 1, comm);
  const std::string model = testing::read_bytes(ck + "/model.h5");
  std::string flipped = model;
  flipped[flipped.size() - 2] ^= 0x01;
  testing::write_bytes(ck + "/model.h5", flipped);
  fs::resize_file(ck + "/config.toml", 10);
  fs::remove(ck + "/rank-00000.txt");
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_checkpoint(ck), "part model.h5 checksum mismatch");
  // model.h5 intact again: the truncated config.toml comes before the later damage.
  testing::write_bytes(ck + "/model.h5", model);
  std::string prov = testing::read_bytes(ck + "/provenance.json");
  prov[1] ^= 0x01;
  testing::write_bytes(ck + "/provenance.json", prov);
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_checkpoint(ck), "part config.toml has 10 bytes", "(truncated)");
}

// The parts are hashed on oneTBB threads; the digests must come out in order and the same
// for any thread count, and a part that cannot be read must be named.
TEST(Checkpoint, PartsHashTheSameOnOneAndTwoThreads) {
  TempDir dir;
  std::vector<std::string> paths;
  for (int i = 0; i < 6; ++i) {
    paths.push_back(dir.file("part" + std::to_string(i)));
    testing::write_bytes(paths.back(), std::string(static_cast<size_t>(1000 * i + 1), static_cast<char>('a' + i)));
  }
  std::vector<std::string> one;
  for (const std::string& p : paths) one.push_back(sha256_file(p));
  for (int threads : {1, 2}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    EXPECT_EQ(sha256_files(paths), one) << threads << " threads";
  }
  paths.insert(paths.begin() + 3, dir.file("missing"));
  TESSERA_EXPECT_THROW_NAMING(Error, sha256_files(paths), "cannot read", dir.file("missing"));

  // A whole checkpoint: the same MANIFEST (every part's digest, in order) on 1 and 2 threads.
  std::string manifest[2];
  for (int threads : {1, 2}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    TempDir run;
    LocalCommunicator comm;
    const std::string ck = write_checkpoint(run.path(), Fixture(4).w, 1, comm);
    manifest[threads - 1] = testing::read_bytes(ck + "/MANIFEST");
    EXPECT_EQ(read_checkpoint(ck).meta.state.step, 4);
  }
  EXPECT_EQ(manifest[0], manifest[1]);
}

TEST(Checkpoint, RefusesAnUncommittedDirectoryAndADanglingLatest) {
  TempDir dir;
  LocalCommunicator comm;
  const std::string ck = write_checkpoint(dir.path(), Fixture(3).w, 1, comm);
  const std::string tmp = dir.path() + "/checkpoints/.tmp-step-000003";
  fs::rename(ck, tmp);
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_checkpoint(tmp), "never committed");
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, latest_checkpoint(dir.path()), "LATEST", "which is missing");
}

}  // namespace
}  // namespace tessera
