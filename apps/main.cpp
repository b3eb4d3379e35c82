// reel: one binary, one subcommand per job. A reel::Error becomes one line on stderr and exit
// code 1; a bad command line or config value (CLI11's errors, UsageError) exits with 2.
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "commands.h"
#include "config.h"
#include "distributed.h"
#include "reel/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"reel: CNN-LSTM video classification from scratch (C++17 and CUDA)"};
  app.require_subcommand(1);
  std::map<std::string, reel::apps::Command> commands;
  commands["forward"] = reel::apps::add_forward(app);
#ifdef REEL_HAVE_DATA
  commands["demo"] = reel::apps::add_demo(app);
  commands["prepare"] = reel::apps::add_prepare(app);
  commands["digits"] = reel::apps::add_digits(app);
  commands["train"] = reel::apps::add_train(app);
  commands["eval"] = reel::apps::add_eval(app);
  commands["predict"] = reel::apps::add_predict(app);
  commands["inspect"] = reel::apps::add_inspect(app);
  commands["detect"] = reel::apps::add_detect(app);
  commands["embed"] = reel::apps::add_embed(app);
  commands["search"] = reel::apps::add_search(app);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    for (auto* sub : app.get_subcommands()) return commands.at(sub->get_name())();
  } catch (const reel::apps::ExitQuietly& e) {
    return e.code;  // another rank reported it
  } catch (const reel::apps::UsageError& e) {
    std::fprintf(stderr, "reel: error: %s\n", e.what());
    return 2;
  } catch (const reel::Error& e) {
    std::fprintf(stderr, "reel: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reel: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
