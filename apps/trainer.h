#pragma once
// The training run behind `reel train` and `reel demo`, and the checkpoint files that `reel
// eval` and `reel predict` read.
//
// A checkpoint is one safetensors file: the model's state_dict under PyTorch's key names
// (cnn.conv1.weight, lstm.weight_ih_l0, fc.bias, ...), the optimizer's state under
// "optimizer/" and the schedule's under "scheduler/", and in its metadata the model's shape,
// the class names, the clip settings, the run's settings (config.toml) and the training
// position: epoch, batch within the epoch, step, the random generator's state and the
// running sums of the epoch. It is written through an AtomicFile: a crash or a full disk
// leaves the previous checkpoint whole.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "reel/core/serialize.h"
#include "reel/data/dataset.h"
#include "reel/layers/video.h"

namespace reel::apps {

// The training position and bookkeeping that a checkpoint carries beside the tensors.
struct CheckpointInfo {
  VideoClassifierOptions model;
  std::vector<std::string> classes;
  int64_t frames = 8, size = 112, resize = 128;
  int64_t epoch = 0;  // the epoch to run next, from 0
  int64_t batch = 0;  // the batch of that epoch to run next
  int64_t step = 0;   // optimizer steps taken
  std::string rng;    // reel's default generator (Generator::state())
  double best_accuracy = -1.0;
  int64_t best_epoch = -1;
  // Sums over the current epoch's steps so far, so that a resumed epoch reports what an
  // uninterrupted one would.
  double loss_sum = 0.0;
  int64_t correct = 0, clips = 0, steps_in_epoch = 0, skipped = 0;
  int64_t ranks = 1;   // processes of the run (mpirun -np N): a resume needs as many
  std::string config;  // the run's config.toml
};

struct Checkpoint {
  CheckpointInfo info;
  TensorMap model, optimizer, scheduler;
};

// Writes a checkpoint (see above). optimizer and scheduler state may be empty maps.
void save_checkpoint(const std::string& path, const TensorMap& model, const TensorMap& optimizer,
                     const TensorMap& scheduler, const CheckpointInfo& info);
// Reads one; throws reel::Error naming the file when it is missing, truncated, not a reel
// checkpoint (a bare weights file) or malformed.
Checkpoint load_checkpoint(const std::string& path);
// The classifier a checkpoint describes, with its weights, in eval mode on the CPU.
std::unique_ptr<VideoClassifier> model_from_checkpoint(const Checkpoint& checkpoint,
                                                       const std::string& path);
// RUN_DIR/<which>.safetensors ("best" or "last"); throws naming the folder when it is absent.
std::string run_checkpoint(const std::string& run_dir, const std::string& which);

// --run RUN_DIR, --which best|last and --checkpoint FILE on a command that reads a model.
void add_checkpoint_options(CLI::App* sub, std::string& run, std::string& which,
                            std::string& checkpoint,
                            const std::string& run_help = "run folder written by `reel train`");
// The checkpoint file they name; UsageError unless exactly one of run and checkpoint is given.
std::string chosen_checkpoint(const std::string& run, const std::string& which,
                              const std::string& checkpoint);

// A dataset folder (with its layout) or a store file made by `reel prepare`. Throws naming
// the path when it holds no video.
data::Dataset open_dataset(const std::string& path, const std::string& layout, int64_t split,
                           bool train, const std::string& list = "");

struct TrainReport {
  int64_t steps = 0, epochs_done = 0;
  double best_accuracy = -1.0;      // validation accuracy of the best checkpoint (-1: none)
  double last_val_accuracy = -1.0;  // at the last validation
  double last_train_accuracy = 0.0, last_loss = 0.0;
  double seconds = 0.0;
  bool interrupted = false;  // by SIGINT or SIGTERM: a checkpoint was written
  bool stopped = false;      // by --max-steps
  std::string run_dir;
};

// Trains as `reel train` does, writing the run folder. config_text is the resolved settings
// (config.toml); resume continues from RUN_DIR/last.safetensors. `out` receives the progress
// bar and messages (a terminal gets one updated line per epoch). Throws reel::Error.
TrainReport train(const TrainConfig& config, const std::string& config_text, bool resume,
                  std::FILE* out);

// The indices of the k largest of p[0, classes), largest first (ties: the lower index first).
std::vector<int64_t> top_k(const float* p, int64_t classes, int64_t k);

// The exit code of a run that SIGINT or SIGTERM stopped after writing its checkpoint.
constexpr int kInterruptedExit = 130;

}  // namespace reel::apps
