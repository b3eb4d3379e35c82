#pragma once
// The settings of `reel train`, from the command line and from a TOML file (--config), and the
// resolved settings written back as RUN_DIR/config.toml. One table of options serves both
// sources: an option's TOML key is its long name with '_' for '-' (--feature-dim is
// feature_dim). The command line wins over the file; an unknown key or a value of the wrong
// type in the file is an error that names the file and the key.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reel/core/error.h"

namespace reel::apps {

// A bad command line or configuration value: one line, exit code 2.
struct UsageError : Error {
  using Error::Error;
};

struct TrainConfig {
  // data
  std::string data;  // a dataset folder or a store made by `reel prepare`
  std::string layout = "folder";
  // The index: UCF101's folder of lists, Kinetics' or csv's CSV, ActivityNet's JSON (default:
  // found in --data, see data::DatasetOptions::list).
  std::string list;
  int64_t split = 1;     // UCF101's split (1..3)
  std::string val_data;  // the validation set's folder (default: see README)
  std::string on_bad_video = "skip";
  int64_t frames = 8;  // T
  int64_t size = 112;  // frames are cropped to size x size
  int64_t resize = 0;  // the shorter side before cropping; 0: size * 8 / 7
  // model
  std::string backbone = "resnet18";
  int64_t width = 64;
  int64_t feature_dim = 512;
  int64_t hidden = 256;
  int64_t layers = 2;
  std::string fusion = "last";
  bool recompute = false;
  bool freeze_backbone = false;
  std::string pretrained;  // backbone weights (torchvision's ResNet names) as safetensors
  // optimisation
  int64_t batch = 8;
  int64_t epochs = 10;
  std::string optimizer = "sgd";
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  std::string schedule = "cosine";
  double warmup = 0.0;     // epochs of linear warm-up (cosine)
  double clip_grad = 0.0;  // max gradient norm; 0: no clipping
  bool skip_nonfinite = false;
  // running
  std::string device = "auto";
  int64_t workers = 0;
  int64_t threads = 0;
  uint64_t seed = 0;
  std::string out;
  int64_t val_every = 1;   // epochs between validations
  int64_t log_every = 10;  // steps between metric lines and non-terminal progress lines
  int64_t max_steps = 0;   // stop after this many steps in all (0: no limit); for tests and demos
  // data-parallel (mpirun -np N; apps/distributed.h): --batch is per rank
  double bucket_mib = 4.0;      // gradient buckets reduced while backward runs
  bool sync_bn = false;         // BatchNorm statistics over the global batch (default: per rank)
  double rank_timeout = 300.0;  // seconds a rank waits for the others before stopping them all
};

// The table of options: registers them on `app` and reads / writes their TOML keys.
class ConfigOptions {
 public:
  // Registers every option of TrainConfig on `app`, bound to `config`'s fields.
  ConfigOptions(CLI::App& app, TrainConfig& config);
  // Sets, from the TOML file, every key whose option was not given on the command line.
  // Throws UsageError naming the file and the key for an unknown key, a wrong type, or a file
  // that is not TOML (with the line).
  void apply_file(const std::string& path);
  // Every setting as TOML text, one key per line, in the order of the options.
  std::string to_toml() const;
  // True when the option with this TOML key was given on the command line.
  bool given(const std::string& key) const;

 private:
  struct Field;  // an option's key, its CLI11 option, how to read and write its value
  template <class T>
  void add(CLI::App& app, const std::string& key, T& field, const std::string& help);
  std::vector<std::shared_ptr<Field>> fields_;
};

// Checks ranges and choices, naming the option and the accepted values; fills derived
// defaults (resize). Throws UsageError.
void validate(TrainConfig& config);

}  // namespace reel::apps
