#pragma once
// The subcommands of the `reel` command line. Each registers itself on the CLI11 app and
// returns the function that runs it.
#include <CLI/CLI.hpp>

#include <functional>

namespace reel::apps {

using Command = std::function<int()>;

// `reel demo`: trains a small classifier with the core library and reports what it did.
Command add_demo(CLI::App& app);

}  // namespace reel::apps
