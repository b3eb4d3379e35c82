#include "config.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <type_traits>

#include <toml++/toml.h>

#include "reel/layers/backbone.h"

namespace reel::apps {

struct ConfigOptions::Field {
  std::string key;
  CLI::Option* option = nullptr;
  std::function<void(const toml::node&, const std::string& file, bool assign)> read;
  std::function<std::string()> write;  // the value as TOML
};

namespace {

std::string cli_name(const std::string& key) {
  std::string s = "--" + key;
  for (char& c : s)
    if (c == '_') c = '-';
  return s;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string toml_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  // The shortest text that reads back as the same double, and stays a TOML float.
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) {
      s = buf;
      break;
    }
  }
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date or time";
  }
}

[[noreturn]] void wrong_type(const std::string& file, const std::string& key, const char* want,
                             const toml::node& n) {
  throw UsageError(file + ": key '" + key + "' must be " + want + ", not " + type_name(n));
}

}  // namespace

template <class T>
void ConfigOptions::add(CLI::App& app, const std::string& key, T& field, const std::string& help) {
  auto f = std::make_shared<Field>();
  f->key = key;
  if constexpr (std::is_same_v<T, bool>)
    f->option = app.add_flag(cli_name(key), field, help);
  else
    f->option = app.add_option(cli_name(key), field, help)->capture_default_str();
  // Given twice, the last one counts (as argparse does), so that a script can append overrides.
  f->option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // The type is checked even when the command line overrides the key: a file is right or not.
  f->read = [&field, key](const toml::node& n, const std::string& file, bool assign) {
    T value{};
    if constexpr (std::is_same_v<T, bool>) {
      if (!n.is_boolean()) wrong_type(file, key, "true or false", n);
      value = *n.value<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!n.is_string()) wrong_type(file, key, "a string", n);
      value = *n.value<std::string>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!n.is_number()) wrong_type(file, key, "a number", n);
      value = *n.value<double>();
    } else {
      if (!n.is_integer()) wrong_type(file, key, "an integer", n);
      const int64_t v = *n.value<int64_t>();
      if (std::is_unsigned_v<T> && v < 0)
        throw UsageError(file + ": key '" + key + "' must not be negative");
      value = static_cast<T>(v);
    }
    if (assign) field = value;
  };
  f->write = [&field]() -> std::string {
    if constexpr (std::is_same_v<T, bool>)
      return field ? "true" : "false";
    else if constexpr (std::is_same_v<T, std::string>)
      return toml_string(field);
    else if constexpr (std::is_same_v<T, double>)
      return toml_double(field);
    else
      return std::to_string(field);
  };
  fields_.push_back(f);
}

ConfigOptions::ConfigOptions(CLI::App& app, TrainConfig& c) {
  add(app, "data", c.data, "dataset folder, or a store made by `reel prepare`");
  add(app, "layout", c.layout, "dataset layout: ucf101, kinetics, folder, csv or activitynet");
  add(app, "list", c.list,
      "the index: UCF101's list folder, a Kinetics or csv CSV, ActivityNet's JSON (default: in "
      "--data)");
  add(app, "split", c.split, "UCF101 split (1 to 3)");
  add(app, "val_data", c.val_data,
      "validation set (default: UCF101's test list, Kinetics' val rows, none for folder/csv)");
  add(app, "on_bad_video", c.on_bad_video, "a video that cannot be decoded: skip or fail");
  add(app, "frames", c.frames, "frames per clip (T)");
  add(app, "size", c.size, "frames are cropped to size x size pixels");
  add(app, "resize", c.resize, "shorter side before cropping (0: size * 8 / 7)");
  add(app, "backbone", c.backbone,
      "per-frame CNN: resnet18, resnet34, vgg11, vgg13 or vgg16 (vgg*_bn with BatchNorm)");
  add(app, "width", c.width, "CNN width (64 is torchvision's; 8 or 16 train on a CPU)");
  add(app, "feature_dim", c.feature_dim, "CNN feature size F (the LSTM's input)");
  add(app, "hidden", c.hidden, "LSTM hidden size H");
  add(app, "layers", c.layers, "LSTM layers");
  add(app, "fusion", c.fusion, "last, mean, concat, attention or pool (no LSTM: the baseline)");
  add(app, "recompute", c.recompute, "recompute residual blocks in backward (less memory)");
  add(app, "freeze_backbone", c.freeze_backbone,
      "train only the CNN's last Linear, the LSTM and the head");
  add(app, "pretrained", c.pretrained,
      "backbone weights as safetensors (torchvision names; the ImageNet head is skipped)");
  add(app, "batch", c.batch, "clips per step");
  add(app, "epochs", c.epochs, "epochs");
  add(app, "optimizer", c.optimizer, "sgd, adam or adamw");
  add(app, "lr", c.lr, "learning rate");
  add(app, "momentum", c.momentum, "SGD momentum (Adam's beta1 for adam and adamw)");
  add(app, "weight_decay", c.weight_decay, "weight decay (not on biases and BatchNorm)");
  add(app, "schedule", c.schedule, "learning-rate schedule: constant, step, cosine or onecycle");
  add(app, "warmup", c.warmup, "epochs of linear warm-up (cosine)");
  add(app, "clip_grad", c.clip_grad, "clip the gradients' total norm to this (0: off)");
  add(app, "skip_nonfinite", c.skip_nonfinite,
      "skip a step whose loss or gradient is NaN or infinite (default: stop with an error)");
  add(app, "device", c.device, "cpu, cuda, cuda:N or auto");
  add(app, "workers", c.workers, "decoding threads (0: one per core)");
  add(app, "threads", c.threads, "compute threads (0: REEL_NUM_THREADS or all cores)");
  add(app, "seed", c.seed, "random seed");
  add(app, "out", c.out, "run folder: config.toml, metrics.jsonl, checkpoints");
  add(app, "val_every", c.val_every, "epochs between validations");
  add(app, "log_every", c.log_every, "steps between metric lines");
  add(app, "max_steps", c.max_steps, "stop after this many steps in all (0: no limit)");
  add(app, "bucket_mib", c.bucket_mib,
      "mpirun: MiB of gradients per all-reduce bucket (reduced while backward runs)");
  add(app, "sync_bn", c.sync_bn,
      "mpirun: BatchNorm statistics over the whole global batch (default: each rank's own)");
  add(app, "rank_timeout", c.rank_timeout,
      "mpirun: seconds a rank waits for the others before stopping every rank");
}

bool ConfigOptions::given(const std::string& key) const {
  for (const auto& f : fields_)
    if (f->key == key) return f->option->count() > 0;
  return false;
}

void ConfigOptions::apply_file(const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    std::ostringstream msg;
    msg << path;
    if (where.line > 0) msg << ":" << where.line;
    msg << ": not valid TOML: " << e.description();
    // A missing file comes back as a parse error too.
    throw UsageError(msg.str());
  }
  for (auto&& [k, node] : table) {
    const std::string key(k.str());
    const Field* field = nullptr;
    for (const auto& f : fields_)
      if (f->key == key) field = f.get();
    if (!field) {
      std::string known;
      for (const auto& f : fields_) known += (known.empty() ? "" : ", ") + f->key;
      throw UsageError(path + ": unknown key '" + key + "' (the keys are " + known + ")");
    }
    field->read(node, path, field->option->count() == 0);
  }
}

std::string ConfigOptions::to_toml() const {
  std::string out = "# reel train: the resolved settings of this run\n";
  for (const auto& f : fields_) out += f->key + " = " + f->write() + "\n";
  return out;
}

namespace {

void check_range(const char* key, double v, double lo, double hi, const char* unit = "") {
  if (v >= lo && v <= hi) return;
  std::ostringstream msg;
  msg.precision(12);
  msg << cli_name(key) << " must be between " << lo << " and " << hi << unit << " (got " << v
      << ")";
  throw UsageError(msg.str());
}

void check_choice(const char* key, const std::string& v, const std::vector<std::string>& ok) {
  for (const auto& o : ok)
    if (v == o) return;
  std::string list;
  for (const auto& o : ok) list += (list.empty() ? "" : ", ") + o;
  throw UsageError(cli_name(key) + " must be one of " + list + " (got '" + v + "')");
}

}  // namespace

void validate(TrainConfig& c) {
  if (c.data.empty()) throw UsageError("--data is required: a dataset folder or a store");
  if (c.out.empty()) throw UsageError("--out is required: the run folder to write");
  check_choice("layout", c.layout, {"ucf101", "kinetics", "folder", "csv", "activitynet"});
  check_range("split", c.split, 1, 3);
  check_choice("on_bad_video", c.on_bad_video, {"skip", "fail"});
  check_range("frames", c.frames, 1, 1024);
  check_range("size", c.size, 32, 1024, " pixels");
  if (c.resize == 0) c.resize = c.size * 8 / 7;
  check_range("resize", c.resize, c.size, 4096, " pixels (at least --size)");
  check_choice("backbone", c.backbone, backbones());
  check_range("width", c.width, 1, 1024);
  check_range("feature_dim", c.feature_dim, 1, 65536);
  check_range("hidden", c.hidden, 1, 65536);
  check_range("layers", c.layers, 1, 64);
  check_choice("fusion", c.fusion, {"last", "mean", "concat", "attention", "pool"});
  check_range("batch", c.batch, 1, 65536);
  check_range("epochs", c.epochs, 1, 1000000);
  check_choice("optimizer", c.optimizer, {"sgd", "adam", "adamw"});
  if (!(c.lr > 0.0 && c.lr <= 100.0)) check_range("lr", c.lr, 1e-12, 100);
  check_range("momentum", c.momentum, 0, 0.999999);
  check_range("weight_decay", c.weight_decay, 0, 10);
  check_choice("schedule", c.schedule, {"constant", "step", "cosine", "onecycle"});
  check_range("warmup", c.warmup, 0, static_cast<double>(c.epochs), " epochs (at most --epochs)");
  check_range("clip_grad", c.clip_grad, 0, 1e12);
  check_range("workers", c.workers, 0, 256);
  check_range("threads", c.threads, 0, 4096);
  check_range("val_every", c.val_every, 1, 1000000);
  check_range("log_every", c.log_every, 1, 1000000);
  check_range("max_steps", c.max_steps, 0, 1e15);
  check_range("bucket_mib", c.bucket_mib, 0.001, 4096, " MiB");
  check_range("rank_timeout", c.rank_timeout, 1, 1e6, " seconds");
}

}  // namespace reel::apps
