#pragma once
// The subcommands of the `reel` command line. Each registers itself on the CLI11 app and
// returns the function that runs it.
#include <CLI/CLI.hpp>

#include <functional>

namespace reel::apps {

using Command = std::function<int()>;

// `reel demo`: trains a small classifier with the core library and reports what it did.
Command add_demo(CLI::App& app);
// `reel prepare`: decodes a dataset once into a pre-decoded store (data/store.h).
Command add_prepare(CLI::App& app);
// `reel forward`: one forward (and backward) of a ResNet or an LSTM from safetensors files.
Command add_forward(CLI::App& app);
// `reel train`: trains the CNN-LSTM on a dataset, writing a run folder (trainer.h).
Command add_train(CLI::App& app);
// `reel eval`: accuracy, per-class accuracy and confusion matrix of a checkpoint on a dataset.
Command add_eval(CLI::App& app);
// `reel predict`: top classes per video, or the probabilities as one video plays (--stream).
Command add_predict(CLI::App& app);
// `reel inspect`: heatmaps of the LSTM's gates and states over one clip, with index.html.
Command add_inspect(CLI::App& app);
// `reel detect`: class probabilities per second of a long video and the segments of each class.
Command add_detect(CLI::App& app);
// `reel embed` / `reel search`: per-video embeddings and retrieval by cosine similarity.
Command add_embed(CLI::App& app);
Command add_search(CLI::App& app);
// `reel digits`: writes the moving-digits set as videos in UCF101's layout (data/digits.h).
Command add_digits(CLI::App& app);

}  // namespace reel::apps
