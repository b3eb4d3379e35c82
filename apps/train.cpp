// `reel train`: the command line (and --config file) of a training run; the run itself is in
// trainer.cpp.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.h"
#include "config.h"
#include "distributed.h"
#include "trainer.h"

namespace reel::apps {

namespace {

struct TrainArgs {
  TrainConfig config;
  std::string config_file, resume;
  std::unique_ptr<ConfigOptions> options;
};

int run_train(TrainArgs& a) {
  TrainConfig& c = a.config;
  if (!a.resume.empty()) {
    if (!a.config_file.empty())
      throw UsageError("--resume takes the run's own config.toml; drop --config");
    if (a.options->given("out") && c.out != a.resume)
      throw UsageError("--resume " + a.resume + " writes to its own folder; drop --out");
    const std::string saved = (std::filesystem::path(a.resume) / "config.toml").string();
    if (!std::filesystem::exists(saved))
      throw Error("--resume " + a.resume + ": no config.toml in it (not a run folder?)");
    a.options->apply_file(saved);
    c.out = a.resume;
  } else if (!a.config_file.empty()) {
    a.options->apply_file(a.config_file);
  }
  validate(c);
  const TrainReport r = train(c, a.options->to_toml(), !a.resume.empty(), stdout);
  const bool lead = Ranks::world().rank() == 0;
  Ranks::finalize();
  if (r.interrupted) return kInterruptedExit;
  if (r.stopped || !lead) return 0;
  std::printf("reel train: %lld steps in %.1f s", static_cast<long long>(r.steps), r.seconds);
  if (r.best_accuracy >= 0.0)
    std::printf("; best validation accuracy %.1f%%", 100.0 * r.best_accuracy);
  std::printf("\nrun folder %s: config.toml, metrics.jsonl, last.safetensors, best.safetensors\n",
              r.run_dir.c_str());
  return 0;
}

}  // namespace

Command add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand(
      "train", "train the CNN-LSTM on a video dataset (folder or store), writing a run folder");
  sub->add_option("--config", a->config_file,
                  "TOML file of settings (keys: the long options with _ for -); the command "
                  "line wins");
  sub->add_option("--resume", a->resume,
                  "continue the run in this folder from its last checkpoint");
  a->options = std::make_unique<ConfigOptions>(*sub, a->config);
  sub->footer(
      "Exit codes: 0 done, 1 failed, 2 bad command line or config, 130 stopped by SIGINT or "
      "SIGTERM (after writing a checkpoint).");
  return [a] { return run_train(*a); };
}

}  // namespace reel::apps
