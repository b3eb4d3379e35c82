// Data-parallel `reel train` under `mpirun -np 2` on this machine (loopback only): two ranks
// with --batch 4 end with the parameters of one process with --batch 8; a rank that dies or
// hangs stops the others with an error instead of a hang; ranks with different settings, and a
// resume with another rank count, are refused in one line. Built only with MPI (REEL_HAVE_MPI);
// a build without it is checked for its one-line refusal instead.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../test_util.h"

using namespace reel;
namespace fs = std::filesystem;

namespace {

const std::string kTmp = REEL_TEST_TMP_DIR "/distributed";
const std::string kCli = REEL_CLI;
// Loopback only, as root too, two ranks on two cores.
const std::string kMpirun =
    "mpirun --allow-run-as-root --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo "
    "--mca oob_tcp_if_include lo -np 2 ";

struct Result : reel::test::CommandResult {
  double seconds = 0;  // how long the command ran
};

Result run(const std::string& cmd) {
  Result r;
  const auto t0 = std::chrono::steady_clock::now();
  r.rc = reel::test::run_command(cmd, kTmp + "/cmd", &r.out, &r.err);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

const std::string& digits() {
  static const std::string dir = [] {
    fs::create_directories(kTmp);
    const std::string d = kTmp + "/digits";
    fs::remove_all(d);
    const Result r =
        run(kCli + " digits --out " + d + " --train 64 --test 16 --frames 4 --size 32");
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    return d;
  }();
  return dir;
}

std::string args(const std::string& out, int batch, const std::string& extra = "") {
  return " train --data " + digits() +
         " --layout ucf101 --frames 4 --size 32 --resize 32 --width 4 --feature-dim 8 "
         "--hidden 8 --layers 1 --threads 1 --workers 1 --optimizer sgd --lr 0.05 "
         "--device cpu --log-every 1 --batch " +
         std::to_string(batch) + " --out " + out + " " + extra;
}

std::string fresh(const std::string& name) {
  const std::string d = kTmp + "/" + name;
  fs::remove_all(d);
  return d;
}

}  // namespace

#ifdef REEL_HAVE_MPI

TEST_CASE("mpirun -np 2 with --batch 4 ends as one process with --batch 8") {
  // The backbone frozen (BatchNorm in eval mode): then per-rank BatchNorm statistics cannot
  // differ from the global batch's, and the two runs must agree to float rounding. Two epochs
  // of 8 global batches, the last 64 -> validation on shards too.
  const std::string one = fresh("one"), two = fresh("two");
  const std::string extra = "--epochs 2 --freeze-backbone --bucket-mib 0.001";
  Result r1 = run(kCli + args(one, 8, extra));
  REQUIRE_MESSAGE(r1.rc == 0, r1.err);
  Result r2 = run(kMpirun + kCli + args(two, 4, extra));
  INFO(r2.out << r2.err);
  REQUIRE(r2.rc == 0);
  // Rank 0 alone prints: one summary line.
  size_t summaries = 0;
  for (size_t at = r2.out.find("reel train: 16 steps"); at != std::string::npos;
       at = r2.out.find("reel train: 16 steps", at + 1))
    ++summaries;
  CHECK(summaries == 1);
  const TensorMap a = load_safetensors(one + "/last.safetensors");
  const TensorMap b = load_safetensors(two + "/last.safetensors");
  REQUIRE(a.size() == b.size());
  for (const auto& [k, v] : a) {
    INFO(k);
    REQUIRE(b.count(k));
    reel::test::check_close(b.at(k), v, 1e-5f);
  }
  // The same metrics: each step's loss is the global batch's.
  std::ifstream m1(one + "/metrics.jsonl"), m2(two + "/metrics.jsonl");
  std::string l1, l2;
  int lines = 0;
  while (std::getline(m1, l1) && std::getline(m2, l2)) {
    const auto j1 = nlohmann::json::parse(l1), j2 = nlohmann::json::parse(l2);
    CHECK(j1["step"] == j2["step"]);
    CHECK(j1["accuracy"] == j2["accuracy"]);
    CHECK(j2["loss"].get<double>() == doctest::Approx(j1["loss"].get<double>()).epsilon(1e-5));
    if (j1.contains("val_accuracy")) CHECK(j1["val_accuracy"] == j2["val_accuracy"]);
    ++lines;
  }
  CHECK(lines == 18);  // 16 steps and 2 epochs

  // A resume needs as many ranks as the run had.
  Result r3 = run(kCli + " train --resume " + two + " --epochs 3");
  CHECK(r3.rc == 1);
  CHECK_MESSAGE(
      r3.err.find("trained on 2 ranks; resume it with mpirun -np 2 (1 here)") != std::string::npos,
      r3.err);
  // Per-rank BatchNorm (the default): both ranks keep the same parameters (compared at every
  // checkpoint), and the run ends normally.
  Result r4 = run(kMpirun + kCli + args(fresh("bn"), 4, "--epochs 1"));
  CHECK_MESSAGE(r4.rc == 0, r4.err);
}

TEST_CASE("mpirun -np 2 --sync-bn trains the whole network as one process with twice the batch") {
  // BatchNorm in training mode, its statistics over the global batch: every parameter and
  // running statistic as one process's (float rounding of the sums aside).
  const std::string one = fresh("sync_one"), two = fresh("sync_two");
  Result r1 = run(kCli + args(one, 8, "--epochs 1 --max-steps 5"));
  REQUIRE_MESSAGE(r1.rc == 0, r1.err);
  Result r2 = run(kMpirun + kCli + args(two, 4, "--epochs 1 --max-steps 5 --sync-bn"));
  INFO(r2.out << r2.err);
  REQUIRE(r2.rc == 0);
  const TensorMap a = load_safetensors(one + "/last.safetensors");
  const TensorMap b = load_safetensors(two + "/last.safetensors");
  int compared = 0;
  for (const auto& [k, v] : a) {
    INFO(k);
    reel::test::check_close(b.at(k), v, 1e-4f);
    compared += k.find("running_var") != std::string::npos;
  }
  CHECK(compared == 20);  // every BatchNorm of the ResNet-18
  // Without --sync-bn the per-rank statistics give another result.
  Result r3 = run(kMpirun + kCli + args(fresh("per_rank"), 4, "--epochs 1 --max-steps 5"));
  REQUIRE(r3.rc == 0);
  const TensorMap c = load_safetensors(kTmp + "/per_rank/last.safetensors");
  CHECK(c.at("cnn.bn1.running_var").to_vector() != a.at("cnn.bn1.running_var").to_vector());
}

TEST_CASE("mpirun: different settings on the ranks, a dead rank, a hanging rank") {
  // Settings that differ: one line from rank 0, non-zero exit.
  Result r = run(kMpirun + "sh -c '" + kCli + args(fresh("differ"), 4, "--epochs 1") +
                 " --lr 0.0$((OMPI_COMM_WORLD_RANK + 1))'");
  CHECK(r.rc != 0);
  CHECK_MESSAGE(r.err.find("the settings (config.toml) or the reel build differs between the "
                           "ranks: rank 1's is not rank 0's") != std::string::npos,
                r.err);
  // Rank 1 killed (or stopped) after 3 s of a long run, while the other trains on.
  auto victim = [](const std::string& out, const std::string& signal) {
    const std::string run = args(fresh(out), 4, "--epochs 200 --rank-timeout 5");
    return "sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then " + kCli + run +
           " & p=$!; sleep 3; kill -" + signal + " $p; wait $p; else exec " + kCli + run + "; fi'";
  };
  // Killed: the job ends with an error long before the run would have.
  r = run(kMpirun + victim("dies", "KILL"));
  CHECK(r.rc != 0);
  CHECK(r.seconds < 60);
  // Stopped (it hangs): rank 0 gives up after --rank-timeout and stops every rank.
  r = run(kMpirun + victim("hangs", "STOP"));
  CHECK(r.rc != 0);
  CHECK(r.seconds < 60);
  CHECK_MESSAGE(r.err.find("rank 0: no answer from the other ranks") != std::string::npos, r.err);
}

TEST_CASE("mpirun: a rank whose part of a global batch is all bad videos; all ranks skip it") {
  // With --batch 1 per rank, the rank that draws the garbage video has nothing for that step:
  // every rank skips the global batch together and training goes on.
  const std::string data = fresh("bad_data");
  fs::copy(digits(), data, fs::copy_options::recursive);
  // The first training video (trainlist01.txt: "Class/v_....avi <label>").
  const std::string list = reel::test::read_text(data + "/trainlist01.txt");
  const std::string victim = data + "/" + list.substr(0, list.find(' '));
  REQUIRE(fs::exists(victim));
  std::ofstream(victim, std::ios::trunc) << "not a video";
  std::string a = args(fresh("bad_run"), 1, "--epochs 1");
  a.replace(a.find(digits()), digits().size(), data);
  Result r = run(kMpirun + kCli + a);
  INFO(r.out << r.err);
  CHECK(r.rc == 0);
  CHECK((r.out + r.err).find("skipping bad video") != std::string::npos);
  CHECK(r.out.find("skipped: a rank's part of it held no readable video") != std::string::npos);
  CHECK(fs::exists(kTmp + "/bad_run/last.safetensors"));
}

#else

TEST_CASE("a build without MPI started by a launcher with 2 ranks says so in one line") {
  Result r = run("OMPI_COMM_WORLD_SIZE=2 " + kCli + args(fresh("nompi"), 4, "--epochs 1"));
  CHECK(r.rc == 2);
  CHECK_MESSAGE(r.err.find("built without MPI") != std::string::npos, r.err);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(kTmp + "/nompi/config.toml"));
}

#endif
