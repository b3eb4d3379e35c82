#pragma once
// Data-parallel training across processes: `mpirun -np N reel train ...` (issue 12). MPI (Open
// MPI from Debian, or any MPI) starts and connects the ranks and carries every byte: gradients,
// statistics, checksums. Nothing here is home-made transport.
//
// Each rank runs the same model on its shard of every global batch (data::LoaderOptions::shard);
// gradients are averaged across the ranks during backward by GradientAverager; rank 0 alone
// prints and writes files. A build without MPI runs one rank, and says so in one line when it
// finds itself started by mpirun with several.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reel/core/serialize.h"
#include "reel/core/tensor.h"

namespace reel::apps {

// Thrown on the ranks other than 0 when rank 0 reports an error that all ranks found (settings
// that differ): main() exits with `code` without printing it again.
struct ExitQuietly {
  int code = 1;
};

class Ranks {
 public:
  // This process's ranks: MPI's world when a launcher started it with several (mpirun sets
  // OMPI_COMM_WORLD_SIZE, or PMI_SIZE), else one rank. The first call initialises MPI. Throws
  // UsageError in a build without MPI started with several ranks.
  static Ranks& world();
  // A collective that waits longer than this for the other ranks (one died, or hangs) makes
  // this rank name it and exit, and the launcher stops every rank, rather than a hang. 300 s
  // by default.
  void set_timeout(double seconds);
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }
  double timeout() const { return timeout_; }
  // Ends MPI after a run that succeeded (a run that fails exits without it, and the launcher
  // stops the other ranks).
  static void finalize();

  // v: [n], summed over the ranks in place (every rank gets the sums).
  void sum(std::vector<double>& v, const char* what) const;
  // data: [n] floats, rank 0's to every rank.
  void broadcast(float* data, int64_t n, const char* what) const;
  // Throws reel::Error on every rank when value is not the same on all of them, naming `what`
  // and the first rank that differs from rank 0.
  void check_same(uint64_t value, const std::string& what) const;

 private:
  Ranks() = default;
  int rank_ = 0, size_ = 1;
  double timeout_ = 300.0;
};

// The number of ranks the launcher asked for, from its environment (1 without a launcher).
int launcher_ranks();

// A checksum (FNV-1a over the bytes) of tensors, in order: for "the parameters are the same on
// every rank".
uint64_t checksum(const NamedTensors& tensors);
uint64_t checksum(const std::string& text);

// Averages the gradients of `params` over the ranks while backward runs. The parameters are
// packed, from the last one registered to the first (the order in which backward finishes
// them), into buckets of about bucket_mib MiB; as soon as a bucket's last gradient has been
// accumulated (Tensor::add_grad_ready_hook) its reduction starts (MPI_Iallreduce), while
// backward goes on with the earlier layers. finish() starts what has not started (a parameter
// that got no gradient counts as zeros), waits, and writes the average into every grad().
class GradientAverager {
 public:
  GradientAverager(const Ranks& ranks, const NamedTensors& params, double bucket_mib = 4.0);
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;
  // After backward: every grad() is the mean over the ranks.
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Buckets whose reduction started inside backward at the last step (the rest waited for
  // finish()), and the seconds finish() waited.
  int64_t started_early() const { return last_started_early_; }
  double finish_seconds() const { return finish_seconds_; }

 private:
  struct Bucket;
  void ready(size_t param);
  void start(Bucket& b);
  const Ranks& ranks_;
  std::vector<Tensor> params_;
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<std::unique_ptr<Bucket>> buckets_;
  int64_t started_early_ = 0, last_started_early_ = 0;
  double finish_seconds_ = 0.0;
  bool in_finish_ = false;
};

}  // namespace reel::apps
